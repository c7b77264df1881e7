"""Shared fixtures. Stack evaluations are cached per session: the program is deterministic."""

from __future__ import annotations

import functools

import pytest

from scripts.evaluate import Evaluation, evaluate_stack


@functools.cache
def _cached(stack: str) -> Evaluation:
    return evaluate_stack(stack)


@pytest.fixture(scope="session")
def prod() -> Evaluation:
    return _cached("prod")


@pytest.fixture(scope="session")
def dr() -> Evaluation:
    return _cached("dr")
