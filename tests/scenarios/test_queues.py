"""A listener's queues (backlog, accept-overflow, no-accept), read from the JSON trace:
which segment each client's connection got stuck on, and what the server did with it."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from tcplab.i18n import catalogue, phrase
from tcplab.render.narrate import cause_key
from tcplab.scenarios import get
from tcplab.scenarios.base import DEFAULT, Switches, execute
from tcplab.scenarios.queues import queue_lengths
from tcplab.trace import load_json

LINUX = Switches(profile="linux")
ABORT = Switches(profile="linux", sysctls=("net.ipv4.tcp_abort_on_overflow=1",))


def trace(name: str, switches: Switches = DEFAULT, seed: int = 1) -> list[dict[str, Any]]:
    """The run's events, as ``--json`` prints them, loaded back."""
    result = execute(get(name), seed, switches)
    buf = io.StringIO()
    result.net.trace.dump_json(buf, result.meta)
    buf.seek(0)
    return load_json(buf)


def handled(events: list[dict[str, Any]], host: str = "server") -> list[tuple[str, str]]:
    """(flags, what the host did) for each segment it dropped or acted on."""
    return [(e["flags"], e["reason"]) for e in events if e["kind"] == "segment"
            and e["event"] in ("drop", "accept") and e["host"] == host]


def port_of(addr: str) -> int:
    return int(addr.rpartition(":")[2])


# ---------------------------------------------------------------- backlog


@pytest.mark.parametrize(("switches", "held"), [
    (Switches(), 2),                                                   # RFC: the backlog
    (LINUX, 3),                                                        # Linux: backlog + 1
    (Switches(profile="linux", sysctls=("net.core.somaxconn=1",)), 2),  # min(2, 1) + 1
])
def test_backlog_accept_queue_holds_what_listen_asked_then_drops_syns(switches, held):
    events = trace("backlog", switches)
    assert max(n for _t, n in queue_lengths(events)) == held
    # the clients beyond it: their SYNs are dropped while nobody accepts
    first_accept = next(e["t"] for e in events if e["kind"] == "app" and e["call"] == "accept")
    dropped = [(f, r) for f, r in handled(events) if r == "accept queue full: SYN dropped"]
    assert len(dropped) >= 2 and all(f == "S" for f, _r in dropped)
    drop_times = [e["t"] for e in events if e["kind"] == "segment" and e["event"] == "drop"
                  and e.get("reason") == "accept queue full: SYN dropped"]
    assert max(drop_times) < first_accept
    # ... and every client is served once accept() runs
    answered = [e for e in events if e["kind"] == "note" and e.get("fact") == "client-done"]
    assert len(answered) == held + 2 and all(e["result"] == "ok" for e in answered)


def test_backlog_outcome(outcome):
    o = outcome("backlog", LINUX)
    assert (o["listen_backlog"], o["somaxconn"], o["backlog_taken"]) == (2, 4096, 2)
    assert o["accept_queue_peak"] == 3 and o["connected_before_accept"] == 3
    assert o["first_accept_at"] == 3.0
    late = o["connect_returned_after"][3:]
    assert all(t > 1.0 for t in late)           # they waited for a SYN retransmission


@pytest.mark.parametrize(("switches", "peak", "cookies", "client_after"), [
    (Switches(), 2, 0, 63.1),   # dropped until the half-open entries give up (63 s)
    (LINUX, 3, 6, 0.1),         # backlog + 1 half-open, then SYN cookies: at once
])
def test_backlog_syn_queue_fills_with_half_open_connections(outcome, switches, peak, cookies,
                                                            client_after):
    o = outcome("backlog", Switches(variant="syn-queue", profile=switches.profile))
    assert o["syn_queue_peak"] == peak
    assert o["syn_cookies_sent"] == cookies
    assert o["connect_returned_after"] == [client_after]
    assert o["answered"] == ["ok"]


def test_backlog_syn_queue_linux_without_cookies_drops(outcome):
    o = outcome("backlog", Switches(variant="syn-queue", profile="linux",
                                    sysctls=("net.ipv4.tcp_syncookies=0",)))
    assert o["syn_cookies_sent"] == 0 and o["syns_dropped"] > 0
    assert o["connect_returned_after"][0] > 60


# ---------------------------------------------------------------- accept-overflow


