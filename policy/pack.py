"""The CrossGuard side of the rules: turns ``rules.py`` into pulumi_policy policies.

Nothing here decides what is compliant; every verdict comes from a function in ``rules.py``, the
same functions ``drctl posture`` applies. This module only adapts what the engine hands a policy
(``ResourceValidationArgs``, ``StackValidationArgs``) into ``rules.Resource`` values and reports
each problem through ``report_violation``. ``__main__.py`` only builds the ``PolicyPack``, so the
adapters can be imported and tested without a Pulumi engine.

Unknown values: during a preview the engine passes values it cannot know yet (a new bucket's
name, a policy document built from ARNs) as sentinel strings. A rule must never judge such a
sentinel as if it were a real value (an unknown policy document is not "a policy without a TLS
statement"). ``known()`` copies the properties into plain dicts and lists that raise the SDK's own
``UnknownValueError`` when a rule reads an unknown value; the SDK turns that into an advisory "can't
run during preview" note and the rule runs for real on ``pulumi up``. Rules that never read the
unknown field (versioning status beside an unknown bucket name) still judge during the preview.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy
from pulumi_policy.proxy import UnknownValueError, _DictProxy, _ListProxy

# Imported as policy.pack by tests and drctl; run by the Pulumi policy host from inside policy/,
# where the pack directory itself is on sys.path and there is no parent package.
if __package__:
    from . import rules
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import rules  # type: ignore[no-redef]

PACK_NAME = "platform-dr"
STACK_POLICY_NAME = "objectives-met"
STACK_POLICY_DESCRIPTION = (
    "Every data class's enforced bounds meet its recovery point objective (per-class worst "
    "case from the objectives the stack declares and the files the database hosts receive; "
    "alarms only detect and never count)."
)

UNKNOWN_SENTINELS = frozenset(
    {
        _proxy.UNKNOWN_BOOLEAN_VALUE,
        _proxy.UNKNOWN_NUMBER_VALUE,
        _proxy.UNKNOWN_STRING_VALUE,
        _proxy.UNKNOWN_ARRAY_VALUE,
        _proxy.UNKNOWN_ASSET_VALUE,
        _proxy.UNKNOWN_ARCHIVE_VALUE,
        _proxy.UNKNOWN_OBJECT_VALUE,
    }
)


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def _checked(value: Any, path: list[str]) -> Any:
    if is_unknown(value):
        raise UnknownValueError(value, path)
    return value


class KnownDict(dict):
    """A real dict (rules test ``isinstance(x, Mapping)``) that refuses to hand out unknowns."""

    def __init__(self, items: Mapping[str, Any], path: list[str]):
        super().__init__(items)
        self._path = path

    def __getitem__(self, key: Any) -> Any:
        return _checked(super().__getitem__(key), [*self._path, str(key)])

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self):  # type: ignore[override]
        return [self[k] for k in self]

    def items(self):  # type: ignore[override]
        return [(k, self[k]) for k in self]


class KnownList(list):
    """A real list (rules test ``isinstance(x, list)``) that refuses to hand out unknowns."""

    def __init__(self, items: Sequence[Any], path: list[str]):
        super().__init__(items)
        self._path = path

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return _checked(super().__getitem__(index), [*self._path, str(index)])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _raw_items(value: Mapping) -> Any:
    if isinstance(value, _DictProxy):
        value = value["__target"]  # the SDK's proxy would raise on reading an unknown
    return dict.items(value) if isinstance(value, dict) else [(k, value[k]) for k in value]


def _raw_elements(value: Sequence) -> Any:
    if isinstance(value, _ListProxy):
        value = value["__target"]
    return list.__iter__(value) if isinstance(value, list) else iter(value)


def known(value: Any, path: list[str] | None = None) -> Any:
    """Plain dicts/lists from engine properties (SDK proxies included); unknowns raise on read."""
    path = path or []
    if isinstance(value, Mapping):
        return KnownDict({k: known(v, [*path, str(k)]) for k, v in _raw_items(value)}, path)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        elements = enumerate(_raw_elements(value))
        return KnownList([known(v, [*path, str(i)]) for i, v in elements], path)
    return value


def resource_of(args: ResourceValidationArgs) -> rules.Resource:
    return rules.Resource(args.resource_type, args.name, known(args.props))


def stack_resources_of(args: StackValidationArgs) -> list[rules.Resource]:
    return [rules.Resource(r.resource_type, r.name, known(r.props)) for r in args.resources]


def resource_validation(rule: rules.ResourceRule) -> Callable:
    """The validate callback of one ResourceRule: runs rule.check on the resource's inputs."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != rule.resource_type:
            return
        resource = resource_of(args)
        for problem in rule.check(resource.props):
            report_violation(f"{resource.name}: {problem}", None)

    return validate


def objectives_validation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The stack validation: rules.objective_violations over every resource of the stack."""
    resources = stack_resources_of(args)
    records = [r for r in resources if r.type == rules.OBJECTIVES_TYPE]
    # The engine gives a stack policy each resource's *outputs*; a component's outputs are what it
    # passed to register_outputs, so an ObjectivesRecord that registers none reaches us empty.
    if records and not records[0].props.get("objectives"):
        report_violation(
            f"{records[0].name}: the ObjectivesRecord carries no 'objectives' output; the stack "
            "policy reads the objectives from the record's outputs (register_outputs)",
            None,
        )
        return
    for violation in rules.objective_violations(resources):
        report_violation(f"{violation.resource}: {violation.message}", None)


def semantic_validation(rule) -> Callable:
    """The validate callback of one AWS-semantics rule: runs it over the whole stack."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        stack = rules.aws_semantics.Stack(stack_resources_of(args))
        for resource, problem in rule.check(stack):
            report_violation(f"{resource}: {problem}", None)

    return validate


def build_policies() -> list[Policy]:
    """One mandatory ResourceValidationPolicy per RESOURCE_RULES entry, the objectives, and one
    mandatory StackValidationPolicy per AWS-semantics rule (SEMANTIC_RULES)."""
    declared = [
        (ResourceValidationPolicy, r.name, r.description, resource_validation(r))
        for r in rules.RESOURCE_RULES
    ]
    declared.append(
        (StackValidationPolicy, STACK_POLICY_NAME, STACK_POLICY_DESCRIPTION, objectives_validation)
    )
    declared += [
        (StackValidationPolicy, r.name, r.description, semantic_validation(r))
        for r in rules.SEMANTIC_RULES
    ]
    policies: list[Policy] = []
    seen: set[str] = set()
    for kind, name, description, validate in declared:
        if name in seen:
            raise ValueError(f"rule name {name!r} is used twice; policy names must be unique")
        seen.add(name)
        policies.append(
            kind(
                name=name,
                description=description,
                validate=validate,
                enforcement_level=EnforcementLevel.MANDATORY,
            )
        )
    return policies


def markdown_table() -> str:
    """The rule table of docs/policy.md, generated from the registry (a test keeps it in step)."""
    lines = ["| policy | applies to | checks | enforcement |", "|---|---|---|---|"]
    for rule in rules.RESOURCE_RULES:
        lines.append(f"| `{rule.name}` | `{rule.resource_type}` | {rule.description} | mandatory |")
    lines.append(
        f"| `{STACK_POLICY_NAME}` | the whole stack | {STACK_POLICY_DESCRIPTION} | mandatory |"
    )
    for rule in rules.SEMANTIC_RULES:
        lines.append(
            f"| `{rule.name}` | the whole stack (AWS semantics) | {rule.description}. | mandatory |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
