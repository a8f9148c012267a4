"""Every event every scenario records has the shape the typed vocabulary gives its kind."""

from __future__ import annotations

from typing import Any

import pytest

from tcplab.scenarios import CATALOGUE, execute
from tcplab.scenarios.base import DEFAULT
from tcplab.trace import Trace, segment_event, state_event, validate_event
from tcplab.wire import SYN, TcpSegment

RUNS = [(name, label) for name, sc in CATALOGUE.items()
        for label in ("default", "switched") if label == "default" or sc.counterfactual]


@pytest.mark.parametrize(("name", "label"), RUNS)
def test_every_scenario_event_fits_the_vocabulary(name: str, label: str) -> None:
    sc = CATALOGUE[name]
    switches = DEFAULT if label == "default" else sc.counterfactual
    assert switches is not None
    result = execute(sc, 1, switches)
    problems: dict[str, Any] = {}
    for event in result.net.trace.events:  # the in-memory form, with raw bytes
        bad = validate_event(event)
        if bad:
            problems.setdefault(event["kind"], (bad, event))
    assert not problems, problems
    kinds = {e["kind"] for e in result.events}
    assert {"segment", "state"} <= kinds


def test_the_demo_fits_the_vocabulary() -> None:
    from tcplab.scenarios.demo import run_demo

    net = run_demo(seed=1)
    assert all(not validate_event(e) for e in net.trace.events)


def test_validation_catches_drift() -> None:
    """The checker is not a rubber stamp: a wrong type, a missing or an unknown field fail."""
    seg = segment_event(0.0, "send", "h", "192.0.2.1", "192.0.2.2", TcpSegment(1, 2, 3, 0, SYN),
                        1)
    assert validate_event(seg) == []
    assert validate_event({**seg, "seq": "3"})
    assert validate_event({**seg, "fate": "lost"})
    assert validate_event({**seg, "colour": "red"})
    st = state_event(0.0, "h", "c", "CLOSED", "SYN-SENT", "active open")
    missing = dict(st)
    del missing["cause"]
    assert validate_event(missing) == ["missing 'cause'"]
    assert validate_event({"kind": "mystery", "t": 0.0}) == ["unknown kind 'mystery'"]


def test_a_bounded_trace_keeps_the_newest_events() -> None:
    tr = Trace(limit=100)
    for i in range(1000):
        tr.note(float(i), f"event {i}")
    assert len(tr) <= 100 and tr.events[-1]["text"] == "event 999"
    assert tr.discarded == 1000 - len(tr)


def test_a_trace_without_packet_bytes_lets_them_go_after_its_listeners() -> None:
    seen: list[bytes] = []
    tr = Trace(keep_raw=False)
    tr.listeners.append(lambda ev: seen.append(ev["raw"]))
    syn = TcpSegment(40000, 80, 1000, 0, SYN, 65535)
    tr.add(segment_event(0.0, "send", "client", "192.0.2.1", "192.0.2.2", syn, 1, raw=b"ip+tcp"))
    assert seen == [b"ip+tcp"]  # the kernel lane's model saw the headers
    assert "raw" not in tr.events[0] and tr.events[0]["flags"] == "S"
    kept = Trace()
    kept.add(segment_event(0.0, "send", "client", "192.0.2.1", "192.0.2.2", syn, 1, raw=b"x"))
    assert kept.events[0]["raw"] == b"x"  # for --pcap
