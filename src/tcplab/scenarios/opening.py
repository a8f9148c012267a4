"""Scenarios about opening a connection: why three segments, and what two would break.

RFC 9293 3.5 (the three-way handshake, Figure 8 for old duplicate SYNs,
simultaneous open), RFC 4987 (SYN floods and SYN cookies).
"""

from __future__ import annotations

import errno
import itertools
from typing import Any

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.host import Host
from tcplab.scenarios.base import (
    CLIENT,
    DELAY,
    MSL,
    REQUEST,
    SERVER,
    Scenario,
    Switches,
    conn_paths,
    drops,
    facts,
    listen,
    note,
    recv_exactly,
    sent,
    text_of,
    two_hosts,
    with_switch,
)
from tcplab.sim.network import Fault, LinkSpec, Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import ACK, SYN, Mss, TcpSegment

# ---------------------------------------------------------------- server application


class AcceptAll:
    """A server application that accepts every connection at once and records what it reads.

    It runs after every simulator step, so a connection is accepted the moment
    the listener queues it, as an application blocked in ``accept()`` would.
    """

    def __init__(self, net: Network, sock: SimSocket) -> None:
        self.net = net
        self.sock = sock
        self.conns: list[Connection] = []
        net.on_step.append(self.poll)

    def poll(self) -> None:
        lst = self.sock.listener
        host = self.sock.host
        if lst is None:
            return
        while lst.accept_queue:
            conn = lst.accept_queue.popleft()
            self.conns.append(conn)
            note(self.net, f"server app: accept() returns a connection from port {conn.rport}",
                 fact="accepted", host=host.name, conn=conn.name, key="app.accept",
                 port=conn.rport)
        for conn in self.conns:
            if conn.rcvbuf:
                data = conn.recv(65536, self.net.now)
                note(self.net, f"server app: read {data!r} (port {conn.rport})",
                     fact="app-recv", host=host.name, conn=conn.name, data=text_of(data),
                     key="app.read-bytes", shown=repr(data), port=conn.rport)


def _accepted(events: list[Event]) -> list[str]:
    return [e["conn"] for e in facts(events, "accepted", "server")]


def _app_data(events: list[Event], host: str = "server") -> list[str]:
    return [e["data"] for e in facts(events, "app-recv", host)]


def _established(events: list[Event], host: str) -> list[str]:
    return [conn for conn, path in conn_paths(events, host).items() if "ESTABLISHED" in path]


# ---------------------------------------------------------------- handshake


