"""A host's TCP: demultiplexing, LISTEN and CLOSED processing, acting on what
connections ask for.  Sans-I/O.

Theory of operation
-------------------
A backend (the simulator, the TUN device, a test) drives a :class:`Host`:

* ``host.receive(packet, now)`` with one IP packet (bytes) that arrived, or
  ``host.receive_segment(src, dst, seg, now)`` with an already checked one;
* ``host.transmit()`` returns the IP packets to put on the wire, each with
  its trace event (the backend records the packet's fate on it);
* ``host.next_deadline()`` says when the host next wants ``handle_timers(now)``.

Applications use ``bind``/``listen``/``connect`` here and the
:class:`~tcplab.engine.connection.Connection` and
:class:`~tcplab.engine.listener.Listener` methods.  Connections hold no
reference to the host: what they do is queued in the host's
:class:`~tcplab.engine.context.EngineContext`, and the host acts on it
(:meth:`_act`) after each call it makes into a connection and at the start of
each of its own entry points.  With :attr:`ready_hook` set, the host calls it
once at the end of an entry point that left application events queued (the
asyncio layer uses this; nothing is called in the middle of processing).

Nothing here reads a clock, touches a socket or uses global random state:
``now`` is always passed in and randomness comes from the ``rng`` given to the
constructor (ephemeral ports, the ISN key, the SYN-cookie secret).  The ISN
source can be passed in (``isn=``), so tests and scenarios choose ISNs
without replacing anything of a live host.

Segments that match no connection are handled as RFC 9293 3.10.7.1 (CLOSED)
and 3.10.7.2 (LISTEN) say; TIME-WAIT entries by :mod:`~tcplab.engine.timewait`;
ports by :mod:`~tcplab.engine.ports` (Linux's SO_REUSEADDR rules).
"""

from __future__ import annotations

import errno as _errno
import hashlib
import heapq
import random
from collections.abc import Callable

from mypy_extensions import mypyc_attr

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection, Key
from tcplab.engine.context import (
    REQ_CLOSED,
    REQ_ESTABLISHED,
    REQ_LISTEN,
    REQ_LISTENER_CLOSED,
    REQ_TIME_WAIT,
    EngineContext,
    Outgoing,
)
from tcplab.engine.counters import Counters
from tcplab.engine.errors import TcpError, addr_in_use
from tcplab.engine.fastopen import (
    CLIENT_ENABLE,
    SERVER_COOKIE_NOT_REQD,
    SERVER_ENABLE,
    SERVER_WO_SOCKOPT1,
    CookieCache,
    ServerKey,
    make_cookie,
    peer_cookie,
)
from tcplab.engine.isn import IsnGenerator, IsnSource
from tcplab.engine.listener import (
    ADMIT_COOKIE,
    ADMIT_NEW,
    DROP_ACCEPT_FULL,
    Listener,
    SynCookies,
)
from tcplab.engine.ports import WILDCARDS, Binding, PortTable, overlap
from tcplab.engine.state import State
from tcplab.engine.timestamps import TsOffsets
from tcplab.engine.timewait import TimeWait
from tcplab.trace import Trace, app_event, state_event, undecodable_event
from tcplab.wire.errors import WireError
from tcplab.wire.ip import parse_ip_tcp
from tcplab.wire.tcp import ACK, FIN, RST, SYN, FastOpen, Mss, TcpSegment

__all__ = ["WILDCARDS", "Binding", "Host", "Listener", "Outgoing"]


