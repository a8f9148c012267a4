"""Fuzzing the wire parser and the engine (issue 9): random and mutated segments
against connections in every state.

Bounded for CI (about a minute in all: 6000 examples by default).  A long run:

    TCPLAB_FUZZ_EXAMPLES=200000 .venv/bin/pytest -q tests/fuzz -p no:cacheprovider

Any crash found becomes a regression test below (``test_regression_*``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.engine import ALL_STATES, Connection, Host, State, TcpConfig
from tcplab.trace import Trace
from tcplab.wire import (
    ACK,
    FIN,
    RST,
    SYN,
    Mss,
    TcpSegment,
    WindowScale,
    WireError,
    emit_ip_tcp,
    parse_ip,
    parse_ip_tcp,
    parse_tcp,
)
from tcplab.wire.seq import seq_le

EXAMPLES = int(os.environ.get("TCPLAB_FUZZ_EXAMPLES", "6000"))
C, S = "192.0.2.1", "192.0.2.2"
STATES = [st_ for st_ in ALL_STATES if st_ not in (State.LISTEN, State.CLOSED)]


def _pair() -> tuple[Host, Host]:
    cfg = TcpConfig(delayed_ack=0.0)
    c = Host("client", C, config=cfg, rng=random.Random(1), trace=Trace(enabled=False))
    s = Host("server", S, config=TcpConfig(delayed_ack=0.0), rng=random.Random(2),
             trace=Trace(enabled=False))
    return c, s


def _deliver(a: Host, b: Host, now: float, keep: Callable[[TcpSegment], bool] | None = None
             ) -> None:
    for out in a.transmit():
        _ip, seg = parse_ip_tcp(out.data)
        if keep is None or keep(seg):
            b.receive(out.data, now)


def in_state(state: State) -> tuple[Host, Connection]:
    """A host whose connection with 192.0.2.1:port is in ``state``."""
    c, s = _pair()
    lst = s.listen(s.bind("0.0.0.0", 80))
    cc = c.connect(S, 80, 0.0)
    if state is State.SYN_SENT:
        c.transmit()
        return c, cc
    _deliver(c, s, 0.01)
    sc = s.conns[(S, 80, C, cc.lport)]
    if state is State.SYN_RECEIVED:
        s.transmit()
        return s, sc
    _deliver(s, c, 0.02)
    _deliver(c, s, 0.03)
    assert lst.accept() is sc and sc.state is State.ESTABLISHED
    if state is State.ESTABLISHED:
        return s, sc
    if state is State.CLOSING:
        cc.close(0.04)
        sc.close(0.04)
        _deliver(c, s, 0.05, keep=lambda seg: bool(seg.flags & FIN))
        assert sc.state is State.CLOSING
        s.transmit()
        return s, sc
    sc.close(0.04)  # the server closes first
    if state is State.FIN_WAIT_1:
        s.transmit()
        return s, sc
    _deliver(s, c, 0.05)
    _deliver(c, s, 0.06)
    if state is State.FIN_WAIT_2:
        return s, sc
    if state is State.CLOSE_WAIT:
        return c, cc
    cc.close(0.07)
    if state is State.LAST_ACK:
        c.transmit()
        return c, cc
    _deliver(c, s, 0.08)
    assert sc.state is State.TIME_WAIT
    s.transmit()
    return s, sc


def check_invariants(host: Host, conn: Connection, rcv_before: int | None) -> None:
    assert conn.state in ALL_STATES
    if conn.state is not State.CLOSED and conn.state is not State.TIME_WAIT:
        assert seq_le(conn.snd_una, conn.snd_nxt), (conn.snd_una, conn.snd_nxt)
        assert seq_le(conn.snd_nxt, conn.snd_max), (conn.snd_nxt, conn.snd_max)
        assert 0 <= conn.snd_wnd <= 0xFFFF << 14
        assert 0 <= conn.rcv_wnd <= conn.rcv_buf
        if rcv_before is not None:
            assert seq_le(rcv_before, conn.rcv_nxt)  # RCV.NXT never moves backwards
    for out in host.transmit():
        parse_ip_tcp(out.data)  # everything the engine sends is well-formed


near = st.integers(-70000, 70000)
flags_st = st.integers(0, 255) | st.sampled_from([SYN, SYN | ACK, ACK, FIN | ACK, RST,
                                                  RST | ACK, SYN | FIN, 0])


@st.composite
def segments(draw: st.DrawFn, conn: Connection) -> TcpSegment:
    base_seq = int(conn.rcv_nxt) if draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
    base_ack = int(conn.snd_nxt) if draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
    opts = draw(st.sampled_from([(), (Mss(0),), (Mss(1460), WindowScale(14)),
                                 (WindowScale(200),)]))
    return TcpSegment(conn.rport, conn.lport, (base_seq + draw(near)) & 0xFFFFFFFF,
                      (base_ack + draw(near)) & 0xFFFFFFFF, draw(flags_st),
                      draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)), opts,
                      draw(st.binary(max_size=3000)))


@pytest.mark.parametrize("state", STATES, ids=[s.value for s in STATES])
@settings(max_examples=max(EXAMPLES // 10, 20), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_segment_sequences_keep_engine_invariants(state: State, data: st.DataObject
                                                         ) -> None:
    host, conn = in_state(state)
    now = 1.0
    for _ in range(data.draw(st.integers(1, 12))):
        seg = data.draw(segments(conn))
        # RCV.NXT is only defined once the peer's SYN has been seen.
        before = None if conn.state is State.SYN_SENT else int(conn.rcv_nxt)
        host.receive(emit_ip_tcp(conn.raddr, conn.laddr, seg), now)
        check_invariants(host, conn, before)
        if data.draw(st.booleans()):
            now += data.draw(st.floats(0, 200))
            before = None if conn.state is State.SYN_SENT else int(conn.rcv_nxt)
            host.handle_timers(now)
            check_invariants(host, conn, before)


@pytest.mark.parametrize("state", STATES, ids=[s.value for s in STATES])
@settings(max_examples=max(EXAMPLES // 10, 20), deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1,
                      max_size=6),
       cut=st.integers(0, 2000))
def test_mutated_packets_never_crash_a_connection(state: State, flips: list[tuple[int, int]],
                                                  cut: int) -> None:
    host, conn = in_state(state)
    seg = TcpSegment(conn.rport, conn.lport, int(conn.rcv_nxt), int(conn.snd_nxt), ACK, 65535,
                     0, (), b"x" * 100)
    pkt = bytearray(emit_ip_tcp(conn.raddr, conn.laddr, seg))
    for pos, bit in flips:
        pkt[pos % len(pkt)] ^= 1 << bit
    host.receive(bytes(pkt[: max(cut, 1)] if cut < len(pkt) else pkt), 2.0)
    check_invariants(host, conn, int(conn.rcv_nxt))


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.binary(max_size=200))
def test_wire_parsers_raise_only_wire_error(data: bytes) -> None:
    for fn in (parse_ip, parse_ip_tcp, parse_tcp, lambda d: parse_tcp(d, C, S)):
        try:
            fn(data)
        except WireError:
            pass


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_packets_into_a_listening_host_never_raise(data: bytes) -> None:
    _c, s = _pair()
    s.listen(s.bind("0.0.0.0", 80))
    s.receive(data, 0.0)
    s.receive(b"\x45" + data, 0.0)
    for out in s.transmit():
        parse_ip_tcp(out.data)


def test_every_state_fixture_is_what_it_says() -> None:
    for state in STATES:
        _host, conn = in_state(state)
        assert conn.state is state
