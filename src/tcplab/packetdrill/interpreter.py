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

Nothing sleeps: a script that waits 65 s runs in microseconds.
"""

from __future__ import annotations

import errno as E
import random
import re
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.engine import Connection, Host, State, TcpConfig, TcpError
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
    BitOr,
    CodeSpec,
    Event,
    Ident,
    ListArg,
    PacketSpec,
    Script,
    ScriptError,
    ShellSpec,
    StructArg,
    SyscallSpec,
    load_script,
)
from tcplab.packetdrill.sockets import O_NONBLOCK, O_RDWR, PORT, SocketLayer, SysError, WouldBlock
from tcplab.trace import Trace
from tcplab.wire.ip import parse_ip_tcp
from tcplab.wire.seq import seq_in_window
from tcplab.wire.tcp import ACK, RST, SYN, TcpSegment

LOCAL4, REMOTE4 = "192.168.0.1", "192.0.2.1"
LOCAL6, REMOTE6 = "fd3d:fa7b:d17d::1", "2001:db8::1"
REMOTE_PORT = 40000          #: the remote port packetdrill's peer uses towards a listener
_EPS = 1e-9


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
class _Tuple:
    """What the interpreter learns about one connection (local port, remote port)."""

    isn: int = 0
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

    def __post_init__(self) -> None:
        opts = self.script.options
        v6 = opts.get("ip_version", "ipv4") == "ipv6"
        self.local, self.remote = (LOCAL6, REMOTE6) if v6 else (LOCAL4, REMOTE4)
        mtu = int(opts.get("mtu", "1500"))
        # The STANDARD branches (portable) check RFC 9293 3.10.7.4 strictly: without
        # timestamps a SYN in TIME-WAIT gets a challenge ACK, no reopening.
        config = TcpConfig(mss=max(mtu - (60 if v6 else 40), 64),
                           time_wait_reopen=not self.profile.adapt)
        self.host = Host("tcplab", [self.local], config=config, rng=random.Random(1),
                         trace=Trace(enabled=False))
        self.socks = SocketLayer(self.host, self.local, self.remote)
        if "tolerance_usecs" in opts:
            self.tolerance = int(opts["tolerance_usecs"]) / 1e6
        for name in opts:
            if name in ("ip_version", "tolerance_usecs", "mtu"):
                continue
            if name == "non_fatal":
                raise Skip("--non_fatal (errors that do not fail the script)")
            raise Skip(f"--{name} is not supported")

    # ------------------------------------------------------------------ engine glue

    def _collect(self) -> None:
        for out in self.host.transmit():
            _ip, seg = parse_ip_tcp(out.data)
            self.sent.append(_Sent(self.now, seg))
            if seg.flags & SYN:
                tup = self.tuples.setdefault((seg.src_port, seg.dst_port), _Tuple())
                tup.isn = seg.seq
                tup.engine_syn = frozenset(o.name for o in _names(seg))
        for conn in self.host.conns.values():
            self.socks.conns[(conn.lport, conn.rport)] = conn

    def _fire_until(self, t: float, stop_on_packet: bool = False) -> None:
        """Fire timers due by ``t`` (stop early once a packet is out, if asked)."""
        while True:
            if stop_on_packet and self.sent:
                return
            d = self.host.next_deadline()
            if d is None or d > t + _EPS:
                break
            self.now = max(self.now, d)
            self.host.handle_timers(self.now)
            self._collect()
        if not (stop_on_packet and self.sent):
            self.now = max(self.now, t)

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
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
                if early.t < at - _EPS:
                    if self._rfc_ack_tolerated(early):
                        continue
                    raise Fail("unexpected packet", self._describe(early))
            base = at
            if isinstance(act, PacketSpec):
                self._inbound(act)
            elif isinstance(act, SyscallSpec):
                if t.block_end is not None:
                    raise Skip("blocking system calls with a duration ('a...b')")
                self._syscall(act, at)
            elif isinstance(act, ShellSpec):
                self._shell(act.command)
            elif isinstance(act, CodeSpec):
                self._code(act.code)
            self._collect()
        while self.sent and self._rfc_ack_tolerated(self.sent[0]):
            pass
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
        isn = self.tuples.get((s.seg.src_port, s.seg.dst_port), _Tuple()).isn
        return f"{s.t:.3f} > {packet_text(s.seg, isn)}"

    # ------------------------------------------------------------------ packets

    def _outbound(self, spec: PacketSpec, lo: float, hi: float) -> float:
        if not self.sent:
            self._fire_until(hi, stop_on_packet=True)
        if not self.sent:
            raise Fail("expected packet not sent", f"nothing sent by {hi:.3f}")
        s = self.sent.pop(0)
        if s.t > hi - self.host.config.delayed_ack + _EPS and \
                self.profile.adapt and spec.flags == ACK:
            self.notes.append("a pure ACK came after the engine's delayed-ACK timer where "
                              "FreeBSD ACKs at once (RFC 9293 3.8.6.3 allows the delay)")
        if s.t < lo - _EPS or s.t > hi + _EPS:
            raise Fail(f"packet sent at {s.t:.3f}, expected in [{lo:.3f}, {hi:.3f}]",
                       self._describe(s))
        key = (s.seg.src_port, s.seg.dst_port)
        tup = self.tuples.setdefault(key, _Tuple())
        if spec.flags & SYN:
            ws = next((o.values[0] for o in spec.options or () if o.name == "wscale"), None)
            tup.fb_syn_ws = ws
            if ws is not None and "wscale" in tup.peer_syn:
                tup.fb_shift = ws
        conn = self.socks.conns.get(key)
        ctx = Context(tup.isn, self.profile.adapt, tup.peer_syn, tup.engine_syn,
                      tup.fb_shift, conn.rcv_wscale if conn is not None else 0,
                      self._fb_rcvbuf(conn), conn.rcv_buf if conn is not None
                      else self.host.config.rcv_buf)
        notes: list[str] = []
        why = match(spec, s.seg, ctx, notes)
        if why is not None:
            raise Fail(why, self._describe(s))
        self.notes += notes
        return s.t

    def _inbound(self, spec: PacketSpec) -> None:
        if spec.ip_annotations:
            raise Skip("IP-level fields in packets (ttl, tos, ECN codepoints, UDP "
                       "encapsulation)")
        if spec.seq_start is None:
            raise ScriptError("an inbound packet needs sequence numbers", self.script.path,
                              self.event.line if self.event else 0)
        lport, rport = self.current
        tup = self.tuples.setdefault((lport, rport), _Tuple())
        isn = 0 if spec.absolute else tup.isn
        opts = tuple(wire_option(o, isn) for o in spec.options or ())
        if spec.flags & SYN:
            names = frozenset(o.name for o in spec.options or ())
            tup.peer_syn = names
            if tup.fb_syn_ws is not None and "wscale" in names:
                tup.fb_shift = tup.fb_syn_ws
        seq = spec.seq_start & MASK
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

    def _syscall(self, sc: SyscallSpec, at: float) -> None:
        deadline = at + self.tolerance
        while True:
            try:
                value, err = self._call(sc), 0
            except SysError as exc:
                value, err = -1, exc.errno
            except WouldBlock:
                d = self.host.next_deadline()
                if d is None or d > deadline:
                    raise Fail(f"{sc.name}() would block", "the call blocks") from None
                self._fire_until(d)
                continue
            break
        self._check_result(sc, value, err)

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

    def _fd(self, sc: SyscallSpec) -> int:
        if not sc.args or not isinstance(sc.args[0], int):
            raise ScriptError(f"{sc.name}: the first argument must be a descriptor",
                              self.script.path, self.event.line if self.event else 0)
        self.current_fd = sc.args[0]
        return sc.args[0]

    def _call(self, sc: SyscallSpec) -> int:
        name, args, now = sc.name, sc.args, self.now
        socks = self.socks
        if name == "socket":
            fd = socks.socket()
            self.current_fd = fd
            return fd
        fd = self._fd(sc)
        if name == "bind":
            socks.bind(fd)
            self.current = (PORT, REMOTE_PORT)
            return 0
        if name == "listen":
            socks.listen(fd, _int_arg(args, 1, 1), now)
            self.current = (socks.sock(fd).listener.port  # type: ignore[union-attr]
                            , REMOTE_PORT)
            return 0
        if name == "accept":
            nfd = socks.accept(fd)
            self.current_fd = nfd
            return nfd
        if name == "connect":
            try:
                socks.connect(fd, now)
            finally:
                self._collect()
                conn = socks.sock(fd).conn if fd in socks.socks else None
                if conn is not None:
                    self.current = (conn.lport, conn.rport)
            return 0
        if name in ("read", "recv", "recvfrom"):
            flags = args[3] if len(args) > 3 else 0
            peek = isinstance(flags, Ident) and flags.name == "MSG_PEEK"
            return socks.recv(fd, _int_arg(args, 2, 0), now, peek)
        if name in ("write", "send", "sendto"):
            return socks.send(fd, _int_arg(args, 2, 0), now)
        if name == "close":
            socks.close(fd, now)
            return 0
        if name == "shutdown":
            how = args[1].name if len(args) > 1 and isinstance(args[1], Ident) else "SHUT_RDWR"
            socks.shutdown(fd, how, now)
            return 0
        if name == "fcntl":
            return self._fcntl(fd, args)
        if name == "getsockopt":
            return self._getsockopt(fd, sc)
        if name == "setsockopt":
            return self._setsockopt(fd, sc)
        raise Skip(f"system call {name}() is not supported")

    def _fcntl(self, fd: int, args: tuple[object, ...]) -> int:
        s = self.socks.sock(fd)
        cmd = args[1].name if len(args) > 1 and isinstance(args[1], Ident) else ""
        if cmd == "F_GETFL":
            return O_RDWR | (O_NONBLOCK if s.nonblocking else 0)
        if cmd == "F_SETFL":
            s.nonblocking = "O_NONBLOCK" in _idents(args[2] if len(args) > 2 else None)
            return 0
        raise Skip(f"fcntl {cmd}")

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
            if opt == "SO_RCVBUF" and isinstance(expected, int):
                self.fb_rcvbuf = expected
            conn = s.conn
            have = (conn.rcv_buf if conn is not None else self.host.config.rcv_buf) \
                if opt == "SO_RCVBUF" else self.host.config.snd_buf
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
        raise Skip(f"getsockopt {level} {opt} is not supported")

    def _setsockopt(self, fd: int, sc: SyscallSpec) -> int:
        opt = _ident(sc.args, 2)
        s = self.socks.sock(fd)
        val = sc.args[3] if len(sc.args) > 3 else None
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

    # ------------------------------------------------------------------ shell and code

    def _shell(self, command: str) -> None:
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
