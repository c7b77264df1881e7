"""AWS Backup coverage per class (BackupPlan component): the declared protection, the RPO its audit
checks, and what covers the rest when AWS audits in whole hours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

if __package__:
    from .rules import Resource, _as_list, _get, _whole, by_name, fmt_s, mechanisms
else:  # pragma: no cover - the policy host loads modules from inside policy/
    from rules import (  # type: ignore[no-redef]
        Resource,
        _as_list,
        _get,
        _whole,
        by_name,
        fmt_s,
        mechanisms,
    )


BACKUP_PLAN_TYPE = "aws:backup/plan:Plan"


BACKUP_SELECTION_TYPE = "aws:backup/selection:Selection"


BACKUP_FRAMEWORK_TYPE = "aws:backup/framework:Framework"


BACKUP_AGE_CONTROL = "BACKUP_LAST_RECOVERY_POINT_CREATED"


def _class_tag(props: Mapping[str, Any]) -> str | None:
    return (props.get("tags") or {}).get("backup-class")


def _audited_hours(resources: Sequence[Resource], data_class: str) -> int | None:
    for framework in resources:
        if framework.type != BACKUP_FRAMEWORK_TYPE:
            continue
        for control in _as_list(framework.props.get("controls")):
            scope = _get(control, "scope", "tags", default={})
            if control.get("name") != BACKUP_AGE_CONTROL or scope.get("backup-class") != data_class:
                continue
            params = {
                p.get("name"): p.get("value") for p in _as_list(control.get("inputParameters"))
            }
            value = int(float(params.get("recoveryPointAgeValue", 24)))
            return value * 24 if params.get("recoveryPointAgeUnit") == "days" else value
    return None


def _describe_rule(rule: Mapping[str, Any]) -> str:
    life = _whole(rule.get("lifecycle") or {})
    kept = f"kept {life.get('deleteAfter', '?')} d"
    if life.get("coldStorageAfter"):
        kept = f"cold after {life['coldStorageAfter']} d, {kept}"
    kind = "continuous backup (PITR)" if rule.get("enableContinuousBackup") else rule["ruleName"]
    return f"{kind}, {kept}"


def backup_coverage(resources: Sequence[Resource], objectives: Mapping) -> dict[str, dict]:
    """Per class: AWS Backup's declared protection, the RPO its audit checks, and any gap.

    Returns class -> {mechanisms: [str], rpo_hours_checked: int | None, gap_note: str | None,
    problems: [str]}. ``rpo_hours_checked`` is the age BACKUP_LAST_RECOVERY_POINT_CREATED checks
    for the class (None: not audited). AWS audits whole hours only, so when the objective is finer
    (critical: 15 min), ``gap_note`` names what covers the rest: continuous backup in the class's
    plan (in-region, to the second) and every other declared mechanism whose worst-case loss on
    region loss is within the objective (S3 RTC, WAL archiving...), or says nothing does.
    """
    other = mechanisms(resources, objectives)
    named = by_name(resources)
    coverage: dict[str, dict] = {}
    for name, objective in objectives["classes"].items():
        rpo_s = int(objective["rpo_s"])
        plans = [r for r in resources if r.type == BACKUP_PLAN_TYPE and _class_tag(r.props) == name]
        found, problems = [], []
        continuous = False
        for plan in plans:
            rules = _as_list(plan.props.get("rules"))
            continuous |= any(r.get("enableContinuousBackup") for r in rules)
            found.append(f"AWS Backup plan {plan.name}: " + "; ".join(map(_describe_rule, rules)))
            uncopied = [r["ruleName"] for r in rules if not r.get("copyActions")]
            if uncopied:
                problems.append(f"{plan.name}: rules without a DR copy: {', '.join(uncopied)}")
            else:
                found.append(f"{plan.name}: every rule copies to the DR vault")
            selection = named.get(f"{plan.name}-selection")
            tags = _as_list(getattr(selection, "props", {}).get("selectionTags"))
            if any(t.get("key") == "backup-class" and t.get("value") == name for t in tags):
                found.append(f"{plan.name}: selects resources tagged backup-class={name}")
            else:
                problems.append(f"{plan.name}: no selection on backup-class={name}")
        if not plans:
            problems.append(f"no AWS Backup plan for backup-class={name}")

        checked = _audited_hours(resources, name)
        gap_note = None
        if checked is None:
            gap_note = f"AWS Backup Audit Manager does not check the {fmt_s(rpo_s)} RPO"
        elif checked * 3600 > rpo_s:
            covers = []
            if continuous:
                covers.append("continuous backup (PITR to the second, in-region)")
            covers += [
                f"{m.dataset} (worst case {fmt_s(m.rpo_s)})"
                for m in other
                if m.data_class == name and m.rpo_s is not None and m.rpo_s <= rpo_s
            ]
            audited = f"AWS audits recovery-point age in whole hours ({checked} h)"
            if covers:
                gap_note = f"{audited}; the {fmt_s(rpo_s)} RPO is covered by: " + "; ".join(covers)
            else:
                gap_note = f"{audited}; nothing declared covers the {fmt_s(rpo_s)} RPO"
                problems.append(gap_note)
        coverage[name] = {
            "mechanisms": found,
            "rpo_hours_checked": checked,
            "gap_note": gap_note,
            "problems": problems,
        }
    return coverage
