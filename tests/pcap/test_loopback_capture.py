"""A real HTTP exchange captured on loopback by the test itself, then drawn.

An AF_PACKET socket bound to "lo" (needs root or CAP_NET_RAW; skipped
otherwise) records the frames of one http.client request to a Python
http.server on 127.0.0.1, keeping only the server's port.  The frames are
written as an Ethernet pcap and read back with tcplab's reader; the inferred
states of both sides must be the textbook ones for whichever side closed
first.  Loopback only; every thread and socket is closed, also on failure.
"""

from __future__ import annotations

import http.client
import http.server
import select
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tcplab.cli.pcap import load
from tcplab.render.svg import sequence_svg

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        body = b"hello from tcplab\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _ports(frame: bytes) -> tuple[int, int] | None:
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return struct.unpack_from("!HH", frame, 14 + ihl)  # type: ignore[return-value]


def _write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    with path.open("wb") as fp:
        fp.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data in frames:
            sec = int(ts)
            fp.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), len(data)))
            fp.write(data)


def test_capture_http_on_loopback_and_draw_it(tmp_path: Path) -> None:
    try:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except (PermissionError, OSError, AttributeError) as exc:
        pytest.skip(f"no AF_PACKET raw socket here ({exc}); needs root or CAP_NET_RAW on Linux")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    frames: list[tuple[float, bytes]] = []
    try:
        raw.bind(("lo", 0))
        raw.setblocking(False)
        thread.start()
        done = threading.Event()

        def capture() -> None:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and not done.is_set():
                ready, _, _ = select.select([raw], [], [], 0.05)
                if not ready:
                    continue
                while True:
                    try:
                        data, addr = raw.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:  # lo shows each frame twice
                        continue
                    ports = _ports(data)
                    if ports is not None and port in ports:
                        frames.append((time.time(), data))

        cap = threading.Thread(target=capture, daemon=True)
        cap.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                assert resp.status == 200 and resp.read() == b"hello from tcplab\n"
            finally:
                conn.close()
            # wait (bounded) for the last ACK of the close to be captured
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                fins = sum(1 for _, f in frames if len(f) > 47 and f[14 + 20 + 13] & 0x01)
                if fins >= 2 and not frames[-1][1][14 + 20 + 13] & 0x01:
                    break
                time.sleep(0.02)
            time.sleep(0.05)
        finally:
            done.set()
            cap.join(timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        raw.close()

    path = tmp_path / "http.pcap"
    _write_pcap(path, frames)
    events, problem = load(path)
    assert problem is None
    segs = [e for e in events if e["kind"] == "segment"]
    assert segs and segs[0]["flags"] == "S"
    client = segs[0]["src"]
    server_ep = segs[0]["dst"]
    assert server_ep == f"127.0.0.1:{port}"
    first_fin = next(e for e in segs if "F" in e["flags"])
    closer = first_fin["src"]
    passive = server_ep if closer == client else client

    def states(host: str) -> list[str]:
        return [e["to"] for e in events if e["kind"] == "state" and e["host"] == host]

    assert states(client)[:2] == ["SYN-SENT", "ESTABLISHED"]
    assert states(server_ep)[:2] == ["SYN-RECEIVED", "ESTABLISHED"]
    assert states(closer)[2:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert states(passive)[2:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    svg = sequence_svg(events, title="HTTP on loopback")
    (tmp_path / "http.svg").write_text(svg)
    for name in ("SYN-SENT", "SYN-RECEIVED", "CLOSE-WAIT", "LAST-ACK", "TIME-WAIT"):
        assert name in svg
