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
from collections.abc import Callable
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
    # Linux socket options kept on the socket and given to its connection (before the
    # SYN when set before connect(); inherited by accepted children from a listener).
    fastopen_connect: bool = False              #: TCP_FASTOPEN_CONNECT
    fastopen_qlen: int | None = None            #: TCP_FASTOPEN (a listener's queue)
    fastopen_key: bytes | None = None           #: TCP_FASTOPEN_KEY
    user_mss: int | None = None                 #: TCP_MAXSEG
    snd_buf: int | None = None                  #: SO_SNDBUF (doubled, as Linux stores it)
    rcv_buf: int | None = None                  #: SO_RCVBUF (doubled)
    syncnt: int | None = None                   #: TCP_SYNCNT
    cork: bool = False                          #: TCP_CORK
    user_timeout: float | None = None           #: TCP_USER_TIMEOUT, seconds
    keepalive: bool = False                     #: SO_KEEPALIVE
    keepidle: float | None = None               #: TCP_KEEPIDLE
    keepintvl: float | None = None              #: TCP_KEEPINTVL
    keepcnt: int | None = None                  #: TCP_KEEPCNT


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
                 send_unconnected: int = E.ENOTCONN, linux: bool = False) -> None:
        self.host = host
        self.linux = linux        #: Linux's rules (Fast Open, writes in SYN-SENT, ...)
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
        descriptors to live ones), else the lowest free from 3.  On Linux's scripts a
        name already in use moves to the new socket (packetdrill's script descriptors
        are names of live ones; the old socket stays open, nameless)."""
        if want is not None and 0 <= want < 1 << 16 and want not in self.socks:
            return want
        if self.linux and want is not None and 3 <= want < 1 << 16:
            hidden = 1 << 16
            while hidden in self.socks:
                hidden += 1
            old = self.socks.pop(want)
            old.fd = hidden
            self.socks[hidden] = old
            return want
        fd = 3
        while fd in self.socks:
            fd += 1
        return fd

    def _remember(self, conn: Connection) -> None:
        self.conns[(conn.lport, conn.rport)] = conn

    def setup(self, s: Sock, now: float) -> Callable[[Connection], None]:
        """What a new connection of ``s`` gets before its SYN (Host.connect's ``setup``)."""
        def apply(conn: Connection) -> None:
            self.apply_options(s, conn, now)
        return apply

    @staticmethod
    def apply_options(s: Sock, conn: Connection, now: float) -> None:
        """Give ``conn`` the options set on socket ``s``."""
        if s.user_mss is not None:
            conn.user_mss = s.user_mss
        if s.rcv_buf is not None:
            conn.rcv_buf = s.rcv_buf
        if s.snd_buf is not None:
            conn.snd_buf = s.snd_buf
        if s.syncnt is not None:
            conn.syn_retries = s.syncnt
        if s.user_timeout is not None:
            conn.set_user_timeout(s.user_timeout)
        if s.cork:
            conn.cork = True
        if "TCP_NODELAY" in s.options:
            conn.set_nodelay(bool(s.options["TCP_NODELAY"]))
        if s.keepalive or s.keepidle is not None or s.keepintvl is not None \
                or s.keepcnt is not None:
            conn.set_keepalive(s.keepalive, now, s.keepidle, s.keepintvl, s.keepcnt)

    @staticmethod
    def apply_listener(s: Sock) -> None:
        lst = s.listener
        if lst is None:
            return
        if s.fastopen_qlen is not None:
            lst.fastopen_qlen = s.fastopen_qlen
        if s.fastopen_key is not None:
            lst.fastopen_key = s.fastopen_key
        lst.user_mss = s.user_mss
        lst.rcv_buf = s.rcv_buf
        lst.snd_buf = s.snd_buf

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
        if c.deferred:
            return POLLOUT | POLLWRNORM   # Linux: write() sends the SYN with its data
        if c.error is not None and not s.error_seen:
            mask |= POLLERR
        peer_fin = c.peer_fin_seq is not None and c.rcv_nxt > c.peer_fin_seq
        if st is State.CLOSED or ((peer_fin or s.rd_shut) and (c.wr_shut or c.fin_queued)):
            mask |= POLLHUP
        if peer_fin or s.rd_shut or (self.linux and st is State.CLOSED):
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
        self.apply_listener(s)

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
        child = Sock(nfd, conn=conn)
        for name in ("user_mss", "snd_buf", "rcv_buf", "cork", "user_timeout", "keepalive",
                     "keepidle", "keepintvl", "keepcnt"):
            setattr(child, name, getattr(s, name))
        self.socks[nfd] = child
        self._remember(conn)
        return nfd

    def connect(self, fd: int, now: float) -> None:
        s = self.sock(fd)
        if s.listener is not None:
            raise SysError(E.EINVAL)
        if s.conn is not None and s.conn.deferred:
            raise SysError(E.EISCONN)   # Linux: SS_CONNECTING with a deferred connect
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
        fastopen = self.linux and s.fastopen_connect
        try:
            conn = self.host.connect(self.remote, PORT, now, binding=s.binding,
                                     reuse=s.reuseaddr, fastopen=fastopen, defer=fastopen,
                                     setup=self.setup(s, now))
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None
        if s.binding is not None:
            s.binding.users += 1
        s.conn = conn
        self._remember(conn)
        if conn.deferred:
            return   # TCP_FASTOPEN_CONNECT with a cookie: the SYN waits for data
        if s.nonblocking:
            raise SysError(E.EINPROGRESS)
        raise WouldBlock

    def fastopen(self, fd: int, data: bytes, now: float, af_unspec: bool = False) -> int:
        """sendto/sendmsg with MSG_FASTOPEN, or a first write on a deferred connect
        (Linux tcp_sendmsg_fastopen): the SYN with data, or a cookie request.  Returns
        how much of ``data`` went in the SYN."""
        s = self.sock(fd)
        if s.listener is not None:
            raise SysError(E.EINVAL)
        c = s.conn
        if c is not None and c.deferred:
            return c.send(data, now)
        if not self.host.config.fastopen & 1 or af_unspec:
            raise SysError(E.EOPNOTSUPP)
        if c is not None:
            st = c.current_state()
            raise SysError(E.EALREADY if st in (State.SYN_SENT, State.SYN_RECEIVED)
                           else E.EISCONN)
        try:
            conn = self.host.connect(self.remote, PORT, now, binding=s.binding,
                                     reuse=s.reuseaddr, fastopen=True, data=data,
                                     setup=self.setup(s, now))
        except TcpError as exc:
            raise SysError(exc.errno, exc.message) from None
        if s.binding is not None:
            s.binding.users += 1
        s.conn = conn
        self._remember(conn)
        return conn.syn_data_len

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

    def send(self, fd: int, size: int, now: float, more: bool = False,
             eor: bool = False) -> int:
        s = self.sock(fd)
        c = s.conn
        if c is None:
            raise SysError(self.send_unconnected)
        if c.error is not None and not s.error_seen:
            s.error_seen = True
            raise SysError(ERRORS.get(c.error, E.EIO))
        if self.linux and c.current_state() is State.SYN_SENT and s.nonblocking:
            raise SysError(E.EAGAIN)    # Linux sk_stream_wait_connect, without waiting
        try:
            # Never more than fits: a script's length must not size an allocation.
            n = c.send(b"\0" * min(size, max(c.send_space, 0)), now, more, eor)
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
