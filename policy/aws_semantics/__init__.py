"""AWS semantics: what each declared mechanism needs to *work* in AWS, as rules.

Pulumi's mocks prove a program's shape; these rules check its semantics: that each key policy lets
every service that must use the key do so with the request context that service really sends, that
delivery targets admit their writers, that Route 53 can evaluate each health check, that database
traffic has a path, that lifecycle rules respect storage classes, that pgBackRest can still read
its repository, that vault locks admit the plans, and that prerequisites such as AWS Config exist.

Standard library only: the CrossGuard pack loads this package from policy/ on its own, and
``drctl posture`` imports it as ``policy.aws_semantics``. Each rule is a function
``Stack -> [(resource name, problem)]`` whose docstring names the AWS document (title and URL) and
the constraint it encodes; tests/policy/test_aws_semantics.py has a compliant and a non-compliant
fixture for every rule registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import (
    adoption,
    backup,
    delivery,
    inventory,
    kms,
    network,
    per_type,
    replication,
    storage,
)
from .graph import Stack


@dataclass(frozen=True)
class SemanticRule:
    name: str
    description: str
    check: Callable[[Stack], list[tuple[str, str]]]

    @property
    def document(self) -> str:
        """The rule's docstring: the AWS document and the constraint."""
        return (self.check.__doc__ or "").strip()


RULES: list[SemanticRule] = [
    SemanticRule(name, description, check)
    for module in (
        replication,
        kms,
        delivery,
        network,
        storage,
        backup,
        adoption,
        per_type,
        inventory,
    )
    for name, description, check in module.RULES
]


def violations(resources: Iterable) -> list[tuple[str, str, str]]:
    """(rule, resource, problem) for every rule over one stack's resources."""
    stack = Stack(resources)
    return [
        (rule.name, resource, problem) for rule in RULES for resource, problem in rule.check(stack)
    ]


__all__ = ["RULES", "SemanticRule", "Stack", "violations"]
