"""HttpConnection and HttpProtocol without sockets: pipelining bounds and output backpressure.

The attack (issue 19, point 3): one client pipelines 100 GETs of a big file and reads
nothing. The server must not build 100 answers: it parses at most ``max_pipelined``
requests ahead, makes one answer at a time, and makes the next only when the transport
has room for it.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, BinaryIO

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.http.connection import HttpConnection
from tcplab.http.messages import Limits, Request, Response
from tcplab.http.protocol import HttpProtocol, ServerState

GET = b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n"
BODY = b"x" * 100_000


class CountingHandler:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: Request) -> Response:
        self.calls += 1
        return Response(200, [("Content-Type", "application/octet-stream")], BODY)


def connection(handler: CountingHandler, **limits: Any) -> HttpConnection:
    return HttpConnection(handler, Limits(**limits), ("192.0.2.1", 40000), ("192.0.2.2", 80))


def test_pipelined_requests_are_parsed_only_up_to_the_bound() -> None:
    handler = CountingHandler()
    conn = connection(handler, max_pipelined=16)
    conn.receive_data(GET * 100)  # client -> server: 100 GETs at once, then reads nothing
    assert conn.waiting == 16  # parsed ahead of their answers; 84 still unread bytes
    assert handler.calls == 0  # no answer is built before the transport asks for one
    answers = []
    while out := conn.send_next():
        answers.append(out)
    assert len(answers) == 100 and handler.calls == 100  # each answer built when asked
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and a.endswith(BODY) for a in answers)
    assert conn.idle and not conn.finished


def test_each_answer_is_built_only_when_asked_for() -> None:
    handler = CountingHandler()
    conn = connection(handler)
    conn.receive_data(GET * 5)
    conn.send_next()
    conn.send_next()
    assert handler.calls == 2 and conn.waiting == 3


def test_error_after_pipelined_requests_comes_after_their_answers() -> None:
    conn = connection(CountingHandler())
    conn.receive_data(GET + GET + b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
    statuses = []
    while out := conn.send_next():
        statuses.append(int(out.split(b" ", 2)[1]))
    assert statuses == [200, 200, 400]  # the GET after the bad line is never read
    assert conn.finished


def test_eof_after_pipelined_requests_still_answers_them_all() -> None:
    conn = connection(CountingHandler(), max_pipelined=2)
    conn.receive_data(GET * 5)
    conn.receive_eof()  # client -> FIN; the three beyond the bound are still unread
    assert not conn.finished
    count = 0
    while conn.send_next():
        count += 1
    assert count == 5 and conn.finished


def test_request_cut_short_by_eof_finishes_the_connection() -> None:
    conn = connection(CountingHandler())
    conn.receive_data(GET + b"GET /half HTTP/1.1\r\nHo")
    conn.receive_eof()
    assert conn.send_next().startswith(b"HTTP/1.1 200")
    assert conn.send_next() == b""
    assert conn.finished


def test_100_continue_comes_after_the_answers_before_it() -> None:
    conn = connection(CountingHandler())
    conn.receive_data(GET + b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                            b"Expect: 100-continue\r\n\r\n")
    assert conn.send_next().startswith(b"HTTP/1.1 200")
    assert conn.send_next() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.receive_data(b"abc")
    assert conn.send_next().startswith(b"HTTP/1.1 200")


def test_body_then_next_request_in_one_feed_are_split_at_content_length() -> None:
    seen: list[tuple[str, bytes]] = []

    def handler(request: Request) -> Response:
        seen.append((request.method, request.body))
        return Response(200, [], b"ok")

    conn = HttpConnection(handler, Limits(), ("a", 1), ("b", 2))
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" + GET
                      + b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n0\r\n\r\n" + GET)
    while conn.send_next():
        pass
    assert seen == [("POST", b"hello"), ("GET", b""), ("POST", b"abc"), ("GET", b"")]


# ---------------------------------------------------------------- the protocol's backpressure


class PausingTransport:
    """A transport with a write buffer: over HIGH it calls pause_writing, like asyncio's."""

    HIGH = 64 * 1024

    def __init__(self) -> None:
        self.protocol: HttpProtocol | None = None
        self.buffer = 0
        self.paused = False
        self.reading = True
        self.closed = False
        self.aborted = False
        self.peak = 0

    def write(self, data: bytes) -> None:
        self.buffer += len(data)
        self.peak = max(self.peak, self.buffer)
        if self.buffer > self.HIGH and not self.paused:
            self.paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()

    def drain(self) -> None:
        """The client reads everything that is buffered."""
        self.buffer = 0
        if self.paused:
            self.paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 40000), "sockname": ("192.0.2.2", 80)}.get(name)


def test_protocol_builds_the_next_answer_only_when_the_transport_drained() -> None:
    async def run() -> None:
        handler = CountingHandler()
        proto = HttpProtocol(ServerState(handler, Limits()))
        transport = PausingTransport()
        transport.protocol = proto
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(GET * 100)  # client -> server: 100 GETs, reads nothing
        assert handler.calls == 1  # one 100 kB answer fills the buffer past its mark
        assert transport.paused and not transport.reading  # and its requests are not read
        for expected in range(2, 6):
            transport.drain()  # client reads: one more answer, no more
            assert handler.calls == expected
        assert transport.peak < len(BODY) + 1000
        while handler.calls < 100:
            transport.drain()
        transport.drain()
        assert transport.reading and not transport.closed  # keep-alive, all answered

    asyncio.run(run())


