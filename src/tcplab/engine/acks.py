"""When to acknowledge: at once, or after the delayed-ACK timer (RFC 9293 3.8.6.3, RFC 1122
4.2.3.2), as the RFCs allow it and as Linux does it.

RFC behaviour (``config.quickack`` off): an ACK may be delayed up to
``delayed_ack`` (40 ms here, less than 500 ms), and every second full-sized
segment is ACKed at once.  Out-of-order data, a filled gap and a pure
duplicate are ACKed at once (RFC 5681 4.2).

Linux behaviour (``config.quickack`` on, ``net/ipv4/tcp_input.c``):

* before any data has arrived the delayed-ACK interval (``ato``) is 0, so a
  lone FIN on a fresh connection is ACKed at once;
* the first data segment starts *quick-ACK mode*: the next
  min(window / (2 * MSS), 16) segments are ACKed at once
  (``tcp_incr_quickack``);
* *ping-pong* (interactive) mode, entered when we send data within ``ato``
  of receiving some (a request answered at once) or when the peer's FIN
  arrives, turns quick ACKs off, so ACKs wait to ride on the answer; this is
  what makes a three-segment close possible;
* TCP_QUICKACK leaves ping-pong mode and sends a pending ACK at once;
* a read sends an ACK only when a delayed one waits for more than a segment,
  or the read frees at least twice the window still advertised
  (``__tcp_cleanup_rbuf``; see ``Connection._linux_read_ack``).
"""

from __future__ import annotations

MAX_QUICKACKS = 16  #: Linux TCP_MAX_QUICKACKS


class AckState:
    """The acknowledgment mode of one connection."""

    __slots__ = ("data_seen", "last_data_rcv", "linux", "pingpong", "pushed", "quick")

    def __init__(self, linux: bool) -> None:
        self.linux = linux
        self.data_seen = False        #: any data received yet (Linux: icsk_ack.ato != 0)
        self.quick = 0                #: quick ACKs left
        self.pingpong = False         #: interactive: delay ACKs to ride on answers
        self.last_data_rcv = -1.0     #: when data last arrived (or the handshake ended)
        self.pushed = False           #: a small segment waits for its ACK (ICSK_ACK_PUSHED)

    def on_data(self, now: float, rcv_wnd: int, rcv_mss: int, size: int = 0) -> None:
        """In-order data arrived (``size`` octets)."""
        if 0 < size < rcv_mss:
            self.pushed = True
        if self.linux and not self.data_seen:
            quick = rcv_wnd // (2 * rcv_mss) if rcv_mss else 2
            self.quick = min(max(quick, 2), MAX_QUICKACKS)
        self.data_seen = True
        self.last_data_rcv = now

    def on_data_sent(self, now: float, ato: float) -> None:
        """We sent data: an answer within ``ato`` of a request means interactive."""
        if self.linux and self.data_seen and now - self.last_data_rcv < ato:
            self.pingpong = True

    def on_established(self, now: float) -> None:
        """The handshake completed: Linux stamps icsk_ack.lrcvtime (its ato stays 0
        until data arrives, so this alone never means interactive)."""
        self.last_data_rcv = now

    def on_synack_write_pending(self, now: float) -> None:
        """Our SYN was acknowledged while the application waits to write (Linux
        tcp_rcv_synsent_state_process with sk_write_pending): quick-ACK mode starts,
        and data sent now is an answer (ping-pong mode)."""
        if self.linux:
            self.data_seen = True
            self.quick = MAX_QUICKACKS
            self.pingpong = False
            self.last_data_rcv = now

    def on_fin(self) -> None:
        """The peer's FIN: Linux's tcp_fin() enters ping-pong mode."""
        if self.linux:
            self.pingpong = True

    def on_ack_sent(self) -> None:
        self.pushed = False
        if self.quick:
            self.quick -= 1

    def now(self) -> bool:
        """Should an ACK that could wait go out at once?"""
        if not self.linux:
            return False
        if not self.data_seen:
            return True  # ato is 0: the delayed-ACK timer would fire at once
        return self.quick > 0 and not self.pingpong
