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

    __slots__ = ("abc_limit", "cwnd", "dupacks", "in_recovery", "recover", "ssthresh")

    def __init__(self, initial_window: int, iss: int, abc_limit: int = 1) -> None:
        self.cwnd = initial_window
        #: slow start grows by at most this many MSS per ACK (0: by all it acknowledges)
        self.abc_limit = abc_limit
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
            # slow start: RFC 5681 (2) with abc_limit 1, RFC 3465's L otherwise
            limit = self.abc_limit * mss
            self.cwnd += acked if limit <= 0 or acked < limit else limit
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


# ---------------------------------------------------------------- Linux

CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = 0, 1, 2, 3, 4  #: Linux tcp_ca_state


class LinuxReno:
    """Linux's sender state (``net/ipv4/tcp_input.c``, ``tcp_cong.c``), with Reno.

    The window counts packets, not octets (``tcp_snd_cwnd``): a 400-byte segment
    takes a whole slot.  Slow start grows by every packet acknowledged
    (``tcp_slow_start``), congestion avoidance by one per window
    (``tcp_cong_avoid_ai``).  Loss recovery is Proportional Rate Reduction
    (RFC 6937, ``tcp_cwnd_reduction``): while in Recovery the window is set,
    on each ACK, to what is in flight plus what PRR allows; a timeout enters
    Loss with a window of one packet (``tcp_enter_loss``).  Reno halves
    (``tcp_reno_ssthresh``); Linux's default, CUBIC, is not modelled (the
    packetdrill runs this is compared with used Reno: CUBIC cannot be set in
    their network namespace).
    """

    __slots__ = ("ca_state", "cnt", "cwnd", "high_seq", "prior_cwnd", "prr_delivered",
                 "prr_out", "ssthresh")

    INFINITE = 0x7FFFFFFF   #: TCP_INFINITE_SSTHRESH

    def __init__(self, initial_segments: int) -> None:
        self.cwnd = initial_segments
        self.ssthresh = self.INFINITE
        self.ca_state = CA_OPEN
        self.cnt = 0              #: snd_cwnd_cnt: ACKed packets towards the next +1
        self.high_seq = 0         #: SND.NXT when recovery or loss began
        self.prior_cwnd = initial_segments
        self.prr_delivered = 0
        self.prr_out = 0

    @property
    def in_recovery(self) -> bool:
        return self.ca_state >= CA_RECOVERY

    def grow(self, acked: int, cwnd_limited: bool) -> None:
        """Reno's cong_avoid: slow start, then one packet per window (tcp_reno_cong_avoid)."""
        if not cwnd_limited or acked <= 0:
            return
        if self.cwnd < self.ssthresh:
            grown = min(self.cwnd + acked, self.ssthresh)
            acked -= grown - self.cwnd
            self.cwnd = grown
            if acked <= 0:
                return
        # tcp_cong_avoid_ai(tp, cwnd, acked)
        w = max(self.cwnd, 1)
        if self.cnt >= w:
            self.cnt = 0
            self.cwnd += 1
        self.cnt += acked
        if self.cnt >= w:
            delta = self.cnt // w
            self.cnt -= delta * w
            self.cwnd += delta

    def enter_recovery(self, snd_nxt: int) -> None:
        """tcp_enter_recovery + tcp_init_cwnd_reduction."""
        self.prior_cwnd = self.cwnd
        self.ssthresh = max(self.cwnd >> 1, 2)
        self.prr_delivered = 0
        self.prr_out = 0
        self.high_seq = snd_nxt
        self.ca_state = CA_RECOVERY

    def reduce(self, newly_acked_sacked: int, newly_lost: int, una_advanced: bool,
               in_flight: int) -> None:
        """RFC 6937 PRR, as tcp_cwnd_reduction computes it."""
        if newly_acked_sacked <= 0 or not self.prior_cwnd:
            return
        self.prr_delivered += newly_acked_sacked
        delta = self.ssthresh - in_flight
        if delta < 0:
            dividend = self.ssthresh * self.prr_delivered + self.prior_cwnd - 1
            sndcnt = dividend // self.prior_cwnd - self.prr_out
        else:
            sndcnt = max(self.prr_delivered - self.prr_out, newly_acked_sacked)
            if una_advanced and not newly_lost:
                sndcnt += 1
            sndcnt = min(delta, sndcnt)
        # Force a fast retransmit upon entering fast recovery.
        sndcnt = max(sndcnt, 0 if self.prr_out else 1)
        self.cwnd = in_flight + sndcnt

    def end_recovery(self) -> None:
        """tcp_end_cwnd_reduction: the window becomes ssthresh."""
        if self.ca_state == CA_RECOVERY and self.ssthresh < self.INFINITE:
            self.cwnd = self.ssthresh
        self.ca_state = CA_OPEN

    def enter_loss(self, snd_nxt: int, in_flight: int) -> None:
        """tcp_enter_loss: a retransmission timeout."""
        if self.ca_state != CA_LOSS:
            self.prior_cwnd = self.cwnd
            self.ssthresh = max(self.cwnd >> 1, 2)
        self.cwnd = in_flight + 1
        self.cnt = 0
        self.high_seq = snd_nxt
        self.ca_state = CA_LOSS

    def non_congestion_loss(self, snd_nxt: int) -> None:
        """tcp_non_congestion_loss_retransmit: data to resend, no congestion signal
        (a SYN-ACK that acknowledged only part of the data in our SYN)."""
        if self.ca_state != CA_LOSS:
            self.high_seq = snd_nxt
            self.ca_state = CA_LOSS
