"""A socket in LISTEN (RFC 9293 3.10.7.2): its SYN queue, accept queue and SYN cookies.

A SYN that reaches a listener makes a new connection in SYN-RECEIVED, held in
the SYN queue (Linux's request sockets); when the handshake completes it
moves to the accept queue, where ``accept()`` finds it.  Both queues are
bounded by the backlog.  When the SYN queue is full, SYN cookies (RFC 4987
3.6) let the listener answer without keeping anything: the SYN-ACK's
sequence number encodes a time slot, an MSS class and a keyed hash of the
4-tuple, and the ACK that returns it rebuilds the connection.

The host decides with :meth:`Listener.admit` what to do with a SYN, and
acts on it; the listener never sends anything itself.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Final

from tcplab.engine.connection import Connection
from tcplab.engine.context import REQ_LISTENER_CLOSED, EngineContext
from tcplab.engine.ports import Binding
from tcplab.wire.seq import MASK
from tcplab.wire.tcp import TcpSegment

Key = tuple[str, int, str, int]

# What admit() says about a SYN.
ADMIT_NEW: Final = "new"                   #: a new connection in the SYN queue
ADMIT_COOKIE: Final = "cookie"             #: answer with a SYN cookie, keep nothing
DROP_ACCEPT_FULL: Final = "accept queue full: SYN dropped"
DROP_SYN_FULL: Final = "SYN queue full: SYN dropped"
DROP_SYN_BACKLOG: Final = "SYN dropped: tcp_max_syn_backlog nearly used, no SYN cookies"

COOKIE_MSS: Final = (536, 1220, 1440, 1460, 4312, 8960, 16384, 65495)  #: the MSS classes a cookie encodes


class Listener:
    """A socket in LISTEN: SYN queue and accept queue."""

    __slots__ = (
        "accept_queue",
        "backlog",
        "binding",
        "closed",
        "cx",
        "events",
        "plus_one",
        "queued_ready",
        "syn_dropped",
        "syn_queue",
        "want_events",
    )

    def __init__(self, cx: EngineContext, binding: Binding, backlog: int,
                 plus_one: bool = False) -> None:
        self.cx = cx
        self.binding = binding
        # Linux (sk_acceptq_is_full: "len > backlog") holds backlog + 1 and takes a
        # backlog of 0; the RFC profile holds exactly the backlog, at least one.
        self.plus_one = plus_one
        self.backlog = max(0 if plus_one else 1, backlog)
        self.syn_queue: dict[Key, Connection] = {}
        self.accept_queue: deque[Connection] = deque()
        self.closed = False
        self.syn_dropped = 0
        self.want_events = False
        self.events: deque[str] = deque()
        self.queued_ready = False

    def __repr__(self) -> str:
        return f"<Listener {self.name} backlog={self.backlog}>"

    @property
    def addr(self) -> str:
        return self.binding.addr

    @property
    def port(self) -> int:
        return self.binding.port

    @property
    def name(self) -> str:
        """How traces name the listening socket: ``"0.0.0.0:80-*:*"`` (like ``ss``)."""
        return f"{self.binding.addr}:{self.binding.port}-*:*"

    def accept_queue_full(self) -> bool:
        n = len(self.accept_queue)
        return n > self.backlog if self.plus_one else n >= self.backlog

    def syn_queue_full(self) -> bool:
        n = len(self.syn_queue)
        return n > self.backlog if self.plus_one else n >= self.backlog

    def admit(self, syn_cookies: str, max_syn_backlog: int | None = None) -> str:
        """What to do with a SYN: :data:`ADMIT_NEW`, :data:`ADMIT_COOKIE`, or a drop reason.

        ``max_syn_backlog`` (Linux tcp_max_syn_backlog): without SYN cookies, the
        last quarter of it is kept for peers known to be alive (none are known
        here), so SYNs are dropped once three quarters are in use."""
        if self.accept_queue_full():
            self.syn_dropped += 1
            return DROP_ACCEPT_FULL
        syn_full = self.syn_queue_full()
        if syn_cookies == "always" or (syn_full and syn_cookies == "auto"):
            return ADMIT_COOKIE
        if syn_full:
            self.syn_dropped += 1
            return DROP_SYN_FULL
        if syn_cookies == "never" and max_syn_backlog is not None and \
                max_syn_backlog - len(self.syn_queue) < max_syn_backlog >> 2:
            self.syn_dropped += 1
            return DROP_SYN_BACKLOG
        return ADMIT_NEW

    def accept(self) -> Connection | None:
        """The oldest completed connection, or None."""
        if self.accept_queue:
            return self.accept_queue.popleft()
        return None

    def close(self, now: float) -> None:
        """Stop listening.  The host then forgets half-open connections silently and
        resets completed but unaccepted ones (like Linux and FreeBSD)."""
        if self.closed:
            return
        self.closed = True
        self.cx.request(REQ_LISTENER_CLOSED, self, "listener closed", now)

    # ------------------------------------------------------------ application events

    def next_event(self) -> str | None:
        """``"acceptable"`` when connections wait in the accept queue, else None."""
        if self.events:
            return self.events.popleft()
        return None

    def acceptable(self) -> None:
        """A connection entered the accept queue: tell whoever reads events."""
        if not self.want_events or self.events:
            return
        self.events.append("acceptable")
        if not self.queued_ready:
            self.queued_ready = True
            self.cx.ready.append(self)


class SynCookies:
    """RFC 4987 3.6: the ISN of a SYN-ACK that keeps no state.

    32 bits: a 5-bit time slot (64 s each), a 3-bit MSS class and a 24-bit
    keyed hash (BLAKE2s) of the 4-tuple, the peer's ISN and the slot.  A
    cookie is valid for the current slot and the one before.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _hash(self, key: Key, peer_isn: int, slot: int) -> int:
        h = hashlib.blake2s(f"{key}|{peer_isn}|{slot}".encode(), key=self._key,
                            digest_size=4).digest()
        return int.from_bytes(h, "big") & 0xFFFFFF

    def make(self, key: Key, syn: TcpSegment, now: float, default_mss: int) -> int:
        """The cookie (our ISN) answering ``syn``."""
        slot = int(now // 64) & 0x1F
        mss = syn.mss or default_mss
        idx = max(i for i, m in enumerate(COOKIE_MSS) if m <= max(mss, COOKIE_MSS[0]))
        return (slot << 27) | (idx << 24) | self._hash(key, syn.seq, slot)

    def check(self, key: Key, ack: TcpSegment, now: float) -> int | None:
        """The MSS encoded in a valid cookie returned by ``ack``, else None."""
        cookie = (ack.ack - 1) & MASK
        peer_isn = (ack.seq - 1) & MASK
        slot = cookie >> 27
        now_slot = int(now // 64) & 0x1F
        if (now_slot - slot) & 0x1F > 1:
            return None
        if self._hash(key, peer_isn, slot) != cookie & 0xFFFFFF:
            return None
        return COOKIE_MSS[(cookie >> 24) & 7]
