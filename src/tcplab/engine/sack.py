"""Selective acknowledgments (RFC 2018, D-SACK RFC 2883, loss recovery RFC 6675).

Both ends of a connection that negotiated SACK (both SYNs carried SACK-permitted):

* the receiver, :class:`SackBlocks`, reports the out-of-order data it holds.
  It follows Linux (``tcp_sack_new_ofo_skb``, ``tcp_sack_remove``,
  ``tcp_dsack_set``), which follows RFC 2018 4: the first block covers the
  segment that arrived last, the others are the most recently reported
  blocks; at most four are remembered, and as many are sent as fit in the 40
  bytes of options (three beside timestamps).  A D-SACK block (RFC 2883),
  naming data received twice, goes first, once;
* the sender, :class:`Scoreboard`, keeps the segments it sent and not yet
  cumulatively acknowledged (Linux's retransmission queue), marks those the
  peer holds, and decides which are lost (RFC 6675 ``IsLost``: DupThresh
  segments, or more than (DupThresh - 1) * SMSS octets, SACKed above).  The
  connection retransmits only lost segments during recovery, and never what
  the peer holds after a timeout.  The segments keep the boundaries they were
  sent with, so a retransmission does not merge records (MSG_EOR).

Sequence numbers are plain integers compared modulo 2**32 (:mod:`tcplab.wire.seq`).
"""

from __future__ import annotations

from tcplab.wire.seq import seq_ge, seq_gt, seq_le, seq_lt, seq_sub

TCP_NUM_SACKS = 4      #: Linux TCP_NUM_SACKS: blocks a receiver remembers
DUPTHRESH = 3          #: RFC 6675 DupThresh (Linux tcp_reordering)
MAX_REORDERING = 300   #: Linux tcp_max_reordering
MAX_SEGMENTS = 1 << 16  #: a bound on the scoreboard (the send buffer bounds it anyway)


