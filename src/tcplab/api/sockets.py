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
import os
import socket as _pysocket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from tcplab.engine.connection import Connection
from tcplab.engine.errors import ERRORS, TcpError
from tcplab.engine.host import Host
from tcplab.engine.listener import Listener
from tcplab.engine.ports import WILDCARDS, Binding
from tcplab.engine.state import State

SOL_SOCKET = _pysocket.SOL_SOCKET
SO_REUSEADDR = _pysocket.SO_REUSEADDR
SO_LINGER = _pysocket.SO_LINGER
SO_KEEPALIVE = _pysocket.SO_KEEPALIVE
IPPROTO_TCP = _pysocket.IPPROTO_TCP
TCP_NODELAY = _pysocket.TCP_NODELAY
# Linux's option numbers (Python's socket module has them on Linux; fixed here so the
# simulated API is the same everywhere).
SO_SNDBUF = 7
SO_RCVBUF = 8
TCP_MAXSEG = 2
TCP_CORK = 3
TCP_KEEPIDLE = 4
TCP_KEEPINTVL = 5
TCP_KEEPCNT = 6
TCP_SYNCNT = 7
TCP_INFO = 11
TCP_QUICKACK = 12
TCP_USER_TIMEOUT = 18
TCP_FASTOPEN = 23
TCP_FASTOPEN_CONNECT = 30
MSG_EOR = 0x80
MSG_MORE = 0x8000
MSG_FASTOPEN = 0x20000000
#: Linux's bounds: TCP_MIN_MSS .. MAX_TCP_WINDOW; SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF
_MSS_RANGE = (88, 32767)
_MIN_BUF = {SO_SNDBUF: 4608, SO_RCVBUF: 2304}

#: struct tcp_info's first 104 bytes (Linux include/uapi/linux/tcp.h), in order.
_TCP_INFO_LAYOUT = (
    ("B", "tcpi_state"), ("B", "tcpi_ca_state"), ("B", "tcpi_retransmits"),
    ("B", "tcpi_probes"), ("B", "tcpi_backoff"), ("B", "tcpi_options"),
    ("B", "wscales"), ("B", "tcpi_delivery_rate_app_limited"),
    ("I", "tcpi_rto"), ("I", "tcpi_ato"), ("I", "tcpi_snd_mss"), ("I", "tcpi_rcv_mss"),
    ("I", "tcpi_unacked"), ("I", "tcpi_sacked"), ("I", "tcpi_lost"), ("I", "tcpi_retrans"),
    ("I", "tcpi_fackets"), ("I", "tcpi_last_data_sent"), ("I", "tcpi_last_ack_sent"),
    ("I", "tcpi_last_data_recv"), ("I", "tcpi_last_ack_recv"), ("I", "tcpi_pmtu"),
    ("I", "tcpi_rcv_ssthresh"), ("I", "tcpi_rtt"), ("I", "tcpi_rttvar"),
    ("I", "tcpi_snd_ssthresh"), ("I", "tcpi_snd_cwnd"), ("I", "tcpi_advmss"),
    ("I", "tcpi_reordering"), ("I", "tcpi_rcv_rtt"), ("I", "tcpi_rcv_space"),
    ("I", "tcpi_total_retrans"),
)
_TCP_INFO_STRUCT = struct.Struct("=" + "".join(f for f, _ in _TCP_INFO_LAYOUT))


