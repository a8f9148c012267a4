"""The socket inspector against sockets these tests create themselves on loopback."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from tcplab.cli.sockets import sockets as sockets_command
from tcplab.kernel.inspect import changed_keys, format_time_left, row_key
from tcplab.kernel.sockets import (
    KernelSocket,
    count_by_state,
    list_sockets,
    lookup_socket,
    parse_proc_net_tcp,
    parse_state,
)

SOURCES = ["netlink", "proc"]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    # bind(0) may pick a port that still has TIME-WAIT sockets (say, from a benchmark):
    # take one that no socket uses, so that the tests see only their own sockets.
    for _ in range(50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        if not list_sockets(port=_port(sock)).sockets:
            break
        sock.close()
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def _server_side_time_wait(listener: socket.socket) -> tuple[int, int]:
    """Make the server end of one connection go to TIME-WAIT: the server closes first."""
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)
    server, _ = listener.accept()
    client_port = client.getsockname()[1]
    server.close()  # FIN from the server: it is the active closer
    assert client.recv(1) == b""  # the client sees EOF...
    client.close()  # ...and closes too, so the server side moves on to TIME-WAIT
    return _port(listener), client_port


def _wait_for(port: int, state: str, source: str = "netlink") -> list[KernelSocket]:
    deadline = time.monotonic() + 3
    while True:
        found = [s for s in list_sockets(port=port, source=source).sockets if s.state == state]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


@pytest.mark.parametrize("source", SOURCES)
def test_listening_socket_is_listed_with_its_owner(listener: socket.socket, source: str) -> None:
    port = _port(listener)
    rows = [s for s in list_sockets(port=port, source=source).sockets if s.state == "LISTEN"]
    assert len(rows) == 1
    row = rows[0]
    assert (row.local_addr, row.local_port, row.family) == ("127.0.0.1", port, 4)
    assert row.uid == os.getuid()
    assert row.inode == os.fstat(listener.fileno()).st_ino
    from tcplab.kernel.sockets import find_owners

    owners = find_owners([row.inode])[row.inode]
    assert [(p.pid, p.fd) for p in owners] == [(os.getpid(), listener.fileno())]


@pytest.mark.parametrize("source", SOURCES)
def test_established_pair_shows_unread_bytes_in_recv_queue(listener: socket.socket,
                                                           source: str) -> None:
    port = _port(listener)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        server, _ = listener.accept()
        with server:
            client.sendall(b"x" * 1000)
            deadline = time.monotonic() + 3
            while True:
                rows = {(s.local_port, s.remote_port): s
                        for s in list_sockets(port=port, source=source).sockets
                        if s.state == "ESTABLISHED"}
                server_row = rows.get((port, client.getsockname()[1]))
                if (server_row and server_row.recv_q == 1000) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            assert server_row is not None and server_row.recv_q == 1000
            client_row = rows[(client.getsockname()[1], port)]
            assert client_row.remote_port == port


@pytest.mark.parametrize("source", SOURCES)
def test_time_wait_socket_has_a_counting_down_timer(listener: socket.socket, source: str) -> None:
    port, client_port = _server_side_time_wait(listener)
    rows = [s for s in _wait_for(port, "TIME-WAIT", source) if s.remote_port == client_port]
    assert len(rows) == 1
    first = rows[0]
    assert first.local_port == port  # the server side, as in the article's practice
    assert first.timer == "time-wait"
    assert 50_000 < first.expires_ms <= 60_000  # Linux: TCP_TIMEWAIT_LEN is 60 s
    assert first.inode == 0  # no program holds it any more
    time.sleep(0.25)
    again = next(s for s in list_sockets(port=port, source=source).sockets
             if s.state == "TIME-WAIT" and s.remote_port == client_port)
    assert again.expires_ms <= first.expires_ms - 150


def test_client_side_has_no_time_wait_when_the_server_closes_first(
        listener: socket.socket) -> None:
    port, client_port = _server_side_time_wait(listener)
    _wait_for(port, "TIME-WAIT")
    client_rows = [s for s in list_sockets(port=client_port).sockets
                   if s.local_port == client_port and s.remote_port == port]
    assert client_rows == []


def test_keepalive_timer_is_reported() -> None:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 100)
        client.connect(lst.getsockname())
        server, _ = lst.accept()
        with client, server:
            cport = client.getsockname()[1]
            deadline = time.monotonic() + 3
            while True:  # poll: on a busy machine the first look may come too early
                row = next(s for s in list_sockets(port=cport).sockets
                           if s.local_port == cport and s.remote_port == lst.getsockname()[1])
                if row.timer == "keepalive" or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert row.timer == "keepalive", row
            assert 90_000 < row.expires_ms <= 100_000


def test_ipv6_loopback_sockets_are_listed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        lst = socket.socket(socket.AF_INET6)
        lst.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")
    with lst:
        lst.listen()
        port = lst.getsockname()[1]
        for source in SOURCES:
            rows = list_sockets(port=port, source=source, families=(6,)).sockets
            assert [(s.family, s.local_addr, s.state) for s in rows] == [(6, "::1", "LISTEN")]
            assert rows[0].local == f"[::1]:{port}"


def test_state_filter_keeps_only_that_state(listener: socket.socket) -> None:
    port, _ = _server_side_time_wait(listener)
    _wait_for(port, "TIME-WAIT")
    rows = list_sockets(states=["time-wait"], port=port).sockets
    assert rows and {s.state for s in rows} == {"TIME-WAIT"}
    rows = list_sockets(states=["LISTEN"], port=port).sockets
    assert [s.state for s in rows] == ["LISTEN"]


def test_lookup_finds_one_connection_by_its_four_tuple(listener: socket.socket) -> None:
    port = _port(listener)
    with socket.create_connection(("127.0.0.1", port)) as client:
        server, _ = listener.accept()
        with server:
            cport = client.getsockname()[1]
            row = lookup_socket(("127.0.0.1", port), ("127.0.0.1", cport))
            assert row is not None
            assert (row.state, row.local_port, row.remote_port) == ("ESTABLISHED", port, cport)
            assert lookup_socket(("127.0.0.1", port), ("127.0.0.1", 1)) is None


def test_counts_per_state() -> None:
    a = KernelSocket(4, "LISTEN", "0.0.0.0", 1, "0.0.0.0", 0, 0, 0, "", 0, 0, 0, 1)
    b = a._replace(state="TIME-WAIT")
    assert count_by_state([a, b, b]) == {"TIME-WAIT": 2, "LISTEN": 1}


def test_state_names_accept_several_spellings() -> None:
    assert parse_state("time-wait") == parse_state("TIME_WAIT") == parse_state("timewait") == [6]
    assert parse_state("syn-recv") == [3, 12]
    with pytest.raises(ValueError, match="unknown TCP state"):
        parse_state("waiting")


def test_proc_text_is_decoded() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 0100007F:1F90 0100007F:D431 06 00000000:00000000 03:00000BB8 00000000     0"
        "        0 0 1 0000000000000000\n"
    )
    (row,) = parse_proc_net_tcp(text, 4)
    assert (row.state, row.local, row.remote) == ("TIME-WAIT", "127.0.0.1:8080", "127.0.0.1:54321")
    ticks = os.sysconf("SC_CLK_TCK")
    assert row.timer == "time-wait" and row.expires_ms == 3000 * 1000 // ticks


def test_watch_marks_new_and_changed_rows() -> None:
    a = KernelSocket(4, "ESTABLISHED", "127.0.0.1", 1, "127.0.0.1", 2, 0, 0, "", 0, 0, 0, 1)
    b = a._replace(remote_port=3)
    previous = {row_key(a): a}
    new, changed = changed_keys(previous, [a._replace(state="FIN-WAIT-2"), b])
    assert new == {row_key(b)} and changed == {row_key(a)}
    new, changed = changed_keys(previous, [a._replace(expires_ms=5)])
    assert new == set() and changed == set()


def test_time_left_is_short_text() -> None:
    assert format_time_left(59_900) == "59.9s"
    assert format_time_left(125_000) == "2m05s"
    assert format_time_left(7_140_000) == "1h59m"


def test_cli_json_lists_the_time_wait_socket(listener: socket.socket) -> None:
    port, client_port = _server_side_time_wait(listener)
    _wait_for(port, "TIME-WAIT")
    result = CliRunner().invoke(sockets_command,
                                ["--json", "--state", "time-wait", "--port", str(port)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["counts"] == {"TIME-WAIT": 1}
    (row,) = doc["sockets"]
    assert row["remote_port"] == client_port and row["timer"] == "time-wait"


def test_cli_table_shows_rows_and_counts(listener: socket.socket) -> None:
    port = _port(listener)
    result = CliRunner().invoke(sockets_command, ["--port", str(port)])
    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{port}" in result.output
    assert "1 LISTEN" in result.output  # (bind(0) may reuse a port with TIME-WAIT sockets)
    assert "(via netlink)" in result.output


def test_cli_unknown_state_is_one_clear_error() -> None:
    result = CliRunner().invoke(sockets_command, ["--state", "nope"])
    assert result.exit_code == 2
    assert "unknown TCP state 'nope'" in result.output
    assert "Traceback" not in result.output


def test_cli_watch_stops_after_its_duration(listener: socket.socket) -> None:
    port = _port(listener)
    start = time.monotonic()
    result = CliRunner().invoke(sockets_command, ["--watch", "--port", str(port),
                                                  "--interval", "0.1", "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 5
    assert "LISTEN" in result.output
