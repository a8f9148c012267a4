"""Opening: three-way and simultaneous open, SYN/SYN-ACK retransmission, refusal, MSS, data in the handshake."""

from __future__ import annotations

import pytest

from tcplab.engine import TcpConfig, TcpError
from tcplab.wire import Mss, Nop, WindowScale

from . import harness
from .harness import (
    LOCAL,
    LOCAL_ISS,
    LOCAL_PORT,
    REMOTE,
    REMOTE_ISS,
    REMOTE_PORT,
    SYN_OPTIONS,
    WINDOW,
    Peer,
    incoming,
    outgoing,
)

L, R = LOCAL_ISS, REMOTE_ISS


def test_syn_sent_syn_ack_establishes(socket_syn_sent: Peer) -> None:
    p = socket_syn_sent
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=0.1)
    p.expect([outgoing("A", L + 1, R + 1)])
    assert p.state == "ESTABLISHED"
    assert p.next_timer() is None  # the SYN's retransmission timer is off


def test_syn_sent_simultaneous_open(socket_syn_sent: Peer) -> None:
    """RFC 9293 Figure 8: SYN-SENT -> SYN-RECEIVED -> ESTABLISHED, no third ACK needed."""
    p = socket_syn_sent
    p.inject(incoming("S", R, options=(Mss(1460),)), at=0.05)
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    assert p.state == "SYN-RECEIVED"
    # The peer's SYN-ACK: its SYN (seq R) we already have, its ACK covers ours.
    # RFC 9293 read literally would call it a duplicate and answer with an ACK;
    # Linux (tcp_validate_incoming) accepts it, and so does tcplab.
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=0.1)
    p.expect_nothing()
    assert p.state == "ESTABLISHED"
    assert p.conn is not None and p.conn.error is None
    # Data flows both ways.
    p.inject(incoming("PA", R + 1, L + 1, payload=b"hi"), at=0.2)
    assert p.conn.recv(10, p.now) == b"hi"
    p.conn.send(b"yo", p.now)
    p.expect([outgoing("PA", L + 1, R + 3, payload=b"yo")])


def test_syn_sent_simultaneous_open_completed_by_ack(socket_syn_sent: Peer) -> None:
    """A peer that answers our SYN-ACK with a bare ACK also completes the open."""
    p = socket_syn_sent
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.expect_nothing()
    assert p.state == "ESTABLISHED"


def test_syn_received_active_rst_is_refused(socket_syn_sent: Peer) -> None:
    """RFC 9293 3.10.7.4 second: in an active open's SYN-RECEIVED, RST means "refused"."""
    p = socket_syn_sent
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.take()
    p.inject(incoming("R", R + 1), at=0.1)
    p.expect_nothing()
    assert p.state == "CLOSED"
    assert p.conn is not None and p.conn.error == "refused"


def test_syn_sent_simultaneous_open_retransmits_syn_ack(socket_syn_sent: Peer) -> None:
    p = socket_syn_sent
    p.inject(incoming("S", R, options=(Mss(1460),)), at=0.5)
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    p.advance(1.0)  # the SYN's timer, still armed: now it resends the SYN-ACK
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    assert p.state == "SYN-RECEIVED"


def test_syn_sent_data_on_third_segment(socket_syn_sent: Peer) -> None:
    """send() before the SYN-ACK: the data rides on the handshake's third segment."""
    p = socket_syn_sent
    assert p.conn is not None
    assert p.conn.send(b"GET / HTTP/1.0\r\n\r\n", 0.01) == 18
    p.expect_nothing()
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=0.1)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"GET / HTTP/1.0\r\n\r\n")])


def test_syn_received_data_on_third_segment(socket_syn_received: Peer) -> None:
    """The peer's third segment carries data: accepted with the ACK of our SYN."""
    p = socket_syn_received
    p.inject(incoming("PA", R + 1, L + 1, payload=b"hello"), at=0.1)
    assert p.state == "ESTABLISHED"
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None and conn.recv(100, p.now) == b"hello"


