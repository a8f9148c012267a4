"""Two ends whose sequence numbers disagree must not ACK each other forever.

An injected segment (here: spoofed data that the client accepts as the
server's) puts the client's RCV.NXT beyond the server's SND.NXT.  Each side
then finds the other's ACKs unacceptable and answers with an ACK: RFC 9293
alone gives an endless ACK war.  tcplab rate-limits its answers to bare
segments as Linux does (net.ipv4.tcp_invalid_ratelimit, 0.5 s).
"""

from __future__ import annotations

from tcplab.engine.config import TcpConfig
from tcplab.sim import LinkSpec, Network, connected, listening
from tcplab.wire import ACK, PSH, TcpSegment, emit_ip_tcp


def desynchronized(oow_interval: float) -> Network:
    net = Network(4)
    cfg = TcpConfig(oow_ack_interval=oow_interval)
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", TcpConfig(oow_ack_interval=oow_interval))
    net.add_host("attacker", "203.0.113.9")
    net.link(c, s, LinkSpec(delay=0.005))
    net.link("attacker", c, LinkSpec(delay=0.001))
    cli, _peer = connected(net, listening(net, s))
    conn = cli.conn
    assert conn is not None
    spoof = TcpSegment(80, conn.lport, int(conn.rcv_nxt), int(conn.snd_nxt), ACK | PSH, 65535,
                       0, (), b"x" * 100)
    net.inject("attacker", emit_ip_tcp("192.0.2.2", "192.0.2.1", spoof))
    return net


def acks_in(net: Network, seconds: float) -> int:
    start = net.now
    before = len(net.trace.segments())
    net.run_for(seconds)
    assert net.now >= start + seconds - 1e-9
    return len(net.trace.segments()) - before


def test_ack_war_is_damped_by_the_rate_limit() -> None:
    net = desynchronized(0.5)
    n = acks_in(net, 10.0)
    # at most one answer per side per 0.5 s (plus the first exchange)
    assert n <= 2 * (10.0 / 0.5) + 6, n


def test_without_the_rate_limit_the_war_never_ends() -> None:
    net = desynchronized(0.0)
    n = acks_in(net, 1.0)
    assert n > 150  # one ACK per 10 ms round trip, each way, for the whole second
