"""policy.rules.backup_coverage: AWS Backup coverage per class, and the whole-hour audit gap."""

from __future__ import annotations

import pytest

from policy import backup_coverage as coverage
from policy import rules
from scripts.local.evaluate import Evaluation, evaluate_stack

OBJECTIVES = {
    "classes": {
        "critical": {"rpo_s": 900, "rto_s": 3600, "retention_days": 365},
        "operational": {"rpo_s": 86400, "rto_s": 86400, "retention_days": 30},
    },
    "regions": {"primary": "us-east-1", "dr": "us-west-2", "third": "eu-west-1"},
}


def as_resources(ev: Evaluation) -> list[rules.Resource]:
    return [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]


def plan(cls: str, *, continuous=True, copy=True) -> list[rules.Resource]:
    copies = [{"destinationVaultArn": "arn:dr", "lifecycle": {"deleteAfter": 8}}] if copy else []
    rule_list = [{"ruleName": "hourly", "lifecycle": {"deleteAfter": 8.0}, "copyActions": copies}]
    if continuous:
        rule_list.append(
            {
                "ruleName": "continuous",
                "enableContinuousBackup": True,
                "lifecycle": {"deleteAfter": 7.0},
                "copyActions": copies,
            }
        )
    return [
        rules.Resource(
            coverage.BACKUP_PLAN_TYPE,
            f"b-{cls}",
            {"tags": {"backup-class": cls}, "rules": rule_list},
        ),
        rules.Resource(
            coverage.BACKUP_SELECTION_TYPE,
            f"b-{cls}-selection",
            {"selectionTags": [{"type": "STRINGEQUALS", "key": "backup-class", "value": cls}]},
        ),
    ]


def framework(cls: str, value: str, unit: str = "hours") -> rules.Resource:
    return rules.Resource(
        coverage.BACKUP_FRAMEWORK_TYPE,
        f"b-{cls}-framework",
        {
            "controls": [
                {
                    "name": coverage.BACKUP_AGE_CONTROL,
                    "inputParameters": [
                        {"name": "recoveryPointAgeUnit", "value": unit},
                        {"name": "recoveryPointAgeValue", "value": value},
                    ],
                    "scope": {"tags": {"backup-class": cls}},
                }
            ]
        },
    )


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_declared_stacks_are_covered_and_name_the_gap_mechanisms(stack, request):
    ev: Evaluation = request.getfixturevalue(stack)
    resources = as_resources(ev)
    coverage = rules.backup_coverage(resources, rules.objectives_of(resources))
    assert set(coverage) == {"critical", "important", "operational"}
    assert all(c["problems"] == [] for c in coverage.values())
    critical = coverage["critical"]
    assert critical["rpo_hours_checked"] == 1
    assert "whole hours (1 h)" in critical["gap_note"] and "15 min" in critical["gap_note"]
    assert "continuous backup" in critical["gap_note"]
    assert "creator-audio (worst case 15 min)" in critical["gap_note"]  # RTC buckets
    assert any("every rule copies to the DR vault" in m for m in critical["mechanisms"])
    assert coverage["important"]["gap_note"] is None
    assert coverage["operational"]["rpo_hours_checked"] == 24


def test_a_2h_critical_rpo_has_no_gap_to_cover():
    resources = as_resources(evaluate_stack("prod", overrides={"criticalRpo": "2h"}))
    coverage = rules.backup_coverage(resources, rules.objectives_of(resources))
    assert coverage["critical"]["rpo_hours_checked"] == 2
    assert coverage["critical"]["gap_note"] is None


def test_compliant_synthetic_class():
    resources = [*plan("critical"), framework("critical", "1")]
    found = rules.backup_coverage(
        resources, {"classes": {"critical": OBJECTIVES["classes"]["critical"]}}
    )
    assert found["critical"]["problems"] == []
    assert found["critical"]["gap_note"].endswith(
        "continuous backup (PITR to the second, in-region)"
    )


def test_gap_with_nothing_covering_it_is_a_problem():
    resources = [*plan("critical", continuous=False), framework("critical", "1")]
    found = rules.backup_coverage(
        resources, {"classes": {"critical": OBJECTIVES["classes"]["critical"]}}
    )
    assert "nothing declared covers the 15 min RPO" in found["critical"]["gap_note"]
    assert found["critical"]["problems"] == [found["critical"]["gap_note"]]


def test_missing_plan_copy_and_audit_are_reported():
    resources = [*plan("critical", copy=False)]
    found = rules.backup_coverage(resources, OBJECTIVES)
    critical = found["critical"]
    assert critical["rpo_hours_checked"] is None
    assert "does not check the 15 min RPO" in critical["gap_note"]
    assert any("without a DR copy: hourly, continuous" in p for p in critical["problems"])
    assert found["operational"]["problems"] == ["no AWS Backup plan for backup-class=operational"]


def test_age_in_days_is_converted_to_hours():
    resources = [*plan("operational"), framework("operational", "1", unit="days")]
    found = rules.backup_coverage(resources, OBJECTIVES)
    assert found["operational"]["rpo_hours_checked"] == 24
    assert found["operational"]["gap_note"] is None
