"""TCP timestamps (RFC 7323): TSval/TSecr, PAWS, and RTT measurement.

A connection that negotiated timestamps (both SYNs carried the option) puts
``<TSval, TSecr>`` on every segment but RSTs.  TSval is a millisecond clock
(``now`` in ms, as Linux's ``tcp_clock_ms``) plus a per-connection offset,
so the values of different connections are not comparable (RFC 7323 7.1,
Linux ``secure_tcp_ts_off``).  TSecr echoes TS.Recent: the peer's TSval from
the segment that last advanced the left edge of our window (4.3).

PAWS (section 5): a segment whose TSval is older than TS.Recent is a
duplicate from an earlier time (the sequence numbers may have wrapped), so
it is dropped with an ACK, unless TS.Recent itself is older than 24 days
(5.5), after which it is no longer a reference.  Like Linux
(``tcp_paws_check``), a TSval one tick older than TS.Recent still passes
(``TCP_PAWS_WINDOW``).  TIME-WAIT keeps TS.Recent too, so a new SYN for its
4-tuple can be told from an old one (RFC 6191).
"""

from __future__ import annotations

import hashlib

from tcplab.wire.seq import MASK

PAWS_24DAYS = 24 * 24 * 3600.0  #: RFC 7323 5.5: TS.Recent expires after 24 days idle
PAWS_WINDOW = 1                 #: Linux TCP_PAWS_WINDOW: tolerate a TSval one tick old


def ts_lt(a: int, b: int) -> bool:
    """``a`` is older than ``b`` (timestamps compare modulo 2**32, like sequence numbers)."""
    return ((a - b) & MASK) >= 1 << 31


def ts_between(v: int, lo: int, hi: int) -> bool:
    """``lo <= v <= hi`` for timestamps (modulo 2**32, like Linux's between())."""
    return ((hi - lo) & MASK) >= ((v - lo) & MASK)


def tsval(now: float, offset: int) -> int:
    """Our TSval at ``now``: a millisecond clock plus the connection's offset."""
    return (int(now * 1000) + offset) & MASK


def paws_rejects(seg_tsval: int, ts_recent: int, ts_recent_stamp: float, now: float) -> bool:
    """RFC 7323 5.3 R1: is this TSval too old to be accepted?"""
    if now - ts_recent_stamp > PAWS_24DAYS:
        return False  # 5.5: TS.Recent is stale: any TSval is acceptable
    return ((ts_recent - seg_tsval) & MASK) > PAWS_WINDOW and ts_lt(seg_tsval, ts_recent)


class TsOffsets:
    """Per-address-pair TSval offsets from a keyed hash (RFC 7323 7.1)."""

    __slots__ = ("_hasher", "_key", "_known")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._hasher = hashlib.blake2s(key=key, digest_size=4)
        self._known: dict[tuple[str, str], int] = {}  # recent pairs (bounded)

    def offset(self, laddr: str, raddr: str) -> int:
        pair = (laddr, raddr)
        known = self._known.get(pair)
        if known is not None:
            return known
        h = self._hasher.copy()
        h.update(f"ts|{laddr}|{raddr}".encode())
        value = int.from_bytes(h.digest(), "big")
        if len(self._known) >= 1024:
            self._known.clear()
        self._known[pair] = value
        return value


class Timestamps:
    """The timestamp state of one connection (RFC 7323 4.3)."""

    __slots__ = ("offset", "ok", "recent", "recent_stamp")

    def __init__(self, offset: int) -> None:
        self.ok = False             #: negotiated: both SYNs carried the option
        self.offset = offset        #: added to our millisecond clock
        self.recent = 0             #: TS.Recent
        self.recent_stamp = -1.0    #: when TS.Recent was last set (our clock), -1: never

    def val(self, now: float) -> int:
        return tsval(now, self.offset)

    def note_syn(self, seg_tsval: int, now: float) -> None:
        """The peer's SYN (or SYN-ACK) carried TSval: it starts TS.Recent."""
        self.recent = seg_tsval
        self.recent_stamp = now

    def rejects(self, seg_tsval: int, now: float) -> bool:
        return self.recent_stamp >= 0 and paws_rejects(seg_tsval, self.recent, self.recent_stamp,
                                                       now)

    def update(self, seg_tsval: int, seg_seq: int, last_ack_sent: int, now: float) -> None:
        """RFC 7323 4.3 (2): record TSval if the segment covers Last.ACK.sent and is
        not older than TS.Recent."""
        if ((seg_seq - last_ack_sent) & MASK) >= 1 << 31 or seg_seq == last_ack_sent:
            if not ts_lt(seg_tsval, self.recent) or self.recent_stamp < 0:
                self.recent = seg_tsval
                self.recent_stamp = now

    def rtt(self, tsecr: int, now: float) -> float | None:
        """RFC 7323 4.1 (RTTM): the round trip of a segment whose TSval the peer echoed."""
        if not tsecr:
            return None
        ms = (self.val(now) - tsecr) & MASK
        if ms >= 1 << 31:
            return None  # an echo from the future: ignore
        return ms / 1000.0
