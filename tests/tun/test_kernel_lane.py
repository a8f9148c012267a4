"""The kernel's lane on TUN: every transition from the tracepoints, FIN-WAIT-2 included.

`tcplab tun connect` fetches a page from `python -m http.server` in the namespace; the
server closes first, so the kernel's socket goes FIN-WAIT-1, FIN-WAIT-2 (a state the old
sock_diag poller usually missed) and TIME-WAIT. The polling fallback is checked too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest
from tun_helpers import run

from tcplab.tun.backend import TunBackend
from tcplab.tun.kernelstate import KernelStateWatcher

pytestmark = pytest.mark.timeout(60)

TCPLAB = [sys.executable, "-m", "tcplab"]


def _flow(events: list[dict[str, object]], conn_ports: tuple[int, int]) -> list[str]:
    """Kernel states as "kernel:STATE" and segments as "host>FLAGS", in time order."""
    out = []
    for e in sorted(events, key=lambda e: float(e["t"])):  # type: ignore[arg-type]
        if e["kind"] == "state" and e["host"] == "kernel" and all(
                str(p) in str(e["conn"]) for p in conn_ports):
            out.append(f"kernel:{e['to']}")
        elif e["kind"] == "segment" and e.get("event") in ("send", "recv"):
            out.append(f"{e['host']}>{e['flags']}")
    return out


def test_tun_connect_shows_every_kernel_transition_in_order() -> None:
    res = subprocess.run([*TCPLAB, "tun", "connect", "--json"], capture_output=True,
                         text=True, timeout=40, check=False)
    assert res.returncode == 0, res.stderr
    events = json.loads(res.stdout)["events"]
    kernel = [e for e in events if e["kind"] == "state" and e["host"] == "kernel"]
    conns = {e["conn"] for e in kernel if not e["conn"].endswith("-0.0.0.0:0")}
    assert len(conns) == 1
    (conn,) = conns
    assert [e["to"] for e in kernel if e["conn"] == conn] == [
        "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert all("sock:inet_sock_set_state" in e["cause"] or "timewait" in e["cause"]
               for e in kernel)
    # In time order, against the segments tcplab sent: the kernel's full socket appears
    # with tcplab's ACK, and TIME-WAIT comes with tcplab's FIN. (Segments from the kernel
    # carry the time the backend read them, which may be a little early for a packet
    # that arrived while a batch was being read; they are not compared here.)
    port = int(conn.split("-")[1].rsplit(":", 1)[1])
    flow = _flow(events, (8000, port))
    assert flow.index("kernel:SYN-RECEIVED") > flow.index("tcplab>A")
    tcplab_fin = next(i for i, f in enumerate(flow) if f.startswith("tcplab>") and "F" in f)
    assert flow.index("kernel:TIME-WAIT") > tcplab_fin
    notes = [e["text"] for e in events if e["kind"] == "note"]
    assert any("timewait mini-socket" in n for n in notes)


def test_polling_fallback_still_follows_the_kernel() -> None:
    """Without tracepoints the watcher polls sock_diag; the causes say so."""

    async def scenario() -> list[dict[str, object]]:
        async with TunBackend(kernel_states=False) as b:
            watcher = KernelStateWatcher(b.ns.name, interval=0.01, use_tracefs=False)
            watcher.start()
            try:
                lst = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                lst.bind((b.kernel_addr, 5555))
                lst.listen()
                await asyncio.sleep(0.1)
                lst.close()
                await asyncio.sleep(0.1)
            finally:
                watcher.stop()
            assert watcher.mode == "polling"
            return watcher.drain()

    events = run(scenario())
    assert [(e["from"], e["to"]) for e in events] == [("CLOSED", "LISTEN"), ("LISTEN", "CLOSED")]
    assert all("polled every 10 ms" in str(e["cause"]) for e in events)


def test_a_long_running_lane_starts_fresh_models_and_keeps_following() -> None:
    """The model remembers every connection it saw; after ``model_records`` state records
    a fresh one, told by sock_diag what exists, takes over (a server that runs for days
    must not grow without end), and the transitions keep coming."""

    async def scenario() -> tuple[TunBackend, list[int]]:
        async with TunBackend(poll_interval=0.01) as b:
            assert b.watcher is not None
            if b.watcher.mode != "tracepoints":
                pytest.skip(f"no tracepoints here: {b.watcher.notice}")
            b.watcher.model_records = 8  # a fresh model every two connections or so
            from tcplab.api import transports as aio
            await aio.start_server(b.host, asyncio.Protocol, b.addr, port=7, kick=b.kick)
            loop = asyncio.get_running_loop()
            ports = []
            for _ in range(6):
                s = b.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                s.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(s, (b.addr, 7)), 5)
                ports.append(s.getsockname()[1])
                s.close()  # the kernel closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT
                await asyncio.sleep(0.15)
            await asyncio.sleep(0.2)
            return b, ports

    b, ports = run(scenario())
    assert b.rotations >= 2  # fresh models took over on the way
    kernel = [e for e in b.trace.of_kind("state") if e["host"] == "kernel"]
    last = [e["to"] for e in kernel if f":{ports[-1]}-" in e["conn"]]
    assert last[:2] == ["SYN-SENT", "ESTABLISHED"] and "FIN-WAIT-1" in last
    assert len({e["conn"] for e in kernel if e["to"] == "ESTABLISHED"}) == len(ports)


@pytest.mark.parametrize(("src", "dst"), [("192.0.2.1", "192.0.2.2"),
                                          ("2001:db8::1", "2001:db8::2")])
def test_the_lane_queues_a_segments_headers_not_its_data(src: str, dst: str) -> None:
    from tcplab.tun.kernelstate import headers_only
    from tcplab.wire import ACK, PSH, TcpSegment, emit_ip_tcp
    from tcplab.wire.ip import parse_ip
    from tcplab.wire.tcp import parse_tcp

    seg = TcpSegment(40000, 80, 7, 9, ACK | PSH, 512, payload=b"x" * 1400)
    short = headers_only(emit_ip_tcp(src, dst, seg))
    ip = parse_ip(short)  # a well-formed packet (IPv4: its header checksum redone)
    got = parse_tcp(ip.payload)
    assert len(short) == (20 if ":" not in src else 40) + 20
    assert (ip.src, ip.dst, got.seq, got.ack, got.flags, got.payload) == (
        src, dst, 7, 9, ACK | PSH, b"")
