"""Hostile clients against the live server (issue 19, points 3 and 6).

Each test sends what an attacker or a broken client sends and checks the answer on the
wire: RFC 9112's request-line and Host rules (as h11 applies them), path lookups that fail
in the file system, redirects that must stay on this host, and a client that pipelines
big downloads without reading them.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from http_test_client import Client

from tcplab.http.messages import Limits, Request, Response
from tcplab.http.server import ServerThread

GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"


def get(path: str) -> bytes:
    return GET % path.encode()


# ---------------------------------------------------------------- RFC 9112 request rules


@pytest.mark.parametrize(("raw", "why"), [
    (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host headers"),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", "two Host headers, even in 1.0"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host value"),
    (b"GET /\r\n\r\n", "HTTP/0.9 request line"),
    (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", "double space before the target"),
    (b"GET /  HTTP/1.1\r\nHost: t\r\n\r\n", "double space before the version"),
    (b"GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n", "tab as separator"),
    (b"GET / HTTP/1.1\nHost: t\n\n", "bare LF"),
    (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", "raw non-ASCII in the target"),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", "HTTP/2.0 in HTTP/1 syntax"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding in HTTP/1.0 (RFC 9112 section 6.1)"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     "two different Content-Lengths"),
])
def test_request_breaking_rfc9112_gets_400_and_close(client: Client, raw: bytes,
                                                      why: str) -> None:
    client.send(raw)
    (reply,) = client.read()
    assert reply.status == 400, why
    assert reply.headers["connection"] == "close"
    assert client.wait_closed(2)


def test_http_1_0_without_host_is_served(server: ServerThread) -> None:
    c = Client(server.port)
    try:
        c.send(b"GET /notes.txt HTTP/1.0\r\n\r\n")
        assert c.read()[0].body == b"hello notes"
    finally:
        c.close()


def test_higher_minor_version_is_served_as_http_1_1(client: Client) -> None:
    client.send(b"GET /notes.txt HTTP/1.7\r\nHost: t\r\n\r\n")  # RFC 9112 section 2.3
    (reply,) = client.read()
    assert reply.status == 200 and reply.body == b"hello notes"


def test_empty_lines_before_a_request_are_ignored(client: Client) -> None:
    client.send(b"\r\n\r\n" + get("/notes.txt"))  # RFC 9112 section 2.2
    assert client.read()[0].status == 200


def test_request_line_over_the_limit_gets_414(client: Client) -> None:
    client.send(b"GET /" + b"a" * 5000)  # no end of line yet, already over the limit
    (reply,) = client.read()
    assert reply.status == 414
    assert client.wait_closed(2)


# ---------------------------------------------------------------- paths


def test_path_segment_longer_than_name_max_is_404_without_a_traceback(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    client.send(get("/" + "a" * 300) + get("/sub/" + "b" * 300 + "/x") + get("/notes.txt"))
    replies = client.read(3)
    assert [r.status for r in replies] == [404, 404, 200]  # and the connection lives on
    assert "Traceback" not in caplog.text and "handler failed" not in caplog.text


def test_whole_path_longer_than_path_max_is_404(client: Client) -> None:
    client.send(get("/" + "/".join(["c" * 200] * 19)))  # 3.8 kB, 4 kB header limit
    assert client.read()[0].status == 404


def test_double_slash_directory_redirects_within_this_host(client: Client) -> None:
    client.send(get("//sub") + get("//sub?x=1") + get("/sub//"))
    first, second, third = client.read(3)
    assert first.status == 301 and first.headers["location"] == "/sub/"  # not "//sub/"
    assert second.headers["location"] == "/sub/?x=1"
    assert third.status == 200  # already a directory path: the listing


def test_file_with_a_trailing_slash_is_404(client: Client) -> None:
    client.send(get("/notes.txt/") + get("/notes.txt"))
    assert [r.status for r in client.read(2)] == [404, 200]


def test_redirect_keeps_percent_encoding(root: Path, client: Client) -> None:
    (root / "a dir").mkdir()
    client.send(get("/a%20dir"))
    (reply,) = client.read()
    assert reply.status == 301 and reply.headers["location"] == "/a%20dir/"


# ---------------------------------------------------------------- pipelining amplification


class BigHandler:
    """Answers every GET with 1 MB and counts the answers it had to build."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: Request) -> Response:
        self.calls += 1
        return Response(200, [("Content-Type", "application/octet-stream")], b"z" * 1_000_000)


def _small_receive_buffer() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    return s


def test_pipelined_big_downloads_unread_build_few_answers() -> None:
    handler = BigHandler()
    with ServerThread(handler=handler, limits=Limits(send_timeout=30)) as srv:
        s = _small_receive_buffer()
        try:
            s.connect(("127.0.0.1", srv.port))
            s.sendall(get("/big") * 64)  # 64 MB asked for, nothing read
            time.sleep(0.5)
            built_while_unread = handler.calls
            # Before the fix every answer was built at once: 64 calls, 64 MB buffered.
            assert built_while_unread <= 8
            s.settimeout(10)
            got = 0
            while got < 64 * 1_000_000:
                data = s.recv(1 << 20)
                assert data
                got += len(data)
            assert handler.calls == 64  # and every one of them was answered in the end
        finally:
            s.close()


def test_client_that_never_reads_is_dropped_after_send_timeout() -> None:
    with ServerThread(handler=BigHandler(), limits=Limits(send_timeout=0.3)) as srv:
        s = _small_receive_buffer()
        try:
            s.connect(("127.0.0.1", srv.port))
            s.sendall(get("/big") * 16)
            deadline = time.monotonic() + 5
            while not srv.state.connections and time.monotonic() < deadline:
                time.sleep(0.01)
            assert srv.state.connections  # accepted, answering, its answers unread
            start = time.monotonic()
            while srv.state.connections and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not srv.state.connections  # aborted: its slot is free again
            assert time.monotonic() - start > 0.2  # after send_timeout, not at once
        finally:
            s.close()


def test_half_closed_client_gets_every_pipelined_answer(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(get("/notes.txt") * 20)
        s.shutdown(socket.SHUT_WR)  # client -> FIN right after its requests
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 20 and data.endswith(b"hello notes")


def test_big_file_is_served_whole_in_pieces(root: Path, client: Client) -> None:
    data = bytes(range(256)) * 3000  # 768 kB: sent from the open file, piece by piece
    (root / "big.bin").write_bytes(data)
    client.send(get("/big.bin") + get("/notes.txt"))
    big, notes = client.read(2)
    assert big.status == 200 and big.body == data
    assert big.headers["content-length"] == str(len(data))
    assert notes.body == b"hello notes"
