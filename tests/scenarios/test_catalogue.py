"""The catalogue as a whole: determinism, speed, texts, the command line."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.cli.scenario import run_catalogue
from tcplab.scenarios import CATALOGUE, names
from tcplab.scenarios.base import DEFAULT
from tcplab.scenarios.texts import documented, scenario_text

RUNS = [(n, DEFAULT) for n in CATALOGUE] + [
    (n, s.counterfactual) for n, s in CATALOGUE.items() if s.counterfactual is not None]
IDS = [f"{n}{''.join(sw.flags())}" for n, sw in RUNS]


@pytest.mark.parametrize(("name", "switches"), RUNS, ids=IDS)
def test_same_seed_same_json_trace_under_one_second(name, switches, trace_json):
    t0 = time.perf_counter()
    first = trace_json(name, switches, seed=7)
    assert time.perf_counter() - t0 < 1.0
    assert trace_json(name, switches, seed=7) == first


def test_the_scenarios_in_the_issue_order_and_none_shadowed():
    assert names()[:5] == ["handshake", "old-duplicate-syn", "isn-sync", "syn-retransmit",
                           "syn-flood"]
    # the fifteen of the first issue, then issue 16's handshake and queue scenarios
    first = ["handshake", "old-duplicate-syn", "isn-sync", "syn-retransmit", "syn-flood",
             "simultaneous-open", "close", "half-close", "close-combined",
             "simultaneous-close", "lost-final-ack", "stale-segment", "rst-in-time-wait",
             "port-reuse", "server-close-storm"]
    issue16 = ["isn-clock", "mss", "no-listen", "calls-return", "syn-in-established",
               "refused-vs-timeout", "backlog", "accept-overflow", "no-accept",
               # and its close, TIME-WAIT and failure scenarios
               "fin-wait-2", "fin-out-of-order", "close-wait-leak", "port-exhaustion",
               "tw-reuse", "tw-buckets", "linger0", "syn-in-time-wait", "host-crash",
               "process-crash", "peer-reboot", "cable-pull", "fastopen"]
    assert names()[:15] == first and set(issue16) <= set(names())
    # no two modules define a scenario of the same name (the later would hide the first)
    from tcplab.scenarios import (
        closing,
        connecting,
        fastopen,
        opening,
        outages,
        queues,
        teardown,
        timewait,
        tw_remedies,
    )
    modules = (opening, closing, timewait, connecting, fastopen, queues, teardown, tw_remedies, outages)
    assert sum(len(m.SCENARIOS) for m in modules) == len(names())


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_scenario_explained_in_both_languages(lang):
    assert sorted(documented()) == sorted(CATALOGUE)
    for name, sc in CATALOGUE.items():
        for field in ("summary", "watch", "demonstrates"):
            assert scenario_text(name, field, lang), (name, field)
        if sc.counterfactual is not None:
            assert scenario_text(name, "counterfactual", lang), name
    assert scenario_text("close", "summary", "zh") != scenario_text("close", "summary", "en")


def test_cli_list_and_run_json():
    runner = CliRunner()
    res = runner.invoke(cli, ["scenario", "list"])
    assert res.exit_code == 0 and "stale-segment" in res.output
    res = runner.invoke(cli, ["scenario", "run", "lost-final-ack", "--time-wait", "0", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert doc["meta"]["switches"]["time_wait"] == 0.0
    assert doc["meta"]["outcome"]["server_closed_cause"] == "RST in LAST-ACK"


def test_cli_run_prints_diagram_and_explanations_in_chinese():
    res = CliRunner().invoke(cli, ["scenario", "run", "old-duplicate-syn", "--lang", "zh"])
    assert res.exit_code == 0
    assert "观察要点" in res.output and "RST" in res.output


def test_cli_unknown_scenario_is_one_clear_line():
    res = CliRunner().invoke(cli, ["scenario", "run", "nope"])
    assert res.exit_code != 0
    assert "unknown scenario 'nope'" in res.output and "handshake" in res.output


def test_demo_all_runs_the_catalogue(capsys):
    run_catalogue(seed=1, lang="en", json_out=True, width=100)
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == len(RUNS)
