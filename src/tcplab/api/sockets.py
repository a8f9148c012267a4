"""A socket-like API over any :class:`~tcplab.engine.Host`, shaped like Python's ``socket``.

It raises what Python's ``socket`` module raises: ``ConnectionRefusedError``,
``ConnectionResetError``, ``TimeoutError``, ``BrokenPipeError``,
``BlockingIOError`` and ``OSError`` with ``errno.EADDRINUSE``.

Blocking calls wait through a :class:`Driver`; the simulator's driver runs
the virtual clock until the call can complete, so a blocking ``connect()``
"takes" one round trip of virtual time and a ``recv()`` waits for data.  A
timeout (``settimeout``) is virtual time too.

Example (in the simulator)::

    net = Network(seed=1)
    ...
    srv = SimSocket(net, server_host); srv.bind(("0.0.0.0", 80)); srv.listen()
    cli = SimSocket(net, client_host); cli.connect(("192.0.2.2", 80))
    conn, addr = srv.accept()
"""

from __future__ import annotations

import errno
import socket as _pysocket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from tcplab.engine.connection import Connection
from tcplab.engine.errors import TcpError
from tcplab.engine.host import Host
from tcplab.engine.listener import Listener
from tcplab.engine.ports import WILDCARDS, Binding
from tcplab.engine.state import State

SOL_SOCKET = _pysocket.SOL_SOCKET
SO_REUSEADDR = _pysocket.SO_REUSEADDR
SO_LINGER = _pysocket.SO_LINGER
IPPROTO_TCP = _pysocket.IPPROTO_TCP
TCP_NODELAY = _pysocket.TCP_NODELAY
SHUT_RD, SHUT_WR, SHUT_RDWR = _pysocket.SHUT_RD, _pysocket.SHUT_WR, _pysocket.SHUT_RDWR


