"""Scenarios about what TIME-WAIT costs and what is done about it, as Linux does it.

* ``port-exhaustion``: TIME-WAIT entries hold ports; connect() towards the same
  destination fails with EADDRNOTAVAIL once ``ip_local_port_range`` is used up,
  while other destinations still get ports (Linux ``__inet_hash_connect()``
  needs only a free 4-tuple, so a port is shared across destinations).
* ``tw-reuse``: Linux ``tcp_tw_reuse`` (``tcp_twsk_unique()``): connect() may
  take a TIME-WAIT 4-tuple when timestamps protect the new connection (PAWS,
  RFC 7323 5) and the entry's last timestamp is ``tcp_tw_reuse_delay`` old; the
  default 2 allows it on loopback only (since 4.19).
* ``tw-buckets``: ``tcp_max_tw_buckets``: beyond it a closing connection skips
  TIME-WAIT (``tcp_time_wait()``: "TCP: time wait bucket table overflow").
* ``linger0``: SO_LINGER {on, 0}: close() aborts with a RST (RFC 9293 3.10.5
  ABORT), no TIME-WAIT, the peer reads ECONNRESET.
* ``syn-in-time-wait``: a SYN for a 4-tuple in TIME-WAIT (RFC 9293 3.10.7.4,
  RFC 6191, RFC 5961 4.2; Linux ``tcp_timewait_state_process()``).

Scenarios that need many connections narrow the Linux knob they are about
(the port range, the bucket count) so the run stays short, unless the run's
``--sysctl`` sets it; the narrowed value is in the trace (a note) and in the text.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

from tcplab.api.sockets import SO_LINGER, SO_REUSEADDR, SOL_SOCKET, TcpSocket
from tcplab.engine.profiles import ConfigError, sysctl_name
from tcplab.i18n import pad, seconds, width
from tcplab.i18n import text as tr
from tcplab.scenarios.base import (
    CLIENT,
    DELAY,
    REQUEST,
    SERVER,
    Scenario,
    Switches,
    conn_paths,
    connected,
    drops,
    exchange,
    facts,
    install_faults,
    listen,
    note,
    recv_exactly,
    sent,
    time_wait_spans,
    two_hosts,
)
from tcplab.scenarios.teardown import arg
from tcplab.sim.network import Fault, LinkSpec, Network, Packet
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event


def user_sets(sw: Switches, name: str) -> bool:
    """Did the run's ``--sysctl`` set ``name`` (full form: net.ipv4.tcp_max_tw_buckets)?"""
    for assignment in sw.sysctls:
        try:
            if sysctl_name(assignment.partition("=")[0]) == name:
                return True
        except ConfigError:
            continue
    return False


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "?")


def _close_pair(net: Network, first: TcpSocket, second: TcpSocket) -> None:
    """``first`` closes, ``second`` reads end of stream and closes too."""
    first.close()
    assert second.recv(100) == b""
    second.close()


def _port_of(conn: str) -> int:
    return int(conn.split("-")[0].rpartition(":")[2])


# ---------------------------------------------------------------- port-exhaustion

NARROW_PORTS = (32768, 32775)  #: 8 ephemeral ports, unless --sysctl ip_local_port_range


