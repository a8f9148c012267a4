"""A host's TCP: demultiplexing, listeners, TIME-WAIT, ports, resets.  Sans-I/O.

Theory of operation
-------------------
A backend (the simulator, the TUN device, a test) drives a :class:`Host`:

* ``host.receive(packet, now)`` with one IP packet (bytes) that arrived;
* ``host.transmit()`` returns the IP packets to put on the wire, each with
  its trace event (the backend records the packet's fate on it);
* ``host.next_deadline()`` says when the host next wants ``handle_timers(now)``.

Applications use ``bind``/``listen``/``connect`` here and the
:class:`~tcplab.engine.connection.Connection` and :class:`Listener` methods.
Nothing here reads a clock, touches a socket or uses global random state:
``now`` is always passed in and randomness comes from the ``rng`` given to the
constructor (ephemeral ports, the ISN key, the SYN-cookie secret).

Segments that match no connection are handled as RFC 9293 3.10.7.1 (CLOSED)
and 3.10.7.2 (LISTEN) say.  Binding follows Linux: a port held by a live
socket or a TIME-WAIT entry can be bound again only when both the holder and
the new socket set SO_REUSEADDR, and a listener always blocks.
"""

from __future__ import annotations

import errno as _errno
import hashlib
import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.errors import TcpError, addr_in_use
from tcplab.engine.isn import IsnGenerator
from tcplab.engine.state import State
from tcplab.engine.timewait import Key, TimeWaitEntry, TimeWaitTable
from tcplab.trace import Event, Trace
from tcplab.wire.errors import WireError
from tcplab.wire.ip import emit_ip_tcp, parse_ip_tcp
from tcplab.wire.seq import Seq, seq_in_window
from tcplab.wire.tcp import ACK, FIN, RST, SYN, Mss, TcpSegment, flags_str, option_text

WILDCARDS = ("0.0.0.0", "::")
_COOKIE_MSS = (536, 1220, 1440, 1460, 4312, 8960, 16384, 65495)


class Outgoing:
    """A segment to send, with its trace event (``None`` when not tracing).

    ``data`` is the whole IP packet; it is built on first use (at once when
    tracing, since the trace keeps it for pcap), so a backend that delivers
    the checked segment itself, like the simulator, never pays for bytes it
    does not need.
    """

    __slots__ = ("_data", "dst", "event", "seg", "src")

    def __init__(self, seg: TcpSegment, src: str, dst: str, event: Event | None,
                 data: bytes | None = None) -> None:
        self.seg = seg
        self.src = src
        self.dst = dst
        self.event = event
        self._data = data

    @property
    def data(self) -> bytes:
        d = self._data
        if d is None:
            d = self._data = emit_ip_tcp(self.src, self.dst, self.seg)
        return d


class Binding:
    """A local (address, port) held by a socket: bound, listening or connected."""

    __slots__ = ("addr", "listening", "port", "released", "reuse", "users")

    def __init__(self, addr: str, port: int, reuse: bool) -> None:
        self.addr = addr
        self.port = port
        self.reuse = reuse
        self.listening = False
        self.users = 1
        self.released = False


class Listener:
    """A socket in LISTEN (RFC 9293 3.10.7.2): SYN queue and accept queue."""

    __slots__ = (
        "accept_queue",
        "backlog",
        "binding",
        "closed",
        "host",
        "on_event",
        "syn_dropped",
        "syn_queue",
    )

    def __init__(self, host: Host, binding: Binding, backlog: int) -> None:
        self.host = host
        self.binding = binding
        self.backlog = max(1, backlog)
        self.syn_queue: dict[Key, Connection] = {}
        self.accept_queue: deque[Connection] = deque()
        self.on_event: Callable[[str, Listener], None] | None = None
        self.closed = False
        self.syn_dropped = 0

    @property
    def addr(self) -> str:
        return self.binding.addr

    @property
    def port(self) -> int:
        return self.binding.port

    def accept(self) -> Connection | None:
        """The oldest completed connection, or None."""
        if self.accept_queue:
            return self.accept_queue.popleft()
        return None

    def close(self, now: float) -> None:
        """Stop listening: half-open and unaccepted connections are reset (like Linux)."""
        if self.closed:
            return
        self.closed = True
        # Like Linux and FreeBSD: half-open connections are forgotten silently,
        # completed but unaccepted ones are reset.
        for conn in list(self.syn_queue.values()):
            self.host.drop_embryonic(conn, now, "listener closed")
        for conn in list(self.accept_queue):
            conn.abort(now, cause="listener closed")
        self.syn_queue.clear()
        self.accept_queue.clear()
        self.host.close_listener(self, now)