def run_handshake(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    note(net, "server: socket(), bind(80), listen()", key="app.listen", port=80)
    cli = SimSocket(net, c)
    cli.setblocking(False)
    cli.connect_ex((SERVER, 80))
    cli.send(REQUEST)
    note(net, "client: connect() and send() at once; the request waits in SYN-SENT",
         key="handshake.connect-send")
    cli.setblocking(True)
    conn, _ = srv.accept()
    data = recv_exactly(conn, len(REQUEST))
    note(net, "server app: read the request", fact="app-recv", host="server",
         data=text_of(data), key="handshake.read")
    net.run_for(0.2)
    return net


def outcome_handshake(events: list[Event]) -> dict[str, Any]:
    segs = sent(events)
    syn, synack, third = segs[0], segs[1], segs[2]
    cpaths = conn_paths(events, "client")
    spaths = conn_paths(events, "server")
    cpath = next(iter(cpaths.values()))
    spath = next(iter(spaths.values()))
    server_est = next(e["t"] for e in events if e["kind"] == "state" and e["host"] == "server"
                      and e["to"] == "ESTABLISHED")
    third_arrives = third["t_arrive"]
    return {
        "first_segments": [e["flags"] for e in segs[:3]],
        "client_isn": syn["seq"],
        "server_isn": synack["seq"],
        "synack_acks_client_isn": synack["ack"] == (syn["seq"] + 1) & 0xFFFFFFFF,
        "third_acks_server_isn": third["ack"] == (synack["seq"] + 1) & 0xFFFFFFFF,
        "third_segment_data": third["len"],
        "client_path": cpath,
        "server_path": spath,
        "server_established_before_third_segment": server_est < third_arrives,
        "server_app_read": _app_data(events),
    }


# ---------------------------------------------------------------- old duplicate SYN

OLD_DATA = b"PAY 100 TO MALLORY"   # what the old, abandoned connection attempt carried
NEW_DATA = b"GET /balance"


def run_old_duplicate_syn(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    app = AcceptAll(net, srv)
    # The client's new SYN is held up in the network for 0.3 s ...
    net.add_fault(Fault("delay", lambda p: p.src_host == "client" and p.flags == "S",
                        delay=0.3, name="new SYN held up"))
    cli = SimSocket(net, c)
    cli.bind(("0.0.0.0", 40000))
    cli.setblocking(False)
    cli.connect_ex((SERVER, 80))
    assert cli.conn is not None
    cli.send(NEW_DATA)
    iss = int(cli.conn.iss)
    # ... while a SYN of an earlier attempt from the same port (an older,
    # lower ISN) that has been wandering in the network arrives first.
    old_isn = (iss - 100_000) & 0xFFFFFFFF
    old = TcpSegment(40000, 80, old_isn, 0, SYN, 65535, 0, (Mss(1460),), OLD_DATA)
    note(net, "an old SYN of an earlier attempt (same port, older ISN, with data) "
              "is still in the network", fact="old-syn", isn=old_isn, key="ods.old-syn")
    net.inject("client", emit_ip_tcp(CLIENT, SERVER, old), delay=DELAY)
    cli.setblocking(True)
    net.run_until(lambda: len(app.conns) >= 1 and cli.state == "ESTABLISHED"
                  and any(not conn.passive or conn.irs == iss for conn in app.conns),
                  timeout=10, what="the real connection")
    net.run_for(0.5)
    return net


def outcome_old_duplicate_syn(events: list[Event]) -> dict[str, Any]:
    old_isn = facts(events, "old-syn")[0]["isn"]
    spaths = conn_paths(events, "server")
    # The client answers the SYN-ACK of the old SYN (ack = old ISN + 1) with a RST.
    rst_old = [e for e in sent(events, "client")
               if "R" in e["flags"] and e["seq"] == (old_isn + 1) & 0xFFFFFFFF]
    # The server's connection for the 4-tuple went through these states, in order.
    path = next(iter(spaths.values()), [])
    return {
        "client_reset_old_synack": bool(rst_old),
        "server_path": path,
        "server_back_to_listen": any(a == "SYN-RECEIVED" and b == "LISTEN"
                                     for a, b in itertools.pairwise(path)),
        "connections_accepted": len(_accepted(events)),
        "server_app_read": _app_data(events),
        "old_data_committed": text_of(OLD_DATA) in _app_data(events),
        "client_established": bool(_established(events, "client")),
    }


# ---------------------------------------------------------------- isn-sync


class ScriptedServer(Host):
    """A peer that is not a TCP stack: it answers a SYN exactly as the scenario says.

    It is a simulator host whose segment processing is a script (a subclass
    overriding :meth:`receive_segment`): the network delivers to it as usual,
    and it sends by injecting crafted packets.
    """

    def __init__(self, net: Network, config: TcpConfig) -> None:
        super().__init__("server", SERVER, config=config, rng=net.host_rng("server"),
                         trace=net.trace)
        self.net = net
        # The ISN an ordinary server would have chosen for this 4-tuple.
        self.script_isn = self.isn.isn(0.0, SERVER, 80, CLIENT, 40000)
        self.acked = False

    def send(self, seg: TcpSegment) -> None:
        self.net.inject(self.name, emit_ip_tcp(SERVER, CLIENT, seg), delay=DELAY)

    def receive_segment(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        isn = self.script_isn
        if seg.flags == SYN:
            # Four segments: the server's SYN and its ACK of the client's SYN
            # go separately (SYN first: an ACK without SYN in SYN-SENT would
            # be dropped by the client, RFC 9293 3.10.7.3 "fifth").
            note(self.net, "scripted server: sends its SYN and, separately, "
                           "the ACK of the client's SYN", key="isn.script-send")
            self.send(TcpSegment(80, seg.src_port, isn, 0, SYN, 65535, 0, (Mss(1460),)))
            self.send(TcpSegment(80, seg.src_port, (isn + 1) & 0xFFFFFFFF,
                                 (seg.seq + 1) & 0xFFFFFFFF, ACK, 65535))
        elif seg.flags & SYN and seg.flags & ACK and seg.ack == (isn + 1) & 0xFFFFFFFF:
            self.acked = True
            note(self.net, "scripted server: its ISN is acknowledged", fact="server-isn-acked",
                 host="server", key="isn.acked")


def run_isn_sync(seed: int, sw: Switches) -> Network:
    if not sw.four_segment:
        return run_handshake(seed, sw)
    net = Network(seed, msl=MSL)
    c = net.add_host("client", CLIENT, sw.config())
    script = ScriptedServer(net, sw.config())
    net.add(script)
    net.link(c, script, LinkSpec(delay=DELAY))
    cli = SimSocket(net, c)
    cli.bind(("0.0.0.0", 40000))
    note(net, "client: connect(); the server side is a script that splits SYN-ACK in two",
         key="isn.connect")
    cli.connect((SERVER, 80))
    net.run_until(lambda: script.acked, timeout=5, what="the server's ISN acknowledged")
    net.run_for(0.2)
    return net


def outcome_isn_sync(events: list[Event]) -> dict[str, Any]:
    segs = sent(events)
    client_syn = next(e for e in segs if e["host"] == "client" and "S" in e["flags"])
    server_syn = next(e for e in segs if e["host"] == "server" and "S" in e["flags"])
    cisn, sisn = client_syn["seq"], server_syn["seq"]
    acks_c = [i for i, e in enumerate(segs) if e["host"] == "server" and "A" in e["flags"]
              and e["ack"] == (cisn + 1) & 0xFFFFFFFF]
    acks_s = [i for i, e in enumerate(segs) if e["host"] == "client" and "A" in e["flags"]
              and e["ack"] == (sisn + 1) & 0xFFFFFFFF]
    done = max(acks_c[0], acks_s[0]) + 1 if acks_c and acks_s else None
    return {
        "client_isn": cisn,
        "server_isn": sisn,
        "client_isn_acked_by_segment": acks_c[0] + 1 if acks_c else None,
        "server_isn_acked_by_segment": acks_s[0] + 1 if acks_s else None,
        "segments_until_both_isns_acked": done,
        "flags": [e["flags"] for e in segs[:done]] if done else [],
        "client_path": next(iter(conn_paths(events, "client").values()), []),
    }


# ---------------------------------------------------------------- syn-retransmit


def run_syn_retransmit(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    app = AcceptAll(net, srv)
    # A congested path holds the client's first two SYNs for 2.5 s.
    net.add_fault(Fault("delay", lambda p: p.src_host == "client" and p.flags == "S",
                        count=2, delay=2.5, name="SYN held up"))
    cli = SimSocket(net, c)
    cli.settimeout(1.5)
    note(net, "client: connect() with a 1.5 s timeout", key="app.connect-timeout",
         timeout=1.5)
    try:
        cli.connect((SERVER, 80))
    except TimeoutError:
        note(net, "client: connect() timed out; close() and try again from a new socket",
             fact="connect", host="client", result="timeout", key="synr.timeout")
        cli.close()
    cli2 = SimSocket(net, c)
    cli2.connect((SERVER, 80))
    note(net, "client: second attempt connected", fact="connect", host="client", result="ok",
         key="synr.second")
    net.run_until(lambda: len(app.conns) >= 1, timeout=10, what="accept")
    net.run_for(4.0)
    return net


def outcome_syn_retransmit(events: list[Event]) -> dict[str, Any]:
    syns = [e for e in sent(events, "client") if e["flags"] == "S"]
    server_states = [e for e in events if e["kind"] == "state" and e["host"] == "server"]
    # The most half-open (SYN-RECEIVED) connections the server held at once.
    live: set[str] = set()
    peak = 0
    for e in server_states:
        if e["to"] == "SYN-RECEIVED":
            live.add(e["conn"])
        elif e["from"] == "SYN-RECEIVED":
            live.discard(e["conn"])
        peak = max(peak, len(live))
    syn_arrivals = [e for e in drops(events, "server") if e["flags"] == "S"]
    return {
        "client_syns_sent": len(syns),
        "syns_reaching_server": len(syn_arrivals),
        "client_connections": len(_established(events, "client")),
        "server_half_open_entries": sum(1 for e in server_states if e["to"] == "SYN-RECEIVED"),
        "server_half_open_peak": peak,
        "server_established": sum(1 for e in server_states if e["to"] == "ESTABLISHED"),
        "connections_accepted": len(_accepted(events)),
    }


# ---------------------------------------------------------------- syn-flood

BACKLOG = 8


def run_syn_flood(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80, backlog=BACKLOG)
    app = AcceptAll(net, srv)
    note(net, f"attacker: {BACKLOG * 2} SYNs from spoofed addresses that will never answer",
         key="flood.attack", n=BACKLOG * 2)
    for i in range(BACKLOG * 2):
        spoof = f"198.51.100.{10 + i}"
        seg = TcpSegment(20000 + i, 80, (0x1000 * (i + 1)) & 0xFFFFFFFF, 0, SYN, 65535, 0,
                         (Mss(1460),))
        net.inject("attacker", emit_ip_tcp(spoof, SERVER, seg), delay=DELAY)
    net.run_for(0.5)
    cli = SimSocket(net, c)
    cli.settimeout(10.0)
    note(net, "client: connect() with a 10 s timeout", key="app.connect-timeout", timeout=10)
    try:
        cli.connect((SERVER, 80))
        note(net, "client: connected", fact="connect", host="client", result="ok",
             key="app.connected")
        cli.sendall(REQUEST)
        net.run_until(lambda: bool(facts(net.trace.to_json_list(), "app-recv")), timeout=5,
                      what="request read")
    except TimeoutError:
        note(net, "client: connect() timed out (ETIMEDOUT)", fact="connect", host="client",
             result="timeout", key="flood.timeout")
    del app
    return net


def outcome_syn_flood(events: list[Event]) -> dict[str, Any]:
    reasons = [e["reason"] for e in drops(events, "server") if e["flags"] == "S"]
    legit = [r for e, r in zip(drops(events, "server"), reasons, strict=False)
             if e["src"].startswith(CLIENT)]
    connect = facts(events, "connect", "client")
    return {
        "spoofed_syns": sum(1 for e in sent(events) if e.get("injected")),
        "syns_dropped_queue_full": sum(1 for r in reasons if "queue full" in r),
        "syn_cookies_sent": sum(1 for r in reasons if "SYN cookie" in r),
        "client_syn_fates": [e["reason"] for e in drops(events, "server")
                             if e["src"].startswith(CLIENT) and e["flags"] == "S"],
        "client_connect": connect[-1]["result"] if connect else None,
        "server_app_read_request": bool(_app_data(events)),
        "legit_segments_seen": len(legit),
    }


# ---------------------------------------------------------------- simultaneous open


def run_simultaneous_open(seed: int, sw: Switches) -> Network:
    net = Network(seed, msl=30.0)
    a = net.add_host("A", CLIENT, sw.config())
    b = net.add_host("B", SERVER, sw.config())
    net.link(a, b, LinkSpec(delay=DELAY))
    sa, sb = SimSocket(net, a), SimSocket(net, b)
    sa.bind(("0.0.0.0", 5000))
    sb.bind(("0.0.0.0", 6000))
    for sock in (sa, sb):
        sock.setblocking(False)
    note(net, "A (port 5000) and B (port 6000) both call connect() to each other, no listener",
         key="simopen.both", pa=5000, pb=6000)
    assert sa.connect_ex((SERVER, 6000)) == errno.EINPROGRESS
    assert sb.connect_ex((CLIENT, 5000)) == errno.EINPROGRESS
    net.run_until(lambda: sa.state == sb.state == "ESTABLISHED", timeout=5, what="open")
    net.run_for(0.2)
    return net


def outcome_simultaneous_open(events: list[Event]) -> dict[str, Any]:
    return {
        "A_path": next(iter(conn_paths(events, "A").values())),
        "B_path": next(iter(conn_paths(events, "B").values())),
        "segments": [f"{e['host']}:{e['flags']}" for e in sent(events)],
        "listener_used": any(e["kind"] == "app" and e["call"] == "listen" for e in events),
    }


SCENARIOS = [
    Scenario("handshake", run_handshake, outcome_handshake, group="handshake",
             counterfactual=with_switch(None, two_way_handshake=True),
             headline=("first_segments", "server_established_before_third_segment")),
    Scenario("old-duplicate-syn", run_old_duplicate_syn, outcome_old_duplicate_syn, group="handshake",
             counterfactual=with_switch(None, two_way_handshake=True),
             headline=("client_reset_old_synack", "connections_accepted", "old_data_committed")),
    Scenario("isn-sync", run_isn_sync, outcome_isn_sync, group="handshake",
             counterfactual=with_switch(None, four_segment=True),
             headline=("flags", "segments_until_both_isns_acked")),
    Scenario("syn-retransmit", run_syn_retransmit, outcome_syn_retransmit, group="handshake",
             counterfactual=with_switch(None, two_way_handshake=True),
             headline=("syns_reaching_server", "server_half_open_peak", "server_established")),
    Scenario("syn-flood", run_syn_flood, outcome_syn_flood, group="queues",
             counterfactual=with_switch(None, syn_cookies=True),
             headline=("syns_dropped_queue_full", "syn_cookies_sent", "client_connect")),
    Scenario("simultaneous-open", run_simultaneous_open, outcome_simultaneous_open, group="handshake",
             headline=("A_path", "B_path")),
]
