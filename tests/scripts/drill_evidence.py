"""The drill's evidence in tests: results of the real shape, built with the drill's own model
(scripts/checks/drill/model.py) as a run fills it (steps relative to the failure instant, the
verdict from ``finish()``), for tests that must not run a whole drill; and how a test reads
``report.html`` in the ``browser`` fixture (tests/conftest.py), for those and for the real runs
of tests/integration/test_drill.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from selenium.webdriver.common.by import By

from scripts.checks.drill.model import DataCheck, DrillReport, ScenarioResult, Step
from scripts.checks.drill.timescale import Detection, Mechanisms

SCALE = 100.0


def _data(promised: int, missing: int = 0) -> DataCheck:
    return DataCheck(
        point="lsn 0/3000060",
        promised=promised,
        back=promised - missing,
        missing=missing,
        stale=0,
        wrong=0,
        after_point=0,
        unknown=0,
        uncertain=1,
        expected_checksum="a" * 64,
        recovered_checksum="a" * 64 if not missing else "b" * 64,
        verified=not missing,
        examples={"missing": [str(i) for i in range(missing)][:5]},
    )


def scenario(name: str, *, rto_s: float, missing: int = 0) -> ScenarioResult:
    result = ScenarioResult(
        name=name,
        title=name.replace("-", " ").capitalize(),
        data_class="critical",
        dataset="database",
        incident=f"{name} <b>happens</b>",  # markup in a record is shown, never interpreted
        recovery="restore & replay",
        rpo_objective_s=900 / SCALE,
        rto_objective_s=3600 / SCALE,
        declared_rpo_s=900,
        declared_rto_s=3600,
        rpo_s=1.25,
        data=_data(5000, missing),
        recovery_point={"kind": "lsn", "value": "0/3000060", "how": "listed"},
    )
    steps = [
        ("healthy platform", "setup", -20.0, -12.0),
        ("write load", "load", -11.2, -0.01),
        ("incident: the host is lost", "failure", 0.0, 0.0),
        ("detection: alarm fires", "detection", 0.0, 0.73),
        ("fence the old primary", "fence", 1.8, 1.9),
        ("promote", "promote", 1.9, 2.1),
        ("switch DNS", "dns", 2.1, 2.4),
        ("validate", "validate", 2.4, rto_s),
        ("verify every write", "verify", rto_s + 0.2, rto_s + 0.3),
    ]
    result.steps = [Step(n, p, a, b) for n, p, a, b in steps]  # relative to the failure
    result.rto_s = rto_s
    result.finish()  # the model's own verdict
    return result


DECLARED = Mechanisms(
    archive_timeout_s=300,
    push_timeout_s=60,
    detection=Detection("Route 53 CLOUDWATCH_METRIC health check", 60, 1, 60, 2, "primary-down"),
    dns_ttl_s=60,
    backup_interval_s={"full": 604800, "diff": 86400},
    sources={"archive_timeout_s": "Pulumi.prod.yaml"},
)


def drill_report(*scenarios: ScenarioResult) -> DrillReport:
    scaled = DECLARED.scaled(SCALE)
    return DrillReport(
        stack="prod",
        started_at=dt.datetime(2026, 12, 1, 17, 30, tzinfo=dt.UTC).isoformat(),
        time_scale=SCALE,
        objectives={"critical": {"rpo_s": 9.0, "rto_s": 36.0}},
        mechanisms={
            "declared": DECLARED.to_record(),
            "scaled": scaled.to_record(),
            "effective": {
                "archive_timeout_s": scaled.effective_archive_timeout_s,
                "push_timeout_s": scaled.effective_push_timeout_s,
            },
        },
        simulated=["moto stands for AWS"],
        scenarios=list(scenarios),
        drill_s=61.5,
        setup_s=4.2,
        teardown_s=1.1,
    )


def full_screenshot(browser, path: Path) -> None:
    """The whole page, not the first screenful (chromedriver shoots the window)."""
    size = browser.get_window_size()
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], full + 100)
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(size["width"], size["height"])


def open_report(browser, path: Path) -> dict:
    """Open ``report.html`` from disk as a user does; what they see, and what the console said."""
    browser.get_log("browser")  # drop what an earlier page logged
    browser.get(path.resolve().as_uri())
    browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")  # a chart was drawn
    return {
        "text": browser.find_element(By.TAG_NAME, "body").text,
        "errors": [e for e in browser.get_log("browser") if e["level"] == "SEVERE"],
        "charts": len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")),
        "fetched": browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        ),
        "sections": {
            s.get_attribute("data-scenario"): s.text
            for s in browser.find_elements(By.CSS_SELECTOR, "section.scenario")
        },
    }
