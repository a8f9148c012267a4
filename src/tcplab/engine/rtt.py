"""Round-trip time estimation and the retransmission timeout (RFC 6298).

One segment at a time is timed (section 3: "TCP MUST use Karn's algorithm"):
:meth:`RttEstimator.start` times a segment that carries new data, a SYN or a
FIN, unless one is already timed; :meth:`on_ack` takes the sample when an
acknowledgment covers it; a retransmission forgets the timed segment
(:meth:`forget`), because its ACK could belong to either copy.

The RTO follows section 2: the first sample sets SRTT = R and RTTVAR = R/2,
later ones smooth with alpha = 1/8 and beta = 1/4, and RTO = SRTT +
max(G, 4 * RTTVAR) clamped to [rto_min, rto_max].  G, the clock granularity,
is 1 ms here.  A timeout doubles the RTO (section 5.5, :meth:`back_off`).
Linux (``linux=True``) computes RTO = SRTT + max(4 * RTTVAR, rto_min)
(``tcp_set_rto``): its 200 ms minimum is added to the round trip.
"""

from __future__ import annotations

from typing import Final

from tcplab.wire.seq import seq_gt

_GRANULARITY: Final = 0.001


class RttEstimator:
    """SRTT, RTTVAR and RTO of one connection, with Karn's timed segment."""

    __slots__ = ("linux", "rto", "rto_max", "rto_min", "rttvar", "srtt", "timed_at", "timed_seq")

    def __init__(self, initial: float, rto_min: float, rto_max: float,
                 linux: bool = False) -> None:
        self.linux = linux
        self.rto = initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.timed_seq: int | None = None  #: the sequence number being timed, if any
        self.timed_at = 0.0

    def start(self, seq: int, now: float) -> None:
        """Time the segment starting at ``seq`` (unless one is timed already)."""
        if self.timed_seq is None:
            self.timed_seq = seq
            self.timed_at = now

    def restart(self, seq: int, now: float) -> None:
        """Time ``seq`` from now, whatever was timed before (a new SYN)."""
        self.timed_seq = seq
        self.timed_at = now

    def forget(self) -> None:
        """Karn's rule: a retransmission makes the timed segment's ACK ambiguous."""
        self.timed_seq = None

    def on_ack(self, ack: int, now: float) -> None:
        """An acknowledgment up to ``ack``: a sample if it covers the timed segment."""
        ts = self.timed_seq
        if ts is not None and seq_gt(ack, ts):
            self.sample(now - self.timed_at)
            self.timed_seq = None

    def on_synack(self, now: float) -> None:
        """Our SYN was acknowledged: a sample if it was not retransmitted."""
        if self.timed_seq is not None:
            self.sample(now - self.timed_at)
            self.timed_seq = None

    def sample(self, r: float) -> None:
        """RFC 6298 section 2."""
        srtt = self.srtt
        if srtt is None:
            srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
        self.srtt = srtt
        var4 = 4 * self.rttvar
        if self.linux:
            # Linux (tcp_set_rto): rto_min floors the variance term, not the RTO:
            # a 1 ms path gets 201 ms, not 200 ms.
            self.rto = min(srtt + (var4 if var4 > self.rto_min else self.rto_min), self.rto_max)
            return
        rto = srtt + (var4 if var4 > _GRANULARITY else _GRANULARITY)
        self.rto = min(max(rto, self.rto_min), self.rto_max)

    def back_off(self) -> None:
        """RFC 6298 (5.5): double the RTO, up to ``rto_max``."""
        self.rto = min(self.rto * 2, self.rto_max)

    def handshake_fallback(self, retransmitted: bool, initial: float) -> None:
        """RFC 6298 (5.7): the SYN (or SYN-ACK) was retransmitted and gave no sample,
        so data transmission starts with an RTO of 3 s (Linux: TCP_TIMEOUT_FALLBACK)."""
        if self.srtt is None and retransmitted and initial < 3.0:
            self.rto = min(max(3.0, self.rto_min), self.rto_max)
