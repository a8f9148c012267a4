"""One TCP connection: the transmission control block and its state machine.

Theory of operation
-------------------
A :class:`Connection` is driven from outside and never does I/O:

* ``on_segment(seg, now)`` is called by the :class:`~tcplab.engine.host.Host`
  for every checked segment of this connection's 4-tuple;
* ``on_timer(now)`` when :meth:`next_deadline` has passed;
* the application calls ``send``, ``recv``, ``close``, ``shutdown`` and
  ``abort``, each with ``now``.

Segments to send go back through ``host.output(conn, seg, now)``; events for
the application go to ``on_event`` (a callback the socket layers set).

Segment processing follows RFC 9293 section 3.10.7 step by step: SYN-SENT
(3.10.7.3) has its own function; every other state goes through
``_first_check_sequence`` .. ``_eighth_fin`` in the RFC's order, with RFC 5961
applied to RST, SYN and ACK values.  TIME-WAIT is not handled here: the host
turns a connection that enters TIME-WAIT into a compact entry
(:mod:`tcplab.engine.timewait`), as Linux does with its timewait sockets.

Retransmission follows RFC 6298 (SRTT/RTTVAR, Karn's rule, backoff), and
congestion control RFC 5681 (slow start, congestion avoidance, fast
retransmit) with NewReno's partial-ACK rule (RFC 6582).  Timestamps and SACK
are not used; window scaling (RFC 7323) is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcplab.engine.errors import TcpError
from tcplab.engine.state import State
from tcplab.wire.seq import Seq
from tcplab.wire.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Mss,
    Nop,
    TcpOption,
    TcpSegment,
    WindowScale,
)

if TYPE_CHECKING:
    from tcplab.engine.config import TcpConfig
    from tcplab.engine.host import Binding, Host, Listener

import errno as _errno

EventCallback = Callable[[str, "Connection"], None]

_MAX_WIN = 0xFFFF

# Application event names passed to ``on_event``.
EV_CONNECTED = "connected"
EV_DATA = "data"
EV_EOF = "eof"
EV_WRITABLE = "writable"
EV_CLOSED = "closed"


class Connection:
    """The TCB of RFC 9293 3.3.1, with RFC names for its variables."""

    __slots__ = (
        "ack_pending",
        "app_closed",
        "backoff",
        "binding",
        "config",
        "cwnd",
        "delack_at",
        "dupacks",
        "error",
        "fin_queued",
        "fin_seq",
        "fw2_at",
        "host",
        "in_recovery",
        "irs",
        "iss",
        "key",
        "laddr",
        "last_oow_ack",
        "listener",
        "lport",
        "max_snd_wnd",
        "name",
        "nodelay",
        "on_event",
        "ooo",
        "passive",
        "peer_fin_seq",
        "persist_at",
        "raddr",
        "rcv_adv",
        "rcv_buf",
        "rcv_mss",
        "rcv_nxt",
        "rcv_wscale",
        "rcvbuf",
        "rd_shut",
        "recover",
        "reuseaddr",
        "rport",
        "rto",
        "rtt_seq",
        "rtt_time",
        "rttvar",
        "rtx_at",
        "rtx_count",
        "sched_at",
        "snd_max",
        "snd_mss",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "sndbuf",
        "sndbuf_seq",
        "srtt",
        "ssthresh",
        "state",
        "syn_data",
        "wr_shut",
    )

    def __init__(self, host: Host, laddr: str, lport: int, raddr: str, rport: int,
                 iss: int, config: TcpConfig) -> None:
        self.host = host
        self.config = config
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.key = (laddr, lport, raddr, rport)
        self.name = f"{laddr}:{lport}-{raddr}:{rport}"
        self.state = State.CLOSED
        self.passive = False
        self.listener: Listener | None = None
        self.binding: Binding | None = None
        self.on_event: EventCallback | None = None
        self.error: str | None = None
        self.reuseaddr = False
        self.nodelay = not config.nagle
        # Send sequence variables (RFC 9293 3.3.1).  SND.MAX is BSD's: the
        # highest sequence number sent, kept when a timeout rewinds SND.NXT.
        self.iss = Seq(iss)
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_max = self.iss
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = Seq(0)
        self.snd_wl2 = self.iss
        self.snd_wscale = 0
        self.snd_mss = config.default_mss
        # Receive sequence variables.
        self.irs = Seq(0)
        self.rcv_nxt = Seq(0)
        self.rcv_buf = config.rcv_buf
        self.rcv_wscale = 0
        self.rcv_adv = Seq(0)  # right edge last advertised: never moved left
        self.rcv_mss = config.mss
        # Buffers: sndbuf holds bytes from sndbuf_seq (unacked, then unsent).
        self.sndbuf = bytearray()
        self.sndbuf_seq = self.iss + 1
        self.rcvbuf = bytearray()
        self.ooo: list[tuple[Seq, bytes]] = []
        self.syn_data = b""
        self.peer_fin_seq: Seq | None = None
        self.fin_queued = False
        self.fin_seq: Seq | None = None
        self.wr_shut = False
        self.rd_shut = False
        self.app_closed = False
        # Retransmission (RFC 6298) and congestion control (RFC 5681).
        self.rto = config.rto_initial
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rtt_seq: Seq | None = None
        self.rtt_time = 0.0
        self.backoff = 0
        self.rtx_count = 0
        self.cwnd = config.initial_cwnd_segments * config.mss
        self.ssthresh = 1 << 30
        self.dupacks = 0
        self.recover = self.iss
        self.in_recovery = False
        # Timers: absolute deadlines or None.
        self.rtx_at: float | None = None
        self.persist_at: float | None = None
        self.delack_at: float | None = None
        self.fw2_at: float | None = None
        self.ack_pending = 0
        self.sched_at: float | None = None  # earliest deadline the host has queued
        self.last_oow_ack: float | None = None

    # ================================================================ helpers

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"

    @property
    def rcv_wnd(self) -> int:
        """RCV.WND: free receive buffer space."""
        free = self.rcv_buf - len(self.rcvbuf)
        return free if free > 0 else 0

    def tcb(self) -> dict[str, Any]:
        """A snapshot of the TCB variables, for traces and reports."""
        return {
            "state": self.state.value, "snd_una": int(self.snd_una), "snd_nxt": int(self.snd_nxt),
            "snd_wnd": self.snd_wnd, "rcv_nxt": int(self.rcv_nxt), "rcv_wnd": self.rcv_wnd,
            "iss": int(self.iss), "irs": int(self.irs), "cwnd": self.cwnd, "rto": self.rto,
        }

    def current_state(self) -> State:
        """The state now, including a TIME-WAIT that the host has since expired."""
        if self.state is State.TIME_WAIT and not self.host.in_time_wait(self.key):
            return State.CLOSED
        return self.state

    def set_state(self, new: State, cause: str, now: float) -> None:
        """Every state change goes through here, and is traced."""
        old = self.state
        if old is new:
            return
        self.state = new
        tr = self.host.trace
        if tr.enabled:
            tr.add({"t": now, "kind": "state", "host": self.host.name, "conn": self.name,
                    "from": old.value, "to": new.value, "cause": cause, "tcb": self.tcb()})

    def _event(self, name: str) -> None:
        cb = self.on_event
        if cb is not None:
            cb(name, self)

    def _timer_trace(self, now: float, timer: str, action: str, deadline: float | None) -> None:
        tr = self.host.trace
        if tr.enabled:
            tr.add({"t": now, "kind": "timer", "host": self.host.name, "conn": self.name,
                    "timer": timer, "action": action, "deadline": deadline})

    def next_deadline(self) -> float | None:
        best: float | None = None
        for d in (self.rtx_at, self.persist_at, self.delack_at, self.fw2_at):
            if d is not None and (best is None or d < best):
                best = d
        return best

    def _arm_rtx(self, now: float) -> None:
        self.rtx_at = now + self.rto
        self.host.schedule(self, self.rtx_at)
        self._timer_trace(now, "retransmit", "armed", self.rtx_at)

    def _cancel_rtx(self, now: float) -> None:
        if self.rtx_at is not None:
            self.rtx_at = None
            self._timer_trace(now, "retransmit", "cancelled", None)

    def _arm_delack(self, now: float) -> None:
        if self.delack_at is None:
            self.delack_at = now + self.config.delayed_ack
            self.host.schedule(self, self.delack_at)
            self._timer_trace(now, "delayed-ack", "armed", self.delack_at)

    def _make(self, flags: int, seq: Seq, payload: bytes = b"",
              options: tuple[TcpOption, ...] = ()) -> TcpSegment:
        win = self.rcv_wnd
        if flags & SYN:
            wfield = win if win < _MAX_WIN else _MAX_WIN  # never scaled in a SYN (RFC 7323 2.2)
            edge = self.rcv_nxt + wfield
        else:
            wfield = win >> self.rcv_wscale
            if wfield > _MAX_WIN:
                wfield = _MAX_WIN
            edge = self.rcv_nxt + (wfield << self.rcv_wscale)
        if flags & ACK and edge > self.rcv_adv:
            self.rcv_adv = edge
        return TcpSegment(self.lport, self.rport, int(seq), int(self.rcv_nxt) if flags & ACK else 0,
                          flags, wfield, 0, options, payload)

    def _send(self, seg: TcpSegment, now: float) -> None:
        if seg.flags & ACK:
            self.ack_pending = 0
            if self.delack_at is not None:
                self.delack_at = None
        self.host.output(self, seg, now)

    def send_ack(self, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.

        After a timeout has rewound SND.NXT, a pure ACK carries SND.MAX (as BSD's
        tcp_output does): the peer has already received up to there, and an
        ACK below its RCV.NXT would be unacceptable to it, answered with an
        ACK that is unacceptable here: an endless ACK war.
        """
        self._send(self._make(ACK, self.snd_max), now)

    def _syn_options(self) -> tuple[TcpOption, ...]:
        opts: list[TcpOption] = [Mss(self.config.mss)]
        if self.config.window_scale and self.config.rcv_buf > _MAX_WIN:
            shift = 0
            while (self.config.rcv_buf >> shift) > _MAX_WIN and shift < 14:
                shift += 1
            opts += (Nop(), WindowScale(shift))  # NOP aligns it, as Linux sends it
        return tuple(opts)

    def _send_syn(self, now: float, with_ack: bool) -> None:
        flags = SYN | ACK if with_ack else SYN
        opts = self._syn_options()
        if with_ack and not self.rcv_wscale:
            # RFC 7323 2.2: a SYN-ACK carries Window Scale only if the SYN did
            # (rcv_wscale is set only when both sides offered it).
            opts = tuple(o for o in opts if not isinstance(o, (Nop, WindowScale)))
        self._send(self._make(flags, self.iss, b"", opts), now)

    def _apply_peer_syn_options(self, seg: TcpSegment, we_offered_wscale: bool) -> None:
        """MSS (RFC 9293 3.7.1) and window scale (RFC 7323 2.2) from the peer's SYN."""
        mss = seg.mss
        self.snd_mss = min(mss if mss is not None else self.config.default_mss, self.config.mss)
        if self.snd_mss < 64:
            self.snd_mss = 64
        ws = seg.wscale
        if ws is not None and we_offered_wscale:
            self.snd_wscale = min(ws, 14)
            self.rcv_wscale = self._our_wscale()
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
            if self.rcv_buf > _MAX_WIN:
                self.rcv_buf = _MAX_WIN

    def _our_wscale(self) -> int:
        for opt in self._syn_options():
            if isinstance(opt, WindowScale):
                return opt.shift
        return 0

    # ============================================================ app calls

    def open_active(self, now: float) -> None:
        """Active OPEN (RFC 9293 3.10.1): send SYN, enter SYN-SENT."""
        if self.state is not State.CLOSED:
            raise TcpError(_errno.EISCONN, "connection already exists")
        self.snd_una = self.iss
        self.snd_nxt = self.iss + 1
        self.snd_max = self.snd_nxt
        self.set_state(State.SYN_SENT, "active open", now)
        self._send_syn(now, with_ack=False)
        self.rtt_seq, self.rtt_time = self.iss, now
        self._arm_rtx(now)

    def open_passive(self, seg: TcpSegment, listener: Listener, now: float) -> None:
        """A SYN reached a listener (RFC 9293 3.10.7.2): SYN-RECEIVED, answer SYN-ACK."""
        self.passive = True
        self.listener = listener
        self.irs = Seq(seg.seq)
        self.rcv_nxt = self.irs + 1
        self.rcv_adv = self.rcv_nxt  # nothing advertised yet (the SYN-ACK will)
        self.snd_wnd = seg.window  # never scaled in a SYN
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = self.irs
        self._apply_peer_syn_options(seg, seg.wscale is not None)
        if seg.payload:
            # RFC 9293 3.10.7.2: queue it until ESTABLISHED; like any text, only
            # what fits in the window we offer.
            self.syn_data = seg.payload[:self.rcv_wnd]
        self.snd_una = self.iss
        self.snd_nxt = self.iss + 1
        self.snd_max = self.snd_nxt
        self.set_state(State.SYN_RECEIVED, "SYN received in LISTEN", now)
        self._send_syn(now, with_ack=True)
        self.rtt_seq, self.rtt_time = self.iss, now
        self._arm_rtx(now)
        if self.config.two_way_handshake:
            # Experiment switch: count the connection as open as soon as the
            # SYN-ACK is sent, as a two-way handshake would.  Nothing confirms
            # that the SYN was current, which is the point of the experiment.
            self._establish(now, "two-way handshake: SYN-ACK sent")

    def send(self, data: bytes, now: float) -> int:
        """SEND (RFC 9293 3.10.2): queue data; returns how many bytes were taken."""
        st = self.state
        if self.error is not None:
            raise TcpError(_errno.EPIPE, f"connection {self.error}")
        if self.wr_shut or self.fin_queued or st in (State.FIN_WAIT_1, State.FIN_WAIT_2,
                                                     State.CLOSING, State.LAST_ACK,
                                                     State.TIME_WAIT):
            raise TcpError(_errno.EPIPE, "connection closing")
        if st is State.CLOSED or st is State.LISTEN:
            raise TcpError(_errno.ENOTCONN, "connection does not exist")
        room = self.config.snd_buf - len(self.sndbuf)
        if room <= 0:
            return 0
        chunk = data[:room] if len(data) > room else data
        self.sndbuf += chunk
        if st is State.ESTABLISHED or st is State.CLOSE_WAIT:
            self.output(now)
        # SYN-SENT / SYN-RECEIVED: queued, sent after entering ESTABLISHED.
        return len(chunk)

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RECEIVE (RFC 9293 3.10.3): take up to ``max_bytes`` in-order bytes."""
        if not self.rcvbuf:
            return b""
        old_wnd = self.rcv_wnd
        data = bytes(self.rcvbuf[:max_bytes])
        del self.rcvbuf[:max_bytes]
        # Window update, with receiver-side SWS avoidance (RFC 9293 3.8.6.2.2):
        # the right edge moves only by at least min(RCV.BUFF/2, MSS); an ACK
        # announces it at once when it opens by two segments or half the
        # buffer (BSD's tcp_output rule), so a reader of small pieces does not
        # send an ACK per read.
        if self.state.synchronized and self.state is not State.TIME_WAIT:
            adv_now = self.rcv_adv - self.rcv_nxt if old_wnd else 0
            grow = self.rcv_wnd - max(adv_now, 0)
            if grow >= min(self.rcv_buf // 2, self.rcv_mss) and (
                    grow >= 2 * self.rcv_mss or 2 * grow >= self.rcv_buf):
                self.send_ack(now)
        return data

    @property
    def readable_bytes(self) -> int:
        return len(self.rcvbuf)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has been received and every byte before it read."""
        return self.peer_fin_seq is not None and self.rcv_nxt > self.peer_fin_seq \
            and not self.rcvbuf

    @property
    def send_space(self) -> int:
        return self.config.snd_buf - len(self.sndbuf)

    @property
    def unsent_or_unacked(self) -> int:
        return len(self.sndbuf)

    def shutdown(self, now: float) -> None:
        """Close the write side: queue a FIN after the pending data (half-close)."""
        self.wr_shut = True
        self._close_write(now, "application shutdown(SHUT_WR)")

    def close(self, now: float) -> None:
        """CLOSE (RFC 9293 3.10.4).

        Like Linux (and RFC 2525 2.17), closing with unread received data
        aborts the connection with a RST instead of a FIN, so the peer learns
        that data was lost.
        """
        self.app_closed = True
        self.rd_shut = True
        st = self.state
        if st is State.CLOSED:
            return
        if st is State.SYN_SENT:
            self._terminate(now, None, "close in SYN-SENT")
            return
        if self.rcvbuf and st.synchronized:
            self.abort(now, cause="close with unread data (RFC 2525)")
            return
        self._close_write(now, "application close")
        if self.state is State.FIN_WAIT_2 and self.config.fin_wait_2_timeout > 0:
            self._arm_fw2(now)

    def _close_write(self, now: float, cause: str) -> None:
        st = self.state
        if self.fin_queued:
            return
        if st is State.SYN_RECEIVED or st is State.ESTABLISHED:
            self.fin_queued = True
            if st is State.ESTABLISHED:
                self.set_state(State.FIN_WAIT_1, cause, now)
                self.output(now)
            # SYN-RECEIVED: the FIN goes after ESTABLISHED (RFC 9293 3.10.4).
        elif st is State.CLOSE_WAIT:
            self.fin_queued = True
            self.set_state(State.LAST_ACK, cause, now)
            self.output(now)
        elif st is State.SYN_SENT:
            self.fin_queued = True

    def abort(self, now: float, cause: str = "application abort") -> None:
        """ABORT (RFC 9293 3.10.5): send RST in synchronized states, then CLOSED."""
        st = self.state
        if st in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                  State.CLOSE_WAIT):
            self._send(TcpSegment(self.lport, self.rport, int(self.snd_nxt), 0, RST, 0), now)
        self._terminate(now, None, cause)

    def set_nodelay(self, on: bool) -> None:
        self.nodelay = on

    # ============================================================ output

    def output(self, now: float, force: bool = False) -> None:
        """Send what the windows, Nagle and the state allow (RFC 9293 3.8.6, RFC 5681).

        ``force``: the persist timer's override of sender SWS avoidance
        (RFC 9293 3.8.6.2.1 (4)): send what the window allows, however small.
        """
        st = self.state
        if st in (State.CLOSED, State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED,
                  State.TIME_WAIT):
            return
        mss = self.snd_mss
        sent_any = False
        while True:
            off = self.snd_nxt - self.sndbuf_seq
            if off < 0:
                off = 0
            avail = len(self.sndbuf) - off
            flight = self.snd_nxt - self.snd_una
            wnd = self.snd_wnd if self.snd_wnd < self.cwnd else self.cwnd
            usable = wnd - flight
            size = avail if avail < mss else mss
            if size > usable:
                size = usable if usable > 0 else 0
            fin_now = ((self.fin_queued and self.fin_seq is None) or
                       (self.fin_seq is not None and self.snd_nxt == self.fin_seq)) \
                and size == avail
            if size <= 0 and not fin_now:
                break
            if 0 < size < mss and not fin_now:
                # Nagle (RFC 9293 3.7.4): hold a small segment while data is
                # unacknowledged, unless NODELAY.  Also hold if the window
                # limits the segment but more data waits (sender SWS avoidance).
                if size < avail and size < self.max_snd_wnd // 2 and not force:
                    break
                if not self.nodelay and flight > 0 and size == avail:
                    break
            flags = ACK
            payload = bytes(self.sndbuf[off:off + size]) if size else b""
            if size and off + size == len(self.sndbuf):
                flags |= PSH
            if fin_now:
                flags |= FIN
                self.fin_seq = self.snd_nxt + size
            seg = self._make(flags, self.snd_nxt, payload)
            seq_end = self.snd_nxt + size + (1 if fin_now else 0)
            if self.rtt_seq is None and seq_end > self.snd_max:
                self.rtt_seq, self.rtt_time = self.snd_nxt, now
            self.snd_nxt = seq_end
            if seq_end > self.snd_max:
                self.snd_max = seq_end
            self._send(seg, now)
            sent_any = True
            if self.rtx_at is None:
                self._arm_rtx(now)
            if fin_now:
                break
        # Data waits and nothing is in flight, so no ACK will come to release
        # it: a zero window (probe it, RFC 9293 3.8.6.1) or a window too small
        # for sender SWS avoidance (the override timeout of 3.8.6.2.1).  The
        # persist timer covers both.
        if not sent_any and self.snd_nxt == self.snd_una \
                and len(self.sndbuf) > self.snd_nxt - self.sndbuf_seq \
                and self.persist_at is None and self.rtx_at is None:
            self.persist_at = now + self.rto
            self.host.schedule(self, self.persist_at)
            self._timer_trace(now, "persist", "armed", self.persist_at)

    def _retransmit_first(self, now: float) -> None:
        """Resend one segment from SND.UNA (fast retransmit, NewReno partial ACK)."""
        off = self.snd_una - self.sndbuf_seq
        if off < 0:
            off = 0
        size = min(len(self.sndbuf) - off, self.snd_mss)
        flags = ACK
        if size < 0:
            size = 0
        if self.fin_seq is not None and self.snd_una + size == self.fin_seq:
            flags |= FIN
        if size == 0 and not flags & FIN:
            return
        self.rtt_seq = None  # Karn's rule
        seg = self._make(flags, self.snd_una, bytes(self.sndbuf[off:off + size]))
        self._send(seg, now)

    # ============================================================ timers

    def on_timer(self, now: float) -> None:
        """Fire every timer whose deadline has passed."""
        if self.delack_at is not None and self.delack_at <= now:
            self.delack_at = None
            self._timer_trace(now, "delayed-ack", "fired", None)
            if self.state.synchronized:
                self.send_ack(now)
        if self.persist_at is not None and self.persist_at <= now:
            self.persist_at = None
            self._persist_fire(now)
        if self.rtx_at is not None and self.rtx_at <= now:
            self.rtx_at = None
            self._rtx_fire(now)
        if self.fw2_at is not None and self.fw2_at <= now:
            self.fw2_at = None
            self._timer_trace(now, "fin-wait-2", "fired", None)
            if self.state is State.FIN_WAIT_2:
                self._terminate(now, None, "FIN-WAIT-2 timeout (orphaned connection)")

    def _persist_fire(self, now: float) -> None:
        """Zero-window probe (RFC 9293 3.8.6.1): one octet beyond the window."""
        self._timer_trace(now, "persist", "fired", None)
        if self.snd_wnd > 0 or not self.sndbuf or not self.state.synchronized:
            self.output(now, force=True)
            return
        off = self.snd_nxt - self.sndbuf_seq
        if off >= len(self.sndbuf):
            return
        seg = self._make(ACK, self.snd_nxt, bytes(self.sndbuf[off:off + 1]))
        if self.snd_nxt + 1 > self.snd_max:
            self.snd_max = self.snd_nxt + 1
        self._send(seg, now)
        self.backoff += 1
        delay = min(self.rto * (1 << min(self.backoff, 16)), self.config.rto_max)
        self.persist_at = now + delay
        self.host.schedule(self, self.persist_at)
        self._timer_trace(now, "persist", "armed", self.persist_at)

    def _rtx_fire(self, now: float) -> None:
        """Retransmission timeout (RFC 6298 5.4-5.7)."""
        self._timer_trace(now, "retransmit", "fired", None)
        st = self.state
        limit = (self.config.syn_retries if st is State.SYN_SENT else
                 self.config.synack_retries if st is State.SYN_RECEIVED else
                 self.config.data_retries)
        if self.rtx_count >= limit:
            if st is State.SYN_RECEIVED and self.passive:
                self.host.drop_embryonic(self, now, "SYN-ACK retransmissions exhausted")
                return
            self._terminate(now, "timed out", f"retransmission limit ({limit}) reached")
            return
        self.rtx_count += 1
        self.rto = min(self.rto * 2, self.config.rto_max)  # back off the timer (5.5)
        self.rtt_seq = None  # Karn's rule: no RTT sample from a retransmission
        if st is State.SYN_SENT:
            self._send_syn(now, with_ack=False)
        elif st is State.SYN_RECEIVED or (self.passive and self.snd_una == self.iss):
            # (The second case: the two-way-handshake switch made us ESTABLISHED
            # before our SYN was acknowledged.)
            self._send_syn(now, with_ack=True)
        elif self.snd_una == self.snd_max and self.fin_seq is None:
            return  # nothing outstanding
        else:
            # RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS); cwnd = 1 SMSS;
            # go back to SND.UNA and resend from there.
            flight = self.snd_max - self.snd_una
            self.ssthresh = max(flight // 2, 2 * self.snd_mss)
            self.cwnd = self.snd_mss
            self.in_recovery = False
            self.dupacks = 0
            self.snd_nxt = self.snd_una
            self.recover = self.snd_max
            self.output(now)
            if self.rtx_at is not None:
                return
            if self.snd_una == self.snd_max:
                return
        self._arm_rtx(now)

    def _arm_fw2(self, now: float) -> None:
        self.fw2_at = now + self.config.fin_wait_2_timeout
        self.host.schedule(self, self.fw2_at)
        self._timer_trace(now, "fin-wait-2", "armed", self.fw2_at)

    # ============================================================ teardown

    def _terminate(self, now: float, error: str | None, cause: str) -> None:
        """Enter CLOSED, cancel timers, tell the application and the host."""
        if error is not None and self.error is None:
            self.error = error
        self.rtx_at = self.persist_at = self.delack_at = self.fw2_at = None
        self.set_state(State.CLOSED, cause, now)
        self.host.connection_closed(self, now)
        self._event(EV_CLOSED)

    def _handshake_rto(self) -> None:
        """RFC 6298 (5.7): the SYN (or SYN-ACK) was retransmitted and gave no RTT
        sample, so data transmission starts with an RTO of 3 s (Linux: TCP_TIMEOUT_FALLBACK)."""
        if self.srtt is None and self.rtx_count > 0 and self.config.rto_initial < 3.0:
            self.rto = min(max(3.0, self.config.rto_min), self.config.rto_max)

    def _establish(self, now: float, cause: str) -> None:
        self.set_state(State.ESTABLISHED, cause, now)
        self._handshake_rto()
        self.rtx_count = 0
        if self.syn_data:
            # Text that came on the SYN, queued until now (RFC 9293 3.10.7.2): it
            # is acknowledged like any other in-order data.
            self.ack_pending += len(self.syn_data)
            self._accept_in_order(self.syn_data)
            self.syn_data = b""
            if self.config.delayed_ack > 0:
                self._arm_delack(now)
        if self.passive:
            self.host.established_passive(self, now)
        self._event(EV_CONNECTED)

    # ============================================================ input

    def on_segment(self, seg: TcpSegment, now: float) -> None:
        """Process one arriving segment (RFC 9293 3.10.7)."""
        st = self.state
        if st is State.SYN_SENT:
            self._syn_sent(seg, now)
            return
        if st is State.CLOSED or st is State.LISTEN or st is State.TIME_WAIT:
            self.host.drop(seg, self, now, f"no processing in {st.value}")
            return
        flags = seg.flags
        seq = Seq(seg.seq)
        # A duplicate of the SYN that opened this half-open connection: Linux
        # answers it with the SYN-ACK again (RFC 9293 would send a bare ACK).
        if st is State.SYN_RECEIVED and flags & SYN and not flags & (ACK | RST) \
                and seq == self.irs:
            self._send_syn(now, with_ack=True)
            self.host.drop(seg, self, now, "duplicate SYN: SYN-ACK sent again")
            return
        # Simultaneous open (RFC 9293 Figure 8, line 6): the peer's SYN-ACK
        # repeats the SYN we already have (SEG.SEQ = IRS), so the first check
        # would call it a duplicate and the open would hang on challenge ACKs.
        # Like Linux (tcp_validate_incoming), take it when it acknowledges
        # exactly our SYN.
        if st is State.SYN_RECEIVED and not self.passive and flags & SYN and flags & ACK \
                and not flags & RST and seq == self.irs and Seq(seg.ack) == self.snd_max:
            self.host.drop(seg, self, now, "SYN-ACK in SYN-RECEIVED (simultaneous open)",
                           accepted=True)
            self.snd_wnd = seg.window  # a SYN's window is never scaled (RFC 7323 2.2)
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1, self.snd_wl2 = seq, Seq(seg.ack)
            self._ack_advance(Seq(seg.ack), now)
            self._establish(now, "SYN-ACK received in SYN-RECEIVED (simultaneous open)")
            if self.fin_queued:
                self.set_state(State.FIN_WAIT_1, "queued close", now)
            self.output(now)
            return
        # ---- first: check the sequence number (RFC 9293 3.10.7.4, table of 4 cases)
        if not self._acceptable(seq, seg):
            if flags & RST:
                self.host.drop(seg, self, now, "RST outside window")
                return
            if flags & SYN and self.config.rfc5961:
                self._challenge_ack(seg, now, "SYN outside window (RFC 5961 4.2)")
                return
            self._oow_ack(seg, now, "outside window")
            return
        # ---- second: the RST bit
        if flags & RST:
            self._second_rst(seg, seq, now)
            return
        # ---- fourth: the SYN bit (third, security, is not implemented)
        if flags & SYN:
            self._fourth_syn(seg, seq, now)
            return
        # ---- fifth: the ACK field
        if not flags & ACK:
            self.host.drop(seg, self, now, "no ACK bit")
            return
        if not self._fifth_ack(seg, now):
            return
        # ---- sixth (URG) is not implemented; seventh: the segment text
        st = self.state
        if seg.payload and st in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            self._seventh_text(seg, seq, now)
        elif seg.payload and st in (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK):
            # The peer already sent its FIN: data beyond it is ignored.
            pass
        # ---- eighth: the FIN bit
        if flags & FIN:
            fseq = seq + len(seg.payload)
            if self.peer_fin_seq is None or fseq == self.peer_fin_seq:
                self.peer_fin_seq = fseq
        if self.peer_fin_seq is not None and self.rcv_nxt == self.peer_fin_seq:
            self._eighth_fin(now)
        elif self.ack_pending and self.delack_at is None and self.state.synchronized:
            self.send_ack(now)
        self.output(now)

    def _acceptable(self, seq: Seq, seg: TcpSegment) -> bool:
        """The four cases of RFC 9293 3.10.7.4 'first, check sequence number'."""
        seg_len = seg.seg_len
        wnd = self.rcv_wnd
        if self.rcv_adv - self.rcv_nxt > wnd:
            wnd = self.rcv_adv - self.rcv_nxt  # what we advertised stays valid
        nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return ((seq - nxt) & 0xFFFFFFFF) < wnd
        if wnd == 0:
            # "special allowance" for ACKs, RSTs (and FINs at RCV.NXT): the
            # segment is accepted so that its control bits and ACK are
            # processed; its text is trimmed off in the seventh step.
            return seq == nxt
        return ((seq - nxt) & 0xFFFFFFFF) < wnd or \
            ((seq + seg_len - 1 - nxt) & 0xFFFFFFFF) < wnd

    def _oow_ack(self, seg: TcpSegment, now: float, reason: str) -> None:
        """Answer an unacceptable segment with an ACK (RFC 9293 3.10.7.4).

        Like Linux (tcp_oow_rate_limited, net.ipv4.tcp_invalid_ratelimit), the
        answer to a segment without data or SYN/FIN is rate-limited per
        connection: two ends whose sequence numbers disagree would otherwise
        answer each other's ACKs forever (an ACK war).  Segments that carry
        data or FIN are always answered, so a lost ACK is always repaired.
        """
        limit = self.config.oow_ack_interval
        if seg.seg_len == 0 and limit > 0 and self.last_oow_ack is not None \
                and now - self.last_oow_ack < limit:
            self.host.drop(seg, self, now, f"{reason}: ACK rate-limited")
            return
        if seg.seg_len == 0:
            self.last_oow_ack = now
        self.send_ack(now)
        self.host.drop(seg, self, now, reason)

    def _challenge_ack(self, seg: TcpSegment, now: float, reason: str) -> None:
        """RFC 5961 3.2/4.2/5.2: answer with an ACK, rate-limited per host."""
        if self.host.challenge_ack_allowed(now):
            self.send_ack(now)
            self.host.drop(seg, self, now, f"{reason}: challenge ACK")
        else:
            self.host.drop(seg, self, now, f"{reason}: challenge ACK rate-limited")

    def _second_rst(self, seg: TcpSegment, seq: Seq, now: float) -> None:
        st = self.state
        if self.config.rfc5961 and seq != self.rcv_nxt:
            # RFC 5961 3.2: in window but not exactly RCV.NXT.
            self._challenge_ack(seg, now, "RST in window, not at RCV.NXT (RFC 5961 3.2)")
            return
        self.host.drop(seg, self, now, "RST accepted", accepted=True)
        if st is State.SYN_RECEIVED and self.passive:
            # RFC 9293: return to LISTEN (the listener forgets the half-open entry).
            self.host.drop_embryonic(self, now, "RST in SYN-RECEIVED: back to LISTEN")
        elif st is State.SYN_RECEIVED:
            self._terminate(now, "refused", "RST in SYN-RECEIVED (active open)")
        else:
            self._terminate(now, "reset", f"RST in {st.value}")

    def _fourth_syn(self, seg: TcpSegment, seq: Seq, now: float) -> None:
        st = self.state
        if st is State.SYN_RECEIVED and self.passive:
            # RFC 9293 3.10.7.4 fourth: back to LISTEN.
            self.host.drop_embryonic(self, now, "SYN in window in SYN-RECEIVED: back to LISTEN")
            return
        if self.config.rfc5961:
            self._challenge_ack(seg, now, f"SYN in {st.value} (RFC 5961 4.2)")
            return
        # RFC 793: a SYN in the window is an error: reset the connection.
        self._send(TcpSegment(self.lport, self.rport, int(self.snd_nxt), 0, RST, 0), now)
        self.host.drop(seg, self, now, "SYN in window (RFC 793): connection reset")
        self._terminate(now, "reset", "SYN in window (RFC 793)")

    def _fifth_ack(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth step, with RFC 5961 5.2.  False: stop processing."""
        ack = Seq(seg.ack)
        st = self.state
        if st is State.SYN_RECEIVED:
            lst = self.listener
            if self.passive and lst is not None and not lst.closed \
                    and len(lst.accept_queue) >= lst.backlog:
                # The accept queue is full: like Linux (tcp_abort_on_overflow
                # off), drop the ACK and stay half-open; the SYN-ACK's
                # retransmission invites the peer to ACK again later.
                self.host.drop(seg, self, now, "accept queue full: ACK dropped")
                return False
            if self.snd_una < ack <= self.snd_max:
                self.snd_wnd = seg.window << self.snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1 = Seq(seg.seq)
                self.snd_wl2 = ack
                self._ack_advance(ack, now)
                self._establish(now, "ACK of SYN-ACK")
                if self.fin_queued:
                    self.set_state(State.FIN_WAIT_1, "queued close", now)
            else:
                self._send(TcpSegment(self.lport, self.rport, int(ack), 0, RST, 0), now)
                self.host.drop(seg, self, now, "unacceptable ACK in SYN-RECEIVED")
                return False
            return True
        # RFC 5961 5.2: (SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT, else drop and ACK.
        if ack > self.snd_max:
            self._oow_ack(seg, now, "ACK of data not yet sent")
            return False
        if self.config.rfc5961 and ack < self.snd_una - max(self.max_snd_wnd, 1):
            self._challenge_ack(seg, now, "ACK too old (RFC 5961 5.2)")
            return False
        if ack > self.snd_una:
            self._ack_advance(ack, now)
        elif ack == self.snd_una and not seg.payload and not seg.flags & FIN \
                and (seg.window << self.snd_wscale) == self.snd_wnd != 0 \
                and self.snd_max != self.snd_una:
            # A duplicate ACK (RFC 5681 2).  The answer to a zero-window probe
            # is not one: the probe octet was outside the window, nothing is lost.
            self._dupack(now)
        # Window update (RFC 9293 3.10.7.4): only from a newer segment.
        seq = Seq(seg.seq)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            new_wnd = seg.window << self.snd_wscale
            if new_wnd and not self.snd_wnd and self.persist_at is not None:
                self.persist_at = None
                self._timer_trace(now, "persist", "cancelled", None)
                self.backoff = 0
            self.snd_wnd = new_wnd
            if new_wnd > self.max_snd_wnd:
                self.max_snd_wnd = new_wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        st = self.state
        fin_acked = self.fin_seq is not None and self.snd_una > self.fin_seq
        if st is State.FIN_WAIT_1 and fin_acked:
            self.set_state(State.FIN_WAIT_2, "our FIN acknowledged", now)
            if self.app_closed and self.config.fin_wait_2_timeout > 0:
                self._arm_fw2(now)
        elif st is State.CLOSING and fin_acked:
            self.host.enter_time_wait(self, now, "our FIN acknowledged in CLOSING")
            return False
        elif st is State.LAST_ACK and fin_acked:
            self._terminate(now, None, "our FIN acknowledged in LAST-ACK")
            return False
        return True

    def _ack_advance(self, ack: Seq, now: float) -> None:
        """New data acknowledged: free the buffer, sample RTT, grow cwnd."""
        acked = ack - self.snd_una
        # RTT sample (RFC 6298 (2.2)/(2.3)), only from a segment never retransmitted.
        if self.rtt_seq is not None and ack > self.rtt_seq:
            self._rtt_sample(now - self.rtt_time)
            self.rtt_seq = None
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        n = ack - self.sndbuf_seq
        if n > 0:
            k = min(n, len(self.sndbuf))
            del self.sndbuf[:k]
            self.sndbuf_seq = self.sndbuf_seq + k
        self.rtx_count = 0
        self.backoff = 0
        # Congestion control (RFC 5681 3.1) and NewReno recovery (RFC 6582).
        mss = self.snd_mss
        if self.in_recovery:
            if ack >= self.recover:
                self.in_recovery = False
                self.cwnd = self.ssthresh
            else:
                self._retransmit_first(now)  # partial ACK: next hole
                self.cwnd = max(self.cwnd - acked + mss, mss)
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, mss)
        else:
            self.cwnd += max(mss * mss // self.cwnd, 1)
        self.dupacks = 0
        # RFC 6298 (5.2)/(5.3): stop or restart the timer.
        if self.snd_una == self.snd_max:
            self._cancel_rtx(now)
        else:
            self.rtx_at = now + self.rto
            self.host.schedule(self, self.rtx_at)
        if self.send_space > 0:
            self._event(EV_WRITABLE)

    def _dupack(self, now: float) -> None:
        """RFC 5681 3.2: on the third duplicate ACK, fast retransmit."""
        self.dupacks += 1
        mss = self.snd_mss
        if self.in_recovery:
            self.cwnd += mss
        elif self.dupacks == 3:
            flight = self.snd_max - self.snd_una
            self.ssthresh = max(flight // 2, 2 * mss)
            self.recover = self.snd_max
            self.in_recovery = True
            self._retransmit_first(now)
            self.cwnd = self.ssthresh + 3 * mss

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 section 2."""
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        rto = self.srtt + max(0.001, 4 * self.rttvar)
        self.rto = min(max(rto, self.config.rto_min), self.config.rto_max)

    def _seventh_text(self, seg: TcpSegment, seq: Seq, now: float) -> None:
        """Accept data: trim to the window, reassemble, decide how to ACK."""
        payload = seg.payload
        if seg.flags & SYN:
            seq = seq + 1
        # Trim what we already have (overlap at the left edge).
        skip = self.rcv_nxt - seq
        if skip > 0:
            if skip >= len(payload):
                self.send_ack(now)  # a pure duplicate: ACK at once
                return
            payload = payload[skip:]
            seq = self.rcv_nxt
        # Trim to the right edge of the window.
        room = self.rcv_wnd - (seq - self.rcv_nxt)
        if room <= 0:
            self.send_ack(now)
            return
        if len(payload) > room:
            payload = payload[:room]
            if self.peer_fin_seq is None and seg.flags & FIN:
                pass  # the FIN lies beyond the window: ignored
        if seq == self.rcv_nxt:
            filled_gap = bool(self.ooo)
            self._accept_in_order(payload)
            self._pull_ooo()
            self.ack_pending += len(payload)
            if filled_gap or self.ooo or self.config.delayed_ack <= 0 \
                    or self.ack_pending >= 2 * self.rcv_mss or seg.flags & FIN:
                self.send_ack(now)
            else:
                self._arm_delack(now)
        else:
            self._insert_ooo(seq, payload)
            self.send_ack(now)  # out of order: a duplicate ACK at once (RFC 5681 4.2)

    def _accept_in_order(self, data: bytes) -> None:
        if self.rd_shut:
            # Data after close(): Linux answers with RST; we discard and ACK.
            self.rcv_nxt = self.rcv_nxt + len(data)
            return
        self.rcvbuf += data
        self.rcv_nxt = self.rcv_nxt + len(data)
        self._event(EV_DATA)

    def _insert_ooo(self, seq: Seq, data: bytes) -> None:
        """Keep an out-of-order piece, trimming overlaps with what is held.

        Pieces stay sorted by their distance from RCV.NXT.  The common case,
        a piece beyond everything held (segments arriving in order after a
        hole), is an append; otherwise one pass merges overlaps, the bytes
        already held winning.
        """
        ooo = self.ooo
        base = int(self.rcv_nxt)
        off = (int(seq) - base) & 0xFFFFFFFF
        if not ooo:
            ooo.append((seq, data))
            return
        last_s, last_d = ooo[-1]
        if off >= ((int(last_s) - base) & 0xFFFFFFFF) + len(last_d):
            ooo.append((seq, data))
            return
        end = off + len(data)
        out: list[tuple[Seq, bytes]] = []
        placed = False
        for s, d in ooo:
            o = (int(s) - base) & 0xFFFFFFFF
            e = o + len(d)
            if e <= off:
                out.append((s, d))
                continue
            if o >= end:
                if not placed:
                    out.append((Seq(base + off), data))
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
            out.append((Seq(base + off), data))
        self.ooo = out

    def _pull_ooo(self) -> None:
        while self.ooo:
            s, d = self.ooo[0]
            if s > self.rcv_nxt:
                return
            self.ooo.pop(0)
            skip = self.rcv_nxt - s
            if skip < len(d):
                self._accept_in_order(d[skip:])

    def _eighth_fin(self, now: float) -> None:
        """The peer's FIN, now in order (RFC 9293 3.10.7.4 eighth)."""
        self.rcv_nxt = self.rcv_nxt + 1
        self.ooo = []
        st = self.state
        self._event(EV_EOF)
        if st is State.SYN_RECEIVED or st is State.ESTABLISHED:
            self.set_state(State.CLOSE_WAIT, "FIN received", now)
            # Like Linux, the ACK of a FIN is delayed: if the application
            # closes at once, the ACK rides on our FIN (three-segment close).
            if self.config.delayed_ack > 0:
                self.ack_pending += 1
                self._arm_delack(now)
            else:
                self.send_ack(now)
        elif st is State.FIN_WAIT_1:
            if self.fin_seq is not None and self.snd_una > self.fin_seq:
                self.send_ack(now)
                self.host.enter_time_wait(self, now, "FIN received in FIN-WAIT-1, FIN acked")
            else:
                self.send_ack(now)
                self.set_state(State.CLOSING, "FIN received (simultaneous close)", now)
        elif st is State.FIN_WAIT_2:
            self.send_ack(now)
            self.host.enter_time_wait(self, now, "FIN received in FIN-WAIT-2")
        else:
            self.send_ack(now)

    # ------------------------------------------------------------ SYN-SENT

    def _syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3."""
        flags = seg.flags
        ack = Seq(seg.ack)
        ack_ok = False
        # first: the ACK bit
        if flags & ACK:
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    # An old duplicate SYN-ACK (RFC 9293 Figure 8): reset it.
                    self._send(TcpSegment(self.lport, self.rport, int(ack), 0, RST, 0), now)
                self.host.drop(seg, self, now, "unacceptable ACK in SYN-SENT")
                return
            ack_ok = self.snd_una <= ack <= self.snd_max
        # second: the RST bit
        if flags & RST:
            if ack_ok:
                self.host.drop(seg, self, now, "RST accepted", accepted=True)
                self._terminate(now, "refused", "RST in SYN-SENT")
            else:
                self.host.drop(seg, self, now, "RST without acceptable ACK in SYN-SENT")
            return
        # fourth: the SYN bit
        if not flags & SYN:
            self.host.drop(seg, self, now, "neither SYN nor RST in SYN-SENT")
            return
        if flags & FIN and self.config.drop_synfin:
            self.host.drop(seg, self, now, "SYN+FIN dropped (drop_synfin)")
            return
        self.irs = Seq(seg.seq)
        self.rcv_nxt = self.irs + 1
        self.rcv_adv = self.rcv_nxt  # nothing advertised yet
        offered_ws = any(isinstance(o, WindowScale) for o in self._syn_options())
        self._apply_peer_syn_options(seg, offered_ws)
        if flags & ACK:
            self.snd_una = ack
            if self.rtt_seq is not None:
                self._rtt_sample(now - self.rtt_time)
                self.rtt_seq = None
        if self.snd_una > self.iss:
            self.snd_wnd = seg.window  # a SYN's window is never scaled (RFC 7323 2.2)
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.irs
            self.snd_wl2 = ack
            self._cancel_rtx(now)
            self._handshake_rto()
            self.rtx_count = 0
            self.set_state(State.ESTABLISHED, "SYN-ACK received", now)
            if seg.payload:
                # Text on the SYN-ACK goes through the seventh step: trimmed to the window.
                self._accept_in_order(seg.payload[:self.rcv_wnd])
            self._event(EV_CONNECTED)
            if self.fin_queued:
                self.set_state(State.FIN_WAIT_1, "queued close", now)
            # The third segment: it carries queued data if the application
            # already sent some (RFC 9293 3.10.7.3 allows this).
            before = self.snd_nxt
            self.output(now)
            if self.snd_nxt == before:
                self.send_ack(now)
            if flags & FIN:
                self.peer_fin_seq = self.irs + 1 + len(seg.payload)
                if self.rcv_nxt == self.peer_fin_seq:
                    self._eighth_fin(now)
        else:
            # Simultaneous open: SYN-SENT -> SYN-RECEIVED, send SYN,ACK.
            self.snd_wnd = seg.window
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.irs
            if seg.payload:
                self.syn_data = seg.payload[:self.rcv_wnd]
            self.set_state(State.SYN_RECEIVED, "SYN received in SYN-SENT (simultaneous open)",
                           now)
            self._send_syn(now, with_ack=True)
