"""Run one packetdrill script against a fresh :class:`~tcplab.engine.Host`, in virtual time.

Theory of operation
-------------------
The engine is sans-I/O, so the interpreter is its whole world: the clock,
the wire and the application.  Events run in script order.  Each has a
scheduled time: absolute, relative to the previous event (to the moment an
outbound packet was actually sent, as packetdrill adjusts relative times),
a range ``a~b``, or ``*`` (any time).

* Before an inbound packet, a system call, a shell or code line at time T,
  the engine's timers due by T fire; a packet it sent before T that no line
  expected fails the script ("unexpected packet").
* An inbound packet ``<`` is built with the remote side's numbers literal
  and the ACK relative to our ISN, and handed to ``Host.receive_segment``.
* An outbound packet ``>`` takes the next packet the engine sent, firing
  timers up to T + tolerance to get one, and checks its time (within
  ``--tolerance_usecs``, 4 ms by default) and content (:mod:`.matcher`).
* At the end, a packet sent that no line consumed fails the script.
* A blocking call with a duration (``+0...0.2 accept(...)``) starts at its
  time; while it blocks the script goes on (packetdrill runs it in a
  thread), and after every step of the engine the call is tried again.  It
  must return within the tolerance of its end time.

Nothing sleeps: a script that waits 65 s runs in microseconds.

The ``linux`` profile (:mod:`.linux`) first checks that the engine has what
the script observes (timestamps, SACK, Fast Open, ...) and skips it with
every missing feature named; its shell lines go through the Linux sysctl
table; a TSO-sized expected packet is matched against the run of engine
segments sent at that moment (recorded as an adaptation).
"""

from __future__ import annotations

import errno as E
import random
import re
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.engine import Connection, Host, State, TcpConfig, TcpError
from tcplab.packetdrill import tcpinfo
from tcplab.packetdrill.linux import (
    FEATURES,
    NEEDS,
    NEEDS_RUNNER,
    RUNNER_OPTIONS,
    SOCKOPT_FEATURES,
    LinuxSettings,
    LinuxShell,
    ShellFailed,
    linux_config,
    needs,
)
from tcplab.packetdrill.matcher import MASK, Context, match, packet_text, wire_option
from tcplab.packetdrill.profile import (
    FREEBSD_STATES,
    Profile,
    Skip,
    SysctlState,
    apply_sysctl,
    parse_sockstat,
    parse_sysctl,
    parse_tcpdrop,
)
from tcplab.packetdrill.report import ERROR, FAIL, PASS, SKIP, Result
from tcplab.packetdrill.script import (
    ELLIPSIS,
    BitOr,
    CodeSpec,
    Event,
    IcmpSpec,
    Ident,
    ListArg,
    PacketSpec,
    Script,
    ScriptError,
    ShellSpec,
    StructArg,
    SyscallSpec,
    TimeSpec,
    load_script,
)
from tcplab.packetdrill.sockets import (
    EPOLLET,
    EPOLLONESHOT,
    O_RDWR,
    POLL_BITS,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    PORT,
    EpollItem,
    Sock,
    SocketLayer,
    SysError,
    WouldBlock,
)
from tcplab.trace import Trace
from tcplab.wire.seq import seq_in_window
from tcplab.wire.tcp import ACK, FIN, RST, SYN, TcpOption, TcpSegment, Timestamps

LOCAL4, REMOTE4 = "192.168.0.1", "192.0.2.1"
LOCAL6, REMOTE6 = "fd3d:fa7b:d17d::1", "2001:db8::1"
REMOTE_PORT = 40000          #: the remote port packetdrill's peer uses towards a listener
_EPS = 1e-9
MAX_IO = 1 << 24             #: a read/write length beyond 16 MiB is refused (hostile scripts)
#: Options every profile accepts: addresses, tolerances, the peer's TS clock.
_OPTIONS = ("ip_version", "tolerance_usecs", "mtu", "local_ip", "remote_ip", "mss",
            "tcp_ts_tick_usecs", "tcp_ts_ecr_scaled", "strict_segments")
# --mss: the segment size of the peer's coalesced (GRO) packets, not our MSS.
_IOCTLS = ("SIOCINQ", "FIONREAD", "SIOCOUTQ", "TIOCOUTQ", "SIOCOUTQNSD")


