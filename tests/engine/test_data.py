"""Data transfer: delayed ACK, reassembly, Nagle, flow control and zero-window probes, RFC 6298."""

from __future__ import annotations

import pytest

from tcplab.engine import TcpConfig

from . import harness
from .harness import LOCAL_ISS, REMOTE_ISS, WINDOW, Peer, incoming, outgoing

L, R = LOCAL_ISS, REMOTE_ISS
MSS = 1460
BLOB = bytes(i * 7 % 251 for i in range(8000))  # recognisable bytes for reassembly checks


def _conn(p: Peer):  # type: ignore[no-untyped-def]
    assert p.conn is not None
    return p.conn


# ---------------------------------------------------------------- delayed ACK (RFC 9293 3.8.6.3)


def test_established_delayed_ack_fires_after_40ms(socket_established: Peer) -> None:
    p = socket_established
    p.inject(incoming("PA", R + 1, L + 1, payload=b"x" * 100), at=1.0)
    p.expect_nothing()
    p.advance(1.0 + 0.039)
    p.expect_nothing()
    p.advance(1.04)
    p.expect([outgoing("A", L + 1, R + 101, window=WINDOW - 100)])


def test_established_every_second_full_segment_acked_at_once(socket_established: Peer) -> None:
    p = socket_established
    p.inject(incoming("A", R + 1, L + 1, payload=BLOB[:MSS]), at=1.0)
    p.expect_nothing()
    p.inject(incoming("A", R + 1 + MSS, L + 1, payload=BLOB[MSS:2 * MSS]), at=1.001)
    p.expect([outgoing("A", L + 1, R + 1 + 2 * MSS, window=WINDOW - 2 * MSS)])
    assert p.next_timer() is None  # the delayed-ACK timer went with that ACK


def test_established_no_delayed_ack_when_disabled() -> None:
    p = harness.established(TcpConfig(delayed_ack=0))
    p.inject(incoming("PA", R + 1, L + 1, payload=b"abc"), at=1.0)
    p.expect([outgoing("A", L + 1, R + 4, window=WINDOW - 3)])


def test_established_ack_piggybacks_on_data(socket_established: Peer) -> None:
    p = socket_established
    p.inject(incoming("PA", R + 1, L + 1, payload=b"ping"), at=1.0)
    conn = _conn(p)
    assert conn.recv(10, 1.01) == b"ping"
    conn.send(b"pong", 1.01)
    p.expect([outgoing("PA", L + 1, R + 5, payload=b"pong")])
    p.advance(1.1)
    p.expect_nothing()  # no separate delayed ACK


# ---------------------------------------------------------------- reassembly


def test_established_out_of_order_reassembly_with_overlaps(socket_established: Peer) -> None:
    """Out-of-order pieces are held, overlaps trimmed; each arrival out of order is ACKed at once."""
    p = socket_established
    base = R + 1

    def piece(lo: int, hi: int, at: float) -> None:
        p.inject(incoming("A", base + lo, L + 1, payload=BLOB[lo:hi]), at=at)

    piece(20, 30, 1.0)
    p.expect([outgoing("A", L + 1, base)])  # duplicate ACK (RFC 5681 4.2)
    piece(10, 25, 1.01)  # overlaps the held piece on its right
    p.expect([outgoing("A", L + 1, base)])
    piece(28, 40, 1.02)  # overlaps on its left and extends it
    p.expect([outgoing("A", L + 1, base)])
    piece(0, 12, 1.03)  # fills the hole: everything up to 40 is now in order
    p.expect([outgoing("A", L + 1, base + 40, window=WINDOW - 40)])
    assert _conn(p).recv(100, 1.04) == BLOB[:40]


def test_established_duplicate_and_partial_overlap_at_left_edge(socket_established: Peer) -> None:
    p = socket_established
    base = R + 1
    p.inject(incoming("A", base, L + 1, payload=BLOB[:10]), at=1.0)
    p.advance(1.05)
    p.expect([outgoing("A", L + 1, base + 10, window=WINDOW - 10)])
    # A retransmission that starts inside what we have: the old part is trimmed.
    p.inject(incoming("A", base + 5, L + 1, payload=BLOB[5:15]), at=1.1)
    p.advance(1.2)
    p.expect([outgoing("A", L + 1, base + 15, window=WINDOW - 15)])
    assert _conn(p).recv(100, 1.2) == BLOB[:15]


