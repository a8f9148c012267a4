"""A SYN flood against tcplab on the TUN device (issue 9): curl still gets its page.

A raw socket inside the namespace sends a bounded burst of spoofed SYNs (sources
in 192.0.2.100-250, which nobody owns, so the SYN-ACKs go nowhere).  They fill
the listener's SYN queue; with SYN cookies (the default, "auto": used when the
queue is full) a real client still connects.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket

import pytest
from tun_helpers import check_output, run

from tcplab.api import transports as aio
from tcplab.engine.config import TcpConfig
from tcplab.http.tun import start_http
from tcplab.tun import TunBackend
from tcplab.wire import SYN, Mss, TcpSegment, emit_ip_tcp

pytestmark = pytest.mark.timeout(60)

FLOOD = 2000  # bounded: two thousand SYNs, once


def spoofed_syns(dst: str, port: int, n: int, seed: int = 9) -> list[bytes]:
    rng = random.Random(seed)
    return [emit_ip_tcp(f"192.0.2.{rng.randrange(100, 251)}", dst,
                        TcpSegment(rng.randrange(1024, 65536), port, rng.getrandbits(32), 0,
                                   SYN, 65535, 0, (Mss(1460),)))
            for _ in range(n)]


def test_spoofed_syn_flood_fills_the_queue_but_curl_gets_its_page() -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: run tools/install-system-deps.sh")

    async def scenario() -> None:
        cfg = TcpConfig(mss=1460, syn_cookies="auto")
        async with TunBackend(config=cfg) as b:
            server, state = await start_http(b, 80)
            assert isinstance(server, aio.EngineServer)
            raw = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                  socket.IPPROTO_RAW))
            try:
                for pkt in spoofed_syns(b.addr, 80, FLOOD):
                    raw.sendto(pkt, (b.addr, 0))
            finally:
                raw.close()
            listener = server.listener
            for _ in range(200):  # let the engine take the burst in
                await asyncio.sleep(0.01)
                if len(listener.syn_queue) >= listener.backlog:
                    break
            assert len(listener.syn_queue) == listener.backlog  # the SYN queue is full
            rc, out, err = await check_output(b.ns.exec_argv(
                [curl, "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://{b.addr}/"]))
            assert rc == 0, err
            assert out == "200"
            assert b.host.counters["TcpExtSyncookiesSent"] >= FLOOD - listener.backlog - 50
            assert b.host.counters["TcpExtSyncookiesRecv"] >= 1  # curl's ACK carried a cookie
            assert state.total_connections == 1
            server.close()

    run(scenario())
