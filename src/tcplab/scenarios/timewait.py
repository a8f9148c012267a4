"""Scenarios about TIME-WAIT: why it exists, how it is attacked, what it costs.

RFC 9293 3.4.1 (MSL and the quiet time), 3.6.1 (TIME-WAIT); RFC 1337
(TIME-WAIT assassination); Linux's bind rules for SO_REUSEADDR
(inet_csk_bind_conflict) as the engine implements them.
"""

from __future__ import annotations

import errno
from typing import Any

from tcplab.api.sockets import IPPROTO_TCP, SO_REUSEADDR, SOL_SOCKET, TCP_NODELAY
from tcplab.i18n import colon, text
from tcplab.scenarios.base import (
    CLIENT,
    DELAY,
    REQUEST,
    RESPONSE,
    SERVER,
    Scenario,
    Switches,
    app_calls,
    count_at,
    drops,
    exchange,
    facts,
    listen,
    note,
    recv_exactly,
    sent,
    text_of,
    time_wait_spans,
    two_hosts,
    with_switch,
)
from tcplab.sim.network import Fault, LinkSpec, Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event

# ---------------------------------------------------------------- the stale segment

OLD_ISN = 1_000_000       #: the server's ISN in the old connection (chosen, see the text)
OLD_CLIENT_ISN = 7_000_000  #: the client's ISN in the old connection
FIRST_PART = b"old answer, first 300 bytes: " + b"." * 271
STALE = b"STALE BYTES OF THE OLD CONNECTION!"   # relative SEQ=301 of the old connection
CLIENT_PORT = 40000


def _old_connection(net: Network, stale_arrival: float) -> None:
    """An old connection whose second data segment (SEQ=301) wanders in the network.

    The segment is held until virtual time ``stale_arrival``; the server
    retransmits it after its RTO, so the old connection itself ends well.
    """
    srv = listen(net, net.hosts["server"], 80)
    cli = SimSocket(net, net.hosts["client"])
    cli.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    cli.bind(("0.0.0.0", CLIENT_PORT))
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    cli.sendall(b"GET /old")
    recv_exactly(conn, 8)
    stale_seq = (OLD_ISN + 1 + len(FIRST_PART)) & 0xFFFFFFFF
    conn.sendall(FIRST_PART)
    net.add_fault(Fault("delay", lambda p: p.src_host == "server" and p.seg.seq == stale_seq
                        and bool(p.seg.payload), delay=stale_arrival - net.now - 0.05,
                        name="SEQ=301 held up in the network"))
    note(net, "server: the second data segment (relative SEQ=301) is held up in the network",
         fact="stale", seq=stale_seq, key="stale.held")
    conn.sendall(STALE)
    _note_when(net, stale_arrival, "the held-up SEQ=301 segment of the old connection arrives "
                                   "at the client now", key="stale.arrives")
    recv_exactly(cli, len(FIRST_PART) + len(STALE))
    note(net, "client: got all bytes (SEQ=301 was retransmitted); client closes first",
         key="stale.got-all")
    cli.close()
    assert conn.recv(100) == b""
    conn.close()
    net.run_for(0.5)


def _note_when(net: Network, at: float, text: str, **fact: Any) -> None:
    """A diagram note at the first simulator step at or after ``at``."""
    def check() -> None:
        if net.now >= at:
            net.on_step.remove(check)
            note(net, text, **fact)
    net.on_step.append(check)


def _new_connection(net: Network) -> SimSocket:
    cli = SimSocket(net, net.hosts["client"])
    cli.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    cli.bind(("0.0.0.0", CLIENT_PORT))
    cli.connect((SERVER, 80))
    return cli