def test_established_data_beyond_window_is_trimmed() -> None:
    p = harness.established(TcpConfig(rcv_buf=100))
    # The SYN-ACK advertised 100; a segment of 150 is cut at the right edge.
    p.inject(incoming("A", R + 1, L + 1, payload=BLOB[:150]), at=1.0)
    p.advance(1.1)
    p.expect([outgoing("A", L + 1, R + 101, window=0)])
    assert _conn(p).recv(1000, 1.1) == BLOB[:100]


# ---------------------------------------------------------------- Nagle (RFC 9293 3.7.4)


def test_established_nagle_holds_small_segments(socket_established: Peer) -> None:
    p = socket_established
    conn = _conn(p)
    conn.send(b"a", 1.0)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"a")])
    conn.send(b"b", 1.01)
    conn.send(b"c", 1.02)
    p.expect_nothing()  # small, and data is unacknowledged
    p.inject(incoming("A", R + 1, L + 2), at=1.1)
    p.expect([outgoing("PA", L + 2, R + 1, payload=b"bc")])


def test_established_nodelay_sends_at_once(socket_established: Peer) -> None:
    p = socket_established
    conn = _conn(p)
    conn.set_nodelay(True)
    conn.send(b"a", 1.0)
    conn.send(b"b", 1.01)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"a"),
              outgoing("PA", L + 2, R + 1, payload=b"b")])


def test_established_nagle_does_not_hold_full_segments(socket_established: Peer) -> None:
    p = socket_established
    conn = _conn(p)
    conn.send(BLOB[:MSS + 10], 1.0)
    p.expect([outgoing("A", L + 1, R + 1, payload=BLOB[:MSS])])  # the 10 left wait
    p.inject(incoming("A", R + 1, L + 1 + MSS), at=1.1)
    p.expect([outgoing("PA", L + 1 + MSS, R + 1, payload=BLOB[MSS:MSS + 10])])


def test_config_nagle_off_is_nodelay() -> None:
    p = harness.established(TcpConfig(nagle=False))
    conn = _conn(p)
    conn.send(b"a", 1.0)
    conn.send(b"b", 1.0)
    assert len(p.take()) == 2


# ---------------------------------------------------------------- flow control


def test_established_send_respects_peer_window(socket_established: Peer) -> None:
    p = socket_established
    p.inject(incoming("A", R + 1, L + 1, window=1000), at=1.0)
    conn = _conn(p)
    conn.set_nodelay(True)
    conn.send(BLOB[:3000], 1.0)
    # 1000 octets are less than half the largest window seen (65535): sender
    # SWS avoidance waits, until the override timeout (the persist timer, 1 RTO).
    p.expect_nothing()
    p.advance(2.0)
    p.expect([outgoing("A", L + 1, R + 1, payload=BLOB[:1000])])
    p.inject(incoming("A", R + 1, L + 1001, window=2000), at=2.1)
    p.expect([outgoing("A", L + 1001, R + 1, payload=BLOB[1000:1000 + MSS]),
              outgoing("PA", L + 1001 + MSS, R + 1, payload=BLOB[1000 + MSS:3000])])


def test_established_zero_window_probing(socket_established: Peer) -> None:
    """RFC 9293 3.8.6.1: probe a zero window with one octet, backing off; resume when it opens."""
    p = socket_established
    p.inject(incoming("A", R + 1, L + 1, window=0), at=1.0)
    conn = _conn(p)
    conn.send(b"hello", 1.0)
    p.expect_nothing()
    # First probe after one RTO (1 s), then 2, 4, 8 s: the peer keeps the window shut.
    t = 1.0
    for gap in (1.0, 2.0, 4.0, 8.0):
        t += gap
        p.advance(t - 0.001)
        p.expect_nothing()
        p.advance(t)
        p.expect([outgoing("A", L + 1, R + 1, payload=b"h")])
        p.inject(incoming("A", R + 1, L + 1, window=0), at=t + 0.05)
        p.expect_nothing()  # a zero-window reply is no duplicate ACK: no fast retransmit
        assert p.state == "ESTABLISHED"
    # The window opens: everything goes out at once.
    p.inject(incoming("A", R + 1, L + 1, window=1000), at=t + 1.0)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"hello")])


