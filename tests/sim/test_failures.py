"""Failures in the simulator: a host switched off sends and receives nothing, a rebooted one
remembers nothing, a pulled cable loses everything both ways until it is plugged back."""

from __future__ import annotations

import pytest

from tcplab.api.sockets import SO_KEEPALIVE, SOL_SOCKET
from tcplab.sim import connected, listening, pair
from tcplab.sim.failures import (
    CABLE,
    crash_process,
    down_reason,
    plug,
    power_off,
    power_on,
    reboot,
    unplug,
)
from tcplab.sim.network import Network
from tcplab.sim.socket import SimSocket


def sent_since(net: Network, t: float, host: str | None = None) -> list[dict[str, object]]:
    return [e for e in net.trace.segments() if e["t"] >= t
            and (host is None or e["host"] == host)]


def test_a_host_switched_off_sends_nothing_and_everything_sent_to_it_is_lost() -> None:
    net, c, s = pair(seed=3, delay=0.01)
    cli, peer = connected(net, listening(net, s))
    cli.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)   # a timer that would fire later
    net.run_for(1.0)
    t_off = net.now
    power_off(net, "client")
    assert "client" not in net.hosts
    peer.sendall(b"anyone there?")
    net.run(until=net.now + 3 * 7200.0)
    assert sent_since(net, t_off, "client") == []          # no keep-alive, no ACK, no RST
    server = sent_since(net, t_off, "server")
    assert server and {e["fate"] for e in server} == {"dropped"}
    assert {e["reason"] for e in server} == {f"fault: {down_reason('client')}"}
    assert c.conns  # the old host object is simply gone from the network, state and all


def test_a_rebooted_host_answers_the_old_connection_with_a_reset() -> None:
    net, _c, s = pair(seed=3, delay=0.01)
    cli, _peer = connected(net, listening(net, s))
    off = power_off(net, "server")
    net.run_for(5.0)
    fresh = power_on(net, off)
    assert fresh is net.hosts["server"] and fresh is not s
    assert not fresh.conns and not fresh.listeners and not len(fresh.time_wait)
    t = net.now
    cli.sendall(b"hello?")
    with pytest.raises(ConnectionResetError):
        cli.recv(100)
    answer = sent_since(net, t, "server")
    assert [e["flags"] for e in answer] == ["R"]
    assert off.boots == 2


def test_reboot_is_off_then_on() -> None:
    net, _c, s = pair(seed=3, delay=0.01)
    listening(net, s)
    fresh = reboot(net, "server")
    assert fresh is not s and not fresh.listeners
    cli = SimSocket(net, "client")
    with pytest.raises(ConnectionRefusedError):
        cli.connect(("192.0.2.2", 80))


def test_an_unplugged_cable_loses_every_packet_both_ways_until_plugged_back() -> None:
    net, _c, s = pair(seed=3, delay=0.01)
    cli, peer = connected(net, listening(net, s))
    cable = unplug(net, "client", "server")
    t = net.now
    cli.sendall(b"ping")
    peer.sendall(b"pong")
    net.run_for(2.0)
    lost = sent_since(net, t)
    assert {e["host"] for e in lost} == {"client", "server"}
    assert {e["reason"] for e in lost} == {f"fault: {CABLE}"}
    plug(net, cable)
    assert peer.recv(10) == b"ping" and cli.recv(10) == b"pong"   # the next retransmission
    assert cable not in net.faults


def test_a_crashed_process_has_its_sockets_closed_by_the_kernel() -> None:
    net, _c, s = pair(seed=3, delay=0.01)
    lst = listening(net, s)
    cli, peer = connected(net, lst)
    crash_process([lst, peer])
    assert cli.recv(10) == b""                       # FIN: end of stream
    again = SimSocket(net, "client")
    with pytest.raises(ConnectionRefusedError):      # the listener is gone
        again.connect(("192.0.2.2", 80))


def test_a_packet_on_the_wire_when_its_host_reboots_never_reaches_the_old_host() -> None:
    net, _c, s = pair(seed=3, delay=0.5)
    cli, peer = connected(net, listening(net, s))
    cli.sendall(b"in flight")                 # leaves now, arrives 0.5 s later
    net.run_for(0.1)
    old = net.hosts["server"]
    new = reboot(net, "server")               # the old server is gone before it arrives
    net.run_for(10.0)
    data = [e for e in net.trace.segments() if e["host"] == "client" and e["len"] == 9]
    assert data[0]["fate"] == "dropped"
    assert data[0]["reason"] == "server is not on the network any more"
    assert peer.conn is not None and peer.conn.rcv_nxt - peer.conn.irs == 1  # never read
    assert old is not new
    # the retransmission reaches the rebooted host, which knows no such connection: RST
    assert any(e["host"] == "server" and "R" in e["flags"] for e in net.trace.segments())
