"""Scenarios about making a connection: the ISN, the MSS, refusals, the calls, a stray SYN.

RFC 9293 3.4.1 and RFC 6528 (the ISN: a clock plus a keyed hash), 3.7.1 (the
MSS option) with RFC 791 (fragmentation), 3.10.7.1 (a segment for no
connection is answered with RST), 3.10.7.3 (SYN-SENT), RFC 5961 4 (a SYN in a
synchronized state gets a challenge ACK); Linux's SYN retransmission budget
(tcp_syn_retries, tcp_syn_linear_timeouts since 6.5).

Every outcome is computed from the trace alone; facts above TCP (what a call
returned, and when) are ``note`` events with a ``fact`` field.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from typing import Any

from tcplab.api.sockets import TcpSocket
from tcplab.engine.host import Host
from tcplab.faults import ALL
from tcplab.i18n import text
from tcplab.scenarios.base import (
    CLIENT,
    DELAY,
    MSL,
    REQUEST,
    RESPONSE,
    SERVER,
    Scenario,
    Switches,
    app_calls,
    conn_paths,
    connected,
    drops,
    facts,
    install_faults,
    listen,
    note,
    recv_exactly,
    sent,
    text_of,
    two_hosts,
    with_switch,
)
from tcplab.sim.network import Fault, LinkSpec, Network
from tcplab.sim.pathmtu import LOST_FRAGMENT, PathMtu
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import SYN, TcpSegment

MASK = 0xFFFFFFFF

# ---------------------------------------------------------------- helpers


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "?")


class Poller:
    """Code run after every simulator step, as an application blocked in a call would
    run the moment the call can return; each check returns True when it is done."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.checks: list[Callable[[], bool]] = []
        net.on_step.append(self._poll)

    def add(self, check: Callable[[], bool]) -> None:
        self.checks.append(check)

    def _poll(self) -> None:
        self.checks = [c for c in self.checks if not c()]


def _first_syns(events: list[Event], host: str) -> list[Event]:
    """The first SYN of each connection ``host`` opened (retransmissions left out)."""
    out: list[Event] = []
    last: dict[tuple[str, str], int] = {}
    for e in sent(events, host):
        if e["flags"] != "S":
            continue
        pair = (e["src"], e["dst"])
        if last.get(pair) != e["seq"]:
            out.append(e)
            last[pair] = e["seq"]
    return out


def lives(events: list[Event], host: str) -> list[list[str]]:
    """The states of each connection ``host`` had, one list per incarnation (a 4-tuple
    used again after CLOSED, or back to LISTEN, starts a new list); listeners left out."""
    out: list[list[str]] = []
    current: dict[str, list[str]] = {}
    for e in events:
        if e["kind"] != "state" or e["host"] != host or e["conn"].endswith("-*:*"):
            continue
        path = current.get(e["conn"])
        if path is None:
            path = [e["from"]]
            current[e["conn"]] = path
            out.append(path)
        path.append(e["to"])
        if e["to"] in ("CLOSED", "LISTEN"):
            del current[e["conn"]]
    return out


def _port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


# ---------------------------------------------------------------- isn-clock


#: (time, client port, server port) of each connection: one 4-tuple again and again,
#: another in between, and a third to another server port
ISN_PLAN = ((0.0, 40000, 80), (0.5, 40001, 80), (1.0, 40000, 80), (1.5, 40001, 80),
            (2.0, 40000, 80), (2.5, 40000, 8080))


def run_isn_clock(seed: int, sw: Switches) -> Network:
    net = Network(seed, msl=MSL)
    # the hosts' own ISN generators: a keyed hash plus a clock of the profile's tick
    # (TcpConfig.isn_tick_ns: 4 µs by RFC 9293, 64 ns on Linux)
    c = net.add_host("client", CLIENT, sw.config())
    s = net.add_host("server", SERVER, sw.config())
    net.link(c, s, LinkSpec(delay=DELAY))
    install_faults(net, sw)
    servers = [listen(net, s, 80), listen(net, s, 8080)]
    note(net, "server: listen() on ports 80 and 8080; it closes each connection at once",
         key="isnclock.listen")
    app = Poller(net)

    def serve() -> bool:
        # The server accepts each connection and closes it at once, so the
        # client's side ends in CLOSED, not TIME-WAIT, and its port is free
        # for the next connection from the same 4-tuple.
        for srv in servers:
            srv.setblocking(False)
            lst = srv.listener
            while lst is not None and lst.accept_queue:
                child, _ = srv.accept()
                child.close()
        return False
    app.add(serve)
    for at, port, dport in ISN_PLAN:
        net.run(until=at)
        cli = SimSocket(net, c)
        cli.bind(("0.0.0.0", port))
        note(net, f"client: connect() from port {port} to port {dport}", key="isnclock.connect",
             port=port, dport=dport)
        cli.connect((SERVER, dport))
        assert cli.recv(100) == b""
        cli.close()
    net.run_for(0.5)
    return net


