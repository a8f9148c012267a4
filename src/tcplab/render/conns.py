"""Which connection each segment belongs to, and its sequence numbers as a person reads them.

A 4-tuple can carry several connections one after another (a client that
reconnects from the same port, as in the stale-segment scenario), and a SYN
of an older attempt can wander in while a newer one is opening (RFC 9293
Figure 8).  :class:`Connections` splits the segments of a trace into
*incarnations*: one per connection, begun by a SYN, each with its own
initial sequence numbers (ISNs), so that every connection's numbers start
at 0 (as Wireshark's "relative sequence numbers" do, per conversation).

Rules, for segments in time order:

* a SYN without ACK whose seq is the current incarnation's ISN for that side
  is a retransmission; from the other side (simultaneous open, a scripted
  four-segment open) it joins the current incarnation; a seq *behind* the
  current ISN is an **old duplicate** (an older attempt): an incarnation of
  its own whose numbers are shown relative to the current one, so they come
  out negative ("seq=−100000");
* a SYN-ACK joins the incarnation whose ISN it acknowledges;
* any other segment joins the incarnation whose ISN lies closest below its
  seq (modulo 2^32), so a delayed segment of an old connection keeps the old
  connection's numbers ("seq=301") even when it arrives in the new one;
* a capture that starts mid-connection takes the first seq seen as the base.

A segment sent in one incarnation that arrives after a newer incarnation of
its 4-tuple has begun is **stale** (the reason TIME-WAIT exists).  A segment
that repeats sequence space already sent is a **retransmission**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

_MOD = 1 << 32
_HALF = 1 << 31


def _dist(a: int, b: int) -> int:
    """(a - b) mod 2^32."""
    return (a - b) % _MOD


def signed(v: int) -> int:
    """A 32-bit difference as a signed number (-2^31 .. 2^31-1)."""
    v %= _MOD
    return v - _MOD if v >= _HALF else v


@dataclass
class Incarnation:
    key: tuple[str, str]
    number: int                      #: 1-based, in order of first appearance
    t0: float
    isn: dict[str, int] = field(default_factory=dict)
    #: an old duplicate: its old side's numbers are shown relative to this incarnation
    old_of: Incarnation | None = None
    old_side: str | None = None
    sent_end: dict[str, int] = field(default_factory=dict)  # highest seq end sent per side

    def base(self, endpoint: str) -> int | None:
        if self.old_of is not None and endpoint == self.old_side:
            return self.old_of.isn.get(endpoint)
        return self.isn.get(endpoint)


@dataclass
class SegmentInfo:
    inc: Incarnation
    seq: int | None = None          #: relative (signed for old duplicates), None: absolute
    ack: int | None = None
    old_duplicate: bool = False
    stale: bool = False             #: arrives after a newer incarnation of its 4-tuple began
    retransmission: bool = False
    keepalive: bool = False         #: a keep-alive probe: seq one below what was sent (RFC 9293 3.8.4)


def _acks_syn(inc: Incarnation, end: str, ack: int) -> bool:
    """Does ``ack`` acknowledge the SYN ``end`` sent in ``inc`` (and no more than the
    data that SYN carried)?"""
    isn = inc.isn.get(end)
    if isn is None:
        return False
    covered = _dist(inc.sent_end.get(end, (isn + 1) % _MOD), isn)
    return 1 <= _dist(ack, isn) <= max(1, covered)


def _seq_space(e: Event) -> int:
    flags = str(e.get("flags", ""))
    return int(e.get("len", 0) or 0) + ("S" in flags) + ("F" in flags)


class Connections:
    """Incarnations of the 4-tuples of a trace (events in time order)."""

    def __init__(self, events: list[Event]) -> None:
        self.incarnations: list[Incarnation] = []
        self._by_key: dict[tuple[str, str], list[Incarnation]] = {}
        self._info: dict[int, SegmentInfo] = {}
        self._by_packet: dict[Any, SegmentInfo] = {}
        for e in events:
            if e.get("kind") != "segment" or "src" not in e or "dst" not in e:
                continue
            if e.get("event") in ("send", "recv"):
                info = self._assign(e)
                self._info[id(e)] = info
                if e.get("id") is not None:
                    self._by_packet.setdefault(e["id"], info)
        for e in events:  # a host's view of a segment (drop/accept) shares the sender's info
            if e.get("kind") == "segment" and e.get("event") not in ("send", "recv"):
                info_ = self._by_packet.get(e.get("id"))
                if info_ is None and "src" in e and "dst" in e and "seq" in e:
                    info_ = self._assign(e, record=False)
                if info_ is not None:
                    self._info[id(e)] = info_
        for e in events:
            info_ = self._info.get(id(e))
            if info_ is None or e.get("event") not in ("send", "recv"):
                continue
            ta = e.get("t_arrive")
            if isinstance(ta, (int, float)):
                t = float(e.get("t", 0.0))
                for later in self._by_key.get(info_.inc.key, []):
                    if later.number > info_.inc.number and t < later.t0 <= float(ta) \
                            and later.old_of is None:
                        info_.stale = True

    # ------------------------------------------------------------ queries

    def info(self, e: Event) -> SegmentInfo | None:
        return self._info.get(id(e))

    def count(self) -> int:
        return len(self.incarnations)

    # ------------------------------------------------------------ assignment

    def _new(self, key: tuple[str, str], t: float) -> Incarnation:
        inc = Incarnation(key, len(self.incarnations) + 1, t)
        self.incarnations.append(inc)
        self._by_key.setdefault(key, []).append(inc)
        return inc

    def _assign(self, e: Event, record: bool = True) -> SegmentInfo:
        src, dst = str(e["src"]), str(e["dst"])
        key = (src, dst) if src <= dst else (dst, src)
        incs = self._by_key.get(key, [])
        flags = str(e.get("flags", ""))
        seq = int(e.get("seq", 0)) % _MOD
        ack = int(e.get("ack", 0)) % _MOD
        t = float(e.get("t", 0.0))
        cur = incs[-1] if incs else None
        old_dup = False
        inc: Incarnation
        if "S" in flags and "A" not in flags:
            if (cur is not None and cur.isn.get(src) == seq) or (cur is not None and src not in cur.isn and cur.old_of is None):
                inc = cur
            elif cur is not None and src in cur.isn and 0 < _dist(cur.isn[src], seq) < _HALF:
                inc = self._new(key, t)
                inc.old_of, inc.old_side = (cur.old_of or cur), src
                old_dup = True
            else:
                inc = self._new(key, t)
            inc.isn.setdefault(src, seq)
        elif "S" in flags:
            want = (ack - 1) % _MOD
            # the SYN-ACK acknowledges the peer's ISN, and with Fast Open (RFC 7413) the
            # data its SYN carried too: ack may lie anywhere up to what that SYN covered
            found = next((i for i in reversed(incs) if _acks_syn(i, dst, ack)), None)
            if found is None:
                found = self._new(key, t)
                found.isn[dst] = want
            inc = found
            inc.isn.setdefault(src, seq)
        else:
            inc = self._closest(incs, src, dst, seq, ack, flags) or self._new(key, t)
            inc.isn.setdefault(src, seq)
            if "A" in flags and dst not in inc.isn:
                inc.isn[dst] = ack  # mid-connection capture: the first ack seen is the base
        old_dup = old_dup or (inc.old_of is not None and src == inc.old_side)
        info = SegmentInfo(inc, old_duplicate=old_dup and "S" in flags)
        base_s, base_a = inc.base(src), inc.base(dst)
        if base_s is not None:
            d = _dist(seq, base_s)
            info.seq = signed(d) if inc.old_of is not None else d
        if base_a is not None and "A" in flags:
            d = _dist(ack, base_a)
            info.ack = signed(d) if inc.old_of is not None else d
        if record:
            space = _seq_space(e)
            end = (seq + space) % _MOD
            top = inc.sent_end.get(src)
            if flags == "A" and int(e.get("len", 0) or 0) <= 1 and top is not None \
                    and (top - 1) % _MOD == seq:
                # SEG.SEQ = SND.NXT - 1 (with no data or one garbage byte): a keep-alive
                # probe, which the peer must answer with an ACK
                info.keepalive = True
                return info
            if space and top is not None and _dist(top, end) < _HALF:
                info.retransmission = True
            elif space:
                inc.sent_end[src] = end
        return info

    @staticmethod
    def _closest(incs: list[Incarnation], src: str, dst: str, seq: int, ack: int,
                 flags: str) -> Incarnation | None:
        best: tuple[int, int] | None = None
        pick: Incarnation | None = None
        for n, inc in enumerate(incs):
            if src in inc.isn and inc.old_of is None:
                d = _dist(seq, inc.isn[src])
            elif "A" in flags and dst in inc.isn:
                d = _dist(ack, inc.isn[dst])
            elif inc.old_of is not None and src in inc.isn:
                d = _dist(seq, inc.isn[src])
            else:
                continue
            if d >= _HALF:
                continue
            score = (d, -n)
            if best is None or score < best:
                best, pick = score, inc
        if pick is None and incs:
            return incs[-1]
        return pick
