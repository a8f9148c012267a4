"""The quick path of ``tcplab sockets``: what it imports, what it prints, what it leaves to click.

And the netlink decoding underneath it: a datagram of equal-length records goes through
``struct.iter_unpack``, anything else through the general loop, with the same result.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tcplab.kernel import sockdiag
from tcplab.kernel.inspect import columns_of, format_plain
from tcplab.kernel.sockets import KernelSocket, list_sockets
from tcplab.kernel.table import format_columns

ENV = {k: v for k, v in os.environ.items() if k != "COLUMNS"}


def run_main(*args: str, extra: str = "", via: str = "tcplab.cli"
             ) -> subprocess.CompletedProcess[str]:
    """``tcplab ARGS`` through the console script's main() (``via="tcplab.cli.app"``: the
    click application itself, no quick path); ``extra`` runs afterwards."""
    code = ("import sys\n"
            f"sys.argv = ['tcplab', *{list(args)!r}]\n"
            f"from {via} import main\n"
            "try:\n"
            "    main()\n"
            "finally:\n"
            f"    {extra or 'pass'}\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False, env=ENV)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    try:
        yield sock
    finally:
        sock.close()


def test_plain_listing_imports_neither_click_nor_json_nor_typing(
        listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    res = run_main("sockets", "--port", port,
                   extra="sys.stderr.write(' '.join(sorted(sys.modules)))")
    assert res.returncode == 0, res.stderr
    loaded = set(res.stderr.split())
    assert "tcplab.kernel.sockdiag" in loaded  # the quick path ran
    for heavy in ("click", "json", "dataclasses", "rich", "typing", "socket", "inspect",
                  "tcplab.kernel.sockets"):
        assert heavy not in loaded, f"{heavy} imported by a plain listing"
    assert f"127.0.0.1:{port}" in res.stdout
    assert "1 socket: 1 LISTEN  (via netlink)" in res.stdout


def test_quick_and_click_paths_print_the_same_table(listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    with socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server:
            quick = run_main("sockets", "--port", port, "-4")
            slow = run_main("sockets", "--port", port, "-4", via="tcplab.cli.app")
            assert client.fileno() >= 0
    assert quick.returncode == slow.returncode == 0, quick.stderr + slow.stderr
    assert quick.stdout == slow.stdout
    assert "3 sockets: 2 ESTABLISHED, 1 LISTEN" in quick.stdout
    assert f"({os.getpid()})" in quick.stdout  # the owner column: this process


def test_anything_else_goes_to_click_with_its_messages() -> None:
    res = run_main("sockets", "--state", "nope")
    assert res.returncode == 2
    assert "unknown TCP state 'nope'" in res.stderr and "Traceback" not in res.stderr
    res = run_main("sockets", "--port", "70000")
    assert res.returncode == 2 and "0<=x<=65535" in res.stderr
    res = run_main("sockets", "--json", "--state", "listen")
    assert res.returncode == 0
    assert json.loads(res.stdout)["source"] == "netlink"


# --------------------------------------------------------------------------- decoding


def _record(state: int, sport: int, dport: int, inode: int, attrs: bytes = b"") -> bytes:
    body = struct.pack("=BBBB", socket.AF_INET, state, 3 if state == 6 else 0, 0)
    body += struct.pack("!HH", sport, dport)
    body += socket.inet_aton("127.0.0.1").ljust(16, b"\0")
    body += socket.inet_aton("127.0.0.2").ljust(16, b"\0")
    body += struct.pack("=IIIIIIII", 0, 0, 0, 59_000 if state == 6 else 0, 0, 0, 1000,
                        inode)
    length = 16 + len(body) + len(attrs)
    return struct.pack("=IHHII", length, 20, 2, 1, 0) + body + attrs


MARK = struct.pack("=HHI", 8, 15, 0)  # an INET_DIAG_MARK attribute, as root gets


def test_uniform_datagram_is_recognised_and_decoded_like_the_general_loop() -> None:
    data = b"".join(_record(6, 8080, 40000 + i, 0, MARK) for i in range(50))
    assert sockdiag._uniform_length(data) == 96
    fast: list[sockdiag.RawRecord] = []
    assert sockdiag.parse_records(data, fast) is False
    slow: list[sockdiag.RawRecord] = []
    # One record of another length breaks the uniform walk: the general loop decodes it.
    mixed = data + _record(10, 8080, 0, 77)
    assert sockdiag._uniform_length(mixed) == 0
    assert sockdiag.parse_records(mixed, slow) is False
    assert slow[:50] == fast and len(slow) == 51
    cols = sockdiag.to_columns(4, slow)
    assert cols[1][0] == "TIME-WAIT" and cols[1][50] == "LISTEN"
    assert cols[3][0] == 8080 and cols[5][:2] == (40000, 40001)
    assert cols[8][0] == "time-wait" and cols[9][0] == 59_000
    assert cols[8][50] == "" and cols[12][50] == 77


def test_done_message_ends_the_dump() -> None:
    done = struct.pack("=IHHIIi", 20, sockdiag.NLMSG_DONE, 2, 1, 0, 0)
    out: list[sockdiag.RawRecord] = []
    assert sockdiag.parse_records(_record(6, 1, 2, 0) + done, out) is True
    assert len(out) == 1


def test_a_datagram_that_only_looks_uniform_is_not_taken_for_one() -> None:
    # Two 88-byte records, but the second claims another type: no fast path.
    good = _record(6, 1, 2, 0)
    bad = bytearray(_record(6, 1, 3, 0))
    bad[4] = sockdiag.NLMSG_DONE
    assert sockdiag._uniform_length(good + bytes(bad)) == 0


def test_table_columns_line_up_with_ipv6_timers_and_owners() -> None:
    rows = [
        KernelSocket(6, "LISTEN", "::1", 8080, "::", 0, 0, 128, "", 0, 0, 1000, 4242),
        KernelSocket(6, "TIME-WAIT", "::1", 8080, "::1", 51000, 0, 0, "time-wait", 59_900,
                     0, 0, 0),
        KernelSocket(4, "ESTABLISHED", "127.0.0.1", 22, "127.0.0.1", 40000, 5, 0,
                     "keepalive", 7_140_000, 0, 0, 77),
    ]
    text = format_plain(rows, {4242: [(10, "server", 3), (10, "server", 4)]})
    lines = text.splitlines()
    assert lines[0].split() == ["State", "Recv-Q", "Send-Q", "Local", "Peer", "Timer", "Uid",
                                "Inode", "Process"]
    assert lines[1].split() == ["LISTEN", "0", "128", "[::1]:8080", "[::]:0", "1000", "4242",
                                "server(10)"]
    assert lines[2].split() == ["TIME-WAIT", "0", "0", "[::1]:8080", "[::1]:51000",
                                "time-wait", "59.9s", "0", "0"]
    assert lines[3].split()[5:7] == ["keepalive", "1h59m"]
    # Every column starts at the same place on every line.
    for col, rows_with_it in (("Local", lines[1:]), ("Peer", lines[1:]),
                              ("Timer", lines[2:]), ("Process", lines[1:2])):
        start = lines[0].index(col)
        assert all(line[start - 2:start] == "  " and line[start] != " "
                   for line in rows_with_it), col
    assert format_columns(columns_of([]), {}).split() == lines[0].split()


def test_time_wait_dump_of_this_machine_decodes(listener: socket.socket) -> None:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    server.close()
    client.recv(1)
    client.close()
    port = listener.getsockname()[1]
    rows = [s for s in list_sockets(states=["time-wait"], port=port).sockets
            if s.local_port == port]
    assert len(rows) == 1 and rows[0].remote_addr == "127.0.0.1"
    assert 55_000 < rows[0].expires_ms <= 60_000


@pytest.mark.parametrize("args", [["-4", "-6"], ["--all-families"], ["--interval", "1"]])
def test_what_click_refuses_the_quick_path_refuses_too(args: list[str]) -> None:
    """The quick path must not accept a command line that click rejects."""
    res = run_main("sockets", *args)
    assert res.returncode == 2 and "Error" in res.stderr, res.stdout + res.stderr
