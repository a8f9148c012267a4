"""Questions 12, 13, 14 and 17: a listener's queues, each documented command run with --json
through the CLI, its answer read from the trace (and the counters) it printed."""

from __future__ import annotations

from typing import Any

from .harness import answer, segments, states


def app_events(doc: dict[str, Any], call: str, host: str = "server") -> list[dict[str, Any]]:
    return [e for e in doc["events"] if e["kind"] == "app" and e["call"] == call
            and e["host"] == host]


def handled(doc: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    """Segments the server dropped or acted on, with this reason."""
    return [e for e in segments(doc, "server", event="drop") if e["reason"] == reason]


def accept_queue(doc: dict[str, Any]) -> list[int]:
    """The accept queue's length after each change: +1 when the kernel queues a completed
    connection, -1 when accept() takes one."""
    n, out = 0, []
    for e in doc["events"]:
        if e["kind"] == "app" and e["host"] == "server":
            if e["call"] == "event" and e["result"] == "connection ready to accept":
                n += 1
            elif e["call"] == "accept":
                n -= 1
            else:
                continue
            out.append(n)
    return out


def port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def test_q12_backlog_bounds_the_accept_queue_min_backlog_somaxconn_plus_one_on_linux() -> None:
    doc = answer(12)                                   # --profile linux, listen(backlog=2)
    (listened,) = [e for e in doc["events"] if e["kind"] == "note" and e.get("fact") == "listen"]
    assert (listened["args"]["backlog"], listened["args"]["somaxconn"]) == (2, 4096)
    assert max(accept_queue(doc)) == 2 + 1             # sk_acceptq_is_full(): len > backlog
    # while it is full (before the first accept()), further SYNs get no answer at all
    first_accept = app_events(doc, "accept")[0]["t"]
    full = handled(doc, "accept queue full: SYN dropped")
    assert full and all(e["flags"] == "S" and e["t"] < first_accept for e in full)
    assert doc["meta"]["counters"]["server"]["TcpExtListenOverflows"] == len(full)


def test_q13_full_accept_queue_third_ack_dropped_synack_resent_or_rst() -> None:
    doc = answer(13)                                   # tcp_abort_on_overflow 0
    (drop,) = handled(doc, "accept queue full: ACK dropped")[:1]
    who = port(drop["src"])
    client = [e for e in doc["events"] if e["kind"] == "state" and e["host"] == "client"
              and port(e["conn"].split("-")[0]) == who]
    assert [e["to"] for e in client[:2]] == ["SYN-SENT", "ESTABLISHED"]
    assert client[1]["t"] < drop["t"]                  # the client thinks it is connected
    synacks = [e for e in segments(doc, "server", "SA") if port(e["dst"]) == who]
    assert len(synacks) >= 2                           # the server resends its SYN-ACK
    assert not [e for e in segments(doc, "server") if "R" in e["flags"]]
    assert doc["meta"]["outcome"]["its_result"] == "ok"   # served once accept() ran
    reset = answer(13, 1)                              # tcp_abort_on_overflow 1
    (drop,) = handled(reset, "accept queue full: RST (tcp_abort_on_overflow 1)")
    rst = [e for e in segments(reset, "server") if "R" in e["flags"]]
    assert [port(e["dst"]) for e in rst] == [port(drop["src"])]
    assert reset["meta"]["outcome"]["its_result"] == "ECONNRESET"


def test_q14_connection_made_and_data_acknowledged_without_accept() -> None:
    doc = answer(14)
    accepted = next(e["t"] for e in doc["events"] if e["kind"] == "note"
                    and e.get("fact") == "accepted")
    before = [e for e in doc["events"] if e["kind"] == "state" and e["host"] == "server"
              and e["t"] < accepted and not e["conn"].endswith("-*:*")]
    assert [e["to"] for e in before] == ["SYN-RECEIVED", "ESTABLISHED"]
    (syn,) = segments(doc, "client", "S")
    data = [e for e in segments(doc, "client") if e["len"] and e["t"] < accepted]
    acks = [e for e in segments(doc, "server", "A") if e["t"] < accepted]
    assert len(data) == 2
    assert acks[-1]["ack"] == syn["seq"] + 1 + sum(e["len"] for e in data)
    assert states(doc, "server") == ["SYN-RECEIVED", "ESTABLISHED"]
    read = [e for e in doc["events"] if e["kind"] == "note" and e.get("fact") == "app-recv"]
    assert read[-1]["t"] >= accepted and len(read[-1]["data"]) == sum(e["len"] for e in data)


def test_q17_syns_dropped_when_the_accept_queue_or_the_syn_queue_is_full() -> None:
    doc = answer(17)                                   # accept-overflow, linux
    assert handled(doc, "accept queue full: SYN dropped")
    flood = answer(17, 1)                              # syn-flood: the SYN queue
    full = handled(flood, "SYN queue full: SYN dropped")
    assert full and any(e["src"].startswith("192.0.2.1:") for e in full)
