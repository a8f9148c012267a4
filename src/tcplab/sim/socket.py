"""Blocking sockets in the simulator: waiting runs the virtual clock."""

from __future__ import annotations

import errno
import socket as _pysocket
from collections.abc import Callable

from tcplab.api.sockets import TcpSocket
from tcplab.engine.config import TcpConfig
from tcplab.engine.host import Host
from tcplab.sim.network import LinkSpec, Network, SimulationStuck


class SimDriver:
    """Drives a :class:`Network` for blocking socket calls."""

    def __init__(self, net: Network) -> None:
        self.net = net

    @property
    def now(self) -> float:
        return self.net.now

    def wait_until(self, cond: Callable[[], bool], timeout: float | None, what: str) -> None:
        try:
            self.net.run_until(cond, 3600.0 * 24 if timeout is None else timeout, what)
        except SimulationStuck as exc:
            if timeout is not None and self.net.now >= 0:
                # as Python's socket.timeout: no errno (a connection's ETIMEDOUT has one)
                raise TimeoutError(f"timed out ({what})") from None
            raise TimeoutError(errno.ETIMEDOUT, str(exc)) from None

    def kick(self) -> None:
        self.net.flush()


class SimSocket(TcpSocket):
    """A socket on a simulated host."""

    def __init__(self, net: Network, host: Host | str) -> None:
        h = net.hosts[host] if isinstance(host, str) else host
        super().__init__(SimDriver(net), h)
        self.net = net


def pair(seed: int = 0, *, delay: float = 0.01, client_config: TcpConfig | None = None,
         server_config: TcpConfig | None = None, msl: float | None = None,
         **link: float) -> tuple[Network, Host, Host]:
    """A network of two hosts, "client" 192.0.2.1 and "server" 192.0.2.2, joined by a link."""
    net = Network(seed, msl=msl)
    c = net.add_host("client", "192.0.2.1", client_config)
    s = net.add_host("server", "192.0.2.2", server_config)
    net.link(c, s, LinkSpec(delay=delay, **link))
    return net, c, s


def listening(net: Network, host: Host | str, port: int = 80, *, reuse: bool = False,
              backlog: int = 128) -> SimSocket:
    """socket(), SO_REUSEADDR if asked, bind(("0.0.0.0", port)), listen(backlog)."""
    sock = SimSocket(net, host)
    if reuse:
        sock.setsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(backlog)
    return sock


def connected(net: Network, listener: SimSocket, client: Host | str = "client",
              server_addr: str = "192.0.2.2") -> tuple[SimSocket, TcpSocket]:
    """A client socket connected to ``listener``, and the server's accepted socket."""
    cli = SimSocket(net, client)
    cli.connect((server_addr, listener.getsockname()[1]))
    peer, _addr = listener.accept()
    return cli, peer
