"""tcplab's TCP against the Linux kernel's, over a TUN device in a private namespace.

Each test reads as what the two sides do: who connects, who sends, who closes
first, and which state each side ends in (tcplab's from its own trace, the
kernel's from sock_diag read inside the namespace).  The fetches, the refused
connection and the 64 MiB transfers run over IPv4 (192.0.2.0/24) and IPv6
(2001:db8::/64) alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
from pathlib import Path

import pytest
from tun_helpers import check_output, run

from tcplab.api import transports as aio
from tcplab.engine.state import State
from tcplab.http.tun import http_get, start_http, start_kernel_http
from tcplab.kernel.sockets import KernelSocket
from tcplab.trace import Trace
from tcplab.tun import TunBackend, bulk_config
from tcplab.tun.bulk import kernel_to_tcplab, tcplab_to_kernel
from tcplab.tun.netns import list_tcplab_namespaces
from tcplab.tun.peer import payload

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


def _need_curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: run tools/install-system-deps.sh")
    return curl


def _tuple_socket(socks: list[KernelSocket], lport: int, rport: int) -> KernelSocket | None:
    for s in socks:
        if s.local_port == lport and s.remote_port == rport:
            return s
    return None


# ------------------------------------------------------------------ the basics


def test_namespace_and_device_exist_only_while_the_backend_runs() -> None:
    async def scenario() -> str:
        async with TunBackend() as b:
            assert b.netns in list_tcplab_namespaces()
            rc, out, _ = await check_output(b.ns.exec_argv(["ip", "-o", "addr", "show"]))
            assert rc == 0
            assert "192.0.2.1/24" in out and "tcplab0" in out
            rc, routes, _ = await check_output(b.ns.exec_argv(["ip", "route", "show"]))
            assert "default" not in routes  # no way out of the namespace
            return b.netns

    name = run(scenario())
    assert name not in list_tcplab_namespaces()


@pytest.mark.parametrize("family", [4, 6])
def test_kernel_connect_to_closed_port_is_refused(family: int) -> None:
    async def scenario() -> None:
        async with TunBackend(family=family) as b:
            loop = asyncio.get_running_loop()
            af = socket.AF_INET6 if family == 6 else socket.AF_INET
            sock = b.ns.call(lambda: socket.socket(af, socket.SOCK_STREAM))
            sock.setblocking(False)
            try:
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.wait_for(loop.sock_connect(sock, (b.addr, 9)), 5)
            finally:
                sock.close()
            resets = [e for e in b.trace.segments("send") if "R" in e["flags"]]
            assert resets, "tcplab answered the SYN with a RST"

    run(scenario())


# ------------------------------------------------------------------ curl and tcplab's HTTP


@pytest.mark.parametrize("family", [4, 6])
def test_curl_keepalive_two_requests_on_one_connection(family: int) -> None:
    curl = _need_curl()

    async def scenario() -> None:
        async with TunBackend(family=family) as b:
            server, state = await start_http(b, 80)
            url = f"http://{b.url_host()}/"
            rc, out, err = await check_output(b.ns.exec_argv(
                [curl, "-g", "-sS", "--max-time", "10", "-o", "/dev/null", "-o", "/dev/null",
                 "-w", "%{http_code} %{num_connects}\n", url, url]))
            assert rc == 0, err
            assert out.split() == ["200", "1", "200", "0"]  # second request reused it
            assert state.total_connections == 1
            syns = [e for e in b.trace.segments("recv") if e["flags"] == "S"]
            assert len(syns) == 1
            assert syns[0]["src"].startswith(f"{b.kernel_addr}:")
            server.close()

    run(scenario())


def test_curl_connection_close_server_closes_first() -> None:
    curl = _need_curl()

    async def scenario() -> None:
        async with TunBackend() as b:
            server, _state = await start_http(b, 80)
            rc, out, err = await check_output(b.ns.exec_argv(
                [curl, "-sS", "-i", "--max-time", "10", "-H", "Connection: close",
                 f"http://{b.addr}/"]))
            assert rc == 0, err
            assert out.startswith("HTTP/1.1 200")
            assert "connection: close" in out.lower()
            # tcplab's server sent the first FIN and waits in TIME-WAIT.  (curl closes
            # as soon as it has the whole body, so its FIN may cross ours: a
            # simultaneous close, after which both sides are in TIME-WAIT.)
            fins = [e for e in b.trace.of_kind("segment")
                    if e["event"] in ("send", "recv") and "F" in e["flags"]]
            assert fins[0]["event"] == "send" and fins[0]["host"] == "tcplab"
            syn = next(e for e in b.trace.segments("recv") if e["flags"] == "S")
            cport = int(syn["src"].rsplit(":", 1)[1])
            assert b.host.in_time_wait((b.addr, 80, b.kernel_addr, cport))
            server.close()

    run(scenario())


def test_tcplab_closes_first_tcplab_in_time_wait_and_kernel_closed() -> None:
    async def scenario() -> None:
        async with TunBackend() as b:
            loop = asyncio.get_running_loop()
            accepted: list[asyncio.Transport] = []

            class Closer(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    assert isinstance(transport, asyncio.Transport)
                    accepted.append(transport)

            await aio.start_server(b.host, Closer, port=7, kick=b.kick)
            sock = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (b.addr, 7)), 5)
                kport = sock.getsockname()[1]
                for _ in range(100):
                    if accepted:
                        break
                    await asyncio.sleep(0.01)
                accepted[0].close()  # tcplab's FIN first
                assert await asyncio.wait_for(loop.sock_recv(sock, 10), 5) == b""  # EOF
                await b.wait_kernel(lambda s: (x := _tuple_socket(s, kport, 7)) is not None
                                    and x.state == "CLOSE-WAIT", 5, "CLOSE-WAIT")
            finally:
                sock.close()  # the kernel's FIN: LAST-ACK, then CLOSED on tcplab's ACK
            await b.wait_kernel(lambda s: _tuple_socket(s, kport, 7) is None, 5,
                                "the kernel's socket to be CLOSED")
            key = (b.addr, 7, b.kernel_addr, kport)
            assert b.host.in_time_wait(key)
            assert b.trace.states("tcplab")[-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]

    run(scenario())


# ------------------------------------------------------------------ tcplab as the client


@pytest.mark.parametrize("family", [4, 6])
def test_tcplab_fetches_from_kernel_http_server_and_kernel_ends_in_time_wait(
        tmp_path: Path, family: int) -> None:
    (tmp_path / "index.html").write_text("<h1>served by the kernel</h1>\n")

    async def scenario() -> tuple[TunBackend, int]:
        async with TunBackend(family=family) as b:
            await start_kernel_http(b, tmp_path, 8000)
            reply = await http_get(b, 8000, "/index.html")
            assert reply.status == 200
            assert reply.body == b"<h1>served by the kernel</h1>\n"
            lport = reply.local[1]
            # http.server (HTTP/1.0) closes first: the kernel waits in TIME-WAIT ...
            socks = await b.wait_kernel(
                lambda s: (x := _tuple_socket(s, 8000, lport)) is not None
                and x.state == "TIME-WAIT", 5, "the kernel's socket in TIME-WAIT")
            tw = _tuple_socket(socks, 8000, lport)
            assert tw is not None and tw.timer == "time-wait" and tw.expires_ms > 50_000
            # ... and tcplab, the passive closer, went LAST-ACK -> CLOSED.
            key = (b.addr, lport, b.kernel_addr, 8000)
            assert key not in b.host.conns and not b.host.in_time_wait(key)
            mine = [e["to"] for e in b.trace.of_kind("state")
                    if e["host"] == "tcplab" and e["conn"].startswith(f"{b.addr}:{lport}-")]
            assert mine[-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
            return b, lport

    b, lport = run(scenario())
    # Both sides' states: the kernel's, merged into the same trace (by the time the
    # backend has closed, the kernel lane has handed over all it saw).
    theirs = [e["to"] for e in b.trace.of_kind("state")
              if e["host"] == "kernel" and f":{lport}" in e["conn"]]
    assert "ESTABLISHED" in theirs and theirs[-1] == "TIME-WAIT"


def test_kernel_closes_first_seen_by_the_state_watcher() -> None:
    """A kernel socket closes first; the merged trace shows the kernel's FIN-WAIT and TIME-WAIT."""

    async def scenario() -> None:
        async with TunBackend(poll_interval=0.01) as b:
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            class Echo(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    self.t = transport

                def eof_received(self) -> bool | None:
                    return True  # keep our side open for a moment: the kernel waits in FIN-WAIT-2

                def connection_lost(self, exc: Exception | None) -> None:
                    if not done.done():
                        done.set_result(None)

            protos: list[Echo] = []

            def factory() -> asyncio.Protocol:
                protos.append(Echo())
                return protos[-1]

            await aio.start_server(b.host, factory, port=7, kick=b.kick)
            sock = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, (b.addr, 7)), 5)
            kport = sock.getsockname()[1]
            sock.close()  # the kernel sends FIN first
            await b.wait_kernel(lambda s: (x := _tuple_socket(s, kport, 7)) is not None
                                and x.state == "FIN-WAIT-2", 5, "FIN-WAIT-2")
            await asyncio.sleep(0.05)
            protos[0].t.close()  # now tcplab's FIN
            await asyncio.wait_for(done, 5)
            await b.wait_kernel(lambda s: (x := _tuple_socket(s, kport, 7)) is not None
                                and x.state == "TIME-WAIT", 5, "TIME-WAIT")
            await asyncio.sleep(0.05)
            conn = protos[0].t.get_extra_info("connection")
            assert conn.current_state() is State.CLOSED
            kernel = b.trace.states("kernel")
            assert "FIN-WAIT-2" in kernel and kernel[-1] == "TIME-WAIT"
            assert b.trace.states("tcplab")[-1] == "CLOSED"

    run(scenario())


# ------------------------------------------------------------------ 64 MiB each way


@pytest.mark.parametrize(("family", "mtu", "offload"), [
    (4, 1500, True), (4, 65535, True), (6, 1500, True), (4, 1500, False), (4, 65535, False)],
    ids=["ipv4-1500", "ipv4-65535", "ipv6-1500", "ipv4-1500-fallback", "ipv4-65535-fallback"])
def test_64mib_each_direction_byte_exact(family: int, mtu: int, offload: bool) -> None:
    n = 64 * MiB
    data = payload(n)
    digest = hashlib.sha256(data).hexdigest()

    async def scenario() -> None:
        async with TunBackend(mtu=mtu, config=bulk_config(mtu), trace=Trace(enabled=False),
                              family=family, offload=offload) as b:
            assert b.vnet is offload
            got = await kernel_to_tcplab(b, n, timeout=40)
            assert got.nbytes == n
            assert got.sha256 == digest == got.peer["sha256"]
            sent = await tcplab_to_kernel(b, data, timeout=40)
            assert sent.peer["bytes"] == n
            assert sent.peer["sha256"] == digest

    run(scenario(), timeout=55)
