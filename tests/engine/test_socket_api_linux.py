"""The socket API's Linux additions, on the simulator: MSG_FASTOPEN, TCP_FASTOPEN,
TCP_FASTOPEN_CONNECT, TCP_MAXSEG, SO_SNDBUF/SO_RCVBUF, TCP_CORK, MSG_MORE."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from tcplab.api.sockets import (
    MSG_FASTOPEN,
    MSG_MORE,
    TCP_CORK,
    TCP_FASTOPEN,
    TCP_FASTOPEN_CONNECT,
    TCP_MAXSEG,
)
from tcplab.engine.profiles import configured
from tcplab.sim import Network, SimSocket, pair

SERVER = ("192.0.2.2", 80)


def tfo_net() -> Network:
    cfg = configured("linux", ["net.ipv4.tcp_fastopen=3"])
    net, _c, _s = pair(seed=1, delay=0.05, client_config=cfg, server_config=cfg.copy())
    return net


def tfo_server(net: Network) -> SimSocket:
    srv = SimSocket(net, "server")
    srv.bind(("0.0.0.0", 80))
    srv.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
    srv.listen(8)
    assert srv.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN) == 16
    return srv


def syns(net: Network) -> list[dict[str, Any]]:
    return [e for e in net.trace.segments() if e["flags"] == "S"]


def test_msg_fastopen_first_asks_for_a_cookie_then_sends_data_in_the_syn() -> None:
    net = tfo_net()
    srv = tfo_server(net)
    first = SimSocket(net, "client")
    # No cookie yet: the SYN asks for one; blocking, the data follows the handshake.
    assert first.sendto(b"GET /", MSG_FASTOPEN, SERVER) == 5
    peer, _ = srv.accept()
    assert peer.recv(100) == b"GET /"
    assert first.tcp_info()["tcpi_options"] & 32 == 0
    again = SimSocket(net, "client")
    again.setblocking(False)
    t0 = net.now
    assert again.sendto(b"GET /2", MSG_FASTOPEN, SERVER) == 6  # all of it in the SYN
    # The server's application has it one way after the SYN left: before the handshake ends.
    net.run_until(lambda: bool(srv.listener and srv.listener.accept_queue), 1.0, "accept")
    child, _ = srv.accept()
    assert child.state == "SYN-RECEIVED" and net.now == pytest.approx(t0 + 0.05)
    assert child.recv(100) == b"GET /2"
    net.run_until(lambda: again.state == "ESTABLISHED", 1.0, "handshake")
    assert again.tcp_info()["tcpi_options"] & 32  # TCPI_OPT_SYN_DATA
    assert len(syns(net)) == 2


def test_nonblocking_msg_fastopen_without_a_cookie_is_in_progress() -> None:
    net = tfo_net()
    tfo_server(net)
    cli = SimSocket(net, "client")
    cli.setblocking(False)
    with pytest.raises(BlockingIOError) as info:
        cli.sendto(b"x", MSG_FASTOPEN, SERVER)
    assert info.value.errno == errno.EINPROGRESS


def test_fastopen_connect_returns_at_once_and_the_first_write_sends_the_syn() -> None:
    net = tfo_net()
    srv = tfo_server(net)
    first = SimSocket(net, "client")
    first.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    first.connect(SERVER)  # no cookie: an ordinary (blocking) connect asking for one
    assert first.state == "ESTABLISHED"
    srv.accept()
    cli = SimSocket(net, "client")
    cli.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    t0 = net.now
    cli.connect(SERVER)
    assert net.now == t0 and cli.state == "SYN-SENT"  # nothing sent yet
    n_syns = len(syns(net))
    assert cli.send(b"hello") == 5
    assert len(syns(net)) == n_syns + 1
    peer, _ = srv.accept()
    assert peer.recv(10) == b"hello"


def test_fastopen_connect_needs_the_client_bit() -> None:
    net, _c, _s = pair(seed=1)
    cli = SimSocket(net, "client")
    with pytest.raises(OSError) as info:
        cli.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    assert info.value.errno == errno.EOPNOTSUPP


def test_tcp_maxseg_before_connect_goes_in_the_syn() -> None:
    net, _c, _s = pair(seed=1)
    srv = SimSocket(net, "server")
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, "client")
    cli.setsockopt(socket.IPPROTO_TCP, TCP_MAXSEG, 536)
    cli.connect(SERVER)
    peer, _ = srv.accept()
    [syn] = syns(net)
    assert "mss 536" in syn["opts"]
    assert cli.getsockopt(socket.IPPROTO_TCP, TCP_MAXSEG) == 536
    assert peer.getsockopt(socket.IPPROTO_TCP, TCP_MAXSEG) == 536
    with pytest.raises(OSError) as info:
        cli.setsockopt(socket.IPPROTO_TCP, TCP_MAXSEG, 10)
    assert info.value.errno == errno.EINVAL


def test_buffer_sizes_are_doubled_per_socket() -> None:
    net, _c, server = pair(seed=1)
    sock = SimSocket(net, "client")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 8000
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 4608  # Linux's minimum
    assert server.config.rcv_buf != 8000  # the host's setting is untouched


def test_cork_and_msg_more_hold_a_partial_segment() -> None:
    net, _c, _s = pair(seed=1, delay=0.05)
    srv = SimSocket(net, "server")
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, "client")
    cli.connect(SERVER)
    peer, _ = srv.accept()
    peer.setblocking(False)
    cli.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1)
    assert cli.getsockopt(socket.IPPROTO_TCP, TCP_CORK) == 1
    cli.send(b"abc")
    net.run(net.now + 0.2)
    with pytest.raises(BlockingIOError):
        peer.recv(10)
    cli.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 0)  # uncorking sends what waits
    net.run(net.now + 0.2)
    assert peer.recv(10) == b"abc"
    cli.send(b"de", MSG_MORE)
    net.run(net.now + 0.01)
    with pytest.raises(BlockingIOError):
        peer.recv(10)
    cli.send(b"f")
    net.run(net.now + 0.2)
    assert peer.recv(10) == b"def"
