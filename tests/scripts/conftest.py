"""Fixtures shared by the script tests."""

from __future__ import annotations

import pytest

from scripts.local.recovery_platform import WebhookReceiver
from tests.scripts.dr_cloud import MotoCloud


@pytest.fixture(scope="module")
def moto():
    """moto's server on 127.0.0.1 for one test module (reset it where a test needs it empty)."""
    cloud = MotoCloud()
    yield cloud
    cloud.stop()


@pytest.fixture(scope="module")
def receiver():
    """A webhook receiver on 127.0.0.1 (chat relay, pager, stakeholders) for one test module."""
    server = WebhookReceiver().start()
    yield server
    server.stop()