def max_blocks(timestamps: bool) -> int:
    """How many SACK blocks fit beside the other options (Linux tcp_established_options):
    40 option bytes, 12 for timestamps, 4 for the SACK header and NOPs, 8 per block."""
    room = 40 - (12 if timestamps else 0) - 4
    return min(room // 8, TCP_NUM_SACKS)


def _extend(block: list[int], seq: int, end: int) -> bool:
    """Linux tcp_sack_extend: grow ``block`` by [seq, end) when they touch or overlap."""
    if seq_le(seq, block[1]) and seq_le(block[0], end):
        if seq_lt(seq, block[0]):
            block[0] = seq
        if seq_gt(end, block[1]):
            block[1] = end
        return True
    return False


class SackBlocks:
    """The receiver's SACK blocks, most recent first (RFC 2018 4, as Linux keeps them)."""

    __slots__ = ("blocks", "dsack")

    def __init__(self) -> None:
        self.blocks: list[list[int]] = []
        self.dsack: tuple[int, int] | None = None   #: RFC 2883: reported once, first

    def __bool__(self) -> bool:
        return bool(self.blocks) or self.dsack is not None

    def on_ofo(self, seq: int, end: int) -> None:
        """Out-of-order data [seq, end) arrived (Linux tcp_sack_new_ofo_skb)."""
        blocks = self.blocks
        for i, block in enumerate(blocks):
            if _extend(block, seq, end):
                blocks.insert(0, blocks.pop(i))   # it becomes the first block
                self._coalesce()
                return
        blocks.insert(0, [seq, end])
        del blocks[TCP_NUM_SACKS:]                # a full array forgets its oldest

    def _coalesce(self) -> None:
        """Linux tcp_sack_maybe_coalesce: the first block swallows those it now touches."""
        first = self.blocks[0]
        keep = [first]
        for block in self.blocks[1:]:
            if not _extend(first, block[0], block[1]):
                keep.append(block)
        self.blocks = keep

    def on_advance(self, rcv_nxt: int, ooo_empty: bool) -> None:
        """RCV.NXT moved (Linux tcp_sack_remove): blocks it covers are dropped."""
        if ooo_empty:
            self.blocks = []
            return
        self.blocks = [b for b in self.blocks if seq_lt(rcv_nxt, b[0])]

    def set_dsack(self, seq: int, end: int) -> None:
        """Data [seq, end) arrived a second time (Linux tcp_dsack_set / tcp_dsack_extend)."""
        if seq_ge(seq, end):
            return
        if self.dsack is None:
            self.dsack = (seq, end)
            return
        block = list(self.dsack)
        if not _extend(block, seq, end):
            block = [seq, end]
        self.dsack = (block[0], block[1])

    def clear(self) -> None:
        self.blocks = []
        self.dsack = None

    def take(self, limit: int) -> tuple[tuple[int, int], ...]:
        """The blocks for the next segment (the D-SACK block, if any, first and only
        once, as Linux's tcp_options_write clears it)."""
        out: list[tuple[int, int]] = []
        if self.dsack is not None:
            out.append(self.dsack)
            self.dsack = None
        for b in self.blocks:
            if len(out) >= limit:
                break
            out.append((b[0], b[1]))
        return tuple(out[:limit])


class Sent:
    """One segment sent and not yet cumulatively acknowledged (Linux: an skb of the
    retransmission queue).  ``end`` counts a FIN."""

    __slots__ = ("end", "lost", "retrans", "retrans_out", "sacked", "sent_at", "stamp", "start")

    def __init__(self, start: int, end: int, now: float, stamp: float | None = None) -> None:
        self.start = start
        self.end = end
        self.sacked = False
        self.lost = False
        self.retrans_out = False  #: a retransmission of it is in flight (TCPCB_SACKED_RETRANS)
        self.retrans = 0          #: times retransmitted (TCPCB_EVER_RETRANS when > 0)
        self.sent_at = now        #: when last (re)sent
        #: RACK's transmit time: ``sent_at``, a microsecond later for each segment sent
        #: before it at the same instant (see :meth:`Scoreboard.stamp`)
        self.stamp = now if stamp is None else stamp

    def __repr__(self) -> str:
        marks = ("S" if self.sacked else "") + ("L" if self.lost else "") + \
            ("R" if self.retrans_out else "")
        return f"<Sent {self.start}:{self.end} {marks}>"

    @property
    def length(self) -> int:
        return seq_sub(self.end, self.start)


def _sent_after(t1: float, seq1: int, t2: float, seq2: int) -> bool:
    """Linux tcp_rack_sent_after: sent later, or at the same time with a higher end."""
    return t1 > t2 or (t1 == t2 and seq_gt(seq1, seq2))


class Scoreboard:
    """The sender's retransmission queue: what it sent, what the peer holds (SACK), what is
    lost (RFC 6675 section 3; RACK, RFC 8985), one entry per segment as sent.

    Counts follow Linux: ``packets_out`` segments outstanding, of which ``sacked``
    and ``lost``; ``in_flight`` = packets_out - sacked - lost + retransmissions
    in flight (``tcp_packets_in_flight``).
    """

    __slots__ = ("_burst_at", "_burst_n", "min_rtt", "rack_end", "rack_rtt", "rack_time",
                 "reno_sacked", "reord_low", "reord_seen", "reordering", "segs")

    def __init__(self) -> None:
        self.segs: list[Sent] = []
        self.reno_sacked = 0   #: without SACK: duplicate ACKs, each a segment that left
        # RACK (RFC 8985 6.1): the most recently sent segment the peer has delivered.
        self.rack_time = -1.0
        self.rack_end = 0
        self.rack_rtt = 0.0
        self.min_rtt = -1.0
        self.reord_seen = False
        #: the reordering degree in segments (Linux tp->reordering, from tcp_reordering)
        self.reordering = DUPTHRESH
        #: the lowest segment the last SACK newly covered below the highest SACKed one
        self.reord_low: int | None = None
        self._burst_at = -1.0   # the instant of the last segment sent, and how many before it
        self._burst_n = 0

    def __bool__(self) -> bool:
        return bool(self.segs)

    def clear(self) -> None:
        self.segs = []

    # ---------------------------------------------------------------- counts

    @property
    def packets_out(self) -> int:
        return len(self.segs)

    @property
    def sacked_out(self) -> int:
        return sum(1 for s in self.segs if s.sacked)

    @property
    def lost_out(self) -> int:
        return sum(1 for s in self.segs if s.lost)

    @property
    def retrans_out(self) -> int:
        return sum(1 for s in self.segs if s.retrans_out)

    def in_flight(self) -> int:
        n = -self.reno_sacked
        for s in self.segs:
            if not s.sacked and not s.lost:
                n += 1
            if s.retrans_out:
                n += 1
        return n

    # ---------------------------------------------------------------- bookkeeping

    def on_send(self, start: int, end: int, now: float) -> None:
        """New data [start, end) (a FIN counts one) went out for the first time."""
        if seq_ge(start, end):
            return
        segs = self.segs
        if segs and seq_lt(start, segs[-1].end):
            return   # not new
        if len(segs) >= MAX_SEGMENTS:
            # Merge the oldest two rather than grow without bound.
            a, b = segs[0], segs.pop(1)
            a.end = b.end
        segs.append(Sent(start, end, now, self.stamp(now)))

    def split(self, index: int, mss: int) -> None:
        """Cut the segment at ``index`` into pieces of at most ``mss`` (a SYN's data
        resent after the peer's MSS is known; Linux tso_fragment)."""
        s = self.segs[index]
        if s.length <= mss or mss <= 0:
            return
        pieces = []
        start = s.start
        while seq_lt(start, s.end):
            end = start + mss if seq_sub(s.end, start) > mss else s.end
            p = Sent(start & 0xFFFFFFFF, end & 0xFFFFFFFF, s.sent_at, s.stamp)
            p.lost, p.sacked, p.retrans = s.lost, s.sacked, s.retrans
            pieces.append(p)
            start = end & 0xFFFFFFFF
        self.segs[index:index + 1] = pieces

    def on_cumulative(self, snd_una: int) -> list[Sent]:
        """Everything before ``snd_una`` is acknowledged: the segments that left the
        queue (a partly acknowledged one stays, trimmed)."""
        segs = self.segs
        n = 0
        for s in segs:
            if seq_le(s.end, snd_una):
                n += 1
                continue
            if seq_lt(s.start, snd_una):
                s.start = snd_una
            break
        done = segs[:n]
        if n:
            del segs[:n]
        return done

    def on_sack(self, blocks: tuple[tuple[int, int], ...], snd_una: int,
                snd_max: int) -> list[Sent]:
        """Mark what the SACK blocks cover; returns the segments newly SACKed.

        Blocks that name data below SND.UNA or beyond SND.MAX (a D-SACK, RFC 2883,
        or a bogus block) mark nothing.  A segment counts as SACKed when a block
        covers all of it (Linux marks whole segments; a partly covered one stays
        a hole)."""
        newly: list[Sent] = []
        segs = self.segs
        self.reord_low = None
        # Linux walks the blocks in sequence order (tcp_sacktag_write_queue sorts them);
        # a never-retransmitted segment newly SACKed below the highest SACKed one
        # arrived out of order (tcp_sacktag_one's state->reord).
        high = self._highest_index()
        for left, right in sorted(blocks, key=lambda b: seq_sub(b[0], snd_una)):
            if not seq_lt(left, right) or seq_le(right, snd_una) or seq_gt(right, snd_max):
                continue
            for i, s in enumerate(segs):
                if seq_le(s.end, left):
                    continue
                if seq_ge(s.start, right):
                    break
                if not s.sacked and seq_le(left, s.start) and seq_le(s.end, right):
                    if high is not None and i < high and not s.retrans and (
                            self.reord_low is None or seq_lt(s.start, self.reord_low)):
                        self.reord_low = s.start
                    s.sacked = True
                    s.lost = False
                    s.retrans_out = False
                    newly.append(s)
                    if high is None or i >= high:
                        high = i + 1
        return newly

    def _highest_index(self) -> int | None:
        """The index just past the highest SACKed segment (Linux tp->highest_sack), None
        when nothing is SACKed."""
        for i in range(len(self.segs) - 1, -1, -1):
            if self.segs[i].sacked:
                return i + 1
        return None

    def highest_sack_seq(self, snd_una: int, snd_nxt: int) -> int:
        """Linux tcp_highest_sack_seq: where the highest SACKed segment ends (SND.UNA when
        none is, SND.NXT when nothing follows it)."""
        high = self._highest_index()
        if high is None:
            return snd_una
        return self.segs[high].start if high < len(self.segs) else snd_nxt

    def check_reordering(self, low: int | None, fack: int, mss: int) -> None:
        """Linux tcp_check_sack_reordering: data from ``low`` arrived after data up to
        ``fack`` had: the reordering degree becomes that distance in segments (at most
        tcp_max_reordering, 300), and RACK widens its window from now on."""
        if low is None or not seq_lt(low, fack):
            return
        metric = seq_sub(fack, low)
        if mss > 0 and metric > self.reordering * mss:
            self.reordering = min((metric + mss - 1) // mss, MAX_REORDERING)
        self.reord_seen = True

    # ---------------------------------------------------------------- RFC 6675

    def mark_lost(self, mss: int) -> int:
        """RFC 6675 IsLost: every hole with DupThresh segments, or more than
        (DupThresh - 1) * SMSS octets, SACKed above it is lost.  Returns how many
        were newly marked."""
        newly = 0
        count = octets = 0
        limit = (DUPTHRESH - 1) * mss
        for s in reversed(self.segs):
            if s.sacked:
                count += 1
                octets += s.length
                continue
            if (count >= DUPTHRESH or octets > limit) and not s.lost and not s.retrans_out:
                s.lost = True
                newly += 1
        return newly

    def mark_head_lost(self) -> int:
        """The first segment is lost (three duplicate ACKs without SACK, RFC 5681 3.2)."""
        for s in self.segs:
            if not s.sacked and not s.lost and not s.retrans_out:
                s.lost = True
                return 1
            break
        return 0

    def mark_all_lost(self) -> None:
        """A retransmission timeout (Linux tcp_timeout_mark_lost): every segment not
        SACKed is lost, retransmissions in flight included."""
        for s in self.segs:
            if not s.sacked:
                s.lost = True
                s.retrans_out = False

    def next_lost(self) -> int | None:
        """RFC 6675 NextSeg rule 1: the index of the first lost segment not being
        retransmitted."""
        for i, s in enumerate(self.segs):
            if s.lost and not s.retrans_out and not s.sacked:
                return i
        return None

    def pipe(self) -> int:
        """RFC 6675 SetPipe, in octets: what is still in the network."""
        total = 0
        for s in self.segs:
            if s.sacked:
                continue
            if not s.lost:
                total += s.length
            if s.retrans_out:
                total += s.length
        return total

    def sacked_range_at(self, seq: int) -> int | None:
        """If ``seq`` falls in a SACKed segment, where that SACKed run ends."""
        end: int | None = None
        for s in self.segs:
            if end is not None:
                if s.sacked and s.start == end:
                    end = s.end
                    continue
                return end
            if s.sacked and seq_le(s.start, seq) and seq_lt(seq, s.end):
                end = s.end
        return end

    def next_sacked_start(self, seq: int) -> int | None:
        """The start of the first SACKed segment at or beyond ``seq``."""
        for s in self.segs:
            if s.sacked and seq_ge(s.start, seq):
                return s.start
        return None

    # ---------------------------------------------------------------- RACK (RFC 8985)

    def stamp(self, now: float) -> float:
        """RACK's transmit time for a segment sent at ``now``.  A real sender's packets
        of one burst leave microseconds apart (Linux's TCP Small Queues hold the rest
        until the device takes the first), so a segment acknowledged with a later one
        of its burst has a round trip a little longer than the later one has waited:
        RACK then arms its timer rather than marking at once.  Virtual time sends a
        burst at one instant; each segment after the first gets one microsecond more."""
        if now == self._burst_at:
            self._burst_n += 1
        else:
            self._burst_at, self._burst_n = now, 0
        return now + self._burst_n * 1e-6

    def rack_update(self, delivered: list[Sent], now: float) -> bool:
        """RFC 8985 6.2 step 2 (Linux tcp_rack_advance): remember the most recently sent
        of the segments just delivered, and the round trip of the last one given (Linux
        takes the SACKed ones first, then those cumulatively acknowledged).  A
        retransmitted one whose round trip is shorter than the minimum is ambiguous and
        ignored."""
        advanced = False
        for s in delivered:
            rtt = now - s.sent_at
            # Linux ignores a retransmission delivered sooner than the minimum RTT; in
            # virtual time, where round trips repeat to the microsecond, one delivered
            # exactly one minimum RTT later is just as ambiguous (its original may be
            # the copy that arrived), so it is ignored too.
            if s.retrans and rtt < self.min_rtt + 1e-6:
                continue
            if not s.retrans and (self.min_rtt < 0 or rtt < self.min_rtt):
                self.min_rtt = rtt
            advanced = True
            self.rack_rtt = now - s.stamp
            if _sent_after(s.stamp, s.end, self.rack_time, self.rack_end):
                self.rack_time, self.rack_end = s.stamp, s.end
        return advanced

    def rack_detect(self, now: float, reo_wnd: float) -> tuple[int, float]:
        """RFC 8985 6.2 step 5 (Linux tcp_rack_detect_loss): a segment sent before the
        most recently delivered one is lost once a round trip plus the reordering
        window has passed since it was sent.  Returns (newly lost, seconds until the
        next one would be, 0 if none waits)."""
        if self.rack_time < 0:
            return 0, 0.0
        newly = 0
        wait = 0.0
        for s in self.segs:
            if s.sacked or (s.lost and not s.retrans_out):
                continue
            if not _sent_after(self.rack_time, self.rack_end, s.stamp, s.end):
                continue
            remaining = self.rack_rtt + reo_wnd - (now - s.stamp)
            if remaining <= 1e-9:
                s.lost = True
                s.retrans_out = False
                newly += 1
            elif remaining > wait:
                wait = remaining
        return newly, wait