def run_stale_segment(seed: int, sw: Switches) -> Network:
    # Chosen ISNs: the server's new ISN is its old one + 300, so its first
    # byte has exactly the sequence number of the stale segment; the client's
    # new ISN is its old one + 100, so the stale segment's ACK field is less
    # than a window old and passes RFC 5961 5.2's check (as Linux applies it).
    net, c, s = two_hosts(seed, sw, server_isns=[OLD_ISN, OLD_ISN + len(FIRST_PART)],
                          client_isns=[OLD_CLIENT_ISN, OLD_CLIENT_ISN + 100])
    reuse_at = 10.0
    # The new connection: SYN, SYN-ACK, then the request rides with the third
    # segment (t = reuse_at + 2 delays); the response leaves the server at +3
    # delays and reaches the client at +4.  The stale segment arrives in
    # between, while the response is in flight: the client's next ACK then
    # covers bytes the server has really sent, and nothing looks wrong.
    _old_connection(net, stale_arrival=reuse_at + 3.5 * DELAY)
    srv_sock = next(iter(s.listeners.values()))
    net.run(until=reuse_at)
    note(net, f"client: at t={reuse_at:g} s, connect() again from the same port "
              f"{CLIENT_PORT} to the same server port: the same 4-tuple", key="stale.reconnect",
         at=reuse_at, port=CLIENT_PORT)
    try:
        cli = _new_connection(net)
    except OSError as exc:
        note(net, f"client: connect() fails: {exc.strerror}",
             fact="connect", host="client", result=errno.errorcode.get(exc.errno or 0, "?"),
             key="stale.connect-fails")
        key = (CLIENT, CLIENT_PORT, SERVER, 80)
        net.run_until(lambda: not c.in_time_wait(key), timeout=120, what="TIME-WAIT over")
        note(net, "client: TIME-WAIT is over; connect() again", key="stale.tw-over")
        cli = _new_connection(net)
    note(net, "client: connected", fact="connect", host="client", result="ok",
         key="app.connected")
    cli.sendall(REQUEST)
    conn = _accept(net, srv_sock)
    recv_exactly(conn, len(REQUEST))
    conn.sendall(RESPONSE)
    note(net, "server: sends the new response", fact="app-send", host="server",
         data=text_of(RESPONSE), key="stale.sends")
    got = recv_exactly(cli, len(RESPONSE))
    note(net, "client: read the response", fact="app-recv", host="client", data=text_of(got),
         key="stale.read")
    cli.close()
    assert conn.recv(100) == b""
    conn.close()
    net.run()
    return net


def _accept(net: Network, lst: Any) -> SimSocket:
    """Accept on a listener the scenario only has as an engine object."""
    net.run_until(lambda: bool(lst.accept_queue), timeout=5, what="accept")
    conn = lst.accept()
    sock = SimSocket(net, net.hosts["server"])
    sock.conn = conn
    return sock


def outcome_stale_segment(events: list[Event]) -> dict[str, Any]:
    stale_seq = facts(events, "stale")[0]["seq"]
    stale = next(e for e in sent(events, "server")
                 if e["seq"] == stale_seq and e["len"] and e.get("delayed"))
    handled = [e["reason"] for e in drops(events, "client") if e.get("id") == stale["id"]]
    sent_data = facts(events, "app-send", "server")[-1]["data"]
    got = facts(events, "app-recv", "client")[-1]["data"]
    connects = [e["result"] for e in facts(events, "connect", "client")]
    return {
        "stale_seq": stale_seq,
        "stale_arrived_at": stale["t_arrive"],
        "stale_fate": stale["fate"],
        "stale_handled_by_client": handled[0] if handled else "accepted by the new connection",
        "reconnect_attempts": connects,
        "server_sent": sent_data,
        "client_received": got,
        "corrupted_bytes": sum(1 for a, b in zip(sent_data, got, strict=False) if a != b),
    }


