"""asyncio on tcplab's own TCP: transports, protocols, streams, for any backend.

The same server code runs on the simulator (in virtual time) and on a TUN
device (in real time): it is an ordinary :class:`asyncio.Protocol` (or a
streams callback) and gets an :class:`EngineTransport` that wraps an engine
:class:`~tcplab.engine.Connection`.

The engine's clock is ``loop.time()``.  A backend gives a ``kick`` callable
that sends whatever the engine produced (the simulator moves packets onto
its network; the TUN backend writes them to the device).

Events: the transports and servers here ask their connections and listeners
for application events (``want_events``) and install one dispatcher per host
as its ``ready_hook``.  When the host ends an entry point with events queued,
the dispatcher schedules itself with ``loop.call_soon``, then reads each
ready connection's ``next_event()`` and delivers to the protocol.  So a
protocol callback never runs inside the engine's segment processing.

When the application is done: as with asyncio on kernel sockets, a transport
that was closed calls ``connection_lost`` as soon as everything written has been
handed to the engine and the close itself has been (the FIN is queued).  The
engine finishes the close on its own, as the kernel does for a closed socket
(FIN-WAIT-1/2, CLOSING, LAST-ACK, TIME-WAIT): a peer that never acknowledges
the FIN holds a Connection, not the application's slot for it.  A server
forgets the transport then (:attr:`EngineServer.transports` shrinks), and its
limits (:class:`ServerLimits`: in total, per source address) count only the
connections the application still holds.
"""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.api.sockets import connection_error, os_error
from tcplab.engine.connection import Connection
from tcplab.engine.errors import TcpError
from tcplab.engine.host import Host
from tcplab.engine.listener import Listener
from tcplab.engine.state import State

Kick = Callable[[], None]
_READ_CHUNK = 256 * 1024


