"""Blind in-window attacks (RFC 5961) in the simulator.

An attacker knows the 4-tuple of an established connection but not its
sequence numbers, and sprays RSTs, SYNs and data.  With RFC 5961 a RST or SYN
acts only when its sequence number is exactly RCV.NXT (probability 2**-32 per
guess), anything else in the window draws a rate-limited challenge ACK, and
data must also carry an acceptable ACK value.  With the RFC 793 behaviour
(rfc5961 off) any RST inside the window resets the connection.
"""

from __future__ import annotations

import random

import pytest

from tcplab.api.sockets import TcpSocket
from tcplab.engine.config import TcpConfig
from tcplab.sim import LinkSpec, Network, connected, listening
from tcplab.wire import ACK, RST, SYN, TcpSegment, emit_ip_tcp


def established(rfc5961: bool = True, limit: int = 1000
                ) -> tuple[Network, TcpSocket, TcpSocket]:
    net = Network(42)
    cfg = TcpConfig(rfc5961=rfc5961, challenge_ack_limit=limit)
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", TcpConfig(rfc5961=rfc5961,
                                                       challenge_ack_limit=limit))
    net.add_host("attacker", "203.0.113.66")
    net.link(c, s, LinkSpec(delay=0.01))
    net.link("attacker", s, LinkSpec(delay=0.001))
    net.link("attacker", c, LinkSpec(delay=0.001))
    cli, peer = connected(net, listening(net, s))
    cli.sendall(b"hello")
    assert peer.recv(10) == b"hello"
    return net, cli, peer


def spoof(net: Network, seg: TcpSegment, delay: float = 0.0) -> None:
    """A segment that claims to come from the client, sent to the server."""
    net.inject("attacker", emit_ip_tcp("192.0.2.1", "192.0.2.2", seg), delay)


def server_conn_state(peer: TcpSocket) -> str:
    return peer.state


def test_random_rst_spray_never_resets_under_rfc5961() -> None:
    net, cli, peer = established()
    rng = random.Random(1)
    cport = cli.getsockname()[1]
    for i in range(20_000):
        spoof(net, TcpSegment(cport, 80, rng.getrandbits(32), 0, RST, 0), delay=i * 1e-5)
    net.run_for(1.0)
    assert server_conn_state(peer) == "ESTABLISHED"
    cli.sendall(b"still here")
    assert peer.recv(100) == b"still here"


def test_in_window_rst_draws_a_challenge_ack_not_a_reset() -> None:
    net, cli, peer = established()
    conn = peer.conn
    assert conn is not None
    before = net.host_of("192.0.2.2").counters["TcpExtTCPChallengeACK"]  # type: ignore[union-attr]
    spoof(net, TcpSegment(cli.getsockname()[1], 80, int(conn.rcv_nxt) + 100, 0, RST, 0))
    net.run_for(0.5)
    assert peer.state == "ESTABLISHED"
    after = net.host_of("192.0.2.2").counters["TcpExtTCPChallengeACK"]  # type: ignore[union-attr]
    assert after == before + 1
    drops = [e for e in net.trace.of_kind("segment") if e["event"] == "drop"
             and "RFC 5961" in e.get("reason", "")]
    assert drops and "challenge ACK" in drops[-1]["reason"]


def test_in_window_rst_resets_without_rfc5961() -> None:
    net, cli, peer = established(rfc5961=False)
    conn = peer.conn
    assert conn is not None
    spoof(net, TcpSegment(cli.getsockname()[1], 80, int(conn.rcv_nxt) + 100, 0, RST, 0))
    net.run_for(0.5)
    assert peer.state == "CLOSED"
    with pytest.raises(ConnectionResetError):
        peer.recv(10)


def test_exact_rst_resets_in_both_modes() -> None:
    for mode in (True, False):
        net, cli, peer = established(rfc5961=mode)
        conn = peer.conn
        assert conn is not None
        spoof(net, TcpSegment(cli.getsockname()[1], 80, int(conn.rcv_nxt), 0, RST, 0))
        net.run_for(0.5)
        assert peer.state == "CLOSED"


def test_blind_syn_draws_challenge_ack_and_connection_survives() -> None:
    net, cli, peer = established()
    rng = random.Random(2)
    cport = cli.getsockname()[1]
    for i in range(2000):
        spoof(net, TcpSegment(cport, 80, rng.getrandbits(32), 0, SYN, 65535), delay=i * 1e-4)
    net.run_for(1.0)
    assert peer.state == "ESTABLISHED"
    cli.sendall(b"ok")
    assert peer.recv(10) == b"ok"


def test_blind_data_injection_is_rejected_by_ack_validation() -> None:
    net, cli, peer = established()
    conn = peer.conn
    assert conn is not None
    rng = random.Random(3)
    cport = cli.getsockname()[1]
    # Even sequence numbers inside the window do not help without an acceptable ACK value.
    for i in range(5000):
        seq = int(conn.rcv_nxt) + rng.randrange(0, 60000)
        spoof(net, TcpSegment(cport, 80, seq & 0xFFFFFFFF, rng.getrandbits(32), ACK, 65535, 0,
                              (), b"EVIL"), delay=i * 1e-4)
    net.run_for(1.0)
    cli.sendall(b"legit")
    got = b""
    while len(got) < 5:
        got += peer.recv(100)
    assert got == b"legit"
    assert peer.state == "ESTABLISHED"


def test_challenge_acks_are_rate_limited_per_second() -> None:
    net, cli, peer = established(limit=100)
    conn = peer.conn
    assert conn is not None
    server = net.host_of("192.0.2.2")
    assert server is not None
    base = server.counters["TcpExtTCPChallengeACK"]
    cport = cli.getsockname()[1]
    start = net.now
    for i in range(1000):  # 1000 in-window RSTs within 0.5 s
        spoof(net, TcpSegment(cport, 80, int(conn.rcv_nxt) + 1 + i, 0, RST, 0), delay=i * 5e-4)
    net.run_for(0.6)
    sent = server.counters["TcpExtTCPChallengeACK"] - base
    window_seconds = int(net.now) - int(start) + 1
    assert 0 < sent <= 100 * window_seconds
    limited = [e for e in net.trace.of_kind("segment") if e["event"] == "drop"
               and "rate-limited" in e.get("reason", "")]
    assert len(limited) == 1000 - sent
    assert peer.state == "ESTABLISHED"