def test_protocol_aborts_a_client_that_never_reads_after_send_timeout() -> None:
    async def run() -> None:
        proto = HttpProtocol(ServerState(CountingHandler(), Limits(send_timeout=0.05)))
        transport = PausingTransport()
        transport.protocol = proto
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(GET * 3)
        assert transport.paused
        await asyncio.sleep(0.15)
        assert transport.aborted  # not a close: a close would wait for it forever

    asyncio.run(run())


def test_protocol_closing_with_unread_answers_is_aborted_after_send_timeout() -> None:
    async def run() -> None:
        proto = HttpProtocol(ServerState(CountingHandler(), Limits(send_timeout=0.05)))
        transport = PausingTransport()
        transport.protocol = proto
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert transport.closed and not transport.aborted  # the answer is still buffered
        await asyncio.sleep(0.15)
        assert transport.aborted

    asyncio.run(run())


# ---------------------------------------------------------------- any chunking, same answers

STREAM = (GET
          + b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
          + b"\r\n"  # an empty line between requests is ignored (RFC 9112 section 2.2)
          + b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\n0\r\n\r\n"
          + b"GET /c HTTP/1.1\r\nHost: t\r\nX-Long: " + b"v" * 300 + b"\r\n\r\n"
          + b"GET  /bad HTTP/1.1\r\nHost: t\r\n\r\n"  # double space: 400, and nothing after
          + GET)


def _answers(chunks: list[bytes]) -> list[tuple[int, bytes]]:
    def handler(request: Request) -> Response:
        return Response(200, [], request.method.encode() + b" " + request.path.encode()
                        + b" " + request.body)

    conn = HttpConnection(handler, Limits(max_pipelined=2), ("a", 1), ("b", 2))
    out = b""
    for chunk in chunks:
        conn.receive_data(chunk)
        while piece := conn.send_next():
            out += piece
    answers = []
    for part in out.split(b"HTTP/1.1 ")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        answers.append((int(head[:3]), body))
    return answers


WHOLE = [(200, b"GET /big "), (200, b"POST /a body"), (200, b"POST /b hi"),
         (200, b"GET /c "), (400, b"400 Bad Request: request line parts must be separated "
                                  b"by single spaces\n")]


def test_the_stream_at_once_gives_every_answer_then_the_400() -> None:
    assert _answers([STREAM]) == WHOLE


def test_the_stream_byte_by_byte_gives_the_same_answers() -> None:
    assert _answers([STREAM[i:i + 1] for i in range(len(STREAM))]) == WHOLE


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
@settings(max_examples=150, deadline=None)
def test_any_chunking_gives_the_same_answers(cuts: list[int]) -> None:
    points = [0, *sorted(set(cuts)), len(STREAM)]
    assert _answers([STREAM[a:b] for a, b in itertools.pairwise(points)]) == WHOLE


# ---------------------------------------------------------------- file bodies, piece by piece


def test_file_body_is_read_one_piece_per_send(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000  # 1 MB
    (tmp_path / "f.bin").write_bytes(data)
    opened: list[BinaryIO] = []

    def handler(request: Request) -> Response:
        fp = (tmp_path / "f.bin").open("rb")
        opened.append(fp)
        return Response(200, [], file=fp, file_size=len(data))

    conn = HttpConnection(handler, Limits(), ("a", 1), ("b", 2))
    conn.receive_data(GET * 2)
    head = conn.send_next()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1024000\r\n" in head
    assert head.endswith(b"\r\n\r\n")  # the head alone: no byte of the file read yet
    pieces = []
    while len(opened) == 1:
        piece = conn.send_next()
        assert 0 < len(piece) <= 256 * 1024
        pieces.append(piece)
        if sum(map(len, pieces)) == len(data):
            assert opened[0].closed  # closed right after its last piece
            break
    assert b"".join(pieces) == data
    assert conn.send_next().startswith(b"HTTP/1.1 200 OK\r\n")  # then the second answer
    conn.close()  # the transport is gone mid-body: the file is released
    assert opened[1].closed


def test_file_that_shrinks_while_sent_ends_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 300_000)

    def handler(request: Request) -> Response:
        return Response(200, [], file=path.open("rb"), file_size=600_000)  # it was bigger

    conn = HttpConnection(handler, Limits(), ("a", 1), ("b", 2))
    conn.receive_data(GET * 2)
    sent = b""
    while piece := conn.send_next():
        sent += piece
    assert sent.count(b"HTTP/1.1 200") == 1 and sent.endswith(b"x" * 1000)
    assert conn.finished  # the promised length cannot be kept: close, nothing after


# ---------------------------------------------------------------- fuzz: never raise, stay bounded

_PIECES = [GET, b"GET ", b"/ ", b"HTTP/1.1", b"\r\n", b"\r\n\r\n", b"Host: t\r\n", b"  ",
           b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n",
           b"Expect: 100-continue\r\n", b"POST /x HTTP/1.0\r\n", b"\x00\xff", b"abc",
           b"Connection: close\r\n", b"GET /\r\n", b"5\r\nhello\r\n"]


@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=40)), max_size=40),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_bytes_never_raise_and_stay_within_the_bounds(chunks: list[bytes],
                                                           eof: bool) -> None:
    limits = Limits(max_header_bytes=256, max_body_bytes=64, max_pipelined=3)
    conn = HttpConnection(CountingHandler(), limits, ("a", 1), ("b", 2))
    for chunk in chunks:
        conn.receive_data(chunk)
        assert conn.waiting <= limits.max_pipelined
        conn.send_next()  # the client reads one answer now and then
    if eof:
        conn.receive_eof()
    for _ in range(100):
        if not conn.send_next():
            break
    else:
        raise AssertionError("answers without end")
    assert conn.waiting == 0
