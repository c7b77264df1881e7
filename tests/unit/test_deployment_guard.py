"""The shipped example stacks are refused by a real engine's update, before any resource.

The program is the real ``__main__.py`` evaluated under Pulumi's mocks; the "real engine" is what
``running_on_real_engine`` reports, so the refusal is driven by swapping in the gRPC monitor type a
real ``pulumi up`` uses (no engine runs here).
"""

from __future__ import annotations

import grpc
import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import resource_pb2_grpc

from components import deployment_guard
from scripts.local.evaluate import evaluate_stack


def test_the_monitor_of_a_real_engine_is_recognised_and_mocks_are_not(monkeypatch):
    evaluate_stack("prod")
    assert deployment_guard.running_on_real_engine() is False
    channel = grpc.insecure_channel("127.0.0.1:9")  # never dialled: a stub connects lazily
    try:
        stub = resource_pb2_grpc.ResourceMonitorStub(channel)
        monkeypatch.setattr(pulumi_settings, "get_monitor", lambda: stub)
        assert deployment_guard.running_on_real_engine() is True
    finally:
        channel.close()


def test_an_update_of_the_example_stack_on_a_real_engine_exits_2_before_any_resource(
    monkeypatch, capsys, declared_names
):
    monkeypatch.setattr(deployment_guard, "running_on_real_engine", lambda: True)
    with pytest.raises(SystemExit) as raised:
        evaluate_stack("prod")
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "platform-dr:example = True is not valid" in err and "before `pulumi up`" in err
    assert declared_names == []


def test_a_preview_of_the_example_stack_on_a_real_engine_is_allowed_with_a_warning(
    monkeypatch, declared_names
):
    warnings: list[str] = []
    monkeypatch.setattr(deployment_guard, "running_on_real_engine", lambda: True)
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    evaluate_stack("prod")
    assert declared_names and any("a preview only" in w for w in warnings)


def test_the_offline_evaluation_of_the_example_stack_is_not_refused(declared_names):
    evaluate_stack("dr")
    assert declared_names