def pack_tcp_info(info: dict[str, int]) -> bytes:
    """A ``struct tcp_info`` (its classic 104 bytes) from a ``Connection.info()`` dict."""
    values = []
    for _fmt, name in _TCP_INFO_LAYOUT:
        if name == "wscales":
            values.append((info.get("tcpi_rcv_wscale", 0) << 4) | info.get("tcpi_snd_wscale", 0))
        else:
            limit = 0xFF if _fmt == "B" else 0xFFFFFFFF
            values.append(min(max(info.get(name, 0), 0), limit))
    return _TCP_INFO_STRUCT.pack(*values)
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
    if err in ("host unreachable", "network unreachable", "protocol unreachable",
               "protocol error"):
        return OSError(ERRORS[err], os.strerror(ERRORS[err]))
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
        # Keep-alive (inherited by accepted sockets, as on Linux) and user timeout.
        self.keepalive = False
        self.keepidle: float | None = None
        self.keepintvl: float | None = None
        self.keepcnt: int | None = None
        self.user_timeout: float | None = None
        # Linux options kept per socket, given to its connection before the SYN when set
        # before connect(), inherited by accepted sockets from their listener.
        self.user_mss: int | None = None          # TCP_MAXSEG
        self.bufs: dict[int, int] = {}            # SO_SNDBUF/SO_RCVBUF, doubled as Linux
        self.syncnt: int | None = None            # TCP_SYNCNT
        self.cork = False                         # TCP_CORK
        self.fastopen_qlen: int | None = None     # TCP_FASTOPEN (a listener's queue)
        self.fastopen_connect = False             # TCP_FASTOPEN_CONNECT

    # ------------------------------------------------------------ options

    def _apply_conn_options(self) -> None:
        """Give the connection the options set on the socket (before or after connect)."""
        conn = self.conn
        if conn is None:
            return
        now = self.driver.now
        if self.keepalive or self.keepidle is not None or self.keepintvl is not None \
                or self.keepcnt is not None:
            conn.set_keepalive(self.keepalive, now, self.keepidle, self.keepintvl, self.keepcnt)
        if self.user_timeout is not None:
            conn.set_user_timeout(self.user_timeout)
        if self.cork:
            conn.cork = True

    def _setup(self, conn: Connection) -> None:
        """Options that shape the SYN, given before it is built (Host.connect's setup)."""
        if self.user_mss is not None:
            conn.user_mss = self.user_mss
        if SO_RCVBUF in self.bufs:
            conn.rcv_buf = self.bufs[SO_RCVBUF]
        if SO_SNDBUF in self.bufs:
            conn.snd_buf = self.bufs[SO_SNDBUF]
        if self.syncnt is not None:
            conn.syn_retries = self.syncnt

    def _apply_listener_options(self) -> None:
        lst = self.listener
        if lst is None:
            return
        if self.fastopen_qlen is not None:
            lst.fastopen_qlen = self.fastopen_qlen
        lst.user_mss = self.user_mss
        lst.rcv_buf = self.bufs.get(SO_RCVBUF)
        lst.snd_buf = self.bufs.get(SO_SNDBUF)

    @staticmethod
    def _int(value: int | bytes) -> int:
        return value if isinstance(value, int) else int(struct.unpack("i", value[:4])[0])

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        if level == SOL_SOCKET and option == SO_KEEPALIVE:
            self.keepalive = bool(value)
            self._apply_conn_options()
        elif level == IPPROTO_TCP and option in (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT):
            n = value if isinstance(value, int) else struct.unpack("i", value)[0]
            if not 1 <= n <= (32767 if option != TCP_KEEPCNT else 127):
                raise OSError(errno.EINVAL, "Invalid argument")
            if option == TCP_KEEPIDLE:
                self.keepidle = float(n)
            elif option == TCP_KEEPINTVL:
                self.keepintvl = float(n)
            else:
                self.keepcnt = n
            self._apply_conn_options()
        elif level == IPPROTO_TCP and option == TCP_USER_TIMEOUT:
            ms = value if isinstance(value, int) else struct.unpack("i", value)[0]
            if ms < 0:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.user_timeout = ms / 1000.0
            self._apply_conn_options()
        elif level == IPPROTO_TCP and option == TCP_QUICKACK:
            if value and self.conn is not None:
                self.conn.quickack_now(self.driver.now)
                self.driver.kick()
        elif level == SOL_SOCKET and option == SO_REUSEADDR:
            self.reuseaddr = bool(value)
            if self.binding is not None:
                self.binding.reuse = self.reuseaddr
        elif level == IPPROTO_TCP and option == TCP_NODELAY:
            self.nodelay = bool(value)
            if self.conn is not None:
                self.conn.set_nodelay(self.nodelay)
        elif level == IPPROTO_TCP and option == TCP_MAXSEG:
            n = self._int(value)
            if not _MSS_RANGE[0] <= n <= _MSS_RANGE[1]:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.user_mss = n
            if self.conn is not None and not self.conn.current_state().synchronized:
                self.conn.user_mss = n
            self._apply_listener_options()
        elif level == SOL_SOCKET and option in (SO_SNDBUF, SO_RCVBUF):
            # Linux doubles the value (room for its bookkeeping) and reports that.
            size = max(2 * self._int(value), _MIN_BUF[option])
            self.bufs[option] = size
            if self.conn is not None:
                if option == SO_SNDBUF:
                    self.conn.snd_buf = size
                elif not self.conn.current_state().synchronized:
                    self.conn.rcv_buf = size
            self._apply_listener_options()
        elif level == IPPROTO_TCP and option == TCP_SYNCNT:
            n = self._int(value)
            if not 1 <= n <= 127:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.syncnt = n
            if self.conn is not None:
                self.conn.syn_retries = n
        elif level == IPPROTO_TCP and option == TCP_CORK:
            self.cork = bool(self._int(value))
            if self.conn is not None:
                self.conn.set_cork(self.cork, self.driver.now)
                self.driver.kick()
        elif level == IPPROTO_TCP and option == TCP_FASTOPEN:
            n = self._int(value)
            if n < 0 or (self.conn is not None and self.listener is None):
                raise OSError(errno.EINVAL, "Invalid argument")
            self.fastopen_qlen = n
            self._apply_listener_options()
        elif level == IPPROTO_TCP and option == TCP_FASTOPEN_CONNECT:
            n = self._int(value)
            if not self.host.config.fastopen & 1:
                raise OSError(errno.EOPNOTSUPP, "Operation not supported "
                              "(net.ipv4.tcp_fastopen bit 1 is off)")
            if n not in (0, 1) or self.conn is not None:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.fastopen_connect = bool(n)
        elif level == SOL_SOCKET and option == SO_LINGER:
            if isinstance(value, bytes):
                onoff, secs = struct.unpack("ii", value)
            else:
                onoff, secs = int(bool(value)), 0
            self.linger = (onoff, secs) if onoff else None
        else:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int | bytes:
        if level == SOL_SOCKET and option == SO_REUSEADDR:
            return int(self.reuseaddr)
        if level == SOL_SOCKET and option == SO_KEEPALIVE:
            return int(self.keepalive)
        if level == IPPROTO_TCP and option == TCP_NODELAY:
            return int(self.nodelay)
        if level == IPPROTO_TCP and option == TCP_USER_TIMEOUT:
            return int((self.user_timeout or 0.0) * 1000)
        if level == IPPROTO_TCP and option == TCP_MAXSEG:
            if self.conn is not None and self.conn.current_state().synchronized:
                return int(self.conn.info(self.driver.now)["tcpi_snd_mss"])
            return self.user_mss or 536    # Linux: TCP_MSS_DEFAULT before a connection
        if level == SOL_SOCKET and option in (SO_SNDBUF, SO_RCVBUF):
            if option in self.bufs:
                return self.bufs[option]
            return self.host.config.snd_buf if option == SO_SNDBUF else self.host.config.rcv_buf
        if level == IPPROTO_TCP and option == TCP_CORK:
            return int(self.cork)
        if level == IPPROTO_TCP and option == TCP_FASTOPEN:
            return self.fastopen_qlen or 0
        if level == IPPROTO_TCP and option == TCP_FASTOPEN_CONNECT:
            return int(self.fastopen_connect)
        if level == IPPROTO_TCP and option == TCP_INFO:
            data = pack_tcp_info(self.tcp_info())
            return data[:buflen] if buflen else data
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def tcp_info(self) -> dict[str, int]:
        """``getsockopt(TCP_INFO)`` as a dictionary of Linux's ``tcpi_*`` field names."""
        if self.conn is None:
            state = 10 if self.listener is not None else 7  # TCP_LISTEN / TCP_CLOSE
            return {"tcpi_state": state}
        return self.conn.info(self.driver.now)

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
        self._apply_listener_options()

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
        child.keepalive, child.keepidle = self.keepalive, self.keepidle
        child.keepintvl, child.keepcnt = self.keepintvl, self.keepcnt
        child.user_timeout = self.user_timeout
        child.user_mss, child.bufs = self.user_mss, dict(self.bufs)
        child.cork = self.cork
        conn.set_nodelay(self.nodelay)
        child._apply_conn_options()
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
        self._open(raddr, rport, fastopen=self.fastopen_connect, defer=self.fastopen_connect)
        conn = self._connected()
        if conn.deferred:
            return 0    # TCP_FASTOPEN_CONNECT with a cookie: the first write sends the SYN
        if not self.blocking:
            return errno.EINPROGRESS
        return self._wait_connected(conn, "connect")

    def _open(self, raddr: str, rport: int, *, fastopen: bool = False, data: bytes = b"",
              defer: bool = False) -> int:
        """Active open (with Fast Open: the SYN may carry ``data``); returns how much of
        ``data`` the SYN carries."""
        try:
            self.conn = self.host.connect(raddr, rport, self.driver.now, self.binding,
                                          self.reuseaddr, fastopen=fastopen, data=data,
                                          defer=defer, setup=self._setup)
        except TcpError as exc:
            raise os_error(exc) from None
        self.conn.set_nodelay(self.nodelay)
        self._apply_conn_options()
        self.driver.kick()
        return self.conn.syn_data_len

    def _wait_connected(self, conn: Connection, what: str) -> int:
        self.driver.wait_until(lambda: conn.state is not State.SYN_SENT
                               and conn.state is not State.SYN_RECEIVED, self.timeout, what)
        if conn.error is not None:
            return ERRORS.get(conn.error, errno.ECONNABORTED)
        return 0

    # ------------------------------------------------------------ data

    def _connected(self) -> Connection:
        if self.conn is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self.conn

    def send(self, data: bytes, flags: int = 0) -> int:
        """send(2); ``flags`` may hold MSG_MORE (hold a partial segment, as TCP_CORK) and
        MSG_EOR (the data ends a record: later data never shares its last segment)."""
        conn = self._connected()
        if conn.error is not None:
            raise connection_error(conn)
        more, eor = bool(flags & MSG_MORE), bool(flags & MSG_EOR)
        try:
            if conn.deferred:
                return self._first_write(conn, data, more, eor)
            n = conn.send(data, self.driver.now, more, eor)
            if n == 0 and data:
                if not self.blocking:
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
                self.driver.wait_until(lambda: conn.send_space > 0 or conn.error is not None,
                                       self.timeout, "send")
                if conn.error is not None:
                    raise connection_error(conn)
                n = conn.send(data, self.driver.now, more, eor)
        except TcpError as exc:
            raise os_error(exc) from None
        self.driver.kick()
        return n

    def sendto(self, data: bytes, flags_or_address: int | tuple[str, int],
               address: tuple[str, int] | None = None) -> int:
        """sendto(2), with Linux's MSG_FASTOPEN (RFC 7413): on an unconnected socket it
        connects to ``address`` with a SYN that carries the cookie this host holds and
        as much of ``data`` as fits, or asks for a cookie.  A non-blocking socket
        returns what the SYN carried (EINPROGRESS when nothing); a blocking one waits
        for the handshake and sends the rest, as Linux does."""
        if isinstance(flags_or_address, tuple):
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        if not flags & MSG_FASTOPEN or self.conn is not None:
            if self.conn is not None and self.conn.state is not State.SYN_SENT \
                    and flags & MSG_FASTOPEN:
                raise OSError(errno.EISCONN, "Transport endpoint is already connected")
            return self.send(data, flags)
        if self.listener is not None or address is None:
            raise OSError(errno.EINVAL, "Invalid argument")
        n = self._open(address[0], address[1], fastopen=True, data=data)
        conn = self._connected()
        return self._after_syn(conn, data, n, flags)

    def _first_write(self, conn: Connection, data: bytes, more: bool, eor: bool) -> int:
        """The first write of a TCP_FASTOPEN_CONNECT socket: it sends the SYN."""
        n = conn.send(data, self.driver.now, more, eor)
        self.driver.kick()
        return self._after_syn(conn, data, n, 0)

    def _after_syn(self, conn: Connection, data: bytes, n: int, flags: int) -> int:
        if not self.blocking:
            if n == 0 and data:
                raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            return n
        err = self._wait_connected(conn, "sendto")
        if err:
            raise connection_error(conn)
        rest = data[n:]
        return n + (self.send(rest, flags & ~MSG_FASTOPEN) if rest else 0)

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


__all__ = ["MSG_EOR", "MSG_FASTOPEN", "MSG_MORE", "TCP_CORK", "TCP_FASTOPEN",
           "TCP_FASTOPEN_CONNECT", "TCP_MAXSEG", "WILDCARDS", "Driver", "TcpSocket",
           "connection_error", "os_error"]
