"""Scenarios about the middle of a close: FIN-WAIT-2, a FIN out of order, a CLOSE-WAIT leak.

* ``fin-wait-2``: how long the active closer waits for the peer's FIN.  RFC
  9293 sets no limit; BSD and Linux end an *orphaned* FIN-WAIT-2 (the
  application called close(): nobody can read any more) after
  ``tcp_fin_timeout`` (Linux ``tcp_close()`` -> ``tcp_time_wait(sk,
  TCP_FIN_WAIT2, tmo)``), silently.  After ``shutdown(SHUT_WR)`` the socket is
  still the application's (it may read what the peer still sends), so it
  waits as long as the peer takes.
* ``fin-out-of-order``: a FIN that arrives before data it follows is kept,
  like the data, until the hole is filled (RFC 9293 3.10.7.4 eighth step:
  the FIN is processed when RCV.NXT reaches it; Linux queues it in the
  out-of-order queue, ``tcp_data_queue_ofo``).
* ``close-wait-leak``: an application that never calls close(): CLOSE-WAIT
  lasts as long as the process, and a new SYN for its 4-tuple meets that
  synchronized connection (RFC 5961 4.2: a challenge ACK, not a SYN-ACK).
"""

from __future__ import annotations

import errno
from typing import Any

from tcplab.api.sockets import IPPROTO_TCP, SO_REUSEADDR, SOL_SOCKET, TCP_NODELAY, TcpSocket
from tcplab.i18n import seconds
from tcplab.i18n import text as tr
from tcplab.scenarios.base import (
    REQUEST,
    SERVER,
    Scenario,
    Switches,
    conn_paths,
    drops,
    exchange,
    facts,
    listen,
    note,
    sent,
    text_of,
    two_hosts,
)
from tcplab.sim.network import Fault, Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event

CLIENT_PORT = 40000


def _conn_states(events: list[Event], host: str, conn_prefix: str | None = None) -> list[Event]:
    return [e for e in events if e["kind"] == "state" and e["host"] == host
            and not str(e["conn"]).endswith("-*:*")
            and (conn_prefix is None or str(e["conn"]).startswith(conn_prefix))]


def _span(events: list[Event], host: str, state: str) -> tuple[float | None, float | None,
                                                               str | None]:
    """When ``host`` first entered ``state``, when it left it (None: never) and why."""
    entered = left = None
    cause = None
    for e in _conn_states(events, host):
        if entered is None and e["to"] == state:
            entered = e["t"]
        elif entered is not None and e["from"] == state:
            left, cause = e["t"], e["cause"]
            break
    return entered, left, cause


def _first_path(events: list[Event], host: str) -> list[str]:
    return next(iter(conn_paths(events, host).values()), [])


def arg(e: Event, name: str) -> Any:
    """A note's field: top-level (``fact``, ``host``, ``result``...) or one of its ``args``."""
    if name in e:
        return e[name]
    args = e.get("args")
    return args.get(name) if isinstance(args, dict) else None


def _read_to_eof(sock: TcpSocket) -> bytes:
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def _client(net: Network, port: int = CLIENT_PORT) -> SimSocket:
    cli = SimSocket(net, net.hosts["client"])
    cli.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    cli.bind(("0.0.0.0", port))
    return cli


# ---------------------------------------------------------------- fin-wait-2


def run_fin_wait_2(seed: int, sw: Switches) -> Network:
    net, c, _s = two_hosts(seed, sw)
    srv = listen(net, net.hosts["server"], 80)
    cli = _client(net)
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    exchange(cli, conn)
    fin_timeout = c.config.fin_wait_2_timeout
    late = (fin_timeout if fin_timeout > 0 else 60.0) + 30.0
    if sw.variant == "shutdown":
        note(net, "client: shutdown(SHUT_WR): no more to send, but the socket stays the "
                  "application's: it can still read", key="fw2.shutdown")
        cli.shutdown(1)  # SHUT_WR
    else:
        note(net, "client: close(): the socket is orphaned: no application can read it any "
                  "more", key="fw2.close")
        cli.close()
    assert conn.recv(4096) == b""
    note(net, f"server: end of stream, but the application does not close() for {late:g} s",
         key="fw2.server-busy", d=late)
    net.run_for(late)
    note(net, f"server: close(), {late:g} s late: its FIN goes out now", key="fw2.server-close",
         d=late)
    conn.close()
    if sw.variant == "shutdown":
        got = cli.recv(4096)
        note(net, "client: recv() returns end of stream: the server's FIN arrived",
             fact="app-recv", host="client", data=text_of(got), key="fw2.client-eof")
    net.run()
    return net