def _isn_rows(events: list[Event]) -> list[dict[str, Any]]:
    return [{"t": e["t"], "client_port": _port(e["src"]), "server_port": _port(e["dst"]),
             "isn": e["seq"]} for e in _first_syns(events, "client")]


def outcome_isn_clock(events: list[Event]) -> dict[str, Any]:
    rows = _isn_rows(events)
    by_tuple: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        by_tuple.setdefault((r["client_port"], r["server_port"]), []).append(r)
    # The clock's rate, measured on the 4-tuple used most: ISN growth over time.
    runs = max(by_tuple.values(), key=len)
    a, b = runs[0], runs[-1]
    rate = ((b["isn"] - a["isn"]) & MASK) / (b["t"] - a["t"])
    # What is left when the clock is taken out: the keyed hash of the 4-tuple.
    for r in rows:
        r["isn_minus_clock"] = (r["isn"] - round(rate * r["t"])) & MASK
    hashes = {k: {r["isn_minus_clock"] for r in v} for k, v in by_tuple.items()}
    return {
        "connections": len(rows),
        "same_tuple_isn_steps": [(q["isn"] - p["isn"]) & MASK
                                 for p, q in itertools.pairwise(runs)],
        "isn_ticks_per_second": round(rate),
        "isn_tick_ns": round(1e9 / rate, 3),
        "same_tuple_same_hash": all(len(h) == 1 for h in hashes.values()),
        "different_tuples_different_hash": len({min(h) for h in hashes.values()})
        == len(hashes),
        "table": rows,
    }


