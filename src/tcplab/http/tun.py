"""HTTP on both sides of the TUN device: on tcplab's TCP, and on the kernel's.

* :func:`start_http` serves HTTP/1.1 on tcplab's TCP with the project's HTTP server
  (:mod:`tcplab.http`: the same ``asyncio.Protocol`` that runs on kernel sockets), on
  both of tcplab's addresses (192.0.2.2 and 2001:db8::2), with the server's limits:
  the HTTP ones (:class:`~tcplab.http.messages.Limits`: at most ``max_connections``
  at once, else 503; ``keepalive_timeout`` for a connection that sends nothing, from
  its handshake on; ``request_timeout`` for a request to arrive in full) and, below
  them, at most ``max_per_source`` connections per client address (one more is reset
  at once: :class:`~tcplab.api.transports.ServerLimits`).  A connection counts until
  the server is done with it, not until its close has run its course;
* :func:`start_kernel_http` runs ``python -m http.server`` inside the namespace,
  bound to the kernel's address, and waits until sock_diag shows it in LISTEN;
* :func:`http_get` fetches one page with tcplab's TCP as the client (HTTP/1.1,
  ``Connection: close``), reading until the server's FIN.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tcplab.api import transports as aio
from tcplab.api.transports import ServerLimits
from tcplab.http.app import make_handler
from tcplab.http.messages import Limits
from tcplab.http.protocol import ServerState, make_http_protocol_factory
from tcplab.tun.backend import TunBackend

__all__ = ["HttpReply", "http_get", "start_http", "start_kernel_http"]


async def start_http(backend: TunBackend, port: int = 80, root: Path | None = None,
                     limits: Limits | None = None, max_per_source: int | None = None,
                     addrs: tuple[str, ...] | None = None,
                     ) -> tuple[aio.EngineServer, ServerState]:
    """tcplab's stack serves HTTP/1.1 on ``port`` of ``addrs`` (default: both of its
    addresses); the page shows the connection."""
    state = ServerState(make_handler(root, None), limits or Limits())
    factory = make_http_protocol_factory(state.handler, state=state)
    server = await aio.start_server(backend.host, factory, addrs or backend.addrs, port=port,
                                    kick=backend.kick,
                                    limits=ServerLimits(max_per_source=max_per_source))
    return server, state


async def start_kernel_http(backend: TunBackend, directory: Path, port: int = 8000,
                            timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """``python -m http.server`` on the kernel's side of the device, in LISTEN."""
    proc = backend.popen_in_ns(
        [sys.executable, "-m", "http.server", str(port), "--bind", backend.kernel_addr,
         "--directory", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await backend.wait_kernel(
            lambda socks: any(s.state == "LISTEN" and s.local_port == port for s in socks),
            timeout, f"python -m http.server to listen on port {port}")
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    return proc


@dataclass
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    local: tuple[str, int]

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


async def http_get(backend: TunBackend, port: int, path: str = "/",
                   timeout: float = 10.0) -> HttpReply:
    """GET ``path`` from the kernel's address with tcplab's TCP; read to the server's FIN."""
    reader, writer = await asyncio.wait_for(
        aio.open_connection(backend.host, backend.kernel_addr, port, kick=backend.kick),
        timeout)
    local = writer.get_extra_info("sockname")
    host = backend.url_host(backend.kernel_addr)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 "User-Agent: tcplab\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2) if lines else []
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {raw[:80]!r}")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return HttpReply(int(parts[1]), headers, body, (str(local[0]), int(local[1])))
