"""wrk against tcplab's HTTP server, uvicorn (httptools), aiohttp and ThreadingHTTPServer.

Each server runs alone in its own process on a free loopback port and answers
``GET /`` with ``Hello, world!`` (text/plain). For each server, in the same run:
wrk with keep-alive, then wrk with ``Connection: close`` (the server closes every
connection). Bounded: ``--duration`` seconds (default 5) per measurement, ``--connections``
(default 50), loopback only. uvicorn and aiohttp need the ``bench`` extra
(``pip install -e '.[bench]'``); a server whose package is missing is skipped.

Needs wrk (Debian package ``wrk``: ``apt-get update && apt-get install -y wrk``).

Run: .venv/bin/python benchmarks/bench_http.py [--duration 5] [--connections 50]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

TCPLAB = """
import sys
from tcplab.http.app import hello_handler
from tcplab.http.messages import Limits
from tcplab.http.server import ServeConfig, run_server
run_server(ServeConfig(port=int(sys.argv[1]), limits=Limits(max_connections=4096)),
           handler=hello_handler, announce=lambda line: print(line, flush=True))
"""

UVICORN = """
import sys, importlib.util
import uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})
loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop=loop,
            log_level="error", access_log=False)
"""

AIOHTTP = """
import sys, asyncio, importlib.util
from aiohttp import web
if importlib.util.find_spec("uvloop"):
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
async def hello(request):
    return web.Response(text="Hello, world!")
app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

STDLIB = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"Hello, world!"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hello).serve_forever()
"""

SERVERS: list[tuple[str, str, str | None]] = [
    ("tcplab", TCPLAB, "httptools"),
    ("uvicorn+httptools", UVICORN, "uvicorn"),
    ("aiohttp", AIOHTTP, "aiohttp"),
    ("stdlib ThreadingHTTPServer", STDLIB, None),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not start listening")


@contextlib.contextmanager
def server(code: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def wrk(port: int, duration: int, connections: int, threads: int, close: bool) -> float:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or non2xx:
        print(f"    wrk: {errors.group(0) if errors else ''} "
              f"{non2xx.group(0) if non2xx else ''}".rstrip())
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement (<= 30)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (<= 500)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = ap.parse_args()
    duration = max(1, min(args.duration, 30))
    connections = max(1, min(args.connections, 500))
    if shutil.which("wrk") is None:
        print("wrk is not installed. On Debian or Ubuntu: "
              "apt-get update && apt-get install -y wrk")
        sys.exit(1)
    print(f"wrk -t{args.threads} -c{connections} -d{duration}s, loopback, GET / -> "
          f"'Hello, world!'; {os.cpu_count()} CPUs; one server process each")
    rates: dict[str, tuple[float, float]] = {}
    for name, code, needs in SERVERS:
        if needs is not None and importlib.util.find_spec(needs) is None:
            print(f"  {name}: skipped ({needs} not installed; pip install -e '.[bench]')")
            continue
        port = free_port()
        try:
            with server(code, port):
                wrk(port, 1, connections, args.threads, close=False)  # warm-up
                keep = wrk(port, duration, connections, args.threads, close=False)
                close = wrk(port, duration, connections, args.threads, close=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"  {name}: failed: {exc}")
            continue
        rates[name] = (keep, close)
        print(f"  {name}: keep-alive {keep:,.0f} req/s, Connection: close {close:,.0f} req/s")
    if "tcplab" not in rates:
        sys.exit(1)
    base_keep, base_close = rates["tcplab"]
    print(f"\n{'server':28} {'keep-alive':>12} {'tcplab/x':>9} {'close':>10} {'tcplab/x':>9}")
    for name, (keep, close) in rates.items():
        print(f"{name:28} {keep:12,.0f} {base_keep / keep:9.2f} {close:10,.0f} "
              f"{base_close / close:9.2f}")
    print("\ntcplab/x: tcplab's rate divided by that server's (above 1: tcplab is faster).")


if __name__ == "__main__":
    main()
