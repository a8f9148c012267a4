"""The host: resets for no connection, RFC 5961 rate limit, bind/listen rules, backlog, SYN cookies,
the two-way handshake switch, and RFC 6528 ISNs."""

from __future__ import annotations

import errno
import random

import pytest

from tcplab.engine import Host, IsnGenerator, TcpConfig, TcpError
from tcplab.wire import Mss, TcpSegment

from . import harness
from .harness import (
    KEY,
    LOCAL,
    LOCAL_ISS,
    LOCAL_PORT,
    REMOTE,
    REMOTE_ISS,
    SYN_OPTIONS,
    Peer,
    incoming,
    outgoing,
)

L, R = LOCAL_ISS, REMOTE_ISS


def _from(port: int, seg: TcpSegment) -> TcpSegment:
    return seg.replace(src_port=port)


def _to(port: int, seg: TcpSegment) -> TcpSegment:
    return seg.replace(dst_port=port)


# ---------------------------------------------------------------- no connection (3.10.7.1)


def test_closed_never_answers_rst(closed: Peer) -> None:
    for flags in ("R", "RA", "RS", "RF", "RPA"):
        closed.inject(incoming(flags, 5, 6, payload=b"x" if "P" in flags else b""))
    closed.expect_nothing()


def test_closed_syn_fin_data_rst_ack_counts_every_octet(closed: Peer) -> None:
    closed.inject(incoming("SF", 100, payload=b"abcd"))
    closed.expect([outgoing("RA", 0, 100 + 4 + 2)])  # SEG.LEN counts SYN and FIN


def test_closed_segment_for_another_address_dropped(closed: Peer) -> None:
    closed.inject(incoming("S", 1), dst="192.0.2.99")
    closed.expect_nothing()


def test_closed_garbage_bytes_dropped_with_reason(closed: Peer) -> None:
    closed.host.receive(b"\x45\x00\x00", 0.0)
    closed.host.receive(b"", 0.0)
    closed.expect_nothing()
    assert len(closed.drop_reasons()) == 2


def test_listen_closed_listener_resets(socket_listen: Peer) -> None:
    p = socket_listen
    assert p.listener is not None
    p.listener.close(0.0)
    p.inject(incoming("S", R))
    p.expect([outgoing("RA", 0, R + 1)])


# ---------------------------------------------------------------- RFC 5961 challenge ACKs


def test_established_challenge_ack_rate_limit() -> None:
    """RFC 5961 7: challenge ACKs are limited per second (here 2)."""
    p = harness.established(TcpConfig(challenge_ack_limit=2))
    ack = outgoing("A", L + 1, R + 1)
    for i in range(4):
        p.inject(incoming("R", R + 1 + 10 + i), at=5.0 + i * 0.1)
    p.expect([ack, ack])
    p.inject(incoming("S", R + 1), at=5.9)
    p.expect_nothing()  # a SYN shares the budget
    p.inject(incoming("R", R + 1 + 10), at=6.0)  # a new second
    p.expect([ack])
    assert p.state == "ESTABLISHED"
    assert p.host.counters["TcpExtTCPChallengeACK"] == 3


def test_established_rst_exact_works_after_challenge(socket_established: Peer) -> None:
    """The blind attacker gets a challenge ACK; the real peer, who sees it, resets exactly."""
    p = socket_established
    p.inject(incoming("R", R + 500), at=1.0)
    p.expect([outgoing("A", L + 1, R + 1)])
    p.inject(incoming("R", R + 1), at=1.1)
    p.expect_nothing()
    assert p.state == "CLOSED" and p.conn is not None and p.conn.error == "reset"


def test_established_rfc5961_off_rst_in_window_resets() -> None:
    p = harness.established(TcpConfig(rfc5961=False))
    p.inject(incoming("R", R + 500), at=1.0)
    p.expect_nothing()
    assert p.state == "CLOSED"


def test_established_rfc5961_off_syn_in_window_resets() -> None:
    """RFC 793's rule: a SYN in the window is an error, answered with RST."""
    p = harness.established(TcpConfig(rfc5961=False))
    p.inject(incoming("S", R + 1), at=1.0)
    p.expect([outgoing("R", L + 1)])
    assert p.state == "CLOSED"


