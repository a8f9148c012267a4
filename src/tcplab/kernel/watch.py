"""The kernel's own TCP, live: tracepoints, captured segments and sock_diag, as one trace.

Theory of operation
-------------------
Three sources, each with the kernel's own timestamps, merged into tcplab's trace schema
(:mod:`tcplab.trace`; docs/trace.md) in time order:

* **states** from the tracepoint ``sock:inet_sock_set_state``, read from a private
  tracefs instance (:mod:`tcplab.kernel.tracefs`), plus retransmissions, resets and
  drops from the ``tcp:`` and ``skb:`` tracepoints;
* **segments** from an AF_PACKET capture (:mod:`tcplab.kernel.capture`);
* **timewait mini-sockets** from sock_diag (:mod:`tcplab.kernel.sockdiag`). When a
  socket enters TIME-WAIT (or is closed by its program in FIN-WAIT-2), Linux frees the
  full socket and keeps a small ``inet_timewait_sock`` in its place. The tracepoint
  shows the full socket going to CLOSE; the mini-socket, visible only to sock_diag,
  goes on in FIN-WAIT-2 and then TIME-WAIT. :class:`KernelWatch` asks sock_diag at
  that moment, keeps the connection in the state the mini-socket holds, says so in a
  ``note``, moves it to TIME-WAIT when the peer's FIN reaches it, and to CLOSED when
  sock_diag no longer lists it.

Inputs arrive out of order (one buffer per CPU, and a packet socket): they wait in a
heap for :data:`HOLDBACK_NS` and are then handled strictly by timestamp, so a segment
and the state change it causes come out in the order they happened.

Hosts: each end of a connection is named by its role, ``client`` (it called
``connect()``) or ``server`` (its socket came from a listener), so every picture draws
two lanes; ``conn`` names the connection from that end (``"laddr:lport-raddr:rport"``).
Segments are ``send`` events of the end that sent them (the capture sees every
loopback segment once, leaving its sender).

Where tracefs is missing, :class:`PolledStates` (sock_diag every few milliseconds)
stands in for the tracepoint, and the ``cause`` of each state says it was polled.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tcplab.kernel import sockdiag
from tcplab.kernel.tracefs import TraceRecord, endpoints
from tcplab.trace import Event
from tcplab.wire.errors import WireError
from tcplab.wire.ip import parse_ip
from tcplab.wire.tcp import flags_str, option_text, parse_tcp

__all__ = [
    "HOLDBACK_NS",
    "KernelWatch",
    "PolledStates",
    "StateChange",
    "WatchFilter",
    "texts",
]

HOLDBACK_NS = 40_000_000  # how long an input waits for earlier ones from other sources
MAX_EVENTS = 200_000  # the trace's bound; segments beyond it are counted, not kept
MAX_RAW_BYTES = 64 << 20  # packet bytes kept for --pcap; beyond, segments keep no bytes
TW_POLL_NS = 500_000_000  # how often sock_diag is asked whether a mini-socket is gone
CAUSE_WINDOW_NS = 2_000_000  # a segment this recent is taken as a state change's cause
#: recent-packet memories (the last segment each end received, the ids of segments sent
#: and not yet arrived, SYNs already told): only the last milliseconds matter, so each
#: keeps its most recently used entries up to this many
RECENT_KEEP = 4096
#: connections in CLOSED whose record is kept (a late segment, drop or RST can still
#: name their state); older ones are forgotten with their ends' roles
CLOSED_KEEP = 1024

STATE_NAMES = sockdiag.STATES
#: a RST ended a timewait mini-socket (tcp_rfc1337 = 0): the engine's words for it
RST_IN_TIME_WAIT = "RST in TIME-WAIT (no RFC 1337 protection)"
CLOSED = "CLOSED"
Key = tuple[str, int, str, int]  # local addr, local port, remote addr, remote port

# --------------------------------------------------------------------------- texts

_TEXTS: dict[str, dict[str, str]] = {
    "connect": {"en": "connect() by {who}", "zh": "{who} 调用 connect()"},
    "listen": {"en": "listen() by {who}", "zh": "{who} 调用 listen()"},
    "close": {"en": "close() or shutdown() by {who}", "zh": "{who} 调用 close() 或 shutdown()"},
    "after": {"en": "after {what} from {peer}", "zh": "收到{peer}的 {what} 之后"},
    "child": {"en": "the full socket is made from the request socket (TCP_NEW_SYN_RECV) "
                    "when the handshake's ACK arrives",
              "zh": "握手的 ACK 到达时，由请求套接字（TCP_NEW_SYN_RECV）创建完整套接字"},
    "irq": {"en": "a segment or a timer (softirq)", "zh": "报文或计时器（软中断）"},
    "context": {"en": "a segment or a timer, handled in the context of {who}",
                "zh": "报文或计时器，在 {who} 的上下文中处理"},
    "tracepoint": {"en": "sock:inet_sock_set_state", "zh": "sock:inet_sock_set_state"},
    "polled": {"en": "seen by sock_diag (polled every {ms} ms; shorter states are missed)",
               "zh": "由 sock_diag 看到（每 {ms} 毫秒轮询一次，更短的状态会被漏掉）"},
    "handoff_fw2": {
        "en": "{role} {conn}: the tracepoint shows FIN-WAIT-2 -> CLOSE, but only the full "
              "socket is freed: the program closed it, so a timewait mini-socket "
              "(inet_timewait_sock) takes over in FIN-WAIT-2, visible only to sock_diag",
        "zh": "{role} {conn}：跟踪点显示 FIN-WAIT-2 -> CLOSE，但释放的只是完整套接字：程序已"
              "关闭它，于是由 TIME-WAIT 迷你套接字（inet_timewait_sock）以 FIN-WAIT-2 接管，"
              "只有 sock_diag 能看到"},
    "handoff_tw": {
        "en": "{role} {conn}: the tracepoint shows {old} -> CLOSE, but the connection "
              "lives on in TIME-WAIT as a timewait mini-socket (inet_timewait_sock, "
              "visible only to sock_diag); the full socket is freed",
        "zh": "{role} {conn}：跟踪点显示 {old} -> CLOSE，但连接以 TIME-WAIT 迷你套接字"
              "（inet_timewait_sock，只有 sock_diag 能看到）继续存在；释放的只是完整套接字"},
    "tw_fin": {"en": "the FIN from {peer} reached the timewait mini-socket (sock_diag: "
                     "TIME-WAIT)",
               "zh": "{peer}的 FIN 到达 TIME-WAIT 迷你套接字（sock_diag：TIME-WAIT）"},
    "tw_seen": {"en": "seen by sock_diag: the timewait mini-socket is in {state}",
                "zh": "由 sock_diag 看到：TIME-WAIT 迷你套接字处于 {state}"},
    "tw_gone": {"en": "the timewait mini-socket expired (gone from sock_diag)",
                "zh": "TIME-WAIT 迷你套接字到期（已从 sock_diag 消失）"},
    "retransmit": {"en": "{role} {conn} retransmits a segment in {state} "
                         "(tcp:tcp_retransmit_skb)",
                   "zh": "{role} {conn} 在 {state} 中重传报文（tcp:tcp_retransmit_skb）"},
    "retransmit_synack": {"en": "{role} {conn} retransmits its SYN-ACK from the request "
                                "socket (tcp:tcp_retransmit_synack)",
                          "zh": "{role} {conn} 由请求套接字重传 SYN-ACK"
                                "（tcp:tcp_retransmit_synack）"},
    "send_reset": {"en": "{role} {conn} sends RST in {state}, reason {reason} "
                         "(tcp:tcp_send_reset)",
                   "zh": "{role} {conn} 在 {state} 中发送 RST，原因 {reason}"
                         "（tcp:tcp_send_reset）"},
    "receive_reset": {"en": "{role} {conn} accepts the RST (tcp:tcp_receive_reset)",
                      "zh": "{role} {conn} 接受了 RST（tcp:tcp_receive_reset）"},
    "drop": {"en": "{reason} (skb:kfree_skb)", "zh": "{reason}（skb:kfree_skb）"},
    "drop_note": {"en": "{role} {conn}: the kernel drops a packet, reason {reason} "
                        "(skb:kfree_skb)",
                  "zh": "{role} {conn}：内核丢弃一个报文，原因 {reason}（skb:kfree_skb）"},
    "request_sock": {
        "en": "{role} {conn}: the SYN makes a request socket (TCP_NEW_SYN_RECV): it "
              "answers SYN-ACK and holds SYN-RECEIVED without a tracepoint; the full "
              "socket comes with the handshake's ACK",
        "zh": "{role} {conn}：SYN 创建了请求套接字（TCP_NEW_SYN_RECV）：它回复 SYN-ACK，"
              "处于 SYN-RECEIVED 但没有跟踪点；完整套接字在握手的 ACK 到达时才创建"},
    "the client": {"en": "the client", "zh": "客户端"},
    "the server": {"en": "the server", "zh": "服务器"},
    "watching": {"en": "watching {what} ({source}{capture}) {until}",
                 "zh": "正在观察 {what}（{source}{capture}），{until}"},
    "every_connection": {"en": "every TCP connection", "zh": "所有 TCP 连接"},
    "capture_on": {"en": ", capture on every interface", "zh": "，在所有接口上抓包"},
    "for_seconds": {"en": "for {s} s", "zh": "持续 {s} 秒"},
    "until_ctrl_c": {"en": "until Ctrl+C", "zh": "直到按下 Ctrl+C"},
    "finished": {"en": "{how}: {conns} socket(s), {segs} segment(s); {cleanup}",
                 "zh": "{how}：{conns} 个套接字，{segs} 个报文；{cleanup}"},
    "done": {"en": "done", "zh": "完成"},
    "stopped": {"en": "stopped", "zh": "已停止"},
    "instance_removed": {"en": "tracefs instance removed.", "zh": "tracefs 实例已删除。"},
    "nothing_left": {"en": "nothing left behind.", "zh": "没有留下任何东西。"},
    "truncated": {"en": "the trace reached {n} events: later segments are counted, not kept",
                  "zh": "跟踪已达 {n} 个事件：之后的报文只计数，不再保存"},
}


def texts(key: str, lang: str = "en", **values: Any) -> str:
    """One text of the watch, in English or Chinese, filled with the run's values."""
    entry = _TEXTS[key]
    return (entry.get(lang) or entry["en"]).format(**values)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class StateChange:
    """One state change of one kernel socket, from the tracepoint or a poll."""

    ts_ns: int
    sock_id: object  # the socket's address in the kernel (tracepoint) or its 4-tuple
    family: int  # 4 or 6
    key: Key  # from the socket's side; local port 0 before connect() picked one
    old: str
    new: str
    pid: int = 0
    in_irq: bool = True
    polled_ms: int = 0  # > 0: seen by polling sock_diag every polled_ms


