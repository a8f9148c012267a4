"""A thin BSD-socket layer over a :class:`~tcplab.engine.Host`, for scripts.

Each method is one system call with the semantics a FreeBSD program sees:
file descriptors from 3 up, ``O_NONBLOCK``, ``EINPROGRESS``/``EAGAIN``,
``SO_ERROR`` reported once, ``SO_LINGER`` with a zero timeout aborting.  A
call fails by raising :class:`SysError` with an errno; a blocking call that
cannot complete yet raises :class:`WouldBlock` and the interpreter retries it
as virtual time advances.
"""

from __future__ import annotations

import errno as E
from dataclasses import dataclass, field

from tcplab.engine import ERRORS, Binding, Connection, Host, Listener, State, TcpError

# FreeBSD's values, as the scripts print them.
O_RDWR = 0x0002
O_NONBLOCK = 0x0004
PORT = 8080                 #: the port scripts bind to and connect to (packetdrill's)

# poll(2) / epoll(7) event bits (Linux's values; EPOLL* equal POLL*).
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x2000
EPOLLEXCLUSIVE, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 30, 1 << 31
POLL_BITS = {
    "POLLIN": POLLIN, "POLLPRI": POLLPRI, "POLLOUT": POLLOUT, "POLLERR": POLLERR,
    "POLLHUP": POLLHUP, "POLLNVAL": POLLNVAL, "POLLRDNORM": POLLRDNORM, "POLLRDBAND": POLLRDBAND,
    "POLLWRNORM": POLLWRNORM, "POLLWRBAND": POLLWRBAND, "POLLRDHUP": POLLRDHUP,
    "EPOLLIN": POLLIN, "EPOLLPRI": POLLPRI, "EPOLLOUT": POLLOUT, "EPOLLERR": POLLERR,
    "EPOLLHUP": POLLHUP, "EPOLLRDNORM": POLLRDNORM, "EPOLLRDBAND": POLLRDBAND,
    "EPOLLWRNORM": POLLWRNORM, "EPOLLWRBAND": POLLWRBAND, "EPOLLRDHUP": POLLRDHUP,
    "EPOLLET": EPOLLET, "EPOLLONESHOT": EPOLLONESHOT, "EPOLLEXCLUSIVE": EPOLLEXCLUSIVE,
}


class SysError(Exception):
    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or E.errorcode.get(errno, str(errno)))
        self.errno = errno


class WouldBlock(Exception):
    """A blocking call that has to wait for the network."""


@dataclass(slots=True)
class Sock:
    fd: int
    nonblocking: bool = False
    reuseaddr: bool = False
    binding: Binding | None = None
    listener: Listener | None = None
    conn: Connection | None = None
    linger: tuple[int, int] | None = None
    error_seen: bool = False
    eof_seen: bool = False
    rd_shut: bool = False
    options: dict[str, int] = field(default_factory=dict)
    epoll: dict[int, EpollItem] | None = None   #: an epoll instance: fd -> registration


@dataclass(slots=True)
class EpollItem:
    """One ``epoll_ctl(ADD)`` registration: its mask and what edges are pending."""

    events: int
    pending: int = 0          #: edge-triggered: wake-ups not yet reported
    last: int = 0             #: readiness seen at the last look
    readable: int = 0         #: readable octets at the last look (new data wakes EPOLLIN)
    space: int = 0            #: free send space at the last look (freed space wakes EPOLLOUT)
    disabled: bool = False    #: EPOLLONESHOT after its report