# ---------------------------------------------------------------- bind and listen (Linux)


def _host(**kw: object) -> Host:
    return Host("h", LOCAL, config=TcpConfig(**kw), rng=random.Random(3))  # type: ignore[arg-type]


def test_bind_same_port_needs_reuse_on_both() -> None:
    h = _host()
    h.bind(LOCAL, 8080)
    with pytest.raises(TcpError) as exc:
        h.bind(LOCAL, 8080)
    assert exc.value.errno == errno.EADDRINUSE
    h2 = _host()
    h2.bind(LOCAL, 8080, reuse=True)
    with pytest.raises(TcpError):
        h2.bind(LOCAL, 8080)  # the new one lacks SO_REUSEADDR
    h2.bind(LOCAL, 8080, reuse=True)  # both set it: allowed


def test_bind_wildcard_overlaps_specific() -> None:
    h = _host()
    h.bind("0.0.0.0", 8080)
    with pytest.raises(TcpError):
        h.bind(LOCAL, 8080)
    h.bind(LOCAL, 8081)
    with pytest.raises(TcpError):
        h.bind("0.0.0.0", 8081)


def test_bind_bad_address_and_port() -> None:
    h = _host()
    with pytest.raises(TcpError) as exc:
        h.bind("198.51.100.1", 80)
    assert exc.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(TcpError) as exc:
        h.bind(LOCAL, 70000)
    assert exc.value.errno == errno.EINVAL


def test_listen_live_listener_always_blocks() -> None:
    h = _host()
    h.listen(h.bind(LOCAL, 80, reuse=True))
    with pytest.raises(TcpError) as exc:
        h.bind(LOCAL, 80, reuse=True)
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(TcpError):
        h.bind("0.0.0.0", 80, reuse=True)


def test_listen_close_frees_port() -> None:
    h = _host()
    lst = h.listen(h.bind(LOCAL, 80))
    lst.close(0.0)
    h.listen(h.bind(LOCAL, 80))


def _time_wait_holder(reuse: bool) -> Peer:
    """A server whose connection on port 80 is in TIME-WAIT, its listener closed."""
    p = Peer()
    p.listener = p.host.listen(p.host.bind(LOCAL, LOCAL_PORT, reuse=reuse))
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    conn = p.listener.accept()
    assert conn is not None
    p.listener.close(0.2)
    conn.close(0.2)
    p.inject(incoming("A", R + 1, L + 2), at=0.3)
    p.inject(incoming("FA", R + 1, L + 2), at=0.4)
    assert KEY in p.host.time_wait
    p.take()
    return p


@pytest.mark.parametrize(("old_reuse", "new_reuse", "ok"), [
    (False, False, False),
    (False, True, False),   # Linux: the TIME-WAIT socket must have had SO_REUSEADDR too
    (True, False, False),
    (True, True, True),
])
def test_bind_time_wait_holder(old_reuse: bool, new_reuse: bool, ok: bool) -> None:
    p = _time_wait_holder(old_reuse)
    if ok:
        p.host.listen(p.host.bind(LOCAL, LOCAL_PORT, reuse=new_reuse))
    else:
        with pytest.raises(TcpError) as exc:
            p.host.bind(LOCAL, LOCAL_PORT, reuse=new_reuse)
        assert exc.value.errno == errno.EADDRINUSE
    p.advance(61.0)  # after 2MSL the port is free for anyone
    p.host.bind(LOCAL, LOCAL_PORT, reuse=False) if not ok else None


def test_bind_accepted_connection_holds_port() -> None:
    p = _time_wait_holder(False)
    p.advance(61.0)
    h = p.host
    lst = h.listen(h.bind(LOCAL, 80))
    p.listener = lst
    p.inject(_from(50001, incoming("S", R, options=(Mss(1460),))), at=62.0)
    p.inject(_from(50001, incoming("A", R + 1, L + 1)), at=62.1)
    assert lst.accept() is not None
    lst.close(63.0)
    with pytest.raises(TcpError):
        h.bind(LOCAL, 80)  # the live accepted connection still uses it


