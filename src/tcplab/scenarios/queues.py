"""Scenarios about a listener's two queues: backlog, overflow, connections nobody accepts.

A listening socket holds half-open connections (SYN-RECEIVED) in its SYN queue
and completed ones (ESTABLISHED) in its accept queue, until ``accept()`` takes
them (RFC 9293 3.10.7.2 leaves the bounds to the implementation).  Linux:
``listen(fd, backlog)`` takes min(backlog, net.core.somaxconn) (4096 since 5.4),
the accept queue holds one more than that (sk_acceptq_is_full: ``len >
backlog``), a SYN that finds the accept queue full is dropped, and a third
ACK that finds it full is dropped too (tcp_abort_on_overflow 0) or answered
with RST (1).  The SYN queue is bounded by the same backlog; beyond it SYN
cookies answer (tcp_syncookies 1), or without them the SYN is dropped (and
tcp_max_syn_backlog keeps its last quarter for peers known to be alive).

The engine implements these rules (:mod:`tcplab.engine.listener`); the
scenarios show them happen, and every outcome is read from the trace.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from tcplab.api.sockets import TcpSocket
from tcplab.engine.listener import Listener
from tcplab.i18n import maybe, text
from tcplab.scenarios.base import (
    REQUEST,
    RESPONSE,
    SERVER,
    Scenario,
    Switches,
    app_calls,
    drops,
    facts,
    listen,
    note,
    recv_exactly,
    sent,
    text_of,
    two_hosts,
)
from tcplab.scenarios.connecting import Poller, lives
from tcplab.sim.network import Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import SYN, Mss, TcpSegment

MASK = 0xFFFFFFFF
BACKLOG = 2       #: listen(fd, 2)
GAP = 0.3         #: seconds between two clients' connect() calls
ACCEPT_AT = 3.0   #: the server application starts calling accept() then

READY = "connection ready to accept"


def capacity(lst: Listener) -> int:
    """How many completed connections ``lst`` holds before its accept queue is full."""
    return lst.backlog + (1 if lst.plus_one else 0)


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "?")


def _listen_note(net: Network, srv: SimSocket, backlog: int) -> Listener:
    lst = srv.listener
    assert lst is not None
    cap = srv.host.config.somaxconn
    note(net, f"server: listen(backlog={backlog}); somaxconn "
              f"{'none' if cap is None else cap}: the kernel takes {lst.backlog}",
         fact="listen", host="server", key="queues.listen", backlog=backlog,
         somaxconn="none" if cap is None else cap, taken=lst.backlog)
    return lst


class Server:
    """The server application: from ``start`` on, it accepts every connection the
    moment it is queued, reads the request and answers it."""

    def __init__(self, net: Network, srv: SimSocket, start: float) -> None:
        self.net = net
        self.srv = srv
        self.start = start
        self.conns: list[tuple[TcpSocket, bytearray]] = []
        self.finished: set[int] = set()
        srv.setblocking(False)
        Poller(net).add(self.poll)

    def poll(self) -> bool:
        if self.net.now < self.start:
            return False
        lst = self.srv.listener
        while lst is not None and lst.accept_queue:
            child, _ = self.srv.accept()
            child.setblocking(False)
            self.conns.append((child, bytearray()))
            note(self.net, f"server app: accept() returns the connection from port "
                           f"{child.getpeername()[1]}", fact="accepted", host="server",
                 key="app.accept", port=child.getpeername()[1])
        for i, (child, got) in enumerate(self.conns):
            if i in self.finished:
                continue
            try:
                got += child.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                self.finished.add(i)  # reset by the peer: nothing to answer
                continue
            if len(got) >= len(REQUEST):
                child.sendall(RESPONSE)
                self.finished.add(i)
        return False


class Client:
    """A client application: connect() (non-blocking), send the request, wait for the
    answer; what happens is written into the trace as facts with its ``label``."""

    def __init__(self, net: Network, poller: Poller, number: int) -> None:
        self.net = net
        self.number = number
        self.label = str(number)
        self.sock = SimSocket(net, net.hosts["client"])
        self.sock.setblocking(False)
        self.t0 = net.now
        self.sock.connect_ex((SERVER, 80))
        assert self.sock.conn is not None
        self.port = self.sock.conn.lport
        note(net, f"client {number}: connect() from port {self.port}, then send() the request",
             fact="client", label=self.label, key="queues.client", n=number, port=self.port)
        self.sock.send(REQUEST)
        self.connected = False
        self.got = b""
        self.done = False
        poller.add(self.poll)

    def poll(self) -> bool:
        conn = self.sock.conn
        assert conn is not None
        if not self.connected and conn.state.value == "ESTABLISHED":
            self.connected = True
            note(self.net, f"client {self.number}: connect() returns: ESTABLISHED for the client",
                 fact="client-connected", label=self.label, key="queues.connected",
                 n=self.number, after=round(self.net.now - self.t0, 6))
        try:
            self.got += self.sock.recv(4096)
        except BlockingIOError:
            return False
        except OSError as exc:
            note(self.net, f"client {self.number}: recv() fails: {_errname(exc)}",
                 fact="client-done", label=self.label, result=_errname(exc),
                 key="queues.failed", n=self.number, err=_errname(exc))
            self.done = True
            return True
        if len(self.got) >= len(RESPONSE):
            note(self.net, f"client {self.number}: got the response", fact="client-done",
                 label=self.label, result="ok", key="queues.answered", n=self.number,
                 after=round(self.net.now - self.t0, 6))
            self.done = True
            return True
        return False


def queue_lengths(events: list[Event]) -> list[tuple[float, int]]:
    """The server's accept queue over time: +1 when a connection becomes ready to
    accept, -1 when accept() takes one (the host's own app events)."""
    n = 0
    out: list[tuple[float, int]] = []
    for e in events:
        if e["kind"] != "app" or e["host"] != "server":
            continue
        if e["call"] == "event" and e["result"] == READY:
            n += 1
        elif e["call"] == "accept":
            n -= 1
        else:
            continue
        out.append((e["t"], n))
    return out


def half_open_peak(events: list[Event]) -> int:
    """The most connections the server held in SYN-RECEIVED at once (its SYN queue; a
    connection rebuilt from a SYN cookie passes SYN-RECEIVED without being queued)."""
    live: set[str] = set()
    peak = 0
    for e in events:
        if e["kind"] != "state" or e["host"] != "server":
            continue
        if e["to"] == "SYN-RECEIVED" and e["cause"] != "valid SYN cookie":
            live.add(e["conn"])
        elif e["from"] == "SYN-RECEIVED":
            live.discard(e["conn"])
        peak = max(peak, len(live))
    return peak


def _reasons(events: list[Event], flags: Callable[[str], bool]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in drops(events, "server"):
        if flags(e["flags"]):
            out[e["reason"]] = out.get(e["reason"], 0) + 1
    return out


def _clients(events: list[Event]) -> dict[str, dict[str, Any]]:
    """Each client's story, from its facts: port, when connect() returned, the end."""
    out: dict[str, dict[str, Any]] = {}
    for e in facts(events, "client"):
        out[e["label"]] = {"port": e["args"]["port"], "started": e["t"], "connected": None,
                           "result": None, "ended": None}
    for e in facts(events, "client-connected"):
        out[e["label"]]["connected"] = e["args"]["after"]
    for e in facts(events, "client-done"):
        out[e["label"]]["result"] = e["result"]
        out[e["label"]]["ended"] = round(e["t"] - out[e["label"]]["started"], 6)
    return out


def _listened(events: list[Event]) -> dict[str, Any]:
    args: dict[str, Any] = facts(events, "listen", "server")[0]["args"]
    return args


# ---------------------------------------------------------------- backlog


def run_backlog(seed: int, sw: Switches) -> Network:
    if sw.variant == "syn-queue":
        return _syn_queue(seed, sw)
    net, _c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80, backlog=BACKLOG)
    lst = _listen_note(net, srv, BACKLOG)
    note(net, f"server app: busy; it calls accept() only from t={ACCEPT_AT:g} s",
         key="queues.busy", at=ACCEPT_AT)
    app = Server(net, srv, ACCEPT_AT)
    poller = Poller(net)
    clients: list[Client] = []
    # Two clients more than the accept queue holds, one every GAP seconds.
    for i in range(capacity(lst) + 2):
        net.run(until=i * GAP)
        clients.append(Client(net, poller, i + 1))
    net.run(until=ACCEPT_AT)
    app.poll()
    net.run_until(lambda: all(c.done for c in clients), timeout=60, what="every client")
    net.run_for(0.2)
    return net


SPOOFED = 8   #: spoofed SYNs in the syn-queue case (more than the SYN queue holds)


def _syn_queue(seed: int, sw: Switches) -> Network:
    net, _c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80, backlog=BACKLOG)
    _listen_note(net, srv, BACKLOG)
    Server(net, srv, 0.0)
    note(net, f"attacker: {SPOOFED} SYNs from spoofed addresses that will never answer",
         key="flood.attack", n=SPOOFED)
    for i in range(SPOOFED):
        seg = TcpSegment(20000 + i, 80, (0x1000 * (i + 1)) & MASK, 0, SYN, 65535, 0,
                         (Mss(1460),))
        net.inject("attacker", emit_ip_tcp(f"198.51.100.{10 + i}", SERVER, seg), delay=0.05)
    net.run(until=0.5)
    poller = Poller(net)
    client = Client(net, poller, 1)
    net.run_until(lambda: client.done, timeout=200, what="the client's answer")
    net.run_for(0.2)
    return net


