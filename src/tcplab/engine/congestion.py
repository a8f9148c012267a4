"""Congestion control: slow start, congestion avoidance, fast retransmit and
fast recovery (RFC 5681), with NewReno's partial acknowledgments (RFC 6582).

The connection tells :class:`NewReno` what happened (new data acknowledged,
a duplicate ACK, a retransmission timeout) and asks it for ``cwnd``; the
window is in bytes, counted in units of the sender's MSS.  Each method that
may call for a retransmission returns ``True``; the connection then resends
one segment from SND.UNA.
"""

from __future__ import annotations


class NewReno:
    """cwnd, ssthresh and the recovery state of one connection (bytes)."""

    __slots__ = ("cwnd", "dupacks", "in_recovery", "recover", "ssthresh")

    def __init__(self, initial_window: int, iss: int) -> None:
        self.cwnd = initial_window
        self.ssthresh = 1 << 30  #: "arbitrarily high" (RFC 5681 3.1)
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss  #: RFC 6582: the highest sequence number sent when recovery began

    def on_ack(self, acked: int, ack_reaches_recover: bool, mss: int) -> bool:
        """``acked`` new bytes were acknowledged.  True: a partial ACK, resend the next hole."""
        self.dupacks = 0
        if self.in_recovery:
            if ack_reaches_recover:
                # RFC 6582 3.2 (3): full acknowledgment, deflate the window.
                self.in_recovery = False
                self.cwnd = self.ssthresh
                return False
            # RFC 6582 3.2 (4): partial acknowledgment.
            self.cwnd = max(self.cwnd - acked + mss, mss)
            return True
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, mss)  # slow start (RFC 5681 (2))
        else:
            self.cwnd += max(mss * mss // self.cwnd, 1)  # congestion avoidance ((3))
        return False

    def on_dupack(self, flight: int, snd_max: int, mss: int) -> bool:
        """A duplicate ACK (RFC 5681 3.2).  True: the third one, fast retransmit now."""
        self.dupacks += 1
        if self.in_recovery:
            self.cwnd += mss  # (4): inflate by each further duplicate
            return False
        if self.dupacks == 3:
            self.ssthresh = max(flight // 2, 2 * mss)  # (4.1) / RFC 6582 3.2 (2)
            self.recover = snd_max
            self.in_recovery = True
            self.cwnd = self.ssthresh + 3 * mss
            return True
        return False

    def on_timeout(self, flight: int, snd_max: int, mss: int) -> None:
        """A retransmission timeout (RFC 5681 (4)): one segment, slow start again."""
        self.ssthresh = max(flight // 2, 2 * mss)
        self.cwnd = mss
        self.in_recovery = False
        self.dupacks = 0
        self.recover = snd_max