def test_connect_ephemeral_ports_distinct() -> None:
    h = _host()
    ports = {h.connect(REMOTE, 80, 0.0).lport for _ in range(50)}
    assert len(ports) == 50
    assert all(32768 <= port <= 60999 for port in ports)


def test_connect_refuses_time_wait_tuple() -> None:
    p = harness.syn_sent()
    p.inject(incoming("SA", R, L + 1), at=0.1)
    assert p.conn is not None
    p.conn.close(0.2)
    p.inject(incoming("FA", R + 1, L + 2), at=0.3)
    assert KEY in p.host.time_wait
    with pytest.raises(TcpError):
        p.host.connect(REMOTE, 49152, 1.0, binding=p.host.bind(LOCAL, LOCAL_PORT, reuse=True))


# ---------------------------------------------------------------- backlog and SYN cookies


def _syn_from(p: Peer, port: int, isn: int = R) -> list[TcpSegment]:
    p.inject(_from(port, incoming("S", isn, options=(Mss(1460),))))
    return p.take()


def test_listen_syn_queue_full_drops_without_cookies() -> None:
    p = harness.listen(TcpConfig(syn_cookies="never"), backlog=2)
    assert len(_syn_from(p, 50001)) == 1
    assert len(_syn_from(p, 50002)) == 1
    assert _syn_from(p, 50003) == []  # dropped: the peer will retransmit
    assert p.listener is not None and len(p.listener.syn_queue) == 2


def test_listen_syn_cookie_when_syn_queue_full() -> None:
    p = harness.listen(backlog=1)
    _syn_from(p, 50001)
    (synack,) = _syn_from(p, 50002, isn=7777)
    assert synack.flags == outgoing("SA", 0).flags and synack.ack == 7778
    assert synack.options == (Mss(1460),)
    assert p.listener is not None and len(p.listener.syn_queue) == 1  # no state kept
    # The ACK that returns the cookie creates the connection, ESTABLISHED at once.
    p.inject(_from(50002, incoming("PA", 7778, synack.seq + 1, payload=b"hi")), at=1.0)
    conn = p.listener.accept()
    assert conn is not None and conn.rport == 50002
    assert conn.state.value == "ESTABLISHED"
    assert conn.recv(10, 1.0) == b"hi"
    assert conn.snd_mss == 1460
    assert p.host.counters["TcpExtSyncookiesRecv"] == 1


def test_listen_bad_cookie_gets_rst() -> None:
    p = harness.listen(TcpConfig(syn_cookies="always"))
    (synack,) = _syn_from(p, 50002, isn=7777)
    p.inject(_from(50002, incoming("A", 7778, synack.seq + 2)), at=1.0)
    p.expect([_to(50002, outgoing("R", synack.seq + 2))])
    assert p.listener is not None and p.listener.accept() is None


def test_listen_cookie_expires() -> None:
    """A cookie is good for its 64 s slot and the next one, then it is refused."""
    p = harness.listen(TcpConfig(syn_cookies="always"))
    (synack,) = _syn_from(p, 50002, isn=7777)
    p.inject(_from(50002, incoming("A", 7778, synack.seq + 1)), at=200.0)
    p.expect([_to(50002, outgoing("R", synack.seq + 1))])


def test_listen_accept_queue_full_drops_syn() -> None:
    p = harness.listen(backlog=1)
    p.inject(_from(50001, incoming("S", R, options=(Mss(1460),))))
    p.inject(_from(50001, incoming("A", R + 1, L + 1)), at=0.1)
    p.take()
    assert p.listener is not None and len(p.listener.accept_queue) == 1
    assert _syn_from(p, 50002) == []  # accept queue full: SYN dropped (Linux)
    assert p.listener.syn_dropped == 1


