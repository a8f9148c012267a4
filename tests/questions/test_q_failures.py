"""The failure questions (38, 41-46): each runs its documented command with --json and
reads the answer from the trace."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from .harness import answer, run, segments, states


def note(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(e for e in doc["events"] if e["kind"] == "note" and e.get("key") == key)


def since(doc: dict[str, Any], t: float, host: str | None = None) -> list[dict[str, Any]]:
    return [e for e in segments(doc, host) if e["t"] >= t]


def test_q38_close_wait_leak_and_the_syn_for_its_4_tuple() -> None:
    doc = answer(38)
    # the application never closes: the server's end stays in CLOSE-WAIT while the client's
    # orphaned FIN-WAIT-2 gives up
    assert "CLOSE-WAIT" in states(doc, "server")
    fw2_end = next(e for e in doc["events"] if e["kind"] == "state" and e["host"] == "client"
                   and e["from"] == "FIN-WAIT-2")
    assert fw2_end["cause"] == "FIN-WAIT-2 timeout (orphaned connection)"
    start = note(doc, "leak.reconnect")["t"]
    got = since(doc, start)
    # the new SYN gets no SYN-ACK from CLOSE-WAIT, only an ACK; the client's RST clears it
    assert [(e["host"], e["flags"]) for e in got[:3]] == [("client", "S"), ("server", "A"),
                                                          ("client", "R")]
    leak_end = next(e for e in doc["events"] if e["kind"] == "state" and e["host"] == "server"
                    and e["from"] == "CLOSE-WAIT" and e["t"] >= start)
    assert leak_end["cause"] == "RST in CLOSE-WAIT"
    assert doc["meta"]["outcome"]["reconnect"] == "ok"
    # with no challenge ACK to answer, the SYNs are ignored and connect() times out
    ignored = run("tcplab scenario run close-wait-leak --variant no-challenge-ack")
    start = note(ignored, "leak.reconnect")["t"]
    assert {e["flags"] for e in since(ignored, start)} == {"S"}
    assert ignored["meta"]["outcome"]["reconnect"] == "ETIMEDOUT"


def test_q41_host_crash_keepalive_finds_it_after_2h_11min_15s() -> None:
    doc = answer(41)
    off = note(doc, "crash.power-off")["t"]
    assert since(doc, off, "client") == []
    probes = since(doc, off, "server")
    assert [e["flags"] for e in probes] == ["A"] * 9 + ["R"]
    last_heard = max(e["t_arrive"] for e in segments(doc, "client"))
    assert probes[0]["t"] - last_heard == pytest.approx(7200.0)
    assert [b["t"] - a["t"] for a, b in itertools.pairwise(probes[:9])] == \
        pytest.approx([75.0] * 8)
    gave_up = next(e for e in doc["events"] if e["kind"] == "state" and e["host"] == "server"
                   and e["to"] == "CLOSED" and not e["conn"].endswith("-*:*"))
    assert gave_up["t"] - last_heard == pytest.approx(2 * 3600 + 11 * 60 + 15)
    assert doc["meta"]["outcome"]["server_error"] == "ETIMEDOUT"
    # without keep-alive: nothing at all happens for a day
    quiet = answer(41, 1)
    off = note(quiet, "crash.power-off")["t"]
    writes = note(quiet, "crash.server-writes")["t"]
    assert writes - off >= 86400.0 and not [e for e in since(quiet, off) if e["t"] < writes]


def test_q42_process_crash_fin_or_rst_from_the_kernel() -> None:
    doc = answer(42)
    crash = note(doc, "pcrash.crash")["t"]
    at_crash = sorted(e["flags"] for e in segments(doc, "server") if e["t"] == crash)
    assert at_crash == ["FA", "R"]                    # A (all read): FIN; B (unread): RST
    o = doc["meta"]["outcome"]
    assert (o["a_client_read"], o["b_client_read"]) == ("eof", "ECONNRESET")
    assert o["new_connect"] == "ECONNREFUSED"


def test_q43_rebooted_peer_answers_an_old_segment_with_rst() -> None:
    doc = answer(43)
    write = note(doc, "reboot.write")["t"]
    data, answer_ = since(doc, write)[:2]
    assert (data["host"], data["flags"], answer_["host"], answer_["flags"]) == \
        ("client", "PA", "server", "R")
    assert doc["meta"]["outcome"]["client_error"] == "ECONNRESET"


def test_q44_cable_pull_with_data_retransmits_until_retries2_idle_nothing() -> None:
    doc = answer(44)
    pulled = note(doc, "cable.unplug")["t"]
    sent = [e for e in since(doc, pulled, "client") if e["len"]]
    assert all(e["fate"] == "dropped" for e in sent)
    # with SACK, Linux first sends a tail loss probe (RFC 8985) about two round trips
    # after the data: one extra copy, not a retransmission timeout, no back-off
    probes = [e["t"] for e in doc["events"] if e["kind"] == "timer" and e["host"] == "client"
              and e["timer"] == "loss-probe" and e["action"] == "fired" and e["t"] >= pulled]
    assert len(probes) == 1 and sent[1]["t"] == probes[0]
    copies = [e for e in sent if e["t"] not in probes]
    assert len(copies) == 16    # the segment and its 15 retransmissions (tcp_retries2)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(copies)]
    assert max(gaps) == pytest.approx(120.0)          # TCP_RTO_MAX caps the back-off
    end = next(e for e in doc["events"] if e["kind"] == "state" and e["host"] == "client"
               and e["to"] == "CLOSED")
    assert end["t"] - copies[0]["t"] >= 924.6         # the tcp_retries2 budget
    assert "tcp_retries2 15" in end["cause"]
    idle = answer(44, 1)
    pulled, plugged = note(idle, "cable.unplug")["t"], note(idle, "cable.plug")["t"]
    assert not [e for e in segments(idle) if pulled <= e["t"] < plugged]
    assert states(idle, "client")[-1] == "ESTABLISHED"


def test_q45_half_open_versus_half_closed() -> None:
    half_open = answer(45)
    assert half_open["meta"]["outcome"]["still_established_after_a_day"] == "ESTABLISHED"
    off = note(half_open, "crash.power-off")["t"]
    assert since(half_open, off, "client") == []      # one side is gone, the other unaware
    half_closed = run("tcplab scenario run half-close")
    fin = next(e for e in segments(half_closed, "client") if "F" in e["flags"])
    later_data = [e for e in segments(half_closed, "server") if e["t"] > fin["t_arrive"]
                  and e["len"]]
    assert later_data                                 # one side sent FIN, the other still sends
    assert "CLOSE-WAIT" in states(half_closed, "server")


def test_q46_tcp_keepalive_probes_http_keepalive_reuses() -> None:
    tcp = answer(46)
    off = note(tcp, "crash.power-off")["t"]
    probes = [e for e in since(tcp, off, "server") if e["flags"] == "A"]
    assert probes and all(e["len"] == 0 for e in probes)   # TCP keepalive: empty probes
    http = run("tcplab scenario run server-close-storm")
    requests = [e for e in segments(http, "client") if e["dst"].startswith("192.0.2.12:")
                and e["len"]]
    assert len(requests) == http["meta"]["outcome"]["requests_per_mode"]
    assert len({e["src"] for e in requests}) == 1       # HTTP keep-alive: one connection
