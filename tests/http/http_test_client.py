"""A raw-socket HTTP client for the tests: send exact bytes, read exact responses."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import httptools

from tcplab.http.messages import Limits

TEST_LIMITS = Limits(max_header_bytes=4096, max_body_bytes=10_000, request_timeout=0.6,
                     keepalive_timeout=0.6, max_connections=8)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Collector:
    replies: list[Reply] = field(default_factory=list)
    _headers: dict[str, str] = field(default_factory=dict)
    _body: list[bytes] = field(default_factory=list)
    parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.replies.append(Reply(self.parser.get_status_code(), self._headers,
                                  b"".join(self._body)))
        self._headers, self._body = {}, []


class Client:
    """A raw HTTP client: send exact bytes, read exact responses, see the close."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._collector = _Collector()
        self._parser = httptools.HttpResponseParser(self._collector)
        self._collector.parser = self._parser
        self.closed_by_server = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int = 1, head: bool = False, timeout: float = 5) -> list[Reply]:
        """Read until ``count`` responses have come (or the server closed).

        ``head``: the responses answer HEAD requests (a Content-Length but no body).
        """
        deadline = time.monotonic() + timeout
        while len(self._collector.replies) < count and not self.closed_by_server:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                self.closed_by_server = True
                break
            if head:
                self._feed_head(data)
            else:
                self._parser.feed_data(data)
        replies, self._collector.replies = self._collector.replies[:count], \
            self._collector.replies[count:]
        return replies

    def _feed_head(self, data: bytes) -> None:
        # Split by hand: each HEAD response ends at its blank line.
        self._head_buf = getattr(self, "_head_buf", b"") + data
        while b"\r\n\r\n" in self._head_buf:
            head, self._head_buf = self._head_buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            self._collector.replies.append(Reply(status, headers, b""))

    def wait_closed(self, timeout: float = 5) -> bool:
        """True if the server closes the connection within ``timeout`` seconds."""
        if self.closed_by_server:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if not data:
                self.closed_by_server = True
                return True
            self._parser.feed_data(data)
        return False

    def close(self) -> None:
        self.sock.close()