def outcome_backlog(events: list[Event]) -> dict[str, Any]:
    listened = _listened(events)
    clients = _clients(events)
    lengths = queue_lengths(events)
    accepts = app_calls(events, "accept", "server")
    first_accept = accepts[0]["t"] if accepts else None
    syn_fates = _reasons(events, lambda f: f == "S")
    dropped = sum(n for r, n in syn_fates.items() if "SYN dropped" in r)
    out: dict[str, Any] = {
        "listen_backlog": listened["backlog"],
        "somaxconn": None if listened["somaxconn"] == "none" else listened["somaxconn"],
        "backlog_taken": listened["taken"],
        "accept_queue_peak": max((n for _t, n in lengths), default=0),
        "syn_queue_peak": half_open_peak(events),
        "syns_admitted": syn_fates.get("SYN in LISTEN: new connection", 0),
        "syns_dropped": dropped,
        "syn_cookies_sent": syn_fates.get("SYN answered with a SYN cookie", 0),
        "clients": len(clients),
        "first_accept_at": first_accept,
        "connect_returned_after": [c["connected"] for c in clients.values()],
        "answered": [c["result"] for c in clients.values()],
    }
    if first_accept is not None:
        out["connected_before_accept"] = sum(
            1 for c in clients.values() if c["connected"] is not None
            and c["started"] + c["connected"] < first_accept)
    return out