def report_stale_segment(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    head = (text("ui.stale.sent", lang), text("ui.stale.got", lang))
    a, b = outcome["server_sent"], outcome["client_received"]
    rows = [(repr(a[i:i + 16]), repr(b[i:i + 16]), a[i:i + 16] == b[i:i + 16])
            for i in range(0, max(len(a), len(b)), 16)]
    w = max(len(head[0]), *(len(x) for x, _y, _same in rows))
    lines = [f"  {head[0]:<{w}} | {head[1]}"]
    for x, y, same in rows:
        lines.append(f"  {x:<{w}} |{'  ' if same else ' *'} {y}")
    return lines


# ---------------------------------------------------------------- rst-in-time-wait


def run_rst_in_time_wait(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw, server_isns=[OLD_ISN])
    # A delayed duplicate of the old connection reaches the client in TIME-WAIT
    # after 5 s; the client answers with an ACK, the server (which has no
    # connection any more) with a RST: the RST that could kill TIME-WAIT.
    _old_connection(net, stale_arrival=5.0)
    net.run()
    return net


def outcome_rst_in_time_wait(events: list[Event]) -> dict[str, Any]:
    spans = time_wait_spans(events, "client")
    span = spans[0]
    rsts = [e for e in drops(events, "client") if e["flags"].startswith("R")]
    return {
        "server_sent_rst": any("R" in e["flags"] for e in sent(events, "server")),
        "rst_in_time_wait": [e["reason"] for e in rsts],
        "time_wait_seconds": round(span["left"] - span["entered"], 6),
        "time_wait_cause": span["cause"],
        "assassinated": "RST" in (span["cause"] or ""),
    }


# ---------------------------------------------------------------- port-reuse


def _try_bind(net: Network, sock: SimSocket, label: str, port: int, who: str) -> bool:
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as exc:
        note(net, f"{label}: bind({port}) fails: EADDRINUSE", fact="bind", host="server",
             label=label, reuse=sock.reuseaddr, result=errno.errorcode.get(exc.errno or 0, "?"),
             why=exc.strerror, key="reuse.bind-fails", who=who, port=port)
        return False
    note(net, f"{label}: bind({port}) ok", fact="bind", host="server", label=label,
         reuse=sock.reuseaddr, result="ok", why="", key="reuse.bind-ok", who=who, port=port)
    return True


def run_port_reuse(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    old_reuse = sw.reuseaddr == "both"
    new_reuse = sw.reuseaddr in ("both", "new-only")
    srv = SimSocket(net, s)
    if old_reuse:
        srv.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    note(net, f"server: socket(), SO_REUSEADDR={int(old_reuse)}, bind(8080), listen()",
         key="reuse.listen", flag=int(old_reuse), port=8080)
    srv.bind(("0.0.0.0", 8080))
    srv.listen()
    cli = SimSocket(net, c)
    cli.connect((SERVER, 8080))
    conn, _ = srv.accept()
    exchange(cli, conn)
    probe = SimSocket(net, s)
    probe.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    _try_bind(net, probe, "second server while the first listens", 8080, "live")
    note(net, "server: stopped with Ctrl+C: the kernel closes its sockets, the server first",
         key="reuse.stop")
    conn.close()
    srv.close()
    assert cli.recv(100) == b""
    cli.close()
    net.run_for(1.0)
    restart = SimSocket(net, s)
    if new_reuse:
        restart.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    note(net, f"server: restarted at once, SO_REUSEADDR={int(new_reuse)}", key="reuse.restart",
         flag=int(new_reuse))
    if not _try_bind(net, restart, "restart", 8080, "restart"):
        net.run_until(lambda: not s.time_wait, timeout=120, what="TIME-WAIT over")
        again = SimSocket(net, s)
        if new_reuse:
            again.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        _try_bind(net, again, "restart after TIME-WAIT", 8080, "later")
    net.run()
    return net


def outcome_port_reuse(events: list[Event]) -> dict[str, Any]:
    binds = {e["label"]: e for e in facts(events, "bind")}
    live = binds["second server while the first listens"]
    restart = binds["restart"]
    later = binds.get("restart after TIME-WAIT")
    spans = time_wait_spans(events, "server")
    return {
        "server_time_wait": bool(spans),
        "live_listener_bind": live["result"],
        "restart_reuseaddr": restart["reuse"],
        "restart_bind": restart["result"],
        "restart_refused_because": restart["why"],
        "restart_after_time_wait": later["result"] if later else None,
        "app_bind_calls": len(app_calls(events, "bind", "server")),
    }


# ---------------------------------------------------------------- server-close-storm

STORM_REQUESTS = 20
STORM_INTERVAL = 2.0
STORM_SAMPLES = [float(t) for t in range(0, 121, 10)]
MODES = {"server-close": "192.0.2.10", "client-close": "192.0.2.11", "keep-alive": "192.0.2.12"}


def run_server_close_storm(seed: int, sw: Switches) -> Network:
    net = Network(seed, msl=30.0)
    client = net.add_host("client", CLIENT, sw.config())
    for mode, addr in MODES.items():
        host = net.add_host(mode, addr, sw.config())
        net.link(client, host, LinkSpec(delay=0.005))
    lsocks = {mode: listen(net, net.hosts[mode], 80) for mode in MODES}
    note(net, f"{STORM_REQUESTS} short requests, one every {STORM_INTERVAL:g} s, to three "
              "servers: the server closes / the client closes / one keep-alive connection",
         key="storm.intro", n=STORM_REQUESTS, every=STORM_INTERVAL)
    keep_cli = SimSocket(net, client)
    keep_cli.connect((MODES["keep-alive"], 80))
    keep_srv, _ = lsocks["keep-alive"].accept()
    for i in range(STORM_REQUESTS):
        start = i * STORM_INTERVAL
        net.run(until=start)
        for mode in ("server-close", "client-close"):
            cli = SimSocket(net, client)
            cli.connect((MODES[mode], 80))
            srv, _ = lsocks[mode].accept()
            exchange(cli, srv)
            first, second = (srv, cli) if mode == "server-close" else (cli, srv)
            first.close()
            assert second.recv(10) == b""
            second.close()
        exchange(keep_cli, keep_srv)
    keep_cli.close()
    assert keep_srv.recv(10) == b""
    keep_srv.close()
    net.run()
    return net


def outcome_server_close_storm(events: list[Event]) -> dict[str, Any]:
    table: list[dict[str, Any]] = []
    spans = {mode: time_wait_spans(events, mode) for mode in MODES}
    client_spans = time_wait_spans(events, "client")
    by_server = {mode: [s for s in client_spans if s["conn"].split("-")[1].startswith(addr)]
                 for mode, addr in MODES.items()}
    for t in STORM_SAMPLES:
        row: dict[str, Any] = {"t": t}
        for mode in MODES:
            row[mode] = count_at(spans[mode], t)
            row[f"{mode} (client)"] = count_at(by_server[mode], t)
        table.append(row)
    return {
        "requests_per_mode": STORM_REQUESTS,
        "peak_server_time_wait": {m: max(r[m] for r in table) for m in MODES},
        "peak_client_time_wait": {m: max(r[f"{m} (client)"] for r in table) for m in MODES},
        "table": table,
    }


def report_server_close_storm(events: list[Event], outcome: dict[str, Any],
                              lang: str) -> list[str]:
    title = text("ui.storm.title", lang)
    cols = list(MODES)
    lines = [title, "  t (s) | " + " | ".join(f"{m:>15}" for m in cols)]
    for row in outcome["table"]:
        cells = [f"{row[m]:>6} / {row[f'{m} (client)']:<6}" for m in cols]
        lines.append((f"  {row['t']:5.0f} | " + " | ".join(f"{c:>15}" for c in cells)).rstrip())
    return lines


def report_port_reuse(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    return [f"  {text('who.' + e['who'], lang)}{colon(lang)}SO_REUSEADDR={int(e['reuse'])} → "
            f"{e['result']}" + (f" ({e['why']})" if e["why"] and lang == "en" else "")
            for e in facts(events, "bind")]


SCENARIOS = [
    Scenario("stale-segment", run_stale_segment, outcome_stale_segment, group="time-wait",
             counterfactual=with_switch(None, time_wait=0.0), report=report_stale_segment,
             headline=("reconnect_attempts", "stale_handled_by_client", "corrupted_bytes")),
    Scenario("rst-in-time-wait", run_rst_in_time_wait, outcome_rst_in_time_wait, group="time-wait",
             counterfactual=with_switch(None, rfc1337=False),
             headline=("assassinated", "time_wait_seconds")),
    Scenario("port-reuse", run_port_reuse, outcome_port_reuse, group="time-wait",
             counterfactual=with_switch(None, reuseaddr="new-only"), report=report_port_reuse,
             headline=("live_listener_bind", "restart_bind", "restart_after_time_wait")),
    Scenario("server-close-storm", run_server_close_storm, outcome_server_close_storm, group="time-wait",
             counterfactual=with_switch(None, time_wait=0.0), report=report_server_close_storm,
             diagram=False, headline=("peak_server_time_wait",)),
]