def test_syn_received_data_on_the_syn_is_queued(socket_listen: Peer) -> None:
    """RFC 9293 3.10.7.2: text on a SYN is queued until ESTABLISHED."""
    p = socket_listen
    p.inject(incoming("S", R, options=(Mss(1460),), payload=b"early"))
    # RCV.NXT = SEG.SEQ + 1: the text is not acknowledged yet.
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    assert p.conn is not None and p.conn.readable_bytes == 0
    p.inject(incoming("A", R + 6, L + 1), at=0.1)
    assert p.state == "ESTABLISHED"
    p.advance(0.2)
    p.expect([outgoing("A", L + 1, R + 6, window=WINDOW - 5)])
    assert p.conn.recv(100, p.now) == b"early"


def test_syn_sent_syn_ack_text_trimmed_to_window() -> None:
    """Text on a SYN-ACK is processed as in the seventh step: only what fits the window."""
    p = harness.syn_sent(TcpConfig(rcv_buf=1000))
    p.inject(incoming("SA", R, L + 1, payload=bytes(1460)), at=0.1)
    p.expect([outgoing("A", L + 1, R + 1001, window=0)])
    assert p.conn is not None and p.conn.readable_bytes == 1000


def test_listen_syn_text_trimmed_to_window() -> None:
    p = harness.listen(TcpConfig(rcv_buf=1000))
    p.inject(incoming("S", R, payload=bytes(1460)))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    assert p.conn is not None and p.conn.readable_bytes == 1000


def test_syn_sent_rst_refused(socket_syn_sent: Peer) -> None:
    p = socket_syn_sent
    p.inject(incoming("RA", 0, L + 1), at=0.1)
    p.expect_nothing()
    assert p.state == "CLOSED"
    assert p.conn is not None and p.conn.error == "refused"
    with pytest.raises(TcpError):
        p.conn.send(b"x", p.now)
    assert p.next_timer() is None


def test_syn_sent_rst_bad_ack(socket_syn_sent: Peer) -> None:
    p = socket_syn_sent
    p.inject(incoming("RA", 0, L), at=0.1)  # SEG.ACK =< ISS
    p.expect_nothing()
    assert p.state == "SYN-SENT"


def test_syn_sent_old_syn_ack_gets_rst(socket_syn_sent: Peer) -> None:
    """RFC 9293 Figure 9: an old duplicate SYN-ACK is reset; our SYN stays pending."""
    p = socket_syn_sent
    p.inject(incoming("SA", R - 5000, L - 100), at=0.1)
    p.expect([outgoing("R", L - 100)])
    assert p.state == "SYN-SENT"
    p.inject(incoming("SA", R, L + 1), at=0.2)
    p.expect([outgoing("A", L + 1, R + 1)])
    assert p.state == "ESTABLISHED"


def test_syn_sent_retransmits_with_backoff_then_times_out(socket_syn_sent: Peer) -> None:
    """RFC 6298: initial RTO 1 s, doubled per timeout; tcp_syn_retries (6) then ETIMEDOUT."""
    p = socket_syn_sent
    syn = outgoing("S", L, options=SYN_OPTIONS)
    for t in (1.0, 3.0, 7.0, 15.0, 31.0, 63.0):
        p.advance(t - 0.001)
        p.expect_nothing()
        p.advance(t)
        p.expect([syn])
        assert p.state == "SYN-SENT"
    # The next wait is 64 s capped by rto_max = 60 s (RFC 6298 (2.5)): timeout at
    # 63 + 60 = 123 s.  (Linux caps at 120 s, hence its 127 s.)
    p.advance(122.999)
    assert p.state == "SYN-SENT"
    p.advance(123.0)
    p.expect_nothing()
    assert p.state == "CLOSED"
    assert p.conn is not None and p.conn.error == "timed out"
    assert p.next_timer() is None


def test_syn_received_retransmits_syn_ack_then_gives_up(socket_syn_received: Peer) -> None:
    """tcp_synack_retries (5); then the half-open entry goes, silently, and LISTEN stays."""
    p = socket_syn_received
    synack = outgoing("SA", L, R + 1, options=SYN_OPTIONS)
    for t in (1.0, 3.0, 7.0, 15.0, 31.0):
        p.advance(t)
        p.expect([synack])
    p.advance(63.0)
    p.expect_nothing()
    assert p.state == "LISTEN"
    assert p.listener is not None and not p.listener.syn_queue
    assert p.host.conns == {}