def report_backlog(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    cap = outcome["somaxconn"]
    lines = ["  " + text("ui.queues.backlog", lang, backlog=outcome["listen_backlog"],
                  somaxconn=text("somaxconn.none", lang) if cap is None else cap,
                  taken=outcome["backlog_taken"],
                  peak=outcome["accept_queue_peak"], syn=outcome["syn_queue_peak"])]
    for label, c in _clients(events).items():
        if c["connected"] is None:
            when = text("ui.queues.never", lang)
        else:
            when = text("ui.queues.after", lang, t=f"{c['connected']:g}")
        result = c["result"] or "—"
        lines.append("  " + text("ui.queues.client", lang, n=label, port=c["port"], when=when,
                                 result=maybe(f"value.{result}", lang) or result))
    return lines


# ---------------------------------------------------------------- accept-overflow

PAIR_AT = 1.0    #: two clients call connect() at the same instant
LATE_AT = 1.5    #: one more client, while the queue is full


def run_accept_overflow(seed: int, sw: Switches) -> Network:
    net, _c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80, backlog=BACKLOG)
    lst = _listen_note(net, srv, BACKLOG)
    note(net, f"server app: busy; it calls accept() only from t={ACCEPT_AT:g} s",
         key="queues.busy", at=ACCEPT_AT)
    app = Server(net, srv, ACCEPT_AT)
    poller = Poller(net)
    clients: list[Client] = []
    # The queue, filled but one place: one client every GAP seconds.
    for i in range(capacity(lst) - 1):
        net.run(until=i * GAP)
        clients.append(Client(net, poller, i + 1))
    # Two clients at the same instant: both SYNs find room, so both get a
    # SYN-ACK; the first third ACK takes the last place, the second finds the
    # accept queue full.
    net.run(until=PAIR_AT)
    n = len(clients)
    clients += [Client(net, poller, n + 1), Client(net, poller, n + 2)]
    # One more, while the queue is full: its SYN is dropped.
    net.run(until=LATE_AT)
    clients.append(Client(net, poller, n + 3))
    net.run(until=ACCEPT_AT)
    app.poll()
    net.run_until(lambda: all(c.done for c in clients), timeout=120, what="every client")
    net.run_for(0.2)
    return net