def test_listen_accept_queue_bounded_by_backlog() -> None:
    """Half-open connections that complete while the accept queue is full wait (Linux):
    their ACK is dropped, the SYN-ACK is retransmitted, and they get in once there is room."""
    p = harness.listen(backlog=2)
    for port in (50001, 50002):
        _syn_from(p, port)
    p.inject(_from(50001, incoming("A", R + 1, L + 1)), at=0.1)
    assert p.listener is not None and len(p.listener.accept_queue) == 1
    _syn_from(p, 50003)  # the SYN queue has room again
    p.inject(_from(50002, incoming("A", R + 1, L + 1)), at=0.2)
    assert len(p.listener.accept_queue) == 2
    p.inject(_from(50003, incoming("A", R + 1, L + 1)), at=0.3)
    assert len(p.listener.accept_queue) == 2  # full: this one stays half-open
    p.expect_nothing()
    assert p.listener.accept() is not None
    p.advance(1.1)  # its SYN-ACK (sent at 0.1) is retransmitted; the peer ACKs it again
    p.expect([_to(50003, outgoing("SA", L, R + 1, options=SYN_OPTIONS))])
    p.inject(_from(50003, incoming("A", R + 1, L + 1)), at=1.2)
    assert len(p.listener.accept_queue) == 2


def test_listen_close_forgets_half_open_resets_unaccepted() -> None:
    """Like Linux and FreeBSD: half-open connections go silently, completed ones get a RST."""
    p = harness.syn_received()
    assert p.listener is not None
    p.inject(_from(50001, incoming("S", R, options=(Mss(1460),))), at=0.1)
    p.inject(_from(50001, incoming("A", R + 1, L + 1)), at=0.2)
    p.take()
    p.listener.close(0.5)
    p.expect([_to(50001, outgoing("R", L + 1))])
    assert p.host.conns == {}
    assert p.state == "LISTEN"  # (the trace's last word on the half-open one)
    p.inject(incoming("A", R + 1, L + 1), at=0.6)  # its ACK now meets no one: RST
    p.expect([outgoing("R", L + 1)])


# ---------------------------------------------------------------- experiment switches


def test_two_way_handshake_switch() -> None:
    """The passive side counts the connection open when it sends its SYN-ACK."""
    p = harness.listen(TcpConfig(two_way_handshake=True))
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    assert p.state == "ESTABLISHED"
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None
    # An old duplicate SYN would open a connection nobody wanted: that is the lesson.
    # The SYN-ACK is still retransmitted until it is acknowledged.
    p.advance(1.0)
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTIONS)])
    p.inject(incoming("A", R + 1, L + 1), at=1.1)
    assert conn.snd_una == L + 1
    p.advance(10.0)
    p.expect_nothing()


def test_two_way_handshake_off_by_default(socket_syn_received: Peer) -> None:
    assert socket_syn_received.state == "SYN-RECEIVED"


# ---------------------------------------------------------------- ISN (RFC 6528)


def test_isn_reproducible_and_keyed() -> None:
    a, b = IsnGenerator(b"k" * 16), IsnGenerator(b"k" * 16)
    tup = ("192.0.2.1", 40000, "192.0.2.2", 80)
    assert a.isn(1.0, *tup) == b.isn(1.0, *tup)
    assert IsnGenerator(b"other key").isn(1.0, *tup) != a.isn(1.0, *tup)


def test_isn_differs_by_four_tuple() -> None:
    g = IsnGenerator(b"k" * 16)
    base = g.isn(0.0, "192.0.2.1", 40000, "192.0.2.2", 80)
    others = {g.isn(0.0, "192.0.2.1", 40000 + i, "192.0.2.2", 80) for i in range(1, 50)}
    assert base not in others and len(others) == 49


def test_isn_advances_with_clock_every_4us() -> None:
    g = IsnGenerator(b"k" * 16)
    tup = ("192.0.2.1", 40000, "192.0.2.2", 80)
    i0 = g.isn(0.0, *tup)
    assert (g.isn(1.0, *tup) - i0) & 0xFFFFFFFF == 250_000
    assert (g.isn(0.000004, *tup) - i0) & 0xFFFFFFFF == 1


def test_isn_host_seeded_rng_is_reproducible() -> None:
    def iss(seed: int) -> int:
        h = Host("h", LOCAL, rng=random.Random(seed))
        return int(h.connect(REMOTE, 80, 0.0, binding=h.bind(LOCAL, 1234)).iss)
    assert iss(5) == iss(5)
    assert iss(5) != iss(6)


def test_isn_key_validation() -> None:
    with pytest.raises(ValueError):
        IsnGenerator(b"")
