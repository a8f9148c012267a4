"""``tcplab compare``: each catalogue scenario Linux can run, in the engine and on Linux.

Every test runs one lesson on two Linux kernels (:func:`tcplab.onlinux.compare.run_both`,
the engine with the linux profile first) and checks what the kernels did, from their
own trace, and how the comparison reads it: which aspects are alike and which differ,
and why. Timing rows are not asserted: real kernels and a loaded machine move times by
milliseconds; the tests assert segments, states and what the programs saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from tcplab.faults import parse
from tcplab.onlinux.compare import Comparison, Row, run_both
from tcplab.scenarios.base import Switches
from tcplab.trace import Event

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("linux")]


def rows(c: Comparison, aspect: str) -> dict[str, Row]:
    return {r.subject: r for r in c.rows if r.aspect == aspect}


def sent(events: list[Event], host: str | None = None) -> list[Event]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and "copy_of" not in e and (host is None or e["host"] == host)]


def path(events: list[Event], host: str) -> list[str]:
    out: list[str] = []
    for e in events:
        if e["kind"] == "state" and e["host"] == host and not e["conn"].endswith("-*:*"):
            if not out:
                out.append(e["from"])
            out.append(e["to"])
    return out


def facts(events: list[Event], fact: str, host: str | None = None) -> list[Event]:
    return [e for e in events if e["kind"] == "note" and e.get("fact") == fact
            and (host is None or e.get("host") == host)]


# ---------------------------------------------------------------- opening


def check_handshake(c: Comparison) -> None:
    lin = sent(c.linux_events)
    assert [e["flags"] for e in lin[:4]] == ["S", "SA", "A", "PA"]
    assert lin[2]["len"] == 0 and lin[3]["len"] == 35  # a bare ACK, then the request
    eng = sent(c.engine)
    assert eng[2]["host"] == "client" and eng[2]["len"] == 35  # the engine's third carries it
    odd = [r for r in c.rows if r.aspect == "exchange" and not r.same]
    assert len(odd) == 1 and "SYN-SENT" in odd[0].note
    assert rows(c, "facts")["app-recv (server)"].same


def check_isn_sync(c: Comparison) -> None:
    syn, synack, third = sent(c.linux_events)[:3]
    assert synack["ack"] == (syn["seq"] + 1) & 0xFFFFFFFF   # the client's ISN confirmed
    assert third["ack"] == (synack["seq"] + 1) & 0xFFFFFFFF  # the server's ISN confirmed
    assert all(r.same for r in rows(c, "states").values())


def check_old_duplicate_syn(c: Comparison) -> None:
    lin = c.linux_events
    old_isn = facts(lin, "old-syn")[0]["isn"]
    old = [e for e in sent(lin, "client") if e.get("injected")]
    assert len(old) == 1 and old[0]["flags"] == "S" and old[0]["len"] == 18
    resets = [e for e in sent(lin, "client") if "R" in e["flags"]]
    assert [e["seq"] for e in resets] == [(old_isn + 1) & 0xFFFFFFFF]  # the old SYN-ACK reset
    assert len(facts(lin, "accepted", "server")) == 1
    assert rows(c, "facts")["app-recv (server)"].same  # b"GET /balance", not the old data
    assert [e["data"] for e in facts(lin, "app-recv", "server")] == ["GET /balance"]


def check_syn_retransmit(c: Comparison) -> None:
    lin = c.linux_events
    assert [e["result"] for e in facts(lin, "connect", "client")] == ["timeout", "ok"]
    assert rows(c, "facts")["connect (client)"].same
    held = [e for e in sent(lin, "client") if e["flags"] == "S" and e.get("delayed")]
    assert len(held) == 2 and all(e["t_arrive"] - e["t"] >= 2.5 for e in held)
    # each held SYN reached the server after its socket was closed: its SYN-ACK is reset
    assert len([e for e in sent(lin, "client") if "R" in e["flags"]]) == 2
    server = rows(c, "states")["server"]
    assert not server.same and "request socket" in server.note


def check_syn_flood(c: Comparison) -> None:
    lin = c.linux_events
    spoofed = [e for e in sent(lin, "attacker")]
    assert len(spoofed) == 16 and all(e.get("injected") for e in spoofed)
    assert all(e["fate"] == "dropped" for e in sent(lin, "server") if e["dst"].startswith("198."))
    assert rows(c, "facts")["connect (client)"].same  # Linux's SYN cookies let it in
    counters = [e for e in lin if e.get("key") == "onlinux.counters" and e["host"] == "server"]
    assert "TcpExtSyncookiesSent" in counters[0]["args"]["counters"]


def check_simultaneous_open(c: Comparison) -> None:
    states = rows(c, "states")
    for host in ("A", "B"):
        assert path(c.linux_events, host) == ["CLOSED", "SYN-SENT", "SYN-RECEIVED",
                                              "ESTABLISHED"]
        assert states[host].same
    assert not any(e["kind"] == "state" and e["to"] == "LISTEN" for e in c.linux_events)


# ---------------------------------------------------------------- closing


def _close_flags(events: list[Event]) -> list[str]:
    segs = sent(events)
    first = next(i for i, e in enumerate(segs) if "F" in e["flags"])
    return [f"{e['host']}:{e['flags']}" for e in segs[first:]]


def check_close(c: Comparison) -> None:
    assert _close_flags(c.linux_events) == ["client:FA", "server:A", "server:FA", "client:A"]
    states = rows(c, "states")
    assert states["client"].same and "not waited out" in states["client"].linux
    assert states["server"].same
    assert rows(c, "exchange")[""].same


def check_half_close(c: Comparison) -> None:
    lin = c.linux_events
    cw = next(e["t"] for e in lin if e["kind"] == "state" and e["to"] == "CLOSE-WAIT")
    la = next(e["t"] for e in lin if e["kind"] == "state" and e["to"] == "LAST-ACK")
    data = [e for e in sent(lin, "server") if cw <= e["t"] <= la and e["len"]]
    assert [e["len"] for e in data] == [50, 45, 31]  # the server still sends in CLOSE-WAIT
    assert rows(c, "facts")["app-recv (client)"].same


def check_close_combined(c: Comparison) -> None:
    lin = c.linux_events
    fin = next(e for e in sent(lin, "client") if "F" in e["flags"])
    close = next(e for e in lin if e.get("key") == "cc.server")
    if close["t"] - fin["t_arrive"] < 0.030:
        # close() within the delayed-ACK time: the ACK of the FIN rides on the server's FIN
        assert _close_flags(lin) == ["client:FA", "server:FA", "client:A"]
        assert rows(c, "exchange")[""].same
    else:  # the server's program was late (a busy machine): the ACK went alone first
        assert _close_flags(lin) == ["client:FA", "server:A", "server:FA", "client:A"]


def check_simultaneous_close(c: Comparison) -> None:
    for host in ("client", "server"):
        p = path(c.linux_events, host)
        assert p[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"], p
        assert rows(c, "states")[host].same


def check_lost_final_ack(c: Comparison) -> None:
    lin = c.linux_events
    assert len([e for e in sent(lin, "server") if "F" in e["flags"]]) == 2
    arms = [e for e in lin if e["kind"] == "timer" and e["timer"] == "time-wait"]
    assert len(arms) == 2 and arms[1]["deadline"] > arms[0]["deadline"]
    retrans = rows(c, "retransmissions")
    assert retrans["fin2 (server)"].engine.count(".") == retrans["fin2 (server)"].linux.count(".")
    assert all(r.same for r in rows(c, "states").values())


# ---------------------------------------------------------------- TIME-WAIT


def check_rst_in_time_wait(c: Comparison) -> None:
    lin = c.linux_events
    end = next(e for e in lin if e["kind"] == "state" and e["host"] == "client"
               and e["from"] == "TIME-WAIT")
    assert end["to"] == "CLOSED" and "RST" in end["cause"]  # tcp_rfc1337 is 0 on Linux
    assert 5.0 <= end["t"] <= 6.0  # the held-up segment arrives at 5 s
    assert any("R" in e["flags"] for e in sent(lin, "server"))
    assert rows(c, "states")["client"].same  # the linux profile: assassinated too


def check_port_reuse(c: Comparison) -> None:
    binds = {e["label"]: e["result"] for e in facts(c.linux_events, "bind")}
    assert binds == {"second server while the first listens": "EADDRINUSE", "restart": "ok"}
    assert rows(c, "facts")["bind (server)"].same


def check_port_reuse_new_only(c: Comparison) -> None:
    # SO_REUSEADDR on the new socket only: the TIME-WAIT socket's old one lacked it
    binds = {e["label"]: e["result"] for e in facts(c.linux_events, "bind")}
    assert binds["restart"] == "EADDRINUSE"
    assert rows(c, "facts")["bind (server)"].same


def check_demo_back_off(c: Comparison) -> None:
    syn = rows(c, "retransmissions")["syn (client)"]
    assert not syn.same
    assert syn.engine == "copies at 1.00 3.00 s"  # the RFC's exponential back-off
    gaps = [float(x) for x in syn.linux.split()[2:-1]]
    assert gaps == pytest.approx([1.0, 2.0], abs=0.1)  # Linux's first timeouts: linear
    assert path(c.linux_events, "client")[-1] == "TIME-WAIT"


CASES: dict[str, tuple[dict[str, object], Callable[[Comparison], None]]] = {
    "handshake": ({}, check_handshake),
    "isn-sync": ({}, check_isn_sync),
    "old-duplicate-syn": ({}, check_old_duplicate_syn),
    "syn-retransmit": ({}, check_syn_retransmit),
    "syn-flood": ({}, check_syn_flood),
    "simultaneous-open": ({}, check_simultaneous_open),
    "close": ({}, check_close),
    "half-close": ({}, check_half_close),
    "close-combined": ({}, check_close_combined),
    "simultaneous-close": ({}, check_simultaneous_close),
    "lost-final-ack": ({}, check_lost_final_ack),
    "rst-in-time-wait": ({}, check_rst_in_time_wait),
    "port-reuse": ({}, check_port_reuse),
    "port-reuse --reuseaddr-new-only": (
        {"switches": Switches(reuseaddr="new-only")}, check_port_reuse_new_only),
    "demo --drop syn:2 --profile rfc": (
        {"faults": (parse("drop", "syn:2"),), "profile": "rfc"}, check_demo_back_off),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compare(case: str) -> None:
    kw, check = CASES[case]
    c = run_both(case.split()[0], **kw)  # type: ignore[arg-type]
    assert c.linux.why == "settled", c.linux.why
    assert sent(c.engine) and sent(c.linux_events)
    check(c)


def test_compare_prints_both_diagrams_and_the_table() -> None:
    res = subprocess.run([sys.executable, "-m", "tcplab", "compare", "close-combined",
                          "--width", "130"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "The engine (simulator, linux profile, virtual time)" in out
    assert " │ Linux " in out  # beside each other at 130 columns
    assert "= states server: LISTEN → SYN-RECEIVED → ESTABLISHED" in out
    assert "aspects alike" in out


def test_compare_json_holds_both_traces_and_the_rows() -> None:
    res = subprocess.run([sys.executable, "-m", "tcplab", "compare", "close", "--json",
                          "--lang", "zh"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "tcplab-compare/1" and doc["profile"] == "linux"
    assert doc["engine"]["events"] and doc["linux"]["events"]
    assert doc["aspects"] == len(doc["differences"])
    states = [r for r in doc["differences"] if r["aspect"] == "states"]
    assert states and "未等待结束" in states[0]["linux"]  # in Chinese
