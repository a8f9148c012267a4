"""Engine tests in the peer's voice, as smoltcp writes its socket tests.

The host under test is ``LOCAL`` (192.0.2.2, port 80); the test plays the
remote peer ``REMOTE`` (192.0.2.1, port 49152).  A :class:`Peer` injects a
segment at time T (as IP bytes, through ``Host.receive``, so the checksum and
demultiplexing are exercised too) and then says exactly which segments the
host must answer with::

    p.inject(incoming("S", REMOTE_ISS, options=(Mss(1460),)))
    p.expect([outgoing("SA", LOCAL_ISS, REMOTE_ISS + 1, options=SYN_OPTIONS)])
    p.expect_nothing()

``incoming`` and ``outgoing`` override a template segment per test.  Time only
moves when the test says so: ``advance(t)`` fires every timer due up to ``t``
in order, ``inject(seg, at=t)`` advances first.  Our ISN is fixed
(``LOCAL_ISS``) and everything random comes from a seeded ``random.Random``,
so every run is the same.

Each fixture also records the sequence numbers the peer has seen, so that a
test builds its segments from them rather than from the engine it checks:
``p.seq`` (the peer's next sequence number = our RCV.NXT), ``p.ack`` (what
the peer acknowledges of ours in its ordinary segments), ``p.una`` and
``p.nxt`` (our SND.UNA and SND.NXT) and ``p.fin`` (the peer's FIN, once sent).
"""

from __future__ import annotations

import random
from typing import Any

from tcplab.engine import Connection, Host, Listener, TcpConfig
from tcplab.trace import Trace
from tcplab.wire import Mss, TcpOption, TcpSegment, emit_ip_tcp, parse_flags, parse_ip_tcp

LOCAL = "192.0.2.2"
REMOTE = "192.0.2.1"
LOCAL_PORT = 80
REMOTE_PORT = 49152
KEY = (LOCAL, LOCAL_PORT, REMOTE, REMOTE_PORT)
NAME = f"{LOCAL}:{LOCAL_PORT}-{REMOTE}:{REMOTE_PORT}"

LOCAL_ISS = 10_000  #: the ISN of the host under test (see FixedIsn)
REMOTE_ISS = 2_000_000  #: the peer's ISN
WINDOW = 65535  #: the window the host offers with an empty receive buffer (default rcv_buf)
PEER_WINDOW = 65535
SYN_OPTIONS: tuple[TcpOption, ...] = (Mss(1460),)  #: what our SYN and SYN-ACK carry by default
MASK = 0xFFFFFFFF


class FixedIsn:
    """Stands in for the RFC 6528 generator: every connection starts at ``iss``."""

    def __init__(self, iss: int) -> None:
        self.iss = iss

    def isn(self, now: float, laddr: str, lport: int, raddr: str, rport: int) -> int:
        return self.iss


def _segment(template: TcpSegment, flags: str, seq: int, ack: int, **kw: Any) -> TcpSegment:
    return template.replace(flags=parse_flags(flags), seq=seq & MASK,
                               ack=ack & MASK, **kw)


PEER_TEMPLATE = TcpSegment(REMOTE_PORT, LOCAL_PORT, 0, 0, 0, PEER_WINDOW)
HOST_TEMPLATE = TcpSegment(LOCAL_PORT, REMOTE_PORT, 0, 0, 0, WINDOW)


def incoming(flags: str, seq: int, ack: int = 0, **kw: Any) -> TcpSegment:
    """A segment the peer sends: ``incoming("PA", seq, ack, payload=b"x")``."""
    return _segment(PEER_TEMPLATE, flags, seq, ack, **kw)


def outgoing(flags: str, seq: int, ack: int = 0, **kw: Any) -> TcpSegment:
    """A segment the host under test must send; RSTs carry window 0 unless told."""
    if "R" in flags and "window" not in kw:
        kw["window"] = 0
    return _segment(HOST_TEMPLATE, flags, seq, ack, **kw)


def show(segs: list[TcpSegment]) -> str:
    lines = []
    for s in segs:
        opts = f" opts={list(s.options)}" if s.options else ""
        data = f" data={s.payload[:16]!r}" if s.payload else ""
        lines.append(f"  {s.summary()}{opts}{data}")
    return "\n".join(lines) or "  (nothing)"


#: every Peer made during the current test (the conftest checks their traces afterwards)
CREATED: list[Peer] = []