def run_port_exhaustion(seed: int, sw: Switches) -> Network:
    narrowed = not user_sets(sw, "net.ipv4.ip_local_port_range")
    cfg: dict[str, Any] = {}
    if narrowed:
        cfg = {"ephemeral_low": NARROW_PORTS[0], "ephemeral_high": NARROW_PORTS[1]}
    net, c, s = two_hosts(seed, sw, **cfg)
    lo, hi = c.config.ephemeral_low, c.config.ephemeral_high
    note(net, f"client: ephemeral ports {lo}-{hi} ({hi - lo + 1} ports)", fact="ports",
         host="client", lo=lo, hi=hi, n=hi - lo + 1,
         key="exh.range-narrowed" if narrowed else "exh.range")
    srv80 = listen(net, s, 80)
    srv8080 = listen(net, s, 8080)
    note(net, "client: one short connection after another to 192.0.2.2:80, each closed by "
              "the client first", key="exh.loop", port=80)
    for _ in range(hi - lo + 2):
        cli = SimSocket(net, c)
        try:
            cli.connect((SERVER, 80))
        except OSError as exc:
            note(net, f"client: connect() to port 80 fails: {_errname(exc)}", fact="connect",
                 host="client", result=_errname(exc), dst=f"{SERVER}:80",
                 tw=len(c.time_wait), key="exh.fails", err=_errname(exc))
            break
        conn, _ = srv80.accept()
        note(net, "client: connected", fact="connect", host="client", result="ok",
             conn=cli.conn.name if cli.conn is not None else "", dst=f"{SERVER}:80",
             key="exh.ok", port=cli.getsockname()[1])
        _close_pair(net, cli, conn)
        net.run_for(0.3)
    other = SimSocket(net, c)
    other.connect((SERVER, 8080))
    conn, _ = srv8080.accept()
    note(net, f"client: connect() to port 8080 (another destination) works, from port "
              f"{other.getsockname()[1]}", fact="connect", host="client", result="ok",
         conn=other.conn.name if other.conn is not None else "", dst=f"{SERVER}:8080",
         key="exh.other", port=other.getsockname()[1])
    _close_pair(net, other, conn)
    first = next((span for span in time_wait_spans(net.trace.to_json_list(), "client")), None)
    if first is not None and first["arms"]:
        net.run(until=first["arms"][-1]["deadline"] + 0.1)
    again = SimSocket(net, c)
    try:
        again.connect((SERVER, 80))
    except OSError as exc:
        note(net, f"client: connect() to port 80 fails again: {_errname(exc)}",
             fact="connect", host="client", result=_errname(exc), dst=f"{SERVER}:80",
             key="exh.fails", err=_errname(exc), tw=len(c.time_wait))
    else:
        conn, _ = srv80.accept()
        note(net, "client: the oldest TIME-WAIT entry has ended: connect() to port 80 works "
                  "again", fact="connect", host="client", result="ok",
             conn=again.conn.name if again.conn is not None else "", dst=f"{SERVER}:80",
             key="exh.again", port=again.getsockname()[1])
        _close_pair(net, again, conn)
    net.run()
    return net


def outcome_port_exhaustion(events: list[Event]) -> dict[str, Any]:
    ports = facts(events, "ports", "client")[0]
    calls = facts(events, "connect", "client")
    to80 = [e for e in calls if arg(e, "dst") == f"{SERVER}:80"]
    fail = next((e for e in to80 if e["result"] != "ok"), None)
    before = [e for e in to80 if fail is None or e["t"] < fail["t"]]
    after = [e for e in to80 if fail is not None and e["t"] > fail["t"]]
    other = next((e for e in calls if arg(e, "dst") != f"{SERVER}:80"), None)
    spans = time_wait_spans(events, "client")
    tw_ports = {_port_of(s["conn"]) for s in spans if s["conn"].endswith(f"{SERVER}:80")}
    return {
        "ephemeral_ports": arg(ports, "n"),
        "connections_before_failure": sum(1 for e in before if e["result"] == "ok"),
        "connect_failed_with": None if fail is None else fail["result"],
        "time_wait_at_failure": None if fail is None else arg(fail, "tw"),
        "other_destination": None if other is None else other["result"],
        "other_destination_shares_a_port": other is not None
        and _port_of(str(other.get("conn"))) in tw_ports,
        "after_time_wait": after[0]["result"] if after else None,
    }


