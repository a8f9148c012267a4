"""One TCP connection: the transmission control block and RFC 9293's state machine.

Theory of operation
-------------------
A :class:`Connection` is driven from outside and never does I/O.  It holds
no Host: its inputs are calls, and its outputs are queued in the host's
:class:`~tcplab.engine.context.EngineContext` (smoltcp's socket and
aioquic's connection work the same way):

* inputs: ``on_segment(seg, now)`` for every checked segment of this
  connection's 4-tuple; ``on_timer(now)`` when :meth:`next_deadline` has
  passed; the user calls of RFC 9293 3.10 (``open_active``, ``send``,
  ``recv``, ``close``, ``shutdown``, ``abort``), each with ``now``;
* outputs: segments to send (``cx.emit``, traced with this TCB), drops with
  their reasons (``cx.record``), state changes (:meth:`set_state`, the one
  place that changes ``state``), timer deadlines (``cx.wake``), requests for
  the host (enter TIME-WAIT, back to LISTEN, ready for the accept queue,
  closed), and application events, read with :meth:`next_event`.

Segment processing follows RFC 9293 section 3.10.7 step by step: SYN-SENT
(3.10.7.3) has its own method; every other state goes through
``_acceptable`` (first), ``_second_rst``, ``_fourth_syn``, ``_fifth_ack``,
``_seventh_text`` and ``_eighth_fin`` in the RFC's order, with RFC 5961
applied to RST, SYN and ACK values.  TIME-WAIT is not handled here: the host
turns a connection that enters TIME-WAIT into a compact entry
(:mod:`tcplab.engine.timewait`), as Linux does with its timewait sockets.

The algorithms live in their own modules: RTT estimation and the RTO
(:mod:`~tcplab.engine.rtt`, RFC 6298), congestion control
(:mod:`~tcplab.engine.congestion`, RFC 5681/6582), out-of-order data
(:mod:`~tcplab.engine.reassembly`) and SYN options
(:mod:`~tcplab.engine.options`, RFC 7323 window scaling).  Sequence numbers
are plain integers compared with :mod:`tcplab.wire.seq`.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Container
from typing import Final, Protocol

from tcplab.engine.acks import AckState
from tcplab.engine.config import TcpConfig
from tcplab.engine.congestion import CA_LOSS, CA_OPEN, CA_RECOVERY, LinuxReno, NewReno
from tcplab.engine.context import (
    REQ_CLOSED,
    REQ_ESTABLISHED,
    REQ_LISTEN,
    REQ_TIME_WAIT,
    EngineContext,
)
from tcplab.engine.errors import TcpError
from tcplab.engine.fastopen import Attempt, peer_cookie, syn_data_space
from tcplab.engine.options import MAX_WINDOW, MIN_MSS, negotiate, our_wscale, syn_options
from tcplab.engine.reassembly import Reassembly
from tcplab.engine.recvbuffer import ReceiveBuffer
from tcplab.engine.retries import model_timeout, orphan_retries
from tcplab.engine.rtt import RttEstimator
from tcplab.engine.sack import DUPTHRESH, SackBlocks, Scoreboard, Sent, max_blocks
from tcplab.engine.sendbuffer import SendBuffer
from tcplab.engine.state import State
from tcplab.engine.timestamps import Timestamps, ts_between
from tcplab.trace import Tcb, TimerAction, TimerName, state_event, timer_event
from tcplab.wire.seq import (
    MASK,
    seq_add,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    seq_sub,
)
from tcplab.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    FastOpen,
    Nop,
    Sack,
    TcpOption,
    TcpSegment,
)
from tcplab.wire.tcp import Timestamps as TsOption

TS_OPTION_LEN = 12  #: NOP, NOP, kind 8 length 10: what timestamps take from every segment

Key = tuple[str, int, str, int]

# Application events, read with Connection.next_event().  Final: mypyc compiles
# these as constants, not as lookups in the module's globals.
EV_CONNECTED: Final = "connected"
EV_DATA: Final = "data"
EV_EOF: Final = "eof"
EV_WRITABLE: Final = "writable"
EV_CLOSED: Final = "closed"

# What the retransmission timer is armed for (Linux icsk_pending: ICSK_TIME_RETRANS,
# ICSK_TIME_REO_TIMEOUT); one timer, as on Linux.
RTX_RTO: Final = 0
RTX_REO: Final = 1
RTX_TLP: Final = 2
TIMEOUT_MIN: Final = 0.002  #: Linux TCP_TIMEOUT_MIN: 2 ticks (at 1000 Hz) added to RACK's timer
_NOP = Nop()
#: The scoreboard every connection without a Linux sender shares: only ever read (empty).
_NO_SCORE: Final = Scoreboard()


def _tsecr(seg: TcpSegment) -> int:
    tso = seg.timestamps
    return tso.tsecr if tso is not None else 0

#: Linux's numbering of the states (include/net/tcp_states.h), for TCP_INFO.
_LINUX_STATE = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11,
}


class ListenerView(Protocol):
    """What a passive connection needs to know of the listener it came from."""

    @property
    def closed(self) -> bool: ...

    def accept_queue_full(self) -> bool: ...


class PortHolder(Protocol):
    """The local address and port a connection holds (an engine ``Binding``)."""

    @property
    def reuse(self) -> bool: ...


class Connection:
    """The TCB of RFC 9293 3.3.1, with RFC names for its variables."""

    __slots__ = (
        "ack_pending",
        "acks",
        "app_closed",
        "backoff",
        "binding",
        "cc",
        "config",
        "cork",
        "cwnd_limited",
        "cwnd_usage_seq",
        "cx",
        "delack_at",
        "delivered",
        "dupacks",
        "ecn_ok",
        "eor_marks",
        "error",
        "events",
        "fin_queued",
        "fin_seq",
        "fo_attempt",
        "fo_exp",
        "fo_syn",
        "fw2_at",
        "in_table",
        "irs",
        "iss",
        "keepalive",
        "keepalive_at",
        "keepalive_probes_out",
        "keepcnt",
        "keepidle",
        "keepintvl",
        "key",
        "laddr",
        "last_ack_sent",
        "last_oow_ack",
        "last_rcv",
        "lcc",
        "listener",
        "lport",
        "max_packets_out",
        "max_snd_wnd",
        "name",
        "nodelay",
        "ooo",
        "passive",
        "peer_fin_seq",
        "persist_at",
        "pmtu_mss",
        "probes_stamp",
        "queued_ready",
        "raddr",
        "rcv_adv",
        "rcv_buf",
        "rcv_mss",
        "rcv_nxt",
        "rcv_ssthresh",
        "rcv_wscale",
        "rcvbuf",
        "rd_shut",
        "retrans_stamp",
        "reuseaddr",
        "rport",
        "rtt",
        "rtx_at",
        "rtx_count",
        "rtx_kind",
        "sack_ok",
        "sacks",
        "score",
        "snd_max",
        "snd_mss",
        "snd_nxt",
        "snd_sml",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "sndbuf",
        "sndbuf_seq",
        "sndbuf_size",
        "soft_error",
        "state",
        "syn_data",
        "syn_data_acked",
        "syn_data_len",
        "syn_retries",
        "syn_tsval",
        "tfo_child",
        "time_wait_entries",
        "tlp_high",
        "trace",
        "ts",
        "user_mss",
        "user_timeout",
        "wake_at",
        "want_events",
        "wr_shut",
    )

    def __init__(self, cx: EngineContext, laddr: str, lport: int, raddr: str, rport: int,
                 iss: int, ts_offset: int = 0) -> None:
        config = cx.config
        self.cx = cx
        self.trace = cx.trace
        self.config: TcpConfig = config
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.key: Key = (laddr, lport, raddr, rport)
        self.in_table = False  #: in its host's connection table (the host sets this)
        self.name = f"{laddr}:{lport}-{raddr}:{rport}"
        self.state = State.CLOSED
        self.passive = False
        self.listener: ListenerView | None = None
        self.binding: PortHolder | None = None
        self.error: str | None = None
        self.soft_error: str | None = None  # an ICMP error seen while open (sk_err_soft)
        self.reuseaddr = False
        self.nodelay = not config.nagle
        # Send sequence variables (RFC 9293 3.3.1).  SND.MAX is BSD's: the
        # highest sequence number sent, kept when a timeout rewinds SND.NXT.
        iss &= MASK
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.snd_wscale = 0
        self.snd_mss = config.default_mss
        # Receive sequence variables.
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_buf = config.rcv_buf     # SO_RCVBUF: the largest window we offer
        self.sndbuf_size: int | None = None  # SO_SNDBUF; None: the host's configuration
        # Linux's window offer starts at 64 KB and grows (rcv_ssthresh); None: the RFC's.
        self.rcv_ssthresh: int | None = MAX_WINDOW if config.linux_window else None
        self.rcv_wscale = 0
        self.rcv_adv = 0  # right edge last advertised: never moved left
        self.rcv_mss = config.mss
        # Buffers: sndbuf holds bytes from sndbuf_seq (unacked, then unsent).
        self.sndbuf = SendBuffer()
        self.sndbuf_seq = seq_add(iss, 1)
        self.rcvbuf = ReceiveBuffer()
        self.ooo = Reassembly()
        # SACK (RFC 2018): the blocks we report, and what the peer reports to us.
        self.sack_ok = False
        self.ecn_ok = False   # both SYNs set up ECN (RFC 3168 6.1.1); no marks are sent yet
        # Made when SACK is agreed (the blocks) and for a Linux sender (the scoreboard):
        # a connection without them keeps none (main's memory goal: an idle connection
        # end under 2 KiB).  The rfc sender only ever reads the shared empty scoreboard.
        self.sacks: SackBlocks | None = None
        self.score = Scoreboard() if config.linux_sender else _NO_SCORE
        self.user_mss: int | None = None  # TCP_MAXSEG (Linux user_mss), None: the host's MSS
        self.pmtu_mss: int | None = None  # what path MTU discovery allows (RFC 1191)
        self.syn_data = b""
        self.peer_fin_seq: int | None = None
        self.fin_queued = False
        self.fin_seq: int | None = None
        self.wr_shut = False
        self.rd_shut = False
        self.app_closed = False
        # Retransmission (RFC 6298) and congestion control (RFC 5681).
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max,
                                linux=config.linux_rto)
        self.cc = NewReno(config.initial_window(config.mss), iss, config.abc_limit)
        # Linux's sender (config.linux_sender): the window in packets, RACK and PRR.
        self.lcc: LinuxReno | None = LinuxReno(config.initial_cwnd_segments) \
            if config.linux_sender else None
        self.delivered = 0          # segments the peer has (tcpi_delivered), the SYN included
        self.dupacks = 0            # duplicate ACKs in a row (Linux sender without SACK)
        self.cwnd_limited = False   # Linux tcp_cwnd_validate: the window was the limit
        self.snd_sml: int | None = None  # end of the last small segment sent (Minshall)
        self.cwnd_usage_seq = iss
        self.max_packets_out = 0
        self.eor_marks: list[int] | None = None  # MSG_EOR: where records end (made on use)
        self.syn_retries: int | None = None   # TCP_SYNCNT
        self.cork = False                     # TCP_CORK, or MSG_MORE for one write
        # Fast Open (RFC 7413).  Client: the attempt a deferred connect() holds (its
        # SYN waits for data), whether our SYN carried the option (and in which
        # format) and how much data it carried.  Server: a child made from a SYN
        # with a valid cookie.  Both: the data in the SYN was acknowledged.
        self.fo_attempt: Attempt | None = None
        self.fo_syn = False
        self.fo_exp = False
        self.syn_data_len = 0
        self.tfo_child = False
        self.syn_data_acked = False
        self.syn_tsval: int | None = None   # TSval of our first SYN
        self.tlp_high: int | None = None    # SND.NXT when a loss probe went out (RFC 8985)
        self.probes_stamp: float | None = None  # when probing a stuck queue began (Linux)
        self.backoff = 0
        self.rtx_count = 0
        self.retrans_stamp: float | None = None  # first send of what is being retransmitted
        self.user_timeout = config.user_timeout  # TCP_USER_TIMEOUT, seconds (0: none)
        # Acknowledgments (RFC 9293 3.8.6.3; Linux's quick-ACK mode) and timestamps (RFC 7323).
        self.acks = AckState(config.quickack)
        self.ts = Timestamps(ts_offset)
        self.last_ack_sent = 0
        # Keep-alive (RFC 9293 3.8.4, RFC 1122 4.2.3.6): SO_KEEPALIVE and its three knobs.
        self.keepalive = False
        self.keepidle = config.keepalive_time
        self.keepintvl = config.keepalive_intvl
        self.keepcnt = config.keepalive_probes
        self.keepalive_at: float | None = None
        self.keepalive_probes_out = 0
        self.last_rcv = 0.0
        # Timers: absolute deadlines or None.
        self.rtx_at: float | None = None
        self.rtx_kind = RTX_RTO  # Linux shares this timer: RTO, RACK reordering, loss probe
        self.persist_at: float | None = None
        self.delack_at: float | None = None
        self.fw2_at: float | None = None
        self.wake_at: float | None = None  # earliest deadline the host's timer heap holds
        self.ack_pending = 0
        self.last_oow_ack: float | None = None
        # Application events (queued only when someone reads them).
        self.want_events = False
        # at most one of each kind: a short list (a deque costs 600 bytes per connection)
        self.events: list[str] = []
        self.queued_ready = False
        # Set by the host when the connection becomes a compact TIME-WAIT entry.
        self.time_wait_entries: Container[Key] | None = None

    # ================================================================ helpers

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"

    @property
    def snd_buf(self) -> int:
        """The send buffer (SO_SNDBUF, else the host's ``snd_buf``)."""
        size = self.sndbuf_size
        return self.config.snd_buf if size is None else size

    @snd_buf.setter
    def snd_buf(self, size: int) -> None:
        self.sndbuf_size = size

    @property
    def rcv_wnd(self) -> int:
        """RCV.WND: free receive buffer space (a Linux receiver: at most rcv_ssthresh)."""
        free = self.rcv_buf - len(self.rcvbuf)
        if free <= 0:
            return 0
        th = self.rcv_ssthresh
        return free if th is None or free < th else th

    def _grow_window(self) -> None:
        """Linux tcp_grow_window: each data segment lets the offered window grow by
        two segments, up to the buffer."""
        th = self.rcv_ssthresh
        if th is not None and th < self.rcv_buf:
            self.rcv_ssthresh = min(th + 2 * self.rcv_mss, self.rcv_buf)

    @property
    def cwnd(self) -> int:
        """The congestion window in octets (a Linux sender counts packets of SND.MSS)."""
        lcc = self.lcc
        if lcc is not None:
            return lcc.cwnd * self.snd_mss
        return self.cc.cwnd

    @property
    def ssthresh(self) -> int:
        lcc = self.lcc
        if lcc is not None:
            return lcc.ssthresh * self.snd_mss if lcc.ssthresh < lcc.INFINITE else 1 << 30
        return self.cc.ssthresh

    @property
    def rto(self) -> float:
        return self.rtt.rto

    @property
    def srtt(self) -> float | None:
        return self.rtt.srtt

    def tcb(self) -> Tcb:
        """A snapshot of the TCB variables, for traces and reports."""
        return {
            "state": self.state.value, "snd_una": self.snd_una, "snd_nxt": self.snd_nxt,
            "snd_wnd": self.snd_wnd, "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd,
            "iss": self.iss, "irs": self.irs, "cwnd": self.cwnd, "rto": self.rtt.rto,
        }

    def info(self, now: float) -> dict[str, int]:
        """The connection as Linux's ``getsockopt(TCP_INFO)`` shows it (``struct tcp_info``;
        times in microseconds, windows in segments where Linux counts segments)."""
        mss = self.snd_mss or 1
        srtt = self.rtt.srtt
        unacked_bytes = seq_sub(self.snd_max, self.snd_una)
        info = self._info(now, mss, srtt, unacked_bytes)
        lcc = self.lcc
        score = self.score
        if lcc is not None:
            info["tcpi_ca_state"] = lcc.ca_state
            info["tcpi_snd_cwnd"] = lcc.cwnd
            info["tcpi_snd_ssthresh"] = lcc.ssthresh
            info["tcpi_unacked"] = score.packets_out
        info["tcpi_sacked"] = score.sacked_out
        info["tcpi_lost"] = score.lost_out
        info["tcpi_retrans"] = score.retrans_out
        info["tcpi_delivered"] = self.delivered
        info["tcpi_reordering"] = score.reordering
        info["tcpi_min_rtt"] = int(score.min_rtt * 1e6) if score.min_rtt >= 0 else 0
        return info

    def _info(self, now: float, mss: int, srtt: float | None,
              unacked_bytes: int) -> dict[str, int]:
        options = (1 if self.ts.ok else 0) | (2 if self.sack_ok else 0) | \
            (4 if self.snd_wscale or self.rcv_wscale else 0) | (8 if self.ecn_ok else 0) | \
            (32 if self.syn_data_acked else 0)
        return {
            "tcpi_state": _LINUX_STATE[self.current_state()],
            "tcpi_ca_state": 3 if self.cc.in_recovery else (4 if self.rtx_count else 0),
            "tcpi_retransmits": self.rtx_count,
            "tcpi_probes": self.keepalive_probes_out,
            "tcpi_backoff": self.backoff,
            "tcpi_options": options,
            "tcpi_snd_wscale": self.snd_wscale,
            "tcpi_rcv_wscale": self.rcv_wscale,
            "tcpi_rto": int(self.rtt.rto * 1e6),
            "tcpi_ato": int(self.config.delayed_ack * 1e6) if self.acks.data_seen else 0,
            "tcpi_snd_mss": self.snd_mss,
            "tcpi_rcv_mss": self.rcv_mss,
            "tcpi_unacked": (unacked_bytes + mss - 1) // mss,
            "tcpi_last_data_recv": int(max(now - self.acks.last_data_rcv, 0) * 1000)
            if self.acks.last_data_rcv >= 0 else 0,
            "tcpi_rtt": int(srtt * 1e6) if srtt is not None else 0,
            "tcpi_rttvar": int(self.rtt.rttvar * 1e6),
            "tcpi_snd_ssthresh": min(self.cc.ssthresh // mss, 0x7FFFFFFF),
            "tcpi_snd_cwnd": self.cc.cwnd // mss,
            "tcpi_advmss": self.user_mss or self.config.mss,
            "tcpi_rcv_space": self.rcv_wnd,
            "tcpi_notsent_bytes": max(len(self.sndbuf) - max(seq_sub(self.snd_nxt,
                                                                     self.sndbuf_seq), 0), 0),
            "tcpi_bytes_acked": max(seq_sub(self.snd_una, self.iss) - 1, 0),
            "tcpi_bytes_received": max(seq_sub(self.rcv_nxt, self.irs) - 1, 0),
        }

    def current_state(self) -> State:
        """The state now, including a TIME-WAIT that the host has since expired."""
        entries = self.time_wait_entries
        if self.state is State.TIME_WAIT and entries is not None and self.key not in entries:
            return State.CLOSED
        return self.state

    def set_state(self, new: State, cause: str, now: float) -> None:
        """Every state change goes through here, and is traced."""
        old = self.state
        if old is new:
            return
        self.state = new
        if new is State.ESTABLISHED and not self.tfo_child:
            # Linux tcp_finish_connect / tcp_create_openreq_child: icsk_ack.lrcvtime,
            # what TCP_INFO's tcpi_last_data_recv counts from until data arrives.
            self.acks.on_established(now)
        tr = self.trace
        if tr.enabled:
            tr.add(state_event(now, self.cx.name, self.name, old.value, new.value, cause,
                               self.tcb()))

    # ------------------------------------------------------------ application events

    def _event(self, name: str) -> None:
        if not self.want_events or name in self.events:
            return  # nobody reads them, or one of this kind is already queued
        self.events.append(name)
        if not self.queued_ready:
            self.queued_ready = True
            self.cx.ready.append(self)

    def next_event(self) -> str | None:
        """The oldest queued application event (``"connected"``, ``"data"``, ``"eof"``,
        ``"writable"``, ``"closed"``), or None.  Events of one kind are coalesced."""
        if self.events:
            return self.events.pop(0)
        return None

    # ------------------------------------------------------------ timers

    def _timer_trace(self, now: float, timer: TimerName, action: TimerAction,
                     deadline: float | None) -> None:
        tr = self.trace
        if tr.enabled:
            tr.add(timer_event(now, self.cx.name, self.name, timer, action, deadline))

    def _wake(self, deadline: float) -> None:
        at = self.wake_at
        if at is None or deadline < at:
            self.wake_at = deadline
            self.cx.wake(self, deadline)

    def next_deadline(self) -> float | None:
        best = self.rtx_at
        d = self.persist_at
        if d is not None and (best is None or d < best):
            best = d
        d = self.delack_at
        if d is not None and (best is None or d < best):
            best = d
        d = self.fw2_at
        if d is not None and (best is None or d < best):
            best = d
        d = self.keepalive_at
        if d is not None and (best is None or d < best):
            best = d
        return best

    def _arm_rtx(self, now: float) -> None:
        delay = self.rtt.rto
        ut = self.user_timeout
        if ut and self.retrans_stamp is not None:
            # Linux tcp_clamp_rto_to_user_timeout(): fire when the user timeout ends.
            remaining = self.retrans_stamp + ut - now
            delay = min(delay, max(remaining, 0.001))
        self._set_rtx(now, RTX_RTO, now + delay)

    def _rtx_name(self) -> TimerName:
        """The trace's name for what the one retransmission timer is armed for now."""
        return "loss-probe" if self.rtx_kind == RTX_TLP else "retransmit"

    def _set_rtx(self, now: float, kind: int, at: float) -> None:
        """Arm the retransmission timer for ``kind`` (Linux shares one timer between the
        RTO, RACK's reordering wait and the tail loss probe); a pending timer of another
        name is traced as cancelled, so every armed timer in a picture ends."""
        if self.rtx_at is not None and (kind == RTX_TLP) != (self.rtx_kind == RTX_TLP):
            self._timer_trace(now, self._rtx_name(), "cancelled", None)
        self.rtx_kind = kind
        self.rtx_at = at
        self._wake(at)
        self._timer_trace(now, self._rtx_name(), "armed", at)

    def _cancel_rtx(self, now: float) -> None:
        if self.rtx_at is not None:
            self.rtx_at = None
            self._timer_trace(now, self._rtx_name(), "cancelled", None)

    def _arm_delack(self, now: float) -> None:
        if self.delack_at is None:
            self.delack_at = now + self.config.delayed_ack
            self._wake(self.delack_at)
            self._timer_trace(now, "delayed-ack", "armed", self.delack_at)

    def _arm_fw2(self, now: float) -> None:
        self.fw2_at = now + self.config.fin_wait_2_timeout
        self._wake(self.fw2_at)
        self._timer_trace(now, "fin-wait-2", "armed", self.fw2_at)

    def _cancel_timers(self, now: float) -> None:
        """Stop every timer (the connection is leaving), tracing each one that ran."""
        if self.rtx_at is not None:
            self.rtx_at = None
            self._timer_trace(now, self._rtx_name(), "cancelled", None)
        if self.persist_at is not None:
            self.persist_at = None
            self._timer_trace(now, "persist", "cancelled", None)
        if self.delack_at is not None:
            self.delack_at = None
            self._timer_trace(now, "delayed-ack", "cancelled", None)
        if self.fw2_at is not None:
            self.fw2_at = None
            self._timer_trace(now, "fin-wait-2", "cancelled", None)
        if self.keepalive_at is not None:
            self.keepalive_at = None
            self._timer_trace(now, "keepalive", "cancelled", None)

    # ------------------------------------------------------------ segments out

    def _make(self, flags: int, seq: int, now: float, payload: bytes = b"",
              options: tuple[TcpOption, ...] = ()) -> TcpSegment:
        """A segment from this connection, built at ``now`` (timestamps need the time)."""
        win = self.rcv_wnd
        if flags & SYN:
            wfield = win if win < MAX_WINDOW else MAX_WINDOW  # never scaled in a SYN (RFC 7323 2.2)
            edge = (self.rcv_nxt + wfield) & MASK
        else:
            wfield = win >> self.rcv_wscale
            if wfield > MAX_WINDOW:
                wfield = MAX_WINDOW
            edge = (self.rcv_nxt + (wfield << self.rcv_wscale)) & MASK
        if flags & ACK and seq_gt(edge, self.rcv_adv):
            self.rcv_adv = edge
        if self.ts.ok and not flags & (SYN | RST):
            # RFC 7323 3.2: every segment but a RST carries the timestamps option.
            options = (_NOP, _NOP, TsOption(self.ts.val(now), self.ts.recent))
        sacks = self.sacks
        if sacks is not None and sacks and flags & ACK and not flags & (SYN | RST):
            # RFC 2018 4: while we hold out-of-order data, every ACK reports it
            # (after the timestamps, as Linux writes them).
            blocks = sacks.take(max_blocks(self.ts.ok))
            if blocks:
                options = (*options, _NOP, _NOP, Sack(blocks))
        return TcpSegment(self.lport, self.rport, seq, self.rcv_nxt if flags & ACK else 0,
                          flags, wfield, 0, options, payload)

    def _send(self, seg: TcpSegment, now: float, gso: int = 0) -> bool:
        """Put ``seg`` on the wire; False when the host's own queue dropped it.
        ``gso``: ``seg`` is a super-segment of full segments of this size."""
        if not self.cx.emit(self.laddr, self.raddr, seg, now, self.name,
                            self.tcb() if self.trace.enabled else None, gso):
            return False
        if seg.flags & ACK:
            self.ack_pending = 0
            self.last_ack_sent = seg.ack
            self.acks.on_ack_sent()
            if self.delack_at is not None:
                self.delack_at = None  # the ACK rides on this segment
                self._timer_trace(now, "delayed-ack", "cancelled", None)
        return True

    def _send_rst(self, seq: int, now: float) -> None:
        self._send(TcpSegment(self.lport, self.rport, seq, 0, RST, 0), now)

    def _drop(self, seg: TcpSegment, now: float, reason: str, accepted: bool = False) -> None:
        """Record that ``seg`` was discarded (or, with ``accepted``, acted on)."""
        self.cx.record(self.raddr, self.laddr, seg, now, reason, self.name, accepted)

    def send_ack(self, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.

        After a timeout has rewound SND.NXT, a pure ACK carries SND.MAX (as BSD's
        tcp_output does): the peer has already received up to there, and an
        ACK below its RCV.NXT would be unacceptable to it, answered with an
        ACK that is unacceptable here: an endless ACK war.
        """
        self._send(self._make(ACK, self.snd_max, now), now)

    def _send_syn(self, now: float, with_ack: bool, fastopen: FastOpen | None = None,
                  data: bytes = b"") -> None:
        """Our SYN or SYN-ACK; ``fastopen``: the Fast Open option it carries (only the
        first one does, RFC 7413 and Linux), ``data``: text in a SYN (Fast Open)."""
        ts = self.ts
        if with_ack:
            opts = syn_options(self.config, synack=True, peer_wscale=self.rcv_wscale > 0,
                               peer_sack=self.sack_ok,
                               ts=(ts.val(now), ts.recent) if ts.ok else None,
                               mss=self._our_mss(), fastopen=fastopen, rcv_buf=self.rcv_buf)
            # RFC 3168 6.1.1: an ECN-setup SYN-ACK sets ECE (not CWR).
            flags = SYN | ACK | (ECE if self.ecn_ok else 0)
            self._send(self._make(flags, self.iss, now, b"", opts), now)
        else:
            offer = (ts.val(now), 0) if self.config.timestamps else None
            if offer is not None and self.syn_tsval is None:
                self.syn_tsval = offer[0]
            # RFC 3168 6.1.1: an ECN-setup SYN sets ECE and CWR (tcp_ecn 1).
            flags = SYN | (ECE | CWR if self.config.ecn == 1 else 0)
            self._send(self._make(flags, self.iss, now, data,
                                  syn_options(self.config, ts=offer, mss=self._our_mss(),
                                              fastopen=fastopen, rcv_buf=self.rcv_buf)), now)

    def _our_mss(self) -> int | None:
        """The MSS we advertise: TCP_MAXSEG, or the host's, never above what path MTU
        discovery allows (Linux tcp_advertise_mss); None: the host's MSS."""
        mss = self.user_mss
        pm = self.pmtu_mss
        if pm is not None and pm < (mss or self.config.mss):
            return pm
        return mss

    def on_icmp(self, kind: str, seq: int, mtu: int | None, now: float) -> None:
        """An ICMP error quoting one of our segments (RFC 5927; Linux tcp_v4_err).

        The quoted sequence number must be one we sent and not yet had
        acknowledged, else the error is ignored (RFC 5927 4.1: a blind attack).
        ``kind``: ``"frag-needed"`` (path MTU discovery, RFC 1191: segments of
        the new size are resent at once; a SYN that carried data is resent
        without it), or an error name of :data:`~tcplab.engine.errors.ERRORS`
        (``"host unreachable"``, ...): fatal while the connection is opening
        (a Fast Open child included), only remembered once it is open."""
        st = self.state
        lo = self.iss if st is State.SYN_RECEIVED else self.snd_una
        if not (seq_le(lo, seq) and seq_le(seq, self.snd_nxt)):
            self.cx.counters.inc("TcpExtOutOfWindowIcmps")
            return
        if kind == "frag-needed":
            if mtu is None or st in (State.CLOSED, State.LISTEN):
                return
            mss = max(mtu - (60 if ":" in self.raddr else 40), 48)
            if mss >= (self.pmtu_mss or self.config.mss):
                return
            self.pmtu_mss = mss
            if self.snd_mss > mss and st is not State.SYN_SENT:
                self.snd_mss = mss
            self._pmtu_retransmit(now)
            return
        if st is State.SYN_RECEIVED and self.passive and not self.tfo_child:
            self._back_to_listen(now, f"ICMP {kind} in SYN-RECEIVED: back to LISTEN")
        elif st is State.SYN_SENT or st is State.SYN_RECEIVED:
            self._terminate(now, kind, f"ICMP {kind} while opening")
        elif self.error is None:
            self.soft_error = kind   # Linux sk_err_soft: reported only if we time out

    def _pmtu_retransmit(self, now: float) -> None:
        """Linux tcp_simple_retransmit: resend what no longer fits the path."""
        st = self.state
        if st is State.SYN_SENT:
            # The SYN (a Fast Open SYN with its data) is presumed lost: send it again
            # now, without the data, which follows the SYN-ACK.
            if self.syn_data_len and self.lcc is not None:
                for s in self.score.segs:
                    s.lost = True
            self.cx.counters.inc("TcpRetransSegs")
            self.rtt.forget()
            self._send_syn(now, with_ack=False)
            return
        if self.lcc is None:
            self.snd_nxt = self.snd_una
            self.output(now)
            return
        mss = self.snd_mss
        for s in self.score.segs:
            if s.length > mss and not s.sacked:
                s.lost = True
                s.retrans_out = False
        if self.score.lost_out:
            self.lcc.non_congestion_loss(self.snd_max)
            self._xmit_lost(now)

    def _apply_peer_syn(self, seg: TcpSegment, we_offer_wscale: bool, now: float) -> None:
        """MSS (RFC 9293 3.7.1), window scale (RFC 7323 2.2) and timestamps (3.2) from the
        peer's SYN; the initial window follows the peer's MSS (RFC 5681 3.1, RFC 6928)."""
        agreed = negotiate(seg, self.config, we_offer_wscale, self._our_mss(), self.rcv_buf)
        self.snd_mss = agreed.snd_mss
        if agreed.ts_ok:
            # RFC 6691: the MSS counts no options, so the timestamps every segment
            # carries come out of it (Linux's mss_cache: 1460 - 12 = 1448).
            self.snd_mss = max(self.snd_mss - TS_OPTION_LEN, MIN_MSS)
        self.snd_wscale = agreed.snd_wscale
        self.rcv_wscale = agreed.rcv_wscale
        if not agreed.rcv_wscale and self.rcv_buf > MAX_WINDOW:
            self.rcv_buf = MAX_WINDOW  # no scaling: we can never offer more
        self.cc.cwnd = self.config.initial_window(self.snd_mss)
        self.ts.ok = agreed.ts_ok
        self.sack_ok = agreed.sack_ok
        if agreed.sack_ok and self.sacks is None:
            self.sacks = SackBlocks()
        tso = seg.timestamps
        if agreed.ts_ok and tso is not None:
            self.ts.note_syn(tso.tsval, now)

    # ============================================================ user calls (3.10.1-6)

    def open_active(self, now: float, fastopen: Attempt | None = None, data: bytes = b"",
                    defer: bool = False) -> int:
        """Active OPEN (RFC 9293 3.10.1): send SYN, enter SYN-SENT.

        With a Fast Open ``fastopen`` attempt (RFC 7413; the host builds it from its
        cookie cache), the SYN carries the cookie and as much of ``data`` as a SYN
        may (:func:`~tcplab.engine.fastopen.syn_data_space`), or asks for a cookie.
        ``defer`` (TCP_FASTOPEN_CONNECT with a cookie at hand): enter SYN-SENT but
        send nothing; the first :meth:`send` sends the SYN with its data.  Returns
        how many bytes of ``data`` went into the SYN."""
        if self.state is not State.CLOSED:
            raise TcpError(_errno.EISCONN, "connection already exists")
        self.snd_una = self.iss
        self.snd_nxt = seq_add(self.iss, 1)
        self.snd_max = self.snd_nxt
        if fastopen is not None and defer:
            self.fo_attempt = fastopen
            self.set_state(State.SYN_SENT,
                           "active open, SYN deferred until data (TCP_FASTOPEN_CONNECT)", now)
            return 0
        self.set_state(State.SYN_SENT, "active open", now)
        n = 0
        if fastopen is None:
            self._send_syn(now, with_ack=False)
        else:
            n = self._send_fastopen_syn(fastopen, data, now)
        self.rtt.restart(self.iss, now)
        self._arm_rtx(now)
        return n

    @property
    def deferred(self) -> bool:
        """SYN-SENT without a SYN yet (TCP_FASTOPEN_CONNECT waits for data)."""
        return self.fo_attempt is not None

    def _send_fastopen_syn(self, attempt: Attempt, data: bytes, now: float) -> int:
        """Linux tcp_send_syn_data: the SYN with the cookie and data, or a cookie request."""
        self.fo_attempt = None
        n = 0
        opt: FastOpen | None = None
        if attempt.cookie or attempt.no_cookie:
            space = syn_data_space(self.config.mss, attempt.mss, self.user_mss)
            n = min(space, len(data), self.snd_buf)
            if attempt.cookie:
                opt = FastOpen(attempt.cookie, attempt.exp)
        else:
            opt = FastOpen(b"", attempt.exp)   # a cookie request
        self.fo_syn = opt is not None
        self.fo_exp = opt is not None and opt.exp
        self.syn_data_len = n
        if n:
            self.sndbuf.append(memoryview(data)[:n])
            self.snd_nxt = self.snd_max = seq_add(self.iss, 1 + n)
            if self.lcc is not None:
                self.score.on_send(seq_add(self.iss, 1), self.snd_max, now)
        self._send_syn(now, with_ack=False, fastopen=opt, data=data[:n])
        return n

    def open_passive(self, seg: TcpSegment, listener: ListenerView, now: float,
                     tfo_child: bool = False, fastopen: FastOpen | None = None) -> None:
        """A SYN reached a listener (RFC 9293 3.10.7.2): SYN-RECEIVED, answer SYN-ACK.

        The connection starts as a copy of the listener's LISTEN state.  The host
        decides Fast Open (RFC 7413): ``tfo_child``, the SYN carried a valid cookie,
        so its data is accepted at once and the application may read it (and
        write) before the handshake ends; ``fastopen``, the option the SYN-ACK
        carries (a cookie for a client that asked, or whose cookie was wrong)."""
        self.passive = True
        self.listener = listener
        self.state = State.LISTEN
        self.irs = seg.seq
        self.rcv_nxt = seq_add(self.irs, 1)
        self.rcv_adv = self.rcv_nxt  # nothing advertised yet (the SYN-ACK will)
        self.snd_wnd = seg.window  # never scaled in a SYN
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = self.irs
        self._apply_peer_syn(seg, seg.wscale is not None, now)
        # RFC 3168 6.1.1: an ECN-setup SYN (ECE and CWR) to a host that accepts ECN.
        self.ecn_ok = self.config.ecn in (1, 2) and seg.flags & (ECE | CWR) == ECE | CWR
        self.tfo_child = tfo_child
        if seg.payload and tfo_child:
            # RFC 7413 4.2.2: a valid cookie: the data is the application's now.
            data = seg.payload[:self.rcv_wnd]
            self.rcvbuf.append(data)
            self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
            self.syn_data_acked = bool(data)
            self._event(EV_DATA)
        elif seg.payload and self.config.syn_data_queued:
            # RFC 9293 3.10.7.2: queue it until ESTABLISHED; like any text, only
            # what fits in the window we offer.  (Linux drops it: the client sends
            # it again.)
            self.syn_data = seg.payload[:self.rcv_wnd]
        self.snd_una = self.iss
        self.snd_nxt = seq_add(self.iss, 1)
        self.snd_max = self.snd_nxt
        self.set_state(State.SYN_RECEIVED, "SYN with data and a valid Fast Open cookie"
                       if tfo_child else "SYN received in LISTEN", now)
        self._send_syn(now, with_ack=True, fastopen=fastopen)
        self.rtt.restart(self.iss, now)
        self._arm_rtx(now)
        if self.config.two_way_handshake:
            # Experiment switch: count the connection as open as soon as the
            # SYN-ACK is sent, as a two-way handshake would.  Nothing confirms
            # that the SYN was current, which is the point of the experiment.
            self._establish(now, "two-way handshake: SYN-ACK sent")

    def open_from_cookie(self, seg: TcpSegment, listener: ListenerView, mss: int,
                         now: float) -> None:
        """The ACK of a SYN cookie's SYN-ACK (RFC 4987 3.6): the connection is
        rebuilt from the ACK alone, straight to ESTABLISHED."""
        self.passive = True
        self.listener = listener
        self.state = State.LISTEN
        self.irs = seq_add(seg.seq, -1)
        self.rcv_nxt = seg.seq
        self.snd_una = self.snd_nxt = self.snd_max = self.sndbuf_seq = seg.ack
        self.snd_mss = min(mss, self.config.mss)
        self.snd_wnd = seg.window
        self.max_snd_wnd = seg.window
        self.snd_wl1 = seg.seq
        self.snd_wl2 = seg.ack
        self.rcv_buf = min(self.rcv_buf, MAX_WINDOW)  # the cookie SYN-ACK offered no scaling
        self.rcv_adv = seq_add(self.rcv_nxt, min(self.config.rcv_buf, MAX_WINDOW))
        self.set_state(State.SYN_RECEIVED, "valid SYN cookie", now)
        self._establish(now, "SYN cookie validated")
        if seg.payload or seg.flags & FIN:
            self.on_segment(seg, now)

    def send(self, data: bytes | bytearray | memoryview, now: float, more: bool = False,
             eor: bool = False) -> int:
        """SEND (RFC 9293 3.10.2): queue data; returns how many bytes were taken (copied
        once, into the send buffer: the caller may reuse ``data`` at once).

        ``more`` (Linux MSG_MORE): hold a last partial segment, as TCP_CORK does, for
        this write.  ``eor`` (MSG_EOR): the data ends a record; later data never
        shares a segment with it.  On a deferred Fast Open connection the first send
        sends the SYN, and returns how much of ``data`` went in it."""
        st = self.state
        attempt = self.fo_attempt
        if attempt is not None and st is State.SYN_SENT:
            n = self._send_fastopen_syn(attempt, data if isinstance(data, bytes) else bytes(data),
                                        now)
            self.rtt.restart(self.iss, now)
            self._arm_rtx(now)
            return n
        if self.error is not None:
            raise TcpError(_errno.EPIPE, f"connection {self.error}")
        if self.wr_shut or self.fin_queued or st in (State.FIN_WAIT_1, State.FIN_WAIT_2,
                                                     State.CLOSING, State.LAST_ACK,
                                                     State.TIME_WAIT):
            raise TcpError(_errno.EPIPE, "connection closing")
        if st is State.CLOSED or st is State.LISTEN:
            raise TcpError(_errno.ENOTCONN, "connection does not exist")
        room = self.snd_buf - len(self.sndbuf)
        if room <= 0:
            return 0
        if len(data) > room:
            self.sndbuf.append(memoryview(data)[:room])   # copied once, into the buffer
            taken = room
        else:
            self.sndbuf.append(data)
            taken = len(data)
        if eor and taken:
            if self.eor_marks is None:
                self.eor_marks = []
            self.eor_marks.append(seq_add(self.sndbuf_seq, len(self.sndbuf)))
        if st is State.ESTABLISHED or st is State.CLOSE_WAIT or (st is State.SYN_RECEIVED
                                                            and self.tfo_child):
            if more and not self.cork:
                self.cork = True
                try:
                    self.output(now)
                finally:
                    self.cork = False
            else:
                self.output(now)
        # SYN-SENT / SYN-RECEIVED: queued, sent after entering ESTABLISHED.
        return taken

    def set_cork(self, on: bool, now: float) -> None:
        """TCP_CORK: hold partial segments; clearing it sends what waits (Linux)."""
        self.cork = on
        if not on:
            self.output(now, push=True)

    def push(self, now: float) -> None:
        """Send a held partial segment once (Linux: setting TCP_NODELAY pushes)."""
        self.output(now, push=True)

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RECEIVE (RFC 9293 3.10.3): take up to ``max_bytes`` in-order bytes."""
        if not self.rcvbuf:
            return b""
        old_wnd = self.rcv_wnd
        data = self.rcvbuf.take(max_bytes)    # one copy at most
        # Window update, with receiver-side SWS avoidance (RFC 9293 3.8.6.2.2):
        # the right edge moves only by at least min(RCV.BUFF/2, MSS); an ACK
        # announces it at once when it opens by two segments or half the
        # buffer (BSD's tcp_output rule), so a reader of small pieces does not
        # send an ACK per read.
        if self.acks.linux:
            if self._linux_read_ack(len(data)):
                self.send_ack(now)
        elif self.state.synchronized and self.state is not State.TIME_WAIT:
            adv_now = seq_sub(self.rcv_adv, self.rcv_nxt) if old_wnd else 0
            grow = self.rcv_wnd - max(adv_now, 0)
            if grow >= min(self.rcv_buf // 2, self.rcv_mss) and (
                    grow >= 2 * self.rcv_mss or 2 * grow >= self.rcv_buf):
                self.send_ack(now)
        return data

    def _linux_read_ack(self, copied: int) -> bool:
        """Linux __tcp_cleanup_rbuf: does this read call for an ACK now?  Yes when a
        delayed ACK waits for more than a segment, or the read emptied the buffer of
        a small pushed segment; or when the window it frees is at least twice the
        window still advertised (no window update for every read)."""
        st = self.state
        if not (st.synchronized or st is State.SYN_RECEIVED) or st is State.TIME_WAIT:
            return False
        if self.delack_at is not None:
            if seq_sub(self.rcv_nxt, self.last_ack_sent) > self.rcv_mss:
                return True
            if copied and self.acks.pushed and not self.acks.pingpong and not self.rcvbuf:
                return True
        if copied and self.peer_fin_seq is None and not self.rd_shut:
            now_wnd = max(seq_sub(self.rcv_adv, self.rcv_nxt), 0)
            if 2 * now_wnd <= self.rcv_buf:
                new_wnd = self.rcv_wnd
                if new_wnd and new_wnd >= 2 * now_wnd:
                    return True
        return False

    @property
    def readable_bytes(self) -> int:
        return len(self.rcvbuf)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has been received and every byte before it read."""
        pf = self.peer_fin_seq
        return pf is not None and seq_gt(self.rcv_nxt, pf) and not self.rcvbuf

    @property
    def send_space(self) -> int:
        return self.snd_buf - len(self.sndbuf)

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
        if self.rcvbuf and (st.synchronized or self.tfo_child):
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
            if self.config.active_rst_ack:
                # Linux tcp_send_active_reset: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>,
                # with the timestamps option (RFC 7323 3.2 allows it on a RST).
                opts: tuple[TcpOption, ...] = (
                    (_NOP, _NOP, TsOption(self.ts.val(now), self.ts.recent)) if self.ts.ok
                    else ())
                self._send(TcpSegment(self.lport, self.rport, self.snd_nxt, self.rcv_nxt,
                                      RST | ACK, 0, 0, opts), now)
            else:
                self._send_rst(self.snd_nxt, now)
        self._terminate(now, None, cause)

    def set_nodelay(self, on: bool) -> None:
        self.nodelay = on

    def set_user_timeout(self, seconds: float) -> None:
        """TCP_USER_TIMEOUT (RFC 5482): how long sent data may stay unacknowledged (0: the
        retry counts decide)."""
        self.user_timeout = seconds

    # ============================================================ output

    def output(self, now: float, force: bool = False, push: bool = False,
               probe: bool = False) -> None:
        """Send what the windows, Nagle and the state allow (RFC 9293 3.8.6, RFC 5681).

        ``force``: the persist timer's override of sender SWS avoidance
        (RFC 9293 3.8.6.2.1 (4)): send what the window allows, however small.
        ``push``: send a partial segment held by TCP_CORK or MSG_MORE once (Linux
        TCP_NAGLE_PUSH: uncorking, or setting TCP_NODELAY).  ``probe``: a tail loss
        probe sends one new segment even when the congestion window is full (Linux
        tcp_write_xmit with push_one 2: "force out a loss probe pkt").

        A Linux sender (``config.linux_sender``) counts its window in packets
        against the packets in flight (``tcp_cwnd_test``), keeps every segment
        it sends in the scoreboard, and never puts two records (MSG_EOR) in one
        segment.
        """
        st = self.state
        if st in (State.CLOSED, State.LISTEN, State.SYN_SENT, State.TIME_WAIT) or \
                (st is State.SYN_RECEIVED and not self.tfo_child):
            return
        mss = self.snd_mss
        sndbuf = self.sndbuf
        lcc = self.lcc
        corked = self.cork
        # A backend that segments (TSO) takes a run of full segments as one; the
        # windows and Nagle still decide in segments of the MSS.  Not for the Linux
        # sender (its scoreboard holds one entry per segment), records (MSG_EOR) or
        # a loss probe, nor while tracing (the trace shows every segment as built).
        gso_max = self.cx.gso_max
        if gso_max and (lcc is not None or probe or self.trace.enabled or self.eor_marks):
            gso_max = 0
        sent_any = limited = failed = False
        while True:
            snd_nxt = self.snd_nxt
            off = seq_sub(snd_nxt, self.sndbuf_seq)
            if off < 0:
                off = 0
            avail = len(sndbuf) - off
            flight = seq_sub(snd_nxt, self.snd_una)
            if st is State.SYN_RECEIVED:
                flight -= 1   # Linux: a Fast Open child's window starts after its SYN-ACK
            if lcc is None:
                cwnd = self.cc.cwnd
                wnd = self.snd_wnd if self.snd_wnd < cwnd else cwnd
                usable = wnd - flight
            else:
                usable = self.snd_wnd - flight
            size = avail if avail < mss else mss
            if size > usable:
                size = usable if usable > 0 else 0
            gso = 0
            if size == mss and gso_max > mss:
                # as many full segments as the windows, the data and the device allow
                run = avail if avail < usable else usable
                if run > gso_max:
                    run = gso_max
                if run >= 2 * mss:
                    size = run - run % mss
                    gso = mss
            whole_record = False
            if self.eor_marks:
                rec = self._record_end(snd_nxt)
                if rec is not None and 0 < seq_sub(rec, snd_nxt) <= size:
                    size = seq_sub(rec, snd_nxt)
                    whole_record = size < avail
            fin_seq = self.fin_seq
            fin_now = ((self.fin_queued and fin_seq is None) or
                       (fin_seq is not None and snd_nxt == fin_seq)) and size == avail
            if size <= 0 and not fin_now:
                break
            if lcc is not None and self.score.in_flight() >= lcc.cwnd and not fin_now \
                    and not (probe and not sent_any):
                # Linux tcp_cwnd_test: "don't be strict about the congestion window for
                # the final FIN" (a one-packet segment that carries it goes anyway).
                limited = True
                break
            if 0 < size < mss and not fin_now and not whole_record:
                # Nagle (RFC 9293 3.7.4): hold a small segment while data is
                # unacknowledged, unless NODELAY.  Also hold if the window
                # limits the segment but more data waits (sender SWS avoidance).
                if size < avail and size < self.max_snd_wnd // 2 and not force:
                    break
                if corked and size == avail and not force and not push:
                    break   # TCP_CORK / MSG_MORE: wait for a full segment
                if not self.nodelay and size == avail and not push and (
                        flight > 0 if lcc is None else self._minshall_holds()):
                    break
            flags = ACK
            payload = sndbuf.take(off, size) if size else b""
            if size and off + size == len(sndbuf) and (not corked or force):
                flags |= PSH
            if fin_now:
                flags |= FIN
            seg = self._make(flags, snd_nxt, now, payload)
            if not self._send(seg, now, gso):
                # Linux tcp_write_xmit: a local failure (the host's queue dropped it)
                # sends nothing; the probe timer tries again (tcp_check_probe_timer).
                failed = True
                break
            if fin_now:
                self.fin_seq = seq_add(snd_nxt, size)
            seq_end = seq_add(snd_nxt, size + (1 if fin_now else 0))
            if seq_gt(seq_end, self.snd_max):
                self.rtt.start(snd_nxt, now)
                self.snd_max = seq_end
            self.snd_nxt = seq_end
            if lcc is not None:
                self.score.on_send(snd_nxt, seq_end, now)
                if lcc.in_recovery:
                    lcc.prr_out += 1
                if size < mss:
                    self.snd_sml = seq_end   # tcp_minshall_update
            if size:
                self.acks.on_data_sent(now, self.config.delayed_ack)
            sent_any = True
            if lcc is not None and self.persist_at is not None and self.snd_wnd:
                # Linux keeps one timer (icsk_pending): data that leaves turns the
                # probe timer into the retransmission timer (tcp_event_new_data_sent).
                self.persist_at = None
                self._timer_trace(now, "persist", "cancelled", None)
            if self.rtx_at is None:
                self._arm_rtx(now)
            if fin_now or probe:
                break
        if lcc is not None and (sent_any or limited):
            self._cwnd_validate(limited)
        if lcc is not None and sent_any:
            self._schedule_tlp(now, False)
        # Data waits and nothing is in flight, so no ACK will come to release
        # it: a zero window (probe it, RFC 9293 3.8.6.1) or a window too small
        # for sender SWS avoidance (the override timeout of 3.8.6.2.1), or a
        # segment held by TCP_CORK/MSG_MORE (Linux's probe timer sends it).  The
        # persist timer covers them all.
        if (not sent_any or failed) and self.snd_nxt == self.snd_una \
                and len(sndbuf) > seq_sub(self.snd_nxt, self.sndbuf_seq) \
                and self.persist_at is None and self.rtx_at is None:
            self.persist_at = now + self.rtt.rto
            self._wake(self.persist_at)
            self._timer_trace(now, "persist", "armed", self.persist_at)

    def _minshall_holds(self) -> bool:
        """Linux's Nagle (tcp_nagle_check with tcp_minshall_check): a small segment
        waits only while an earlier small segment is unacknowledged."""
        sml = self.snd_sml
        return sml is not None and seq_gt(sml, self.snd_una) and seq_le(sml, self.snd_nxt)

    def _record_end(self, seq: int) -> int | None:
        """The end of the record (MSG_EOR) that ``seq`` is in, if any."""
        marks = self.eor_marks
        if marks is None:
            return None
        done = 0
        while done < len(marks) and seq_le(marks[done], self.snd_una):
            done += 1
        if done:
            del marks[:done]
        for m in marks:
            if seq_gt(m, seq):
                return m
        return None

    def _cwnd_validate(self, limited: bool) -> None:
        """Linux tcp_cwnd_validate: remember whether the window limited this flight."""
        packets = self.score.packets_out
        if seq_ge(self.snd_una, self.cwnd_usage_seq) or limited or \
                (not self.cwnd_limited and packets > self.max_packets_out):
            self.cwnd_limited = limited
            self.max_packets_out = packets
            self.cwnd_usage_seq = self.snd_nxt

    def _cwnd_may_grow(self) -> bool:
        """Linux tcp_is_cwnd_limited: grow only a window that is used (in slow start,
        up to twice what was in flight)."""
        lcc = self.lcc
        if lcc is None or self.cwnd_limited:
            return True
        return lcc.cwnd < lcc.ssthresh and lcc.cwnd < 2 * self.max_packets_out

    def _retransmit_first(self, now: float) -> None:
        """Resend one segment from SND.UNA (fast retransmit, NewReno partial ACK)."""
        off = seq_sub(self.snd_una, self.sndbuf_seq)
        if off < 0:
            off = 0
        size = min(len(self.sndbuf) - off, self.snd_mss)
        flags = ACK
        if size < 0:
            size = 0
        if self.fin_seq is not None and seq_add(self.snd_una, size) == self.fin_seq:
            flags |= FIN
        if size == 0 and not flags & FIN:
            return
        self.rtt.forget()  # Karn's rule
        self.cx.counters.inc("TcpRetransSegs")
        seg = self._make(flags, self.snd_una, now, self.sndbuf.take(off, size))
        self._send(seg, now)

    # ============================================================ timers

    def on_timer(self, now: float) -> None:
        """Fire every timer whose deadline has passed."""
        if self.delack_at is not None and self.delack_at <= now:
            self.delack_at = None
            self._timer_trace(now, "delayed-ack", "fired", None)
            if self.state.synchronized:
                self.cx.counters.inc("TcpExtDelayedACKs")
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
        if self.keepalive_at is not None and self.keepalive_at <= now:
            self.keepalive_at = None
            self._keepalive_fire(now)

    def _persist_fire(self, now: float) -> None:
        """Zero-window probe (RFC 9293 3.8.6.1): one octet beyond the window."""
        self._timer_trace(now, "persist", "fired", None)
        if self.lcc is not None and self.snd_wnd > 0:
            self._probe_timer(now)
            return
        if self.snd_wnd > 0 or not self.sndbuf or not self.state.synchronized:
            self.output(now, force=True)
            return
        off = seq_sub(self.snd_nxt, self.sndbuf_seq)
        if off >= len(self.sndbuf):
            return
        seg = self._make(ACK, self.snd_nxt, now, self.sndbuf.take(off, 1))
        probe_end = seq_add(self.snd_nxt, 1)
        if seq_gt(probe_end, self.snd_max):
            self.snd_max = probe_end
        self._send(seg, now)
        self.backoff += 1
        delay = min(self.rtt.rto * (1 << min(self.backoff, 16)), self.config.rto_max)
        self.persist_at = now + delay
        self._wake(self.persist_at)
        self._timer_trace(now, "persist", "armed", self.persist_at)

    def _probe_timer(self, now: float) -> None:
        """Linux tcp_probe_timer and tcp_send_probe0 for a queue that cannot leave
        (held data, or a host whose own queue drops every packet): try to send; count
        the probe (tcpi_probes); after a local drop try again in 500 ms
        (TCP_RESOURCE_PROBE_INTERVAL), else back off; give up after tcp_retries2
        probes or TCP_USER_TIMEOUT, with ETIMEDOUT."""
        waiting = len(self.sndbuf) > seq_sub(self.snd_nxt, self.sndbuf_seq)
        if self.snd_una != self.snd_max or not waiting or not self.state.synchronized:
            self.keepalive_probes_out = 0
            self.probes_stamp = None
            if waiting:
                self.output(now, force=True)
            return
        ut = self.user_timeout
        if self.probes_stamp is None:
            self.probes_stamp = now
        elif ut and now - self.probes_stamp >= ut:
            self.cx.counters.inc("TcpExtTCPAbortOnTimeout")
            self._terminate(now, "timed out", f"TCP_USER_TIMEOUT {ut:g} s")
            return
        if self.keepalive_probes_out >= self.config.data_retries:
            self.cx.counters.inc("TcpExtTCPAbortOnTimeout")
            self._terminate(now, "timed out", f"retransmission limit ({self.config.data_retries}"
                            ", tcp_retries2) reached")
            return
        self.output(now, force=True, push=True)
        if self.snd_una != self.snd_max or not self.sndbuf:
            self.keepalive_probes_out = 0
            self.probes_stamp = None
            return
        self.keepalive_probes_out += 1
        if self.cx.local_drop:
            delay = 0.5   # TCP_RESOURCE_PROBE_INTERVAL: the host, not the path, is stuck
        else:
            self.backoff = min(self.backoff + 1, self.config.data_retries)
            delay = min(self.rtt.rto * (1 << min(self.backoff, 16)), self.config.rto_max)
        if ut:
            delay = min(delay, max(self.probes_stamp + ut - now, 0.001))
        self.persist_at = now + delay
        self._wake(self.persist_at)
        self._timer_trace(now, "persist", "armed", self.persist_at)

    def _retries_expired(self, st: State, now: float) -> str | None:
        """Has retransmission run out (RFC 9293 3.8.3 R2)?  Why, or None.
        :mod:`~tcplab.engine.retries` explains the rfc and Linux rules."""
        config = self.config
        stamp = self.retrans_stamp
        elapsed = now - stamp if stamp is not None else 0.0
        ut = self.user_timeout
        if st is State.SYN_SENT or (st is State.SYN_RECEIVED and not self.passive):
            syn_retries = self.syn_retries or config.syn_retries   # TCP_SYNCNT first
            limit = syn_retries + config.syn_linear_timeouts
            if self.rtx_count >= limit:
                return f"{self.rtx_count} SYN retransmissions (tcp_syn_retries)"
            if ut:
                return f"TCP_USER_TIMEOUT {ut:g} s" if elapsed >= ut else None
            if config.retries_by_time and \
                    elapsed >= model_timeout(syn_retries, config.rto_initial, config.rto_max):
                return (f"{elapsed:g} s of SYN retransmissions (tcp_syn_retries "
                        f"{syn_retries} as time)")
            return None
        if st is State.SYN_RECEIVED:
            if self.rtx_count >= config.synack_retries:
                return f"{self.rtx_count} SYN-ACK retransmissions (tcp_synack_retries)"
            return None
        if self.app_closed:
            retries = orphan_retries(config.orphan_retries, config.retries_by_time,
                                     config.data_retries, self.rtt.rto < config.rto_max)
            what = "tcp_orphan_retries"
        else:
            retries = config.data_retries
            what = "tcp_retries2"
        if ut:
            return f"TCP_USER_TIMEOUT {ut:g} s" if elapsed >= ut else None
        if config.retries_by_time:
            budget = model_timeout(retries, config.rto_min, config.rto_max)
            if elapsed >= budget:
                return f"{elapsed:g} s of retransmissions ({what} {retries}: {budget:g} s)"
            return None
        if self.rtx_count >= retries:
            return f"retransmission limit ({retries}, {what}) reached"
        return None

    def _rtx_fire(self, now: float) -> None:
        """Retransmission timeout (RFC 6298 5.4-5.7)."""
        self._timer_trace(now, self._rtx_name(), "fired", None)
        if self.rtx_kind == RTX_REO:
            self._reo_fire(now)
            return
        if self.rtx_kind == RTX_TLP:
            self._tlp_fire(now)
            return
        self.tlp_high = None
        st = self.state
        counters = self.cx.counters
        counters.inc("TcpExtTCPTimeouts")
        if self.retrans_stamp is None:
            # The oldest unacknowledged segment went out one RTO ago (when this
            # timer was armed): retransmission time is counted from there.
            self.retrans_stamp = now - self.rtt.rto
        why = self._retries_expired(st, now)
        if why is not None:
            if st is State.SYN_RECEIVED and self.passive:
                self._back_to_listen(now, f"SYN-ACK retransmissions exhausted: {why}")
                return
            counters.inc("TcpExtTCPAbortOnTimeout")
            self._terminate(now, "timed out", why)
            return
        self.rtx_count += 1
        if st is State.SYN_SENT and self.rtx_count <= self.config.syn_linear_timeouts:
            pass  # Linux 6.x: the first tcp_syn_linear_timeouts SYN timeouts do not back off
        else:
            self.rtt.back_off()  # back off the timer (5.5)
        self.rtt.forget()  # Karn's rule: no RTT sample from a retransmission
        if st is State.SYN_SENT:
            counters.inc("TcpExtTCPSynRetrans")
            counters.inc("TcpRetransSegs")
            self._send_syn(now, with_ack=False)
        elif st is State.SYN_RECEIVED or (self.passive and self.snd_una == self.iss):
            # (The second case: the two-way-handshake switch made us ESTABLISHED
            # before our SYN was acknowledged.)
            counters.inc("TcpExtTCPSynRetrans")
            counters.inc("TcpRetransSegs")
            self._send_syn(now, with_ack=True)
        elif self.snd_una == self.snd_max and self.fin_seq is None:
            return  # nothing outstanding
        elif self.lcc is not None and self.score:
            # Linux tcp_enter_loss: every segment not SACKed is lost, the window is
            # one packet, and the oldest is resent (the others follow as ACKs come).
            self.score.mark_all_lost()
            self.score.reno_sacked = 0
            self.dupacks = 0
            self.lcc.enter_loss(self.snd_max, self.score.in_flight())
            self._xmit_lost(now)
        else:
            # RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS); cwnd = 1 SMSS;
            # go back to SND.UNA and resend from there.
            self.cc.on_timeout(seq_sub(self.snd_max, self.snd_una), self.snd_max, self.snd_mss)
            self.snd_nxt = self.snd_una
            counters.inc("TcpRetransSegs")
            self.output(now)
            if self.rtx_at is not None:
                return
            if self.snd_una == self.snd_max:
                return
        self._arm_rtx(now)

    # ------------------------------------------------------------ keep-alive (3.8.4)

    def set_keepalive(self, on: bool, now: float, idle: float | None = None,
                      intvl: float | None = None, cnt: int | None = None) -> None:
        """SO_KEEPALIVE and TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT."""
        if idle is not None:
            self.keepidle = idle
        if intvl is not None:
            self.keepintvl = intvl
        if cnt is not None:
            self.keepcnt = cnt
        was_on = self.keepalive
        self.keepalive = on
        if not on:
            if self.keepalive_at is not None:
                self.keepalive_at = None
                self._timer_trace(now, "keepalive", "cancelled", None)
            return
        if self.state.synchronized or self.state is State.SYN_RECEIVED:
            # Linux (tcp_set_keepalive): switching it on arms the timer one idle period
            # from now, whatever came before; a new TCP_KEEPIDLE on a socket that has it
            # counts from the last segment received (tcp_sock_set_keepidle_locked)
            self._arm_keepalive(self.last_rcv + self.keepidle if was_on and self.last_rcv
                                else now + self.keepidle, now)

    def _start_keepalive(self, now: float) -> None:
        """The connection is established: idle time counts from now."""
        self.last_rcv = now
        if self.keepalive:
            self._arm_keepalive(now + self.keepidle, now)

    def _arm_keepalive(self, at: float, now: float) -> None:
        self.keepalive_at = at
        self._wake(at)
        self._timer_trace(now, "keepalive", "armed", at)

    def _keepalive_fire(self, now: float) -> None:
        """Linux's tcp_keepalive_timer(): probe an idle peer; give up after TCP_KEEPCNT
        unanswered probes (or TCP_USER_TIMEOUT) with ETIMEDOUT and a RST."""
        self._timer_trace(now, "keepalive", "fired", None)
        st = self.state
        if not self.keepalive or st is State.CLOSED or st is State.LISTEN or st is State.SYN_SENT \
                or st is State.TIME_WAIT:
            return
        if self.snd_una != self.snd_max or len(self.sndbuf) > seq_sub(self.snd_nxt,
                                                                      self.sndbuf_seq):
            # Data in flight or waiting: the retransmission or persist timer watches
            # the peer; look again one idle period later.
            self._arm_keepalive(now + self.keepidle, now)
            return
        elapsed = now - self.last_rcv
        if elapsed < self.keepidle:
            self._arm_keepalive(self.last_rcv + self.keepidle, now)
            return
        ut = self.user_timeout
        if (ut and elapsed >= ut and self.keepalive_probes_out > 0) or \
                (not ut and self.keepalive_probes_out >= self.keepcnt):
            self.cx.counters.inc("TcpExtTCPAbortOnTimeout")
            self._send_rst(self.snd_nxt, now)
            self._terminate(now, "timed out",
                            f"keep-alive: {self.keepalive_probes_out} probes unanswered "
                            f"after {elapsed:g} s idle")
            return
        # The probe: <SEQ=SND.UNA-1><ACK=RCV.NXT>, no data: an old sequence number
        # the peer must answer with an ACK (RFC 9293 3.8.4).
        self._send(self._make(ACK, seq_add(self.snd_una, -1), now), now)
        self.keepalive_probes_out += 1
        self.cx.counters.inc("TcpExtTCPKeepAlive")
        self._arm_keepalive(now + self.keepintvl, now)

    def quickack_now(self, now: float) -> None:
        """TCP_QUICKACK: leave ping-pong mode and send a pending delayed ACK at once."""
        self.acks.pingpong = False
        if self.delack_at is not None and self.state.synchronized:
            self.send_ack(now)

    # ============================================================ leaving

    def _terminate(self, now: float, error: str | None, cause: str) -> None:
        """Enter CLOSED, cancel timers, tell the application and the host."""
        if error is not None and self.error is None:
            self.error = error
        self._cancel_timers(now)
        self.set_state(State.CLOSED, cause, now)
        self.cx.request(REQ_CLOSED, self, cause, now)
        self._event(EV_CLOSED)

    def _back_to_listen(self, now: float, cause: str) -> None:
        """A half-open passive connection goes back to LISTEN (RFC 9293 3.10.7.4):
        its listener forgets it, and the listener itself stays in LISTEN."""
        self._cancel_timers(now)
        self.set_state(State.LISTEN, cause, now)
        self.cx.request(REQ_LISTEN, self, cause, now)
        self._event(EV_CLOSED)

    def _enter_time_wait(self, now: float, cause: str) -> None:
        """TIME-WAIT: the host replaces this connection by a compact entry that waits
        2MSL (or, with the experiment switch ``time_wait=0``, closes at once)."""
        self._cancel_timers(now)
        cx = self.cx
        if self.config.time_wait_length > 0 and cx.time_wait_full():
            # Linux tcp_time_wait(): no bucket left (tcp_max_tw_buckets): the
            # connection is closed at once, without TIME-WAIT's protection
            cx.counters.inc("TcpExtTCPTimeWaitOverflow")
            self.set_state(State.CLOSED, "TIME-WAIT skipped: tcp_max_tw_buckets "
                           f"({self.config.max_tw_buckets}) reached", now)
            cx.request(REQ_CLOSED, self, cause, now)
            self._event(EV_CLOSED)
            return
        self.set_state(State.TIME_WAIT, cause, now)
        if self.config.time_wait_length <= 0:
            self.set_state(State.CLOSED, "TIME-WAIT disabled (experiment)", now)
            cx.request(REQ_CLOSED, self, cause, now)
        else:
            cx.tw_pending += 1
            cx.request(REQ_TIME_WAIT, self, cause, now)
        self._event(EV_CLOSED)

    def _establish(self, now: float, cause: str) -> None:
        self.set_state(State.ESTABLISHED, cause, now)
        self._start_keepalive(now)
        self.rtt.handshake_fallback(self.rtx_count > 0, self.config.rto_initial)
        self.rtx_count = 0
        if self.syn_data:
            # Text that came on the SYN, queued until now (RFC 9293 3.10.7.2): it
            # is acknowledged like any other in-order data.
            self.ack_pending += len(self.syn_data)
            self._accept_in_order(self.syn_data)
            self.syn_data = b""
            if self.config.delayed_ack > 0:
                self._arm_delack(now)
        if self.passive and not self.tfo_child:
            self.cx.request(REQ_ESTABLISHED, self, cause, now)
        self._event(EV_CONNECTED)

    # ============================================================ input (3.10.7)

    def on_segment(self, seg: TcpSegment, now: float) -> None:
        """Process one arriving segment (RFC 9293 3.10.7)."""
        st = self.state
        if st is State.SYN_SENT:
            self._syn_sent(seg, now)
            return
        if st is State.CLOSED or st is State.LISTEN or st is State.TIME_WAIT:
            self._drop(seg, now, f"no processing in {st.value}")
            return
        flags = seg.flags
        seq = seg.seq
        # A duplicate of the SYN that opened this half-open connection: Linux
        # answers it with the SYN-ACK again (RFC 9293 would send a bare ACK).
        if st is State.SYN_RECEIVED and flags & SYN and not flags & (ACK | RST) \
                and seq == self.irs:
            self._send_syn(now, with_ack=True)
            self._drop(seg, now, "duplicate SYN: SYN-ACK sent again")
            return
        # Simultaneous open (RFC 9293 Figure 8, line 6): the peer's SYN-ACK
        # repeats the SYN we already have (SEG.SEQ = IRS), so the first check
        # would call it a duplicate and the open would hang on challenge ACKs.
        # Like Linux (tcp_validate_incoming), take it when it acknowledges
        # exactly our SYN.
        if st is State.SYN_RECEIVED and not self.passive and flags & SYN and flags & ACK \
                and not flags & RST and seq == self.irs and seg.ack == self.snd_max:
            self._drop(seg, now, "SYN-ACK in SYN-RECEIVED (simultaneous open)", accepted=True)
            self.snd_wnd = seg.window  # a SYN's window is never scaled (RFC 7323 2.2)
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1, self.snd_wl2 = seq, seg.ack
            self._ack_advance(seg.ack, now)
            self._establish(now, "SYN-ACK received in SYN-RECEIVED (simultaneous open)")
            if self.fin_queued:
                self.set_state(State.FIN_WAIT_1, "queued close", now)
            before = self.cx.counters.out_segs
            self.output(now)
            if self.sack_ok and self.config.dsack and self.cx.counters.out_segs == before:
                # Linux: the SYN it carries again is a duplicate: an ACK at once, with
                # a D-SACK block naming it (tcp_data_queue, RFC 2883).
                self._dsack(seq, seq_add(seq, 1))
                self.send_ack(now)
            return
        self.last_rcv = now
        self.keepalive_probes_out = 0
        # ---- RFC 7323 5.3: PAWS, before the sequence number check.
        tso = seg.timestamps if self.ts.ok else None
        if tso is not None and not flags & RST and self.ts.rejects(tso.tsval, now):
            if flags & SYN and self.config.paws_syn_challenge and self.config.rfc5961:
                self.cx.counters.inc("TcpExtTCPSYNChallenge")
                self._challenge_ack(seg, now, "SYN failing PAWS (RFC 7323 5.3)")
                return
            self.cx.counters.inc("TcpExtPAWSEstab")
            self._oow_ack(seg, now, "PAWS: timestamp older than TS.Recent (RFC 7323 5)")
            return
        # ---- first: check the sequence number (RFC 9293 3.10.7.4, table of 4 cases)
        if not self._acceptable(seq, seg):
            if flags & RST:
                self._drop(seg, now, "RST outside window")
                return
            if flags & SYN and self.config.rfc5961:
                self.cx.counters.inc("TcpExtTCPSYNChallenge")
                self._challenge_ack(seg, now, "SYN outside window (RFC 5961 4.2)")
                return
            self._oow_ack(seg, now, "outside window")
            return
        if tso is not None:
            self.ts.update(tso.tsval, seq, self.last_ack_sent, now)  # RFC 7323 4.3
        # ---- second: the RST bit
        if flags & RST:
            self._second_rst(seg, seq, now)
            return
        # ---- fourth: the SYN bit (third, security, is not implemented)
        if flags & SYN:
            self._fourth_syn(seg, now)
            return
        # ---- fifth: the ACK field
        if not flags & ACK:
            self._drop(seg, now, "no ACK bit")
            return
        if not self._fifth_ack(seg, now):
            return
        # ---- sixth (URG) is not implemented; seventh: the segment text
        st = self.state
        if (st is State.FIN_WAIT_1 or st is State.FIN_WAIT_2) and self.rd_shut \
                and (seg.payload or flags & FIN) \
                and seq_gt(seq_add(seq, len(seg.payload)), self.rcv_nxt):
            # RFC 9293 3.10.7.4 (from RFC 1122 4.2.2.13): new data after close()
            # can never be read; say so with a reset, as Linux (tcp_rcv_state_process,
            # TCPAbortOnData) and BSD do, instead of acknowledging and losing it.
            self.cx.counters.inc("TcpExtTCPAbortOnData")
            self._send_rst(seg.ack, now)
            self._drop(seg, now, "data after close(): connection reset (RFC 9293 3.10.7.4)")
            self._terminate(now, "reset", "data arrived after close()")
            return
        if seg.payload and (st is State.ESTABLISHED or st is State.FIN_WAIT_1
                            or st is State.FIN_WAIT_2):
            self._seventh_text(seg, seq, now)
        # (CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its FIN; data
        # beyond it is ignored.)
        # ---- eighth: the FIN bit
        if flags & FIN:
            fseq = seq_add(seq, len(seg.payload))
            if self.peer_fin_seq is None or fseq == self.peer_fin_seq:
                self.peer_fin_seq = fseq
            if not seg.payload and seq_gt(fseq, self.rcv_nxt) and (
                    st is State.ESTABLISHED or st is State.FIN_WAIT_1
                    or st is State.FIN_WAIT_2):
                # A FIN alone beyond a hole is an out-of-order segment like any other:
                # a duplicate ACK at once (RFC 5681 4.2; Linux queues it out of order,
                # its SACK block covering the FIN)
                self.cx.counters.inc("TcpExtTCPOFOQueue")
                if self.sacks is not None:
                    self.sacks.on_ofo(fseq, seq_add(fseq, 1))
                self.send_ack(now)
        if self.peer_fin_seq is not None and self.rcv_nxt == self.peer_fin_seq:
            self._eighth_fin(now)
        elif self.ack_pending and self.delack_at is None and self.state.synchronized:
            self.send_ack(now)
        self.output(now)

    def _acceptable(self, seq: int, seg: TcpSegment) -> bool:
        """The four cases of RFC 9293 3.10.7.4 'first, check sequence number'."""
        seg_len = seg.seg_len
        nxt = self.rcv_nxt
        wnd = self.rcv_wnd
        adv = seq_sub(self.rcv_adv, nxt)
        if adv > wnd:
            wnd = adv  # what we advertised stays valid
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return ((seq - nxt) & MASK) < wnd
        if wnd == 0:
            # "special allowance" for ACKs, RSTs (and FINs at RCV.NXT): the
            # segment is accepted so that its control bits and ACK are
            # processed; its text is trimmed off in the seventh step.
            return seq == nxt
        return ((seq - nxt) & MASK) < wnd or ((seq + seg_len - 1 - nxt) & MASK) < wnd

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
            self._drop(seg, now, f"{reason}: ACK rate-limited")
            return
        if seg.seg_len == 0:
            self.last_oow_ack = now
        elif seq_lt(seg.seq, self.rcv_nxt):
            # Linux tcp_send_dupack: an old segment with data is reported as a D-SACK.
            end = seq_add(seg.seq, seg.seg_len)
            self._dsack(seg.seq, end if seq_lt(end, self.rcv_nxt) else self.rcv_nxt)
        self.send_ack(now)
        self._drop(seg, now, reason)

    def _challenge_ack(self, seg: TcpSegment, now: float, reason: str) -> None:
        """RFC 5961 3.2/4.2/5.2: answer with an ACK, rate-limited per host."""
        if self.cx.challenge.allow(now):
            self.cx.counters.inc("TcpExtTCPChallengeACK")
            self.send_ack(now)
            self._drop(seg, now, f"{reason}: challenge ACK")
        else:
            self._drop(seg, now, f"{reason}: challenge ACK rate-limited")

    def _second_rst(self, seg: TcpSegment, seq: int, now: float) -> None:
        st = self.state
        if self.config.rfc5961 and seq != self.rcv_nxt:
            # RFC 5961 3.2: in window but not exactly RCV.NXT.
            self._challenge_ack(seg, now, "RST in window, not at RCV.NXT (RFC 5961 3.2)")
            return
        self._drop(seg, now, "RST accepted", accepted=True)
        if st is State.SYN_RECEIVED and self.passive and not self.tfo_child:
            # RFC 9293: return to LISTEN (the listener forgets the half-open entry).
            self.cx.counters.inc("TcpAttemptFails")
            self._back_to_listen(now, "RST in SYN-RECEIVED: back to LISTEN")
        elif st is State.SYN_RECEIVED and self.tfo_child:
            # A Fast Open child is a full socket, maybe accepted already: it is reset.
            self.cx.counters.inc("TcpAttemptFails")
            self._terminate(now, "reset", "RST in SYN-RECEIVED (Fast Open child)")
        elif st is State.SYN_RECEIVED:
            self.cx.counters.inc("TcpAttemptFails")
            self._terminate(now, "refused", "RST in SYN-RECEIVED (active open)")
        else:
            if st is State.ESTABLISHED or st is State.CLOSE_WAIT:
                self.cx.counters.inc("TcpEstabResets")
            self._terminate(now, "reset", f"RST in {st.value}")

    def _fourth_syn(self, seg: TcpSegment, now: float) -> None:
        st = self.state
        if st is State.SYN_RECEIVED and self.passive:
            # RFC 9293 3.10.7.4 fourth: back to LISTEN.
            self._back_to_listen(now, "SYN in window in SYN-RECEIVED: back to LISTEN")
            return
        if self.config.rfc5961:
            self.cx.counters.inc("TcpExtTCPSYNChallenge")
            self._challenge_ack(seg, now, f"SYN in {st.value} (RFC 5961 4.2)")
            return
        # RFC 793: a SYN in the window is an error: reset the connection.
        self._send_rst(self.snd_nxt, now)
        self._drop(seg, now, "SYN in window (RFC 793): connection reset")
        self._terminate(now, "reset", "SYN in window (RFC 793)")

    def _fifth_ack(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth step, with RFC 5961 5.2.  False: stop processing."""
        ack = seg.ack
        st = self.state
        if st is State.SYN_RECEIVED:
            lst = self.listener
            if self.passive and not self.tfo_child and lst is not None and not lst.closed \
                    and lst.accept_queue_full():
                self.cx.counters.inc("TcpExtListenOverflows")
                self.cx.counters.inc("TcpExtListenDrops")
                if self.config.abort_on_overflow:
                    # tcp_abort_on_overflow 1: tell the client at once with a RST.
                    self._send_rst(ack, now)
                    self._drop(seg, now, "accept queue full: RST (tcp_abort_on_overflow 1)")
                    self._back_to_listen(now, "accept queue full (tcp_abort_on_overflow 1)")
                    return False
                # The accept queue is full: like Linux (tcp_abort_on_overflow
                # 0), drop the ACK and stay half-open; the SYN-ACK's
                # retransmission invites the peer to ACK again later.
                self._drop(seg, now, "accept queue full: ACK dropped")
                return False
            if seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_max):
                self.snd_wnd = seg.window << self.snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1 = seg.seq
                self.snd_wl2 = ack
                if self.snd_una == self.iss:
                    self.delivered += 1   # our SYN-ACK
                self._ack_advance(ack, now, _tsecr(seg) if self.ts.ok else 0)
                self._establish(now, "ACK of SYN-ACK")
                if self.fin_queued:
                    self.set_state(State.FIN_WAIT_1, "queued close", now)
            else:
                self._send_rst(ack, now)
                self._drop(seg, now, "unacceptable ACK in SYN-RECEIVED")
                return False
            return True
        snd_una = self.snd_una
        # RFC 5961 5.2: (SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT, else drop and ACK.
        if seq_gt(ack, self.snd_max):
            self._oow_ack(seg, now, "ACK of data not yet sent")
            return False
        if self.config.rfc5961 and seq_lt(ack, seq_add(snd_una, -max(self.max_snd_wnd, 1))):
            self._challenge_ack(seg, now, "ACK too old (RFC 5961 5.2)")
            return False
        wnd = seg.window << self.snd_wscale
        if self.lcc is not None:
            self._linux_ack(seg, ack, wnd, now)
        elif seq_gt(ack, snd_una):
            self._ack_advance(ack, now, _tsecr(seg) if self.ts.ok else 0)
        elif ack == snd_una and not seg.payload and not seg.flags & FIN \
                and wnd == self.snd_wnd != 0 and self.snd_max != snd_una:
            # A duplicate ACK (RFC 5681 2).  The answer to a zero-window probe
            # is not one: the probe octet was outside the window, nothing is lost.
            if self.cc.on_dupack(seq_sub(self.snd_max, snd_una), self.snd_max, self.snd_mss):
                self.cx.counters.inc("TcpExtTCPFastRetrans")
                self._retransmit_first(now)
        # Window update (RFC 9293 3.10.7.4): only from a newer segment.
        seq = seg.seq
        wl1 = self.snd_wl1
        if seq_lt(wl1, seq) or (wl1 == seq and seq_le(self.snd_wl2, ack)):
            if wnd and not self.snd_wnd and self.persist_at is not None:
                self.persist_at = None
                self._timer_trace(now, "persist", "cancelled", None)
                self.backoff = 0
            self.snd_wnd = wnd
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        st = self.state
        fin_acked = self.fin_seq is not None and seq_gt(self.snd_una, self.fin_seq)
        if st is State.FIN_WAIT_1 and fin_acked:
            self.set_state(State.FIN_WAIT_2, "our FIN acknowledged", now)
            if self.app_closed and self.config.fin_wait_2_timeout > 0:
                self._arm_fw2(now)
        elif st is State.CLOSING and fin_acked:
            self._enter_time_wait(now, "our FIN acknowledged in CLOSING")
            return False
        elif st is State.LAST_ACK and fin_acked:
            self._terminate(now, None, "our FIN acknowledged in LAST-ACK")
            return False
        return True

    def _ack_advance(self, ack: int, now: float, tsecr: int = 0) -> list[Sent]:
        """New data acknowledged: free the buffer, sample RTT, grow cwnd.  Returns the
        segments that left the scoreboard (a Linux sender's)."""
        acked = seq_sub(ack, self.snd_una)
        if self.snd_una == self.iss:
            acked -= 1  # our SYN: a sequence number, not data; it does not grow cwnd
        done: list[Sent] = []
        rtt: float | None = None
        if self.lcc is not None:
            done = self.score.on_cumulative(ack)
            # Linux (tcp_clean_rtx_queue): every ACK of data never retransmitted is a
            # sample, from the oldest segment it covers; timestamps only when none is.
            if done and not any(d.retrans for d in done):
                rtt = now - done[0].sent_at
        if rtt is None and self.ts.ok:
            rtt = self.ts.rtt(tsecr, now)
        if rtt is not None:
            self.rtt.sample(rtt)  # RFC 7323 4.1: every ACK of new data is a sample
            self.rtt.forget()
        else:
            self.rtt.on_ack(ack, now)  # RFC 6298 (2.2)/(2.3), Karn's rule
        self.snd_una = ack
        self.retrans_stamp = None
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        n = seq_sub(ack, self.sndbuf_seq)
        if n > 0:
            k = min(n, len(self.sndbuf))
            self.sndbuf.consume(k)
            self.sndbuf_seq = seq_add(self.sndbuf_seq, k)
        self.rtx_count = 0
        self.backoff = 0
        # Congestion control (RFC 5681 3.1) and NewReno recovery (RFC 6582).
        if self.lcc is None and acked > 0 and \
                self.cc.on_ack(acked, seq_ge(ack, self.cc.recover), self.snd_mss):
            self._retransmit_first(now)  # partial ACK: the next hole
        # RFC 6298 (5.2)/(5.3): stop or restart the timer.
        if self.snd_una == self.snd_max:
            self._cancel_rtx(now)
        else:
            self._set_rtx(now, RTX_RTO, now + self.rtt.rto)
        if self.send_space > 0:
            self._event(EV_WRITABLE)
        return done

    # ------------------------------------------------------------ Linux's sender

    def _linux_ack(self, seg: TcpSegment, ack: int, wnd: int, now: float) -> None:
        """An acceptable ACK, as Linux's tcp_ack handles it: cumulative and selective
        acknowledgments update the scoreboard, RACK (RFC 8985) or three duplicate
        ACKs (without SACK) find losses, the congestion state moves
        (tcp_fastretrans_alert), the window grows or PRR shrinks it, and lost
        segments are retransmitted as far as the window allows."""
        lcc = self.lcc
        assert lcc is not None
        score = self.score
        snd_una = self.snd_una
        advanced = seq_gt(ack, snd_una)
        prior_fack = score.highest_sack_seq(snd_una, self.snd_nxt) if self.sack_ok else snd_una
        acked: list[Sent] = []
        if advanced:
            if snd_una == self.iss:
                self.delivered += 1   # our SYN
            acked = self._ack_advance(ack, now, _tsecr(seg) if self.ts.ok else 0)
        sacked: list[Sent] = []
        if self.sack_ok:
            blocks = seg.sack_blocks
            if blocks:
                sacked = score.on_sack(blocks, self.snd_una, self.snd_max)
                score.check_reordering(score.reord_low,
                                       score.highest_sack_seq(self.snd_una, self.snd_nxt),
                                       self.snd_mss)
            # A hole filled by data never resent: reordering (tcp_clean_rtx_queue).
            low = next((s.start for s in acked if not s.sacked and not s.retrans), None)
            if low is not None and seq_lt(low, prior_fack):
                score.check_reordering(low, score.highest_sack_seq(self.snd_una, self.snd_nxt),
                                       self.snd_mss)
        delivered = len(acked) + len(sacked)
        self.delivered += delivered
        newly_lost = 0
        reo_armed = False
        if self.sack_ok and self.config.rack:
            if score.rack_update(sacked + acked, now):
                newly_lost, wait = score.rack_detect(now, self._reo_wnd())
                if wait > 0:
                    self._arm_reo(now, wait)
                    reo_armed = True
        elif self.sack_ok:
            newly_lost = score.mark_lost(self.snd_mss)   # RFC 6675 IsLost
        else:
            dup = not advanced and ack == snd_una and not seg.payload and \
                not seg.flags & FIN and wnd == self.snd_wnd != 0 and self.snd_max != snd_una
            if dup:
                self.dupacks += 1
                score.reno_sacked = min(self.dupacks, max(score.packets_out - 1, 0))
                delivered += 1      # Linux counts a duplicate ACK as one packet delivered
            elif advanced:
                self.dupacks = 0
                score.reno_sacked = 0
            if self.dupacks >= 3 and lcc.ca_state < CA_RECOVERY:
                newly_lost += score.mark_head_lost()
        # The congestion state (tcp_fastretrans_alert).
        if lcc.ca_state == CA_RECOVERY and seq_ge(self.snd_una, lcc.high_seq):
            lcc.end_recovery()
        elif lcc.ca_state == CA_LOSS and seq_ge(self.snd_una, lcc.high_seq):
            lcc.ca_state = CA_OPEN
        if lcc.ca_state < CA_RECOVERY and score.lost_out:
            lcc.enter_recovery(self.snd_max)
            self.cx.counters.inc("TcpExtTCPFastRetrans")
        # The window (tcp_cong_control): PRR while recovering, else slow start or
        # congestion avoidance for what new data was delivered.
        if lcc.ca_state == CA_RECOVERY:
            lcc.reduce(delivered, newly_lost, advanced, score.in_flight())
        elif advanced and acked:
            lcc.grow(delivered, self._cwnd_may_grow())
        if self.tlp_high is not None and seq_ge(self.snd_una, self.tlp_high):
            self.tlp_high = None   # the probe's round is over
        self._xmit_lost(now)
        if advanced and not reo_armed and self.snd_una != self.snd_max:
            self._schedule_tlp(now, True)   # tcp_set_xmit_timer

    def _schedule_tlp(self, now: float, advancing: bool) -> None:
        """Linux tcp_schedule_loss_probe (RFC 8985 7.2): with SACK and no recovery under
        way, probe after two round trips (plus the delayed-ACK allowance when one
        segment is out), or when the RTO would fire, if sooner."""
        lcc = self.lcc
        if lcc is None or not self.config.tlp or not self.sack_ok or self.tfo_child \
                or lcc.ca_state != CA_OPEN or self.tlp_high is not None or not self.score \
                or (self.rtx_at is not None and self.rtx_kind == RTX_REO):
            return
        srtt = self.rtt.srtt
        if srtt is not None:
            pto = 2 * srtt + (self.config.rto_min if self.score.packets_out == 1 else
                              TIMEOUT_MIN)
        else:
            pto = self.config.rto_initial
        rto = self.rtt.rto
        if not advancing:
            rto = self.score.segs[0].sent_at + rto - now   # tcp_rto_delta_us
        if rto > 0:
            pto = min(pto, rto)
        self._set_rtx(now, RTX_TLP, now + pto)

    def _tlp_fire(self, now: float) -> None:
        """Linux tcp_send_loss_probe (RFC 8985 7.3): send one new segment if the windows
        allow, else resend the last one; then the RTO timer runs from now."""
        if self.tlp_high is None and self.state.synchronized:
            before = self.cx.counters.out_segs
            if len(self.sndbuf) > seq_sub(self.snd_nxt, self.sndbuf_seq):
                self.output(now, push=True, probe=True)
            if self.cx.counters.out_segs == before and self.score:
                last = len(self.score.segs) - 1
                self.score.split(last, self.snd_mss)
                self._retransmit_sent(self.score.segs[-1], now)
            if self.cx.counters.out_segs != before:
                self.tlp_high = self.snd_nxt
                self.cx.counters.inc("TcpExtTCPLossProbes")
        self.rtx_kind = RTX_RTO
        if self.snd_una != self.snd_max:
            self._arm_rtx(now)
        else:
            self.rtx_at = None

    def _reo_wnd(self) -> float:
        """RACK's reordering window (RFC 8985 6.2 step 4): a quarter of the minimum RTT;
        until reordering is seen, none during recovery or once as many segments as the
        duplicate-ACK threshold (3, tcp_reordering) are SACKed (Linux tcp_rack_reo_wnd:
        RFC 8985 6.2 allows this DupThresh rule for starting recovery)."""
        lcc = self.lcc
        score = self.score
        if not score.reord_seen and lcc is not None and (
                lcc.ca_state >= CA_RECOVERY or score.sacked_out >= DUPTHRESH):
            return 0.0
        base = score.min_rtt if score.min_rtt >= 0 else (self.rtt.srtt or 0.0)
        srtt = self.rtt.srtt
        wnd = base / 4
        return min(wnd, srtt) if srtt is not None else wnd

    def _arm_reo(self, now: float, wait: float) -> None:
        """RACK's reordering timer (Linux ICSK_TIME_REO_TIMEOUT, on the retransmission
        timer): look again when the oldest suspect has waited long enough."""
        self._set_rtx(now, RTX_REO, now + wait + TIMEOUT_MIN)

    def _reo_fire(self, now: float) -> None:
        """Linux tcp_rack_reo_timeout: mark what has waited too long lost and recover."""
        lcc = self.lcc
        assert lcc is not None
        newly, wait = self.score.rack_detect(now, self._reo_wnd())
        if newly:
            if lcc.ca_state != CA_RECOVERY:
                lcc.enter_recovery(self.snd_max)
                self.cx.counters.inc("TcpExtTCPFastRetrans")
                lcc.reduce(1, newly, False, self.score.in_flight())
            self._xmit_lost(now)
        if self.rtx_at is None or self.rtx_kind == RTX_REO:
            if wait > 0:
                self._arm_reo(now, wait)
            elif self.snd_una != self.snd_max:
                self.rtx_kind = RTX_RTO
                self._arm_rtx(now)

    def _xmit_lost(self, now: float) -> None:
        """Linux tcp_xmit_retransmit_queue: resend lost segments, oldest first, while
        the window has room."""
        lcc = self.lcc
        assert lcc is not None
        score = self.score
        while True:
            i = score.next_lost()
            if i is None or score.in_flight() >= lcc.cwnd:
                return
            score.split(i, self.snd_mss)
            self._retransmit_sent(score.segs[i], now)
            if lcc.ca_state == CA_RECOVERY:
                lcc.prr_out += 1

    def _retransmit_sent(self, s: Sent, now: float) -> None:
        """Resend one segment of the scoreboard as it was first sent."""
        fin_seq = self.fin_seq
        data_end = s.end
        flags = ACK
        if fin_seq is not None and seq_gt(s.end, fin_seq):
            data_end = fin_seq
            flags |= FIN
        off = seq_sub(s.start, self.sndbuf_seq)
        size = seq_sub(data_end, s.start)
        if off < 0 or size < 0:
            return
        payload = self.sndbuf.take(off, size)
        if payload and (off + size == len(self.sndbuf) or (self.eor_marks is not None and data_end in self.eor_marks)):
            flags |= PSH
        if not self._send(self._make(flags, s.start, now, payload), now):
            return
        s.retrans_out = True
        s.retrans += 1
        s.sent_at = now
        s.stamp = self.score.stamp(now)
        self.rtt.forget()  # Karn's rule
        self.cx.counters.inc("TcpRetransSegs")
        if self.retrans_stamp is None:
            self.retrans_stamp = now
        if self.rtx_at is None:
            self._arm_rtx(now)

    def _seventh_text(self, seg: TcpSegment, seq: int, now: float) -> None:
        """Accept data: trim to the window, reassemble, decide how to ACK.

        A FIN that follows the data in order is acknowledged with it, by one ACK
        in the eighth step (not one for the data now and one for the FIN later)."""
        payload = seg.payload
        if seg.flags & SYN:
            seq = seq_add(seq, 1)
        # Trim what we already have (overlap at the left edge).
        skip = seq_sub(self.rcv_nxt, seq)
        if skip > 0:
            if skip >= len(payload):
                self._dsack(seq, seq_add(seq, len(payload)))
                self.send_ack(now)  # a pure duplicate: ACK at once
                return
            self._dsack(seq, self.rcv_nxt)
            payload = payload[skip:]
            seq = self.rcv_nxt
        # Trim to the right edge of the window (a FIN beyond it is ignored).
        room = self.rcv_wnd - seq_sub(seq, self.rcv_nxt)
        if room <= 0:
            self.send_ack(now)
            return
        trimmed = len(payload) > room
        if trimmed:
            payload = payload[:room]
        if seq == self.rcv_nxt:
            filled_gap = bool(self.ooo)
            self._accept_in_order(payload)
            self._pull_ooo()
            if self.sacks is not None and filled_gap:
                self.sacks.on_advance(self.rcv_nxt, not self.ooo)
            self.ack_pending += len(payload)
            self._grow_window()
            self.acks.on_data(now, self.rcv_wnd, self.rcv_mss, len(payload))
            if ((seg.flags & FIN and not trimmed) or self.peer_fin_seq == self.rcv_nxt) \
                    and not self.ooo:
                return  # the FIN is next in order: the eighth step ACKs both at once
            if filled_gap or self.ooo or self.config.delayed_ack <= 0 \
                    or self.ack_pending >= 2 * self.rcv_mss or self.acks.now():
                self.send_ack(now)
            else:
                self._arm_delack(now)
        else:
            self.cx.counters.inc("TcpExtTCPOFOQueue")
            end = seq_add(seq, len(payload))
            if self.sacks is not None:
                dup = self.ooo.overlap(seq, end, self.rcv_nxt)
                if dup is not None:
                    self._dsack(dup[0], dup[1])
                self.sacks.on_ofo(seq, end)
            self._grow_window()
            self.ooo.insert(seq, payload, self.rcv_nxt)
            self.send_ack(now)  # out of order: a duplicate ACK at once (RFC 5681 4.2)

    def _dsack(self, seq: int, end: int) -> None:
        """Data [seq, end) arrived again: report it with a D-SACK block (RFC 2883)."""
        if self.sacks is not None and self.config.dsack:
            self.cx.counters.inc("TcpExtTCPDSACKOldSent" if seq_lt(seq, self.rcv_nxt)
                                 else "TcpExtTCPDSACKOfoSent")
            self.sacks.set_dsack(seq, end)

    def _accept_in_order(self, data: bytes) -> None:
        if self.rd_shut:
            # Data after close(): Linux answers with RST; we discard and ACK.
            self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
            return
        self.rcvbuf.append(data)
        self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
        self._event(EV_DATA)

    def _pull_ooo(self) -> None:
        while True:
            data = self.ooo.pop_ready(self.rcv_nxt)
            if data is None:
                return
            self._accept_in_order(data)

    def _eighth_fin(self, now: float) -> None:
        """The peer's FIN, now in order (RFC 9293 3.10.7.4 eighth)."""
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.ooo.clear()
        if self.sacks is not None:
            self.sacks.blocks = []
        st = self.state
        self._event(EV_EOF)
        if st is State.SYN_RECEIVED or st is State.ESTABLISHED:
            self.set_state(State.CLOSE_WAIT, "FIN received", now)
            with_data = self.ack_pending > 0
            self.acks.on_fin()
            # Like Linux, the ACK of a lone FIN is delayed: if the application
            # closes at once, the ACK rides on our FIN (three-segment close).
            # Data that came with the FIN is ACKed at once, FIN included.
            if with_data or self.config.delayed_ack <= 0 or self.acks.now():
                self.send_ack(now)
            else:
                self.ack_pending += 1
                self._arm_delack(now)
        elif st is State.FIN_WAIT_1:
            self.send_ack(now)
            if self.fin_seq is not None and seq_gt(self.snd_una, self.fin_seq):
                self._enter_time_wait(now, "FIN received in FIN-WAIT-1, FIN acked")
            else:
                self.set_state(State.CLOSING, "FIN received (simultaneous close)", now)
        elif st is State.FIN_WAIT_2:
            self.send_ack(now)
            self._enter_time_wait(now, "FIN received in FIN-WAIT-2")
        else:
            self.send_ack(now)

    # ------------------------------------------------------------ SYN-SENT

    def _trim_acked(self, ack: int) -> None:
        """Free what ``ack`` acknowledges of the send buffer (data a SYN carried)."""
        n = seq_sub(ack, self.sndbuf_seq)
        if n > 0:
            k = min(n, len(self.sndbuf))
            self.sndbuf.consume(k)
            self.sndbuf_seq = seq_add(self.sndbuf_seq, k)
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self.lcc is not None:
            self.score.on_cumulative(ack)

    def _fastopen_synack(self, seg: TcpSegment, now: float) -> bool:
        """The SYN-ACK of a Fast Open SYN (Linux tcp_rcv_fastopen_synack): remember the
        server's cookie and MSS for next time, and say whether data the SYN carried
        must be sent again (the server acknowledged only the SYN, RFC 7413 4.1.2)."""
        fo = seg.fastopen
        cookie = peer_cookie(fo.cookie if fo is not None else None)
        exp = fo is not None and fo.exp
        syn_end = seq_add(self.iss, 1 + self.syn_data_len)
        unacked = self.syn_data_len > 0 and seq_lt(self.snd_una, syn_end)
        syn_drop = False
        try_exp = 0
        if not self.fo_syn:
            cookie = None   # a cookie nobody asked for is ignored
        elif self.rtx_count:
            # The SYN was retransmitted (without data): the SYN with data, or its
            # SYN-ACK, was lost on the way; remember it.
            syn_drop = cookie is None and unacked
        elif cookie is None and not self.syn_data_len:
            # We asked for a cookie and got none: next time ask in the other format.
            try_exp = 2 if self.fo_exp else 1
        self.cx.fastopen_cache.set(self.raddr, seg.mss, cookie or None, exp, syn_drop,
                                   try_exp, now)
        if unacked:
            self.cx.counters.inc("TcpExtTCPFastOpenActiveFail")
            if self.lcc is not None:
                for s in self.score.segs:
                    if seq_lt(s.start, syn_end):
                        s.lost = True
                self.lcc.non_congestion_loss(self.snd_max)
            return True
        self.syn_data_acked = self.syn_data_len > 0
        if self.syn_data_acked:
            self.cx.counters.inc("TcpExtTCPFastOpenActive")
        return False

    def _syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3."""
        flags = seg.flags
        ack = seg.ack
        ack_ok = False
        # first: the ACK bit
        if flags & ACK:
            if seq_le(ack, self.iss) or seq_gt(ack, self.snd_max):
                if not flags & RST:
                    # An old duplicate SYN-ACK (RFC 9293 Figure 8): reset it.
                    self._send_rst(ack, now)
                rearm = self.config.synsent_rst_rearm
                if rearm is not None and self.rtx_count == 0:
                    # Linux: "Previous FIN/ACK or RST/ACK might be ignored": the SYN goes
                    # again almost at once (a peer's stale connection is likely gone now)
                    self._set_rtx(now, RTX_RTO, now + rearm)
                self._drop(seg, now, "unacceptable ACK in SYN-SENT")
                return
            ack_ok = seq_le(self.snd_una, ack) and seq_le(ack, self.snd_max)
        # second: the RST bit
        if flags & RST:
            if ack_ok:
                self._drop(seg, now, "RST accepted", accepted=True)
                self.cx.counters.inc("TcpAttemptFails")
                self._terminate(now, "refused", "RST in SYN-SENT")
            else:
                self._drop(seg, now, "RST without acceptable ACK in SYN-SENT")
            return
        # fourth: the SYN bit
        if not flags & SYN:
            self._drop(seg, now, "neither SYN nor RST in SYN-SENT")
            return
        tso = seg.timestamps
        first = self.syn_tsval
        if flags & ACK and tso is not None and tso.tsecr and first is not None and \
                not ts_between(tso.tsecr, first, self.ts.val(now)):
            # Linux (tcp_rcv_synsent_state_process): a SYN-ACK echoing a timestamp we
            # never sent answers another SYN: reset it (PAWSActiveRejected).
            self.cx.counters.inc("TcpExtPAWSActive")
            self._send_rst(ack, now)
            self._drop(seg, now, "SYN-ACK echoes a timestamp we did not send: RST")
            return
        if flags & FIN and self.config.drop_synfin:
            self._drop(seg, now, "SYN+FIN dropped (drop_synfin)")
            return
        self.irs = seg.seq
        self.rcv_nxt = seq_add(self.irs, 1)
        self.rcv_adv = self.rcv_nxt  # nothing advertised yet
        self._apply_peer_syn(seg, our_wscale(self.config, self.rcv_buf) is not None, now)
        if flags & ACK:
            self.snd_una = ack
            self.rtt.on_synack(now)
            self.delivered += 1   # our SYN (and the data it carried counts with it)
            self.ecn_ok = self.config.ecn == 1 and flags & (ECE | CWR) == ECE
            if self.syn_data_len:
                self._trim_acked(ack)
        lost_syn_data = False
        if flags & ACK and (self.fo_syn or self.syn_data_len):
            lost_syn_data = self._fastopen_synack(seg, now)
        if seq_gt(self.snd_una, self.iss):
            self.snd_wnd = seg.window  # a SYN's window is never scaled (RFC 7323 2.2)
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.irs
            self.snd_wl2 = ack
            self._cancel_rtx(now)
            self.rtt.handshake_fallback(self.rtx_count > 0, self.config.rto_initial)
            self.rtx_count = 0
            self.set_state(State.ESTABLISHED, "SYN-ACK received", now)
            self._start_keepalive(now)
            if seg.payload:
                # Text on the SYN-ACK goes through the seventh step: trimmed to the window.
                self._accept_in_order(seg.payload[:self.rcv_wnd])
            self._event(EV_CONNECTED)
            if self.fin_queued:
                self.set_state(State.FIN_WAIT_1, "queued close", now)
            # The third segment: it carries queued data if the application
            # already sent some (RFC 9293 3.10.7.3 allows this), or the data of a
            # Fast Open SYN that was not acknowledged (RFC 7413 4.1.2).
            before = self.cx.counters.out_segs
            if len(self.sndbuf) > seq_sub(self.snd_nxt, self.sndbuf_seq):
                # A writer waits for the handshake (Linux sk_write_pending): the ACK
                # will ride on its data, and quick-ACK mode starts now.
                self.acks.on_synack_write_pending(now)
            if lost_syn_data:
                if self.lcc is not None:
                    self._xmit_lost(now)
                else:
                    self.snd_nxt = self.snd_una   # go back and send it again
            self.output(now)
            if flags & FIN:
                self.peer_fin_seq = seq_add(self.irs, 1 + len(seg.payload))
            if self.peer_fin_seq is not None and self.rcv_nxt == self.peer_fin_seq:
                self.ack_pending += len(seg.payload)
                self._eighth_fin(now)   # one ACK for the SYN, its text and its FIN
            elif self.cx.counters.out_segs == before:
                self.send_ack(now)
        else:
            # Simultaneous open: SYN-SENT -> SYN-RECEIVED, send SYN,ACK.
            self.snd_wnd = seg.window
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.irs
            if seg.payload and self.config.syn_data_queued:
                self.syn_data = seg.payload[:self.rcv_wnd]
            self.set_state(State.SYN_RECEIVED, "SYN received in SYN-SENT (simultaneous open)",
                           now)
            self._send_syn(now, with_ack=True)
