"""Running the HTTP server on the kernel's TCP: binding, explaining a taken port, stopping.

The listening socket is made here rather than by asyncio so that ``SO_REUSEADDR`` is
exactly what the user asked for (asyncio turns it on by default on Unix), and so that a
taken port can be explained: the kernel's sockets on that port are read with the
inspector (:mod:`tcplab.kernel.sockets`) and the message says whether a live listener
holds it or TIME-WAIT sockets do, with their time left, and what can be done.

Stopping (Ctrl+C or SIGTERM): the listening socket is closed, then every connection is
closed by the server first, so on each one the server is the active closer and its side
ends in TIME-WAIT, which is the situation of the source article's practice. SIGINT's
handler is set explicitly, so the server stops on Ctrl+C even when it was started in the
background by a shell that ignores SIGINT for its background jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcplab.http.app import make_handler
from tcplab.http.messages import Handler, Limits, Request, Response
from tcplab.http.protocol import ServerState, make_http_protocol_factory
from tcplab.kernel.inspect import format_time_left
from tcplab.kernel.sockets import KernelSocket, find_owners, list_sockets, lookup_socket

__all__ = [
    "PortInUse",
    "ServeConfig",
    "ServerStartError",
    "ServerThread",
    "bind_listener",
    "explain_port_in_use",
    "run_server",
    "serve",
]

SHUTDOWN_GRACE = 2.0  # seconds for connections to close before they are aborted


class ServerStartError(Exception):
    """The server cannot start; the message says why in words for a person."""


class PortInUse(ServerStartError):
    """bind() failed with EADDRINUSE; the message explains who holds the port."""


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    reuseaddr: bool = True
    root: Path | None = None
    limits: Limits = field(default_factory=Limits)
    access_log: bool = False
    use_uvloop: bool = True


def bind_listener(host: str, port: int, reuseaddr: bool, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket with SO_REUSEADDR exactly as asked; PortInUse explains EADDRINUSE."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot use host {host!r}: {exc.strerror}") from None
    family, stype, proto, _canon, addr = infos[0]
    sock = socket.socket(family, stype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if reuseaddr else 0)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(explain_port_in_use(host, port, reuseaddr)) from None
        if exc.errno == errno.EACCES:
            raise ServerStartError(
                f"not allowed to bind port {port} (ports below 1024 need root); "
                "use --port 8080 or another port above 1023") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServerStartError(f"{host} is not an address of this machine") from None
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def explain_port_in_use(host: str, port: int, reuseaddr: bool,
                        sockets: Sequence[KernelSocket] | None = None) -> str:
    """Why ``port`` is taken, from the kernel's sockets on it, and what the user can do."""
    if sockets is None:
        try:
            sockets = [s for s in list_sockets(port=port).sockets if s.local_port == port]
        except OSError:
            sockets = []
    listeners = [s for s in sockets if s.state == "LISTEN"]
    waiting = [s for s in sockets if s.state == "TIME-WAIT"]
    others = [s for s in sockets if s.state not in ("LISTEN", "TIME-WAIT")]
    lines = [f"port {port} is already in use (EADDRINUSE) on {host}."]
    if listeners:
        owners = find_owners(s.inode for s in listeners)
        lines.append("A live listener holds it:")
        for s in listeners:
            who = ", ".join(f"{p.name} (pid {p.pid})" for p in owners.get(s.inode, []))
            lines.append(f"  LISTEN {s.local}" + (f"  held by {who}" if who else ""))
        lines.append("Options: stop that program, or choose another port with --port N.")
        return "\n".join(lines)
    if waiting:
        left = max(s.expires_ms for s in waiting)
        lines.append(
            f"{len(waiting)} socket(s) in TIME-WAIT still hold it: connections that the "
            "previous server on this port closed first (the active closer waits 2MSL, 60 s "
            "on Linux):")
        for s in sorted(waiting, key=lambda s: -s.expires_ms)[:10]:
            lines.append(f"  TIME-WAIT {s.local} -> {s.remote}  {format_time_left(s.expires_ms)}"
                         " left")
        if len(waiting) > 10:
            lines.append(f"  ... and {len(waiting) - 10} more")
        lines.append("Options:")
        lines.append(f"  - wait {format_time_left(left)} for the last one to expire "
                     f"(watch: tcplab sockets --watch --state time-wait --port {port});")
        if reuseaddr:
            lines.append(
                "  - this server already asked for SO_REUSEADDR: on Linux that is not enough "
                "when the old server's sockets did not have it too, so waiting is the way;")
        else:
            lines.append(
                "  - start with --reuseaddr (SO_REUSEADDR): it works at once on Linux if the "
                "old server set SO_REUSEADDR as well, as this server does by default;")
        lines.append("  - or choose another port with --port N.")
        return "\n".join(lines)
    if others:
        lines.append("Connections on this port are still closing:")
        for s in others[:10]:
            lines.append(f"  {s.state} {s.local} -> {s.remote}")
        lines.append("Options: wait for them to finish, use --reuseaddr, or choose another port.")
        return "\n".join(lines)
    lines.append("No TCP socket on this port is visible here (a socket bound but not listening, "
                 "or one in another network namespace, may hold it). Choose another port with "
                 "--port N.")
    return "\n".join(lines)


