"""Shared fixtures. Stack evaluations are cached per session: the program is deterministic."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import time

import pytest

from scripts.local.evaluate import Evaluation, evaluate_stack

# `make test` sets TZ (Makefile: TEST_TZ); a bare `pytest` runs in the same non-UTC zone, so no test
# passes only because the machine happens to be on UTC.
os.environ.setdefault("TZ", "America/St_Johns")
time.tzset()
# drctl's local state (journals, the audit cache: scripts/locations.py) goes to a throwaway
# directory, never the tester's ~/.local/state/drctl.
if "DRCTL_STATE_DIR" not in os.environ:
    os.environ["DRCTL_STATE_DIR"] = tempfile.mkdtemp(prefix="drctl-test-state-")
    atexit.register(shutil.rmtree, os.environ["DRCTL_STATE_DIR"], True)


@functools.cache
def _cached(stack: str) -> Evaluation:
    return evaluate_stack(stack)


@pytest.fixture(scope="session")
def prod() -> Evaluation:
    return _cached("prod")


@pytest.fixture(scope="session")
def dr() -> Evaluation:
    return _cached("dr")


@pytest.fixture
def declared_names(monkeypatch) -> list[str]:
    """The name of every resource the program registers from now on (empty: nothing declared)."""
    from scripts.local.evaluate import RecordingMocks

    declared: list[str] = []
    original = RecordingMocks.new_resource

    def spy(self, args):
        declared.append(args.name)
        return original(self, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", spy)
    return declared


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's chromium + chromedriver) driven by selenium, for pages a user
    opens: the status page, the drill's HTML report. The browser's console is kept
    (``driver.get_log("browser")``) so a test can assert that a page logged no error."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} is missing: `make sysdeps` installs chromium and chromium-driver")
    profile = tempfile.mkdtemp(prefix="drctl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
