"""What a host shares with its connections: the queues their outputs go to.

A :class:`~tcplab.engine.connection.Connection` holds no Host (STYLE.md:
"outputs go out, not back in").  Everything it does that the rest of the
world must act on goes into its host's :class:`EngineContext`, as data:

* ``outbox``: segments to put on the wire (:class:`Outgoing`), each with its
  trace event already written, so the event's TCB is the sender's at the
  moment of sending;
* ``requests``: what only the host can do (:data:`REQ_TIME_WAIT`: replace me
  with a compact TIME-WAIT entry; :data:`REQ_ESTABLISHED`: move me to my
  listener's accept queue; :data:`REQ_LISTEN`: I went back to LISTEN, forget
  me; :data:`REQ_CLOSED`: I am CLOSED, release my port; :data:`REQ_LISTENER_CLOSED`);
* ``timers``: a heap of (deadline, tiebreak, connection) the host pops in
  :meth:`~tcplab.engine.host.Host.handle_timers`;
* ``ready``: connections and listeners with application events queued, for
  the asyncio layer (only those that asked for events).

The host drains ``requests`` after every call it makes into a connection and
at the start of each of its own entry points, so an application call made
directly on a connection (``conn.close(now)``) takes effect at the next
``host.transmit()``, which every backend calls after application calls.

The context also records what the host observes: drops with their reasons
(:meth:`record`), and the counters of :mod:`tcplab.engine.counters`; and it
holds the client's Fast Open cookie cache (:mod:`tcplab.engine.fastopen`),
which connections update from the SYN-ACKs they receive.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from tcplab.engine.config import TcpConfig
from tcplab.engine.counters import Counters
from tcplab.engine.fastopen import CookieCache
from tcplab.trace import Tcb, Trace, segment_event
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import RST, TcpSegment

# The queues hold Connection and Listener objects.  This module sits below
# both (they import it), so it names them only in comments: ``Any`` below is
# "a Connection" (timers) or "a Connection or a Listener" (requests, ready).

REQ_TIME_WAIT: Final = 1
REQ_ESTABLISHED: Final = 2
REQ_LISTEN: Final = 3
REQ_CLOSED: Final = 4
REQ_LISTENER_CLOSED: Final = 5


# Compiled: not tracked by the cycle collector (nothing it refers to refers back),
# and one freed instance is kept for the next one.
@mypyc_attr(acyclic=True, free_list_len=1)
class Outgoing:
    """A segment to send, with its trace event (``None`` when not tracing).

    ``data`` is the whole IP packet; it is built on first use (at once when
    tracing, since the trace keeps it for pcap), so a backend that delivers
    the checked segment itself, like the simulator, never pays for bytes it
    does not need.

    ``gso``: 0, or the segment size of a super-segment (TSO): ``seg`` then
    stands for ``ceil(len(seg.payload) / gso)`` wire segments that the device
    cuts, each of them full but the last.  Only a host whose backend segments
    (:attr:`EngineContext.gso_max`) gets these.
    """

    __slots__ = ("_data", "dst", "event", "gso", "seg", "src")

    def __init__(self, seg: TcpSegment, src: str, dst: str, event: dict[str, Any] | None,
                 data: bytes | None = None, gso: int = 0) -> None:
        self.seg = seg
        self.src = src
        self.dst = dst
        self.event = event
        self._data = data
        self.gso = gso

    @property
    def data(self) -> bytes:
        d = self._data
        if d is None:
            d = self._data = emit_ip_tcp(self.src, self.dst, self.seg)
        return d


class ChallengeAckLimit:
    """RFC 5961 7: at most ``limit`` challenge ACKs per second, for the whole host."""

    __slots__ = ("_count", "_window", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._window = -1.0
        self._count = 0

    def allow(self, now: float) -> bool:
        window = float(int(now))
        if window != self._window:
            self._window = window
            self._count = 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True


def _none() -> int:
    return 0


class EngineContext:
    """A host's name, configuration, trace, output queues and counters."""

    __slots__ = ("challenge", "config", "counters", "fastopen_cache", "gso_max", "local_drop",
                 "name", "outbox", "packet_id", "ready", "requests", "timer_seq", "timers",
                 "trace", "tw_count", "tw_pending")

    def __init__(self, name: str, config: TcpConfig, trace: Trace | None = None) -> None:
        self.name = name
        self.config = config
        self.trace = trace if trace is not None else Trace()
        self.outbox: list[Outgoing] = []
        self.requests: list[tuple[int, Any, str, float]] = []
        self.timers: list[tuple[float, int, Any]] = []
        self.timer_seq = 0
        self.ready: list[Any] = []
        self.counters = Counters()
        self.challenge = ChallengeAckLimit(config.challenge_ack_limit)
        self.packet_id: int | None = None  #: trace id of the packet being processed
        self.fastopen_cache = CookieCache()  #: Fast Open: what this host knows of servers
        #: the host's own queue drops every packet (Linux ``tc qdisc ... pfifo limit 0``):
        #: a send fails before the wire, and the sender knows it (NET_XMIT_DROP)
        self.local_drop = False
        #: how many TIME-WAIT entries the host holds (its table sets this), and how many
        #: connections asked for one not yet made: tcp_max_tw_buckets is checked against both
        self.tw_count: Callable[[], int] = _none
        self.tw_pending = 0
        #: the backend segments (TSO): a connection may hand over up to this many payload
        #: bytes of full segments as one super-segment (:attr:`Outgoing.gso`) while the
        #: trace is off; 0 (the simulator, a device without offloads): one segment each
        self.gso_max = 0

    def time_wait_full(self) -> bool:
        """Has the host no TIME-WAIT bucket left (Linux tcp_max_tw_buckets)?"""
        limit = self.config.max_tw_buckets
        return limit is not None and self.tw_count() + self.tw_pending >= limit

    def emit(self, src: str, dst: str, seg: TcpSegment, now: float, conn: str | None = None,
             tcb: Tcb | None = None, gso: int = 0) -> bool:
        """Queue ``seg`` from ``src`` to ``dst`` (and trace it as sent by this host).
        False: the host's own queue dropped it (:attr:`local_drop`).  ``gso``: ``seg``
        is a super-segment of segments of this size (counted as the segments it holds)."""
        if self.local_drop:
            self.record(src, dst, seg, now, "not sent: the host's own queue drops every "
                        "packet", conn)
            return False
        ev = None
        data = None
        if seg.flags & RST:
            self.counters.inc("TcpOutRsts")
        if gso:
            self.counters.out_segs += (len(seg.payload) + gso - 1) // gso
        else:
            self.counters.out_segs += 1
        tr = self.trace
        if tr.enabled:
            data = emit_ip_tcp(src, dst, seg)
            ev = segment_event(now, "send", self.name, src, dst, seg, tr.next_id(), conn=conn,
                               tcb=tcb, raw=data)
            tr.add(ev)
        self.outbox.append(Outgoing(seg, src, dst, ev, data, gso))  # type: ignore[arg-type]
        return True

    def record(self, src: str, dst: str, seg: TcpSegment, now: float, reason: str,
               conn: str | None = None, accepted: bool = False) -> None:
        """Trace that a segment from ``src`` was discarded on arrival (or, with
        ``accepted``, acted on as a control segment), and why."""
        tr = self.trace
        if tr.enabled:
            ev = segment_event(now, "accept" if accepted else "drop", self.name, src, dst, seg,
                               self.packet_id, fate="delivered" if accepted else "dropped",
                               conn=conn, reason=reason)
            del ev["opts"]
            tr.add(ev)

    def wake(self, conn: Any, deadline: float) -> None:
        """Make sure the host wakes ``conn`` at ``deadline`` (one heap entry per
        connection at its earliest deadline; stale entries are skipped)."""
        self.timer_seq += 1
        heapq.heappush(self.timers, (deadline, self.timer_seq, conn))

    def request(self, kind: int, who: Any, cause: str, now: float) -> None:
        """Ask the host to act (``REQ_*``) on a connection or listener, as of ``now``."""
        self.requests.append((kind, who, cause, now))