class Driver(Protocol):
    """What a blocking socket needs from its backend."""

    @property
    def now(self) -> float: ...

    def wait_until(self, cond: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Make progress until ``cond()``; raise TimeoutError when ``timeout`` passes."""

    def kick(self) -> None:
        """Output may be pending: send it."""


def connection_error(conn: Connection) -> OSError:
    """The exception Python raises for a connection that failed with ``conn.error``."""
    err = conn.error
    if err == "refused":
        return ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    if err == "reset":
        return ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    if err == "timed out":
        return TimeoutError(errno.ETIMEDOUT, "Connection timed out")
    return ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")


def os_error(exc: TcpError) -> OSError:
    """An engine error as the ``OSError`` subclass Python would raise."""
    if exc.errno == errno.EPIPE:
        return BrokenPipeError(exc.errno, exc.message)
    return OSError(exc.errno, exc.message)


class TcpSocket:
    """One socket: unbound, bound, listening or connected."""

    def __init__(self, driver: Driver, host: Host) -> None:
        self.driver = driver
        self.host = host
        self.reuseaddr = False
        self.nodelay = not host.config.nagle
        self.linger: tuple[int, int] | None = None
        self.timeout: float | None = None
        self.blocking = True
        self.binding: Binding | None = None
        self.listener: Listener | None = None
        self.conn: Connection | None = None
        self.closed = False

    # ------------------------------------------------------------ options

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        if level == SOL_SOCKET and option == SO_REUSEADDR:
            self.reuseaddr = bool(value)
            if self.binding is not None:
                self.binding.reuse = self.reuseaddr
        elif level == IPPROTO_TCP and option == TCP_NODELAY:
            self.nodelay = bool(value)
            if self.conn is not None:
                self.conn.set_nodelay(self.nodelay)
        elif level == SOL_SOCKET and option == SO_LINGER:
            if isinstance(value, bytes):
                onoff, secs = struct.unpack("ii", value)
            else:
                onoff, secs = int(bool(value)), 0
            self.linger = (onoff, secs) if onoff else None
        else:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def getsockopt(self, level: int, option: int) -> int:
        if level == SOL_SOCKET and option == SO_REUSEADDR:
            return int(self.reuseaddr)
        if level == IPPROTO_TCP and option == TCP_NODELAY:
            return int(self.nodelay)
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.blocking = timeout is None or timeout > 0

    def setblocking(self, flag: bool) -> None:
        self.blocking = flag
        self.timeout = None if flag else 0.0

    # ------------------------------------------------------------ setup

    def bind(self, address: tuple[str, int]) -> None:
        if self.binding is not None:
            raise OSError(errno.EINVAL, "Invalid argument (already bound)")
        addr, port = address
        addr = addr or "0.0.0.0"
        try:
            self.binding = self.host.bind(addr, port, self.reuseaddr)
        except TcpError as exc:
            self.host.app_event(self.driver.now, "bind", f"{addr}:{port} failed: {exc.message}")
            raise os_error(exc) from None
        self.host.app_event(self.driver.now, "bind", f"{addr}:{self.binding.port} ok")

    def listen(self, backlog: int = 128) -> None:
        if self.binding is None:
            self.bind(("0.0.0.0", 0))
        assert self.binding is not None
        try:
            self.listener = self.host.listen(self.binding, backlog, self.driver.now)
        except TcpError as exc:
            raise os_error(exc) from None

    def accept(self) -> tuple[TcpSocket, tuple[str, int]]:
        lst = self.listener
        if lst is None:
            raise OSError(errno.EINVAL, "Invalid argument (not listening)")
        if not lst.accept_queue:
            if not self.blocking:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            self.driver.wait_until(lambda: bool(lst.accept_queue), self.timeout, "accept")
        conn = lst.accept()
        assert conn is not None
        child = TcpSocket(self.driver, self.host)
        child.conn = conn
        child.reuseaddr = self.reuseaddr
        child.nodelay = self.nodelay
        conn.set_nodelay(self.nodelay)
        self.host.app_event(self.driver.now, "accept", f"from {conn.raddr}:{conn.rport}",
                            conn.name)
        return child, (conn.raddr, conn.rport)

    def connect(self, address: tuple[str, int]) -> None:
        err = self.connect_ex(address)
        if err == errno.EINPROGRESS:
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
        if err:
            assert self.conn is not None
            raise connection_error(self.conn)

    def connect_ex(self, address: tuple[str, int]) -> int:
        raddr, rport = address
        if self.conn is not None:
            return errno.EISCONN
        try:
            self.conn = self.host.connect(raddr, rport, self.driver.now, self.binding,
                                          self.reuseaddr)
        except TcpError as exc:
            raise os_error(exc) from None
        self.conn.set_nodelay(self.nodelay)
        self.driver.kick()
        if not self.blocking:
            return errno.EINPROGRESS
        conn = self.conn
        self.driver.wait_until(lambda: conn.state is not State.SYN_SENT
                               and conn.state is not State.SYN_RECEIVED, self.timeout, "connect")
        if conn.error is not None:
            return {"refused": errno.ECONNREFUSED, "reset": errno.ECONNRESET,
                    "timed out": errno.ETIMEDOUT}.get(conn.error, errno.ECONNABORTED)
        return 0

    # ------------------------------------------------------------ data

    def _connected(self) -> Connection:
        if self.conn is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self.conn

    def send(self, data: bytes) -> int:
        conn = self._connected()
        if conn.error is not None:
            raise connection_error(conn)
        try:
            n = conn.send(data, self.driver.now)
            if n == 0 and data:
                if not self.blocking:
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
                self.driver.wait_until(lambda: conn.send_space > 0 or conn.error is not None,
                                       self.timeout, "send")
                if conn.error is not None:
                    raise connection_error(conn)
                n = conn.send(data, self.driver.now)
        except TcpError as exc:
            raise os_error(exc) from None
        self.driver.kick()
        return n

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self.send(bytes(view[:65536]))
            view = view[n:]

    def recv(self, bufsize: int) -> bytes:
        conn = self._connected()

        def ready() -> bool:
            return bool(conn.rcvbuf) or conn.at_eof or conn.error is not None \
                or conn.current_state() is State.CLOSED

        if not ready():
            if not self.blocking:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            self.driver.wait_until(ready, self.timeout, "recv")
        if conn.rcvbuf:
            data = conn.recv(bufsize, self.driver.now)
            self.driver.kick()
            return data
        if (conn.error is not None and conn.error != "timed out") or conn.error == "timed out":
            raise connection_error(conn)
        return b""

    def shutdown(self, how: int) -> None:
        conn = self._connected()
        if how in (SHUT_WR, SHUT_RDWR):
            conn.shutdown(self.driver.now)
        if how in (SHUT_RD, SHUT_RDWR):
            conn.rd_shut = True
        self.host.app_event(self.driver.now, "shutdown", {0: "SHUT_RD", 1: "SHUT_WR",
                                                          2: "SHUT_RDWR"}.get(how, "?"),
                            conn.name)
        self.driver.kick()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.driver.now
        if self.listener is not None:
            self.listener.close(now)
        elif self.conn is not None:
            if self.linger is not None and self.linger[1] == 0:
                self.host.app_event(now, "close", "SO_LINGER 0: abortive close (RST)",
                                    self.conn.name)
                self.conn.abort(now, cause="close with SO_LINGER 0")
            else:
                self.host.app_event(now, "close", "ok", self.conn.name)
                self.conn.close(now)
        elif self.binding is not None:
            self.host.release(self.binding)
        self.driver.kick()

    def __enter__(self) -> TcpSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ inspection

    def getsockname(self) -> tuple[str, int]:
        if self.conn is not None:
            return (self.conn.laddr, self.conn.lport)
        if self.binding is not None:
            return (self.binding.addr, self.binding.port)
        return ("0.0.0.0", 0)

    def getpeername(self) -> tuple[str, int]:
        conn = self._connected()
        return (conn.raddr, conn.rport)

    @property
    def state(self) -> str:
        """The TCP state, with RFC spelling (``"TIME-WAIT"``)."""
        if self.listener is not None and not self.listener.closed:
            return "LISTEN"
        if self.conn is not None:
            return self.conn.current_state().value
        return "CLOSED"


__all__ = ["WILDCARDS", "Driver", "TcpSocket", "connection_error", "os_error"]