@dataclass
class WatchFilter:
    """Which connections to show: ports (any of them at either end), an address, a process."""

    ports: tuple[int, ...] = ()
    host: str | None = None
    pid: int | None = None

    def tuple_ok(self, key: Key) -> bool:
        if self.ports and key[1] not in self.ports and key[3] not in self.ports:
            return False
        return self.host is None or self.host in (key[0], key[2])


def _norm(addr: str) -> str:
    """IPv4-mapped IPv6 addresses as IPv4 (a dual-stack socket talking IPv4)."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


def endpoint_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def conn_text(key: Key) -> str:
    return f"{endpoint_text(key[0], key[1])}-{endpoint_text(key[2], key[3])}"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return f"{fh.read().strip()}[{pid}]"
    except OSError:
        return f"pid {pid}"


@dataclass
class _Conn:
    """What is known about one end of a connection (one local socket)."""

    key: Key
    family: int
    state: str = CLOSED
    tw: str = ""  # the timewait mini-socket's state, once the full socket is gone
    tw_checked_ns: int = 0
    peer_fin_ns: int = 0  # when the peer's FIN arrived (0: not yet)


@dataclass
class _Pending:
    ts: int
    order: int
    kind: str  # "state", "record", "packet"
    item: Any = field(compare=False)


class KernelWatch:
    """Turns the kernel's inputs into trace events (see the module doc).

    ``feed_*`` queue inputs; :meth:`advance` handles those older than the holdback,
    :meth:`finish` all of them. ``now_ns`` reads the clock the inputs are on;
    ``lookup`` asks sock_diag for one 4-tuple (a seam for the TUN backend and tests).
    """

    def __init__(self, *, filt: WatchFilter | None = None, lang: str = "en",
                 t0_ns: int = 0, now_ns: Callable[[], int] | None = None,
                 lookup: Callable[[Key], str | None] | None = None,
                 on_event: Callable[[Event], None] | None = None,
                 host_names: tuple[str, str] = ("client", "server"),
                 emit_segments: bool = True,
                 symbols: dict[str, dict[str, dict[int, str]]] | None = None,
                 peer_name: str | None = None,
                 host_of: Callable[[str], str | None] | None = None) -> None:
        self.filt = filt or WatchFilter()
        self.lang = lang
        self.t0_ns = t0_ns
        self.now_ns = now_ns or time.monotonic_ns
        self.lookup = lookup or lookup_state
        self.on_event = on_event
        self.client_name, self.server_name = host_names
        self.emit_segments = emit_segments
        self.symbols = symbols or {}
        self.peer_name = peer_name  # who the other end is, when not a watched socket
        # The host an address belongs to, where the caller knows (two namespaces, one
        # address each): then each end is named by its address, not by its role.
        self.host_of = host_of
        self.events: list[Event] = []
        self.dropped_events = 0
        self.raw_bytes = 0
        self.segments_seen = 0
        self._heap: list[tuple[int, int, str, Any]] = []
        self._order = itertools.count()
        self._next_id = itertools.count(1)
        self._conns: dict[Key, _Conn] = {}
        self._by_sock: dict[object, Key] = {}
        self._early: dict[object, list[StateChange]] = {}  # before the local port is known
        self._roles: dict[tuple[str, int], str] = {}  # end -> "client"/"server"
        self._listening: set[tuple[str, int]] = set()
        self._wanted: set[Key] = set()  # --pid: connections of that process
        self._wanted_ports: set[int] = set()  # --pid: its listening ports
        self._wanted_socks: set[object] = set()  # --pid: its sockets before they have a port
        self._seen_request: dict[Key, None] = {}  # SYNs told as request sockets (recent)
        # The last segment each end received: (ts, flags, segment id), by receiver's key.
        self._last_in: dict[Key, tuple[int, str, int, int]] = {}
        self._comms: dict[int, str] = {}
        self._truncated_noted = False
        self._sent_ids: dict[bytes, int] = {}  # packet bytes -> id of its send event
        self._closed: dict[Key, None] = {}  # connections in CLOSED, oldest first

    # ------------------------------------------------------------ inputs

    def feed_state(self, change: StateChange) -> None:
        heapq.heappush(self._heap, (change.ts_ns, next(self._order), "state", change))

    def feed_record(self, rec: TraceRecord) -> None:
        if not rec.in_irq:
            self.comm(rec.pid)  # now, while the process is surely alive
        if rec.event == "inet_sock_set_state":
            change = state_change(rec)
            if change is not None:
                self.feed_state(change)
            return
        heapq.heappush(self._heap, (rec.ts_ns, next(self._order), "record", rec))

    def feed_packet(self, ts_ns: int, data: bytes, part: str = "both") -> None:
        """A segment on the wire: a ``segment`` event (if ``emit_segments``), and what
        tells which segment caused a state change and when a peer's FIN arrived.

        ``part``: ``"both"`` where sending and arriving are one moment (loopback, a TUN
        device); with a link between the ends, ``"sent"`` when it left its sender (the
        ``segment`` event) and ``"arrived"`` when it reached its receiver (causes, a
        peer's FIN), each with its own timestamp."""
        if part not in ("both", "sent", "arrived"):
            raise ValueError(f"part must be both, sent or arrived, not {part!r}")
        heapq.heappush(self._heap, (ts_ns, next(self._order), "packet", (data, part)))

    def know_listener(self, addr: str, port: int, pid_owned: bool = False) -> None:
        """A socket already listening when the watch started (from sock_diag)."""
        self._listening.add((_norm(addr), port))
        if pid_owned:
            self._wanted_ports.add(port)

    def know_connection(self, key: Key, state: str, role: str | None = None,
                        pid_owned: bool = False) -> None:
        """A connection that existed when the watch started (from sock_diag)."""
        conn = self._conn(key, 6 if ":" in key[0] else 4)
        conn.state = state
        if role is not None:
            self._set_role(key, role)
        if pid_owned:
            self._wanted.add(key)

    def advance(self) -> None:
        """Handle every input older than the holdback."""
        self._drain(self.now_ns() - HOLDBACK_NS)
        self._check_timewait()

    def finish(self) -> None:
        """Handle every input left, then look at the mini-sockets once more."""
        self._drain(None)
        self._check_timewait(force=True)

    def _drain(self, upto: int | None) -> None:
        heap = self._heap
        while heap and (upto is None or heap[0][0] <= upto):
            ts, _o, kind, item = heapq.heappop(heap)
            if kind == "state":
                self._on_state(item)
            elif kind == "packet":
                self._on_packet(ts, *item)
            else:
                self._on_record(item)

    # ------------------------------------------------------------ output

    def _emit(self, ev: Event, ts_ns: int) -> Event:
        ev["t"] = (ts_ns - self.t0_ns) / 1e9
        ev["t_ns"] = ts_ns
        if len(self.events) >= MAX_EVENTS and ev["kind"] == "segment":
            self.dropped_events += 1
            if not self._truncated_noted:
                self._truncated_noted = True
                note: Event = {"t": ev["t"], "t_ns": ts_ns, "kind": "note",
                               "text": texts("truncated", self.lang, n=MAX_EVENTS)}
                self.events.append(note)
                if self.on_event is not None:
                    self.on_event(note)
            return ev
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)
        return ev

    def _note(self, ts_ns: int, text: str, host: str | None = None,
              conn: str | None = None) -> None:
        ev: Event = {"kind": "note", "text": text}
        if host is not None:
            ev["host"] = host
        if conn is not None:
            ev["conn"] = conn
        self._emit(ev, ts_ns)

    # ------------------------------------------------------------ roles and filters

    def _set_role(self, key: Key, role: str) -> None:
        other = self.server_name if role == self.client_name else self.client_name
        self._roles.setdefault((key[0], key[1]), role)
        if key[3]:
            self._roles.setdefault((key[2], key[3]), other)

    def role(self, key: Key) -> str:
        """The name of the end ``key`` is local to: client or server."""
        if self.host_of is not None:
            named = self.host_of(key[0])
            if named is not None:
                return named
        local, remote = (key[0], key[1]), (key[2], key[3])
        role = self._roles.get(local)
        if role is not None:
            return role
        peer = self._roles.get(remote)
        if peer is not None:
            return self.server_name if peer == self.client_name else self.client_name
        # Neither end's story is known (it began before the watch): the end on a
        # listening port is the server; failing that, the lower port.
        if not key[3] or self._listens(key[0], key[1]):
            return self.server_name
        if self._listens(key[2], key[3]):
            return self.client_name
        return self.server_name if key[1] < key[3] or not key[3] else self.client_name

    def _listens(self, addr: str, port: int) -> bool:
        """A listener (on this address or on every address) has this port."""
        return any((a, port) in self._listening for a in (addr, "0.0.0.0", "::"))

    def _wanted_key(self, key: Key) -> bool:
        if not self.filt.tuple_ok(key):
            return False
        if self.filt.pid is None:
            return True
        rev = (key[2], key[3], key[0], key[1])
        return (key in self._wanted or rev in self._wanted or key[1] in self._wanted_ports
                or (key[3] in self._wanted_ports and key[2] != "0.0.0.0"))

    def _conn(self, key: Key, family: int) -> _Conn:
        conn = self._conns.get(key)
        if conn is None:
            conn = self._conns[key] = _Conn(key, family)
        return conn

    def remembered(self) -> dict[str, int]:
        """How many items each of the model's memories holds (each is bounded)."""
        return {"connections": len(self._conns), "roles": len(self._roles),
                "sockets": len(self._by_sock), "last segments": len(self._last_in),
                "sent ids": len(self._sent_ids), "requests told": len(self._seen_request)}

    def _retire(self, conn: _Conn) -> None:
        """``conn`` is in CLOSED: keep it among the last :data:`CLOSED_KEEP` closed ones,
        and forget the oldest beyond them, with the roles of their ends (a listener's
        end keeps its role): a server that runs for days keeps what is alive."""
        closed = self._closed
        closed.pop(conn.key, None)
        closed[conn.key] = None
        while len(closed) > CLOSED_KEEP:
            key = next(iter(closed))
            del closed[key]
            old = self._conns.get(key)
            if old is None or old.state != CLOSED:
                continue  # a new life on the 4-tuple since
            del self._conns[key]
            self._wanted.discard(key)
            for end in ((key[0], key[1]), (key[2], key[3])):
                if end not in self._listening:
                    self._roles.pop(end, None)

    # ------------------------------------------------------------ states

    def _on_state(self, ch: StateChange) -> None:
        if ch.key[1] == 0 and ch.new == "SYN-SENT" and not ch.polled_ms:
            # connect() has not picked the local port yet: wait for the socket's next event
            if len(self._early) < 10_000:
                self._early.setdefault(ch.sock_id, []).append(ch)
            if self.filt.pid is not None and not ch.in_irq and ch.pid == self.filt.pid:
                self._wanted_socks.add(ch.sock_id)
            return
        self._resolve_early(ch.sock_id, ch.key)
        self._apply_state(ch)

    def _resolve_early(self, sock_id: object, key: Key) -> None:
        """Apply the changes of a socket that waited for its local port, now known."""
        for e in self._early.pop(sock_id, ()):
            if e.sock_id in self._wanted_socks:
                self._wanted_socks.discard(e.sock_id)
                self._wanted.add(key)
            self._apply_state(StateChange(e.ts_ns, e.sock_id, e.family, key, e.old, e.new,
                                          e.pid, e.in_irq, e.polled_ms))

    def _apply_state(self, ch: StateChange) -> None:
        if ch.old == ch.new:
            return  # e.g. close() after shutdown(): tcp_set_state(FIN-WAIT-1) once more
        key = ch.key
        pid_match = self.filt.pid is not None and not ch.in_irq and ch.pid == self.filt.pid
        if ch.new == "LISTEN" or (ch.old == "LISTEN" and ch.new == CLOSED):
            if ch.new == "LISTEN":
                self._listening.add((key[0], key[1]))
                if pid_match:
                    self._wanted_ports.add(key[1])
            self._roles[(key[0], key[1])] = self.server_name
        elif ch.new == "SYN-SENT":
            self._set_role(key, self.client_name)
        elif ch.old == "LISTEN" and ch.new == "SYN-RECEIVED":
            self._set_role(key, self.server_name)
        if pid_match:
            self._wanted.add(key)
        if not self._wanted_key(key):
            return
        if ch.new == "SYN-SENT" or ch.old == "LISTEN":
            conn = self._conns.get(key)
            if conn is not None and conn.state == CLOSED:
                del self._conns[key]  # a new life on an old 4-tuple
        conn = self._conn(key, ch.family)
        self._by_sock[ch.sock_id] = key
        role = self.role(key)
        if ch.new == CLOSED and ch.old in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING") \
                and not ch.polled_ms:
            if self._timewait_handoff(ch, conn, role):
                self._by_sock.pop(ch.sock_id, None)  # the full socket is gone
                return
        old = conn.state if ch.polled_ms else ch.old
        if ch.old == "LISTEN" and ch.new == "SYN-RECEIVED":
            old = "LISTEN"
        conn.state = ch.new
        self._emit({"kind": "state", "host": role, "conn": conn_text(key), "from": old,
                    "to": ch.new, "cause": self._cause(ch, conn)}, ch.ts_ns)
        if ch.new == CLOSED:
            self._by_sock.pop(ch.sock_id, None)
            self._retire(conn)

    def _cause(self, ch: StateChange, conn: _Conn) -> str:
        lang = self.lang
        if ch.polled_ms:
            return texts("polled", lang, ms=ch.polled_ms)
        source = texts("tracepoint", lang)
        if not ch.in_irq:
            who = self.comm(ch.pid)
            if ch.old == CLOSED and ch.new == "SYN-SENT":
                return f"{texts('connect', lang, who=who)} ({source})"
            if ch.new == "LISTEN":
                return f"{texts('listen', lang, who=who)} ({source})"
            if (ch.old, ch.new) in (("ESTABLISHED", "FIN-WAIT-1"), ("CLOSE-WAIT", "LAST-ACK"),
                                    ("SYN-RECEIVED", "FIN-WAIT-1")):
                return f"{texts('close', lang, who=who)} ({source})"
            if ch.new == CLOSED and ch.old in ("ESTABLISHED", "CLOSE-WAIT", "LISTEN",
                                               "SYN-SENT"):
                last = self._last_in.get(conn.key)
                if last is None or ch.ts_ns - last[0] > CAUSE_WINDOW_NS or "R" not in last[1]:
                    return f"{texts('close', lang, who=who)} ({source})"
        if ch.old == "LISTEN" and ch.new == "SYN-RECEIVED":
            return f"{texts('child', lang)} ({source})"
        last = self._last_in.get(conn.key)
        if last is not None and 0 <= ch.ts_ns - last[0] <= CAUSE_WINDOW_NS:
            peer = self._peer_text(conn.key)
            return f"{texts('after', lang, what=_flag_words(last[1]), peer=peer)} ({source})"
        if ch.in_irq:
            return f"{texts('irq', lang)} ({source})"
        return f"{texts('context', lang, who=self.comm(ch.pid))} ({source})"

    def _peer_text(self, key: Key) -> str:
        """Who is at the other end: "the server", "the client", or the peer's name."""
        if self.peer_name is not None:
            return self.peer_name
        if self.host_of is not None:
            named = self.host_of(key[2])
            if named is not None and named not in ("client", "server"):
                return named  # "A", "attacker": the name itself
        mine = self.role(key)
        return texts("the server" if mine == self.client_name else "the client", self.lang)

    def comm(self, pid: int) -> str:
        """``name[pid]`` of a process, as first seen (it may have exited since)."""
        name = self._comms.get(pid)
        if name is None:
            name = _comm(pid)
            if len(self._comms) < 10_000:
                self._comms[pid] = name
        return name

    def _timewait_handoff(self, ch: StateChange, conn: _Conn, role: str) -> bool:
        """X -> CLOSE of a full socket that a timewait mini-socket replaces; True if so."""
        tw = self.lookup(conn.key)
        if tw not in ("FIN-WAIT-2", "TIME-WAIT", "FIN-WAIT-1", "CLOSING", "LAST-ACK"):
            return False
        ctext = conn_text(conn.key)
        conn.tw_checked_ns = self.now_ns()
        if conn.peer_fin_ns and conn.peer_fin_ns <= ch.ts_ns:
            # The peer's FIN (or the ACK of ours after it) made the mini-socket in TIME-WAIT.
            self._note(ch.ts_ns, texts("handoff_tw", self.lang, role=role, conn=ctext,
                                       old=ch.old), role, ctext)
            conn.tw = "TIME-WAIT"
            old, conn.state = conn.state, "TIME-WAIT"
            self._emit({"kind": "state", "host": role, "conn": ctext, "from": old,
                        "to": "TIME-WAIT",
                        "cause": self._cause(ch, conn).replace(
                            texts("tracepoint", self.lang),
                            texts("tw_seen", self.lang, state="TIME-WAIT"))}, ch.ts_ns)
            return True
        # Orphaned in FIN-WAIT-2: the mini-socket carries FIN-WAIT-2 on.
        conn.tw = "FIN-WAIT-2"
        self._note(ch.ts_ns, texts("handoff_fw2", self.lang, role=role, conn=ctext), role,
                   ctext)
        # If the mini-socket is already in TIME-WAIT, the peer's FIN has arrived and is
        # still waiting in the heap: its segment moves the connection on, at its own time
        # (_on_packet). Without a capture, _check_timewait does, at the time it looks.
        return True

    def _check_timewait(self, force: bool = False) -> None:
        """Ask sock_diag about the mini-sockets being followed: gone means CLOSED."""
        now = self.now_ns()
        for conn in list(self._conns.values()):
            if not conn.tw or conn.state == CLOSED:
                continue
            if not force and now - conn.tw_checked_ns < TW_POLL_NS:
                continue
            conn.tw_checked_ns = now
            state = self.lookup(conn.key)
            role = self.role(conn.key)
            ctext = conn_text(conn.key)
            if state is None:
                old, conn.state, conn.tw = conn.state, CLOSED, ""
                self._emit({"kind": "state", "host": role, "conn": ctext, "from": old,
                            "to": CLOSED, "cause": texts("tw_gone", self.lang)}, now)
                self._retire(conn)
            elif state == "TIME-WAIT" and conn.state != "TIME-WAIT":
                old, conn.state, conn.tw = conn.state, "TIME-WAIT", "TIME-WAIT"
                self._emit({"kind": "state", "host": role, "conn": ctext, "from": old,
                            "to": "TIME-WAIT",
                            "cause": texts("tw_seen", self.lang, state=state)}, now)

    # ------------------------------------------------------------ segments

    def _on_packet(self, ts: int, data: bytes, part: str = "both") -> None:
        try:
            ip = parse_ip(data)
            if ip.proto != socket.IPPROTO_TCP:
                return
            # No checksum check: a loopback packet leaves with its checksum unfinished.
            seg = parse_tcp(ip.payload)
        except WireError:
            return
        src, dst = _norm(ip.src), _norm(ip.dst)
        key: Key = (src, seg.src_port, dst, seg.dst_port)
        rkey: Key = (dst, seg.dst_port, src, seg.src_port)
        flags = flags_str(seg.flags)
        if part == "arrived":
            if self._wanted_key(key):
                self._arrived(ts, rkey, flags, self._sent_ids.get(data, 0), len(seg.payload))
            return
        if self._early and seg.syn and not seg.has_ack:
            # The SYN of a connect() whose SYN-SENT came before its port was chosen.
            for sock_id, changes in list(self._early.items()):
                k = changes[0].key
                if k[0] in (src, "0.0.0.0", "::") and (k[2], k[3]) == (dst, seg.dst_port):
                    self._resolve_early(sock_id, key)
                    break
        if not self._wanted_key(key):
            return
        self.segments_seen += 1
        sender = self.role(key)
        if "S" in flags and "A" not in flags and (src, seg.src_port) not in self._roles \
                and (self.host_of is None or self.host_of(src) is None):
            self._set_role(key, self.client_name)  # a SYN comes from the client
            sender = self.client_name
        pid = 0
        if self.emit_segments:
            pid = next(self._next_id)
            ev: Event = {"kind": "segment", "event": "send", "id": pid, "host": sender,
                         "conn": conn_text(key), "src": endpoint_text(src, seg.src_port),
                         "dst": endpoint_text(dst, seg.dst_port), "flags": flags,
                         "seq": seg.seq, "ack": seg.ack, "len": len(seg.payload),
                         "win": seg.window, "opts": [option_text(o) for o in seg.options],
                         "fate": "delivered"}
            if self.raw_bytes + len(data) <= MAX_RAW_BYTES:
                ev["raw"] = bytes(data)
                self.raw_bytes += len(data)
            self._emit(ev, ts)
        if part == "sent":
            sent = self._sent_ids
            if len(sent) >= RECENT_KEEP:  # bound; an arrival follows its sending closely
                del sent[next(iter(sent))]
            sent[bytes(data)] = pid
            return
        self._arrived(ts, rkey, flags, pid, len(seg.payload))

    def _arrived(self, ts: int, rkey: Key, flags: str, pid: int, length: int) -> None:
        """A segment reached its receiver: remember it as a cause; a peer's FIN; a SYN
        that makes a request socket."""
        dst, dport = rkey[0], rkey[1]
        last_in = self._last_in
        # bound: only the last few milliseconds matter; the least recently updated go
        if last_in.pop(rkey, None) is None and len(last_in) >= RECENT_KEEP:
            del last_in[next(iter(last_in))]
        last_in[rkey] = (ts, flags, pid, length)
        receiver = self._conns.get(rkey)
        if receiver is not None:
            if "R" in flags and receiver.tw and receiver.state == "TIME-WAIT" \
                    and self.lookup(receiver.key) is None:
                # The kernel has handled the RST by now (inputs wait HOLDBACK_NS).
                role = self.role(receiver.key)
                receiver.state, receiver.tw = CLOSED, ""
                self._emit({"kind": "state", "host": role, "conn": conn_text(receiver.key),
                            "from": "TIME-WAIT", "to": CLOSED,
                            # the engine's cause, which the pictures explain in each language
                            "cause": RST_IN_TIME_WAIT}, ts)
                self._retire(receiver)
                return
            if "F" in flags:
                receiver.peer_fin_ns = receiver.peer_fin_ns or ts
                if receiver.tw == "FIN-WAIT-2" and receiver.state == "FIN-WAIT-2":
                    self._timewait_fin(receiver, ts)
        elif "S" in flags and "A" not in flags and self._listens(dst, dport):
            seen = self._seen_request
            if rkey not in seen:
                if len(seen) >= RECENT_KEEP:
                    del seen[next(iter(seen))]
                seen[rkey] = None
                ctext = conn_text(rkey)
                role = self.role(rkey) if self.host_of is not None else self.server_name
                self._note(ts, texts("request_sock", self.lang, role=role, conn=ctext),
                           role, ctext)

    def _timewait_fin(self, conn: _Conn, ts: int) -> None:
        """The peer's FIN reached a mini-socket in FIN-WAIT-2: confirm TIME-WAIT."""
        state = self.lookup(conn.key)
        if state not in ("TIME-WAIT", None):
            return  # not (yet) accepted: _check_timewait looks again
        role = self.role(conn.key)
        peer = self._peer_text(conn.key)
        old, conn.state, conn.tw = conn.state, "TIME-WAIT", "TIME-WAIT"
        ctext = conn_text(conn.key)
        self._emit({"kind": "state", "host": role, "conn": ctext, "from": old,
                    "to": "TIME-WAIT", "cause": texts("tw_fin", self.lang, peer=peer)}, ts)
        if state is None:  # already expired (a very short TIME-WAIT)
            conn.state, conn.tw = CLOSED, ""
            self._emit({"kind": "state", "host": role, "conn": ctext, "from": "TIME-WAIT",
                        "to": CLOSED, "cause": texts("tw_gone", self.lang)}, self.now_ns())
            self._retire(conn)

    # ------------------------------------------------------------ other tracepoints

    def _on_record(self, rec: TraceRecord) -> None:
        v = rec.values
        if rec.event == "kfree_skb":
            self._on_drop(rec)
            return
        ends = endpoints(v)
        if ends is None:
            return
        key: Key = (_norm(ends[1]), ends[2], _norm(ends[3]), ends[4])
        if not self._wanted_key(key):
            return
        role = self.role(key)
        ctext = conn_text(key)
        state_num = v.get("state")
        state = STATE_NAMES.get(state_num, str(state_num)) if isinstance(state_num, int) \
            else self._conns[key].state if key in self._conns else "?"
        if state_num == 0:
            state = CLOSED  # no socket: a RST for a connection that does not exist
        if rec.event == "tcp_retransmit_skb":
            text = texts("retransmit", self.lang, role=role, conn=ctext, state=state)
        elif rec.event == "tcp_retransmit_synack":
            text = texts("retransmit_synack", self.lang, role=role, conn=ctext)
        elif rec.event == "tcp_send_reset":
            reason = v.get("reason")
            text = texts("send_reset", self.lang, role=role, conn=ctext, state=state,
                         reason=self.symbol(rec, "reason", reason))
        elif rec.event == "tcp_receive_reset":
            text = texts("receive_reset", self.lang, role=role, conn=ctext)
        else:
            return
        self._note(rec.ts_ns, text, role, ctext)

    def _on_drop(self, rec: TraceRecord) -> None:
        sk = rec.values.get("rx_sk")
        key = self._by_sock.get(sk) if isinstance(sk, int) and sk else None
        if key is None or not self._wanted_key(key):
            return
        conn = self._conns.get(key)
        reason = self.symbol(rec, "reason", rec.values.get("reason"))
        role = self.role(key)
        last = self._last_in.get(key)
        if reason == "NOT_SPECIFIED" and last is not None and not last[3] \
                and 0 <= rec.ts_ns - last[0] <= CAUSE_WINDOW_NS:
            # tcp_rcv_state_process() frees a segment it has handled and not queued (an
            # ACK, a RST, a FIN without data) through kfree_skb with no reason: consumed,
            # not dropped.
            return
        if conn is not None and last is not None and last[2] \
                and 0 <= rec.ts_ns - last[0] <= CAUSE_WINDOW_NS:
            self._emit({"kind": "segment", "event": "drop", "id": last[2],
                        "host": role, "conn": conn_text(key), "flags": last[1],
                        "len": last[3], "fate": "dropped",
                        "reason": texts("drop", self.lang, reason=reason)}, rec.ts_ns)
            return
        ctext = conn_text(key)
        self._note(rec.ts_ns, texts("drop_note", self.lang, role=role, conn=ctext,
                                    reason=reason), role, ctext)

    def symbol(self, rec: TraceRecord, fieldname: str, value: object) -> str:
        """The symbol the kernel's print format gives a field's value ("TCP_OLD_DATA")."""
        table = self.symbols.get(rec.event, {}).get(fieldname, {})
        if isinstance(value, int):
            return table.get(value, str(value))
        return str(value)