class Peer:
    """The scripted remote end of one connection to the host under test."""

    def __init__(self, config: TcpConfig | None = None, *, iss: int = LOCAL_ISS,
                 riss: int = REMOTE_ISS, seed: int = 1) -> None:
        CREATED.append(self)
        self.config = config if config is not None else TcpConfig()
        self.trace = Trace()
        self.host = Host("local", LOCAL, config=self.config, rng=random.Random(seed),
                         trace=self.trace, isn=FixedIsn(iss))
        self.iss = iss
        self.riss = riss  # the peer's ISN
        self.now = 0.0
        self.conn: Connection | None = None
        self.listener: Listener | None = None
        self.pending: list[TcpSegment] = []
        # What the peer has seen (set by the fixtures, see the module docstring).
        self.seq = riss
        self.ack = iss + 1
        self.una = iss
        self.nxt = iss + 1
        self.fin: int | None = None
        self.window = min(self.config.rcv_buf, WINDOW)  # what our SYN-ACK and ACKs offer
        self.syn_options: tuple[TcpOption, ...] = (Mss(self.config.mss),)  # on our SYN

    # ---------------------------------------------------------------- time

    def advance(self, to: float) -> None:
        """Fire, in order, every timer due up to ``to``; then the clock reads ``to``."""
        assert to >= self.now, f"time runs forward: {to} < {self.now}"
        for _ in range(100_000):
            deadline = self.host.next_deadline()
            if deadline is None or deadline > to:
                break
            self.now = max(self.now, deadline)
            self.host.handle_timers(self.now)
            self._collect()
        else:  # pragma: no cover - a timer that never stops firing
            raise AssertionError("timers keep firing")
        self.now = to

    def next_timer(self) -> float | None:
        return self.host.next_deadline()

    def fire_next_timer(self) -> float:
        """Jump to the next deadline and fire it; returns the new time."""
        deadline = self.host.next_deadline()
        assert deadline is not None, "no timer is armed"
        self.advance(deadline)
        return deadline

    # ---------------------------------------------------------------- segments

    def inject(self, seg: TcpSegment, at: float | None = None, *, src: str = REMOTE,
               dst: str = LOCAL) -> None:
        """The peer's segment arrives at ``at`` (default: now)."""
        if at is not None:
            self.advance(at)
        self.host.receive(emit_ip_tcp(src, dst, seg), self.now)
        self._collect()
        if self.conn is None or self.host.conns.get(KEY) not in (None, self.conn):
            self.conn = self.host.conns.get(KEY, self.conn)

    def _collect(self) -> None:
        for out in self.host.transmit():
            ip, seg = parse_ip_tcp(out.data)  # the checksum must be right too
            assert (ip.src, ip.dst) == (out.src, out.dst)
            self.pending.append(seg)

    def take(self) -> list[TcpSegment]:
        """Everything the host sent since the last expect/take."""
        self._collect()
        out, self.pending = self.pending, []
        return out

    def expect(self, segs: list[TcpSegment]) -> None:
        """The host sent exactly these segments (and nothing else) since the last check."""
        got = self.take()
        assert got == segs, f"\nexpected:\n{show(segs)}\ngot:\n{show(got)}"

    def expect_nothing(self) -> None:
        self.expect([])

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> str:
        """The state of our 4-tuple, as the trace last recorded it."""
        for e in reversed(self.trace.events):
            if e["kind"] == "state" and e.get("conn") == NAME:
                return str(e["to"])
        if self.listener is not None and not self.listener.closed:
            return "LISTEN"
        return "CLOSED"

    def drop_reasons(self) -> list[str]:
        return [str(e["reason"]) for e in self.trace.events
                if e["kind"] == "segment" and e["event"] == "drop" and "reason" in e]


# ==================================================================== states
#
# Each builder drives a fresh host into one state by a packet exchange, and
# checks that exchange on the way.  The conftest turns them into fixtures.


def closed(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
           riss: int = REMOTE_ISS) -> Peer:
    """No socket at all on port 80."""
    return Peer(config, iss=iss, riss=riss)


def listen(config: TcpConfig | None = None, backlog: int = 8, iss: int = LOCAL_ISS,
           riss: int = REMOTE_ISS) -> Peer:
    p = Peer(config, iss=iss, riss=riss)
    p.listener = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), backlog)
    return p


