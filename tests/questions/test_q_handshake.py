"""Questions 5, 6, 15, 16, 19 and 47: each documented command, run with --json through the
CLI, and its answer read from the trace it printed (never from the printed text)."""

from __future__ import annotations

import itertools
from typing import Any

from .harness import answer, segments, states

MASK = 0xFFFFFFFF


def notes(doc: dict[str, Any], fact: str) -> list[dict[str, Any]]:
    return [e for e in doc["events"] if e["kind"] == "note" and e.get("fact") == fact]


def test_q5_isn_is_a_4us_clock_plus_a_keyed_hash_of_the_4_tuple() -> None:
    doc = answer(5)
    syns: dict[str, list[tuple[float, int]]] = {}
    for e in segments(doc, "client", "S"):
        runs = syns.setdefault(f"{e['src']}-{e['dst']}", [])
        if not runs or runs[-1][1] != e["seq"]:      # a new connection, not a retransmission
            runs.append((e["t"], e["seq"]))
    repeated = max(syns.values(), key=len)
    assert len(repeated) >= 3 and len(syns) >= 3
    # the same 4-tuple: the ISN grows by 250,000 a second, one every 4 microseconds ...
    for (t0, a), (t1, b) in itertools.pairwise(repeated):
        assert (b - a) & MASK == round((t1 - t0) * 250_000)
    # ... and what is left is one keyed hash per 4-tuple, a different one for each
    hashed = {pair: {(isn - round(t * 250_000)) & MASK for t, isn in runs}
              for pair, runs in syns.items()}
    assert all(len(h) == 1 for h in hashed.values())
    assert len({min(h) for h in hashed.values()}) == len(hashed)
    assert doc["meta"]["outcome"]["isn_tick_ns"] == 4000.0


def test_q6_mss_keeps_segments_whole_a_lost_fragment_costs_the_whole_segment() -> None:
    with_mss = answer(6)
    data = [e for e in segments(with_mss, "server") if e["len"]]
    assert max(e["len"] for e in data) == 1460                    # MTU 1500 - 40
    assert not notes(with_mss, "fragments")
    lost = [e for e in data if e["fate"] == "dropped"]
    resent = [e["len"] for e in data if e["seq"] == lost[0]["seq"] and e is not lost[0]]
    assert len(lost) == 1 and resent == [1460]                    # one segment again
    without = answer(6, 1)                                        # --variant no-mss
    data = [e for e in segments(without, "server") if e["len"]]
    (cut, again) = notes(without, "fragments")
    assert len(cut["args"]["sizes"]) == 5 and cut["args"]["lost"] == [3]
    assert [(e["len"], e["fate"]) for e in data] == [(7300, "dropped"), (7300, "delivered")]
    assert again["args"]["lost"] == []                            # resent whole, cut again


def test_q15_no_listener_rst_and_econnrefused_simultaneous_open_needs_none() -> None:
    doc = answer(15)
    (syn,) = segments(doc, "client", "S")
    (rst,) = segments(doc, "server")
    assert rst["flags"] == "RA" and rst["ack"] == (syn["seq"] + 1) & MASK
    assert [e["result"] for e in notes(doc, "connect")] == ["ECONNREFUSED"]
    assert states(doc, "client") == ["SYN-SENT", "CLOSED"]
    simultaneous = answer(15, 1)
    assert not [e for e in simultaneous["events"] if e["kind"] == "app"
                and e["call"] == "listen"]
    for host in ("A", "B"):
        assert states(simultaneous, host) == ["SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def test_q16_connect_returns_after_the_synack_accept_after_the_third_segment() -> None:
    doc = answer(16)
    returns = {e["who"]: e["t"] for e in notes(doc, "returns")}
    (synack,) = segments(doc, "server", "SA")
    third = segments(doc, "client")[1]
    assert returns["listen"] == 0.0 and segments(doc)[0]["t"] >= returns["listen"]
    assert returns["connect"] == synack["t_arrive"] == third["t"]
    assert returns["accept"] == third["t_arrive"]
    accept_app = [e["t"] for e in doc["events"] if e["kind"] == "app" and e["call"] == "accept"]
    assert accept_app == [returns["accept"]]


def test_q19_syn_in_established_challenge_ack_rst_then_the_client_connects_again() -> None:
    doc = answer(19)
    reboot = notes(doc, "reboot")[0]["t"]
    after = [e for e in segments(doc) if e["t"] > reboot]
    assert [f"{e['host']}:{e['flags']}" for e in after[:5]] == \
        ["client:S", "server:A", "client:R", "client:S", "server:SA"]
    assert after[2]["seq"] == after[1]["ack"]          # the RST the challenge ACK asked for
    challenged = [e["reason"] for e in segments(doc, "server", "S", event="drop")]
    assert challenged and challenged[0].endswith(": challenge ACK")
    server_states = states(doc, "server")
    assert server_states[:3] == ["SYN-RECEIVED", "ESTABLISHED", "CLOSED"]
    assert server_states[3:] == ["SYN-RECEIVED", "ESTABLISHED"]   # the new connection


def test_q47_refused_is_a_rst_at_once_timed_out_is_silence_until_the_syns_run_out() -> None:
    doc = answer(47)
    ends = {e["args"]["port"]: e for e in notes(doc, "connect")}
    refused, timed_out = ends[81], ends[8443]
    assert refused["result"] == "ECONNREFUSED" and refused["args"]["after"] == 0.1
    assert timed_out["result"] == "ETIMEDOUT"
    syns = [e for e in segments(doc, "client", "S") if e["dst"].endswith(":8443")]
    assert len(syns) == 7 and all(e["fate"] == "dropped" for e in syns)   # 6 retries (rfc)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(syns)]
    assert gaps == [1, 2, 4, 8, 16, 32]                                   # exponential back-off
    assert timed_out["t"] == syns[-1]["t"] + 60                           # RTO capped at 60 s
    assert [e["flags"] for e in segments(doc, "server")] == ["RA"]        # silence from 8443
