"""`tcplab demo`: the main job runs, and bad options get one clear line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True,
                          text=True, timeout=60)


def test_demo_runs_a_whole_connection_life() -> None:
    res = tcplab("demo")
    assert res.returncode == 0, res.stderr
    assert "[TIME-WAIT]" in res.stdout and "final states: client: CLOSED, server: CLOSED" in res.stdout


def test_demo_json_is_the_trace_schema() -> None:
    doc = json.loads(tcplab("demo", "--json").stdout)
    assert doc["schema"] == "tcplab-trace/1"
    kinds = {e["kind"] for e in doc["events"]}
    assert {"segment", "state", "timer", "app"} <= kinds


@pytest.mark.parametrize(("args", "says"), [
    (["--delay", "-1"], "--delay"),
    (["--msl", "0"], "--msl"),
    (["--msl", "0.01"], "longer than the one-way delay"),
    (["--lang", "fr"], "--lang"),
])
def test_bad_options_get_one_clear_error(args: list[str], says: str) -> None:
    res = tcplab("demo", *args)
    assert res.returncode == 2
    assert says in res.stderr
    assert "Traceback" not in res.stderr