# Scripted peers subclass Host in interpreted code (scenarios.opening.ScriptedServer).
@mypyc_attr(allow_interpreted_subclasses=True)
class Host:
    """One TCP host: owns its connections, listeners, ports and TIME-WAIT entries."""

    def __init__(self, name: str, addrs: list[str] | str, *, config: TcpConfig | None = None,
                 rng: random.Random | None = None, trace: Trace | None = None,
                 isn: IsnSource | None = None) -> None:
        self.name = name
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.config = config or TcpConfig()
        self.rng = rng if rng is not None else random.Random(0)
        self.cx = EngineContext(name, self.config, trace)
        self.trace = self.cx.trace
        # The key is drawn even when an ISN source is given, so everything the
        # rng draws later is the same either way.
        self.default_isn = IsnGenerator.from_rng(self.rng, self.config.isn_tick_ns)
        self.isn: IsnSource = isn if isn is not None else self.default_isn
        cookie_key = self.rng.getrandbits(128).to_bytes(16, "big")
        self.cookies = SynCookies(cookie_key)
        # TSval offsets (RFC 7323 7.1) from a key derived from the cookie secret, so
        # the rng draws the same numbers as before timestamps existed.
        self.ts_offsets = TsOffsets(hashlib.blake2s(cookie_key, person=b"tcplabts").digest())
        # The Fast Open key when tcp_fastopen_key is not set (Linux draws one at boot),
        # derived from the same secret so the rng draws what it always drew.
        self._tfo_key = ServerKey(hashlib.blake2s(cookie_key, person=b"tcplabfo",
                                                  digest_size=16).digest())
        self.conns: dict[Key, Connection] = {}
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.time_wait = TimeWait(self.cx, self.ts_offsets)
        self.cx.tw_count = self.time_wait.__len__
        self.ports = PortTable(self.config.ephemeral_low, self.config.ephemeral_high, self.rng,
                               self.time_wait)
        self.ready_hook: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Host {self.name} {' '.join(self.addrs)}>"

    # ============================================================ backend side

    @property
    def outbox(self) -> list[Outgoing]:
        """Packets produced and not yet taken by :meth:`transmit`."""
        if self.cx.requests:
            self._act()
        return self.cx.outbox

    @property
    def fastopen(self) -> CookieCache:
        """The client's Fast Open cookie cache (RFC 7413 4.1.1; Linux keeps it with the
        tcp_metrics of each destination: ``ip tcp_metrics flush`` empties it)."""
        return self.cx.fastopen_cache

    def fastopen_key(self, lst: Listener | None = None) -> bytes:
        """The key this host's cookies are made with (TCP_FASTOPEN_KEY of ``lst``, else
        net.ipv4.tcp_fastopen_key, else the host's own)."""
        if lst is not None and lst.fastopen_key is not None:
            return lst.fastopen_key
        return self._tfo_key.key(self.config.fastopen_key)

    @property
    def counters(self) -> Counters:
        """The host's counters, named like Linux's ``nstat`` (:mod:`~tcplab.engine.counters`)."""
        return self.cx.counters

    def receive(self, packet: bytes, now: float, packet_id: int | None = None) -> None:
        """One IP packet arrived.  Never raises because of its contents."""
        cx = self.cx
        cx.packet_id = packet_id
        try:
            ip, seg = parse_ip_tcp(packet)
        except WireError as exc:
            cx.counters.inc("TcpInErrs")
            if cx.trace.enabled:
                cx.trace.add(undecodable_event(now, self.name, packet_id, len(packet),
                                               exc.reason))
            return
        if ip.dst not in self.addrs:
            cx.record(ip.src, ip.dst, seg, now, "not addressed to this host")
            return
        self.receive_segment(ip.src, ip.dst, seg, now)

    def receive_segment(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        """Dispatch a checked segment: connection, TIME-WAIT, listener, or none."""
        cx = self.cx
        if cx.requests:
            self._act()
        cx.counters.in_segs += 1
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.conns.get(key)
        if conn is not None:
            conn.on_segment(seg, now)
            self._done(now)
            return
        reopen_isn: int | None = None
        if len(self.time_wait) and key in self.time_wait.table:
            if not self.time_wait.on_segment(key, seg, now):
                self._done(now)
                return
            reopened = self.time_wait.reopened
            if reopened is not None:
                self.time_wait.reopened = None
                if reopened[0] == key:
                    reopen_isn = reopened[1]
        listener = self.listeners.get((dst, seg.dst_port))
        if listener is None:
            listener = self.listeners.get((WILDCARDS[1] if ":" in dst else WILDCARDS[0],
                                           seg.dst_port))
        if listener is not None and not listener.closed:
            self._listen_segment(listener, key, seg, now, reopen_isn)
        else:
            self._closed_segment(key, seg, now, "no connection or listener")
        self._done(now)

    def receive_icmp(self, key: Key, kind: str, seq: int, now: float,
                     mtu: int | None = None) -> None:
        """An ICMP error quoting a segment we sent on ``key`` (our address and port, the
        peer's) with sequence number ``seq`` (RFC 5927).  ``kind``: "frag-needed"
        (with the next hop's ``mtu``, RFC 1191) or an error name ("host unreachable",
        "network unreachable", "refused", ...).  Never raises because of what it says."""
        cx = self.cx
        if cx.requests:
            self._act()
        conn = self.conns.get(key)
        if conn is not None:
            conn.on_icmp(kind, seq, mtu, now)
        self._done(now)

    @property
    def local_drop(self) -> bool:
        """The host's own queue drops every packet (Linux ``tc qdisc ... pfifo limit 0``):
        connections see their sends fail and keep their data (a probe timer retries)."""
        return self.cx.local_drop

    @local_drop.setter
    def local_drop(self, on: bool) -> None:
        self.cx.local_drop = on

    @property
    def snmp(self) -> dict[str, int]:
        """The counters as ``nstat -az`` lists them (:mod:`~tcplab.engine.counters`)."""
        return self.cx.counters.as_dict(all_names=True)

    def transmit(self) -> list[Outgoing]:
        """Packets produced since the last call."""
        cx = self.cx
        if cx.requests:
            self._act()
        out = cx.outbox
        cx.outbox = []
        if cx.ready and self.ready_hook is not None:
            self.ready_hook()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`handle_timers` has work."""
        if self.cx.requests:
            self._act()
        heap = self.cx.timers
        while heap:
            deadline, _n, conn = heap[0]
            if conn.wake_at != deadline or not self._live(conn):
                heapq.heappop(heap)  # superseded by an earlier entry, or the connection is gone
                continue
            nd = conn.next_deadline()
            if nd is None:
                heapq.heappop(heap)
                conn.wake_at = None
                continue
            if nd != deadline:  # a timer moved (restarted later, or cancelled)
                conn.wake_at = nd
                self.cx.timer_seq += 1
                heapq.heapreplace(heap, (nd, self.cx.timer_seq, conn))
                continue
            break
        best = heap[0][0] if heap else None
        tw = self.time_wait.table.next_deadline()
        if tw is not None and (best is None or tw < best):
            best = tw
        return best

    def _live(self, conn: Connection) -> bool:
        return conn.in_table

    def _register(self, key: Key, conn: Connection) -> None:
        """``conn`` enters the connection table (a stale one on its 4-tuple leaves)."""
        old = self.conns.get(key)
        if old is not None:
            old.in_table = False
        self.conns[key] = conn
        conn.in_table = True

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        cx = self.cx
        if cx.requests:
            self._act()
        heap = cx.timers
        while heap and heap[0][0] <= now:
            d, _n, conn = heapq.heappop(heap)
            if conn.wake_at != d or not self._live(conn):
                continue
            conn.wake_at = None
            nd = conn.next_deadline()
            if nd is None:
                continue
            if nd <= now:
                conn.on_timer(now)
                if cx.requests:
                    self._act()
                nd = conn.next_deadline()
            if nd is not None and self._live(conn) and (conn.wake_at is None
                                                        or nd < conn.wake_at):
                conn.wake_at = nd
                cx.wake(conn, nd)
        self.time_wait.expire(now)
        self._done(now)

    def _done(self, now: float) -> None:
        """End of an entry point: act on requests; tell the application layer."""
        cx = self.cx
        if cx.requests:
            self._act()
        if cx.ready and self.ready_hook is not None:
            self.ready_hook()

    def take_ready(self) -> list[Connection | Listener]:
        """Connections and listeners with application events queued since the last call
        (only those whose ``want_events`` is set); read them with ``next_event()``."""
        ready = self.cx.ready
        self.cx.ready = []
        for item in ready:
            item.queued_ready = False
        return ready

    # ============================================================ acting on requests

    def _act(self) -> None:
        """Do what connections and listeners asked for, in the order they asked
        (each request carries the time it was made)."""
        cx = self.cx
        while cx.requests:
            requests = cx.requests
            cx.requests = []
            for kind, who, _cause, now in requests:
                if kind == REQ_LISTENER_CLOSED:
                    self._close_listener(who, now)
                    continue
                conn: Connection = who
                if kind == REQ_ESTABLISHED:
                    self._to_accept_queue(conn, now)
                elif kind == REQ_TIME_WAIT:
                    # the connection checked for a bucket (EngineContext.time_wait_full)
                    cx.tw_pending -= 1
                    self._forget(conn)
                    self.time_wait.enter(conn, now)
                elif kind in (REQ_LISTEN, REQ_CLOSED):
                    self._forget(conn)

    def _to_accept_queue(self, conn: Connection, now: float) -> None:
        lst = conn.listener
        if not isinstance(lst, Listener):
            return
        lst.syn_queue.pop(conn.key, None)
        if lst.closed or self.conns.get(conn.key) is not conn:
            return
        lst.accept_queue.append(conn)
        self.app_event(now, "event", "connection ready to accept", conn.name)
        lst.acceptable()

    def _forget(self, conn: Connection) -> None:
        """The connection leaves the host's tables and its port is released.

        One that waits in its listener's accept queue stays there: like Linux,
        accept() returns it, and the first read reports what happened (a reset
        before accept() is ECONNRESET, not a connection that never existed)."""
        if conn.in_table:
            del self.conns[conn.key]
            conn.in_table = False
        lst = conn.listener
        if isinstance(lst, Listener):
            lst.syn_queue.pop(conn.key, None)
        b = conn.binding
        if isinstance(b, Binding):
            conn.binding = None
            self.ports.release(b)

    def _close_listener(self, lst: Listener, now: float) -> None:
        # Like Linux and FreeBSD: half-open connections are forgotten silently,
        # completed but unaccepted ones are reset.
        for conn in list(lst.syn_queue.values()):
            conn._back_to_listen(now, "listener closed")
        for conn in list(lst.accept_queue):
            conn.abort(now, cause="listener closed")
        key = (lst.addr, lst.port)
        if self.listeners.get(key) is lst:
            del self.listeners[key]
        lst.binding.listening = False
        self.ports.release(lst.binding)
        tr = self.trace
        if tr.enabled:
            tr.add(state_event(now, self.name, lst.name, "LISTEN", "CLOSED", "listener closed"))
        self.app_event(now, "close", f"listener {lst.addr}:{lst.port} closed")

    # ============================================================ trace helpers

    def app_event(self, now: float, call: str, result: str, conn: str | None = None) -> None:
        """Record an application call (used by the socket layers)."""
        tr = self.trace
        if tr.enabled:
            tr.add(app_event(now, self.name, call, result, conn))

    def _name(self, key: Key) -> str:
        return f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"

    # ============================================================ no connection (3.10.7.1)

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
        self.cx.emit(laddr, raddr, rst, now)

    def _closed_segment(self, key: Key, seg: TcpSegment, now: float, why: str) -> None:
        name = self._name(key)
        if seg.flags & RST:
            self.cx.record(key[2], key[0], seg, now, f"RST for no connection ({why})", name)
            return
        self.cx.record(key[2], key[0], seg, now, f"{why}: answered with RST", name)
        self._send_reset_for(key, seg, now)

    # ============================================================ LISTEN (3.10.7.2)

    def _listen_segment(self, lst: Listener, key: Key, seg: TcpSegment, now: float,
                        isn: int | None = None) -> None:
        """RFC 9293 3.10.7.2, plus SYN queue limits and SYN cookies; ``isn``: the ISN a
        SYN that reopened a TIME-WAIT 4-tuple takes (else the ISN generator's)."""
        cx = self.cx
        name = self._name(key)
        flags = seg.flags
        if flags & RST:
            cx.record(key[2], key[0], seg, now, "RST in LISTEN", name)
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(lst, key, seg, now):
                return
            cx.record(key[2], key[0], seg, now, "ACK in LISTEN: answered with RST", name)
            self._send_reset_for(key, seg, now)
            return
        if not flags & SYN:
            cx.record(key[2], key[0], seg, now, "no SYN in LISTEN", name)
            return
        if flags & FIN and self.config.drop_synfin:
            cx.record(key[2], key[0], seg, now, "SYN+FIN dropped (drop_synfin)", name)
            return
        verdict = lst.admit(self.config.syn_cookies, self.config.max_syn_backlog)
        if verdict == ADMIT_COOKIE:
            self._send_cookie(key, seg, now)
            return
        if verdict != ADMIT_NEW:
            cx.counters.inc("TcpExtListenDrops")
            if verdict == DROP_ACCEPT_FULL:
                cx.counters.inc("TcpExtListenOverflows")
            cx.record(key[2], key[0], seg, now, verdict, name)
            return
        if isn is None:
            isn = self.isn.isn(now, key[0], key[1], key[2], key[3])
        conn = self._new_connection(key, isn)
        conn.binding = lst.binding
        conn.reuseaddr = lst.binding.reuse
        lst.inherit(conn)
        lst.binding.users += 1
        self._register(key, conn)
        cx.counters.inc("TcpPassiveOpens")
        child, reply = self._fastopen_server(lst, key, seg)
        if child:
            cx.record(key[2], key[0], seg, now, "SYN with a valid Fast Open cookie: data "
                      "accepted", name, accepted=True)
        else:
            lst.syn_queue[key] = conn
            cx.record(key[2], key[0], seg, now, "SYN in LISTEN: new connection", name,
                      accepted=True)
        conn.open_passive(seg, lst, now, tfo_child=child, fastopen=reply)
        if child and self.conns.get(key) is conn:
            # RFC 7413 4.2.2: the child is ready to accept before the handshake ends.
            lst.accept_queue.append(conn)
            self.app_event(now, "event", "Fast Open connection ready to accept", conn.name)
            lst.acceptable()

    def _fastopen_server(self, lst: Listener, key: Key, seg: TcpSegment
                         ) -> tuple[bool, FastOpen | None]:
        """Linux tcp_try_fastopen: is this SYN's data accepted (a Fast Open child), and
        what Fast Open option does the SYN-ACK carry (a cookie when the client asked
        for one or presented a wrong one)?"""
        cx = self.cx
        fo = seg.fastopen
        foc = peer_cookie(fo.cookie if fo is not None else None)
        exp = fo is not None and fo.exp
        if foc == b"":
            cx.counters.inc("TcpExtTCPFastOpenCookieReqd")
        flags = self.config.fastopen
        if not flags & SERVER_ENABLE or not (seg.payload or foc is not None) \
                or lst.fastopen_qlen <= 0:
            return False, None
        pending = sum(1 for c in self.conns.values()
                      if c.tfo_child and c.listener is lst and c.state is State.SYN_RECEIVED)
        if pending >= lst.fastopen_qlen:
            cx.counters.inc("TcpExtTCPFastOpenListenOverflow")
            return False, None
        if flags & SERVER_COOKIE_NOT_REQD:
            cx.counters.inc("TcpExtTCPFastOpenPassive")
            return True, None
        if foc is None:
            return False, None
        valid = make_cookie(self.fastopen_key(lst), key[2], key[0])
        if foc == valid:
            cx.counters.inc("TcpExtTCPFastOpenPassive")
            return True, None
        if foc:
            cx.counters.inc("TcpExtTCPFastOpenPassiveFail")
        return False, FastOpen(valid, exp)

    def _send_cookie(self, key: Key, seg: TcpSegment, now: float) -> None:
        cookie = self.cookies.make(key, seg, now, self.config.default_mss)
        self.cx.counters.inc("TcpExtSyncookiesSent")
        self.cx.record(key[2], key[0], seg, now, "SYN answered with a SYN cookie",
                       self._name(key), accepted=True)
        synack = TcpSegment(key[1], key[3], cookie, (seg.seq + 1) & 0xFFFFFFFF, SYN | ACK,
                            min(self.config.rcv_buf, 0xFFFF), 0,
                            (Mss(min(self.config.mss, 0xFFFF)),))
        self.cx.emit(key[0], key[2], synack, now)

    def _cookie_ack(self, lst: Listener, key: Key, seg: TcpSegment, now: float) -> bool:
        if self.config.syn_cookies == "never":
            return False
        mss = self.cookies.check(key, seg, now)
        if mss is None:
            return False
        cx = self.cx
        if lst.accept_queue_full():
            # A valid cookie but no room: drop it, as Linux does (listen
            # overflow); the peer's retransmission may find room later.
            cx.counters.inc("TcpExtListenOverflows")
            cx.record(key[2], key[0], seg, now, "valid SYN cookie, accept queue full",
                      self._name(key))
            return True
        conn = self._new_connection(key, (seg.ack - 1) & 0xFFFFFFFF)
        conn.binding = lst.binding
        conn.reuseaddr = lst.binding.reuse
        lst.binding.users += 1
        self._register(key, conn)
        cx.counters.inc("TcpExtSyncookiesRecv")
        cx.record(key[2], key[0], seg, now, "ACK carries a valid SYN cookie", conn.name,
                  accepted=True)
        conn.open_from_cookie(seg, lst, mss, now)
        return True

    # ============================================================ ports and app calls

    def check_bind(self, addr: str, port: int, reuse: bool) -> None:
        """Linux's rules (inet_csk_bind_conflict), raising EADDRINUSE on conflict."""
        if self.cx.requests:
            self._act()
        self.ports.check(addr, port, reuse)

    def bind(self, addr: str, port: int, reuse: bool = False) -> Binding:
        """Reserve a local address and port (port 0: an ephemeral one)."""
        if self.cx.requests:
            self._act()
        if addr not in self.addrs and addr not in WILDCARDS:
            raise TcpError(_errno.EADDRNOTAVAIL, f"cannot assign requested address {addr}")
        return self.ports.bind(addr, port, reuse)

    def release(self, b: Binding) -> None:
        """A socket that never connected or listened gives its port back."""
        self.ports.release(b)

    @property
    def bindings(self) -> dict[int, list[Binding]]:
        return self.ports.bindings

    def listen(self, binding: Binding, backlog: int = 128, now: float = 0.0) -> Listener:
        """Passive OPEN on a bound address (RFC 9293 3.10.1): the socket enters LISTEN."""
        if self.cx.requests:
            self._act()
        key = (binding.addr, binding.port)
        if key in self.listeners:
            raise addr_in_use(binding.addr, binding.port, "a socket is listening on it")
        for b in self.ports.holders(binding.port):
            if b is not binding and b.listening and overlap(b.addr, binding.addr):
                raise addr_in_use(binding.addr, binding.port, "a socket is listening on it")
        binding.listening = True
        somaxconn = self.config.somaxconn
        if somaxconn is not None and backlog > somaxconn:
            backlog = somaxconn  # Linux __sys_listen(): min(backlog, net.core.somaxconn)
        lst = Listener(self.cx, binding, backlog, plus_one=self.config.accept_backlog_plus_one)
        tfo = self.config.fastopen
        if tfo & SERVER_ENABLE and tfo & SERVER_WO_SOCKOPT1:
            lst.fastopen_qlen = backlog   # Linux inet_listen: Fast Open on every listener
        self.listeners[key] = lst
        self.app_event(now, "listen", f"LISTEN on {binding.addr}:{binding.port}")
        tr = self.trace
        if tr.enabled:
            tr.add(state_event(now, self.name, lst.name, "CLOSED", "LISTEN", "passive open"))
        return lst

    def connect(self, raddr: str, rport: int, now: float, binding: Binding | None = None,
                reuse: bool = False, *, fastopen: bool = False, data: bytes = b"",
                defer: bool = False,
                setup: Callable[[Connection], None] | None = None) -> Connection:
        """Active OPEN: a new connection in SYN-SENT.

        ``fastopen`` (RFC 7413; MSG_FASTOPEN or TCP_FASTOPEN_CONNECT): the SYN
        carries the cookie this host holds for ``raddr`` and as much of ``data`` as
        fits (``conn.syn_data_len`` says how much), or asks for a cookie.  With
        ``defer`` and a cookie at hand, no SYN is sent yet: the connection's first
        ``send()`` sends it with the data (Linux's deferred connect).  ``setup`` is
        called with the new connection before its SYN is built (socket options set
        before connect(): TCP_MAXSEG, SO_RCVBUF, TCP_SYNCNT, ...)."""
        if self.cx.requests:
            self._act()
        if fastopen and not self.config.fastopen & CLIENT_ENABLE:
            raise TcpError(_errno.EOPNOTSUPP, "Fast Open is off for clients on this host "
                           "(net.ipv4.tcp_fastopen bit 1)")
        bound = binding is not None
        if binding is None:
            laddr = self.addrs[0] if ":" not in raddr else next(
                (a for a in self.addrs if ":" in a), self.addrs[0])
            port = self.ports.ephemeral(
                laddr, raddr, rport, in_use=self.conns.__contains__,
                tw_reusable=lambda k: self.time_wait.reusable(k, now, bound=False))
            binding = self.ports.add(laddr, port, reuse, by_connect=True)
        laddr = binding.addr
        if laddr in WILDCARDS:
            laddr = next((a for a in self.addrs if (":" in a) == (":" in raddr)), self.addrs[0])
        key = (laddr, binding.port, raddr, rport)
        if key in self.conns:
            raise TcpError(_errno.EADDRINUSE, "that 4-tuple is in use")
        iss = self.isn.isn(now, *key)
        reused = None
        if key in self.time_wait.table:
            # RFC 9293 3.6.1 keeps a TIME-WAIT 4-tuple out of use for 2MSL.  Linux
            # (tcp_twsk_unique) reuses it when timestamps protect the new connection
            # (PAWS rejects the old one's segments): see TimeWait.reusable().
            if not self.time_wait.reusable(key, now, bound):
                raise TcpError(_errno.EADDRNOTAVAIL, "that 4-tuple is in TIME-WAIT")
            reused = self.time_wait.take_for_reuse(key, now)
            if reused is not None:
                iss = (reused.snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1  # beyond the old one
        conn = self._new_connection(key, iss)
        if reused is not None and reused.ts_recent is not None:
            conn.ts.recent = reused.ts_recent  # inherited, as Linux does
            conn.ts.recent_stamp = reused.ts_stamp
        conn.binding = binding
        conn.reuseaddr = binding.reuse
        self._register(key, conn)
        if self.trace.enabled:
            self.app_event(now, "connect", f"to {raddr}:{rport}", conn.name)
        self.cx.counters.inc("TcpActiveOpens")
        if setup is not None:
            setup(conn)
        if fastopen:
            attempt = self.cx.fastopen_cache.attempt(raddr, self.config.fastopen, now)
            conn.open_active(now, attempt, data, defer=defer and attempt.with_data)
        else:
            conn.open_active(now)
        self._done(now)
        return conn

    def connection(self, key: Key) -> Connection | None:
        return self.conns.get(key)

    def _new_connection(self, key: Key, iss: int) -> Connection:
        return Connection(self.cx, key[0], key[1], key[2], key[3], iss,
                          self.ts_offsets.offset(key[0], key[2]))

    def in_time_wait(self, key: Key) -> bool:
        return key in self.time_wait.table

    def summary(self) -> dict[str, int]:
        """How many sockets are in each state (like ``ss -s``)."""
        states: dict[str, int] = {}
        for c in self.conns.values():
            states[c.state.value] = states.get(c.state.value, 0) + 1
        if len(self.time_wait):
            states["TIME-WAIT"] = len(self.time_wait)
        if self.listeners:
            states["LISTEN"] = len(self.listeners)
        return states