def syn_received(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
                 riss: int = REMOTE_ISS) -> Peer:
    """Passive open: the peer's SYN arrived, our SYN-ACK is out."""
    p = listen(config, iss=iss, riss=riss)
    p.inject(incoming("S", p.riss, options=(Mss(1460),)))
    p.expect([outgoing("SA", p.iss, p.riss + 1, window=p.window, options=p.syn_options)])
    p.seq, p.una, p.nxt, p.ack = p.riss + 1, p.iss, p.iss + 1, p.iss + 1
    return p


def syn_sent(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
             riss: int = REMOTE_ISS) -> Peer:
    """Active open from port 80 to the peer: our SYN is out."""
    p = Peer(config, iss=iss, riss=riss)
    p.conn = p.host.connect(REMOTE, REMOTE_PORT, p.now,
                            binding=p.host.bind(LOCAL, LOCAL_PORT))
    p.expect([outgoing("S", p.iss, window=p.window, options=p.syn_options)])
    p.seq, p.una, p.nxt, p.ack = p.riss, p.iss, p.iss + 1, p.iss + 1
    return p


def established(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
                riss: int = REMOTE_ISS) -> Peer:
    p = syn_received(config, iss=iss, riss=riss)
    p.inject(incoming("A", p.riss + 1, p.iss + 1), at=0.1)
    p.expect_nothing()
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None and conn is p.conn
    p.una = p.nxt = p.ack = p.iss + 1
    return p


def fin_wait_1(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
               riss: int = REMOTE_ISS) -> Peer:
    """ESTABLISHED, then shutdown(SHUT_WR): the RFC's CLOSE, we still receive."""
    p = established(config, iss=iss, riss=riss)
    assert p.conn is not None
    p.conn.shutdown(p.now)
    p.expect([outgoing("FA", p.iss + 1, p.seq, window=p.window)])
    p.una, p.nxt, p.ack = p.iss + 1, p.iss + 2, p.iss + 1
    return p


def fin_wait_2(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
               riss: int = REMOTE_ISS) -> Peer:
    p = fin_wait_1(config, iss=iss, riss=riss)
    p.inject(incoming("A", p.seq, p.iss + 2), at=p.now + 0.1)
    p.expect_nothing()
    p.una = p.nxt = p.ack = p.iss + 2
    return p


def close_wait(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
               riss: int = REMOTE_ISS) -> Peer:
    """The peer closed first.  Our ACK of its FIN is delayed (Linux), then sent."""
    p = established(config, iss=iss, riss=riss)
    p.inject(incoming("FA", p.seq, p.iss + 1), at=p.now + 0.1)
    if p.config.delayed_ack > 0:
        p.expect_nothing()
        p.advance(p.now + p.config.delayed_ack)
    p.expect([outgoing("A", p.iss + 1, p.seq + 1, window=p.window)])
    p.fin, p.seq = p.seq, p.seq + 1
    return p


def closing(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
            riss: int = REMOTE_ISS) -> Peer:
    """Simultaneous close: our FIN is out and unacknowledged when the peer's arrives."""
    p = fin_wait_1(config, iss=iss, riss=riss)
    p.inject(incoming("FA", p.seq, p.iss + 1))
    p.expect([outgoing("A", p.iss + 2, p.seq + 1, window=p.window)])
    p.fin, p.seq = p.seq, p.seq + 1
    return p


def last_ack(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
             riss: int = REMOTE_ISS) -> Peer:
    p = close_wait(config, iss=iss, riss=riss)
    assert p.conn is not None
    p.conn.close(p.now)
    p.expect([outgoing("FA", p.iss + 1, p.seq, window=p.window)])
    p.una, p.nxt, p.ack = p.iss + 1, p.iss + 2, p.iss + 1
    return p


def time_wait(config: TcpConfig | None = None, iss: int = LOCAL_ISS,
              riss: int = REMOTE_ISS) -> Peer:
    p = fin_wait_2(config, iss=iss, riss=riss)
    p.inject(incoming("FA", p.seq, p.iss + 2), at=p.now + 0.1)
    p.expect([outgoing("A", p.iss + 2, p.seq + 1, window=p.window)])
    p.fin, p.seq = p.seq, p.seq + 1
    return p


BUILDERS = {
    "CLOSED": closed,
    "LISTEN": listen,
    "SYN-SENT": syn_sent,
    "SYN-RECEIVED": syn_received,
    "ESTABLISHED": established,
    "FIN-WAIT-1": fin_wait_1,
    "FIN-WAIT-2": fin_wait_2,
    "CLOSE-WAIT": close_wait,
    "CLOSING": closing,
    "LAST-ACK": last_ack,
    "TIME-WAIT": time_wait,
}
