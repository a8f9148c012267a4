"""Helpers: run a scenario and read its outcome back from the JSON trace only."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from tcplab.scenarios import get
from tcplab.scenarios.base import DEFAULT, Switches, execute
from tcplab.trace import load_json


def json_trace(name: str, switches: Switches = DEFAULT, seed: int = 1) -> str:
    result = execute(get(name), seed, switches)
    buf = io.StringIO()
    result.net.trace.dump_json(buf, result.meta)
    return buf.getvalue()


def outcome_from_json(name: str, switches: Switches = DEFAULT, seed: int = 1) -> dict[str, Any]:
    """Run, print the trace as JSON, load it back, compute the outcome from it."""
    events = load_json(io.StringIO(json_trace(name, switches, seed)))
    return get(name).outcome(events)


@pytest.fixture
def outcome() -> Callable[..., dict[str, Any]]:
    return outcome_from_json


@pytest.fixture
def trace_json() -> Callable[..., str]:
    return json_trace