def outcome_fin_wait_2(events: list[Event]) -> dict[str, Any]:
    entered, left, cause = _span(events, "client", "FIN-WAIT-2")
    timer = next((e for e in events if e["kind"] == "timer" and e["host"] == "client"
                  and e["timer"] == "fin-wait-2" and e["action"] == "armed"), None)
    server_fin = next(e for e in sent(events, "server") if "F" in e["flags"])
    answer = next((e for e in sent(events, "client") if e["t"] >= server_fin["t_arrive"]), None)
    server_end = _conn_states(events, "server")[-1]
    return {
        "client_path": _first_path(events, "client"),
        "server_path": _first_path(events, "server"),
        "fin_wait_2_timer": None if timer is None else round(timer["deadline"] - timer["t"], 6),
        "fin_wait_2_seconds": None if entered is None or left is None
        else round(left - entered, 6),
        "fin_wait_2_ended_by": cause,
        "server_fin_after": round(server_fin["t"] - entered, 6) if entered is not None else None,
        "server_fin_answered_with": None if answer is None else answer["flags"],
        "server_closed_cause": server_end["cause"],
    }


def report_fin_wait_2(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    out = []
    if o["fin_wait_2_timer"] is not None:
        out.append("  " + tr("ui.fw2.timer", lang, t=seconds(o["fin_wait_2_timer"], lang)))
    else:
        out.append("  " + tr("ui.fw2.no-timer", lang))
    if o["fin_wait_2_seconds"] is not None:
        out.append("  " + tr("ui.fw2.lasted", lang, t=seconds(o["fin_wait_2_seconds"], lang)))
    if o["server_fin_after"] is not None:
        out.append("  " + tr("ui.fw2.late-fin", lang, t=seconds(o["server_fin_after"], lang),
                             flags=o["server_fin_answered_with"] or "-"))
    return out


# ---------------------------------------------------------------- fin-out-of-order

PART1 = b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n"
PART2 = b"the last part of the body\n"
HOLD = 0.12  #: how long the network holds the first part back (s)


def run_fin_out_of_order(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    srv = listen(net, net.hosts["server"], 80)
    cli = _client(net)
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    cli.sendall(REQUEST)
    note(net, "client: sends its request, then shutdown(SHUT_WR): FIN-WAIT-2, still reading",
         key="ooo.shutdown")
    cli.shutdown(1)
    _read_to_eof(conn)
    net.run_for(0.2)
    first = conn.conn.snd_nxt if conn.conn is not None else 0
    net.add_fault(Fault("delay", lambda p: p.src_host == "server" and p.seg.seq == first
                        and bool(p.seg.payload), delay=HOLD,
                        name="the first part is held up"))
    note(net, "server: sends the answer in two segments and closes; the network holds the "
              "first segment back", key="ooo.server", d=HOLD)
    conn.sendall(PART1)
    conn.sendall(PART2)
    conn.close()
    got = _read_to_eof(cli)
    note(net, f"client: read {len(got)} bytes in order, then end of stream", fact="app-recv",
         host="client", data=text_of(got), key="ooo.read", n=len(got))
    cli.close()
    net.run()
    return net


def outcome_fin_out_of_order(events: list[Event]) -> dict[str, Any]:
    srv = [e for e in sent(events, "server") if e["len"] or "F" in e["flags"]]
    fin = next(e for e in srv if "F" in e["flags"])
    data = [e for e in srv if e["len"] and e["t"] <= fin["t"]][-2:]
    held = next(e for e in data if e.get("delayed"))
    fin_at = fin["t_arrive"]
    entered, _left, _cause = _span(events, "client", "TIME-WAIT")
    ack_of_fin = (fin["seq"] + fin["len"] + 1) & 0xFFFFFFFF
    client_acks = [e for e in sent(events, "client") if e["t"] >= fin["t"] and "A" in e["flags"]
                   and not e["len"]]
    before_fill = [e["ack"] for e in client_acks if e["t"] < held["t_arrive"]]
    final_ack = next((e for e in client_acks if e["ack"] == ack_of_fin), None)
    got = facts(events, "app-recv", "client")
    return {
        "fin_arrived_at": fin_at,
        "missing_data_arrived_at": held["t_arrive"],
        "fin_before_missing_data": fin_at < held["t_arrive"],
        "acks_while_waiting": len(before_fill),
        "acks_stay_at_the_hole": bool(before_fill) and all(a == held["seq"]
                                                           for a in before_fill),
        "fin_processed_at": entered,
        "fin_waited": None if entered is None else round(entered - fin_at, 6),
        "fin_acked_at": None if final_ack is None else final_ack["t"],
        "client_path": _first_path(events, "client"),
        "client_read_in_order": bool(got) and got[-1]["data"] == text_of(PART1 + PART2),
    }


def report_fin_out_of_order(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    return ["  " + tr("ui.ooo.fin", lang, t=f"{o['fin_arrived_at']:.3f}"),
            "  " + tr("ui.ooo.data", lang, t=f"{o['missing_data_arrived_at']:.3f}"),
            "  " + tr("ui.ooo.processed", lang, t=f"{o['fin_processed_at'] or 0:.3f}",
                      d=seconds(o["fin_waited"] or 0.0, lang))]


# ---------------------------------------------------------------- close-wait-leak


def run_close_wait_leak(seed: int, sw: Switches) -> Network:
    cfg: dict[str, Any] = {}
    if sw.variant == "no-challenge-ack":
        cfg["challenge_ack_limit"] = 0
    net, c, s = two_hosts(seed, sw, **cfg)
    srv = listen(net, s, 80)
    note(net, "server: a buggy application: it answers, but never calls close()",
         key="leak.app")
    cli = _client(net)
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    exchange(cli, conn)
    note(net, "client: close()", key="app.client-close")
    cli.close()
    fin_timeout = c.config.fin_wait_2_timeout
    wait = (fin_timeout if fin_timeout > 0 else 60.0) + 40.0
    net.run_for(wait)
    note(net, f"{wait:g} s later: the client connects again from the same port {CLIENT_PORT}: "
              "the same 4-tuple, while the server still holds it in CLOSE-WAIT",
         key="leak.reconnect", d=wait, port=CLIENT_PORT, state=conn.state)
    again = _client(net)
    t0 = net.now
    try:
        again.connect((SERVER, 80))
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "?")
        note(net, f"client: connect() failed: {code} after {net.now - t0:g} s", fact="connect",
             host="client", result=code, after=round(net.now - t0, 6), key="leak.failed",
             d=round(net.now - t0, 6), err=code)
    else:
        note(net, f"client: connected, {net.now - t0:g} s after connect()", fact="connect",
             host="client", result="ok", after=round(net.now - t0, 6), key="leak.connected",
             d=round(net.now - t0, 6))
    net.run()
    note(net, f"server: the leaked connection is {conn.state} at the end", fact="leaked",
         host="server", state=conn.state, key="leak.end")
    return net


def outcome_close_wait_leak(events: list[Event]) -> dict[str, Any]:
    first_conn = next(iter(conn_paths(events, "server")))
    changes = _conn_states(events, "server", first_conn)
    leak_path = [changes[0]["from"]]
    leak_end: Event | None = None
    for e in changes:
        leak_path.append(e["to"])
        if e["to"] == "CLOSED":
            leak_end = e
            break
    until = leak_end["t"] if leak_end is not None else float("inf")
    connect = facts(events, "connect", "client")[0]
    after = float(arg(connect, "after"))
    reconnect_at = connect["t"] - after
    syns = [e for e in sent(events, "client") if e["flags"] == "S" and e["t"] >= reconnect_at]
    syn_ids = {e["id"] for e in syns}
    answers = [e for e in sent(events, "server") if reconnect_at <= e["t"] <= until
               and e.get("conn") == first_conn]
    handled = [e["reason"] for e in drops(events, "server") if e.get("id") in syn_ids
               and e["t"] <= until]
    client_fw2 = _span(events, "client", "FIN-WAIT-2")
    end = facts(events, "leaked", "server")
    return {
        "server_path": leak_path,
        "client_fin_wait_2_ended_by": client_fw2[2],
        "reconnect_syns": len(syns),
        "close_wait_answers": len(answers),
        "close_wait_answered_syn_with": ", ".join(sorted({e["flags"] for e in answers}))
        or None,
        "first_syn_handled_as": handled[0] if handled else None,
        "syns_ignored": sum(1 for r in handled if "rate-limited" in r),
        "client_answered_rst": sum(1 for e in sent(events, "client")
                                   if e["t"] >= reconnect_at and "R" in e["flags"]),
        "leak_ended_by": None if leak_end is None else leak_end["cause"],
        "reconnect": connect["result"],
        "reconnect_seconds": after,
        "server_state_at_end": arg(end[0], "state") if end else None,
    }


def report_close_wait_leak(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    key = "ui.leak.ok" if o["reconnect"] == "ok" else "ui.leak.failed"
    return ["  " + tr("ui.leak.syns", lang, n=o["reconnect_syns"],
                      acks=o["close_wait_answers"]),
            "  " + tr(key, lang, t=seconds(o["reconnect_seconds"], lang), err=o["reconnect"]),
            "  " + tr("ui.leak.end", lang, state=o["server_state_at_end"] or "-")]


SCENARIOS = [
    Scenario("fin-wait-2", run_fin_wait_2, outcome_fin_wait_2, group="close",
             report=report_fin_wait_2, variants=("shutdown",),
             headline=("fin_wait_2_ended_by", "fin_wait_2_seconds",
                       "server_fin_answered_with")),
    Scenario("fin-out-of-order", run_fin_out_of_order, outcome_fin_out_of_order, group="close",
             report=report_fin_out_of_order,
             headline=("fin_before_missing_data", "fin_waited")),
    Scenario("close-wait-leak", run_close_wait_leak, outcome_close_wait_leak, group="failures",
             report=report_close_wait_leak, variants=("no-challenge-ack",),
             headline=("close_wait_answered_syn_with", "reconnect", "reconnect_seconds")),
]