def overflow_exchange(events: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """The client whose third ACK found the queue full, and the segments of its connection
    as ``host:flags`` (the packet exchange)."""
    drop = next(e for e in events if e["kind"] == "segment" and e["event"] == "drop"
                and e["host"] == "server" and "A" in e["flags"]
                and e["reason"].startswith("accept queue full"))
    port = port_of(drop["src"])
    ladder = [f"{e['host']}:{e['flags']}" for e in events if e["kind"] == "segment"
              and e["event"] == "send" and port in (port_of(e["src"]), port_of(e["dst"]))]
    return port, ladder


@pytest.mark.parametrize("switches", [Switches(), LINUX], ids=["rfc", "linux"])
def test_accept_overflow_third_ack_dropped_client_established_synack_resent(switches):
    events = trace("accept-overflow", switches)
    port, ladder = overflow_exchange(events)
    # SYN, SYN-ACK, the third segment (with the request) that the server drops, ...
    assert ladder[:3] == ["client:S", "server:SA", "client:PA"]
    # ... the server sends its SYN-ACK again, and the client (ESTABLISHED) answers it
    assert "server:SA" in ladder[3:]
    client_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "client"
                     and e["conn"].startswith(f"192.0.2.1:{port}-")]
    assert client_states[:2] == ["SYN-SENT", "ESTABLISHED"]
    server_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "server"
                     and e["conn"].endswith(f":{port}")]
    assert server_states[:2] == ["SYN-RECEIVED", "ESTABLISHED"]   # only after accept() ran
    est = next(e["t"] for e in events if e["kind"] == "state" and e["host"] == "server"
               and e["conn"].endswith(f":{port}") and e["to"] == "ESTABLISHED")
    assert est > next(e["t"] for e in events if e["kind"] == "app" and e["call"] == "accept")
    assert "server:R" not in ladder


def test_accept_overflow_outcome_default(outcome):
    o = outcome("accept-overflow", LINUX)
    assert o["accept_queue_peak"] == 3
    assert o["third_ack_fate"] == "accept queue full: ACK dropped"
    assert o["client_established_before_the_drop"] and o["server_state_then"] == "SYN-RECEIVED"
    assert o["synack_retransmissions"] >= 1 and not o["server_sent_rst"]
    assert o["its_result"] == "ok" and o["its_answer_after"] > 1.0
    assert o["syns_dropped_accept_queue_full"] >= 1                     # Q17
    assert o["results"] == ["ok"] * 5


def test_accept_overflow_abort_on_overflow_resets_the_client(outcome):
    events = trace("accept-overflow", ABORT)
    _port, ladder = overflow_exchange(events)
    assert ladder[:4] == ["client:S", "server:SA", "client:PA", "server:R"]
    o = outcome("accept-overflow", ABORT)
    assert o["third_ack_fate"] == "accept queue full: RST (tcp_abort_on_overflow 1)"
    assert o["server_sent_rst"] and o["its_result"] == "ECONNRESET"
    assert o["results"].count("ECONNRESET") == 1


def test_accept_overflow_counters_in_the_json_meta():
    result = execute(get("accept-overflow"), 1, LINUX)
    server = result.meta["counters"]["server"]
    dropped = sum(1 for _f, r in handled(result.events) if r.startswith("accept queue full"))
    assert server["TcpExtListenOverflows"] == server["TcpExtListenDrops"] == dropped


# ---------------------------------------------------------------- no-accept


def test_no_accept_established_acknowledged_and_buffered_before_accept():
    events = trace("no-accept")
    accepted = next(e["t"] for e in events if e["kind"] == "note" and e.get("fact") == "accepted")
    server_before = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "server"
                     and e["t"] < accepted and not e["conn"].endswith("-*:*")]
    assert server_before == ["SYN-RECEIVED", "ESTABLISHED"]
    sent = [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and e["t"] < accepted]
    syn = sent[0]
    data = [e for e in sent if e["host"] == "client" and e["len"]]
    acks = [e for e in sent if e["host"] == "server" and e["flags"] == "A"]
    assert len(data) == 2
    assert acks[-1]["ack"] == syn["seq"] + 1 + sum(e["len"] for e in data)   # all acknowledged
    synack = next(e for e in sent if e["flags"] == "SA")
    assert acks[-1]["win"] == synack["win"] - sum(e["len"] for e in data)    # and held


def test_no_accept_outcome(outcome):
    o = outcome("no-accept")
    assert o["server_path"] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert o["established_without_accept_for"] > 4.0
    assert o["bytes_acked_before_accept"] == 71
    assert o["server_app_read"].startswith("GET / HTTP/1.1")
    assert o["server_app_read"].endswith("sent 1 s later")


# ---------------------------------------------------------------- texts of every case

CASES = [("backlog", LINUX), ("backlog", Switches(variant="syn-queue")),
         ("backlog", Switches(variant="syn-queue", profile="linux")), ("accept-overflow", LINUX),
         ("accept-overflow", ABORT), ("no-accept", LINUX)]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("name", "switches"), CASES,
                         ids=[f"{n}{''.join(s.flags())}" for n, s in CASES])
def test_every_case_is_narrated_in_chinese(name, switches):
    zh = catalogue("zh")
    for e in trace(name, switches):
        if e["kind"] == "note":
            assert f"note.{e['key']}" in zh, e["text"]
        if e["kind"] == "segment" and e.get("reason"):
            assert CJK.search(phrase("reason", e["reason"], "zh") or ""), e["reason"]
        if e["kind"] == "state":
            assert CJK.search(phrase("causename", cause_key(e["cause"]), "zh") or ""), e["cause"]
