"""IAM documents every component needs: one place knows how an AWS service is trusted."""

from __future__ import annotations

import json
from collections.abc import Sequence


def service_trust_policy(service: str, account_id: str | None = None) -> str:
    """Let ``service`` (e.g. "s3.amazonaws.com") assume a role.

    With ``account_id``, only on behalf of that account (aws:SourceAccount), which stops the
    confused-deputy case where the service acts for another account. EC2 instance roles leave it
    out: EC2 does not send aws:SourceAccount when an instance assumes its profile's role.
    """
    statement: dict = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def deny_insecure_transport(action: str, resource: str | list[str]) -> dict:
    """A policy statement refusing ``action`` on ``resource`` over plain HTTP (any principal)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def source_arns(arns: Sequence[str]) -> str | list[str]:
    """An AWS:SourceArn condition value: one ARN as a string (as documented), more as a list."""
    ordered = sorted(arns)
    return ordered[0] if len(ordered) == 1 else ordered
