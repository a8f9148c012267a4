"""The thin asyncio layer: an ``asyncio.Protocol`` that feeds :class:`HttpConnection`.

It uses only what any stream transport offers (``write``, ``close``, ``is_closing``,
``get_extra_info('peername'|'sockname')``, optionally ``pause_reading``/``resume_reading``)
and ``loop.call_later`` for its one timer, so the same protocol runs on the kernel's TCP
(asyncio or uvloop) and on tcplab's own user-space TCP.

Timer: while no request is under way the connection may sit idle for
``keepalive_timeout`` (then it is closed); from a request's first byte the whole request
must arrive within ``request_timeout`` (else 408 and close), however slowly it trickles
in, which is what stops slowloris clients. :class:`ServerState` counts connections for the
cap and lets the server close every connection first when it stops.
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


class HttpProtocol(asyncio.Protocol):
    """One HTTP connection on any stream transport."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._transport: StreamTransport | None = None
        self._conn: HttpConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_is_request = False
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self._arm(request=False)

    def data_received(self, data: bytes) -> None:
        conn, transport = self._conn, self._transport
        if conn is None or transport is None or transport.is_closing():
            return
        was_idle = conn.idle
        out = conn.receive_data(data)
        if out:
            transport.write(out)
        if conn.must_close:
            self.close()
            return
        if conn.idle:
            if out or not was_idle:
                self._arm(request=False)
        elif was_idle or not self._timer_is_request:
            self._arm(request=True)

    def eof_received(self) -> bool | None:
        if self._conn is not None:
            self._conn.receive_eof()
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        state = self._state
        state.connections.discard(self)
        if not state.connections and state.all_closed is not None:
            state.all_closed.set()

    def pause_writing(self) -> None:
        # The client does not read what it asked for: stop reading its requests meanwhile.
        self._pause(True)

    def resume_writing(self) -> None:
        self._pause(False)

    # ------------------------------------------------------------------ internals

    def close(self) -> None:
        """Close this connection from the server's side (after what is queued is sent)."""
        self._cancel_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _pause(self, paused: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        method = getattr(transport, "pause_reading" if paused else "resume_reading", None)
        try:
            if method is not None:
                method()
        except (NotImplementedError, RuntimeError):
            pass

    def _arm(self, request: bool) -> None:
        # One timer per connection, moved lazily: re-arming only sets a new deadline, and
        # the callback re-schedules itself if it fires early (cheap per request).
        limits = self._state.limits
        loop = self._loop
        assert loop is not None
        self._timer_is_request = request
        self._deadline = loop.time() + (limits.request_timeout if request
                                        else limits.keepalive_timeout)
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._on_timer)

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
        if self._conn is None or self._transport is None or self._transport.is_closing():
            return
        out = self._conn.timeout()
        if out:
            self._transport.write(out)
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