def test_established_zero_window_probe_accepted(socket_established: Peer) -> None:
    """The peer takes the probe octet: SND.UNA moves past it and the rest follows."""
    p = socket_established
    p.inject(incoming("A", R + 1, L + 1, window=0), at=1.0)
    conn = _conn(p)
    conn.send(b"hello", 1.0)
    p.advance(2.0)
    p.expect([outgoing("A", L + 1, R + 1, payload=b"h")])
    p.inject(incoming("A", R + 1, L + 2, window=100), at=2.1)
    p.expect([outgoing("PA", L + 2, R + 1, payload=b"ello")])


def test_established_our_window_closes_and_reopens() -> None:
    """We offer a zero window when the buffer is full, refuse the peer's probes, then update."""
    p = harness.established(TcpConfig(rcv_buf=2000))
    conn = _conn(p)
    p.inject(incoming("A", R + 1, L + 1, payload=BLOB[:1000]), at=1.0)
    p.inject(incoming("A", R + 1001, L + 1, payload=BLOB[1000:2000]), at=1.01)
    p.advance(1.1)  # 2000 octets < 2 full segments: the ACK is delayed
    p.expect([outgoing("A", L + 1, R + 2001, window=0)])
    # A probe: one octet into a zero window is not acceptable; ACK with window 0.
    p.inject(incoming("A", R + 2001, L + 1, payload=b"z"), at=2.0)
    p.expect([outgoing("A", L + 1, R + 2001, window=0)])
    # The application reads: a window update goes out (receiver SWS avoidance allows it).
    assert conn.recv(5000, 2.5) == BLOB[:2000]
    p.expect([outgoing("A", L + 1, R + 2001, window=2000)])


# ---------------------------------------------------------------- retransmission (RFC 6298)


def test_established_rto_backoff_and_retry_limit() -> None:
    p = harness.established(TcpConfig(data_retries=3))
    conn = _conn(p)
    conn.send(b"data", 1.0)
    seg = outgoing("PA", L + 1, R + 1, payload=b"data")
    p.expect([seg])
    # RTO 1 s (rto_min), doubled on each timeout (RFC 6298 5.5).
    for t in (2.0, 4.0, 8.0):
        p.advance(t - 0.001)
        p.expect_nothing()
        p.advance(t)
        p.expect([seg])
    p.advance(16.0)
    p.expect_nothing()
    assert p.state == "CLOSED"
    assert conn.error == "timed out"


def test_established_rtt_estimate_sets_rto() -> None:
    """RFC 6298 2.2/2.3: first sample R gives SRTT=R, RTTVAR=R/2, RTO=SRTT+4*RTTVAR."""
    p = harness.established(TcpConfig(rto_min=0.2))
    conn = _conn(p)
    # The handshake gave a 0.1 s sample: RTO = 0.1 + 4 * 0.05 = 0.3 s.
    assert conn.rto == pytest.approx(0.3)
    conn.send(b"a", 1.0)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"a")])
    assert p.next_timer() == pytest.approx(1.3)
    # A second sample of 0.2 s: RTTVAR = 3/4*0.05 + 1/4*0.1 = 0.0625, SRTT = 0.1125.
    p.inject(incoming("A", R + 1, L + 2), at=1.2)
    assert conn.srtt == pytest.approx(0.1125)
    assert conn.rto == pytest.approx(0.1125 + 4 * 0.0625)


def test_established_karn_no_sample_from_retransmission() -> None:
    p = harness.established(TcpConfig(rto_min=0.2))
    conn = _conn(p)
    conn.send(b"a", 1.0)
    p.take()
    p.advance(1.3)  # timeout: RTO 0.3 -> 0.6
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"a")])
    srtt = conn.srtt
    p.inject(incoming("A", R + 1, L + 2), at=1.35)  # ambiguous: no sample (Karn)
    assert conn.srtt == srtt
    assert conn.rto == pytest.approx(0.6)  # the backed-off RTO is kept (RFC 6298 5.7 note)
    conn.send(b"b", 1.4)
    p.expect([outgoing("PA", L + 2, R + 1, payload=b"b")])
    assert p.next_timer() == pytest.approx(1.4 + 0.6)


def test_established_fast_retransmit_on_three_duplicate_acks(socket_established: Peer) -> None:
    p = socket_established
    conn = _conn(p)
    conn.send(BLOB[:4 * MSS], 1.0)
    assert len(p.take()) == 4
    for i in range(3):
        p.inject(incoming("A", R + 1, L + 1), at=1.1 + i * 0.001)
    p.expect([outgoing("A", L + 1, R + 1, payload=BLOB[:MSS])])


