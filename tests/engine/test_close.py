"""Closing: simultaneous close, TIME-WAIT (2MSL, restart, RFC 1337, reopening SYN), the switches."""

from __future__ import annotations

import pytest

from tcplab.engine import TcpConfig
from tcplab.wire import Mss

from . import harness
from .harness import KEY, LOCAL_ISS, REMOTE_ISS, SYN_OPTIONS, Peer, incoming, outgoing

L, R = LOCAL_ISS, REMOTE_ISS


def test_fin_wait_1_simultaneous_close(socket_established: Peer) -> None:
    """RFC 9293 Figure 13: FIN-WAIT-1 -> CLOSING -> TIME-WAIT -> CLOSED after 2MSL."""
    p = socket_established
    assert p.conn is not None
    p.conn.close(1.0)
    p.expect([outgoing("FA", L + 1, R + 1)])
    p.inject(incoming("FA", R + 1, L + 1), at=1.05)  # the FINs cross
    p.expect([outgoing("A", L + 2, R + 2)])
    assert p.state == "CLOSING"
    p.inject(incoming("A", R + 2, L + 2), at=1.1)
    p.expect_nothing()
    assert p.state == "TIME-WAIT"
    assert p.next_timer() == pytest.approx(61.1)
    p.advance(61.1)
    assert p.state == "CLOSED"


def test_time_wait_lasts_exactly_2msl(socket_time_wait: Peer) -> None:
    p = socket_time_wait
    t0 = p.now
    p.advance(t0 + 59.999)
    assert p.state == "TIME-WAIT" and KEY in p.host.time_wait
    p.advance(t0 + 60.0)
    assert p.state == "CLOSED" and KEY not in p.host.time_wait
    assert p.conn is not None and p.conn.current_state().value == "CLOSED"
    assert p.next_timer() is None
    p.expect_nothing()


def test_time_wait_retransmitted_fin_restarts_2msl(socket_time_wait: Peer) -> None:
    """RFC 9293 3.10.7.4 eighth step: ACK the FIN again and restart the 2MSL timeout."""
    p = socket_time_wait
    t0 = p.now
    p.inject(incoming("FA", R + 1, L + 2), at=t0 + 30.0)
    p.expect([outgoing("A", L + 2, R + 2)])
    p.advance(t0 + 60.0)
    assert p.state == "TIME-WAIT"
    p.advance(t0 + 89.999)
    assert p.state == "TIME-WAIT"
    p.advance(t0 + 90.0)
    assert p.state == "CLOSED"


def test_time_wait_rst_ignored_rfc1337(socket_time_wait: Peer) -> None:
    p = socket_time_wait
    p.inject(incoming("R", R + 2), at=p.now + 1)
    p.inject(incoming("RA", R + 2, L + 2), at=p.now + 1)
    p.expect_nothing()
    assert p.state == "TIME-WAIT"
    assert any("RFC 1337" in r for r in p.drop_reasons())


def test_time_wait_rst_assassinates_without_rfc1337() -> None:
    """With the RFC 1337 protection off, RFC 9293's rule applies: an in-sequence RST closes."""
    p = harness.time_wait(TcpConfig(rfc1337=False))
    p.inject(incoming("R", R + 2 + 100), at=p.now + 1)  # in window, not exact: RFC 5961 drop
    assert p.state == "TIME-WAIT"
    p.inject(incoming("R", R + 2), at=p.now + 1)
    p.expect_nothing()
    assert p.state == "CLOSED"


def test_time_wait_syn_with_higher_seq_reopens(socket_time_wait: Peer) -> None:
    """RFC 6191 / RFC 1122 4.2.2.13: a SYN beyond the old RCV.NXT starts a new incarnation."""
    p = socket_time_wait
    new_isn = R + 2 + 50_000
    p.inject(incoming("S", new_isn, options=(Mss(1460),)), at=p.now + 5)
    p.expect([outgoing("SA", L, new_isn + 1, options=SYN_OPTIONS)])
    assert p.state == "SYN-RECEIVED"
    assert KEY not in p.host.time_wait
    p.inject(incoming("A", new_isn + 1, L + 1), at=p.now + 0.1)
    assert p.state == "ESTABLISHED"


def test_time_wait_syn_with_lower_seq_gets_ack(socket_time_wait: Peer) -> None:
    p = socket_time_wait
    p.inject(incoming("S", R - 1000), at=p.now + 5)
    p.expect([outgoing("A", L + 2, R + 2)])
    assert p.state == "TIME-WAIT"


def test_time_wait_reopening_syn_without_listener_is_reset() -> None:
    """The active closer of a client connection has no listener: the SYN is answered as in CLOSED."""
    p = harness.syn_sent()
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=0.1)
    p.expect([outgoing("A", L + 1, R + 1)])
    assert p.conn is not None
    p.conn.close(0.2)
    p.expect([outgoing("FA", L + 1, R + 1)])
    p.inject(incoming("FA", R + 1, L + 2), at=0.3)
    p.expect([outgoing("A", L + 2, R + 2)])
    assert p.state == "TIME-WAIT"
    syn = incoming("S", R + 100_000)
    p.inject(syn, at=1.0)
    p.expect([outgoing("RA", 0, R + 100_001)])


@pytest.mark.parametrize(("switch", "length"), [
    (TcpConfig(time_wait=5.0), 5.0),
    (TcpConfig(msl=10.0), 20.0),
    (TcpConfig(), 60.0),
])
def test_time_wait_length_switch(switch: TcpConfig, length: float) -> None:
    p = harness.time_wait(switch)
    t0 = p.now
    p.advance(t0 + length - 0.001)
    assert p.state == "TIME-WAIT"
    p.advance(t0 + length)
    assert p.state == "CLOSED"


def test_time_wait_disabled_switch() -> None:
    """time_wait=0: the experiment without TIME-WAIT; the last ACK still goes out."""
    p = harness.fin_wait_2(TcpConfig(time_wait=0))
    p.inject(incoming("FA", R + 1, L + 2), at=p.now + 0.1)
    p.expect([outgoing("A", L + 2, R + 2)])
    assert p.state == "CLOSED"
    assert KEY not in p.host.time_wait and KEY not in p.host.conns
    # The peer's retransmitted FIN now meets no connection: RST (what TIME-WAIT prevents).
    p.inject(incoming("FA", R + 1, L + 2), at=p.now + 1)
    p.expect([outgoing("R", L + 2)])


def test_time_wait_out_of_window_segment_gets_ack(socket_time_wait: Peer) -> None:
    p = socket_time_wait
    p.inject(incoming("A", R + 200_000, L + 2, payload=b"x"), at=p.now + 1)
    p.expect([outgoing("A", L + 2, R + 2)])


def test_time_wait_other_tuple_unaffected(socket_time_wait: Peer) -> None:
    p = socket_time_wait
    other = incoming("S", 77, options=(Mss(1460),)).replace(src_port=50000)
    p.inject(other, at=p.now + 1)
    p.expect([outgoing("SA", L, 78, options=SYN_OPTIONS).replace(dst_port=50000)])
    assert p.state == "TIME-WAIT"
