"""Close storm: who collects TIME-WAIT sockets, depending on who closes first.

N short requests to the HTTP server on loopback, three ways:

- ``server-close``: each request says ``Connection: close``, so the server closes first
  and every connection leaves a TIME-WAIT socket at the server;
- ``client-close``: the client closes after each response, so the TIME-WAIT sockets pile
  up at the client instead (the server goes through CLOSE-WAIT and LAST-ACK);
- ``keep-alive``: all N requests on one connection: at most one TIME-WAIT socket.

The TIME-WAIT count on each side is sampled from the kernel while the requests run. Each
mode gets its own server on a fresh port, so the counts do not mix. Bounded: at most
``MAX_REQUESTS`` requests and ``time_limit`` seconds per mode.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from tcplab.http.app import hello_handler
from tcplab.http.messages import Limits
from tcplab.http.server import ServerThread
from tcplab.kernel.sockets import list_sockets
from tcplab.lab.timewait import free_port

__all__ = ["MAX_REQUESTS", "MODES", "Sample", "StormResult", "run_close_storm"]

MODES = ("server-close", "client-close", "keep-alive")
MAX_REQUESTS = 5000


@dataclass(frozen=True)
class Sample:
    requests: int
    elapsed_s: float
    server_time_wait: int
    client_time_wait: int


@dataclass
class StormResult:
    mode: str
    port: int
    requests: int = 0
    elapsed_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "port": self.port, "requests": self.requests,
                "elapsed_s": round(self.elapsed_s, 3),
                "samples": [s.__dict__ for s in self.samples]}


def count_time_wait(port: int) -> tuple[int, int]:
    """(server side, client side) TIME-WAIT sockets of connections to ``port``."""
    server = client = 0
    for s in list_sockets(states=["time-wait"], port=port, families=(4,)).sockets:
        if s.local_port == port:
            server += 1
        elif s.remote_port == port:
            client += 1
    return server, client


def _read_response(sock: socket.socket, buf: bytearray) -> bool:
    """Read one response to the hello handler; False if the server closed instead."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(buf) >= end + 4 + length:
                del buf[: end + 4 + length]
                return True
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk


def _one_request(port: int, mode: str, keep: socket.socket | None) -> socket.socket | None:
    if mode == "keep-alive":
        sock = keep or socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: storm\r\n\r\n")
        if not _read_response(sock, bytearray()):
            raise ConnectionError("the server closed the keep-alive connection")
        return sock
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        close = b"Connection: close\r\n" if mode == "server-close" else b""
        sock.sendall(b"GET / HTTP/1.1\r\nHost: storm\r\n" + close + b"\r\n")
        _read_response(sock, bytearray())
        if mode == "server-close":
            sock.recv(1)  # wait for the server's FIN before closing our side
    return None


def run_close_storm(n: int = 200, modes: tuple[str, ...] = MODES, samples: int = 10,
                    time_limit: float = 20.0) -> list[StormResult]:
    """Run each mode against its own server; sample TIME-WAIT counts ``samples`` times."""
    n = max(1, min(n, MAX_REQUESTS))
    every = max(1, n // max(1, samples))
    results: list[StormResult] = []
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        limits = Limits(max_connections=max(64, n + 16), keepalive_timeout=30)
        # A port without old TIME-WAIT sockets, so that the counts are this run's only.
        with ServerThread(handler=hello_handler, limits=limits, port=free_port()) as srv:
            result = StormResult(mode, srv.port)
            start = time.monotonic()
            keep: socket.socket | None = None
            try:
                result.samples.append(Sample(0, 0.0, *count_time_wait(srv.port)))
                for i in range(1, n + 1):
                    keep = _one_request(srv.port, mode, keep)
                    if i % every == 0 or i == n:
                        result.samples.append(Sample(i, time.monotonic() - start,
                                                     *count_time_wait(srv.port)))
                    result.requests = i
                    if time.monotonic() - start > time_limit:
                        break
            finally:
                if keep is not None:
                    keep.close()
            result.elapsed_s = time.monotonic() - start
            time.sleep(0.1)  # let the last close finish
            result.samples.append(Sample(result.requests, time.monotonic() - start,
                                         *count_time_wait(srv.port)))
        results.append(result)
    return results