def test_established_ack_advances_and_stops_timer(socket_established: Peer) -> None:
    p = socket_established
    conn = _conn(p)
    conn.send(b"abc", 1.0)
    p.take()
    p.inject(incoming("A", R + 1, L + 4), at=1.1)
    assert conn.snd_una == L + 4
    assert p.next_timer() is None


# ---------------------------------------------------------------- half-close and close


def test_fin_wait_2_still_receives(socket_fin_wait_2: Peer) -> None:
    """Our half-close: after our FIN is ACKed we still receive data, then the peer's FIN."""
    p = socket_fin_wait_2
    conn = _conn(p)
    p.inject(incoming("PA", R + 1, L + 2, payload=b"late reply"), at=1.0)
    p.advance(1.05)
    p.expect([outgoing("A", L + 2, R + 11, window=WINDOW - 10)])
    assert conn.recv(100, 1.05) == b"late reply"
    p.inject(incoming("FA", R + 11, L + 2), at=1.1)
    p.expect([outgoing("A", L + 2, R + 12)])
    assert p.state == "TIME-WAIT"
    assert conn.at_eof


def test_close_wait_still_sends(socket_close_wait: Peer) -> None:
    """The peer's half-close: in CLOSE-WAIT we still send, then close."""
    p = socket_close_wait
    conn = _conn(p)
    assert conn.at_eof and conn.recv(10, p.now) == b""
    conn.send(b"response", 1.0)
    p.expect([outgoing("PA", L + 1, R + 2, payload=b"response")])
    p.inject(incoming("A", R + 2, L + 9), at=1.1)
    conn.close(1.2)
    p.expect([outgoing("FA", L + 9, R + 2)])
    assert p.state == "LAST-ACK"
    p.inject(incoming("A", R + 2, L + 10), at=1.3)
    assert p.state == "CLOSED" and conn.error is None


def test_established_fin_ack_rides_on_our_fin(socket_established: Peer) -> None:
    """Linux delays the ACK of a FIN: an application that closes at once sends FIN+ACK only."""
    p = socket_established
    p.inject(incoming("FA", R + 1, L + 1), at=1.0)
    p.expect_nothing()
    _conn(p).close(1.01)
    p.expect([outgoing("FA", L + 1, R + 2)])
    p.advance(1.1)
    p.expect_nothing()


def test_established_close_with_unread_data_sends_rst(socket_established: Peer) -> None:
    """Linux and RFC 2525 2.17: close() with unread data aborts (RST), not FIN."""
    p = socket_established
    p.inject(incoming("PA", R + 1, L + 1, payload=b"unread"), at=1.0)
    _conn(p).close(1.01)
    p.expect([outgoing("R", L + 1)])
    assert p.state == "CLOSED"


def test_established_abort_sends_rst(socket_established: Peer) -> None:
    p = socket_established
    _conn(p).abort(1.0)
    p.expect([outgoing("R", L + 1)])
    assert p.state == "CLOSED"
    assert p.next_timer() is None


def test_established_close_pushes_held_data_with_fin(socket_established: Peer) -> None:
    """Data Nagle holds goes out with the FIN at close(), in one segment (as Linux does)."""
    p = socket_established
    conn = _conn(p)
    conn.send(b"a", 1.0)
    conn.send(b"bc", 1.0)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"a")])
    conn.close(1.0)
    p.expect([outgoing("FPA", L + 2, R + 1, payload=b"bc")])
    assert p.state == "FIN-WAIT-1"


def test_fin_wait_2_timeout_after_close() -> None:
    """An orphaned FIN-WAIT-2 ends after tcp_fin_timeout (Linux, 60 s), silently."""
    p = harness.established()
    conn = _conn(p)
    conn.close(1.0)
    p.expect([outgoing("FA", L + 1, R + 1)])
    p.inject(incoming("A", R + 1, L + 2), at=1.1)
    assert p.state == "FIN-WAIT-2"
    assert p.next_timer() == pytest.approx(61.1)  # from entering FIN-WAIT-2
    p.advance(61.1)
    p.expect_nothing()
    assert p.state == "CLOSED"


def test_last_ack_retransmits_fin_then_times_out() -> None:
    p = harness.last_ack(TcpConfig(data_retries=2))
    fin = outgoing("FA", L + 1, R + 2)
    t0 = p.now
    p.advance(t0 + 1.0)
    p.expect([fin])
    p.advance(t0 + 3.0)
    p.expect([fin])
    p.advance(t0 + 7.0)
    p.expect_nothing()
    assert p.state == "CLOSED" and _conn(p).error == "timed out"
