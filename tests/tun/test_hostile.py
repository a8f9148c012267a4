"""Hostile peers against ``tun serve --http`` (issue 19: points 1, 2 and 7).

Each test first does what the attacker did, then checks what the server does now:

* **slots**: peers that complete the handshake and go silent, and never acknowledge the
  server's FIN, held every slot of the server until their FIN-WAIT-1 ran out (minutes):
  a closing connection no longer occupies the application;
* **per source**: one address may hold only so many connections, the rest are reset;
* **memory**: after hundreds of connections the server holds no transport, and a
  bounded trace keeps only its last events;
* **martians**: SYNs from addresses no peer can have (0.0.0.0, 255.255.255.255,
  multicast, tcplab's own, and the IPv6 ones) are dropped before the engine, with the
  reason in the trace, instead of being answered.

The silent peers and the martians are packets written to the device by a packet socket
inside the namespace (any source address, no kernel TCP behind them, so nothing answers
tcplab's segments); the honest clients are the kernel's sockets and curl.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from tun_helpers import check_output, run

from tcplab.engine.state import State
from tcplab.http.messages import Limits
from tcplab.http.tun import start_http
from tcplab.i18n import has_cjk, phrase
from tcplab.trace import Trace
from tcplab.tun import TunBackend
from tcplab.wire import ACK, SYN, Mss, TcpSegment, emit_ip_tcp

pytestmark = pytest.mark.timeout(60)

TCPLAB = [sys.executable, "-m", "tcplab"]


def _curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: run tools/install-system-deps.sh")
    return curl


def inject(b: TunBackend, packets: list[bytes]) -> None:
    """Write IP packets to the device from inside the namespace, exactly as built."""
    ps = b.ns.call(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM))
    try:
        for pkt in packets:
            ps.sendto(pkt, ("tcplab0", 0x86DD if pkt[0] >> 4 == 6 else 0x0800))
    finally:
        ps.close()


async def silent_peers(b: TunBackend, sources: list[str], port: int) -> list[tuple[str, int]]:
    """Peers that complete the three-way handshake with tcplab, then say nothing more
    (and acknowledge nothing: no TCP stands behind these addresses)."""
    peers = [(src, 40000 + i) for i, src in enumerate(sources)]
    inject(b, [emit_ip_tcp(src, b.addr, TcpSegment(sport, port, 1000, 0, SYN, 65535,
                                                   options=(Mss(1460),)))
               for src, sport in peers])
    conns = []
    for src, sport in peers:
        for _ in range(300):
            conn = b.host.connection((b.addr, port, src, sport))
            if conn is not None:
                break
            await asyncio.sleep(0.01)
        assert conn is not None, f"no SYN-ACK for {src}"
        conns.append(conn)
    inject(b, [emit_ip_tcp(src, b.addr, TcpSegment(sport, port, 1001, (c.iss + 1) & 0xFFFFFFFF,
                                                   ACK, 65535))
               for (src, sport), c in zip(peers, conns, strict=True)])
    return peers


async def curl_status(b: TunBackend) -> str:
    rc, out, err = await check_output(b.ns.exec_argv(
        [_curl(), "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
         f"http://{b.addr}/"]))
    assert rc == 0, err
    return out


# ------------------------------------------------------------------ 1: slots


def test_silent_peers_that_never_ack_the_fin_do_not_hold_the_servers_slots() -> None:
    async def scenario() -> None:
        async with TunBackend(kernel_states=False) as b:
            limits = Limits(max_connections=4, keepalive_timeout=0.3)
            server, state = await start_http(b, 80, limits=limits)
            peers = await silent_peers(b, [f"192.0.2.{50 + i}" for i in range(4)], 80)
            for _ in range(200):
                if len(state.connections) == 4:
                    break
                await asyncio.sleep(0.01)
            # Every slot is taken by a silent peer: an honest client is turned away.
            assert len(state.connections) == 4
            assert await curl_status(b) == "503"
            # The server gives up on them after keepalive_timeout and closes; their
            # FINs are never acknowledged, so each stays in FIN-WAIT-1 for minutes ...
            await asyncio.sleep(0.8)
            closing = [b.host.connection((b.addr, 80, src, sport)) for src, sport in peers]
            assert all(c is not None and c.state is State.FIN_WAIT_1 for c in closing)
            # ... without the application: the slots are free, the honest client is served.
            assert len(state.connections) == 0
            assert await curl_status(b) == "200"
            assert len(server.transports) == 0
            server.close()

    run(scenario())


def test_one_address_may_hold_only_max_per_source_connections() -> None:
    async def scenario() -> None:
        async with TunBackend(kernel_states=False) as b:
            loop = asyncio.get_running_loop()
            server, _state = await start_http(b, 80, max_per_source=2)
            b.ns.ip("addr", "add", "192.0.2.3/24", "dev", "tcplab0")  # a second client
            socks = []

            async def connect(source: str) -> socket.socket:
                s = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                s.setblocking(False)
                s.bind((source, 0))
                await asyncio.wait_for(loop.sock_connect(s, (b.addr, 80)), 5)
                socks.append(s)
                return s

            try:
                first = await connect("192.0.2.1")
                await connect("192.0.2.1")
                for _ in range(100):
                    if server.accepted == 2:
                        break
                    await asyncio.sleep(0.01)
                third = await connect("192.0.2.1")  # the handshake completes, then RST
                with pytest.raises(ConnectionResetError):
                    await asyncio.wait_for(loop.sock_recv(third, 10), 5)
                assert server.refused == 1 and server.per_source == {"192.0.2.1": 2}
                other = await connect("192.0.2.3")  # another address is not affected
                await loop.sock_sendall(other, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                               b"Connection: close\r\n\r\n")
                answer = await asyncio.wait_for(loop.sock_recv(other, 100), 5)
                assert answer.startswith(b"HTTP/1.1 200")
                first.close()  # a slot of 192.0.2.1 comes free
                for _ in range(100):
                    if server.per_source.get("192.0.2.1") == 1:
                        break
                    await asyncio.sleep(0.01)
                again = await connect("192.0.2.1")
                await loop.sock_sendall(again, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = await asyncio.wait_for(loop.sock_recv(again, 100), 5)
                assert answer.startswith(b"HTTP/1.1 200")
                refusals = [e for e in b.trace.of_kind("app") if e["call"] == "accept"
                            and e["result"].startswith("refused: per-source")]
                assert len(refusals) == 1
            finally:
                for s in socks:
                    s.close()
            server.close()

    run(scenario())


# ------------------------------------------------------------------ 2: memory


def test_after_300_connections_the_server_holds_no_transport_and_the_trace_is_bounded(
        ) -> None:
    n = 300

    async def scenario() -> None:
        trace = Trace(limit=2000)
        async with TunBackend(trace=trace) as b:
            loop = asyncio.get_running_loop()
            server, state = await start_http(b, 80)
            for i in range(n):
                s = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                s.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(s, (b.addr, 80)), 5)
                    close = b"Connection: close\r\n" if i % 2 else b""  # who closes first
                    await loop.sock_sendall(s, b"GET / HTTP/1.1\r\nHost: x\r\n" + close +
                                            b"\r\n")
                    got = await asyncio.wait_for(loop.sock_recv(s, 65536), 5)
                    assert got.startswith(b"HTTP/1.1 200")
                finally:
                    s.close()
            for _ in range(200):
                if not server.transports and not state.connections:
                    break
                await asyncio.sleep(0.02)
            assert server.accepted == n and state.total_connections == n
            assert len(server.transports) == 0 and not state.connections
            assert server.per_source == {}
            # The engine keeps what TCP must keep (TIME-WAIT entries, compact), no more.
            alive = [c for c in b.host.conns.values() if c.state.synchronized]
            assert len(alive) <= 2
            assert len(trace) <= 2000 and trace.discarded > 10 * n
            server.close()

    run(scenario())


def _serve_and_fetch(options: list[str], fetches: int) -> tuple[str, str]:
    """`tun serve --http --port 8080 OPTIONS`, ``fetches`` pages with curl from the
    kernel's side, then Ctrl+C: the command's stdout and stderr."""
    proc = subprocess.Popen([*TCPLAB, "tun", "serve", "--http", "--port", "8080", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("tcplab-"), proc.stderr.read() if proc.stderr else ""
        for _ in range(fetches):
            res = subprocess.run(["ip", "netns", "exec", name, _curl(), "-sS", "--max-time",
                                  "10", "-o", "/dev/null", "http://192.0.2.2:8080/"],
                                 capture_output=True, text=True, timeout=20, check=False)
            assert res.returncode == 0, res.stderr
        proc.send_signal(2)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        return out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_with_a_trace_limit_keeps_only_the_last_events() -> None:
    out, err = _serve_and_fetch(["--trace-limit", "60", "--json"], 3)
    assert "stopped after 3 connection(s)" in err
    assert "the trace kept the last" in err and "--trace-limit" in err
    doc = json.loads(out)
    assert len(doc["events"]) <= 60 and doc["meta"]["trace_discarded"] > 0


def test_serve_keeps_packet_bytes_for_pcap_only(tmp_path: Path) -> None:
    """Without --pcap the ring holds no packet bytes (memory); with it, the capture has
    every segment of the fetch, whole, as dpkt reads it."""
    path = tmp_path / "serve.pcap"
    _serve_and_fetch(["--pcap", str(path)], 1)
    with path.open("rb") as fh:
        tcp = [dpkt.ip.IP(buf).data for _ts, buf in dpkt.pcap.Reader(fh)]
    flags = [t.flags for t in tcp if isinstance(t, dpkt.tcp.TCP)]
    assert flags[0] == dpkt.tcp.TH_SYN and flags[1] == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK
    assert any(t.data.startswith(b"GET / HTTP/1.1") for t in tcp)
    assert any(t.data.startswith(b"HTTP/1.1 200") for t in tcp)


# ------------------------------------------------------------------ 7: martians


MARTIANS = ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1", "192.0.2.2",
            "::", "ff02::1", "::1", "2001:db8::2", "::ffff:192.0.2.1"]


def test_syns_from_martian_sources_are_dropped_with_the_reason_and_not_answered() -> None:
    async def scenario() -> TunBackend:
        async with TunBackend(kernel_states=False) as b:
            server, _state = await start_http(b, 80)
            syns = []
            for i, src in enumerate([*MARTIANS, "192.0.2.77", "2001:db8::77"]):
                dst = b.addrs[1] if ":" in src else b.addrs[0]
                syns.append(emit_ip_tcp(src, dst, TcpSegment(41000 + i, 80, 5, 0, SYN, 65535,
                                                             options=(Mss(1400),))))
            inject(b, syns)
            for _ in range(200):
                if b.packets_in >= len(syns):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            server.close()
            return b

    b = run(scenario())
    assert b.martians == len(MARTIANS)
    drops = {e["src"].rsplit(":", 1)[0]: e["reason"] for e in b.trace.segments("drop")
             if "martian" in e.get("reason", "")}
    assert sorted(drops) == sorted(MARTIANS)
    assert drops["0.0.0.0"] == "martian source 0.0.0.0: unspecified address (0.0.0.0/8)"
    assert drops["192.0.2.2"] == "martian source 192.0.2.2: tcplab's own address"
    assert drops["ff02::1"] == "martian source ff02::1: multicast address"
    assert drops["::ffff:192.0.2.1"] == "martian source ::ffff:192.0.2.1: IPv4-mapped address"
    for reason in drops.values():
        zh = phrase("reason", reason, "zh")
        assert zh is not None and has_cjk(zh), reason
    # Only the two real sources got a SYN-ACK.
    answered = sorted(e["dst"].rsplit(":", 1)[0] for e in b.trace.segments("send")
                      if e["flags"] == "SA")
    assert answered == ["192.0.2.77", "2001:db8::77"]
