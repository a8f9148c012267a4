"""Out-of-order data waiting for the hole before it to fill (RFC 9293 3.10.7.4, seventh).

Pieces are kept sorted by their distance from RCV.NXT, without overlaps.
The common case, a piece beyond everything held (segments arriving in order
after a hole), is an append; otherwise one pass merges overlaps, the bytes
already held winning (RFC 9293 leaves the choice open; BSD and Linux keep
the first copy too).  The total held is bounded by the receive window,
because the connection trims every segment to it first.
"""

from __future__ import annotations

from tcplab.wire.seq import MASK


class Reassembly:
    """The out-of-order queue of one connection."""

    __slots__ = ("pieces",)

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytes]] = []

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def held(self) -> int:
        """Bytes held out of order."""
        return sum(len(d) for _s, d in self.pieces)

    def clear(self) -> None:
        self.pieces = []

    def insert(self, seq: int, data: bytes, rcv_nxt: int) -> None:
        """Keep ``data`` starting at ``seq`` (beyond ``rcv_nxt``), trimming overlaps."""
        pieces = self.pieces
        base = rcv_nxt
        off = (seq - base) & MASK
        if not pieces:
            pieces.append((seq, data))
            return
        last_s, last_d = pieces[-1]
        if off >= ((last_s - base) & MASK) + len(last_d):
            pieces.append((seq, data))
            return
        end = off + len(data)
        out: list[tuple[int, bytes]] = []
        placed = False
        for s, d in pieces:
            o = (s - base) & MASK
            e = o + len(d)
            if e <= off:
                out.append((s, d))
                continue
            if o >= end:
                if not placed:
                    out.append(((base + off) & MASK, data))
                    placed = True
                out.append((s, d))
                continue
            lo = o if o < off else off
            hi = e if e > end else end
            buf = bytearray(hi - lo)
            buf[off - lo: off - lo + len(data)] = data
            buf[o - lo: o - lo + len(d)] = d
            off, end, data = lo, hi, bytes(buf)
        if not placed:
            out.append(((base + off) & MASK, data))
        self.pieces = out

    def overlap(self, seq: int, end: int, rcv_nxt: int) -> tuple[int, int] | None:
        """The first part of [seq, end) already held, if any (for a D-SACK)."""
        off = (seq - rcv_nxt) & MASK
        stop = off + ((end - seq) & MASK)
        for s, d in self.pieces:
            o = (s - rcv_nxt) & MASK
            e = o + len(d)
            lo, hi = max(o, off), min(e, stop)
            if lo < hi:
                return ((rcv_nxt + lo) & MASK, (rcv_nxt + hi) & MASK)
        return None

    def pop_ready(self, rcv_nxt: int) -> bytes | None:
        """The next piece that starts at or before ``rcv_nxt``, trimmed to start there;
        None when the next piece is still beyond a hole (or nothing is held)."""
        pieces = self.pieces
        while pieces:
            s, d = pieces[0]
            skip = (rcv_nxt - s) & MASK
            if skip >= 1 << 31:  # s is beyond rcv_nxt: a hole remains
                return None
            pieces.pop(0)
            if skip < len(d):
                return d[skip:]
        return None
