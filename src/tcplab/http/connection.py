"""One HTTP/1.1 server connection, sans I/O: bytes in, responses out one at a time.

Theory of operation
-------------------
:class:`HttpConnection` owns an ``httptools`` (llhttp) request parser but does not hand it
the client's bytes blindly. Received bytes are kept in an input buffer and given to the
parser one message at a time, in pieces cut where the message's parts end:

1. the request line, up to its LF, is checked here first against RFC 9112 section 3
   (``method SP request-target SP HTTP/x.y CRLF``: single spaces, a version, visible
   characters only), because llhttp accepts double spaces and HTTP/0.9 lines;
2. the header section, up to the first empty line; then the Host rules of RFC 9112
   section 3.2 (exactly one Host in HTTP/1.1, never two) are checked;
3. the body: exactly Content-Length bytes, or, when chunked, line by line (a chunked
   message can only end at an LF).

So the parser never runs past the end of the current message, and the next request is
parsed only while fewer than :attr:`Limits.max_pipelined` requests wait for their answers:
a client that pipelines 100 requests and reads nothing costs the server the bytes of those
requests, not 100 responses. Responses are produced one at a time by :meth:`send_next`,
which runs the handler for the oldest waiting request, and a body that comes from a file
is read one 256 KiB piece per call; the caller (the transport layer) calls it only while
its transport accepts more (output backpressure). So one connection holds at most one
piece of an answer in memory, however big the files it asks for.

Errors: a malformed request line or header (400), a refused one (413, 414, 431, 501) or a
response that asks for ``Connection: close`` ends the connection: the error is answered
after the answers of the requests before it, no request after it is read, and
:attr:`finished` turns true once everything has been handed out.

Time belongs to the caller (:mod:`tcplab.http.protocol`): :attr:`idle` says whether a
request is half-received, and :meth:`timeout` gives the 408 to send when the caller's
timer runs out. The transport is never touched here, which is what lets the same code run
on the kernel's TCP and on tcplab's own.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from typing import BinaryIO

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
_FILE_CHUNK = 256 * 1024  # a file body is read and sent in pieces of this size

# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version CRLF, with
# method = token (RFC 9110 section 5.6.2) and the target visible ASCII (as h11 reads it).
_REQUEST_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r\n")
# The same for the versions served as they are (the fast path: one match, no groups).
_REQUEST_LINE_1X = re.compile(
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/1\.[01]\r\n")
# RFC 9110 section 7.2: Host = uri-host [ ":" port ]; uri-host is an IP literal in
# brackets or a reg-name (unreserved, pct-encoded, sub-delims); it may be empty.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")


class HttpConnection:
    """The HTTP side of one connection (RFC 9112), fed with bytes by a transport layer."""

    def __init__(self, handler: Handler, limits: Limits,
                 client: tuple[str, int], server: tuple[str, int]) -> None:
        self._handler = handler
        self._limits = limits
        self._client = client
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._max_buffered = limits.max_header_bytes + limits.max_body_bytes
        self._inbuf = b""  # received, not yet given to the parser (from _pos on)
        self._pos = 0
        self._ready: deque[Request] = deque()  # parsed, waiting for their answers
        self._error: HttpError | None = None  # answered once the ready ones are
        self._continue_owed = False  # "100 Continue" to send once the ready ones are answered
        self._file: BinaryIO | None = None  # the body being sent from a file
        self._file_left = 0
        self._stopped = False  # no further request will be read (error or close)
        self._eof = False  # the client sent its FIN
        self._starved = True  # the last parse stopped for want of bytes, not for room
        self.requests_received = 0
        #: no more requests will be read (the client's FIN, an error, a close): from then
        #: on the caller watches :attr:`finished`
        self.input_ended = False
        self.requests_served = 0
        self._in_message = False
        # the message being parsed
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._content_length: int | None = None
        self._head_bytes = 0
        self._head_tail = b""  # the last bytes fed in the head, to find its end across feeds
        self._headers_done = False
        self._version = "1.1"
        self._error_in_callback: HttpError | None = None

    # ------------------------------------------------------------------ public

    @property
    def idle(self) -> bool:
        """True between requests (no request partly received)."""
        return not self._in_message and self._pos == len(self._inbuf)

    @property
    def finished(self) -> bool:
        """Nothing more will be sent: the caller closes the connection."""
        if self._ready or self._error is not None or self._continue_owed \
                or self._file is not None:
            return False
        return self._stopped or (self._eof and (self._starved
                                                or self._pos == len(self._inbuf)))

    @property
    def waiting(self) -> int:
        """Requests parsed and waiting for their answers."""
        return len(self._ready)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; parse as many requests as the pipelining bound allows."""
        if self._stopped or self._eof or not data:
            return
        if self._pos == len(self._inbuf):
            self._inbuf, self._pos = data, 0
        else:
            self._inbuf = self._inbuf[self._pos:] + data
            self._pos = 0
        if len(self._inbuf) > self._max_buffered:
            # Only a transport that cannot pause reading gets here: the client keeps
            # sending without reading the answers.
            self._fail(HttpError(429, "too many requests sent ahead of their answers"))
            return
        self._parse()

    def receive_eof(self) -> None:
        """The client closed its sending side: what it sent is still answered."""
        self._eof = True
        self.input_ended = True
        if self._in_message:
            # A request cut short by the FIN can never complete.
            self._stopped = True
            self._continue_owed = False
        self._parse()

    def send_next(self) -> bytes:
        """The bytes of the next answer, or of its next piece (b"" when none is ready yet).

        Call it while the transport has room: each call builds at most one answer's head
        and body, or reads one piece of a file body.
        """
        if self._file is not None:
            return self._file_piece()
        if self._ready:
            request = self._ready.popleft()
            out = self._respond(request)
            if self._pos < len(self._inbuf):
                self._parse()
            return out
        if self._error is not None:
            error, self._error = self._error, None
            return serialize_response(error_response(error.status, error.detail),
                                      head=False, close=True)
        if self._continue_owed:
            self._continue_owed = False
            return _CONTINUE
        return b""

    def close(self) -> None:
        """The transport is gone: release what an unfinished answer holds."""
        self._stop()
        self._ready.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def timeout(self) -> bytes:
        """The caller's timer ran out: the 408 to send if a request was under way, else b""."""
        if self._stopped:
            return b""
        partial = not self.idle
        self._stop()
        if partial:
            return serialize_response(error_response(408, "request not received in time"),
                                      head=False, close=True)
        return b""

    # ------------------------------------------------------------------ feeding the parser

    def _parse(self) -> None:
        """Give the parser whole parts of messages while there is room for their answers."""
        limit = self._limits.max_pipelined
        while not self._stopped and len(self._ready) < limit:
            buf, pos = self._inbuf, self._pos
            if pos == len(buf):
                self._starved = True
                return
            if not self._in_message:
                end = self._message_start(buf, pos)
                pos = self._pos  # after empty lines, or after a rewritten request line
            elif not self._headers_done:
                end = self._head_end(buf, pos)
            else:
                end = self._body_end(buf, pos)
            if end is None:  # an error was recorded, or the part is not complete yet
                self._starved = not self._stopped
                return
            if end == pos:
                continue
            in_head = not self._in_message or not self._headers_done
            self._pos = end
            if self._feed(buf if pos == 0 and end == len(buf) else memoryview(buf)[pos:end]) \
                    and in_head and self._in_message and not self._headers_done:
                # The head goes on in the next bytes: count it, keep its end for the search.
                self._head_bytes += end - pos
                self._head_tail = (self._head_tail + buf[max(pos, end - 3):end])[-3:]
        self._starved = False

    def _message_start(self, buf: bytes, pos: int) -> int | None:
        """Check the request line; where the first piece of the message ends (None: wait)."""
        if buf[pos] in b"\r\n":
            # RFC 9112 section 2.2: empty lines before a request line are ignored.
            while buf.startswith(b"\r\n", pos) or buf.startswith(b"\n", pos):
                pos += 2 if buf[pos] == 0x0D else 1
            self._pos = pos
            if pos == len(buf):
                return None
        max_head = self._limits.max_header_bytes
        nl = buf.find(b"\n", pos, pos + max_head)
        if nl < 0:
            if len(buf) - pos >= max_head:
                self._fail(HttpError(414, f"request line longer than {max_head} bytes"))
            return None
        if _REQUEST_LINE_1X.fullmatch(buf, pos, nl + 1) is None:
            return self._unusual_request_line(buf, pos, nl)
        # The request line and, usually, the whole header section in one piece.
        k = buf.find(b"\r\n\r\n", nl - 1, pos + max_head + 1)
        end = k + 4 if k >= 0 else len(buf)
        if end - pos > max_head:
            self._fail(HttpError(431, "request header section too large"))
            return None
        return end

    def _unusual_request_line(self, buf: bytes, pos: int, nl: int) -> int | None:
        """A request line that is not plain HTTP/1.0 or 1.1: refused, or read as 1.1."""
        m = _REQUEST_LINE.fullmatch(buf, pos, nl + 1)
        if m is None:
            self._fail(HttpError(400, _request_line_problem(buf[pos:nl + 1])))
            return None
        major, minor = m.group(3), m.group(4)
        if major != b"1":
            self._fail(HttpError(400, f"HTTP/{major.decode()}.{minor.decode()} is not "
                                      "served here (HTTP/1.0 and HTTP/1.1 are)"))
            return None
        # RFC 9112 section 2.3: a higher minor version is read as the highest one known.
        line = m.group(1) + b" " + m.group(2) + b" HTTP/1.1\r\n"
        self._pos = nl + 1
        if self._feed(line):
            self._head_bytes = nl + 1 - pos
            self._head_tail = line[-3:]
        return nl + 1

    def _head_end(self, buf: bytes, pos: int) -> int | None:
        # The header section ends at its first empty line, maybe split across two feeds.
        joined = self._head_tail + buf[pos:pos + 3]
        k = joined.find(b"\r\n\r\n")
        if k >= 0:
            end = pos + k + 4 - len(self._head_tail)
        else:
            k = buf.find(b"\r\n\r\n", pos)
            end = k + 4 if k >= 0 else len(buf)
        if self._head_bytes + (end - pos) > self._limits.max_header_bytes:
            self._fail(HttpError(431, "request header section too large"))
            return None
        return end

    def _body_end(self, buf: bytes, pos: int) -> int:
        if self._content_length is not None:
            return min(len(buf), pos + self._content_length - self._body_size)
        nl = buf.find(b"\n", pos)  # chunked: the message can only end at an LF
        return nl + 1 if nl >= 0 else len(buf)

    def _feed(self, piece: bytes | memoryview) -> bool:
        """Give the parser a piece; False if it refused it (the error is recorded)."""
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            # Upgrades and CONNECT are not served.
            self._fail(HttpError(501, "protocol upgrade and CONNECT are not supported"))
            return False
        except httptools.HttpParserError as exc:
            self._fail(self._error_in_callback or HttpError(400, _parser_detail(exc)))
            return False
        return True

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._reset_message()
        self._in_message = True
        self.requests_received += 1

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        length: int | None = None
        hosts = 0
        host_ok = True
        chunked = False
        for name, value in self._headers:
            if name == "transfer-encoding":
                codings = [c.strip().lower() for c in value.split(",") if c.strip()]
                if any(c != "chunked" for c in codings):
                    self._raise(HttpError(501, f"transfer coding {value!r} not supported"))
                chunked = True
            elif name == "content-length":
                try:
                    value_length = int(value)
                except ValueError:
                    self._raise(HttpError(400, "bad Content-Length"))
                if value_length < 0 or (length is not None and length != value_length):
                    self._raise(HttpError(400, "bad Content-Length"))
                length = value_length
            elif name == "host":
                hosts += 1
                host_ok = host_ok and _HOST.fullmatch(value) is not None
        # RFC 9112 section 3.2: 400 for an HTTP/1.1 request without Host, for any request
        # with more than one, and for a Host with an invalid value.
        version = self._version = self._parser.get_http_version()
        if hosts > 1:
            self._raise(HttpError(400, "more than one Host header"))
        if hosts == 0 and version == "1.1":
            self._raise(HttpError(400, "HTTP/1.1 request without a Host header"))
        if chunked and version == "1.0":
            # RFC 9112 section 6.1: an HTTP/1.0 peer cannot have meant it (smuggling).
            self._raise(HttpError(400, "Transfer-Encoding in an HTTP/1.0 request"))
        if not host_ok:
            self._raise(HttpError(400, "invalid Host header"))
        if length is not None and length > self._limits.max_body_bytes:
            self._raise(HttpError(413, f"body of {length} bytes is over the limit of "
                                       f"{self._limits.max_body_bytes}"))
        self._content_length = None if chunked else length
        for name, value in self._headers:
            if name == "expect" and value.lower() == "100-continue":
                self._continue_owed = True

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
        self._ready.append(Request(
            method=self._parser.get_method().decode("ascii"),
            target=url.decode("latin-1"),
            path=path,
            query=query,
            version=self._version,
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=keep_alive,
            client=self._client,
            server=self._server,
        ))
        self._in_message = False
        self._continue_owed = False  # the body came without waiting for it

    # ------------------------------------------------------------------ internals

    def _reset_message(self) -> None:
        self._url = []
        self._headers = []
        self._body = []
        self._body_size = 0
        self._content_length = None
        self._head_bytes = 0
        self._head_tail = b""
        self._headers_done = False
        self._error_in_callback = None

    def _raise(self, error: HttpError) -> None:
        # Raised inside a parser callback: httptools wraps it, _feed unwraps it.
        self._error_in_callback = error
        raise error

    def _respond(self, request: Request) -> bytes:
        try:
            response = self._handler(request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.target)
            response = error_response(500, "the handler failed")
        close = response.close or not request.keep_alive
        head = request.method == "HEAD"
        out = serialize_response(response, head=head, close=close, version=request.version)
        self.requests_served += 1
        if response.file is not None:
            if head or response.status in (204, 304) or response.file_size <= 0:
                response.file.close()
            else:
                self._file, self._file_left = response.file, response.file_size
        if close:
            # Nothing after this answer: requests pipelined behind it are dropped.
            self._stop()
            self._ready.clear()
            self._error = None
        return out

    def _file_piece(self) -> bytes:
        assert self._file is not None
        try:
            piece = self._file.read(min(_FILE_CHUNK, self._file_left))
        except OSError:
            piece = b""
        self._file_left -= len(piece)
        if not piece or self._file_left <= 0:
            self._file.close()
            self._file = None
            if self._file_left > 0:
                # The file shrank under us: the promised length cannot be kept, so the
                # connection ends here (the client sees a short body, then the close).
                log.warning("file body ended %d bytes short", self._file_left)
                self.close()
        return piece

    def _stop(self) -> None:
        self._stopped = True
        self.input_ended = True
        self._continue_owed = False
        self._inbuf, self._pos = b"", 0

    def _fail(self, error: HttpError) -> None:
        if self._stopped:
            return
        self._stop()
        self._error = error


def _request_line_problem(line: bytes) -> str:
    """Why a request line is refused, in words."""
    words = line.split()
    if line.endswith(b"\n") and not line.endswith(b"\r\n"):
        return "request line must end with CRLF"
    if len(words) == 2:
        return "request line without an HTTP version (HTTP/0.9 is not served)"
    if len(words) == 3 and (b"  " in line or b"\t" in line or line[:1].isspace()
                            or line[-3:-2].isspace()):
        return "request line parts must be separated by single spaces"
    if len(words) == 3 and not words[2].startswith(b"HTTP/"):
        return "malformed HTTP version in the request line"
    return "malformed request line"


def _parser_detail(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"malformed request ({text})"