def report_port_exhaustion(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    ports = facts(events, "ports", "client")[0]
    cols = [tr(f"ui.exh.{c}", lang) for c in ("t", "dst", "port", "result")]
    head = tr(f"note.{ports['key']}", lang, lo=arg(ports, "lo"), hi=arg(ports, "hi"),
              n=arg(ports, "n"))
    widths = [max(width(cols[0]), 8), max(width(cols[1]), 15), max(width(cols[2]), 5)]
    out = ["  " + head, "  " + "  ".join([pad(cols[0], widths[0], ">"), pad(cols[1], widths[1]),
                             pad(cols[2], widths[2], ">"), cols[3]])]
    for e in facts(events, "connect", "client"):
        port = str(_port_of(str(e["conn"]))) if e.get("conn") else "-"
        result = tr("value.ok", lang) if e["result"] == "ok" else str(e["result"])
        out.append("  " + "  ".join([pad(f"{e['t']:.2f}", widths[0], ">"),
                                     pad(str(arg(e, "dst")), widths[1]),
                                     pad(port, widths[2], ">"), result]))
    if o["connect_failed_with"] is not None:
        out.append("  " + tr("ui.exh.summary", lang, n=o["connections_before_failure"],
                             ports=o["ephemeral_ports"], tw=o["time_wait_at_failure"],
                             err=o["connect_failed_with"]))
    return out


# ---------------------------------------------------------------- tw-reuse

LOOPBACK_CLIENT, LOOPBACK_SERVER = "127.0.0.2", "127.0.0.1"
ONE_PORT = (32768, 32768)  #: one ephemeral port, so the second connect() needs it again


def run_tw_reuse(seed: int, sw: Switches) -> Network:
    remote = sw.variant == "remote"
    cfg: dict[str, Any] = {}
    if not user_sets(sw, "net.ipv4.ip_local_port_range"):
        cfg = {"ephemeral_low": ONE_PORT[0], "ephemeral_high": ONE_PORT[1]}
    if remote:
        net, c, s = two_hosts(seed, sw, **cfg)
        server_addr = SERVER
    else:
        net = Network(seed, msl=30.0)
        c = net.add_host("client", LOOPBACK_CLIENT, sw.config(**cfg))
        s = net.add_host("server", LOOPBACK_SERVER, sw.config(**cfg))
        net.link(c, s, LinkSpec(delay=DELAY))
        install_faults(net, sw)
        server_addr = LOOPBACK_SERVER
    cfgc = c.config
    note(net, "client: one ephemeral port; tcp_tw_reuse, timestamps as the profile has them",
         fact="reuse-setup", host="client", tw_reuse=cfgc.tw_reuse, ts=int(cfgc.timestamps),
         delay=cfgc.tw_reuse_delay, dst=server_addr, loopback=not remote,
         key="twr.setup", lo=cfgc.ephemeral_low, hi=cfgc.ephemeral_high)
    srv = listen(net, s, 8080)
    cli = SimSocket(net, c)
    cli.connect((server_addr, 8080))
    conn, _ = srv.accept()
    exchange(cli, conn)
    note(net, "client: close() first: its end of the 4-tuple enters TIME-WAIT",
         key="app.client-closes-first")
    _close_pair(net, cli, conn)
    net.run_for(0.1)
    tw_start = next(e["t"] for e in reversed(net.trace.events) if e["kind"] == "state"
                    and e["host"] == "client" and e["to"] == "TIME-WAIT")
    attempts = [0.5, 1.5]
    done = False
    for delay in attempts:
        net.run(until=tw_start + delay)
        done = _try_connect(net, c, srv, server_addr, tw_start)
        if done:
            break
    if not done:
        key = next(iter(c.time_wait.keys()), None)
        if key is not None:
            net.run_until(lambda: not c.in_time_wait(key), timeout=3600.0,
                          what="TIME-WAIT over")
        _try_connect(net, c, srv, server_addr, tw_start)
    net.run()
    return net


def _try_connect(net: Network, c: Any, srv: SimSocket, server_addr: str,
                 tw_start: float) -> bool:
    since = round(net.now - tw_start, 6)
    again = SimSocket(net, c)
    try:
        again.connect((server_addr, 8080))
    except OSError as exc:
        note(net, f"client: connect() {since:g} s after TIME-WAIT began: {_errname(exc)}",
             fact="connect", host="client", result=_errname(exc), since=since,
             key="twr.fails", d=since, err=_errname(exc))
        return False
    conn, _ = srv.accept()
    note(net, f"client: connect() {since:g} s after TIME-WAIT began: connected from port "
              f"{again.getsockname()[1]}", fact="connect", host="client", result="ok",
         since=since, conn=again.conn.name if again.conn is not None else "",
         key="twr.ok", d=since, port=again.getsockname()[1])
    again.sendall(REQUEST)
    recv_exactly(conn, len(REQUEST))
    _close_pair(net, again, conn)
    return True


def outcome_tw_reuse(events: list[Event]) -> dict[str, Any]:
    setup = facts(events, "reuse-setup", "client")[0]
    calls = facts(events, "connect", "client")
    ok = next((e for e in calls if e["result"] == "ok"), None)
    spans = time_wait_spans(events, "client")
    first = spans[0] if spans else None
    new_syn = None
    if ok is not None:
        new_syn = next((e for e in sent(events, "client") if e["flags"] == "S"
                        and e["t"] >= ok["t"] - 1.0 and e["t"] <= ok["t"]), None)
    old_fin = next((e for e in sent(events, "client") if "F" in e["flags"]), None)
    return {
        "tcp_tw_reuse": arg(setup, "tw_reuse"),
        "timestamps": bool(arg(setup, "ts")),
        "loopback": bool(arg(setup, "loopback")),
        "attempts_after": [arg(e, "since") for e in calls],
        "attempt_results": [e["result"] for e in calls],
        "reused_time_wait": first is not None and first["cause"] is not None
        and "reused" in first["cause"],
        "time_wait_ended_by": None if first is None else first["cause"],
        "connected_after": None if ok is None else arg(ok, "since"),
        "new_isn_beyond_old": None if new_syn is None or old_fin is None
        else ((new_syn["seq"] - old_fin["seq"]) & 0xFFFFFFFF) < 0x80000000,
    }


def report_tw_reuse(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    out = ["  " + tr("ui.twr.setup", lang, reuse=o["tcp_tw_reuse"],
                     ts=tr("word.yes" if o["timestamps"] else "word.no", lang),
                     where=tr("ui.twr.loopback" if o["loopback"] else "ui.twr.remote", lang))]
    for after, result in zip(o["attempts_after"], o["attempt_results"], strict=True):
        out.append("  " + tr("ui.twr.attempt", lang, t=seconds(after, lang),
                             result=tr("value.ok", lang) if result == "ok" else result))
    return out


# ---------------------------------------------------------------- tw-buckets

NARROW_BUCKETS = 1


def run_tw_buckets(seed: int, sw: Switches) -> Network:
    cfg: dict[str, Any] = {}
    narrowed = sw.profile == "linux" and not user_sets(sw, "net.ipv4.tcp_max_tw_buckets")
    if narrowed:
        cfg["max_tw_buckets"] = NARROW_BUCKETS
    net, c, s = two_hosts(seed, sw, **cfg)
    limit = c.config.max_tw_buckets
    note(net, f"client: tcp_max_tw_buckets = {limit}", fact="buckets", host="client",
         limit=-1 if limit is None else limit,
         key=("twb.narrowed" if narrowed else "twb.limit") if limit is not None
         else "twb.unlimited", n=limit if limit is not None else 0)
    srv = listen(net, s, 80)
    conns = (limit if limit is not None else NARROW_BUCKETS) + 1
    for i in range(conns):
        cli = SimSocket(net, c)
        cli.connect((SERVER, 80))
        conn, _ = srv.accept()
        last = i == conns - 1
        if last:
            net.add_fault(Fault("drop", _acks_fin_of(conn), name="the last ACK is lost"))
            note(net, "the network will lose the client's last ACK of this connection",
                 key="twb.lose-ack")
        cli.close()
        assert conn.recv(100) == b""
        conn.close()
        net.run_until(_closed(cli), timeout=10.0, what="the client's close")
        if cli.state == "CLOSED":
            n = c.counters["TcpExtTCPTimeWaitOverflow"]
            note(net, f"client: no TIME-WAIT bucket left: nstat TcpExtTCPTimeWaitOverflow = {n}"
                      " (kernels before 4.x logged 'TCP: time wait bucket table overflow')",
                 fact="overflow", host="client", key="twb.overflow", n=n)
        net.run_for(0.3)
    net.run()
    return net


def _acks_fin_of(server: TcpSocket) -> Callable[[Packet], bool]:
    """Matches the client's pure ACK of ``server``'s FIN (SEG.ACK = the server's SND.NXT,
    read when the packet passes, after the FIN went out)."""
    def match(p: Packet) -> bool:
        conn = server.conn
        return (p.src_host == "client" and p.flags == "A" and conn is not None
                and conn.fin_seq is not None and p.seg.ack == conn.snd_nxt)
    return match


def _closed(sock: TcpSocket) -> Callable[[], bool]:
    """Has ``sock``'s connection left FIN-WAIT/CLOSING for TIME-WAIT or CLOSED?"""
    return lambda: sock.state in ("TIME-WAIT", "CLOSED")


def outcome_tw_buckets(events: list[Event]) -> dict[str, Any]:
    setup = facts(events, "buckets", "client")[0]
    limit = arg(setup, "limit")
    paths = conn_paths(events, "client")
    # Linux tcp_time_wait(): with no bucket left the connection goes straight to CLOSED
    skipped = [conn for conn in paths
               if any(e["kind"] == "state" and e["host"] == "client" and e["conn"] == conn
                      and "skipped" in e["cause"] for e in events)]
    spans = time_wait_spans(events, "client")
    server_ends = {}
    for e in events:
        if e["kind"] == "state" and e["host"] == "server" and e["to"] == "CLOSED" \
                and not e["conn"].endswith("-*:*"):
            server_ends[e["conn"]] = e["cause"]
    last = list(paths)[-1] if paths else None
    last_server = None
    if last is not None:
        la, lp, ra, rp = last.replace("-", ":").split(":")
        last_server = server_ends.get(f"{ra}:{rp}-{la}:{lp}")
    return {
        "tcp_max_tw_buckets": None if limit == -1 else limit,
        "connections": len(paths),
        "time_wait_entered": len(spans),
        "skipped_paths": [paths[conn][-2:] for conn in skipped],
        "time_wait_skipped": len(skipped),
        "overflow_counted": bool(facts(events, "overflow", "client")),
        "client_answered_rst": sum(1 for e in sent(events, "client") if "R" in e["flags"]),
        "last_server_closed_cause": last_server,
    }


# ---------------------------------------------------------------- linger0



def run_linger0(seed: int, sw: Switches) -> Network:
    net, c, _s = two_hosts(seed, sw)
    srv, cli, conn = connected(net, client_port=40000, reuse=True)
    note(net, "client: setsockopt(SO_LINGER, {l_onoff=1, l_linger=0}), then close()",
         key="linger.set")
    cli.setsockopt(SOL_SOCKET, SO_LINGER, struct.pack("ii", 1, 0))
    cli.close()
    net.run_for(0.2)
    try:
        data = conn.recv(100)
    except OSError as exc:
        note(net, f"server: recv() raises {_errname(exc)}", fact="server-recv", host="server",
             result=_errname(exc), key="linger.server-error", err=_errname(exc))
    else:
        note(net, f"server: recv() returns {data!r}", fact="server-recv", host="server",
             result="eof" if not data else "data", key="linger.server-read")
    conn.close()
    again = SimSocket(net, c)
    again.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    try:
        again.bind(("0.0.0.0", 40000))
        again.connect((SERVER, 80))
    except OSError as exc:
        note(net, f"client: a new connection from port 40000 fails: {_errname(exc)}",
             fact="reconnect", host="client", result=_errname(exc), key="linger.again-fails",
             err=_errname(exc), port=40000)
    else:
        note(net, "client: a new connection from the same port 40000 at once: no TIME-WAIT "
                  "holds it", fact="reconnect", host="client", result="ok",
             key="linger.again", port=40000)
        conn2, _ = srv.accept()
        _close_pair(net, again, conn2)
    net.run()
    return net


def outcome_linger0(events: list[Event]) -> dict[str, Any]:
    first = next(iter(conn_paths(events, "client").values()), [])
    path = first[:first.index("CLOSED", 1) + 1] if "CLOSED" in first[1:] else first
    at = next((i for i, e in enumerate(events) if e["kind"] == "app" and e["call"] == "close"
               and e["host"] == "client"), None)
    after = [] if at is None else [e for e in events[at:] if e["kind"] == "segment"
                                   and e["event"] == "send" and e["host"] == "client"]
    server_recv = facts(events, "server-recv", "server")
    again = facts(events, "reconnect", "client")
    return {
        "client_sent": after[0]["flags"] if after else None,
        "client_path": path,
        "client_time_wait": "TIME-WAIT" in path,
        "server_recv": server_recv[0]["result"] if server_recv else None,
        "same_port_again": again[0]["result"] if again else None,
    }


# ---------------------------------------------------------------- syn-in-time-wait

OLD_CLIENT_ISN = 3_000_000
LOWER_ISN = 2_000_000     #: below the old connection's RCV.NXT at the server
HIGHER_ISN = 4_000_000    #: beyond it


def run_syn_in_time_wait(seed: int, sw: Switches) -> Network:
    new_isn = HIGHER_ISN if sw.variant == "higher-isn" else LOWER_ISN
    net, c, _s = two_hosts(seed, sw, client_isns=[OLD_CLIENT_ISN, new_isn])
    srv, cli, conn = connected(net, client_port=40000, reuse=True)
    note(net, "server: close() first (HTTP/1.0 style): the server's end enters TIME-WAIT",
         key="stw.server-closes")
    _close_pair(net, conn, cli)
    net.run_for(1.0)
    note(net, f"client: connect() again from the same port 40000 (the same 4-tuple); its new "
              f"ISN is {new_isn}", fact="new-isn", host="client", isn=new_isn,
         key="stw.reconnect", port=40000)
    again = SimSocket(net, c)
    again.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    again.bind(("0.0.0.0", 40000))
    t0 = net.now
    try:
        again.connect((SERVER, 80))
    except OSError as exc:
        note(net, f"client: connect() fails: {_errname(exc)}", fact="connect", host="client",
             result=_errname(exc), after=round(net.now - t0, 6), key="stw.fails",
             err=_errname(exc), d=round(net.now - t0, 6))
    else:
        note(net, f"client: connected {net.now - t0:g} s after connect()", fact="connect",
             host="client", result="ok", after=round(net.now - t0, 6), key="stw.connected",
             d=round(net.now - t0, 6))
        conn2, _ = srv.accept()
        _close_pair(net, again, conn2)
    net.run()
    return net


def outcome_syn_in_time_wait(events: list[Event]) -> dict[str, Any]:
    isn_note = facts(events, "new-isn", "client")[0]
    new_isn = isn_note["isn"]
    tw = next(e for e in events if e["kind"] == "state" and e["host"] == "server"
              and e["to"] == "TIME-WAIT")
    old_rcv_nxt = tw["tcb"]["rcv_nxt"] if "tcb" in tw else None
    span = time_wait_spans(events, "server")[0]
    syns = [e for e in sent(events, "client") if e["flags"] == "S" and e["seq"] == new_isn]
    syn_ids = {e["id"] for e in syns}
    handled = [e["reason"] for e in drops(events, "server") if e.get("id") in syn_ids]
    answers = [e for e in sent(events, "server") if e["t"] >= isn_note["t"]
               and (span["left"] is None or e["t"] < span["left"]) and e.get("conn") == tw["conn"]]
    connect = facts(events, "connect", "client")[0]
    ts = next((e for e in syns if e.get("opts") and "TS" in str(e.get("opts"))), None)
    old_snd_nxt = tw["tcb"]["snd_nxt"] if "tcb" in tw else None
    synack = next((e for e in sent(events, "server") if e["flags"] == "SA"
                   and e["t"] >= isn_note["t"]), None)
    return {
        "old_rcv_nxt": old_rcv_nxt,
        "new_isn": new_isn,
        "isn_beyond_rcv_nxt": old_rcv_nxt is not None
        and 0 < ((new_isn - old_rcv_nxt) & 0xFFFFFFFF) < 0x80000000,
        "timestamps": ts is not None,
        "first_syn_handled_as": handled[0] if handled else None,
        "time_wait_answers": len(answers),
        "time_wait_answered_with": ", ".join(sorted({e["flags"] for e in answers})) or None,
        "client_rsts": sum(1 for e in sent(events, "client") if "R" in e["flags"]),
        "syns_sent": len(syns),
        "time_wait_ended_by": span["cause"],
        "connect": connect["result"],
        "connect_seconds": arg(connect, "after"),
        # Linux starts the reopened connection at the old SND.NXT + 65537
        "server_isn_after_old_snd_nxt": None if synack is None or old_snd_nxt is None
        else (synack["seq"] - old_snd_nxt) & 0xFFFFFFFF,
    }


def report_syn_in_time_wait(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    rel = "ui.stw.above" if o["isn_beyond_rcv_nxt"] else "ui.stw.below"
    return ["  " + tr(rel, lang, isn=o["new_isn"], nxt=o["old_rcv_nxt"]),
            "  " + tr("ui.stw.ts" if o["timestamps"] else "ui.stw.no-ts", lang),
            "  " + tr("ui.stw.result", lang, t=seconds(o["connect_seconds"] or 0.0, lang),
                      result=tr("value.ok", lang) if o["connect"] == "ok" else o["connect"])]


SCENARIOS = [
    Scenario("port-exhaustion", run_port_exhaustion, outcome_port_exhaustion,
             group="time-wait", report=report_port_exhaustion, diagram=False,
             headline=("connect_failed_with", "time_wait_at_failure", "other_destination")),
    Scenario("tw-reuse", run_tw_reuse, outcome_tw_reuse, group="time-wait",
             report=report_tw_reuse, variants=("remote",),
             headline=("reused_time_wait", "connected_after")),
    Scenario("tw-buckets", run_tw_buckets, outcome_tw_buckets, group="time-wait",
             headline=("time_wait_entered", "time_wait_skipped", "last_server_closed_cause")),
    Scenario("linger0", run_linger0, outcome_linger0, group="time-wait",
             headline=("client_sent", "server_recv", "same_port_again")),
    Scenario("syn-in-time-wait", run_syn_in_time_wait, outcome_syn_in_time_wait,
             group="time-wait", report=report_syn_in_time_wait, variants=("higher-isn",),
             headline=("first_syn_handled_as", "connect", "connect_seconds")),
]

__all__ = ["CLIENT", "SCENARIOS", "user_sets"]
