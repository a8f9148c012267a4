"""``tcplab watch`` around real connection lives on loopback (root; tracefs).

Each test starts the command, makes one connection life with kernel sockets on a fresh
port, stops the command with SIGINT and reads its JSON trace: both ends' states in order,
the segments between them, and how they interleave. Skipped without root unless
TCPLAB_REQUIRE_TUN=1 (CI), which makes a missing piece a failure.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest
from watch_helpers import free_port, need_watch, states, timeline, wait_state, watching

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _root() -> None:
    need_watch()


def _pair(port: int) -> tuple[socket.socket, socket.socket, socket.socket]:
    lst = socket.socket()
    lst.bind(("127.0.0.1", port))
    lst.listen(4)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    server, _ = lst.accept()
    return lst, client, server


def _keys(client: socket.socket) -> tuple[tuple[str, int, str, int], tuple[str, int, str, int]]:
    c = client.getsockname()[:2]
    s = client.getpeername()[:2]
    return (c[0], c[1], s[0], s[1]), (s[0], s[1], c[0], c[1])


def _conn(key: tuple[str, int, str, int]) -> str:
    return f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"


def test_client_closes_first_client_ends_in_time_wait() -> None:
    port = free_port()
    with watching("--port", str(port)) as run:
        lst, client, server = _pair(port)
        ckey, skey = _keys(client)
        client.close()  # FIN from the client: it is the active closer
        wait_state(ckey, "FIN-WAIT-2")  # the server's ACK came on its own
        assert server.recv(1) == b""
        server.close()  # the server's FIN: the client's mini-socket goes to TIME-WAIT
        wait_state(ckey, "TIME-WAIT")
        lst.close()
    doc = run["doc"]
    assert states(doc, "client", _conn(ckey)) == [
        "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    # The server's full socket is born from the request socket when the handshake's ACK
    # arrives, passing SYN-RECEIVED on its way to ESTABLISHED.
    assert states(doc, "server", _conn(skey)) == [
        "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    mine = {_conn(ckey), _conn(skey), f"127.0.0.1:{port}-0.0.0.0:0"}
    assert timeline(doc, lambda e: e.get("conn") in mine) == [
        "server:LISTEN",
        "client:SYN-SENT", "client>S", "server>SA", "client:ESTABLISHED", "client>A",
        "server:SYN-RECEIVED", "server:ESTABLISHED",
        "client:FIN-WAIT-1", "client>FA", "server:CLOSE-WAIT", "server>A",
        "client:FIN-WAIT-2",
        "server:LAST-ACK", "server>FA", "client:TIME-WAIT", "client>A", "server:CLOSED",
        "server:CLOSED",  # the listener
    ]
    # The tracepoint's FIN-WAIT-2 -> CLOSE of the full socket is explained, not hidden.
    notes = [e["text"] for e in doc["events"] if e["kind"] == "note"
             and e.get("conn") == _conn(ckey)]
    assert any("timewait mini-socket" in n and "FIN-WAIT-2 -> CLOSE" in n for n in notes)
    meta = doc["meta"]
    assert meta["source"] == "tracepoints" and meta["capture"] is True
    assert meta["kernel_filters"]["sock:inet_sock_set_state"] == (
        f"protocol == 6 && (sport == {port} || dport == {port})")
    # Kernel timestamps, in order, on the named clock.
    stamps = [e["t_ns"] for e in doc["events"]]
    assert stamps == sorted(stamps) and all(s >= meta["t0_ns"] for s in stamps)


def test_server_closes_first_server_ends_in_time_wait() -> None:
    port = free_port()
    with watching("--port", str(port)) as run:
        lst, client, server = _pair(port)
        ckey, skey = _keys(client)
        server.close()
        wait_state(skey, "FIN-WAIT-2")
        assert client.recv(1) == b""
        client.close()
        wait_state(skey, "TIME-WAIT")
        lst.close()
    doc = run["doc"]
    assert states(doc, "server", _conn(skey)) == [
        "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert states(doc, "client", _conn(ckey)) == [
        "SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    mine = {_conn(ckey), _conn(skey)}
    assert timeline(doc, lambda e: e.get("conn") in mine) == [
        "client:SYN-SENT", "client>S", "server>SA", "client:ESTABLISHED", "client>A",
        "server:SYN-RECEIVED", "server:ESTABLISHED",
        "server:FIN-WAIT-1", "server>FA", "client:CLOSE-WAIT", "client>A",
        "server:FIN-WAIT-2",
        "client:LAST-ACK", "client>FA", "server:TIME-WAIT", "server>A", "client:CLOSED",
    ]


def test_abortive_close_sends_rst_and_both_ends_close_at_once() -> None:
    port = free_port()
    with watching("--port", str(port)) as run:
        lst, client, server = _pair(port)
        ckey, skey = _keys(client)
        # SO_LINGER on with a zero timeout: close() aborts the connection with a RST.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with pytest.raises(ConnectionResetError):
            server.recv(1)
        server.close()
        lst.close()
    doc = run["doc"]
    assert states(doc, "client", _conn(ckey)) == ["SYN-SENT", "ESTABLISHED", "CLOSED"]
    assert states(doc, "server", _conn(skey)) == ["SYN-RECEIVED", "ESTABLISHED", "CLOSED"]
    mine = {_conn(ckey), _conn(skey)}
    flow = timeline(doc, lambda e: e.get("conn") in mine)
    assert flow[-3:] == ["client:CLOSED", "client>RA", "server:CLOSED"]
    notes = " | ".join(e["text"] for e in doc["events"] if e["kind"] == "note")
    assert "accepts the RST (tcp:tcp_receive_reset)" in notes
    assert "sends RST" in notes and "(tcp:tcp_send_reset)" in notes
    # Nothing of the run is left in tracefs (which is unmounted again if the run had to
    # mount it).
    if os.path.isdir("/sys/kernel/tracing/instances"):
        assert not [n for n in os.listdir("/sys/kernel/tracing/instances")
                    if n.startswith(f"tcplab-{run['pid']}-")]


def test_ipv6_life_and_the_polling_fallback_side_by_side() -> None:
    port = free_port()
    with watching("--port", str(port)) as traced, watching("--port", str(port), "--poll") \
            as polled:
        lst = socket.socket(socket.AF_INET6)
        lst.bind(("::1", port))
        lst.listen(4)
        client = socket.create_connection(("::1", port), timeout=5)
        server, _ = lst.accept()
        ckey = (*client.getsockname()[:2], *client.getpeername()[:2])
        time.sleep(0.05)  # longer than one poll
        client.close()
        wait_state(ckey, "FIN-WAIT-2")
        server.close()
        wait_state(ckey, "TIME-WAIT")
        time.sleep(0.05)
        lst.close()
    conn = f"[::1]:{ckey[1]}-[::1]:{port}"
    assert states(traced["doc"], "client", conn) == [
        "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    # Polling sees states that last longer than its interval; every cause says so.
    polled_doc = polled["doc"]
    assert polled_doc["meta"]["source"] == "sock_diag polling"
    seen = states(polled_doc, "client", conn)
    assert "ESTABLISHED" in seen and seen[-1] == "TIME-WAIT"
    assert all("polled every 10 ms" in e["cause"] for e in polled_doc["events"]
               if e["kind"] == "state")


HELPER = """
import socket, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(4)
print(lst.getsockname()[1], flush=True)
sys.stdin.readline()  # go
client = socket.create_connection(lst.getsockname()); server, _ = lst.accept()
client.close(); server.recv(1); server.close(); lst.close()
print("done", flush=True)
"""


def test_pid_filter_follows_one_process_and_pcap_holds_its_segments(tmp_path: Path) -> None:
    helper = subprocess.Popen([sys.executable, "-c", HELPER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None and helper.stdin is not None
        port = int(helper.stdout.readline())
        pcap = tmp_path / "run.pcap"
        with watching("--pid", str(helper.pid), "--pcap", str(pcap)) as run:
            other = free_port()  # this test process's own connection: not the helper's
            lst, client, server = _pair(other)
            client.close()
            server.close()
            lst.close()
            helper.stdin.write("go\n")
            helper.stdin.flush()
            assert helper.stdout.readline().strip() == "done"
    finally:
        helper.kill()
        helper.wait(10)
    doc = run["doc"]
    conns = {e["conn"] for e in doc["events"] if e["kind"] in ("state", "segment")}
    assert conns and all(str(port) in c for c in conns), conns
    assert not any(str(other) in c for c in conns)
    client_conn = next(c for c in conns if c.endswith(f"-127.0.0.1:{port}"))
    assert states(doc, "client", client_conn)[:3] == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1"]
    segments = [e for e in doc["events"] if e["kind"] == "segment" and e["event"] == "send"]
    reader = dpkt.pcap.Reader(pcap.open("rb"))
    packets = [dpkt.ip.IP(buf) for _ts, buf in reader]
    assert len(packets) == len(segments) >= 6
    assert [p.data.dport for p in packets] == [
        int(e["dst"].rsplit(":", 1)[1]) for e in segments]