class Fail(Exception):
    def __init__(self, reason: str, actual: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.actual = actual


@dataclass(slots=True)
class _Sent:
    t: float
    seg: TcpSegment


@dataclass(slots=True)
class _Pending:
    """A system call in progress: blocking, or with a duration (``a...b``)."""

    sc: SyscallSpec
    event: Event | None
    start: float
    end: float | None            #: the script's expected return time (None: at once)
    deadline: float | None = None  #: a poll/epoll timeout
    done: int = 0                #: octets a blocking write has queued so far
    connecting: bool = False     #: linux: a blocking write queued its data, waits for the SYN-ACK


@dataclass(slots=True)
class _Tuple:
    """What the interpreter learns about one connection (local port, remote port)."""

    isn: int = 0                 #: our ISN minus the script's (``S. 1234:1234``: 1234)
    script_isn: int = 0
    risn: int = 0                #: linux: the peer's ISN; its later numbers count from it
    lisn: int = 0                #: linux: our ISN; our numbers after the SYN count from it

    def ours(self, linux: bool, syn: bool) -> int:
        """What to add to a script's number for ours (packetdrill socket.h: after the
        SYN, numbers are relative to our ISN, whatever ISN the script named)."""
        return self.lisn if linux and not syn else self.isn
    ts_map: dict[int, int] = field(default_factory=dict)  #: script TSval -> our TSval
    ts_first: tuple[int, int] | None = None               #: the first (script, ours) pair
    peer_syn: frozenset[str] = frozenset()
    engine_syn: frozenset[str] = frozenset()
    fb_shift: int = 0
    fb_syn_ws: int | None = None


@dataclass(slots=True)
class Runner:
    script: Script
    profile: Profile
    host: Host = field(init=False)
    socks: SocketLayer = field(init=False)
    now: float = 0.0
    sent: list[_Sent] = field(default_factory=list)
    tuples: dict[tuple[int, int], _Tuple] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sysctl: SysctlState = field(default_factory=SysctlState)
    current: tuple[int, int] = (PORT, REMOTE_PORT)    #: inbound packets go here
    current_fd: int | None = None
    fb_rcvbuf: int = 65536
    tolerance: float = 0.004
    event: Event | None = None
    local: str = LOCAL4
    remote: str = REMOTE4
    rfc_ack_due: tuple[int, int] | None = None  #: an RFC 9293 ACK may answer the last segment
    rfc_rst_due: tuple[int, int, int] | None = None  #: ... or an RFC 9293 RST (no connection)
    pending: list[_Pending] = field(default_factory=list)
    linux: LinuxSettings | None = None
    shell: LinuxShell | None = None
    tso: bool = True             #: linux: expected packets may be TSO-sized
    listens: int = 0             #: linux: listen() calls so far (each gets a remote port)

    def __post_init__(self) -> None:
        opts = self.script.options
        v6 = opts.get("ip_version", "ipv4") == "ipv6" or ":" in opts.get("local_ip", "")
        self.local, self.remote = (LOCAL6, REMOTE6) if v6 else (LOCAL4, REMOTE4)
        self.local = opts.get("local_ip") or self.local
        self.remote = opts.get("remote_ip") or self.remote
        mtu = _option_int(self.script, "mtu", 1500, 68, 65535)
        mss = max(mtu - (60 if v6 else 40), 64)
        _option_int(self.script, "mss", 0, 64, 65535)
        if self.profile.linux:
            config = linux_config()
            config.mss = mss
            self.linux = LinuxSettings(config)
            self.shell = LinuxShell(self.linux, Path(self.script.path).parent,
                                    flush=self._flush_metrics,
                                    counters=lambda: self.host.snmp)
            self.tso = "strict_segments" not in opts
        else:
            # The STANDARD branches (portable) check RFC 9293 3.10.7.4 strictly: without
            # timestamps a SYN in TIME-WAIT gets a challenge ACK, no reopening.
            config = TcpConfig(mss=mss, time_wait_reopen=not self.profile.adapt)
        self.host = Host("tcplab", [self.local], config=config, rng=random.Random(1),
                         trace=Trace(enabled=False))
        self.socks = SocketLayer(self.host, self.local, self.remote,
                                 E.EPIPE if self.profile.linux else E.ENOTCONN,
                                 linux=self.profile.linux)
        if "tolerance_usecs" in opts:
            self.tolerance = _option_int(self.script, "tolerance_usecs", 4000, 0, 10_000_000) / 1e6
        for name in opts:
            if name in _OPTIONS:
                continue
            if name == "non_fatal":
                raise Skip("--non_fatal (errors that do not fail the script)")
            raise Skip(f"--{name} is not supported")

    # ------------------------------------------------------------------ engine glue

    def _flush_metrics(self) -> None:
        """``ip tcp_metrics flush``: Linux keeps the Fast Open cookie cache there."""
        self.host.fastopen.flush()

    def _collect(self) -> None:
        for out in self.host.transmit():
            seg = out.seg
            self.sent.append(_Sent(self.now, seg))
            if seg.flags & SYN:
                tup = self.tuples.setdefault((seg.src_port, seg.dst_port), _Tuple())
                tup.isn = (seg.seq - tup.script_isn) & MASK
                tup.lisn = seg.seq
                tup.engine_syn = frozenset(o.name for o in _names(seg))
        for conn in self.host.conns.values():
            self.socks.conns[(conn.lport, conn.rport)] = conn

    def _step(self) -> None:
        """After the engine moved: collect its packets, retry blocked calls, watch epoll."""
        self._collect()
        if self.pending:
            self._retry_pending()
        if any(s.epoll for s in self.socks.socks.values()):
            self._watch_epoll()

    def _next_wake(self) -> float | None:
        d = self.host.next_deadline()
        for p in self.pending:
            if p.deadline is not None and (d is None or p.deadline < d):
                d = p.deadline
        return d

    def _fire_until(self, t: float, stop_on_packet: bool = False) -> None:
        """Fire timers due by ``t`` (stop early once a packet is out, if asked)."""
        while True:
            if stop_on_packet and self.sent:
                return
            d = self._next_wake()
            if d is None or d > t + _EPS:
                break
            self.now = max(self.now, d)
            self.host.handle_timers(self.now)
            self._step()
        if not (stop_on_packet and self.sent):
            self.now = max(self.now, t)
            if self.pending:
                self._step()

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        if self.profile.linux:
            reasons = needs(self.script, lambda n: n in tcpinfo.TCPI_FIELDS)
            if reasons and not self.profile.explore:
                raise Skip("; ".join(reasons))
            if reasons:
                self.notes.append("explore: run although it " + "; ".join(reasons))
        base = 0.0
        for ev in self.script.events:
            self.event = ev
            t = ev.time
            act = ev.action
            if isinstance(act, PacketSpec) and not act.inbound:
                if t.kind == "any":
                    lo, hi = self.now - self.tolerance, float("inf")
                elif t.kind == "range":
                    r0 = base + t.start if t.start_relative else t.start
                    r1 = base + t.end if t.end_relative else t.end
                    lo, hi = r0 - self.tolerance, r1 + self.tolerance
                else:
                    at = base + t.start if t.kind == "relative" else t.start
                    lo, hi = at - self.tolerance, at + self.tolerance
                if self.profile.adapt and act.flags == ACK and not act.length:
                    # RFC 9293 3.8.6.3 lets an ACK wait (< 0.5 s); FreeBSD ACKs every
                    # second segment at once, the engine after its delayed-ACK timer.
                    hi += self.host.config.delayed_ack
                base = self._outbound(act, lo, hi)
                continue
            if t.kind == "any":
                at = self.now
            elif t.kind == "range":
                at = base + t.start if t.start_relative else t.start
            else:
                at = base + t.start if t.kind == "relative" else t.start
            self._fire_until(at)
            for early in list(self.sent):
                if self.profile.linux:
                    break      # packetdrill reads them at the next outbound line (below)
                if early.t < at - _EPS:
                    if self._rfc_ack_tolerated(early):
                        continue
                    raise Fail("unexpected packet", self._describe(early))
            base = at
            if isinstance(act, PacketSpec):
                self._inbound(act)
            elif isinstance(act, IcmpSpec):
                self._icmp(act)
            elif isinstance(act, SyscallSpec):
                self._syscall(act, at, _block_end(t, at))
            elif isinstance(act, ShellSpec):
                self._shell(act.command)
            elif isinstance(act, CodeSpec):
                self._code(act.code)
            self._step()
        if self.pending:
            last = max((p.end for p in self.pending if p.end is not None), default=self.now)
            self._fire_until(last + self.tolerance)
            if self.pending:
                self.event = self.pending[0].event
                raise Fail(f"{self.pending[0].sc.name}() still blocked at the end of the "
                           "script", "the call never returned")
        while self.sent and self._rfc_ack_tolerated(self.sent[0]):
            pass
        if self.sent and self.profile.linux:
            # packetdrill reads outbound packets only at outbound lines: what is sent
            # after the last one is never read, so it cannot fail the script.
            self.notes.append("packets sent after the script's last outbound line were not "
                              "checked (packetdrill never reads them): " + "; ".join(
                                  self._describe(s) for s in self.sent[:3])
                              + (" ..." if len(self.sent) > 3 else ""))
            self.sent.clear()
        if self.sent:
            self.event = None
            raise Fail("unexpected packet after the last line", self._describe(self.sent[0]))

    def _rfc_ack_tolerated(self, s: _Sent) -> bool:
        """Portable profile: accept the ACK RFC 9293 requires for an unacceptable segment.

        RFC 9293 3.10.7.4 (first, check sequence number): a segment that fails
        the acceptability test is answered with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        and dropped (Linux does the same).  FreeBSD instead still processes the
        ACK field of a segment left of the window, so its scripts expect
        silence.  The extra ACK is consumed (and recorded) only when the
        script's last inbound segment was unacceptable by the RFC's own test.
        """
        seg = s.seg
        if not self.profile.adapt or seg.payload:
            return False
        due = self.rfc_ack_due
        if due is not None and seg.flags == ACK and (seg.src_port, seg.dst_port) == due:
            self.rfc_ack_due = None
            self.sent.remove(s)
            self.notes.append("an ACK answering a segment outside the receive window (RFC "
                              "9293 3.10.7.4 requires it; FreeBSD processes such a segment's "
                              "ACK field instead) was accepted")
            return True
        rst = self.rfc_rst_due
        if rst is not None and seg.flags == RST and (seg.src_port, seg.dst_port, seg.seq) == rst:
            self.rfc_rst_due = None
            self.sent.remove(s)
            self.notes.append("a RST answering an ACK that reached no connection (RFC 9293 "
                              "3.10.7.1/3.10.7.2 require <SEQ=SEG.ACK><CTL=RST>; FreeBSD drops "
                              "a SYN-ACK to a listener silently) was accepted")
            return True
        return False

    def _describe(self, s: _Sent) -> str:
        tup = self.tuples.get((s.seg.src_port, s.seg.dst_port), _Tuple())
        isn = tup.ours(self.profile.linux, bool(s.seg.flags & SYN))
        return f"{s.t:.3f} > {packet_text(s.seg, isn, tup.risn)}"

    # ------------------------------------------------------------------ packets

    def _outbound(self, spec: PacketSpec, lo: float, hi: float) -> float:
        if spec.ip_annotations:
            # The engine writes no IP header fields (TOS, ECN codepoints, TTL): a line
            # that checks them cannot pass, and must not pass unchecked.
            raise Skip("IP-level fields in packets (ttl, tos, ECN codepoints, UDP "
                       "encapsulation)")
        if self.profile.linux:
            self._skip_other_sockets()
        if not self.sent:
            self._fire_until(hi, stop_on_packet=True)
            if self.profile.linux:
                self._skip_other_sockets()
                while not self.sent and self._next_wake() is not None:
                    d = self._next_wake()
                    if d is None or d > hi + _EPS:
                        break
                    self._fire_until(d, stop_on_packet=True)
                    self._skip_other_sockets()
        if not self.sent:
            raise Fail("expected packet not sent", f"nothing sent by {hi:.3f}")
        s = self.sent.pop(0)
        key = (s.seg.src_port, s.seg.dst_port)
        tup = self.tuples.setdefault(key, _Tuple())
        if spec.flags & SYN and s.seg.flags & SYN and spec.seq_start is not None \
                and not spec.absolute:
            # The script names our ISN (``S. 1234:1234``); later numbers count from it.
            tup.script_isn = spec.seq_start
            tup.isn = (s.seg.seq - spec.seq_start) & MASK
            tup.lisn = s.seg.seq
        isn = tup.ours(self.profile.linux, bool(spec.flags & SYN))
        if self.profile.linux and self.tso:
            s = self._tso_run(spec, s, isn)
        if s.t > hi - self.host.config.delayed_ack + _EPS and \
                self.profile.adapt and spec.flags == ACK:
            self.notes.append("a pure ACK came after the engine's delayed-ACK timer where "
                              "FreeBSD ACKs at once (RFC 9293 3.8.6.3 allows the delay)")
        if s.t < lo - _EPS or s.t > hi + _EPS:
            raise Fail(f"packet sent at {s.t:.3f}, expected in [{lo:.3f}, {hi:.3f}]",
                       self._describe(s))
        if spec.flags & SYN:
            ws = next((o.values[0] for o in spec.options or () if o.name == "wscale"), None)
            tup.fb_syn_ws = ws
            if ws is not None and "wscale" in tup.peer_syn:
                tup.fb_shift = ws
        conn = self.socks.conns.get(key)
        ctx = Context(isn, self.profile.adapt, tup.peer_syn, tup.engine_syn,
                      tup.fb_shift, conn.rcv_wscale if conn is not None else 0,
                      self._fb_rcvbuf(conn), conn.rcv_buf if conn is not None
                      else self.host.config.rcv_buf,
                      psh_policy=self.profile.linux,
                      wscale_policy=self.linux is not None and self.linux.wscale_adapted,
                      missing=_missing_options() if self.profile.explore else frozenset(),
                      risn=tup.risn if self.profile.linux else 0)
        notes: list[str] = []
        why = match(spec, s.seg, ctx, notes)
        if why is not None:
            raise Fail(why, self._describe(s))
        self.notes += notes
        if self.profile.linux:
            self._learn_tsval(spec, s.seg, tup)
        return s.t

    @staticmethod
    def _learn_tsval(spec: PacketSpec, seg: TcpSegment, tup: _Tuple) -> None:
        """packetdrill maps the TSval a script writes for our packets to the one we
        sent, so that the peer's TSecr in later lines can name it (run_packet.c)."""
        want = next((o.values[0] for o in spec.options or () if o.name == "TS"), None)
        have = seg.timestamps
        if want is None or have is None:
            return
        tup.ts_map[want] = have.tsval
        if tup.ts_first is None:
            tup.ts_first = (want, have.tsval)

    def _skip_other_sockets(self) -> None:
        """packetdrill reads only the packets of the socket under test (the last one
        connected, or accepted from a listener): another connection's packets (an old
        connection's FIN or retransmission) are passed over (sniff_outbound_live_packet)."""
        keep = []
        for s in self.sent:
            if (s.seg.src_port, s.seg.dst_port) == self.current:
                keep.append(s)
            else:
                self.notes.append("packets of a connection other than the one under test "
                                  "were not read (packetdrill reads only the socket under "
                                  "test)")
        self.sent = keep

    def _tso_run(self, spec: PacketSpec, first: _Sent, isn: int) -> _Sent:
        """A TSO-sized expected packet against the engine's run of segments.

        Linux hands its device one large segment (TSO) that the device cuts
        into MSS-sized packets; packetdrill sees the large one.  The engine
        sends MSS-sized segments itself.  When the script expects more octets
        than the first segment holds, the segments sent at the same moment
        that continue it (same ports and ACK, contiguous sequence numbers)
        are joined, and the adaptation is recorded.
        """
        seg = first.seg
        if spec.seq_start is None or spec.flags & (SYN | RST) or not seg.payload \
                or spec.length <= len(seg.payload) \
                or seg.seq != (spec.seq_start + isn) & MASK:
            return first
        run = [first]
        total = len(seg.payload)
        for nxt in self.sent:
            if total >= spec.length:
                break
            last = run[-1].seg
            n = nxt.seg
            if nxt.t > first.t + _EPS or (n.src_port, n.dst_port) != (seg.src_port,
                                                                     seg.dst_port) \
                    or n.seq != (last.seq + len(last.payload)) & MASK or not n.payload \
                    or n.flags & (SYN | RST) or n.ack != seg.ack or last.flags & FIN:
                break
            run.append(nxt)
            total += len(n.payload)
        if total != spec.length or len(run) == 1:
            return first
        for r in run[1:]:
            self.sent.remove(r)
        flags = 0
        for r in run:
            flags |= r.seg.flags
        end = run[-1].seg
        merged = TcpSegment(seg.src_port, seg.dst_port, seg.seq, end.ack, flags, end.window,
                            0, seg.options, b"".join(r.seg.payload for r in run))
        self.notes.append("a TSO-sized packet was matched against a run of MSS-sized engine "
                          "segments sent together (Linux's device splits one large segment; "
                          "the engine sends MSS-sized segments)")
        return _Sent(first.t, merged)

    def _inbound(self, spec: PacketSpec) -> None:
        if spec.ip_annotations:
            raise Skip("IP-level fields in packets (ttl, tos, ECN codepoints, UDP "
                       "encapsulation)")
        if spec.seq_start is None:
            raise ScriptError("an inbound packet needs sequence numbers", self.script.path,
                              self.event.line if self.event else 0)
        lport, rport = self.current
        tup = self.tuples.setdefault((lport, rport), _Tuple())
        isn = 0 if spec.absolute else tup.ours(self.profile.linux, bool(spec.flags & SYN))
        missing = _missing_options() if self.profile.explore else frozenset()
        try:
            opts = tuple(self._map_tsecr(wire_option(o, isn), tup) for o in spec.options or ()
                         if o.name.split()[0] not in missing)
        except ValueError as exc:
            raise Skip(f"{exc}: packetdrill defines it on its command line (-D), "
                       "the script does not") from None
        if spec.flags & SYN:
            names = frozenset(o.name for o in spec.options or ())
            tup.peer_syn = names
            if tup.fb_syn_ws is not None and "wscale" in names:
                tup.fb_shift = tup.fb_syn_ws
            if self.profile.linux and not spec.absolute:
                # packetdrill (socket.h): the peer's SYN carries its ISN; its later
                # sequence numbers are relative to it, as tcpdump prints them.
                tup.risn = spec.seq_start & MASK
        seq = spec.seq_start & MASK
        if self.profile.linux and not spec.flags & SYN and not spec.absolute:
            seq = (seq + tup.risn) & MASK
        conn = self.socks.conns.get((lport, rport))
        if self.profile.adapt and conn is not None and _has_window(conn) \
                and not spec.absolute:
            seq = self._map_right_edge(conn, seq, tup.fb_shift)
        ack = (spec.ack + isn) & MASK if spec.ack is not None else 0
        window = spec.window if spec.window is not None else 65535
        seg = TcpSegment(rport, lport, seq, ack, spec.flags, window, 0, opts,
                         b"\0" * spec.length)
        self.rfc_ack_due = None
        self.rfc_rst_due = None
        if conn is not None and not seg.flags & RST and not _rfc_acceptable(conn, seg):
            self.rfc_ack_due = (lport, rport)
        live = conn is not None and conn.state is not State.CLOSED \
            and self.host.conns.get(conn.key) is conn
        if not live and seg.flags & ACK and not seg.flags & RST:
            self.rfc_rst_due = (lport, rport, seg.ack)
        self.host.receive_segment(self.remote, self.local, seg, self.now)

    def _map_tsecr(self, opt: TcpOption, tup: _Tuple) -> TcpOption:
        """linux: the peer's TSecr names one of our TSvals as the script wrote it."""
        if not self.profile.linux or not isinstance(opt, Timestamps) or not opt.tsecr:
            return opt
        live = tup.ts_map.get(opt.tsecr)
        if live is None and tup.ts_first is not None:
            # --tcp_ts_ecr_scaled (and packetdrill's fallback): count from the first pair.
            live = (opt.tsecr - tup.ts_first[0] + tup.ts_first[1]) & MASK
        if live is None:
            return opt
        return Timestamps(opt.tsval, live)

    def _icmp(self, spec: IcmpSpec) -> None:
        """An ICMP error for the connection under test (packetdrill: it quotes our
        segment; the quoted sequence number counts from our ISN, 0 if not given)."""
        if not spec.inbound:
            raise Skip(NEEDS_RUNNER + "ICMP packets sent by the host")
        if not self.profile.linux:
            raise Skip(_feature_skip("icmp", "ICMP packets"))
        kind = _ICMP_KINDS.get((spec.icmp_type, spec.code or ""))
        if kind is None:
            code = spec.code or ""
            if code.isupper():
                raise Skip(f"ICMP code {code}: packetdrill defines it on its command line "
                           "(-D), the script does not")
            raise Skip(f"ICMP {spec.icmp_type} {code}".strip() + " is not mapped")
        lport, rport = self.current
        tup = self.tuples.setdefault((lport, rport), _Tuple())
        start = spec.echoed[0] if spec.echoed is not None else 0
        self.host.receive_icmp((self.local, lport, self.remote, rport), kind,
                               (start + tup.ours(True, False)) & MASK, self.now, spec.mtu)

    def _fb_rcvbuf(self, conn: Connection | None) -> int:
        """FreeBSD's receive buffer: once synchronized, rounded up to a multiple of the MSS."""
        buf = self.fb_rcvbuf
        if conn is not None and _has_window(conn) and conn.snd_mss > 0:
            buf = -(-buf // conn.snd_mss) * conn.snd_mss
        return buf

    def _map_right_edge(self, conn: Connection, seq: int, fb_shift: int) -> int:
        """Keep a sequence number's distance from the right window edge (portable).

        FreeBSD's receive window comes from its buffer (65700 octets); the
        engine's is smaller.  A segment the script places at or beyond
        FreeBSD's right edge is moved by the difference, so that "right
        edge" and "outside right" tests probe the engine's own edges.
        """
        nxt = int(conn.rcv_nxt)
        wnd_eng = max(conn.rcv_wnd, int(conn.rcv_adv) - nxt)
        wnd_fb = self._fb_rcvbuf(conn) - conn.readable_bytes
        if conn.state is State.TIME_WAIT or (conn.state is State.SYN_RECEIVED and conn.passive):
            # A FreeBSD timewait entry, like a syncache entry (SYN-RECEIVED via
            # LISTEN), keeps only the advertised window, which the 16-bit field
            # caps at the negotiated scale.
            wnd_fb = min(wnd_fb, 0xFFFF << fb_shift)
        off = (seq - nxt) & MASK
        if wnd_fb > wnd_eng and wnd_eng <= off < 1 << 31:
            self.notes.append("a sequence number beyond the engine's right window edge was "
                              "moved by the difference between FreeBSD's receive window and "
                              "the engine's (buffer policy)")
            return (seq - (wnd_fb - wnd_eng)) & MASK
        return seq

    # ------------------------------------------------------------------ system calls

    def _syscall(self, sc: SyscallSpec, at: float, end: float | None) -> None:
        """Run a call at ``at``.  With a duration it may block until ``end``."""
        p = _Pending(sc, self.event, at, end)
        if end is not None:
            if not self._attempt(p):
                self.pending.append(p)
            return
        deadline = at + self.tolerance
        while not self._attempt(p, at_once=True):
            d = self.host.next_deadline()
            if d is None or d > deadline:
                raise Fail(f"{sc.name}() would block", "the call blocks")
            self._fire_until(d)

    def _attempt(self, p: _Pending, at_once: bool = False) -> bool:
        """Try a call once; True when it returned (and was checked)."""
        try:
            value, err = self._call(p.sc, p), 0
        except SysError as exc:
            value, err = -1, exc.errno
        except WouldBlock:
            if p.deadline is None or self.now < p.deadline - _EPS:
                return False
            value, err = 0, 0          # poll/epoll_wait: the timeout ran out
        self._collect()
        if p.end is not None and not at_once:
            tol = self.tolerance
            if not p.end - tol - _EPS <= self.now <= p.end + tol + _EPS:
                self.event = p.event
                raise Fail(f"{p.sc.name}() returned at {self.now:.3f}, expected at "
                           f"{p.end:.3f}", f"returned at {self.now:.3f}")
        saved, self.event = self.event, p.event
        self._check_result(p.sc, value, err)
        self.event = saved
        return True

    def _retry_pending(self) -> None:
        for p in list(self.pending):
            if p not in self.pending:
                continue
            self.pending.remove(p)
            if not self._attempt(p):
                self.pending.append(p)

    def _check_result(self, sc: SyscallSpec, value: int, err: int) -> None:
        if isinstance(sc.result, int):
            if value != sc.result:
                got = f"= {value}" + (f" {E.errorcode.get(err, err)}" if err else "")
                raise Fail("system call returned a different value", f"{sc.name}() {got}")
            if sc.errno is not None:
                want = _errno(sc.errno)
                if err != want and not (want in (E.EAGAIN, E.EWOULDBLOCK)
                                        and err in (E.EAGAIN, E.EWOULDBLOCK)):
                    raise Fail("system call failed with a different errno",
                               f"{sc.name}() = {value} {E.errorcode.get(err, err)}")

    def _line(self) -> int:
        return self.event.line if self.event else 0

    def _fd(self, sc: SyscallSpec) -> int:
        if not sc.args or not isinstance(sc.args[0], int):
            raise ScriptError(f"{sc.name}: the first argument must be a descriptor",
                              self.script.path, self._line())
        fd = sc.args[0]
        s = self.socks.socks.get(fd)
        if s is None or s.epoll is None:
            self.current_fd = fd       # inline code reads TCP_INFO of this socket
        return fd

    def _size(self, sc: SyscallSpec, v: object, what: str = "length") -> int:
        """A length argument, bounded (a hostile script must not make us allocate GBs)."""
        if not isinstance(v, int):
            return 0
        if not 0 <= v <= MAX_IO:
            raise ScriptError(f"{sc.name}: {what} {v} beyond the runner's bound of {MAX_IO} "
                              "octets", self.script.path, self._line())
        return v

    def _call(self, sc: SyscallSpec, p: _Pending) -> int:
        name, args, now = sc.name, sc.args, self.now
        socks = self.socks
        want = sc.result if isinstance(sc.result, int) and sc.result >= 0 else None
        if name == "socket":
            fd = socks.socket(self._socket_args(args), want)
            self.current_fd = fd
            return fd
        if name in ("epoll_create", "epoll_create1"):
            return socks.epoll_create(want)
        if name == "poll":
            return self._poll(sc, p)
        fd = self._fd(sc)
        if name == "bind":
            socks.bind(fd)
            self.current = (PORT, REMOTE_PORT)
            return 0
        if name == "listen":
            socks.listen(fd, _int_arg(args, 1, 1), now)
            rport = REMOTE_PORT
            if self.profile.linux:
                # packetdrill gives each connection to a listener a fresh remote port
                # (next_ephemeral_port), so a new one never meets the last in TIME-WAIT.
                self.listens += 1
                rport = REMOTE_PORT + self.listens - 1
            self.current = (socks.sock(fd).listener.port  # type: ignore[union-attr]
                            , rport)
            return 0
        if name == "accept":
            nfd = socks.accept(fd, want)
            self.current_fd = nfd
            self._inherit(socks.sock(fd), socks.sock(nfd))
            return nfd
        if name == "connect":
            try:
                socks.connect(fd, now)
            finally:
                self._collect()
                conn = socks.sock(fd).conn if fd in socks.socks else None
                if conn is not None:
                    self.current = (conn.lport, conn.rport)
                    self._apply_pending_options(socks.sock(fd))
            return 0
        if name in ("read", "recv", "recvfrom", "recvmsg"):
            return self._recv(sc, fd)
        if name in ("write", "send", "sendto", "sendmsg"):
            return self._send(sc, fd, p)
        if name == "close":
            socks.close(fd, now)
            return 0
        if name == "shutdown":
            how = args[1].name if len(args) > 1 and isinstance(args[1], Ident) else "SHUT_RDWR"
            socks.shutdown(fd, how, now)
            return 0
        if name == "fcntl":
            return self._fcntl(fd, args)
        if name == "ioctl":
            return self._ioctl(fd, sc)
        if name == "getsockopt":
            return self._getsockopt(fd, sc)
        if name == "setsockopt":
            return self._setsockopt(fd, sc)
        if name == "epoll_ctl":
            return self._epoll_ctl(fd, sc)
        if name == "epoll_wait":
            return self._epoll_wait(fd, sc, p)
        raise Skip(f"system call {name}() is not supported")

    # ---- socket(), buffers and flags

    def _socket_args(self, args: tuple[object, ...]) -> bool:
        """Check socket(domain, type, protocol) as Linux does; True for SOCK_NONBLOCK."""
        domain = args[0] if args else ELLIPSIS
        kind = _idents(args[1] if len(args) > 1 else None)
        proto = args[2] if len(args) > 2 else 0
        if isinstance(domain, Ident) and domain.name not in ("AF_INET", "AF_INET6", "PF_INET",
                                                             "PF_INET6"):
            raise SysError(E.EAFNOSUPPORT)
        if "SOCK_DGRAM" in kind:
            raise Skip(NEEDS_RUNNER + "UDP sockets")
        if kind and "SOCK_STREAM" not in kind:
            raise SysError(E.ESOCKTNOSUPPORT)
        if not (proto == 0 or (isinstance(proto, Ident) and proto.name == "IPPROTO_TCP")
                or proto is ELLIPSIS):
            raise SysError(E.EPROTONOSUPPORT)
        return "SOCK_NONBLOCK" in kind

    def _flags(self, v: object) -> set[str]:
        """Message flags by name, also when the script gives a number (0x20000000)."""
        names = _idents(v)
        nums = [v] if isinstance(v, int) else [p for p in v.parts if isinstance(p, int)] \
            if isinstance(v, BitOr) else []
        for n in nums:
            for name, bit in _MSG_FLAGS.items():
                if n & bit:
                    names.add(name)
                    n &= ~bit
            if n:
                names.add(hex(n))
        return names

    def _buffer_ok(self, sc: SyscallSpec, size: int) -> None:
        """EFAULT for a NULL buffer with a nonzero length (Linux copy_from/to_user)."""
        buf = sc.args[1] if len(sc.args) > 1 else None
        if size and isinstance(buf, Ident) and buf.name == "NULL":
            raise SysError(E.EFAULT)

    def _iov_size(self, sc: SyscallSpec, msg: object) -> int:
        if not isinstance(msg, StructArg):
            raise Skip(f"{sc.name}() without a msghdr")
        iov = msg.get("msg_iov")
        total = 0
        for item in iov.items if isinstance(iov, ListArg) else ():
            if isinstance(item, StructArg) and len(item.fields) == 2:
                total += self._size(sc, item.fields[1][1], "iov_len")
        return self._size(sc, total)

    def _recv(self, sc: SyscallSpec, fd: int) -> int:
        socks = self.socks
        if sc.name == "recvmsg":
            size = self._iov_size(sc, sc.args[1] if len(sc.args) > 1 else None)
            flags = self._flags(sc.args[2] if len(sc.args) > 2 else None)
        else:
            size = self._size(sc, _int_arg(sc.args, 2, 0))
            flags = self._flags(sc.args[3] if len(sc.args) > 3 else None)
        s = socks.sock(fd)
        if flags - {"MSG_PEEK", "MSG_DONTWAIT", "MSG_WAITALL", "MSG_TRUNC"} - {"0"}:
            raise Skip(f"{sc.name}() flags {', '.join(sorted(flags))}")
        if s.conn is not None and s.conn.readable_bytes:
            self._buffer_ok(sc, size)
        nonblocking = s.nonblocking
        if "MSG_DONTWAIT" in flags:
            s.nonblocking = True
        try:
            n = socks.recv(fd, size, self.now, "MSG_PEEK" in flags)
        finally:
            s.nonblocking = nonblocking
        if sc.name == "recvmsg":
            self._check_cmsg(sc, s)
        return n

    def _check_cmsg(self, sc: SyscallSpec, s: Sock) -> None:
        msg = sc.args[1]
        ctl = msg.get("msg_control") if isinstance(msg, StructArg) else None
        for item in ctl.items if isinstance(ctl, ListArg) else ():
            if not isinstance(item, StructArg):
                continue
            ctype = item.get("cmsg_type")
            if isinstance(ctype, Ident) and ctype.name == "TCP_CM_INQ":
                want = item.get("cmsg_data")
                have = self._inq(s)
                if isinstance(want, int) and want != have:
                    raise Fail("TCP_CM_INQ differs", f"cmsg_data={have}")
            else:
                raise Skip(NEEDS_RUNNER + "control messages other than TCP_CM_INQ")

    @staticmethod
    def _inq(s: Sock) -> int:
        """Linux tcp_inq: octets readable; 1 after the peer's FIN with nothing left."""
        c = s.conn
        if c is None:
            return 0
        n = c.readable_bytes
        if n == 0 and c.peer_fin_seq is not None:
            return 1
        return n

    def _send(self, sc: SyscallSpec, fd: int, p: _Pending) -> int:
        socks = self.socks
        if sc.name == "sendmsg":
            size = self._iov_size(sc, sc.args[1] if len(sc.args) > 1 else None)
            flags = self._flags(sc.args[2] if len(sc.args) > 2 else None)
        else:
            size = self._size(sc, _int_arg(sc.args, 2, 0))
            flags = self._flags(sc.args[3] if len(sc.args) > 3 else None)
            self._buffer_ok(sc, size)
        if not self.profile.linux:
            for f in ("MSG_FASTOPEN", "MSG_MORE", "MSG_EOR"):
                if f in flags:
                    raise Skip(f"{sc.name}() flags {f} (Linux's)")
        if "MSG_ZEROCOPY" in flags:
            self.notes.append("MSG_ZEROCOPY sent as an ordinary copy (no completion "
                              "notifications are read by this script)")
        if flags - {"MSG_ZEROCOPY", "MSG_DONTWAIT", "MSG_NOSIGNAL", "MSG_FASTOPEN",
                    "MSG_MORE", "MSG_EOR"}:
            raise Skip(f"{sc.name}() flags {', '.join(sorted(flags))}")
        s = socks.sock(fd)
        if not self.profile.linux:
            return socks.send(fd, size, self.now)
        nonblocking = s.nonblocking or "MSG_DONTWAIT" in flags
        if p.connecting:
            return self._wait_connected(s, p)
        c = s.conn
        connected = c is not None and (c.current_state().synchronized or c.error is not None)
        if ("MSG_FASTOPEN" in flags and not connected) or (c is not None and c.deferred):
            # Linux tcp_sendmsg_fastopen: connect and send in one call.
            unspec = sc.name == "sendto" and "AF_UNSPEC" in _idents(
                sc.args[4] if len(sc.args) > 4 else None)
            if sc.name == "sendmsg":
                msg = sc.args[1] if len(sc.args) > 1 else None
                name = msg.get("msg_name") if isinstance(msg, StructArg) else None
                unspec = "AF_UNSPEC" in _idents(name)
            try:
                n = socks.fastopen(fd, b"\0" * size, self.now, unspec)
            finally:
                self._collect()
                if s.conn is not None:
                    self.current = (s.conn.lport, s.conn.rport)
            if nonblocking:
                if n:
                    return n
                raise SysError(E.EINPROGRESS)
            conn = s.conn
            if conn is not None and size > n:
                conn.send(b"\0" * (size - n), self.now)   # sent once the SYN-ACK comes
            p.done = size
            p.connecting = True
            return self._wait_connected(s, p)
        if c is not None and c.current_state() is State.SYN_SENT and not nonblocking \
                and c.error is None:
            # Linux waits in sk_stream_wait_connect; the data goes out with the ACK of
            # the SYN-ACK (sk_write_pending), so it is queued now.
            p.done = c.send(b"\0" * min(size, max(c.send_space, 0)), self.now)
            p.connecting = True
            return self._wait_connected(s, p)
        more, eor = "MSG_MORE" in flags, "MSG_EOR" in flags
        # Linux: a blocking write returns once every octet is queued; a
        # nonblocking one queues what fits (EAGAIN when nothing does).
        while p.done < size or size == 0:
            try:
                p.done += socks.send(fd, size - p.done, self.now, more, eor)
            except WouldBlock:
                if nonblocking:
                    if p.done:
                        break
                    raise SysError(E.EAGAIN) from None
                raise
            except SysError:
                if p.done:
                    break
                raise
            if size == 0 or nonblocking:
                break
        return p.done

    def _wait_connected(self, s: Sock, p: _Pending) -> int:
        """A blocking write whose data is queued: return once the handshake is done."""
        c = s.conn
        if c is None:
            raise SysError(E.EPIPE)
        if c.error is not None:
            err = self.socks.pending_error(s) or E.EPIPE
            s.error_seen = True
            raise SysError(err)
        if c.current_state() in (State.SYN_SENT, State.SYN_RECEIVED):
            raise WouldBlock
        return p.done

    def _inherit(self, lsock: Sock, child: Sock) -> None:
        """Options a listener passes on to an accepted socket (Linux)."""
        if child.conn is not None and "TCP_NODELAY" in lsock.options:
            child.conn.set_nodelay(bool(lsock.options["TCP_NODELAY"]))
        for opt in ("TCP_INQ",):
            if opt in lsock.options:
                child.options[opt] = lsock.options[opt]

    def _apply_pending_options(self, s: Sock) -> None:
        if s.conn is not None and "TCP_NODELAY" in s.options:
            s.conn.set_nodelay(bool(s.options["TCP_NODELAY"]))

    def _fcntl(self, fd: int, args: tuple[object, ...]) -> int:
        s = self.socks.sock(fd)
        cmd = args[1].name if len(args) > 1 and isinstance(args[1], Ident) else ""
        if cmd == "F_GETFL":
            return O_RDWR | (self.profile.o_nonblock if s.nonblocking else 0)
        if cmd == "F_SETFL":
            s.nonblocking = "O_NONBLOCK" in _idents(args[2] if len(args) > 2 else None)
            return 0
        raise Skip(f"fcntl {cmd}")

    def _ioctl(self, fd: int, sc: SyscallSpec) -> int:
        req = _ident(sc.args, 1)
        s = self.socks.sock(fd)
        if req not in _IOCTLS:
            raise Skip(f"ioctl {req}")
        if s.listener is not None:
            raise SysError(E.EINVAL)
        c = s.conn
        if req in ("SIOCINQ", "FIONREAD"):
            have = c.readable_bytes if c is not None else 0
        elif req == "SIOCOUTQNSD":
            raise Skip(FEATURES["notsent_lowat"].reason + " (SIOCOUTQNSD)")
        else:
            # SIOCOUTQ: write_seq - snd_una, which counts a FIN not yet acknowledged.
            have = c.unsent_or_unacked if c is not None else 0
            if c is not None and c.fin_seq is not None and c.snd_una <= c.fin_seq:
                have += 1
        want = sc.args[2] if len(sc.args) > 2 else None
        exp = want.items[0] if isinstance(want, ListArg) and want.items else None
        if isinstance(exp, int) and exp != have:
            raise Fail(f"ioctl {req} differs", f"{req} = {have}")
        return 0

    def _getsockopt(self, fd: int, sc: SyscallSpec) -> int:
        level, opt = _ident(sc.args, 1), _ident(sc.args, 2)
        s = self.socks.sock(fd)
        want = sc.args[3] if len(sc.args) > 3 else None
        expected = want.items[0] if isinstance(want, ListArg) and want.items else None
        if opt == "SO_ERROR":
            value = self.socks.pending_error(s)
            s.error_seen = s.error_seen or bool(value)
            if expected is not None and not isinstance(expected, type(...)):
                exp = _errno(expected.name) if isinstance(expected, Ident) else expected
                if exp != value:
                    raise Fail("SO_ERROR differs",
                               f"SO_ERROR = {E.errorcode.get(value, value) if value else 0}")
            return 0
        if opt in ("SO_RCVBUF", "SO_SNDBUF"):
            if opt == "SO_RCVBUF" and isinstance(expected, int) and not self.profile.linux:
                self.fb_rcvbuf = expected
            conn = s.conn
            have = (conn.rcv_buf if conn is not None else self.host.config.rcv_buf) \
                if opt == "SO_RCVBUF" else (conn.snd_buf if conn is not None
                                            else self.host.config.snd_buf)
            if self.profile.linux and opt in s.options:
                have = s.options[opt]          # Linux reports twice what was set
            if isinstance(expected, int) and expected != have:
                if self.profile.adapt:
                    self.notes.append(f"{opt} value is FreeBSD's buffer policy "
                                      f"({expected}; the engine's is {have})")
                else:
                    raise Fail(f"{opt} differs", f"{opt} = {have}")
            return 0
        if opt == "SO_REUSEADDR":
            if isinstance(expected, int) and expected != int(s.reuseaddr):
                raise Fail("SO_REUSEADDR differs", f"SO_REUSEADDR = {int(s.reuseaddr)}")
            return 0
        if opt == "TCP_MAXSEG" and self.profile.linux:
            # Linux: the MSS in use once connected; before, TCP_MAXSEG's value or 536.
            have = s.conn.snd_mss if s.conn is not None and s.conn.current_state() \
                .synchronized else (s.user_mss or 536)
            if isinstance(expected, int) and expected != have:
                raise Fail("TCP_MAXSEG differs", f"TCP_MAXSEG = {have}")
            return 0
        if opt == "TCP_NODELAY":
            have = int(s.conn.nodelay) if s.conn is not None else s.options.get(opt, 0)
            if isinstance(expected, int) and bool(expected) != bool(have):
                raise Fail("TCP_NODELAY differs", f"TCP_NODELAY = {have}")
            return 0
        if self.profile.linux and opt in ("TCP_USER_TIMEOUT", "TCP_SYNCNT", "SO_KEEPALIVE",
                                          "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT",
                                          "TCP_CORK", "TCP_FASTOPEN_CONNECT"):
            have = {"TCP_USER_TIMEOUT": int((s.user_timeout or 0) * 1000),
                    "TCP_SYNCNT": s.syncnt or self.host.config.syn_retries,
                    "SO_KEEPALIVE": int(s.keepalive),
                    "TCP_KEEPIDLE": int(s.keepidle or self.host.config.keepalive_time),
                    "TCP_KEEPINTVL": int(s.keepintvl or self.host.config.keepalive_intvl),
                    "TCP_KEEPCNT": s.keepcnt or self.host.config.keepalive_probes,
                    "TCP_CORK": int(s.cork),
                    "TCP_FASTOPEN_CONNECT": int(s.fastopen_connect)}[opt]
            if isinstance(expected, int) and expected != have:
                raise Fail(f"{opt} differs", f"{opt} = {have}")
            return 0
        if self.profile.linux and opt in SOCKOPT_FEATURES:
            raise Skip(_feature_skip(SOCKOPT_FEATURES[opt], opt))
        raise Skip(f"getsockopt {level} {opt} is not supported")

    def _host_wide(self, s: Sock) -> bool:
        """May a per-socket setting go to the host's config?  Only for a lone socket.

        The engine keeps MSS and buffer sizes per host (TcpConfig); a socket
        option can be applied there when no other socket has a connection or
        a listener that the change would also reach.
        """
        for other in self.socks.socks.values():
            if other is not s and (other.conn is not None or other.listener is not None):
                return False
        own = s.conn
        return all(c is own or (s.listener is not None and c.listener is s.listener)
                   for c in self.host.conns.values())

    def _setsockopt(self, fd: int, sc: SyscallSpec) -> int:
        opt = _ident(sc.args, 2)
        s = self.socks.sock(fd)
        val = sc.args[3] if len(sc.args) > 3 else None
        num = val.items[0] if isinstance(val, ListArg) and val.items else None
        if opt == "SO_REUSEADDR":
            v = val.items[0] if isinstance(val, ListArg) and val.items else 1
            s.reuseaddr = bool(v)
            return 0
        if opt == "SO_LINGER":
            if isinstance(val, StructArg):
                nums = [v for _n, v in val.fields if isinstance(v, int)]
                if len(nums) == 2:
                    s.linger = (nums[0], nums[1])
                    return 0
            raise Skip("SO_LINGER value not understood")
        if opt == "TCP_NODELAY":
            v = val.items[0] if isinstance(val, ListArg) and val.items else 1
            if s.conn is not None:
                s.conn.set_nodelay(bool(v))
                if v and self.profile.linux:
                    s.conn.push(self.now)   # Linux: TCP_NAGLE_PUSH sends what waits
            s.options[opt] = int(bool(v))
            return 0
        if self.profile.linux:
            done = self._linux_setsockopt(s, opt, val, num)
            if done:
                return 0
        reasons = {
            "TCP_NOOPT": "TCP_NOOPT (the engine cannot send a SYN without options)",
            "TCP_MD5SIG": "TCP MD5 signatures (RFC 2385) are not implemented",
            "TCP_KEEPINIT": "TCP_KEEPINIT (the engine limits SYN retries by count, not time)",
        }
        if opt in reasons:
            raise Skip(reasons[opt])
        if opt.startswith("TCP_KEEP"):
            raise Skip("keep-alive settings (the engine has no keep-alive timer)")
        if opt.startswith("TCP_RACK"):
            raise Skip("RACK/pacing socket options (a FreeBSD TCP stack module)")
        raise Skip(f"setsockopt {opt} is not supported")

    def _linux_setsockopt(self, s: Sock, opt: str, val: object, num: object) -> bool:
        """Linux socket options, kept per socket and given to its connection; False when
        the runner has none for ``opt``."""
        if opt in RUNNER_OPTIONS:
            raise Skip(NEEDS_RUNNER + RUNNER_OPTIONS[opt])
        c = s.conn
        now = self.now
        if opt in ("TCP_INQ", "SO_ZEROCOPY"):
            s.options[opt] = int(bool(num))      # TCP_INQ: recvmsg reports TCP_CM_INQ
            return True
        if opt == "TCP_FASTOPEN_KEY":
            key = _c_bytes(val)
            if key is None or len(key) not in (16, 32):
                raise SysError(E.EINVAL)
            s.fastopen_key = key[:16]             # a second key is the backup: not used
            self.socks.apply_listener(s)
            return True
        if not isinstance(num, int):
            if opt in SOCKOPT_FEATURES or opt in _LINUX_INT_OPTIONS:
                raise Skip(f"setsockopt {opt} value not understood")
            return False
        if opt == "TCP_MAXSEG":
            if not 88 <= num <= 65535:          # Linux: TCP_MIN_MSS .. MAX_TCP_WINDOW
                raise SysError(E.EINVAL)
            s.user_mss = num
            s.options[opt] = num
            if c is not None and not c.current_state().synchronized:
                c.user_mss = num
            self.socks.apply_listener(s)
            return True
        if opt in ("SO_SNDBUF", "SO_RCVBUF"):
            # Linux doubles the value (room for its bookkeeping) and reports that.
            size = max(2 * num, 4608 if opt == "SO_SNDBUF" else 2304)
            s.options[opt] = size
            if opt == "SO_SNDBUF":
                s.snd_buf = size
                if c is not None:
                    c.snd_buf = size
            else:
                s.rcv_buf = size
                if c is not None and not c.current_state().synchronized:
                    c.rcv_buf = size
            self.socks.apply_listener(s)
            self.notes.append(f"{opt}: the engine's buffer holds {size} octets of payload "
                              "where Linux also counts its bookkeeping")
            return True
        if opt == "TCP_SYNCNT":
            if not 1 <= num <= 127:
                raise SysError(E.EINVAL)
            s.syncnt = num
            if c is not None:
                c.syn_retries = num
            return True
        if opt == "TCP_FASTOPEN":
            if num < 0 or (c is not None and s.listener is None):
                raise SysError(E.EINVAL)
            s.fastopen_qlen = num
            self.socks.apply_listener(s)
            return True
        if opt == "TCP_FASTOPEN_CONNECT":
            if not self.host.config.fastopen & 1:
                raise SysError(E.EOPNOTSUPP)
            if num > 1 or num < 0:
                raise SysError(E.EINVAL)
            if c is not None:
                raise SysError(E.EINVAL)
            s.fastopen_connect = bool(num)
            return True
        if opt == "TCP_CORK":
            s.cork = bool(num)
            if c is not None:
                c.set_cork(bool(num), now)
            return True
        if opt == "TCP_USER_TIMEOUT":
            if num < 0:
                raise SysError(E.EINVAL)
            s.user_timeout = num / 1000
            if c is not None:
                c.set_user_timeout(num / 1000)
            return True
        if opt in ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
            limit = 127 if opt == "TCP_KEEPCNT" else 32767
            if opt != "SO_KEEPALIVE" and not 1 <= num <= limit:
                raise SysError(E.EINVAL)
            if opt == "SO_KEEPALIVE":
                s.keepalive = bool(num)
            elif opt == "TCP_KEEPIDLE":
                s.keepidle = float(num)
            elif opt == "TCP_KEEPINTVL":
                s.keepintvl = float(num)
            else:
                s.keepcnt = num
            if c is not None:
                c.set_keepalive(s.keepalive, now, s.keepidle, s.keepintvl, s.keepcnt)
            return True
        if opt == "TCP_QUICKACK":
            if num and c is not None:
                c.quickack_now(now)
            return True
        feature = SOCKOPT_FEATURES.get(opt)
        if feature is not None:
            raise Skip(_feature_skip(feature, opt))
        return False

    # ---- poll and epoll

    def _poll(self, sc: SyscallSpec, p: _Pending) -> int:
        fds = sc.args[0] if sc.args else None
        timeout = _int_arg(sc.args, 2, 0)
        items = [i for i in fds.items if isinstance(i, StructArg)] \
            if isinstance(fds, ListArg) else []
        ready: list[tuple[StructArg, int]] = []
        for item in items:
            fd = item.get("fd")
            if not isinstance(fd, int):
                raise Skip("poll() with a descriptor that is not a number")
            events = _mask(item.get("events"))
            rev = self.socks.readiness(fd) & (events | POLLERR | POLLHUP | POLLNVAL)
            ready.append((item, rev))
        count = sum(1 for _i, r in ready if r)
        if count == 0 and timeout != 0:
            if p.deadline is None and timeout > 0:
                p.deadline = p.start + timeout / 1000
            raise WouldBlock
        for item, rev in ready:
            want = item.get("revents")
            if want is not None and _mask(want) != rev:
                raise Fail("poll revents differ", f"fd {item.get('fd')} revents = "
                           f"{_mask_text(rev)}")
        return count

    def _epoll_ctl(self, epfd: int, sc: SyscallSpec) -> int:
        ep = self.socks.sock(epfd)
        if ep.epoll is None:
            raise SysError(E.EINVAL)
        op = _ident(sc.args, 1)
        fd = sc.args[2] if len(sc.args) > 2 else None
        if not isinstance(fd, int) or fd not in self.socks.socks:
            raise SysError(E.EBADF)
        ev = sc.args[3] if len(sc.args) > 3 else None
        events = _mask(ev.get("events")) if isinstance(ev, StructArg) else 0
        if op == "EPOLL_CTL_DEL":
            if ep.epoll.pop(fd, None) is None:
                raise SysError(E.ENOENT)
            return 0
        if op == "EPOLL_CTL_ADD" and fd in ep.epoll:
            raise SysError(E.EEXIST)
        if op == "EPOLL_CTL_MOD" and fd not in ep.epoll:
            raise SysError(E.ENOENT)
        if op not in ("EPOLL_CTL_ADD", "EPOLL_CTL_MOD"):
            raise SysError(E.EINVAL)
        item = EpollItem(events)
        self._look(fd, item)
        item.pending = item.last     # registering a ready socket queues it (ep_insert)
        ep.epoll[fd] = item
        return 0

    def _look(self, fd: int, item: EpollItem) -> int:
        """Readiness now, and the wake-ups since the last look (edge-triggered epoll)."""
        now = self.socks.readiness(fd)
        s = self.socks.socks.get(fd)
        c = s.conn if s is not None else None
        readable = c.readable_bytes if c is not None else 0
        space = c.send_space if c is not None else 0
        woke = now & ~item.last
        if readable > item.readable:
            woke |= POLLIN
        if c is not None and space > item.space and self.socks.writable(c):
            woke |= POLLOUT
        item.last, item.readable, item.space = now, readable, space
        return woke

    def _watch_epoll(self) -> None:
        for s in list(self.socks.socks.values()):
            for fd, item in (s.epoll or {}).items():
                item.pending |= self._look(fd, item)

    def _epoll_wait(self, epfd: int, sc: SyscallSpec, p: _Pending) -> int:
        ep = self.socks.sock(epfd)
        if ep.epoll is None:
            raise SysError(E.EINVAL)
        self._watch_epoll()
        maxevents = _int_arg(sc.args, 2, 1)
        timeout = _int_arg(sc.args, 3, 0)
        got: list[tuple[int, int]] = []
        for fd, item in ep.epoll.items():
            if item.disabled:
                continue
            mask = item.events | POLLERR | POLLHUP
            level = item.last & mask
            # Edge-triggered: reported once per wake-up, with the full readiness
            # at that moment (ep_item_poll), not only the bit that woke it.
            rev = level if not item.events & EPOLLET or item.pending & mask else 0
            if rev:
                got.append((fd, rev))
        got = got[:max(maxevents, 1)]
        if not got and timeout != 0:
            if p.deadline is None and timeout > 0:
                p.deadline = p.start + timeout / 1000
            raise WouldBlock
        for fd, _rev in got:
            item = ep.epoll[fd]
            item.pending = 0
            if item.events & EPOLLONESHOT:
                item.disabled = True
        want = sc.args[1] if len(sc.args) > 1 else None
        if isinstance(want, StructArg) and got:
            wfd, wev = want.get("fd"), want.get("events")
            fd, rev = got[0]
            if (isinstance(wfd, int) and wfd != fd) or (wev is not None and _mask(wev) != rev):
                raise Fail("epoll_wait event differs", f"{{events={_mask_text(rev)}, fd={fd}}}")
        return len(got)

    # ------------------------------------------------------------------ shell and code

    def _shell(self, command: str) -> None:
        if self.shell is not None and self.linux is not None:
            try:
                self.shell.run(command)
            except ShellFailed as exc:
                raise Fail("shell command failed", str(exc)) from None
            self.host.local_drop = self.linux.local_drop
            if self.linux.notes:
                self.notes += self.linux.notes
                self.linux.notes.clear()
            if not self.linux.tso:
                self.tso = False
            lacking = sorted(FEATURES[k].name for k in self.linux.wanted
                             if not FEATURES[k].present())
            if lacking:
                self.notes.append("Linux settings the engine does not have (turned on by "
                                  "defaults.sh): " + ", ".join(lacking))
            return
        sysctl = parse_sysctl(command)
        if sysctl is not None:
            apply_sysctl(sysctl[0], sysctl[1], self.host.config, self.sysctl, self.profile,
                         self.notes)
            return
        check = parse_sockstat(command)
        if check is not None:
            rfc = FREEBSD_STATES.get(check.state)
            if rfc is None:
                raise Skip(f"sockstat state {check.state}")
            n = self.socks.count_state(rfc, check.port)
            if n != check.count:
                raise Fail(f"{n} sockets in {rfc}, expected {check.count}",
                           f"sockstat: {n} in {check.state}")
            return
        drop = parse_tcpdrop(command)
        if drop == "TIME_WAIT":
            for key in self.host.time_wait.keys():  # noqa: SIM118 (a list, not a dict)
                self.host.time_wait.remove(key)
            return
        first = command.split()[0] if command.split() else command
        raise Skip(f"shell command `{first}` has no engine equivalent")

    _ASSERT = re.compile(r"^assert\s+(tcpi_\w+)\s*==\s*(.+?)\s*$")

    def _code(self, code: str) -> None:
        if self.profile.linux:
            s = self.socks.socks.get(self.current_fd) if self.current_fd is not None else None
            conn = s.conn if s is not None else None
            if conn is None or (conn.lport, conn.rport) != self.current:
                # packetdrill reads TCP_INFO of the socket under test (code.c).
                conn = next((o.conn for o in reversed(list(self.socks.socks.values()))
                             if o.conn is not None
                             and (o.conn.lport, o.conn.rport) == self.current), conn)
            try:
                tcpinfo.evaluate(code, conn, self.now)
            except tcpinfo.CodeError as exc:
                what = str(exc)
                if not what.startswith("TCP_INFO field"):
                    raise Skip(f"inline code: {what}") from None
                raise Skip(NEEDS + what if not FEATURES["tcp_info"].present()
                           else _feature_skip("tcp_info", what)) from None
            except tcpinfo.AssertFailed as exc:
                raise Fail("inline assert failed", str(exc)) from None
            return
        m = self._ASSERT.match(code)
        if m is None or self.current_fd is None:
            raise Skip("inline Python other than tcpi_state/tcpi_options asserts")
        field_name, value = m.group(1), m.group(2).strip()
        fd = self.current_fd
        if field_name == "tcpi_state":
            want = FREEBSD_STATES.get(value.removeprefix("TCPI_"))
            have = self.socks.state_of(fd)
            if want != have:
                raise Fail(f"tcpi_state is {have}", f"tcpi_state == {have}")
            return
        if field_name == "tcpi_options":
            s = self.socks.sock(fd)
            have_ws = s.conn is not None and s.conn.snd_wscale + s.conn.rcv_wscale > 0
            names = set(re.findall(r"TCPI_OPT_(\w+)", value))
            want_num = 0 if value.strip("() ") == "0" else None
            if want_num == 0 and not have_ws:
                return
            if names == {"WSCALE"} and have_ws:
                return
            raise Fail("tcpi_options differ", "the engine negotiates no timestamps, SACK or "
                       "ECN" + (", window scale" if have_ws else ""))
        raise Skip(f"inline Python on {field_name}")


#: ICMP errors as packetdrill names them -> what the engine calls them (Linux
#: icmp_err_convert: an unreachable code without a name is code 0, network).
_ICMP_KINDS = {
    ("unreachable", "frag_needed"): "frag-needed",
    ("unreachable", ""): "network unreachable",
    ("unreachable", "net_unreachable"): "network unreachable",
    ("unreachable", "host_unreachable"): "host unreachable",
    ("unreachable", "protocol_unreachable"): "protocol unreachable",
    ("unreachable", "port_unreachable"): "refused",
    ("time_exceeded", ""): "host unreachable",
    ("packet_too_big", ""): "frag-needed",
    ("parameter_problem", ""): "protocol error",
}

#: Linux's message flags (include/linux/socket.h), for flags a script gives as numbers.
_MSG_FLAGS = {"MSG_PEEK": 0x2, "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100,
              "MSG_TRUNC": 0x20, "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000,
              "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000}

_LINUX_INT_OPTIONS = frozenset({"TCP_MAXSEG", "SO_SNDBUF", "SO_RCVBUF", "TCP_SYNCNT",
                                "TCP_FASTOPEN", "TCP_FASTOPEN_CONNECT", "TCP_CORK",
                                "TCP_USER_TIMEOUT", "SO_KEEPALIVE", "TCP_KEEPIDLE",
                                "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_QUICKACK"})


def _c_bytes(v: object) -> bytes | None:
    """A C string literal of a script (``"\\xf7\\x63..."``) as bytes, or None."""
    if not isinstance(v, str) or len(v) > 4 * 64:
        return None
    out = bytearray()
    i = 0
    while i < len(v):
        ch = v[i]
        if ch == "\\" and i + 1 < len(v):
            nxt = v[i + 1]
            if nxt == "x":
                digits = v[i + 2:i + 4]
                if len(digits) != 2:
                    return None
                try:
                    out.append(int(digits, 16))
                except ValueError:
                    return None
                i += 4
                continue
            out.append({"n": 10, "t": 9, "0": 0, "\\": 92, '"': 34}.get(nxt, ord(nxt) & 0xFF))
            i += 2
            continue
        out.append(ord(ch) & 0xFF)
        i += 1
    return bytes(out)


def _feature_skip(key: str, what: str) -> str:
    """Why ``what`` cannot run: the engine lacks the feature, or this runner does not
    map ``what`` onto it yet (the seam to fill once the engine has it)."""
    f = FEATURES[key]
    if not f.present():
        return f.reason
    return NEEDS_RUNNER + f"{what} mapped onto the engine's {f.name}"


def _missing_options() -> frozenset[str]:
    """linux-explore: TCP options of features the engine lacks (dropped from packets)."""
    out: set[str] = set()
    for key, names in (("timestamps", ("TS",)), ("sack", ("sackOK", "sack")),
                       ("fastopen", ("FO", "FOEXP")), ("md5", ("md5",))):
        if not FEATURES[key].present():
            out.update(names)
    return frozenset(out)


def _option_int(script: Script, name: str, default: int, lo: int, hi: int) -> int:
    """A numeric ``--name=value`` option, checked (a bad one is a script error)."""
    text = script.options.get(name)
    if text is None:
        return default
    try:
        value = int(text, 0) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None:
        raise ScriptError(f"--{name}={text[:20]}: not a number", script.path)
    if not lo <= value <= hi:
        raise ScriptError(f"--{name}={value}: out of range ({lo}..{hi})", script.path)
    return value


def _block_end(t: TimeSpec, at: float) -> float | None:
    """The expected return time of ``a...b`` (packetdrill: b counts like a)."""
    if t.block_end is None:
        return None
    if t.kind == "relative" or t.block_end_relative:
        return at - t.start + t.block_end
    return t.block_end


def _mask(v: object) -> int:
    """POLLIN|POLLOUT (or a number) as a bit mask."""
    if isinstance(v, int):
        return v
    out = 0
    for name in _idents(v):
        if name not in POLL_BITS:
            raise Skip(f"poll/epoll event {name}")
        out |= POLL_BITS[name]
    return out


def _mask_text(mask: int) -> str:
    names = [n for n, b in POLL_BITS.items() if n.startswith("POLL") and mask & b == b
             and b not in (0x40, 0x100)]
    return "|".join(names) or "0"


def _names(seg: TcpSegment) -> list[_Opt]:
    from tcplab.packetdrill.matcher import option_spec
    return [_Opt(option_spec(o).name) for o in seg.options]


@dataclass(frozen=True, slots=True)
class _Opt:
    name: str


def _errno(name: str) -> int:
    value = getattr(E, name, None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {name}")
    return value


def _int_arg(args: tuple[object, ...], i: int, default: int) -> int:
    v = args[i] if len(args) > i else default
    return v if isinstance(v, int) else default


def _ident(args: tuple[object, ...], i: int) -> str:
    v = args[i] if len(args) > i else None
    return v.name if isinstance(v, Ident) else str(v)


def _idents(v: object) -> set[str]:
    if isinstance(v, Ident):
        return {v.name}
    if isinstance(v, BitOr):
        out: set[str] = set()
        for p in v.parts:
            out |= _idents(p)
        return out
    return set()


def run_script(path: str | Path, profile: Profile | str = "portable",
               defines: dict[str, str] | None = None, folder: str = "") -> Result:
    """Parse and run one script; never raises for what the script or the engine does."""
    prof = Profile.get(profile) if isinstance(profile, str) else profile
    defs = {prof.define: "1"}
    defs.update(defines or {})
    started = _time.perf_counter()
    res = Result(str(path), folder, PASS)
    runner: Runner | None = None
    try:
        script = load_script(path, defs)
        runner = Runner(script, prof)
        runner.event = None
        runner.run()
    except ScriptError as exc:
        res.status, res.reason, res.line = ERROR, exc.reason, exc.line
    except Skip as exc:
        res.status, res.reason = SKIP, exc.reason
    except Fail as exc:
        res.status, res.reason, res.actual = FAIL, exc.reason, exc.actual
    except SysError as exc:
        res.status, res.reason = FAIL, f"{E.errorcode.get(exc.errno, exc.errno)}: {exc}"
    except (TcpError, ValueError) as exc:
        res.status, res.reason = FAIL, f"{type(exc).__name__}: {exc}"
    except (RecursionError, MemoryError) as exc:
        # The parser's caps should make these impossible; one script must still
        # never stop the others (issue 19).
        res.status, res.reason = ERROR, f"script too deep or too large ({type(exc).__name__})"
    if runner is not None:
        ev: Event | None = runner.event
        if res.status in (FAIL, ERROR) and ev is not None:
            res.line, res.expected = ev.line, ev.text
        res.adaptations = sorted(set(runner.notes))
    res.seconds = _time.perf_counter() - started
    return res


__all__ = ["Connection", "Runner", "State", "run_script"]


def _rfc_acceptable(conn: Connection, seg: TcpSegment) -> bool:
    """RFC 9293 3.10.7.4's acceptability test, computed independently of the engine."""
    if not (conn.state.synchronized or conn.state is State.SYN_RECEIVED):
        return True
    nxt = int(conn.rcv_nxt)
    wnd = max(conn.rcv_wnd, (int(conn.rcv_adv) - nxt) & MASK if conn.rcv_adv else 0)
    n = seg.seg_len
    if n == 0:
        return seg.seq == nxt if wnd == 0 else seq_in_window(seg.seq, nxt, wnd)
    if wnd == 0:
        return False
    return seq_in_window(seg.seq, nxt, wnd) or seq_in_window((seg.seq + n - 1) & MASK, nxt, wnd)


def _has_window(conn: Connection) -> bool:
    """A receive window exists once the peer's SYN is in: SYN-RECEIVED and later."""
    return conn.state.synchronized or conn.state is State.SYN_RECEIVED
