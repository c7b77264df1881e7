"""The status page as a user sees it: headless Chromium (Debian's chromium + chromedriver, driven
by selenium) loads the page the publisher wrote into the home copy on moto's S3 server, at three
points of an incident. What is asserted is the *visible* text (selenium's ``.text``), the way a
user reads it, and the page's times, which must be UTC whatever the viewer's zone (the tests run
in America/St_Johns).

The browser goes through LocalEdge (scripts/local/recovery_platform.py), which does for it what
the distribution does: a signed GetObject from the home copy, the failover copy when the home
copy fails. The bytes and Content-Type are the objects exactly as the publisher stored them.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from selenium.webdriver.common.by import By

from components.objectives import parse_objectives
from components.services import parse_catalogue
from scripts.dataops.incident import IncidentPublisher
from scripts.dataops.status_page import StatusPageWriter
from scripts.local.evaluate import read_stack_config
from scripts.local.recovery_platform import LocalEdge, _versioned_bucket

HOME, FAILOVER = "us-west-2", "eu-west-1"
OUTPUTS = {
    "bucketNames": {HOME: "status-page-home", FAILOVER: "status-page-failover"},
    "homeRegion": HOME,
    "failoverRegion": FAILOVER,
    "cacheTtlS": 10,
    "url": "https://d111111abcdef8.cloudfront.net/",
}
# 06:30 UTC on the morning the clocks change in St. John's is 04:00 local: a page that showed
# local time would say 04:00 or 03:00.
T0 = dt.datetime(2025, 3, 9, 6, 30, tzinfo=dt.UTC)


@pytest.fixture
def incident(moto):
    moto.reset()
    for region, bucket in OUTPUTS["bucketNames"].items():
        _versioned_bucket(moto.client("s3", region), bucket, region)
    raw = read_stack_config("prod")
    objectives = parse_objectives(raw, "prod")
    catalogue = parse_catalogue(raw, objectives)
    now = {"t": T0}
    publisher = IncidentPublisher(
        stack="prod",
        region=HOME,
        catalogue=catalogue,
        page=StatusPageWriter(moto, OUTPUTS),
        notifier=None,
        clock=lambda: now["t"],
    )
    return publisher, catalogue, now


@pytest.fixture
def edge(moto):
    server = LocalEdge(moto, OUTPUTS).start()
    yield server
    server.stop()


def _load(browser, edge) -> dict:
    # The page says max-age=10, and the browser honours it: a new query string is a new URL for
    # the browser's cache (the edge, like the distribution's cache policy, ignores it).
    browser.get(f"{edge.url}?load={time.monotonic_ns()}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#services tbody tr")
    return {
        "title": browser.title,
        "banner": browser.find_element(By.ID, "overall").text,
        "rows": {
            r.get_attribute("data-service"): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in rows
            if r.is_displayed()
        },
        "updates": [u.text for u in browser.find_elements(By.CSS_SELECTOR, "#incident .update")],
        "footer": browser.find_element(By.TAG_NAME, "footer").text,
    }


def test_a_user_sees_the_incident_unfold(incident, browser, moto, edge):
    publisher, catalogue, now = incident
    critical, important = catalogue.tiers[0], catalogue.tiers[1]

    # 1. the incident opens: everything is down
    deadline = (T0 + dt.timedelta(hours=1)).isoformat()
    publisher.opened("prod-20250309T063000Z", T0, deadline)
    page = _load(browser, edge)
    assert page["title"] == "Platform status"
    assert page["banner"] == "Major outage: we are restoring service"
    assert {name: cells[1] for name, cells in page["rows"].items()} == {
        s.name: "Outage" for s in catalogue.services
    }
    assert page["rows"]["user-auth"][0] == "Sign-in and accounts"
    assert len(page["updates"]) == 1
    assert page["updates"][0].startswith(
        "09 Mar 2025 06:30 UTC Investigating: Some of our services"
    )
    assert "Next update by 09 Mar 2025 07:30 UTC" in page["updates"][0]
    assert "Last updated 09 Mar 2025 06:30 UTC." in page["footer"]

    # 2. forty minutes in: the critical tier is back, the important tier is being restored
    now["t"] = T0 + dt.timedelta(minutes=40)
    publisher.tier_started(critical.name, critical.rto_s, deadline, critical.services, "first")
    for service in critical.services:
        publisher.service_result(service, True, 2400, "")
    publisher.tier_result(critical.name, True, 2400, critical.rto_s, critical.services)
    important_by = (T0 + dt.timedelta(hours=4)).isoformat()
    publisher.tier_started(important.name, important.rto_s, important_by, important.services, "ok")
    page = _load(browser, edge)
    assert page["banner"] == "Partial outage: some services are still being restored"
    assert page["rows"]["user-auth"][1:] == ["Operational", ""]
    assert page["rows"]["music-generation"][1] == "Operational"
    assert page["rows"]["social-features"][1:] == ["Recovering", "09 Mar 2025 10:30 UTC"]
    assert page["rows"]["analytics"][1:] == ["Outage", ""]
    assert page["updates"][0].startswith("09 Mar 2025 07:10 UTC Recovering: We are now restoring")
    assert "Sign-in and accounts, Music generation: back." in " ".join(page["updates"])
    assert len(page["updates"]) == 4  # newest first, nothing lost

    # 3. resolved: all operational, the last word on top
    now["t"] = T0 + dt.timedelta(hours=3)
    for tier in catalogue.tiers[1:]:
        for service in tier.services:
            publisher.service_result(service, True, 10800, "")
    publisher.resolved(True, "Every service is back.")
    page = _load(browser, edge)
    assert page["banner"] == "All systems operational"
    assert {cells[1] for cells in page["rows"].values()} == {"Operational"}
    assert page["updates"][0].startswith("09 Mar 2025 09:30 UTC Resolved: Every service is back.")
    assert set(edge.served_from) == {HOME}
    # the JSON beside it says the same
    body = moto.client("s3", HOME).get_object(
        Bucket=OUTPUTS["bucketNames"][HOME], Key="status.json"
    )
    doc = json.loads(body["Body"].read())
    assert doc["overall"]["status"] == "operational" and doc["incident"]["status"] == "resolved"
    assert (
        body["ContentType"] == "application/json" and body["CacheControl"] == "public, max-age=10"
    )


def test_with_the_home_copy_gone_the_page_is_written_to_the_failover_copy(
    incident, browser, moto, edge
):
    """The copy CloudFront fails over to gets the update when the home region does not answer."""
    publisher, _, _ = incident
    s3 = moto.client("s3", HOME)
    s3.delete_bucket(Bucket=OUTPUTS["bucketNames"][HOME])
    record = publisher.opened("prod-x", T0, T0.isoformat())
    assert record["page"]["written_to"] == FAILOVER and record["page"]["ok"] is True
    assert HOME in record["page"]["errors"]
    page = _load(browser, edge)
    assert page["banner"] == "Major outage: we are restoring service"
    assert edge.served_from[-1] == FAILOVER  # the home copy answered 404: the group failed over


def test_no_copy_answers_is_reported_not_hidden(incident, moto):
    publisher, _, _ = incident
    for region, bucket in OUTPUTS["bucketNames"].items():
        moto.client("s3", region).delete_bucket(Bucket=bucket)
    record = publisher.opened("prod-x", T0, T0.isoformat())
    assert record["page"]["ok"] is False and record["page"]["written_to"] is None
    assert set(record["page"]["errors"]) == {HOME, FAILOVER}