class _Dispatcher:
    """One per host and loop: routes the host's ready connections to their handlers."""

    def __init__(self, host: Host, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.handlers: dict[Connection | Listener, Callable[[], None]] = {}
        self.scheduled = False

    def wake(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.dispatch)

    def dispatch(self) -> None:
        self.scheduled = False
        for item in self.host.take_ready():
            handler = self.handlers.get(item)
            if handler is not None:
                handler()

    def watch(self, item: Connection | Listener, handler: Callable[[], None]) -> None:
        item.want_events = True
        self.handlers[item] = handler

    def unwatch(self, item: Connection | Listener) -> None:
        item.want_events = False
        self.handlers.pop(item, None)


def _dispatcher(host: Host, loop: asyncio.AbstractEventLoop) -> _Dispatcher:
    """The host's dispatcher for ``loop``, installed as its ready hook on first use."""
    d = getattr(host.ready_hook, "__self__", None)
    if isinstance(d, _Dispatcher) and d.loop is loop:
        return d
    d = _Dispatcher(host, loop)
    host.ready_hook = d.wake
    return d


class EngineTransport(asyncio.Transport):
    """An asyncio transport over one engine connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: Connection,
                 protocol: asyncio.BaseProtocol, kick: Kick, dispatcher: _Dispatcher,
                 on_lost: Callable[[EngineTransport], None] | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._conn = conn
        self._protocol = protocol
        self._kick = kick
        self._pending = bytearray()  # written by the protocol, not yet taken by the engine
        self._closing = False  # close() or abort() was called
        self._eof_wanted = False  # write_eof() was called
        self._eof_written = False  # the engine has the shutdown or the close
        self._conn_closed = False  # the engine has the close: the application is done
        self._paused = False
        self._eof_delivered = False
        self._lost = False
        self._write_paused = False
        self._high_water = 1 << 20
        self._dispatcher = dispatcher
        self._on_lost = on_lost
        dispatcher.watch(conn, self._on_engine_events)

    # ------------------------------------------------------------ engine side

    def _on_engine_events(self) -> None:
        conn = self._conn
        while conn.next_event() is not None:
            pass  # what to do is read from the connection's state in _deliver
        self._deliver()

    def _deliver(self) -> None:
        if self._lost:
            return
        conn = self._conn
        now = self._loop.time()
        if self._pending:
            self._push_pending()
        proto = self._protocol
        while not self._paused and conn.rcvbuf and isinstance(proto, asyncio.Protocol):
            data = conn.recv(_READ_CHUNK, now)
            self._kick()
            proto.data_received(data)
            if self._lost:
                return
        if not self._paused and conn.at_eof and not self._eof_delivered:
            self._eof_delivered = True
            keep_open = proto.eof_received() if isinstance(proto, asyncio.Protocol) else None
            if not keep_open and not self._closing:
                self.close()
        if self._write_paused and len(self._pending) < self._high_water // 4:
            self._write_paused = False
            proto.resume_writing()
        if not self._pending:
            if self._closing and not self._conn_closed:
                self._close_engine(now)
            elif self._eof_wanted and not self._eof_written:
                self._eof_written = True
                conn.shutdown(now)
                self._kick()
        st = conn.current_state()
        if conn.error is not None or st in (State.CLOSED, State.TIME_WAIT) or \
                self._conn_closed:
            # Closed by the application and everything handed over: the engine ends
            # the connection alone (FIN-WAIT-1/2, CLOSING, LAST-ACK), like the kernel
            # ends a closed socket's, and the application's slot is free.
            self._connection_lost()

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._dispatcher.unwatch(self._conn)
        if self._on_lost is not None:
            self._on_lost(self)
        exc: Exception | None = None
        if self._conn.error is not None and not self._closing:
            exc = connection_error(self._conn)
        self._protocol.connection_lost(exc)

    def _close_engine(self, now: float) -> None:
        """CLOSE: the FIN goes after what the engine has (RST with unread data, as Linux)."""
        self._conn_closed = True
        self._eof_written = True
        self._conn.close(now)
        self._kick()

    def _push_pending(self) -> None:
        pending = self._pending
        with memoryview(pending) as view:
            n = self._hand_over(view)
        if n:
            del pending[:n]

    def _hand_over(self, data: bytes | bytearray | memoryview) -> int:
        """Give the engine what of ``data`` fits in its send buffer (it copies it once);
        how much it took.  A connection that fails takes it all (it is discarded)."""
        conn = self._conn
        if not conn.state.synchronized and conn.state is not State.SYN_RECEIVED:
            return 0
        room = conn.send_space
        if room <= 0:
            return 0  # the engine's buffer is full: the next ACK makes room
        try:
            n = conn.send(data, self._loop.time())
        except TcpError:
            return len(data)
        self._kick()
        return n

    # ------------------------------------------------------------ asyncio API

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._eof_wanted:
            return
        if isinstance(data, memoryview) and (data.itemsize != 1 or not data.c_contiguous):
            data = data.tobytes()  # lengths below count bytes
        if self._pending:
            self._pending += data
            self._push_pending()
        else:
            # Straight to the engine (one copy, into its send buffer); only what does
            # not fit waits here.
            n = self._hand_over(data)
            if n < len(data):
                with memoryview(data) as view:
                    self._pending += view[n:]
        if len(self._pending) > self._high_water and not self._write_paused:
            self._write_paused = True
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Half-close: the FIN follows everything written so far (also what still waits
        here for room in the engine's buffer)."""
        if self._eof_wanted or self._closing:
            return
        self._eof_wanted = True
        if self._pending:
            self._push_pending()
        if not self._pending:
            self._eof_written = True
            self._conn.shutdown(self._loop.time())
            self._kick()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._pending:
            self._close_engine(self._loop.time())
        self._conn.app_closed = True
        self._loop.call_soon(self._deliver)

    def abort(self) -> None:
        self._closing = True
        self._pending.clear()
        self._conn_closed = self._eof_written = True
        self._conn.abort(self._loop.time())
        self._kick()
        self._loop.call_soon(self._deliver)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._loop.call_soon(self._deliver)

    def is_reading(self) -> bool:
        return not self._paused

    def get_write_buffer_size(self) -> int:
        return len(self._pending) + self._conn.unsent_or_unacked

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water = high if high is not None else 1 << 20

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "peername":
            return (conn.raddr, conn.rport)
        if name == "sockname":
            return (conn.laddr, conn.lport)
        if name in ("tcplab.connection", "connection"):
            return conn
        if name == "socket":
            return None
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    @property
    def connection(self) -> Connection:
        return self._conn


@dataclass(frozen=True)
class ServerLimits:
    """How many accepted connections a server holds for its application at once.

    A connection counts from ``accept()`` until the application is done with it
    (``connection_lost``; a connection that is closing does not count).  One more
    is reset at once (RST), before the application sees it, and counted in
    :attr:`EngineServer.refused`.  ``None``: no limit."""

    max_connections: int | None = None
    max_per_source: int | None = None


class EngineServer:
    """What :func:`start_server` returns: close it to stop listening."""

    def __init__(self, listeners: Sequence[Listener], loop: asyncio.AbstractEventLoop,
                 kick: Kick, limits: ServerLimits | None = None) -> None:
        self.listeners = list(listeners)
        self._loop = loop
        self._kick = kick
        self.limits = limits or ServerLimits()
        #: the transports of connections this server accepted and the application holds
        self.transports: set[EngineTransport] = set()
        #: how many of them each source address has
        self.per_source: dict[str, int] = {}
        self.accepted = 0  #: connections given to the application
        self.refused = 0  #: connections reset because a limit was reached

    @property
    def listener(self) -> Listener:
        """The first (often the only) listener."""
        return self.listeners[0]

    @property
    def port(self) -> int:
        return self.listeners[0].port

    def close(self) -> None:
        now = self._loop.time()
        for lst in self.listeners:
            lst.close(now)
        self._kick()

    def close_clients(self) -> None:
        for t in list(self.transports):
            t.close()

    def _over_limit(self, source: str) -> str | None:
        """Why a new connection from ``source`` may not be accepted (None: it may)."""
        lim = self.limits
        if lim.max_connections is not None and len(self.transports) >= lim.max_connections:
            return f"server connection limit ({lim.max_connections}) reached"
        if lim.max_per_source is not None and \
                self.per_source.get(source, 0) >= lim.max_per_source:
            return f"per-source connection limit ({lim.max_per_source}) reached for {source}"
        return None

    def _add(self, transport: EngineTransport, source: str) -> None:
        self.transports.add(transport)
        self.per_source[source] = self.per_source.get(source, 0) + 1
        self.accepted += 1

    def _lost(self, transport: EngineTransport) -> None:
        if transport not in self.transports:
            return
        self.transports.discard(transport)
        source = transport.connection.raddr
        left = self.per_source.get(source, 1) - 1
        if left > 0:
            self.per_source[source] = left
        else:
            self.per_source.pop(source, None)


async def start_server(host: Host, protocol_factory: Callable[[], asyncio.BaseProtocol],
                       addr: str | Sequence[str] = "0.0.0.0", port: int = 0, *, kick: Kick,
                       backlog: int = 128, reuse_address: bool = True,
                       limits: ServerLimits | None = None) -> EngineServer:
    """Listen on tcplab's TCP; each accepted connection gets ``protocol_factory()``.

    ``addr`` may be several addresses (one listener each, on the same port: the
    port chosen for the first when ``port`` is 0)."""
    loop = asyncio.get_running_loop()
    addrs = [addr] if isinstance(addr, str) else list(addr)
    listeners: list[Listener] = []
    try:
        for a in addrs:
            binding = host.bind(a, port, reuse_address)
            listeners.append(host.listen(binding, backlog, loop.time()))
            port = binding.port
    except TcpError as exc:
        for lst in listeners:
            lst.close(loop.time())
        kick()
        raise os_error(exc) from None
    server = EngineServer(listeners, loop, kick, limits)
    dispatcher = _dispatcher(host, loop)

    def accept_from(listener: Listener) -> None:
        while listener.next_event() is not None:
            pass
        while True:
            conn = listener.accept()
            if conn is None:
                return
            why = server._over_limit(conn.raddr)
            if why is not None:
                server.refused += 1
                now = loop.time()
                host.app_event(now, "accept", f"refused: {why}", conn.name)
                conn.abort(now, cause=why)
                kick()
                continue
            proto = protocol_factory()
            transport = EngineTransport(loop, conn, proto, kick, dispatcher, server._lost)
            server._add(transport, conn.raddr)
            proto.connection_made(transport)
            transport._deliver()

    for lst in listeners:
        dispatcher.watch(lst, functools.partial(accept_from, lst))
        if lst.accept_queue:
            loop.call_soon(accept_from, lst)
    return server


async def create_connection(host: Host, protocol_factory: Callable[[], asyncio.BaseProtocol],
                            raddr: str, rport: int, *, kick: Kick,
                            ) -> tuple[EngineTransport, asyncio.BaseProtocol]:
    """Connect with tcplab's TCP; like ``loop.create_connection``."""
    loop = asyncio.get_running_loop()
    try:
        conn = host.connect(raddr, rport, loop.time())
    except TcpError as exc:
        raise os_error(exc) from None
    done: asyncio.Future[None] = loop.create_future()
    dispatcher = _dispatcher(host, loop)

    def on_events() -> None:
        while conn.next_event() is not None:
            pass
        if done.done():
            return
        if conn.error is not None:
            done.set_exception(connection_error(conn))
        elif conn.state.synchronized:
            done.set_result(None)
        elif conn.state is State.CLOSED:
            done.set_exception(ConnectionAbortedError(errno.ECONNABORTED,
                                                      "connection closed during connect"))

    dispatcher.watch(conn, on_events)
    kick()
    try:
        await done
    finally:
        dispatcher.unwatch(conn)
    proto = protocol_factory()
    transport = EngineTransport(loop, conn, proto, kick, dispatcher)
    proto.connection_made(transport)
    transport._deliver()
    return transport, proto


async def open_connection(host: Host, raddr: str, rport: int, *, kick: Kick,
                          limit: int = 2 ** 16,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over tcplab's TCP; like ``asyncio.open_connection``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(host, lambda: protocol, raddr, rport, kick=kick)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_stream_server(
        host: Host,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                      Awaitable[None] | None],
        addr: str | Sequence[str] = "0.0.0.0", port: int = 0, *, kick: Kick,
        limit: int = 2 ** 16, reuse_address: bool = True,
        limits: ServerLimits | None = None) -> EngineServer:
    """Streams server over tcplab's TCP; like ``asyncio.start_server``."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await start_server(host, factory, addr, port, kick=kick, reuse_address=reuse_address,
                              limits=limits)


__all__ = ["EngineServer", "EngineTransport", "ServerLimits", "create_connection", "errno",
           "open_connection", "start_server", "start_stream_server"]
