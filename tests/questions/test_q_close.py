"""The closing questions (22, 25, 30, 32): each runs its documented command with --json and
reads the answer from the trace."""

from __future__ import annotations

from typing import Any

from tcplab.scenarios.questions import question

from .harness import answer, run, segments, states


def closing_flags(doc: dict[str, Any]) -> list[str]:
    """The segments from the first FIN on, as "host:flags"."""
    segs = segments(doc)
    first = next(i for i, e in enumerate(segs) if "F" in e["flags"])
    return [f"{e['host']}:{e['flags']}" for e in segs[first:]]


def state_times(doc: dict[str, Any], host: str) -> dict[str, float]:
    """When ``host`` first entered each state."""
    out: dict[str, float] = {}
    for e in doc["events"]:
        if e["kind"] == "state" and e["host"] == host and not e["conn"].endswith("-*:*"):
            out.setdefault(e["to"], e["t"])
    return out


def test_q22_close_in_three_segments_and_four_with_quickack() -> None:
    # the passive side closes at once: its delayed ACK rides on its FIN
    assert closing_flags(answer(22)) == ["client:FA", "server:FA", "client:A"]
    # TCP_QUICKACK sends that ACK at once: four segments again
    quick = answer(22, 1)
    assert "--variant quickack" in question(22).commands[1]
    assert closing_flags(quick) == ["client:FA", "server:A", "server:FA", "client:A"]


def test_q25_fin_wait_2_ends_after_close_but_not_after_shutdown() -> None:
    closed = answer(25)
    o = closed["meta"]["outcome"]
    assert o["fin_wait_2_timer"] == 60.0 == o["fin_wait_2_seconds"]   # tcp_fin_timeout
    assert states(closed, "client")[-2:] == ["FIN-WAIT-2", "CLOSED"]
    assert o["fin_wait_2_ended_by"] == "FIN-WAIT-2 timeout (orphaned connection)"
    shut = answer(25, 1)
    s = shut["meta"]["outcome"]
    assert s["fin_wait_2_timer"] is None
    assert s["fin_wait_2_seconds"] > 60.0
    assert states(shut, "client")[-3:] == ["FIN-WAIT-2", "TIME-WAIT", "CLOSED"]


def test_q30_an_out_of_order_fin_waits_for_the_missing_data() -> None:
    doc = answer(30)
    o = doc["meta"]["outcome"]
    fin = next(e for e in segments(doc, "server") if "F" in e["flags"])
    data = [e for e in segments(doc, "server") if e["len"] and e["t"] <= fin["t"]]
    held = next(e for e in data if e.get("delayed"))
    # the FIN arrives first; the client enters TIME-WAIT only when the hole is filled
    assert fin["t_arrive"] < held["t_arrive"]
    assert state_times(doc, "client")["TIME-WAIT"] == held["t_arrive"]
    acks = [e["ack"] for e in segments(doc, "client")
            if fin["t_arrive"] <= e["t"] < held["t_arrive"]]
    assert acks and set(acks) == {held["seq"]}
    assert o["client_read_in_order"]


def test_q32_fin_wait_1_goes_to_time_wait_on_one_fin_ack() -> None:
    doc = answer(32)
    fin_ack = next(e for e in segments(doc, "server") if "F" in e["flags"])
    assert fin_ack["flags"] == "FA"
    path = [e for e in doc["events"] if e["kind"] == "state" and e["host"] == "client"
            and e["t"] == fin_ack["t_arrive"]]
    # one segment, one instant: FIN-WAIT-1 -> (FIN-WAIT-2) -> TIME-WAIT
    assert [(e["from"], e["to"]) for e in path] == [("FIN-WAIT-1", "FIN-WAIT-2"),
                                                    ("FIN-WAIT-2", "TIME-WAIT")]
    assert run("tcplab scenario run close-combined --profile linux")["meta"]["outcome"][
        "close_segments"] == ["client:FA", "server:FA", "client:A"]
