"""The thin asyncio layer: an ``asyncio.Protocol`` that feeds :class:`HttpConnection`.

It uses only what any stream transport offers (``write``, ``close``, ``is_closing``,
``get_extra_info('peername'|'sockname')``, optionally ``pause_reading``/``resume_reading``
and ``abort``) and ``loop.call_at`` for its one timer, so the same protocol runs on the
kernel's TCP (asyncio or uvloop) and on tcplab's own user-space TCP.

Output backpressure: answers are taken from the connection one at a time and written only
while the transport has not called ``pause_writing`` (its buffer is over its high-water
mark); meanwhile reading is paused too, and the connection parses no more than
``Limits.max_pipelined`` requests ahead. ``resume_writing`` (the buffer drained) continues
with the next answer. So a client that pipelines requests and reads nothing holds about
one answer in the server's memory, not all of them.

Timer, one per connection, in one of four modes: ``idle`` while no request is under way
(``keepalive_timeout``, then the connection is closed); ``request`` from a request's first
byte (the whole request must arrive within ``request_timeout``, else 408 and close, however
slowly it trickles in, which is what stops slowloris clients); ``send`` while the client
leaves the answers unread and ``closing`` after the server closed with answers still
buffered (both ``send_timeout``, then the connection is aborted, since a close would wait
for a peer that never reads). :class:`ServerState` counts connections for the cap and lets
the server close every connection first when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from tcplab.http.connection import HttpConnection
from tcplab.http.messages import Handler, Limits, error_response, serialize_response

__all__ = ["HttpProtocol", "ServerState", "make_http_protocol_factory"]

log = logging.getLogger(__name__)


class StreamTransport(Protocol):
    """The part of a transport the protocol uses (asyncio, uvloop, tcplab's own TCP)."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


@dataclass
class ServerState:
    """What the protocols of one server share: its handler, limits and open connections."""

    handler: Handler
    limits: Limits = field(default_factory=Limits)
    connections: set[HttpProtocol] = field(default_factory=set)
    total_connections: int = 0
    rejected_connections: int = 0
    all_closed: asyncio.Event | None = None

    def close_all(self) -> None:
        """Close every connection, the server first (it becomes the active closer)."""
        for proto in list(self.connections):
            proto.close()


def _addr(info: Any) -> tuple[str, int]:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return ("?", 0)


_IDLE, _REQUEST, _SEND, _CLOSING = "idle", "request", "send", "closing"


class HttpProtocol(asyncio.Protocol):
    """One HTTP connection on any stream transport."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._transport: StreamTransport | None = None
        self._conn: HttpConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._mode = ""
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_paused = False
        self._read_paused = False
        self._request_seen = 0  # requests_received when the request timer was armed

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports and tcplab's own are not asyncio.Transport subclasses.
        t = cast(StreamTransport, transport)
        self._transport = t
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # driven by a transport outside a running loop
            self._loop = asyncio.get_event_loop()
        state = self._state
        state.total_connections += 1
        if len(state.connections) >= state.limits.max_connections:
            state.rejected_connections += 1
            t.write(serialize_response(
                error_response(503, "too many connections, try again later"),
                head=False, close=True))
            t.close()
            return
        state.connections.add(self)
        self._conn = HttpConnection(state.handler, state.limits,
                                    _addr(t.get_extra_info("peername")),
                                    _addr(t.get_extra_info("sockname")))
        self._arm(_IDLE)

    def data_received(self, data: bytes) -> None:
        conn, transport = self._conn, self._transport
        if conn is None or transport is None or transport.is_closing():
            return
        conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool | None:
        if self._conn is None or self._transport is None or self._transport.is_closing():
            return None
        # The client may half-close after its requests: answer them, then close.
        self._conn.receive_eof()
        self._pump()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._conn is not None:
            self._conn.close()
        state = self._state
        state.connections.discard(self)
        if not state.connections and state.all_closed is not None:
            state.all_closed.set()

    def pause_writing(self) -> None:
        # The client does not read what it asked for: no more answers, no more reading,
        # and it has send_timeout to read some.
        self._write_paused = True
        self._set_reading(False)
        if self._mode != _CLOSING:
            self._arm(_SEND)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._mode == _CLOSING:
            return
        self._pump()

    # ------------------------------------------------------------------ internals

    def close(self) -> None:
        """Close this connection from the server's side (after what is queued is sent)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._cancel_timer()
            return
        transport.close()
        # What is still buffered must be read within send_timeout, or the close is an abort.
        self._arm(_CLOSING)

    def _pump(self) -> None:
        """Write answers while the transport takes them; then set reading and the timer."""
        conn, transport = self._conn, self._transport
        if conn is None or transport is None or transport.is_closing():
            return
        sent = False
        while not self._write_paused:
            out = conn.send_next()
            if not out:
                break
            transport.write(out)
            sent = True
            if transport.is_closing():
                return
        if conn.input_ended and conn.finished:
            self.close()
            return
        if self._write_paused:
            self._set_reading(False)
            return  # the send timer runs
        if self._read_paused:
            self._set_reading(True)
        if conn.idle:
            if sent or self._mode != _IDLE:
                self._arm(_IDLE)
        elif self._mode != _REQUEST or conn.requests_received != self._request_seen:
            self._request_seen = conn.requests_received
            self._arm(_REQUEST)

    def _set_reading(self, reading: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or reading != self._read_paused:
            return
        self._read_paused = not reading
        method = getattr(transport, "resume_reading" if reading else "pause_reading", None)
        try:
            if method is not None:
                method()
        except (NotImplementedError, RuntimeError):
            pass

    def _arm(self, mode: str) -> None:
        # One timer per connection, moved lazily: re-arming only sets a new deadline, and
        # the callback re-schedules itself if it fires early (cheap per request).
        limits = self._state.limits
        loop = self._loop
        assert loop is not None
        timeout = (limits.keepalive_timeout if mode == _IDLE else
                   limits.request_timeout if mode == _REQUEST else limits.send_timeout)
        self._mode = mode
        deadline = loop.time() + timeout
        if self._timer is not None and deadline < self._deadline:
            self._timer.cancel()  # a nearer deadline than the scheduled one
            self._timer = None
        self._deadline = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        loop = self._loop
        assert loop is not None
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self._timer = None
        self._on_timeout()

    def _on_timeout(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._mode in (_SEND, _CLOSING):
            # The client leaves its answers unread: give up on them.
            abort = getattr(transport, "abort", None)
            if abort is not None:
                abort()
            elif not transport.is_closing():
                transport.close()
            return
        if self._conn is None or transport.is_closing():
            return
        out = self._conn.timeout()
        if out:
            transport.write(out)
        self.close()


def make_http_protocol_factory(handler: Handler, limits: Limits | None = None,
                               state: ServerState | None = None
                               ) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for ``loop.create_server`` or any transport that takes one.

    Pass ``state`` to keep a handle on the open connections (to close them on shutdown);
    otherwise a fresh one is made from ``handler`` and ``limits``.
    """
    if state is None:
        state = ServerState(handler, limits or Limits())

    def factory() -> asyncio.Protocol:
        return HttpProtocol(state)

    return factory
