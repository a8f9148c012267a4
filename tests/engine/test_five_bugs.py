"""Regression tests for five bugs found by running the same scripts on the engine and on
Linux 6.18 (issue "What Linux does"), each in the peer's voice."""

from __future__ import annotations

import errno

from tcplab.api.sockets import TcpSocket
from tcplab.engine import TcpConfig
from tcplab.wire import Mss

from .harness import LOCAL_ISS, LOCAL_PORT, NAME, REMOTE_ISS, Peer, incoming, outgoing
from .harness import established as established_peer
from .harness import listen as listen_peer

L, R = LOCAL_ISS, REMOTE_ISS


def handshake(p: Peer, syn_options: tuple[Mss, ...]) -> None:
    """The peer opens a connection to our listener with these SYN options."""
    p.inject(incoming("S", R, options=syn_options))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    assert p.listener is not None
    p.conn = p.listener.accept()
    assert p.conn is not None


def burst(p: Peer) -> list[int]:
    """Lengths of the segments sent at once when the application writes 64 KiB."""
    assert p.conn is not None
    p.conn.send(bytes(65536), p.now)
    return [len(s.payload) for s in p.take()]


# ---- 1. The initial window follows the peer's MSS (RFC 5681 3.1, RFC 6928).

def test_initial_window_uses_the_peer_mss_1000() -> None:
    """Peer MSS 1000: IW = min(10*1000, max(2*1000, 14600)) = 10000: ten segments, not 14."""
    p = listen_peer()
    handshake(p, (Mss(1000),))
    assert burst(p) == [1000] * 10


def test_initial_window_without_mss_option_is_ten_536_byte_segments() -> None:
    """No MSS option: SMSS is 536 (RFC 9293 3.7.1), IW = 5360: ten segments, not 27."""
    p = listen_peer()
    handshake(p, ())
    assert burst(p) == [536] * 10


def test_the_ack_of_our_syn_does_not_grow_cwnd() -> None:
    p = listen_peer()
    handshake(p, (Mss(1460),))
    assert p.conn is not None and p.conn.cwnd == 14600  # exactly IW, not IW + 1


# ---- 2. Data and FIN in one segment: one ACK, for both, at once.

def test_data_with_fin_is_acked_once_with_the_fin() -> None:
    p = established_peer()
    p.inject(incoming("FPA", R + 1, L + 1, payload=b"0123456789"), at=1.0)
    p.expect([outgoing("A", L + 1, R + 12, window=65535 - 10)])  # ack 12: 10 bytes + FIN, now
    p.advance(2.0)
    p.expect_nothing()  # and no second ACK when the delayed-ACK timer would have fired


# ---- 3. Data after close() is answered with a reset (RFC 9293 3.10.7.4, RFC 1122 4.2.2.13).

def test_data_after_close_is_reset() -> None:
    p = established_peer()
    assert p.conn is not None
    p.conn.close(1.0)
    p.expect([outgoing("FA", L + 1, R + 1)])
    p.inject(incoming("PA", R + 1, L + 2, payload=b"late"), at=1.1)
    p.expect([outgoing("R", L + 2)])  # <SEQ=SEG.ACK><CTL=RST>, nothing ACKed
    assert p.state == "CLOSED"
    assert p.host.counters["TcpExtTCPAbortOnData"] == 1


# ---- 4. A connection reset before accept() is still accepted; the first read reports it.

def test_reset_before_accept_is_returned_by_accept() -> None:
    p = listen_peer()
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.inject(incoming("R", R + 1), at=0.2)
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None and conn.error == "reset"

    class NoWait:
        now = 0.3

        def wait_until(self, *_a: object) -> None:
            raise AssertionError("the reset connection must not block")

        def kick(self) -> None:
            pass

    sock = TcpSocket(NoWait(), p.host)
    sock.conn = conn
    try:
        sock.recv(100)
    except ConnectionResetError as exc:
        assert exc.errno == errno.ECONNRESET
    else:
        raise AssertionError("recv() should raise ECONNRESET")


# ---- 5. The listener's LISTEN state appears in the trace.

def test_listen_appears_in_the_trace() -> None:
    p = listen_peer(TcpConfig())
    p.inject(incoming("S", R, options=(Mss(1460),)))
    changes = [(e["conn"], e["from"], e["to"]) for e in p.trace.of_kind("state")]
    assert changes == [(f"0.0.0.0:{LOCAL_PORT}-*:*", "CLOSED", "LISTEN"),
                       (NAME, "LISTEN", "SYN-RECEIVED")]
