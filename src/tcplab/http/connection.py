"""One HTTP/1.1 server connection, sans I/O: bytes in, bytes out, and whether to close.

Theory of operation
-------------------
:class:`HttpConnection` owns an ``httptools`` request parser. :meth:`receive_data` feeds
it; the parser's callbacks collect each request's target, headers and body and check the
limits as they go (431 for a header section over the limit, 413 for a body over it, 501
for a transfer coding other than chunked). Completed requests are queued, and once the
feed returns they are answered in order by the handler, so pipelined requests get their
responses in the order they came, all in one write. A malformed request line or header
(400), a refused one (413, 431, 501) or a response that asks for ``Connection: close``
ends the connection: the answer is sent and :attr:`must_close` turns true; anything the
client pipelined after it is dropped.

Time belongs to the caller (:mod:`tcplab.http.protocol`): :attr:`idle` says whether a
request is half-received, and :meth:`timeout` gives the 408 to send when the caller's
timer runs out. The transport is never touched here, which is what lets the same code run
on the kernel's TCP and on tcplab's own.
"""

from __future__ import annotations

import logging

import httptools

from tcplab.http.messages import (
    Handler,
    HttpError,
    Limits,
    Request,
    error_response,
    serialize_response,
)

__all__ = ["HttpConnection"]

log = logging.getLogger(__name__)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpConnection:
    """The HTTP side of one connection (RFC 9112), fed with bytes by a transport layer."""

    def __init__(self, handler: Handler, limits: Limits,
                 client: tuple[str, int], server: tuple[str, int]) -> None:
        self._handler = handler
        self._limits = limits
        self._client = client
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._ready: list[tuple[Request, bool]] = []  # (request, keep_alive)
        self._error: HttpError | None = None
        self._out: list[bytes] = []
        self.must_close = False
        self.requests_served = 0
        self._reset_message()
        self._in_message = False

    # ------------------------------------------------------------------ public

    @property
    def idle(self) -> bool:
        """True between requests (no request partly received)."""
        return not self._in_message

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the client; returns the bytes to send back (maybe empty)."""
        if self.must_close or not data:
            return b""
        was_in_headers = self._in_message and not self._headers_done
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades and CONNECT are not served: answer what came before, then close.
            self._respond_ready()
            if not self.must_close:
                self._fail(HttpError(501, "protocol upgrade and CONNECT are not supported"))
            return self._flush()
        except httptools.HttpParserError as exc:
            self._respond_ready()
            self._fail(self._error or HttpError(400, _parser_detail(exc)))
            return self._flush()
        # A header section still arriving after this feed: count it against the limit
        # (callbacks see a header only once it is complete, so trickled bytes count here).
        if was_in_headers and self._in_message and not self._headers_done:
            self._partial_header_bytes += len(data)
            if self._partial_header_bytes > self._limits.max_header_bytes:
                self._respond_ready()
                self._fail(HttpError(431, "request header section too large"))
                return self._flush()
        self._respond_ready()
        return self._flush()

    def receive_eof(self) -> None:
        """The client closed its sending side: nothing more will come."""
        self.must_close = True

    def timeout(self) -> bytes:
        """The caller's timer ran out: the 408 to send if a request was under way, else b""."""
        if self.must_close:
            return b""
        self.must_close = True
        if self._in_message:
            return serialize_response(error_response(408, "request not received in time"),
                                      head=False, close=True)
        return b""

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._reset_message()
        self._in_message = True

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        length: int | None = None
        for name, value in self._headers:
            if name == "transfer-encoding":
                codings = [c.strip().lower() for c in value.split(",") if c.strip()]
                if any(c != "chunked" for c in codings):
                    self._raise(HttpError(501, f"transfer coding {value!r} not supported"))
            elif name == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    self._raise(HttpError(400, "bad Content-Length"))
        if length is not None and length > self._limits.max_body_bytes:
            self._raise(HttpError(413, f"body of {length} bytes is over the limit of "
                                       f"{self._limits.max_body_bytes}"))
        for name, value in self._headers:
            if name == "expect" and value.lower() == "100-continue":
                self._out.append(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limits.max_body_bytes:
            self._raise(HttpError(413, f"body over the limit of {self._limits.max_body_bytes} "
                                       "bytes"))
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        if url[:1] == b"/" and b"?" not in url and b"#" not in url:
            path, query = url.decode("latin-1"), ""  # the usual origin-form, no query
        else:
            try:
                parsed = httptools.parse_url(url)
                path = (parsed.path or b"/").decode("latin-1")
                query = (parsed.query or b"").decode("latin-1")
            except httptools.HttpParserInvalidURLError:
                if url != b"*":
                    self._raise(HttpError(400, "malformed request target"))
                path, query = "*", ""
        keep_alive = bool(self._parser.should_keep_alive())
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            target=url.decode("latin-1"),
            path=path,
            query=query,
            version=self._parser.get_http_version(),
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=keep_alive,
            client=self._client,
            server=self._server,
        )
        self._ready.append((request, keep_alive))
        self._in_message = False

    # ------------------------------------------------------------------ internals

    def _reset_message(self) -> None:
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._header_bytes = 0
        self._partial_header_bytes = 0
        self._headers_done = False

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._limits.max_header_bytes:
            self._raise(HttpError(431, "request header section too large"))

    def _raise(self, error: HttpError) -> None:
        # Raised inside a parser callback: httptools wraps it, receive_data unwraps it.
        self._error = error
        raise error

    def _respond_ready(self) -> None:
        ready, self._ready = self._ready, []
        for request, keep_alive in ready:
            if self.must_close:
                return
            try:
                response = self._handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.target)
                response = error_response(500, "the handler failed")
            close = response.close or not keep_alive
            self._out.append(serialize_response(
                response, head=request.method == "HEAD", close=close, version=request.version))
            self.requests_served += 1
            if close:
                self.must_close = True

    def _fail(self, error: HttpError) -> None:
        if self.must_close:
            return
        self._out.append(serialize_response(error_response(error.status, error.detail),
                                            head=False, close=True))
        self.must_close = True

    def _flush(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out = []
        return out


def _parser_detail(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"malformed request ({text})"