class Host:
    """One TCP host: owns its connections, listeners and TIME-WAIT entries."""

    def __init__(self, name: str, addrs: list[str] | str, *, config: TcpConfig | None = None,
                 rng: random.Random | None = None, trace: Trace | None = None) -> None:
        self.name = name
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.config = config or TcpConfig()
        self.rng = rng if rng is not None else random.Random(0)
        self.trace = trace if trace is not None else Trace()
        self.isn = IsnGenerator(self.rng.getrandbits(128).to_bytes(16, "big"))
        self.cookie_key = self.rng.getrandbits(128).to_bytes(16, "big")
        self.conns: dict[Key, Connection] = {}
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.time_wait = TimeWaitTable()
        self.bindings: dict[int, list[Binding]] = {}
        self.outbox: list[Outgoing] = []
        self._heap: list[tuple[float, int, Connection]] = []
        self._heap_seq = 0
        self._chal_window = -1.0
        self._chal_count = 0
        self.current_packet_id: int | None = None
        self.stats: dict[str, int] = {"syn_cookies_sent": 0, "syn_cookies_accepted": 0,
                                      "challenge_acks": 0, "rst_sent": 0}

    # ============================================================ backend side

    def receive(self, packet: bytes, now: float, packet_id: int | None = None) -> None:
        """One IP packet arrived.  Never raises because of its contents."""
        self.current_packet_id = packet_id
        try:
            ip, seg = parse_ip_tcp(packet)
        except WireError as exc:
            self._drop_raw(packet, now, exc.reason)
            return
        if ip.dst not in self.addrs:
            self._trace_drop(ip.src, ip.dst, seg, now, "not addressed to this host")
            return
        self.receive_segment(ip.src, ip.dst, seg, now)

    def receive_segment(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        """Dispatch a checked segment: connection, TIME-WAIT, listener, or none."""
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.conns.get(key)
        if conn is not None:
            conn.on_segment(seg, now)
            return
        if key in self.time_wait:
            if not self._time_wait_segment(key, seg, now):
                return
        listener = self.listeners.get((dst, seg.dst_port))
        if listener is None:
            listener = self.listeners.get((WILDCARDS[1] if ":" in dst else WILDCARDS[0],
                                           seg.dst_port))
        if listener is not None:
            self._listen_segment(listener, key, seg, now)
            return
        self._closed_segment(key, seg, now, "no connection or listener")

    def transmit(self) -> list[Outgoing]:
        """Packets produced since the last call."""
        out = self.outbox
        self.outbox = []
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`handle_timers` has work."""
        heap = self._heap
        while heap:
            deadline, _n, conn = heap[0]
            if conn.sched_at != deadline or not self._live(conn):
                heapq.heappop(heap)  # superseded by an earlier entry, or the connection is gone
                continue
            nd = conn.next_deadline()
            if nd is None:
                heapq.heappop(heap)
                conn.sched_at = None
                continue
            if nd != deadline:  # a timer moved (restarted later, or cancelled)
                conn.sched_at = nd
                heapq.heapreplace(heap, (nd, self._next_seq(), conn))
                continue
            break
        best = heap[0][0] if heap else None
        tw = self.time_wait.next_deadline()
        if tw is not None and (best is None or tw < best):
            best = tw
        return best

    def _live(self, conn: Connection) -> bool:
        return conn.state is not State.CLOSED and self.conns.get(conn.key) is conn

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            d, _n, conn = heapq.heappop(heap)
            if conn.sched_at != d or not self._live(conn):
                continue
            conn.sched_at = None
            nd = conn.next_deadline()
            if nd is None:
                continue
            if nd <= now:
                conn.on_timer(now)
                nd = conn.next_deadline()
            if nd is not None and self._live(conn):
                self.schedule(conn, nd)
        for key, entry in self.time_wait.pop_expired(now):
            self._time_wait_expired(key, entry, now)

    def _next_seq(self) -> int:
        self._heap_seq += 1
        return self._heap_seq

    def schedule(self, conn: Connection, deadline: float) -> None:
        """A connection armed a timer: make sure the heap will wake it.

        One heap entry per connection at a time, at its earliest deadline: a
        timer restarted later (the retransmission timer on every ACK) pushes
        nothing; the entry is moved when it comes up.
        """
        at = conn.sched_at
        if at is not None and at <= deadline:
            return
        conn.sched_at = deadline
        heapq.heappush(self._heap, (deadline, self._next_seq(), conn))

    # ============================================================ output

    def output(self, conn: Connection, seg: TcpSegment, now: float) -> None:
        self._emit(conn.laddr, conn.raddr, seg, now, conn)

    def _emit(self, src: str, dst: str, seg: TcpSegment, now: float,
              conn: Connection | None = None) -> None:
        data: bytes | None = None
        ev: Event | None = None
        tr = self.trace
        if seg.flags & RST:
            self.stats["rst_sent"] += 1
        if tr.enabled:
            ev = {"t": now, "kind": "segment", "event": "send", "id": tr.next_id(),
                  "host": self.name, "src": f"{src}:{seg.src_port}",
                  "dst": f"{dst}:{seg.dst_port}", "flags": flags_str(seg.flags),
                  "seq": seg.seq, "ack": seg.ack, "len": len(seg.payload), "win": seg.window,
                  "opts": [option_text(o) for o in seg.options], "fate": "delivered",
                  "raw": (data := emit_ip_tcp(src, dst, seg))}
            if conn is not None:
                ev["conn"] = conn.name
                ev["tcb"] = conn.tcb()
            tr.add(ev)
        self.outbox.append(Outgoing(seg, src, dst, ev, data))

    def drop(self, seg: TcpSegment, conn: Connection | None, now: float, reason: str,
             accepted: bool = False) -> None:
        """Record that a segment was discarded (or, with ``accepted``, acted on)."""
        if conn is not None:
            self._trace_drop(conn.raddr, conn.laddr, seg, now, reason, conn.name, accepted)

    def _trace_drop(self, src: str, dst: str, seg: TcpSegment, now: float, reason: str,
                    conn: str | None = None, accepted: bool = False) -> None:
        tr = self.trace
        if not tr.enabled:
            return
        ev: Event = {"t": now, "kind": "segment", "event": "accept" if accepted else "drop",
                     "id": self.current_packet_id, "host": self.name,
                     "src": f"{src}:{seg.src_port}", "dst": f"{dst}:{seg.dst_port}",
                     "flags": flags_str(seg.flags), "seq": seg.seq, "ack": seg.ack,
                     "len": len(seg.payload), "win": seg.window,
                     "fate": "delivered" if accepted else "dropped", "reason": reason}
        if conn is not None:
            ev["conn"] = conn
        tr.add(ev)

    def _drop_raw(self, packet: bytes, now: float, reason: str) -> None:
        tr = self.trace
        if tr.enabled:
            tr.add({"t": now, "kind": "segment", "event": "drop", "id": self.current_packet_id,
                    "host": self.name, "len": len(packet), "fate": "dropped",
                    "reason": reason})

    def _app(self, now: float, call: str, result: str, conn: str | None = None) -> None:
        tr = self.trace
        if tr.enabled:
            tr.add({"t": now, "kind": "app", "host": self.name, "conn": conn, "call": call,
                    "result": result})

    def app_event(self, now: float, call: str, result: str, conn: str | None = None) -> None:
        """Record an application call (used by the socket layers)."""
        self._app(now, call, result, conn)

    def challenge_ack_allowed(self, now: float) -> bool:
        """RFC 5961 7: at most ``challenge_ack_limit`` challenge ACKs per second."""
        window = float(int(now))
        if window != self._chal_window:
            self._chal_window = window
            self._chal_count = 0
        if self._chal_count >= self.config.challenge_ack_limit:
            return False
        self._chal_count += 1
        self.stats["challenge_acks"] += 1
        return True

    # ============================================================ no connection

    def _send_reset_for(self, key: Key, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.1: the reset that answers a segment for no connection."""
        if seg.flags & RST:
            return  # never answer a RST
        laddr, lport, raddr, rport = key
        if seg.flags & ACK:
            rst = TcpSegment(lport, rport, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(lport, rport, 0, (seg.seq + seg.seg_len) & 0xFFFFFFFF,
                             RST | ACK, 0)
        self._emit(laddr, raddr, rst, now)

    def _closed_segment(self, key: Key, seg: TcpSegment, now: float, why: str) -> None:
        name = f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"
        if seg.flags & RST:
            self._trace_drop(key[2], key[0], seg, now, f"RST for no connection ({why})", name)
            return
        self._trace_drop(key[2], key[0], seg, now, f"{why}: answered with RST", name)
        self._send_reset_for(key, seg, now)

    # ============================================================ LISTEN

    def _listen_segment(self, lst: Listener, key: Key, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.2, plus SYN queue limits and SYN cookies."""
        name = f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"
        flags = seg.flags
        if flags & RST:
            self._trace_drop(key[2], key[0], seg, now, "RST in LISTEN", name)
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(lst, key, seg, now):
                return
            self._trace_drop(key[2], key[0], seg, now, "ACK in LISTEN: answered with RST", name)
            self._send_reset_for(key, seg, now)
            return
        if not flags & SYN:
            self._trace_drop(key[2], key[0], seg, now, "no SYN in LISTEN", name)
            return
        if flags & FIN and self.config.drop_synfin:
            self._trace_drop(key[2], key[0], seg, now, "SYN+FIN dropped (drop_synfin)", name)
            return
        mode = self.config.syn_cookies
        if len(lst.accept_queue) >= lst.backlog:
            lst.syn_dropped += 1
            self._trace_drop(key[2], key[0], seg, now, "accept queue full: SYN dropped", name)
            return
        if mode == "always" or (len(lst.syn_queue) >= lst.backlog and mode == "auto"):
            self._send_cookie(key, seg, now)
            return
        if len(lst.syn_queue) >= lst.backlog:
            lst.syn_dropped += 1
            self._trace_drop(key[2], key[0], seg, now, "SYN queue full: SYN dropped", name)
            return
        iss = self.isn.isn(now, *key)
        conn = Connection(self, key[0], key[1], key[2], key[3], iss, self.config)
        conn.binding = lst.binding
        conn.reuseaddr = lst.binding.reuse
        lst.binding.users += 1
        self.conns[key] = conn
        lst.syn_queue[key] = conn
        self._trace_drop(key[2], key[0], seg, now, "SYN in LISTEN: new connection", name,
                         accepted=True)
        conn.open_passive(seg, lst, now)

    # ---- SYN cookies: the ISN encodes a time slot, the MSS and a keyed hash.

    def _cookie_hash(self, key: Key, peer_isn: int, slot: int) -> int:
        h = hashlib.blake2s(f"{key}|{peer_isn}|{slot}".encode(), key=self.cookie_key,
                            digest_size=4).digest()
        return int.from_bytes(h, "big") & 0xFFFFFF

    def _send_cookie(self, key: Key, seg: TcpSegment, now: float) -> None:
        slot = int(now // 64) & 0x1F
        mss = seg.mss or self.config.default_mss
        idx = max(i for i, m in enumerate(_COOKIE_MSS) if m <= max(mss, _COOKIE_MSS[0]))
        cookie = (slot << 27) | (idx << 24) | self._cookie_hash(key, seg.seq, slot)
        self.stats["syn_cookies_sent"] += 1
        name = f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"
        self._trace_drop(key[2], key[0], seg, now, "SYN answered with a SYN cookie", name,
                         accepted=True)
        synack = TcpSegment(key[1], key[3], cookie, (seg.seq + 1) & 0xFFFFFFFF, SYN | ACK,
                            min(self.config.rcv_buf, 0xFFFF), 0,
                            (Mss(min(self.config.mss, 0xFFFF)),))
        self._emit(key[0], key[2], synack, now)

    def _cookie_ack(self, lst: Listener, key: Key, seg: TcpSegment, now: float) -> bool:
        if self.config.syn_cookies == "never":
            return False
        cookie = (seg.ack - 1) & 0xFFFFFFFF
        peer_isn = (seg.seq - 1) & 0xFFFFFFFF
        slot = cookie >> 27
        now_slot = int(now // 64) & 0x1F
        if (now_slot - slot) & 0x1F > 1:
            return False
        if self._cookie_hash(key, peer_isn, slot) != cookie & 0xFFFFFF:
            return False
        if len(lst.accept_queue) >= lst.backlog:
            # A valid cookie but no room: drop it, as Linux does (listen
            # overflow); the peer's retransmission may find room later.
            self._trace_drop(key[2], key[0], seg, now, "valid SYN cookie, accept queue full",
                             f"{key[0]}:{key[1]}-{key[2]}:{key[3]}")
            return True
        conn = Connection(self, key[0], key[1], key[2], key[3], cookie, self.config)
        conn.binding = lst.binding
        conn.reuseaddr = lst.binding.reuse
        lst.binding.users += 1
        conn.passive = True
        conn.listener = lst
        conn.irs = Seq(peer_isn)
        conn.rcv_nxt = Seq(seg.seq)
        conn.snd_una = conn.snd_nxt = conn.snd_max = Seq(seg.ack)
        conn.sndbuf_seq = Seq(seg.ack)
        conn.snd_mss = min(_COOKIE_MSS[(cookie >> 24) & 7], self.config.mss)
        conn.snd_wnd = seg.window
        conn.max_snd_wnd = seg.window
        conn.snd_wl1 = Seq(seg.seq)
        conn.snd_wl2 = Seq(seg.ack)
        conn.rcv_buf = min(conn.rcv_buf, 0xFFFF)
        conn.rcv_adv = conn.rcv_nxt + min(self.config.rcv_buf, 0xFFFF)  # the cookie SYN-ACK's
        self.conns[key] = conn
        self.stats["syn_cookies_accepted"] += 1
        name = conn.name
        self._trace_drop(key[2], key[0], seg, now, "ACK carries a valid SYN cookie", name,
                         accepted=True)
        conn.set_state(State.SYN_RECEIVED, "valid SYN cookie", now)
        conn._establish(now, "SYN cookie validated")
        if seg.payload or seg.flags & FIN:
            conn.on_segment(seg, now)
        return True

    # ============================================================ TIME-WAIT

    def in_time_wait(self, key: Key) -> bool:
        return key in self.time_wait

    def enter_time_wait(self, conn: Connection, now: float, cause: str) -> None:
        """Replace the connection with a compact TIME-WAIT entry (or none: experiment)."""
        conn.rtx_at = conn.persist_at = conn.delack_at = conn.fw2_at = None
        conn.set_state(State.TIME_WAIT, cause, now)
        length = self.config.time_wait_length
        del self.conns[conn.key]
        if length <= 0:
            # Experiment switch: no TIME-WAIT at all.
            conn.set_state(State.CLOSED, "TIME-WAIT disabled (experiment)", now)
            self._release(conn)
            conn._event("closed")
            return
        deadline = now + length
        entry = TimeWaitEntry(int(conn.snd_nxt), int(conn.rcv_nxt), max(conn.rcv_wnd, 1),
                              conn.reuseaddr, deadline,
                              conn.name if self.trace.enabled else None)
        self.time_wait.add(conn.key, entry)
        self._release(conn)
        tr = self.trace
        if tr.enabled:
            tr.add({"t": now, "kind": "timer", "host": self.name, "conn": conn.name,
                    "timer": "time-wait", "action": "armed", "deadline": deadline})
        conn._event("closed")

    def _time_wait_expired(self, key: Key, entry: TimeWaitEntry, now: float) -> None:
        tr = self.trace
        if tr.enabled:
            name = entry.name or f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"
            tr.add({"t": now, "kind": "timer", "host": self.name, "conn": name,
                    "timer": "time-wait", "action": "fired", "deadline": None})
            tr.add({"t": now, "kind": "state", "host": self.name, "conn": name,
                    "from": "TIME-WAIT", "to": "CLOSED", "cause": "2MSL timer expired"})

    def _tw_ack(self, key: Key, entry: TimeWaitEntry, now: float) -> None:
        wnd = min(entry.rcv_wnd, 0xFFFF)
        self._emit(key[0], key[2], TcpSegment(key[1], key[3], entry.snd_nxt, entry.rcv_nxt,
                                              ACK, wnd), now)

    def _time_wait_segment(self, key: Key, seg: TcpSegment, now: float) -> bool:
        """A segment for a TIME-WAIT entry.  True: hand it on to the listener."""
        entry = self.time_wait.get(key)
        assert entry is not None  # the caller checked ``key in self.time_wait``
        name = entry.name or f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"
        flags = seg.flags
        src, dst = key[2], key[0]
        if flags & RST:
            if self.config.rfc1337:
                self._trace_drop(src, dst, seg, now, "RST in TIME-WAIT ignored (RFC 1337)", name)
                return False
            if seg.seq == entry.rcv_nxt or (not self.config.rfc5961 and seq_in_window(
                    seg.seq, entry.rcv_nxt, entry.rcv_wnd)):
                self._trace_drop(src, dst, seg, now, "RST in TIME-WAIT: assassinated", name,
                                 accepted=True)
                self.time_wait.remove(key)
                if self.trace.enabled:
                    self.trace.add({"t": now, "kind": "state", "host": self.name, "conn": name,
                                    "from": "TIME-WAIT", "to": "CLOSED",
                                    "cause": "RST in TIME-WAIT (no RFC 1337 protection)"})
            else:
                self._trace_drop(src, dst, seg, now, "RST in TIME-WAIT out of sequence", name)
            return False
        seg_len = seg.seg_len
        in_window = (seq_in_window(seg.seq, entry.rcv_nxt, entry.rcv_wnd) if seg_len == 0 else
                     seq_in_window(seg.seq, entry.rcv_nxt, entry.rcv_wnd) or
                     seq_in_window((seg.seq + seg_len - 1) & 0xFFFFFFFF, entry.rcv_nxt,
                                   entry.rcv_wnd))
        if flags & SYN:
            if not flags & ACK and self.config.time_wait_reopen \
                    and Seq(seg.seq) > Seq(entry.rcv_nxt):
                # RFC 1122 4.2.2.13 / RFC 6191 section 2 (no timestamps): a new
                # incarnation may start when its SYN is beyond RCV.NXT (Linux
                # and FreeBSD do this).  RFC 9293 3.10.7.4 allows it only with
                # timestamps; time_wait_reopen=False gives that strict reading.
                self._trace_drop(src, dst, seg, now,
                                 "SYN beyond RCV.NXT in TIME-WAIT: entry closed, SYN reopens",
                                 name, accepted=True)
                self.time_wait.remove(key)
                if self.trace.enabled:
                    self.trace.add({"t": now, "kind": "state", "host": self.name, "conn": name,
                                    "from": "TIME-WAIT", "to": "CLOSED",
                                    "cause": "new SYN with higher sequence number"})
                return True
            if not self.config.rfc5961 and seq_in_window(seg.seq, entry.rcv_nxt,
                                                         entry.rcv_wnd):
                # RFC 793: a SYN in the window is an error: reset, and the entry goes.
                self._emit(key[0], key[2], TcpSegment(key[1], key[3], entry.snd_nxt,
                                                      entry.rcv_nxt, RST | ACK, 0), now)
                self._trace_drop(src, dst, seg, now, "SYN in window in TIME-WAIT (RFC 793): "
                                 "reset", name, accepted=True)
                self.time_wait.remove(key)
                if self.trace.enabled:
                    self.trace.add({"t": now, "kind": "state", "host": self.name, "conn": name,
                                    "from": "TIME-WAIT", "to": "CLOSED",
                                    "cause": "SYN in window (RFC 793)"})
                return False
            if not self.config.rfc5961:
                self._tw_ack(key, entry, now)
                self._trace_drop(src, dst, seg, now, "SYN outside window in TIME-WAIT: ACK",
                                 name)
                return False
            # RFC 5961 4.2 / RFC 9293 3.10.7.4 fourth step: a challenge ACK.
            if self.challenge_ack_allowed(now):
                self._tw_ack(key, entry, now)
                self._trace_drop(src, dst, seg, now, "SYN in TIME-WAIT: challenge ACK", name)
            else:
                self._trace_drop(src, dst, seg, now, "SYN in TIME-WAIT: rate-limited", name)
            return False
        if in_window and not flags & ACK:
            # RFC 9293 3.10.7.4 fifth step: "if the ACK bit is off, drop the segment".
            self._trace_drop(src, dst, seg, now, "no ACK bit (TIME-WAIT)", name)
            return False
        if flags & FIN and (in_window or (seg.seq + seg_len) & 0xFFFFFFFF == entry.rcv_nxt):
            # The peer's FIN again (or a FIN in the window): ACK it and restart
            # the 2MSL timer (RFC 9293 3.10.7.4 eighth step, TIME-WAIT).
            self._tw_ack(key, entry, now)
            deadline = now + self.config.time_wait_length
            self.time_wait.restart(key, deadline)
            self._trace_drop(src, dst, seg, now, "FIN again in TIME-WAIT: ACK, restart 2MSL",
                             name, accepted=True)
            if self.trace.enabled:
                self.trace.add({"t": now, "kind": "timer", "host": self.name, "conn": name,
                                "timer": "time-wait", "action": "armed", "deadline": deadline})
            return False
        if not in_window:
            self._tw_ack(key, entry, now)
            self._trace_drop(src, dst, seg, now, "outside window in TIME-WAIT: ACK sent", name)
        elif flags == ACK and not seg.payload and seg.seq == entry.rcv_nxt \
                and seg.ack == entry.snd_nxt:
            self._trace_drop(src, dst, seg, now, "duplicate ACK in TIME-WAIT ignored", name)
        else:
            # Anything else new in the window (data, an ACK of something else):
            # answer with an ACK so the peer learns the state, as FreeBSD
            # (tcp_twcheck) and Linux (tcp_timewait_state_process) do.
            self._tw_ack(key, entry, now)
            self._trace_drop(src, dst, seg, now, "segment in TIME-WAIT: ACK sent", name)
        return False

    # ============================================================ connection life

    def established_passive(self, conn: Connection, now: float) -> None:
        """A passive connection reached ESTABLISHED: move it to the accept queue."""
        lst = conn.listener
        if lst is None:
            return
        lst.syn_queue.pop(conn.key, None)
        if lst.closed:
            return
        lst.accept_queue.append(conn)
        self._app(now, "event", "connection ready to accept", conn.name)
        if lst.on_event is not None:
            lst.on_event("acceptable", lst)

    def drop_embryonic(self, conn: Connection, now: float, cause: str) -> None:
        """Forget a half-open passive connection: the listener stays in LISTEN."""
        conn.rtx_at = conn.persist_at = conn.delack_at = None
        conn.set_state(State.LISTEN, cause, now)
        conn.state = State.CLOSED
        if conn.listener is not None:
            conn.listener.syn_queue.pop(conn.key, None)
            if conn in conn.listener.accept_queue:
                conn.listener.accept_queue.remove(conn)
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        self._release(conn)
        conn._event("closed")

    def connection_closed(self, conn: Connection, now: float) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        lst = conn.listener
        if lst is not None:
            lst.syn_queue.pop(conn.key, None)
            if conn in lst.accept_queue:
                lst.accept_queue.remove(conn)
        self._release(conn)

    def _release(self, conn: Connection) -> None:
        b = conn.binding
        if b is not None:
            conn.binding = None
            self.release(b)

    # ============================================================ ports

    def _port_holders(self, port: int) -> list[Binding]:
        return self.bindings.get(port, [])

    def check_bind(self, addr: str, port: int, reuse: bool) -> None:
        """Linux's rules (inet_csk_bind_conflict), raising EADDRINUSE on conflict."""
        for b in self._port_holders(port):
            if not _overlap(b.addr, addr):
                continue
            if b.listening:
                raise addr_in_use(addr, port, "a socket is listening on it")
            if not (b.reuse and reuse):
                raise addr_in_use(addr, port, "a connection is using it" if b.users else
                                  "a socket is bound to it")
        for tw_addr in self.time_wait.addrs_on_port(port):
            if not _overlap(tw_addr, addr):
                continue
            count, noreuse = self.time_wait.holders(tw_addr, port)
            if count and (not reuse or noreuse):
                why = ("TIME-WAIT connections hold it; SO_REUSEADDR is needed on both the old"
                       " and the new socket" if noreuse and reuse else
                       "TIME-WAIT connections hold it")
                raise addr_in_use(addr, port, why)

    def bind(self, addr: str, port: int, reuse: bool = False) -> Binding:
        """Reserve a local address and port (port 0: an ephemeral one)."""
        if addr not in self.addrs and addr not in WILDCARDS:
            raise TcpError(_errno.EADDRNOTAVAIL, f"cannot assign requested address {addr}")
        if port == 0:
            port = self._ephemeral(addr)
        elif not 0 < port < 65536:
            raise TcpError(_errno.EINVAL, f"port out of range: {port}")
        self.check_bind(addr, port, reuse)
        b = Binding(addr, port, reuse)
        self.bindings.setdefault(port, []).append(b)
        return b

    def release(self, b: Binding) -> None:
        b.users -= 1
        if b.users <= 0 and not b.released:
            b.released = True
            lst = self.bindings.get(b.port)
            if lst is not None:
                try:
                    lst.remove(b)
                except ValueError:
                    pass
                if not lst:
                    del self.bindings[b.port]

    def _ephemeral(self, addr: str, raddr: str | None = None, rport: int | None = None) -> int:
        lo, hi = self.config.ephemeral_low, self.config.ephemeral_high
        span = hi - lo + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if port in self.bindings:
                continue
            if self.time_wait.addrs_on_port(port) and raddr is None:
                continue
            if raddr is not None and rport is not None:
                laddr = addr if addr not in WILDCARDS else self.addrs[0]
                if (laddr, port, raddr, rport) in self.time_wait:
                    continue
            return port
        raise TcpError(_errno.EADDRNOTAVAIL, "no free ephemeral port")

    # ============================================================ app calls

    def listen(self, binding: Binding, backlog: int = 128, now: float = 0.0) -> Listener:
        """Passive OPEN on a bound address (RFC 9293 3.10.1)."""
        key = (binding.addr, binding.port)
        if key in self.listeners:
            raise addr_in_use(binding.addr, binding.port, "a socket is listening on it")
        for b in self._port_holders(binding.port):
            if b is not binding and b.listening and _overlap(b.addr, binding.addr):
                raise addr_in_use(binding.addr, binding.port, "a socket is listening on it")
        binding.listening = True
        lst = Listener(self, binding, backlog)
        self.listeners[key] = lst
        self._app(now, "listen", f"LISTEN on {binding.addr}:{binding.port}")
        return lst

    def close_listener(self, lst: Listener, now: float) -> None:
        key = (lst.addr, lst.port)
        if self.listeners.get(key) is lst:
            del self.listeners[key]
        lst.binding.listening = False
        self.release(lst.binding)
        self._app(now, "close", f"listener {lst.addr}:{lst.port} closed")

    def connect(self, raddr: str, rport: int, now: float, binding: Binding | None = None,
                reuse: bool = False) -> Connection:
        """Active OPEN: a new connection in SYN-SENT."""
        if binding is None:
            laddr = self.addrs[0] if ":" not in raddr else next(
                (a for a in self.addrs if ":" in a), self.addrs[0])
            port = self._ephemeral(laddr, raddr, rport)
            binding = Binding(laddr, port, reuse)
            self.bindings.setdefault(port, []).append(binding)
        laddr = binding.addr
        if laddr in WILDCARDS:
            laddr = next((a for a in self.addrs if (":" in a) == (":" in raddr)), self.addrs[0])
        key = (laddr, binding.port, raddr, rport)
        if key in self.conns:
            raise TcpError(_errno.EADDRINUSE, "that 4-tuple is in use")
        if key in self.time_wait:
            # Linux may reuse a TIME-WAIT 4-tuple for an outgoing connection
            # (tcp_tw_reuse); tcplab does not, as RFC 9293 3.6.1 intends.
            raise TcpError(_errno.EADDRNOTAVAIL, "that 4-tuple is in TIME-WAIT")
        iss = self.isn.isn(now, *key)
        conn = Connection(self, laddr, binding.port, raddr, rport, iss, self.config)
        conn.binding = binding
        conn.reuseaddr = binding.reuse
        self.conns[key] = conn
        self._app(now, "connect", f"to {raddr}:{rport}", conn.name)
        conn.open_active(now)
        return conn

    def connection(self, key: Key) -> Connection | None:
        return self.conns.get(key)

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for c in self.conns.values():
            states[c.state.value] = states.get(c.state.value, 0) + 1
        if self.time_wait:
            states["TIME-WAIT"] = len(self.time_wait)
        if self.listeners:
            states["LISTEN"] = len(self.listeners)
        return states


def _overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    if a in WILDCARDS or b in WILDCARDS:
        return (":" in a) == (":" in b) or a == "::" or b == "::"
    return False
