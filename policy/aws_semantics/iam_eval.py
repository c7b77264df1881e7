"""A small IAM policy evaluator: does this policy let this principal do this, with this context?

Enough of the IAM policy language to decide the questions the AWS-semantics rules ask (IAM User
Guide, "Policy evaluation logic" and "IAM JSON policy elements: Condition operators",
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins; otherwise some Allow statement must match the principal, the action, the
resource and every condition. A condition on a key the request does not carry is false for the
positive operators (and true for the negated ones), which is exactly why a condition a service
does not send denies that service.

Standard library only. Rules pass plain dicts (policy documents parsed from JSON).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import Any

ALLOW, DENY = "allow", "deny"


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def policy_doc(value: Any) -> dict:
    """A policy document from a JSON string or a dict; {} when it is neither."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(value) if isinstance(value, Mapping) else {}


def statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = doc.get("Statement") or []
    return [found] if isinstance(found, Mapping) else list(found)


def _like(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _principal_matches(spec: Any, principal: Mapping[str, str] | None, account: str) -> bool:
    if principal is None:
        return True  # an identity policy: the principal is whoever holds it
    if spec == "*":
        return True
    for kind, values in (spec or {}).items():
        for value in as_list(values):
            if value == "*":
                return True
            if kind == "AWS":
                # The account (root or bare id) only delegates to IAM; handled by kms_allows.
                if value in (account, f"arn:aws:iam::{account}:root"):
                    continue
                if principal.get("AWS") == value:
                    return True
            elif principal.get(kind) == value:
                return True
    return False


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_like(a, action, case=False) for a in as_list(statement["NotAction"]))
    return any(_like(a, action, case=False) for a in as_list(statement.get("Action")))


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_like(r, resource) for r in as_list(statement["NotResource"]))
    return any(_like(r, resource) for r in as_list(statement.get("Resource", "*")))


def _compare(operator: str, expected: list, actual: str | None) -> bool:
    base = operator.removesuffix("IfExists")
    if actual is None:
        if operator.endswith("IfExists"):
            return True
        return base.startswith(("StringNot", "ArnNot"))
    values = [str(v) for v in expected]
    if base in ("StringEquals", "ArnEquals"):
        return actual in values
    if base == "StringEqualsIgnoreCase":
        return actual.lower() in [v.lower() for v in values]
    if base in ("StringLike", "ArnLike"):
        return any(_like(v, actual) for v in values)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return actual not in values
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(_like(v, actual) for v in values)
    if base == "Bool":
        return actual.lower() in [v.lower() for v in values]
    if base.startswith("Numeric"):
        try:
            number, limits = float(actual), [float(v) for v in values]
        except ValueError:
            return False
        ops = {
            "NumericEquals": lambda a, b: a == b,
            "NumericNotEquals": lambda a, b: a != b,
            "NumericLessThan": lambda a, b: a < b,
            "NumericLessThanEquals": lambda a, b: a <= b,
            "NumericGreaterThan": lambda a, b: a > b,
            "NumericGreaterThanEquals": lambda a, b: a >= b,
        }
        return base in ops and any(ops[base](number, limit) for limit in limits)
    return False  # an operator we do not model never grants


def conditions_hold(block: Mapping[str, Any] | None, context: Mapping[str, str]) -> bool:
    """Every operator and key of a Condition block holds for ``context`` (keys case-insensitive)."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, tests in (block or {}).items():
        op = operator.split(":", 1)[-1]  # ForAnyValue:/ForAllValues: on single values
        for key, expected in (tests or {}).items():
            if not _compare(op, as_list(expected), lowered.get(key.lower())):
                return False
    return True


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    return {
        key.lower() for tests in (statement.get("Condition") or {}).values() for key in tests or {}
    }


def decide(
    doc: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: Mapping[str, str] | None = None,
    account: str = "",
) -> str | None:
    """ALLOW, DENY or None (no statement applies) for one request against one policy."""
    context = context or {}
    verdict = None
    for statement in statements(doc):
        if (
            principal is not None
            and "Principal" not in statement
            and "NotPrincipal" not in (statement)
        ):
            continue
        if "Principal" in statement and not _principal_matches(
            statement["Principal"], principal, account
        ):
            continue
        if not (_action_matches(statement, action) and _resource_matches(statement, resource)):
            continue
        if not conditions_hold(statement.get("Condition"), context):
            continue
        if statement.get("Effect") == "Deny":
            return DENY
        if statement.get("Effect") == "Allow":
            verdict = ALLOW
    return verdict


def enables_iam(key_doc: Mapping[str, Any], account: str) -> bool:
    """The key policy delegates to IAM: the account root may use the key (KMS Developer Guide,
    "Default key policy", https://docs.aws.amazon.com/kms/latest/developerguide/
    key-policy-default.html#key-policy-default-allow-root-enable-iam)."""
    for statement in statements(key_doc):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        principals = (statement.get("Principal") or {}) if statement.get("Principal") != "*" else {}
        roots = as_list(principals.get("AWS")) if isinstance(principals, Mapping) else []
        if any(p in (account, f"arn:aws:iam::{account}:root") for p in roots):
            if any(a in ("kms:*", "*") for a in as_list(statement.get("Action"))):
                return True
    return False


def kms_allows(
    key_doc: Mapping[str, Any],
    principal: Mapping[str, str],
    action: str,
    key_arn: str,
    account: str,
    context: Mapping[str, str] | None = None,
    identity_docs: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """Does KMS let ``principal`` call ``action`` on the key?

    Either the key policy allows the principal itself, or it enables IAM and one of the
    principal's own IAM policies (``identity_docs``) allows it; an explicit Deny in any of them
    refuses (KMS Developer Guide, "Determining access to an AWS KMS key").
    """
    key, identity = _verdicts(key_doc, principal, action, key_arn, account, context, identity_docs)
    if key == DENY or DENY in identity:
        return False
    if key == ALLOW:
        return True
    return enables_iam(key_doc, account) and ALLOW in identity


def _verdicts(resource_doc, principal, action, resource, account, context, identity_docs):
    """(the resource policy's verdict, each identity policy's verdict) for one request."""
    context = context or {}
    return decide(resource_doc, action, resource, context, principal, account), [
        decide(d, action, resource, context, None, account) for d in identity_docs
    ]


def resource_allows(
    resource_doc: Mapping[str, Any],
    principal: Mapping[str, str],
    action: str,
    resource: str,
    account: str,
    context: Mapping[str, str] | None = None,
    identity_docs: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """A same-account request against a resource policy (bucket, topic): the resource policy or
    the principal's identity policies allow it, and neither denies (IAM User Guide, "Policy
    evaluation logic", same-account requests)."""
    own, identity = _verdicts(
        resource_doc, principal, action, resource, account, context, identity_docs
    )
    verdicts = [own, *identity]
    return DENY not in verdicts and ALLOW in verdicts