def report_isn_clock(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    head = [text("ui.isn.t", lang), text("ui.isn.ports", lang), "ISN",
            text("ui.isn.hash", lang)]
    rows = [[f"{r['t']:g}", f"{r['client_port']} → {r['server_port']}", str(r["isn"]),
             str(r["isn_minus_clock"])] for r in outcome["table"]]
    lines = _table(head, rows)
    lines.append("")
    lines.append("  " + text("ui.isn.rate", lang, rate=f"{outcome['isn_ticks_per_second']:,}",
                             tick=f"{outcome['isn_tick_ns']:g}"))
    return lines


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    from tcplab.i18n import pad
    from tcplab.i18n import width as cells

    widths = [max(cells(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    out = ["  " + "  ".join(pad(h, w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for row in rows:
        out.append("  " + "  ".join(pad(x, w) for x, w in zip(row, widths, strict=True))
                   .rstrip())
    return out


# ---------------------------------------------------------------- mss

MTU = 1500            #: the path's MTU (Ethernet)
BIG_MSS = 65495       #: no-mss: what a TCP that ignores the MTU takes (the loopback's MSS)
LOST_UNIT = 3         #: the path loses the third IP packet (or fragment) of the data
RESPONSE_SEGMENTS = 5  #: the response is five full Ethernet segments long


def _response_body(n: int) -> bytes:
    return bytes(48 + (i * 7) % 75 for i in range(n))


def run_mss(seed: int, sw: Switches) -> Network:
    no_mss = sw.variant == "no-mss"
    size = RESPONSE_SEGMENTS * (MTU - 40)
    cfg: dict[str, Any] = {"mss": BIG_MSS} if no_mss else {"mss": MTU - 40}
    net, c, s = two_hosts(seed, sw, **cfg)
    PathMtu(net, "server", "client", MTU, lose=frozenset({LOST_UNIT}))
    PathMtu(net, "client", "server", MTU)
    srv = listen(net, s, 80)
    if no_mss:
        note(net, f"both hosts send segments of up to {BIG_MSS} bytes, whatever the path's "
                  f"MTU ({MTU} bytes): IP must fragment them", key="mss.none",
             mss=BIG_MSS, mtu=MTU)
    else:
        note(net, f"each host's MSS is its MTU ({MTU}) minus 40 bytes of IP and TCP "
                  f"headers: {MTU - 40}",
             key="mss.offer", mss=MTU - 40, mtu=MTU)
    cli = SimSocket(net, c)
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    cli.sendall(REQUEST)
    recv_exactly(conn, len(REQUEST))
    net.run_for(0.1)  # the server's delayed ACK of the request goes first, on its own
    body = _response_body(size)
    note(net, f"server: send() a {size}-byte response; the path will lose IP packet (or "
              f"fragment) no. {LOST_UNIT} of it", key="mss.send", n=size, unit=LOST_UNIT)
    conn.sendall(body)
    got = recv_exactly(cli, size)
    note(net, f"client: received all {len(got)} bytes", fact="app-recv", host="client",
         key="mss.got", n=len(got), data=str(len(got)))
    cli.close()
    assert conn.recv(10) == b""
    conn.close()
    net.run_for(1.0)
    return net


def outcome_mss(events: list[Event]) -> dict[str, Any]:
    syns = [e for e in sent(events) if "S" in e["flags"]]
    mss_opts = [int(o.split()[1]) for e in syns for o in e.get("opts", [])
                if o.startswith("mss ")]
    data = [e for e in sent(events, "server") if e["len"]]
    cuts = facts(events, "fragments")
    lost = [e for e in data if e["fate"] == "dropped"]
    first_seq = data[0]["seq"] if data else 0
    firsts: dict[int, Event] = {}
    for e in data:
        firsts.setdefault(e["seq"], e)
    resent = [e for e in data if firsts[e["seq"]] is not e]
    return {
        "mss_options": mss_opts,
        "largest_segment": max((e["len"] for e in data), default=0),
        "data_segments_first_sent": len(firsts),
        "ip_packets_fragmented": len(cuts),
        "fragments_per_packet": max((len(e["args"]["sizes"]) for e in cuts), default=1),
        "lost_on_the_path": [("fragment" if e["reason"] == "fault: " + LOST_FRAGMENT
                              else "packet") for e in lost],
        "segments_lost": len(lost),
        "bytes_lost_with_it": sum(e["len"] for e in lost),
        "bytes_resent": sum(e["len"] for e in resent),
        "resent_from_offset": [(e["seq"] - first_seq) & MASK for e in resent],
        "client_received": int(facts(events, "app-recv", "client")[-1]["data"]),
    }


def report_mss(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    return ["  " + text("ui.mss.summary", lang, n=outcome["segments_lost"],
                 lost=outcome["bytes_lost_with_it"], resent=outcome["bytes_resent"],
                 frags=outcome["ip_packets_fragmented"])]


# ---------------------------------------------------------------- no-listen


def run_no_listen(seed: int, sw: Switches) -> Network:
    if sw.variant == "self-connect":
        return _self_connect(seed, sw)
    net, c, s = two_hosts(seed, sw)
    listen(net, s, 80)
    note(net, "server: a process listens on port 80; nothing listens on port 81",
         key="nolisten.ports", port=80, closed=81)
    cli = SimSocket(net, c)
    note(net, "client: connect() to port 81", key="nolisten.connect", port=81)
    t0 = net.now
    try:
        cli.connect((SERVER, 81))
        note(net, "client: connected", fact="connect", host="client", result="ok",
             key="app.connected")
    except OSError as exc:
        name = _errname(exc)
        note(net, f"client: connect() fails with {name} after {net.now - t0:g} s",
             fact="connect", host="client", result=name, key="nolisten.refused",
             err=name, after=round(net.now - t0, 6))
    net.run_for(0.2)
    return net


SELF_PORT = 50000


def _self_connect(seed: int, sw: Switches) -> Network:
    net = Network(seed, msl=MSL)
    c = net.add_host("client", CLIENT, sw.config())
    net.link(c, c, LinkSpec(delay=DELAY))
    install_faults(net, sw)
    cli = SimSocket(net, c)
    cli.bind(("0.0.0.0", SELF_PORT))
    note(net, f"client: bind({SELF_PORT}), then connect() to its own address and port "
              "(no listen() anywhere)", key="nolisten.self", port=SELF_PORT)
    try:
        cli.connect((CLIENT, SELF_PORT))
        note(net, "client: connected", fact="connect", host="client", result="ok",
             key="app.connected")
        cli.sendall(b"hello, me")
        got = recv_exactly(cli, 9)
        note(net, f"client: read {got!r}: its own bytes", fact="app-recv", host="client",
             data=text_of(got), key="nolisten.self-read", shown=repr(got))
    except OSError as exc:
        note(net, f"client: connect() fails with {_errname(exc)}", fact="connect",
             host="client", result=_errname(exc), key="nolisten.self-fails", err=_errname(exc))
    net.run_for(0.2)
    return net


def outcome_no_listen(events: list[Event]) -> dict[str, Any]:
    connect = facts(events, "connect", "client")
    syn = next(e for e in sent(events, "client") if "S" in e["flags"])
    answers = [e for e in sent(events) if e["t"] >= syn["t"] and e is not syn]
    first = answers[0] if answers else None
    out: dict[str, Any] = {
        "answer_to_syn": first["flags"] if first else None,
        "answer_acks_syn": bool(first and first["ack"] == (syn["seq"] + 1) & MASK),
        "server_reason": next((e["reason"] for e in drops(events) if e["flags"] == "S"),
                              None),
        "connect_result": connect[-1]["result"] if connect else None,
        "connect_failed_after": connect[-1].get("args", {}).get("after") if connect else None,
        "client_path": next(iter(conn_paths(events, "client").values()), []),
        "listen_called": bool(app_calls(events, "listen")),
    }
    read = facts(events, "app-recv", "client")
    if read:
        out["self_read"] = read[-1]["data"]
    return out


# ---------------------------------------------------------------- calls-return

LATE_ACCEPT = 1.0   #: late-accept: the server calls accept() this long after listen()


def run_calls_return(seed: int, sw: Switches) -> Network:
    late = sw.variant == "late-accept"
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    note(net, "server: listen() returns at once; no segment is sent", fact="returns",
         host="server", who="listen", key="calls.listen")
    srv.setblocking(False)
    accepted: list[TcpSocket] = []

    def accept_now() -> bool:
        lst = srv.listener
        if lst is None or not lst.accept_queue:
            return False
        child, _ = srv.accept()
        accepted.append(child)
        note(net, "server: accept() returns the connection", fact="returns", host="server",
             who="accept", key="calls.accept-returns")
        return True

    if not late:
        # The server application is blocked in accept(): it runs the moment the
        # listener queues a connection.
        note(net, "server: accept() called; it blocks until a connection is complete",
             fact="calls", host="server", who="accept", key="calls.accept-blocks")
        Poller(net).add(accept_now)
    cli = SimSocket(net, c)
    note(net, "client: connect() called; it blocks", fact="calls", host="client",
         who="connect", key="calls.connect")
    cli.connect((SERVER, 80))
    note(net, "client: connect() returns 0", fact="returns", host="client", who="connect",
         key="calls.connect-returns")
    cli.sendall(REQUEST)
    if late:
        net.run(until=LATE_ACCEPT)
        note(net, "server: accept() called, late; a connection is already waiting",
             fact="calls", host="server", who="accept", key="calls.accept-late")
        accept_now()
    net.run_until(lambda: bool(accepted), timeout=10, what="accept")
    got = recv_exactly(accepted[0], len(REQUEST))
    note(net, "server app: read the request", fact="app-recv", host="server",
         data=text_of(got), key="handshake.read")
    net.run_for(0.2)
    return net


def outcome_calls_return(events: list[Event]) -> dict[str, Any]:
    def when(kind: str, host: str, who: str) -> float | None:
        found = [e["t"] for e in facts(events, kind, host) if e.get("who") == who]
        return found[0] if found else None

    segs = sent(events)
    syn = next(e for e in segs if e["flags"] == "S")
    synack = next(e for e in segs if e["flags"] == "SA")
    third = next(e for e in segs if e["host"] == "client" and "S" not in e["flags"])
    listen_at = when("returns", "server", "listen")
    connect_at = when("calls", "client", "connect")
    connect_ret = when("returns", "client", "connect")
    accept_at = when("calls", "server", "accept")
    accept_ret = when("returns", "server", "accept")
    return {
        "listen_returned_at": listen_at,
        "segments_before_connect": sum(1 for e in segs if e["t"] < syn["t"]),
        "connect_called_at": connect_at,
        "syn_sent_at": syn["t"],
        "synack_arrived_at": synack["t_arrive"],
        "connect_returned_at": connect_ret,
        "third_segment_sent_at": third["t"],
        "third_segment_arrived_at": third["t_arrive"],
        "accept_called_at": accept_at,
        "accept_returned_at": accept_ret,
        "connect_returns_on_synack": connect_ret == synack["t_arrive"],
        "accept_returns_on_third_segment": accept_ret == third["t_arrive"],
        "connection_waited_in_queue": round(accept_ret - third["t_arrive"], 6)
        if accept_ret is not None else None,
    }


# ---------------------------------------------------------------- syn-in-established

CLIENT_PORT = 40000
REBOOT_AT = 5.0
RECONNECT_AT = 10.0


def reboot(net: Network, name: str, sw: Switches) -> Host:
    """Host ``name`` restarts: a new kernel at the same address, which knows no
    connection and has new secrets (ISN key, ports); its links stay."""
    old = net.hosts.pop(name)
    fresh = Host(name, old.addrs, config=sw.config(), rng=net.host_rng(f"{name}:rebooted"),
                 trace=net.trace)
    net.add(fresh)
    return fresh


def run_syn_in_established(seed: int, sw: Switches) -> Network:
    if sw.variant in ("blind", "rfc793"):
        return _blind_syn(seed, sw)
    net, c, _s = two_hosts(seed, sw)
    srv_sock, _cli, conn = connected(net, client_port=CLIENT_PORT)
    note(net, f"the connection is idle; the client's port is {CLIENT_PORT}",
         key="synest.idle", port=CLIENT_PORT)
    net.run(until=REBOOT_AT)
    c = reboot(net, "client", sw)
    note(net, "client host restarts: its new kernel knows no connection; the server's "
              "side stays ESTABLISHED", fact="reboot", host="client", key="synest.reboot")
    app = Poller(net)
    server_saw: list[str] = []

    def server_reads() -> bool:
        # The server application is blocked in recv() on its old connection.
        try:
            data = conn.recv(100) if conn.conn is not None and (
                conn.conn.rcvbuf or conn.conn.error is not None) else None
        except OSError as exc:
            server_saw.append(_errname(exc))
            note(net, f"server app: recv() on the old connection fails: {_errname(exc)}",
                 fact="server-recv", host="server", result=_errname(exc),
                 key="synest.server-reset", err=_errname(exc))
            return True
        return data is not None
    app.add(server_reads)
    net.run(until=RECONNECT_AT)
    cli = SimSocket(net, c)
    cli.bind(("0.0.0.0", CLIENT_PORT))
    note(net, f"client: connect() again from port {CLIENT_PORT}: the same 4-tuple as the "
              "server's ESTABLISHED connection", fact="reconnect", host="client",
         key="synest.reconnect", port=CLIENT_PORT)
    t0 = net.now
    cli.connect((SERVER, 80))
    note(net, f"client: connected after {net.now - t0:g} s", fact="connect", host="client",
         result="ok", key="synest.connected", after=round(net.now - t0, 6))
    cli.sendall(REQUEST)
    new, _ = srv_sock.accept()
    recv_exactly(new, len(REQUEST))
    new.sendall(RESPONSE)
    recv_exactly(cli, len(RESPONSE))
    net.run_for(0.5)
    return net


ATTACK_AT = 2.0
ATTACK_SYNS = 3
ATTACK_GAP = 0.6   #: more than Linux's per-socket 0.5 s limit on answers to odd segments


def _blind_syn(seed: int, sw: Switches) -> Network:
    rfc793 = sw.variant == "rfc793"
    net, _c, _s = two_hosts(seed, sw, rfc5961=not rfc793)
    _srv, cli, conn = connected(net, client_port=CLIENT_PORT)
    assert conn.conn is not None
    rcv_nxt = conn.conn.rcv_nxt
    net.run(until=ATTACK_AT)
    for i in range(ATTACK_SYNS):
        # A blind attacker guessed the 4-tuple and a sequence number in the
        # server's receive window (about 2**32 / window tries); it spoofs the
        # client's address and never sees an answer.
        seq = (rcv_nxt + 1000 * (i + 1)) & MASK
        seg = TcpSegment(CLIENT_PORT, 80, seq, 0, SYN, 65535)
        note(net, "attacker: a SYN spoofed from the client's address and port, its sequence "
                  "number inside the server's window", fact="spoofed-syn", seq=seq,
             key="synest.spoof")
        net.inject("attacker", emit_ip_tcp(CLIENT, SERVER, seg), delay=DELAY)
        net.run_for(ATTACK_GAP)
    net.run_for(1.0)
    try:
        cli.sendall(b"GET /again")
        got = recv_exactly(conn, 10)
        note(net, "server app: the connection still works: it read the next request",
             fact="app-recv", host="server", data=text_of(got), key="synest.still-works")
    except OSError as exc:
        note(net, f"client: send() fails: {_errname(exc)}", fact="client-send",
             host="client", result=_errname(exc), key="synest.send-fails",
             err=_errname(exc))
    net.run_for(0.5)
    return net


def outcome_syn_in_established(events: list[Event]) -> dict[str, Any]:
    syn_drops = [e for e in drops(events, "server") if "S" in e["flags"]
                 and "A" not in e["flags"] and e["reason"] != "SYN in LISTEN: new connection"]
    spoofed = facts(events, "spoofed-syn")
    server_lives = lives(events, "server")
    first = server_lives[0]
    first_conn = next(iter(conn_paths(events, "server")))
    # What the server sent back to each of those SYNs: its next segment on that 4-tuple.
    answers = []
    for d in syn_drops:
        nxt = next((e for e in sent(events, "server") if e["t"] >= d["t"]
                    and e["dst"] == d["src"]), None)
        answers.append(nxt["flags"] if nxt is not None and nxt["t"] == d["t"] else None)
    out: dict[str, Any] = {
        "syns_for_the_established_connection": len(syn_drops),
        "server_answers": [e["reason"] for e in syn_drops],
        "server_sent_back": answers,
        "challenge_acks": sum(1 for e in syn_drops if e["reason"].endswith(": challenge ACK")),
        "rate_limited": sum(1 for e in syn_drops if "rate-limited" in e["reason"]),
        "first_connection_path": first,
    }
    if spoofed:
        reads = facts(events, "app-recv", "server")
        out["connection_survived"] = first[-1] == "ESTABLISHED"
        out["server_read_after_attack"] = reads[-1]["data"] if reads else None
        return out
    reboot_t = facts(events, "reboot")[0]["t"]
    client_rsts = [e for e in sent(events, "client") if "R" in e["flags"]
                   and e["t"] > reboot_t]
    new_syns = [e for e in sent(events, "client") if e["flags"] == "S" and e["t"] > reboot_t]
    recv_fail = facts(events, "server-recv", "server")
    connected = facts(events, "connect", "client")
    out.update({
        "client_answer_to_challenge": [e["flags"] for e in client_rsts],
        "old_connection_ended_by": next((e["cause"] for e in events if e["kind"] == "state"
                                         and e["host"] == "server" and e["conn"] == first_conn
                                         and e["to"] == "CLOSED"), None),
        "server_app_saw": recv_fail[0]["result"] if recv_fail else None,
        "client_syns_after_restart": len(new_syns),
        "new_connection_after": connected[-1].get("args", {}).get("after")
        if connected else None,
        "new_connection_path": server_lives[-1] if len(server_lives) > 1 else [],
    })
    return out


# ---------------------------------------------------------------- refused-vs-timeout

CLOSED_PORT = 81       #: nothing listens there: the host answers RST (iptables REJECT too)
FILTERED_PORT = 8443   #: a firewall drops everything to it silently (iptables DROP)


def run_refused_vs_timeout(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    listen(net, s, 80)
    net.add_fault(Fault("drop", lambda p: p.dst_host == "server"
                        and p.seg.dst_port == FILTERED_PORT, count=ALL,
                        name=f"firewall: DROP tcp dport {FILTERED_PORT}"))
    note(net, f"server: port {CLOSED_PORT} is closed (nothing listens); a firewall in front "
              f"of port {FILTERED_PORT} drops every packet without a word",
         key="rvt.setup", closed=CLOSED_PORT, filtered=FILTERED_PORT)
    socks: dict[int, SimSocket] = {}
    for port in (CLOSED_PORT, FILTERED_PORT):
        sock = SimSocket(net, c)
        sock.setblocking(False)
        note(net, f"client: connect() to port {port}", key="rvt.connect", port=port)
        sock.connect_ex((SERVER, port))
        socks[port] = sock
    app = Poller(net)
    t0 = net.now

    def watch(port: int) -> Callable[[], bool]:
        def check() -> bool:
            conn = socks[port].conn
            if conn is None or conn.error is None:
                return False
            name = {"refused": "ECONNREFUSED", "timed out": "ETIMEDOUT"}.get(conn.error,
                                                                             conn.error)
            note(net, f"client: connect() to port {port} fails: {name} after "
                      f"{net.now - t0:g} s", fact="connect", host="client", result=name,
                 key="rvt.fails", port=port, err=name, after=round(net.now - t0, 6))
            return True
        return check
    for port in socks:
        app.add(watch(port))
    net.run_until(lambda: not app.checks, timeout=3600, what="both connect() calls end")
    return net


def outcome_refused_vs_timeout(events: list[Event]) -> dict[str, Any]:
    ends = {e["args"]["port"]: e for e in facts(events, "connect", "client")}
    syns = [e for e in sent(events, "client") if e["flags"] == "S"]
    filtered = [e for e in syns if _port(e["dst"]) == FILTERED_PORT]
    closed = [e for e in syns if _port(e["dst"]) == CLOSED_PORT]
    t0 = filtered[0]["t"] if filtered else 0.0
    rst = [e for e in sent(events, "server") if "R" in e["flags"]]
    refused, timed = ends.get(CLOSED_PORT), ends.get(FILTERED_PORT)
    return {
        "closed_port_result": refused["result"] if refused else None,
        "closed_port_after": refused["args"]["after"] if refused else None,
        "closed_port_syns": len(closed),
        "closed_port_answer": rst[0]["flags"] if rst else None,
        "filtered_port_result": timed["result"] if timed else None,
        "filtered_port_after": timed["args"]["after"] if timed else None,
        "filtered_port_syns": len(filtered),
        "filtered_syn_times": [round(e["t"] - t0, 6) for e in filtered],
        "filtered_gaps": [round(b["t"] - a["t"], 6)
                          for a, b in itertools.pairwise(filtered)],
        "server_answers_to_filtered": sum(1 for e in sent(events, "server")
                                          if _port(e["src"]) == FILTERED_PORT),
    }


def report_refused_vs_timeout(events: list[Event], outcome: dict[str, Any],
                              lang: str) -> list[str]:
    return ["  " + text("ui.rvt.refused", lang, port=CLOSED_PORT,
                        err=outcome["closed_port_result"],
                        t=f"{outcome['closed_port_after']:g}", n=outcome["closed_port_syns"]),
            "  " + text("ui.rvt.timeout", lang, port=FILTERED_PORT,
                        err=outcome["filtered_port_result"],
                        t=f"{outcome['filtered_port_after']:g}",
                        n=outcome["filtered_port_syns"],
                        times=", ".join(f"{t:g}" for t in outcome["filtered_syn_times"]))]


SCENARIOS = [
    Scenario("isn-clock", run_isn_clock, outcome_isn_clock, group="handshake",
             report=report_isn_clock,
             headline=("isn_tick_ns", "same_tuple_same_hash", "different_tuples_different_hash")),
    Scenario("mss", run_mss, outcome_mss, group="handshake", report=report_mss,
             counterfactual=with_switch(None, variant="no-mss"), variants=("no-mss",),
             headline=("largest_segment", "ip_packets_fragmented", "bytes_resent")),
    Scenario("no-listen", run_no_listen, outcome_no_listen, group="handshake",
             variants=("self-connect",),
             headline=("answer_to_syn", "connect_result")),
    Scenario("calls-return", run_calls_return, outcome_calls_return, group="handshake",
             variants=("late-accept",),
             headline=("connect_returns_on_synack", "accept_returns_on_third_segment")),
    Scenario("syn-in-established", run_syn_in_established, outcome_syn_in_established,
             group="handshake", counterfactual=with_switch(None, variant="rfc793"),
             variants=("blind", "rfc793"),
             headline=("server_answers", "first_connection_path")),
    Scenario("refused-vs-timeout", run_refused_vs_timeout, outcome_refused_vs_timeout,
             group="failures", report=report_refused_vs_timeout,
             headline=("closed_port_after", "filtered_port_after", "filtered_port_syns")),
]
