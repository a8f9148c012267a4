"""The TIME-WAIT questions (33, 34, 35, 39): each runs its documented command with --json
and reads the answer from the trace."""

from __future__ import annotations

from typing import Any

from .harness import answer, run, segments, states


def notes(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e for e in doc["events"] if e["kind"] == "note" and e.get("key") == key]


def port_of(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def test_q33_time_wait_exhausts_ports_towards_one_destination_only() -> None:
    doc = answer(33)
    syns = [e for e in segments(doc, "client", "S")]
    to80 = [e for e in syns if e["dst"].endswith(":80")]
    failed = notes(doc, "exh.fails")[0]
    # every port of the (narrowed) range was used once towards :80 before the failure
    before = [e for e in to80 if e["t"] < failed["t"]]
    ports = {port_of(e["src"]) for e in before}
    assert len(ports) == len(before) == doc["meta"]["outcome"]["ephemeral_ports"]
    assert failed["result"] == "EADDRNOTAVAIL"
    # each of those 4-tuples is in TIME-WAIT at the failure
    tw = [e for e in doc["events"] if e["kind"] == "state" and e["host"] == "client"
          and e["to"] == "TIME-WAIT" and e["t"] < failed["t"]]
    assert len(tw) == len(ports)
    # another destination works, from one of those very ports
    other = next(e for e in syns if e["dst"].endswith(":8080"))
    assert port_of(other["src"]) in ports
    assert doc["meta"]["outcome"]["other_destination"] == "ok"


def test_q34_the_three_remedies() -> None:
    # tcp_tw_reuse (2: loopback) with timestamps: connect() takes the TIME-WAIT 4-tuple
    reuse = answer(34)
    o = reuse["meta"]["outcome"]
    assert o["reused_time_wait"] and o["timestamps"] and o["tcp_tw_reuse"] == 2
    syns = segments(reuse, "client", "S")
    assert len({e["src"] for e in syns}) == 1 and len(syns) == 2   # the same 4-tuple twice
    assert syns[1]["t"] - syns[0]["t"] < 60.0                       # well before 2MSL
    # tcp_max_tw_buckets: beyond it, TIME-WAIT is skipped
    buckets = run("tcplab scenario run tw-buckets --profile linux")
    b = buckets["meta"]["outcome"]
    assert b["time_wait_skipped"] >= 1 and b["overflow_counted"]
    skipped = [e for e in buckets["events"] if e["kind"] == "state"
               and e["to"] == "CLOSED" and "tcp_max_tw_buckets" in e["cause"]]
    # never in TIME-WAIT: straight from FIN-WAIT-2 to CLOSED (tcp_time_wait: tcp_done)
    assert skipped and skipped[0]["from"] == "FIN-WAIT-2"
    assert not [e for e in buckets["events"] if e["kind"] == "state"
                and e["to"] == "TIME-WAIT" and e["conn"] == skipped[0]["conn"]]
    # SO_LINGER 0: a RST instead of a FIN, no TIME-WAIT
    linger = run("tcplab scenario run linger0")
    first_conn = segments(linger, "client")[0]["src"]
    flags = [e["flags"] for e in segments(linger, "client") if e["src"] == first_conn]
    assert "R" in flags and not any("F" in f for f in flags[:flags.index("R") + 1])
    assert "TIME-WAIT" not in states(linger, "client")[:states(linger, "client").index(
        "CLOSED", 1) + 1]


def test_q35_without_timestamps_tw_reuse_cannot_reuse() -> None:
    doc = answer(35)
    o = doc["meta"]["outcome"]
    assert not o["timestamps"] and o["tcp_tw_reuse"] == 2
    assert not o["reused_time_wait"]
    assert o["attempt_results"][:2] == ["EADDRNOTAVAIL", "EADDRNOTAVAIL"]
    syns = segments(doc, "client", "S")
    assert not any(opt.startswith("TS") for e in syns for opt in e.get("opts", []))
    # the 4-tuple is usable only when TIME-WAIT has run its course
    tw = next(e for e in doc["events"] if e["kind"] == "state" and e["from"] == "TIME-WAIT"
              and e["host"] == "client")
    assert tw["cause"] == "2MSL timer expired" and syns[-1]["t"] >= tw["t"]


def test_q39_syn_in_time_wait_rfc_versus_linux() -> None:
    # rfc profile: no timestamps, ISN below RCV.NXT: ACK, RST (ignored, RFC 1337), again...
    rfc = answer(39)
    start = notes(rfc, "stw.reconnect")[0]["t"]
    after = [(e["host"], e["flags"]) for e in segments(rfc) if e["t"] >= start]
    assert after[:3] == [("client", "S"), ("server", "A"), ("client", "R")]
    tw_ack = next(e for e in segments(rfc, "server", "A") if e["t"] >= start)
    o = rfc["meta"]["outcome"]
    assert tw_ack["ack"] == o["old_rcv_nxt"]        # the old connection's numbers, not a SYN-ACK
    assert o["time_wait_ended_by"] == "2MSL timer expired"
    # linux: the SYN's newer timestamp opens a new connection at once
    linux = answer(39, 1)
    lo = linux["meta"]["outcome"]
    assert not lo["isn_beyond_rcv_nxt"] and lo["timestamps"]
    start = notes(linux, "stw.reconnect")[0]["t"]
    assert [(e["host"], e["flags"]) for e in segments(linux) if e["t"] >= start][:3] == \
        [("client", "S"), ("server", "SA"), ("client", "A")]
    assert lo["time_wait_ended_by"] == "new SYN with a newer timestamp"
    # and a SYN beyond RCV.NXT opens one without timestamps too
    higher = run("tcplab scenario run syn-in-time-wait --variant higher-isn")
    assert higher["meta"]["outcome"]["time_wait_ended_by"] == \
        "new SYN with a higher sequence number"