_WORDS = {"S": "SYN", "F": "FIN", "R": "RST", "P": "PSH", "A": "ACK"}


def _flag_words(flags: str) -> str:
    words = [w for letter, w in _WORDS.items() if letter in flags]
    if words == ["PSH", "ACK"]:
        return "data"
    return "+".join(words) or "segment"


def state_change(rec: TraceRecord) -> StateChange | None:
    """An ``inet_sock_set_state`` record as a :class:`StateChange` (TCP only)."""
    v = rec.values
    if v.get("protocol", socket.IPPROTO_TCP) != socket.IPPROTO_TCP:
        return None
    ends = endpoints(v)
    old, new = v.get("oldstate"), v.get("newstate")
    if ends is None or not isinstance(old, int) or not isinstance(new, int):
        return None
    return StateChange(rec.ts_ns, v.get("skaddr"), ends[0],
                       (_norm(ends[1]), ends[2], _norm(ends[3]), ends[4]),
                       STATE_NAMES.get(old, str(old)), STATE_NAMES.get(new, str(new)),
                       rec.pid, rec.in_irq)


def lookup_state(key: Key) -> str | None:
    """The state sock_diag reports for one 4-tuple now (a mini-socket's too), or None."""
    try:
        records = sockdiag.lookup((key[0], key[1]), (key[2], key[3]))
    except OSError:
        return None
    port = key[3].to_bytes(2, "big")
    lport = key[1].to_bytes(2, "big")
    for r in records:
        if r[5] == port and r[4] == lport:
            return sockdiag.STATES.get(r[1], str(r[1]))
    return None


