"""The HTTP server live on loopback: keep-alive, close, pipelining, HEAD, files, bad input."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from http_test_client import TEST_LIMITS, Client

from tcplab.http.app import hello_handler
from tcplab.http.messages import Limits
from tcplab.http.server import ServerThread
from tcplab.kernel.sockets import list_sockets

GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"


def get(path: str) -> bytes:
    return GET % path.encode()


# ---------------------------------------------------------------- connection handling


def test_keep_alive_serves_several_requests_on_one_connection(client: Client) -> None:
    for _ in range(3):
        client.send(get("/notes.txt"))
        (reply,) = client.read()
        assert reply.status == 200 and reply.body == b"hello notes"
        assert "connection" not in reply.headers
    assert not client.closed_by_server


def test_connection_close_is_honoured_and_the_server_closes_first(
        client: Client, server: ServerThread) -> None:
    client.send(b"GET /notes.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    (reply,) = client.read()
    assert reply.headers["connection"] == "close"
    assert client.wait_closed(2)
    cport = client.sock.getsockname()[1]
    client.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        rows = [s for s in list_sockets(port=server.port).sockets
                if s.remote_port == cport and s.local_port == server.port]
        if rows and rows[0].state == "TIME-WAIT":
            break
        time.sleep(0.02)
    assert rows and rows[0].state == "TIME-WAIT"  # the server was the active closer


def test_http_1_0_closes_unless_keep_alive_is_asked(server: ServerThread) -> None:
    c = Client(server.port)
    try:
        c.send(b"GET /notes.txt HTTP/1.0\r\n\r\n")
        assert c.read()[0].status == 200
        assert c.wait_closed(2)
    finally:
        c.close()
    c = Client(server.port)
    try:
        c.send(b"GET /notes.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        (reply,) = c.read()
        assert reply.headers["connection"] == "keep-alive"
        c.send(b"GET /notes.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert c.read()[0].status == 200
    finally:
        c.close()


def test_pipelined_requests_are_answered_in_order(client: Client) -> None:
    client.send(get("/notes.txt") + get("/style.css") + get("/missing") + get("/app.js"))
    replies = client.read(4)
    assert [r.status for r in replies] == [200, 200, 404, 200]
    assert [r.body for r in replies if r.status == 200] == [b"hello notes", b"h1{}", b"1"]


def test_pipelined_requests_after_connection_close_are_dropped(client: Client) -> None:
    client.send(get("/notes.txt")
                + b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                + get("/app.js"))
    replies = client.read(3)
    assert [r.status for r in replies] == [200, 200]
    assert client.closed_by_server


def test_head_gives_headers_and_length_without_body(client: Client) -> None:
    client.send(b"HEAD /notes.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    replies = client.read(2, head=True)
    assert [r.status for r in replies] == [200, 200]
    assert replies[0].headers["content-length"] == "11"
    assert replies[0].headers["content-type"] == "text/plain; charset=utf-8"
    client.send(get("/notes.txt"))  # no stray body bytes came before this answer
    client._head_buf = b""
    (reply,) = client.read()
    assert reply.body == b"hello notes"


def test_request_split_into_single_bytes_is_served(client: Client) -> None:
    for byte in get("/notes.txt"):
        client.send(bytes([byte]))
    assert client.read()[0].body == b"hello notes"


def test_request_with_a_body_is_read_before_the_next(client: Client) -> None:
    client.send(b"POST /notes.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                + get("/notes.txt"))
    replies = client.read(2)
    assert [r.status for r in replies] == [405, 200]
    assert replies[0].headers["allow"] == "GET, HEAD"


def test_chunked_body_is_accepted(client: Client) -> None:
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n" + get("/notes.txt"))
    assert [r.status for r in client.read(2)] == [405, 200]


def test_expect_100_continue_gets_an_interim_answer(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")


def test_default_page_shows_the_clients_own_connection(server: ServerThread) -> None:
    with ServerThread(limits=TEST_LIMITS) as plain:
        c = Client(plain.port)
        try:
            c.send(get("/"))
            (page,) = c.read()
            cport = c.sock.getsockname()[1]
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert f"127.0.0.1:{cport}".encode() in page.body
            c.send(get("/__tcplab/?json"))
            facts = json.loads(c.read()[0].body)
            assert facts["client"] == f"127.0.0.1:{cport}"
            assert facts["server"] == f"127.0.0.1:{plain.port}"
            assert facts["kernel_socket"]["state"] == "ESTABLISHED"
        finally:
            c.close()


def test_stopping_the_server_closes_idle_connections_first(root: Path) -> None:
    srv = ServerThread(limits=Limits(keepalive_timeout=30), root=root).start()
    c = Client(srv.port)
    try:
        c.send(get("/notes.txt"))
        assert c.read()[0].status == 200
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.5
        assert c.wait_closed(1)  # the FIN came from the server
    finally:
        c.close()
        srv.stop()


# ---------------------------------------------------------------- static files


@pytest.mark.parametrize(("path", "ctype"), [
    ("/index.html", "text/html; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/data.json", "application/json"),
    ("/pic.png", "image/png"),
    ("/notes.txt", "text/plain; charset=utf-8"),
    ("/blob.unknownext", "application/octet-stream"),
])
def test_static_files_have_the_right_content_type(client: Client, path: str, ctype: str) -> None:
    client.send(get(path))
    (reply,) = client.read()
    assert reply.status == 200
    assert reply.headers["content-type"] == ctype


def test_directory_serves_its_index_and_redirects_without_slash(client: Client) -> None:
    client.send(get("/") + get("/sub") + get("/sub/"))
    root, redirect, listing = client.read(3)
    assert root.body == b"<h1>home</h1>"
    assert redirect.status == 301 and redirect.headers["location"] == "/sub/"
    assert listing.status == 200 and b"page.html" in listing.body


def test_percent_encoded_names_are_decoded(client: Client) -> None:
    client.send(get("/space%20name.txt") + get("/sub/page.html?x=1"))
    assert [r.body for r in client.read(2)] == [b"spaced", b"sub page"]


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/..%2fsecret.txt",
    "/sub/..%5c..%5csecret.txt",
    "/escape",
    "/notes.txt%00.png",
    "/%ff%fe",
])
def test_traversal_attempts_do_not_leave_the_root(client: Client, path: str) -> None:
    client.send(get(path))
    (reply,) = client.read()
    assert reply.status in (403, 404)
    assert b"TOP SECRET" not in reply.body


def test_missing_file_is_404_and_keeps_the_connection(client: Client) -> None:
    client.send(get("/nope.html") + get("/notes.txt"))
    assert [r.status for r in client.read(2)] == [404, 200]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\n\r\n",
])
def test_malformed_request_gets_400_and_close(client: Client, raw: bytes) -> None:
    client.send(raw)
    (reply,) = client.read()
    assert reply.status == 400
    assert reply.headers["connection"] == "close"
    assert client.wait_closed(2)


def test_valid_request_before_a_malformed_one_is_still_answered(client: Client) -> None:
    client.send(get("/notes.txt") + b"GARBAGE\r\n\r\n")
    assert [r.status for r in client.read(2)] == [200, 400]


def test_oversized_header_section_gets_431(client: Client) -> None:
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    (reply,) = client.read()
    assert reply.status == 431
    assert client.wait_closed(2)


def test_many_small_headers_over_the_limit_get_431(client: Client) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(600))
    client.send(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    assert client.read()[0].status == 431


def test_header_section_trickled_past_the_limit_gets_431(client: Client) -> None:
    client.send(b"GET / HTTP/1.1\r\nX-Big: ")
    for _ in range(6):
        client.send(b"a" * 1000)
        time.sleep(0.01)
    (reply,) = client.read()
    assert reply.status == 431


def test_body_over_the_limit_by_content_length_gets_413(client: Client) -> None:
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 20000\r\n\r\n")
    (reply,) = client.read()
    assert reply.status == 413
    assert client.wait_closed(2)


def test_chunked_body_over_the_limit_gets_413(client: Client) -> None:
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (4000, b"z" * 4000)
    for _ in range(3):
        try:
            client.send(chunk)
        except OSError:
            break
    (reply,) = client.read()
    assert reply.status == 413


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"compress", b"identity"])
def test_unsupported_transfer_coding_gets_501(client: Client, coding: bytes) -> None:
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding + b"\r\n\r\n")
    (reply,) = client.read()
    assert reply.status == 501
    assert client.wait_closed(2)


def test_idle_connection_is_closed_after_the_keepalive_timeout(client: Client) -> None:
    start = time.monotonic()
    assert client.wait_closed(3)
    assert 0.4 < time.monotonic() - start < 2.5


def test_slowloris_trickle_gets_408_and_close_after_the_request_timeout(client: Client) -> None:
    start = time.monotonic()
    client.send(b"GET / HTTP/1.1\r\n")
    closed = False
    for i in range(40):  # one header byte every 0.05 s: never finishes within 0.6 s
        try:
            client.send(b"X-Slow-%d: 1\r\n" % i)
        except OSError:
            closed = True
            break
        if client.wait_closed(0.05):
            closed = True
            break
    assert closed or client.wait_closed(2)
    assert time.monotonic() - start < 2.5
    assert [r.status for r in client.read(1, timeout=0.1)] == [408]


def test_connection_count_is_capped(root: Path) -> None:
    limits = Limits(max_connections=2, keepalive_timeout=5, request_timeout=5)
    with ServerThread(limits=limits, root=root) as srv:
        first, second = Client(srv.port), Client(srv.port)
        try:
            for c in (first, second):
                c.send(get("/notes.txt"))
                assert c.read()[0].status == 200
            third = Client(srv.port)
            try:
                (reply,) = third.read()
                assert reply.status == 503
                assert third.wait_closed(2)
            finally:
                third.close()
            first.close()
            time.sleep(0.1)
            fourth = Client(srv.port)
            try:
                fourth.send(get("/notes.txt"))
                assert fourth.read()[0].status == 200
            finally:
                fourth.close()
        finally:
            first.close()
            second.close()
        assert srv.state.rejected_connections == 1


def test_custom_handler_runs_on_the_same_server() -> None:
    with ServerThread(handler=hello_handler) as srv:
        c = Client(srv.port)
        try:
            c.send(get("/anything"))
            assert c.read()[0].body == b"Hello, world!"
        finally:
            c.close()