def test_rto_after_retransmitted_syn_is_three_seconds() -> None:
    """RFC 6298 (5.7): no RTT sample from the handshake and the SYN was resent: RTO = 3 s."""
    p = harness.syn_sent()
    p.advance(1.0)
    p.expect([outgoing("S", L, options=SYN_OPTIONS)])
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=1.5)
    p.expect([outgoing("A", L + 1, R + 1)])
    assert p.conn is not None
    p.conn.send(b"x", p.now)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"x")])
    assert p.next_timer() == pytest.approx(1.5 + 3.0)


def test_syn_received_syn_ack_in_passive_open_is_not_simultaneous(
        socket_syn_received: Peer) -> None:
    """Only an active open's SYN-RECEIVED takes the peer's SYN-ACK (Linux does the same)."""
    p = socket_syn_received
    p.inject(incoming("SA", R, L + 1), at=0.1)
    p.expect([outgoing("A", L + 1, R + 1)])  # unacceptable (a SYN we have): ACK
    assert p.state == "SYN-RECEIVED"


# ---------------------------------------------------------------- MSS and window scale


@pytest.mark.parametrize(("peer_mss", "segment_size"), [
    (536, 536),     # the peer's MSS bounds what we send (RFC 9293 3.7.1)
    (None, 536),    # no option: the default 536 (RFC 9293 3.7.1, RFC 1122)
    (9000, 1460),   # never above our own MSS (our interface)
    (1200, 1200),
])
def test_syn_received_mss_negotiation(peer_mss: int | None, segment_size: int) -> None:
    p = harness.listen()
    opts = (Mss(peer_mss),) if peer_mss is not None else ()
    p.inject(incoming("S", R, options=opts))
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    assert p.conn is not None
    p.conn.set_nodelay(True)
    data = bytes(range(256)) * 12  # 3072 octets
    p.conn.send(data, p.now)
    sent = p.take()
    assert [len(s.payload) for s in sent][:-1] == [segment_size] * (len(sent) - 1)
    assert b"".join(s.payload for s in sent) == data


def test_listen_advertises_configured_mss() -> None:
    p = harness.listen(TcpConfig(mss=1000))
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.expect([outgoing("SA", L, R + 1, options=(Mss(1000),))])


def test_listen_window_scale_only_when_offered() -> None:
    """RFC 7323 2.2: a SYN-ACK carries Window Scale only if the SYN did."""
    big = TcpConfig(rcv_buf=262_144)
    p = harness.listen(big)
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.expect([outgoing("SA", L, R + 1, options=(Mss(1460),))])
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.inject(incoming("PA", R + 1, L + 1, payload=b"x"), at=0.2)
    p.advance(0.3)
    p.expect([outgoing("A", L + 1, R + 2, window=WINDOW - 1)])  # capped, unscaled

    q = harness.listen(big)
    q.inject(incoming("S", R, options=(Mss(1460), WindowScale(7))))
    q.expect([outgoing("SA", L, R + 1, options=(Mss(1460), Nop(), WindowScale(3)))])
    q.inject(incoming("A", R + 1, L + 1), at=0.1)
    q.inject(incoming("PA", R + 1, L + 1, payload=b"x"), at=0.2)
    q.advance(0.3)
    q.expect([outgoing("A", L + 1, R + 2, window=(262_144 - 1) >> 3)])


def test_syn_sent_peer_window_is_scaled_after_syn() -> None:
    p = Peer(TcpConfig(rcv_buf=262_144))
    p.conn = p.host.connect(REMOTE, REMOTE_PORT, 0.0, binding=p.host.bind(LOCAL, LOCAL_PORT))
    p.expect([outgoing("S", L, options=(Mss(1460), Nop(), WindowScale(3)))])
    p.inject(incoming("SA", R, L + 1, window=1000, options=(Mss(1460), WindowScale(2))))
    p.expect([outgoing("A", L + 1, R + 1, window=262_144 >> 3)])
    assert p.conn.snd_wnd == 1000  # a SYN's window is never scaled (RFC 7323 2.2)
    p.inject(incoming("A", R + 1, L + 1, window=1000), at=0.1)
    assert p.conn.snd_wnd == 4000


def test_listen_syn_with_ack_from_other_port_gets_rst(socket_listen: Peer) -> None:
    p = socket_listen
    seg = incoming("A", 5, 77).replace(src_port=1234)
    p.inject(seg)
    p.expect([outgoing("R", 77).replace(dst_port=1234)])