# --------------------------------------------------------------------------- polling


class PolledStates:
    """The fallback without tracefs: sock_diag every ``interval`` s, changes as states."""

    def __init__(self, filt: WatchFilter, interval: float = 0.01,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.filt = filt
        self.interval = interval
        self.now_ns = now_ns
        self.current: dict[Key, str] = {}
        self.first = True

    def poll(self, families: Iterable[int] = (4, 6)) -> list[StateChange]:
        ts = self.now_ns()
        ms = max(1, round(self.interval * 1000))
        now: dict[Key, tuple[int, str]] = {}
        for fam in families:
            records = sockdiag.dump(fam)
            if self.filt.ports:
                records = sockdiag.keep_ports(records, self.filt.ports)
            cols = sockdiag.to_columns(fam, records)
            for la, lp, ra, rp, st in zip(cols[2], cols[3], cols[4], cols[5], cols[1],
                                          strict=True):
                key = (_norm(la), lp, _norm(ra), rp)
                if self.filt.tuple_ok(key):
                    now[key] = (fam, st)
        out: list[StateChange] = []
        if not self.first:
            for key, (fam, st) in now.items():
                before = self.current.get(key, CLOSED)
                if before != st:
                    out.append(StateChange(ts, key, fam, key, before, st, polled_ms=ms))
            for key, before in self.current.items():
                if key not in now:
                    out.append(StateChange(ts, key, 6 if ":" in key[0] else 4, key, before,
                                           CLOSED, polled_ms=ms))
        self.first = False
        self.current = {k: st for k, (_f, st) in now.items()}
        return out


def packet_clock_offset(clock: str) -> int:
    """What to add to a packet's CLOCK_REALTIME timestamp to put it on ``clock``."""
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    if clock == "tai":
        tai = time.clock_gettime_ns(time.CLOCK_TAI)
        return round((tai - real) / 1e9) * 1_000_000_000  # a whole number of seconds
    if clock == "mono":
        mono = time.monotonic_ns()
        return mono - real
    return 0


def clock_now(clock: str) -> int:
    if clock == "tai":
        return time.clock_gettime_ns(time.CLOCK_TAI)
    if clock == "mono":
        return time.monotonic_ns()
    return time.time_ns()


def process_sockets(pid: int) -> set[int]:
    """The socket inodes process ``pid`` holds."""
    out: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out
