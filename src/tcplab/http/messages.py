"""HTTP/1.1 messages as plain values, and the server's limits.

Nothing here knows about sockets or parsers: a :class:`Request` is what a handler gets,
a :class:`Response` is what it returns, and :func:`serialize_response` turns one into bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import BinaryIO

__all__ = [
    "Handler",
    "HttpError",
    "Limits",
    "Request",
    "Response",
    "error_response",
    "serialize_response",
]

SERVER_NAME = "tcplab"


@dataclass(frozen=True)
class Limits:
    """What the server accepts from one client before it answers with an error or closes."""

    max_header_bytes: int = 16 * 1024  # request line + header section -> 431 above it
    max_body_bytes: int = 1024 * 1024  # -> 413 above it
    request_timeout: float = 10.0  # from a request's first byte to its last -> 408 and close
    keepalive_timeout: float = 5.0  # idle between requests -> close
    max_connections: int = 512  # more at once -> 503 and close
    max_pipelined: int = 16  # requests read ahead of their answers; the rest wait unread
    send_timeout: float = 30.0  # the client leaves the answers unread this long -> abort


@dataclass(slots=True)
class Request:
    """One parsed request, with the connection it came on."""

    method: str
    target: str  # the raw request-target, e.g. "/a%20b?x=1"
    path: str  # the raw (still percent-encoded) path part of the target
    query: str
    version: str  # "1.1" or "1.0"
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    keep_alive: bool
    client: tuple[str, int]
    server: tuple[str, int]

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default


@dataclass
class Response:
    """What a handler answers. ``Content-Length`` and ``Date`` are added when sent.

    A big body can come from an open ``file`` instead of ``body``: its first
    ``file_size`` bytes are sent in chunks, each read only when the transport has room
    for it, and the file is closed after the last one.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False  # ask for Connection: close after this response
    file: BinaryIO | None = None
    file_size: int = 0


Handler = Callable[[Request], Response]


class HttpError(Exception):
    """The peer sent something the server refuses; ``status`` is the answer to give."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode("latin-1") for s in HTTPStatus}
_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an HTTP date, computed at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def serialize_response(resp: Response, *, head: bool, close: bool, version: str = "1.1") -> bytes:
    """Bytes of a whole response; ``head`` leaves out the body but keeps its length.

    For a response with a ``file``, only the head: the caller sends the file.
    """
    status = resp.status
    parts = [
        b"HTTP/1.1 %d %s\r\nServer: tcplab\r\nDate: %s\r\n"
        % (status, _REASONS.get(status, b"Unknown"), http_date())
    ]
    has_length = False
    for name, value in resp.headers:
        lname = name.lower()
        if lname == "content-length":
            has_length = True
        elif lname == "connection":
            continue
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if not has_length and status >= 200 and status not in (204, 304):
        length = resp.file_size if resp.file is not None else len(resp.body)
        parts.append(b"Content-Length: %d\r\n" % length)
    if close:
        parts.append(b"Connection: close\r\n")
    elif version == "1.0":
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    if not head and status not in (204, 304) and resp.file is None:
        parts.append(resp.body)
    return b"".join(parts)


def error_response(status: int, detail: str) -> Response:
    """A small plain-text error page."""
    phrase = _REASONS.get(status, b"Error").decode("latin-1")
    body = f"{status} {phrase}: {detail}\n".encode()
    return Response(status, [("Content-Type", "text/plain; charset=utf-8")], body, close=True)