class SocketLayer:
    """File descriptors and socket calls on one host."""

    def __init__(self, host: Host, local: str, remote: str,
                 send_unconnected: int = E.ENOTCONN) -> None:
        self.host = host
        #: errno of a send on a socket that never connected (FreeBSD ENOTCONN, Linux EPIPE)
        self.send_unconnected = send_unconnected
        self.local = local
        self.remote = remote
        self.socks: dict[int, Sock] = {}
        self.conns: dict[tuple[int, int], Connection] = {}   #: (lport, rport) -> every conn seen

    # ------------------------------------------------------------------ helpers

    def sock(self, fd: int) -> Sock:
        s = self.socks.get(fd)
        if s is None:
            raise SysError(E.EBADF)
        return s

    def _new_fd(self, want: int | None = None) -> int:
        """The script's descriptor when it names a free one (packetdrill maps script
        descriptors to live ones), else the lowest free from 3."""
        if want is not None and 0 <= want < 1 << 16 and want not in self.socks:
            return want
        fd = 3
        while fd in self.socks:
            fd += 1
        return fd

    def _remember(self, conn: Connection) -> None:
        self.conns[(conn.lport, conn.rport)] = conn

    def pending_error(self, s: Sock) -> int:
        c = s.conn
        if c is None or c.error is None or s.error_seen:
            return 0
        return ERRORS.get(c.error, E.EIO)

    # ------------------------------------------------------------------ calls

    def socket(self, nonblocking: bool = False, want: int | None = None) -> int:
        fd = self._new_fd(want)
        self.socks[fd] = Sock(fd, nonblocking=nonblocking)
        return fd

    def epoll_create(self, want: int | None = None) -> int:
        fd = self._new_fd(want)
        self.socks[fd] = Sock(fd, epoll={})
        return fd

    def readiness(self, fd: int) -> int:
        """What poll(2) reports for ``fd`` now (Linux tcp_poll), before masking."""
        s = self.socks.get(fd)
        if s is None:
            return POLLNVAL
        if s.listener is not None:
            return POLLIN | POLLRDNORM if s.listener.accept_queue else 0
        c = s.conn
        if c is None:
            return POLLOUT | POLLWRNORM | POLLHUP if s.epoll is None else 0
        st = c.current_state()
        mask = 0
        if c.error is not None and not s.error_seen:
            mask |= POLLERR
        peer_fin = c.peer_fin_seq is not None and c.rcv_nxt > c.peer_fin_seq
        if st is State.CLOSED or ((peer_fin or s.rd_shut) and (c.wr_shut or c.fin_queued)):
            mask |= POLLHUP
        if peer_fin or s.rd_shut:
            mask |= POLLIN | POLLRDNORM | POLLRDHUP
        if st is State.SYN_SENT or st is State.SYN_RECEIVED:
            return mask
        if c.readable_bytes:
            mask |= POLLIN | POLLRDNORM
        if c.wr_shut or c.fin_queued or st is State.CLOSED or self.writable(c):
            mask |= POLLOUT | POLLWRNORM
        return mask

    @staticmethod
    def writable(c: Connection) -> bool:
        """Linux sk_stream_is_writeable: free space at least half of what is queued."""
        queued = c.unsent_or_unacked
        return c.send_space >= queued // 2 and c.send_space > 0

    def bind(self, fd: int, port: int = PORT) -> None:
        s = self.sock(fd)
        if s.binding is not None:
            raise SysError(E.EINVAL)
        try:
            s.binding = self.host.bind(self.local, port, reuse=s.reuseaddr)
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None

    def listen(self, fd: int, backlog: int, now: float) -> None:
        s = self.sock(fd)
        if s.listener is not None:
            s.listener.backlog = max(1, backlog)
            return
        if s.conn is not None:
            raise SysError(E.EINVAL)
        if s.binding is None:
            self.bind(fd, 0)
        assert s.binding is not None
        try:
            s.listener = self.host.listen(s.binding, backlog, now)
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None

    def accept(self, fd: int, want: int | None = None) -> int:
        s = self.sock(fd)
        if s.listener is None:
            raise SysError(E.EINVAL)
        conn = s.listener.accept()
        if conn is None:
            if s.nonblocking:
                raise SysError(E.EAGAIN)
            raise WouldBlock
        nfd = self._new_fd(want)
        self.socks[nfd] = Sock(nfd, conn=conn)
        self._remember(conn)
        return nfd

    def connect(self, fd: int, now: float) -> None:
        s = self.sock(fd)
        if s.listener is not None:
            raise SysError(E.EINVAL)
        if s.conn is not None:
            st = s.conn.current_state()
            if st is State.SYN_SENT or st is State.SYN_RECEIVED:
                if s.nonblocking:
                    raise SysError(E.EALREADY)
                raise WouldBlock
            if s.conn.error is not None:
                err = self.pending_error(s)
                s.error_seen = True
                raise SysError(err or E.ECONNREFUSED)
            if st.synchronized:
                return  # a blocking connect that completed
            raise SysError(E.EISCONN)
        try:
            conn = self.host.connect(self.remote, PORT, now, binding=s.binding,
                                     reuse=s.reuseaddr)
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None
        if s.binding is not None:
            s.binding.users += 1
        s.conn = conn
        self._remember(conn)
        if s.nonblocking:
            raise SysError(E.EINPROGRESS)
        raise WouldBlock

    def recv(self, fd: int, size: int, now: float, peek: bool = False) -> int:
        s = self.sock(fd)
        c = s.conn
        if c is None:
            raise SysError(E.ENOTCONN)
        if c.readable_bytes:
            if peek:
                return min(size, c.readable_bytes)
            return len(c.recv(size, now))
        if c.error is not None and not s.error_seen:
            s.error_seen = True
            raise SysError(ERRORS.get(c.error, E.EIO))
        if c.at_eof or s.rd_shut or c.error is not None or c.current_state() in (
                State.CLOSE_WAIT, State.LAST_ACK, State.CLOSING, State.TIME_WAIT, State.CLOSED):
            return 0
        if s.nonblocking:
            raise SysError(E.EAGAIN)
        raise WouldBlock

    def send(self, fd: int, size: int, now: float) -> int:
        s = self.sock(fd)
        c = s.conn
        if c is None:
            raise SysError(self.send_unconnected)
        if c.error is not None and not s.error_seen:
            s.error_seen = True
            raise SysError(ERRORS.get(c.error, E.EIO))
        try:
            # Never more than fits: a script's length must not size an allocation.
            n = c.send(b"\0" * min(size, max(c.send_space, 0)), now)
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None
        if n == 0 and size:
            if s.nonblocking:
                raise SysError(E.EAGAIN)
            raise WouldBlock
        return n

    def shutdown(self, fd: int, how: str, now: float) -> None:
        s = self.sock(fd)
        c = s.conn
        if c is None or not (c.current_state().synchronized
                             or c.current_state() is State.SYN_RECEIVED):
            raise SysError(E.ENOTCONN)
        if how in ("SHUT_RD", "SHUT_RDWR"):
            s.rd_shut = True
        if how in ("SHUT_WR", "SHUT_RDWR"):
            c.shutdown(now)

    def close(self, fd: int, now: float) -> None:
        s = self.sock(fd)
        del self.socks[fd]
        if s.listener is not None:
            s.listener.close(now)
            return
        c = s.conn
        if c is None:
            if s.binding is not None:
                self.host.release(s.binding)
            return
        if s.linger is not None and s.linger[0] and s.linger[1] == 0:
            c.abort(now, cause="close with SO_LINGER 0")
        else:
            c.close(now)

    def state_of(self, fd: int) -> str:
        """The RFC state of the socket's TCB, as tcp_info would report it."""
        s = self.sock(fd)
        if s.listener is not None:
            return "LISTEN"
        if s.conn is None:
            return "CLOSED"
        return s.conn.current_state().value

    def count_state(self, rfc_state: str, port: int | None) -> int:
        """How many TCBs on the host are in ``rfc_state`` (sockstat)."""
        n = 0
        if rfc_state == "TIME-WAIT":
            return sum(1 for key in self.host.time_wait.keys()  # noqa: SIM118
                       if port is None or key[1] == port)
        if rfc_state == "LISTEN":
            return sum(1 for lst in self.host.listeners.values()
                       if port is None or lst.port == port)
        seen: set[int] = set()
        for conn in list(self.host.conns.values()) + [s.conn for s in self.socks.values()
                                                       if s.conn is not None]:
            if id(conn) in seen:
                continue
            seen.add(id(conn))
            if port is not None and conn.lport != port:
                continue
            if conn.current_state().value == rfc_state:
                n += 1
        return n