def outcome_accept_overflow(events: list[Event]) -> dict[str, Any]:
    clients = _clients(events)
    by_port = {c["port"]: label for label, c in clients.items()}
    lengths = queue_lengths(events)
    overflow = [e for e in drops(events, "server") if "A" in e["flags"]
                and e["reason"].startswith("accept queue full")]
    syn_full = [e for e in drops(events, "server") if e["flags"] == "S"
                and e["reason"] == "accept queue full: SYN dropped"]
    out: dict[str, Any] = {
        "accept_queue_peak": max((n for _t, n in lengths), default=0),
        "third_ack_fate": overflow[0]["reason"] if overflow else None,
        "overflowed_client": None,
    }
    if overflow:
        first = overflow[0]
        port = int(first["src"].rpartition(":")[2])
        label = by_port[port]
        c = clients[label]
        client_conn_states = [e for e in events if e["kind"] == "state"
                              and e["host"] == "client" and e["conn"].split("-")[0]
                              .endswith(f":{port}")]
        est = next((e["t"] for e in client_conn_states if e["to"] == "ESTABLISHED"), None)
        server_states = [e for e in events if e["kind"] == "state" and e["host"] == "server"
                         and e["conn"].endswith(f":{port}") and e["t"] < first["t"]]
        synacks = [e for e in sent(events, "server") if e["flags"] == "SA"
                   and e["dst"].endswith(f":{port}")]
        out.update({
            "overflowed_client": int(label),
            "client_established_before_the_drop": est is not None and est <= first["t"],
            "server_state_then": server_states[-1]["to"] if server_states else None,
            "its_segments_dropped": sum(1 for e in overflow if e["src"] == first["src"]),
            "synack_retransmissions": max(len(synacks) - 1, 0),
            "server_sent_rst": any("R" in e["flags"] and e["dst"] == first["src"]
                                   for e in sent(events, "server")),
            "its_result": c["result"],
            "its_answer_after": c["ended"],
        })
    late = list(clients.values())[-1] if clients else None
    out.update({
        "syns_dropped_accept_queue_full": len(syn_full),
        "late_client_connected_after": late["connected"] if late else None,
        "results": [c["result"] for c in clients.values()],
    })
    return out


# ---------------------------------------------------------------- no-accept

SECOND = b"and a second message, sent 1 s later"
LATE = 5.0   #: the server application calls accept() this late


def run_no_accept(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    note(net, f"server: listen(); the application does not call accept() until t={LATE:g} s",
         key="noaccept.listen", at=LATE)
    cli = SimSocket(net, c)
    cli.connect((SERVER, 80))
    note(net, "client: connect() returned; the client sends its request",
         key="noaccept.connected")
    cli.sendall(REQUEST)
    net.run(until=1.0)
    cli.sendall(SECOND)
    note(net, "client: sends a second message", key="noaccept.second")
    net.run(until=LATE)
    conn, _ = srv.accept()
    note(net, "server: accept() at last: the connection has been ESTABLISHED for seconds",
         fact="accepted", host="server", key="noaccept.accept")
    data = recv_exactly(conn, len(REQUEST) + len(SECOND))
    note(net, f"server app: read {len(data)} bytes that arrived long before accept()",
         fact="app-recv", host="server", data=text_of(data), key="noaccept.read",
         n=len(data))
    conn.sendall(RESPONSE)
    recv_exactly(cli, len(RESPONSE))
    net.run_for(0.5)
    return net


def outcome_no_accept(events: list[Event]) -> dict[str, Any]:
    accepted = facts(events, "accepted", "server")[0]["t"]
    server_life = lives(events, "server")[0]
    est = next(e["t"] for e in events if e["kind"] == "state" and e["host"] == "server"
               and e["to"] == "ESTABLISHED")
    syn = next(e for e in sent(events, "client") if e["flags"] == "S")
    acks_before = [e for e in sent(events, "server") if e["t"] < accepted and "A" in e["flags"]]
    last = acks_before[-1] if acks_before else None
    data_before = [e for e in sent(events, "client") if e["len"] and e["t"] < accepted]
    read = facts(events, "app-recv", "server")
    return {
        "server_path": server_life,
        "server_established_at": est,
        "accept_called_at": accepted,
        "established_without_accept_for": round(accepted - est, 6),
        "client_data_segments_before_accept": len(data_before),
        "bytes_acked_before_accept": ((last["ack"] - syn["seq"] - 1) & MASK) if last else 0,
        "server_window_before_accept": last["win"] if last else None,
        "server_window_at_handshake": next((e["win"] for e in sent(events, "server")
                                            if e["flags"] == "SA"), None),
        "server_app_read": read[-1]["data"] if read else None,
    }


SCENARIOS = [
    Scenario("backlog", run_backlog, outcome_backlog, group="queues", report=report_backlog,
             variants=("syn-queue",),
             headline=("backlog_taken", "accept_queue_peak", "syn_queue_peak")),
    Scenario("accept-overflow", run_accept_overflow, outcome_accept_overflow, group="queues",
             headline=("accept_queue_peak", "third_ack_fate", "syns_dropped_accept_queue_full")),
    Scenario("no-accept", run_no_accept, outcome_no_accept, group="queues",
             headline=("established_without_accept_for", "bytes_acked_before_accept")),
]