async def serve(sock: socket.socket, state: ServerState, stop: asyncio.Event,
                ready: Callable[[], None] | None = None) -> None:
    """Serve on a listening socket until ``stop`` is set; then close connections first."""
    loop = asyncio.get_running_loop()
    state.all_closed = asyncio.Event()
    server = await loop.create_server(make_http_protocol_factory(state.handler, state=state),
                                      sock=sock, backlog=1024)
    try:
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        server.close()  # no new connections
        state.close_all()  # the server sends its FINs first
        if state.connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(state.all_closed.wait(), SHUTDOWN_GRACE)
        for proto in list(state.connections):
            transport: Any = proto._transport
            if transport is not None and hasattr(transport, "abort"):
                transport.abort()
        await asyncio.sleep(0)


def _logging_handler(handler: Handler) -> Handler:
    def logged(request: Request) -> Response:
        response = handler(request)
        print(f"{request.client[0]}:{request.client[1]} {request.method} {request.target} "
              f"-> {response.status}", file=sys.stderr, flush=True)
        return response

    return logged


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_server(config: ServeConfig, handler: Handler | None = None,
               announce: Callable[[str], None] | None = None) -> ServerState:
    """Bind, serve until Ctrl+C or SIGTERM, close connections first, return the final state."""
    # Ctrl+C must work even if SIGINT was ignored when this process started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sock = bind_listener(config.host, config.port, config.reuseaddr)
    if handler is None:
        handler = make_handler(config.root, lookup_socket)
    if config.access_log:
        handler = _logging_handler(handler)
    state = ServerState(handler, config.limits)
    factory = _loop_factory(config.use_uvloop)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready() -> None:
            if announce is not None:
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                kind = "uvloop" if factory is not None else "asyncio"
                announce(f"tcplab http: listening on http://{shown}:{port}/ "
                         f"(SO_REUSEADDR {'on' if config.reuseaddr else 'off'}, {kind}); "
                         "Ctrl+C to stop")

        await serve(sock, state, stop, ready)

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    finally:
        sock.close()
    return state


class ServerThread:
    """The server on a background thread's event loop (for tests, labs and benchmarks)."""

    def __init__(self, handler: Handler | None = None, limits: Limits | None = None,
                 host: str = "127.0.0.1", port: int = 0, reuseaddr: bool = True,
                 root: Path | None = None) -> None:
        self.state = ServerState(handler or make_handler(root, lookup_socket),
                                 limits or Limits())
        self._sock = bind_listener(host, port, reuseaddr)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tcplab-http", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve(self._sock, self.state, self._stop, self._ready.set)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            self.stop()
            raise ServerStartError(f"server thread did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
