"""Soak: hostile load against tcplab's servers, memory and answers printed side by side.

Each section runs a server in its own process, loads it the way an attacker would, and
prints the server's figures next to their goal. Sections (all by default, or ``--only``):

- ``http``: ``tcplab http serve --root DIR`` on loopback. One client pipelines
  ``--requests`` GETs (default 100) of a ``--size-mb`` file (default 5 MB) and reads
  nothing for ``--hold`` seconds, then reads every answer. Printed: the server's RSS when
  it is listening, its peak RSS while the answers are unread and while they are read
  (VmHWM, reset between the phases), the bytes received, and the goal: under 100 MB.
  ``--compare-src DIR`` runs the same against another source tree (``DIR/src``, e.g. a
  ``git archive`` of an older commit) in the same run, for a before/after table.
- ``tun``: ``tcplab tun serve --http`` (its defaults) under attack from inside its
  namespace: ``--silent`` peers (default 1,000) that connect from
  ``--silent-sources`` attacker addresses and then say nothing, reconnecting each time
  the server drops them, while ``--short`` short connections (default 50,000: connect,
  ``GET /`` with ``Connection: close``, read the answer, close) run ``--concurrency``
  at a time from another address.  Meanwhile a legitimate client (curl, from the
  kernel's own address 192.0.2.1) asks for ``/`` again and again, retrying on 503 or a
  reset, and each answer's time from its first try is recorded.  Printed: the server's
  RSS when listening, its peak and its last RSS under attack, the connections made,
  refused and completed, and the legitimate client's worst time to its page; the
  goals: every page within 15 s, RSS within +30 MB of the start.

Bounded: loopback and the namespace only (192.0.2.0/24, no route out); one http
connection, ``--hold`` <= 30 s, reading stops after 120 s; the tun attack stops after
``--tun-seconds`` (default 300) whatever it has done, every count is capped, the load
generator runs inside the namespace and is stopped by its PID, and the namespace goes
with the server (stopped by its PID).

Run: .venv/bin/python benchmarks/bench_soak.py [--only http|tun] [--requests 100]
     [--size-mb 5] [--hold 3] [--compare-src DIR] [--short 50000] [--silent 1000]
     [--silent-sources 4] [--concurrency 32] [--tun-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HTTP_GOAL_MB = 100.0
TUN_GOAL_MB = 30.0
TUN_GOAL_S = 15.0
STACK = "192.0.2.2"


@dataclass
class Row:
    what: str
    figures: dict[str, str]  # column (server) -> figure
    goal: str = ""


def proc_status(pid: int, key: str) -> float:
    """A VmRSS/VmHWM figure of a process, in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fp:
        for line in fp:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: clear_refs 5)."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fp:
        fp.write("5")


# ---------------------------------------------------------------- section: http


@contextlib.contextmanager
def http_server(root: Path, src: Path | None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "http", "serve", "--port", "0",
                             "--root", str(root), "--no-uvloop"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def pipelined_unread(root: Path, src: Path | None, requests: int, size: int,
                     hold: float) -> dict[str, float]:
    with http_server(root, src) as (proc, port):
        time.sleep(0.2)  # the event loop settles
        start = proc_status(proc.pid, "VmRSS")
        reset_peak(proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: soak\r\n\r\n" * requests)
            time.sleep(hold)  # read nothing
            unread = proc_status(proc.pid, "VmHWM")
            reset_peak(proc.pid)
            want = requests * size
            got, t0 = 0, time.monotonic()
            s.settimeout(30)
            while got < want and time.monotonic() - t0 < 120:
                data = s.recv(1 << 20)
                if not data:
                    break
                got += len(data)
            read_s = time.monotonic() - t0
        reading = proc_status(proc.pid, "VmHWM")
    return {"start": start, "unread": unread, "reading": reading, "bytes": got,
            "want": want, "read_s": read_s}


def http_section(args: argparse.Namespace) -> tuple[str, list[Row]]:
    size = int(args.size_mb * 1_000_000)
    with tempfile.TemporaryDirectory(prefix="tcplab-soak-") as tmp:
        root = Path(tmp)
        (root / "big.bin").write_bytes(os.urandom(size))
        runs = {"this tree": pipelined_unread(root, None, args.requests, size, args.hold)}
        if args.compare_src is not None:
            runs[str(args.compare_src)] = pipelined_unread(root, args.compare_src,
                                                           args.requests, size, args.hold)

    def col(fmt: Callable[[dict[str, float]], str]) -> dict[str, str]:
        return {name: fmt(r) for name, r in runs.items()}

    rows = [
        Row("RSS when listening", col(lambda r: f"{r['start']:.1f} MB")),
        Row(f"peak RSS, {args.requests} answers unread for {args.hold:g} s",
            col(lambda r: f"{r['unread']:.1f} MB"), f"< {HTTP_GOAL_MB:.0f} MB"),
        Row("peak RSS while the client reads them", col(lambda r: f"{r['reading']:.1f} MB"),
            f"< {HTTP_GOAL_MB:.0f} MB"),
        Row("answers received", col(lambda r: f"{r['bytes'] / 1e6:.1f} of "
                                              f"{r['want'] / 1e6:.1f} MB")),
        Row("time to read them", col(lambda r: f"{r['read_s']:.2f} s")),
        Row("goal met", col(lambda r: "yes" if max(r["unread"], r["reading"]) < HTTP_GOAL_MB
                            and r["bytes"] >= r["want"] else "NO")),
    ]
    title = (f"http serve: 1 client pipelines {args.requests} GETs of a "
             f"{args.size_mb:g} MB file and reads nothing")
    return title, rows


# ---------------------------------------------------------------- section: tun
#
# Three processes: ``tcplab tun serve --http`` (the server, in the root namespace with its
# TUN device in its own), the load generator (this file with ``--tun-load``, run inside
# the namespace with ``ip netns exec``), and this one, which samples the server's RSS and
# runs the legitimate client.


def silent_sources(n: int) -> list[str]:
    return [f"192.0.2.{100 + i}" for i in range(n)]


SHORT_SOURCE = "192.0.2.200"


async def _silent_peer(source: str, deadline: float, counts: dict[str, int]) -> None:
    """Connect, say nothing, and connect again whenever the server lets go."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((source, 0))
            await asyncio.wait_for(loop.sock_connect(s, (STACK, 80)), 10)
            counts["silent connects"] += 1
            left = deadline - loop.time()
            data = await asyncio.wait_for(loop.sock_recv(s, 65536), max(left, 0.01))
            counts["silent dropped by the server" if data == b"" else
                   "silent answered"] += 1
        except ConnectionResetError:
            counts["silent reset"] += 1
            await asyncio.sleep(0.2)
        except (TimeoutError, OSError):
            counts["silent errors"] += 1
            await asyncio.sleep(0.2)
        finally:
            s.close()


async def _short_worker(deadline: float, todo: list[int], counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    request = b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\nConnection: close\r\n\r\n"
    while todo[0] > 0 and loop.time() < deadline:
        todo[0] -= 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((SHORT_SOURCE, 0))
            await asyncio.wait_for(loop.sock_connect(s, (STACK, 80)), 10)
            await loop.sock_sendall(s, request)
            head = b""
            while True:
                data = await asyncio.wait_for(loop.sock_recv(s, 65536), 10)
                if not data:
                    break
                head = head or data[:12]
            counts["short 200" if head.startswith(b"HTTP/1.1 200") else "short other"] += 1
        except ConnectionResetError:
            counts["short reset"] += 1
        except (TimeoutError, OSError):
            counts["short errors"] += 1
        finally:
            s.close()


async def tun_load(args: argparse.Namespace) -> None:
    """The attack, from inside the namespace; one JSON line of counts every second."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.tun_seconds
    counts: dict[str, int] = dict.fromkeys(
        ["silent connects", "silent dropped by the server", "silent answered", "silent reset",
         "silent errors", "short 200", "short other", "short reset", "short errors"], 0)
    sources = silent_sources(args.silent_sources)
    silent = [asyncio.ensure_future(_silent_peer(sources[i % len(sources)], deadline, counts))
              for i in range(args.silent)]
    await asyncio.sleep(2.0)  # the silent peers first
    todo = [args.short]
    start = loop.time()
    workers = [asyncio.ensure_future(_short_worker(deadline, todo, counts))
               for _ in range(args.concurrency)]
    done = asyncio.gather(*workers)
    while not done.done():
        await asyncio.sleep(1.0)
        print(json.dumps(dict(counts, seconds=round(loop.time() - start, 1))), flush=True)
    await done
    # The silent peers stay until the short connections are done, then go.
    for t in silent:
        t.cancel()
    await asyncio.gather(*silent, return_exceptions=True)
    print(json.dumps(dict(counts, seconds=round(loop.time() - start, 1), done=True)),
          flush=True)


def _rss_sampler(pid: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(0.25):
        with contextlib.suppress(OSError, RuntimeError):
            samples.append(proc_status(pid, "VmRSS"))


def _legit_client(netns: str, stop: threading.Event, times: list[float],
                  failures: list[str]) -> None:
    """A legitimate client: GET / until 200, retrying on 503 or a reset; its time to the
    page from the first try.  One after the other until ``stop``."""
    while not stop.is_set():
        start = time.monotonic()
        while True:
            res = subprocess.run(["ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null",
                                  "-w", "%{http_code}", "--max-time", str(TUN_GOAL_S),
                                  f"http://{STACK}/"],
                                 capture_output=True, text=True, timeout=TUN_GOAL_S + 10,
                                 check=False)
            took = time.monotonic() - start
            if res.stdout.strip() == "200":
                times.append(took)
                break
            if took > TUN_GOAL_S:
                last = res.stdout.strip() or f"curl exit {res.returncode}"
                failures.append(f"no page after {took:.1f} s (last: {last})")
                times.append(took)
                break
            time.sleep(0.25)
        stop.wait(0.5)


def tun_attack(args: argparse.Namespace, src: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    with tempfile.TemporaryFile("w+") as errlog:
        server = subprocess.Popen([sys.executable, "-m", "tcplab", "tun", "serve", "--http"],
                                  stdout=subprocess.PIPE, stderr=errlog, text=True, env=env,
                                  start_new_session=True)
        load: subprocess.Popen[str] | None = None
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            assert server.stdout is not None
            netns = server.stdout.readline().strip()
            if not netns.startswith("tcplab-"):
                errlog.seek(0)
                raise RuntimeError(f"tun serve did not start: {errlog.read().strip()[-300:]}")
            for addr in [*silent_sources(args.silent_sources), SHORT_SOURCE]:
                subprocess.run(["ip", "-n", netns, "addr", "add", f"{addr}/24", "dev",
                                "tcplab0"], check=True, timeout=10)
            subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w",
                            "net.ipv4.ip_local_port_range=1024 65535"], check=True, timeout=10)
            time.sleep(1.0)  # the event loop settles
            start_rss = proc_status(server.pid, "VmRSS")
            samples: list[float] = []
            times: list[float] = []
            failures: list[str] = []
            threads = [threading.Thread(target=_rss_sampler, args=(server.pid, stop, samples)),
                       threading.Thread(target=_legit_client,
                                        args=(netns, stop, times, failures))]
            for th in threads:
                th.start()
            load = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, os.path.abspath(__file__),
                 "--tun-load", "--short", str(args.short), "--silent", str(args.silent),
                 "--silent-sources", str(args.silent_sources), "--concurrency",
                 str(args.concurrency), "--tun-seconds", str(args.tun_seconds)],
                stdout=subprocess.PIPE, text=True)
            last: dict[str, Any] = {}
            assert load.stdout is not None
            for line in load.stdout:
                with contextlib.suppress(ValueError):
                    last = json.loads(line)
                    if args.verbose:
                        print(f"  {line.strip()}  RSS {samples[-1] if samples else 0:.1f} MB",
                              file=sys.stderr)
            load.wait(30)
            end_rss = proc_status(server.pid, "VmRSS")
        finally:
            stop.set()
            for th in threads:
                th.join(60)
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(10)
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(10)
        errlog.seek(0)
        tail = errlog.read().strip().splitlines()
    return {"start": start_rss, "peak": max(samples, default=end_rss), "end": end_rss,
            "counts": last, "times": times, "failures": failures,
            "stopped": next((ln for ln in tail if ln.startswith("stopped after")), "")}


def tun_section(args: argparse.Namespace) -> tuple[str, list[Row]]:
    runs = {"this tree": tun_attack(args, None)}
    if args.compare_src is not None:
        runs[str(args.compare_src)] = tun_attack(args, args.compare_src)

    def col(fmt: Callable[[dict[str, Any]], str]) -> dict[str, str]:
        return {name: fmt(r) for name, r in runs.items()}

    def c(r: dict[str, Any], key: str) -> int:
        return int(r["counts"].get(key, 0))

    def ok(r: dict[str, Any]) -> bool:
        return (not r["failures"] and bool(r["times"]) and max(r["times"]) <= TUN_GOAL_S
                and max(r["peak"], r["end"]) - r["start"] <= TUN_GOAL_MB)

    rows = [
        Row("RSS when listening", col(lambda r: f"{r['start']:.1f} MB")),
        Row("peak RSS under attack", col(lambda r: f"{r['peak']:.1f} MB (+"
                                                   f"{r['peak'] - r['start']:.1f})"),
            f"<= +{TUN_GOAL_MB:.0f} MB"),
        Row("RSS at the end", col(lambda r: f"{r['end']:.1f} MB (+{r['end'] - r['start']:.1f})"),
            f"<= +{TUN_GOAL_MB:.0f} MB"),
        Row("short connections answered 200", col(
            lambda r: f"{c(r, 'short 200')} of {args.short} in "
                      f"{r['counts'].get('seconds', 0):.0f} s "
                      f"({c(r, 'short 200') / max(r['counts'].get('seconds', 0), 1e-9):.0f}/s)")),
        Row("  other answers / reset / errors", col(
            lambda r: f"{c(r, 'short other')} / {c(r, 'short reset')} / "
                      f"{c(r, 'short errors')}")),
        Row("silent peers' connections", col(
            lambda r: f"{c(r, 'silent connects')} ({args.silent} at a time)")),
        Row("  dropped by the server (idle) / reset", col(
            lambda r: f"{c(r, 'silent dropped by the server')} / {c(r, 'silent reset')}")),
        Row("legitimate client: pages fetched", col(lambda r: f"{len(r['times'])}")),
        Row("  time to its page: median / worst", col(
            lambda r: (f"{statistics.median(r['times']):.2f} s / {max(r['times']):.2f} s"
                       if r["times"] else "none")), f"<= {TUN_GOAL_S:.0f} s"),
        Row("server's own count", col(lambda r: r["stopped"].split(";")[0] or "?")),
        Row("goal met", col(lambda r: "yes" if ok(r) else "NO")),
    ]
    title = (f"tun serve --http: {args.short} short connections ({args.concurrency} at a "
             f"time) and {args.silent} silent peers from {args.silent_sources} addresses")
    return title, rows


# ---------------------------------------------------------------- printing, main

SECTIONS: dict[str, Callable[[argparse.Namespace], tuple[str, list[Row]]]] = {
    "http": http_section,
    "tun": tun_section,
}


def print_table(title: str, rows: list[Row]) -> None:
    columns = list(rows[0].figures)
    w0 = max(len(r.what) for r in rows)
    widths = [max(len(c), *(len(r.figures[c]) for r in rows)) for c in columns]
    print(title)
    print(f"  {'':<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths,
                                                                      strict=True))
          + "  goal")
    for r in rows:
        cells = "  ".join(f"{r.figures[c]:>{w}}" for c, w in zip(columns, widths, strict=True))
        print(f"  {r.what:<{w0}}  {cells}  {r.goal}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--only", choices=sorted(SECTIONS), action="append",
                    help="run only this section (repeatable)")
    ap.add_argument("--requests", type=int, default=100, help="pipelined GETs (<= 1000)")
    ap.add_argument("--size-mb", type=float, default=5.0, help="size of the file (<= 50 MB)")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds the client reads nothing")
    ap.add_argument("--compare-src", type=Path, default=None,
                    help="also run the servers from this source tree (DIR/src)")
    ap.add_argument("--short", type=int, default=50_000, help="tun: short connections")
    ap.add_argument("--silent", type=int, default=1000, help="tun: silent peers at a time")
    ap.add_argument("--silent-sources", type=int, default=4,
                    help="tun: addresses the silent peers come from")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="tun: short connections at a time")
    ap.add_argument("--tun-seconds", type=float, default=300.0,
                    help="tun: the attack stops after this long, done or not")
    ap.add_argument("--verbose", action="store_true", help="tun: the counts every second")
    ap.add_argument("--tun-load", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.requests = max(1, min(args.requests, 1000))
    args.size_mb = max(0.001, min(args.size_mb, 50.0))
    args.hold = max(0.1, min(args.hold, 30.0))
    args.short = max(1, min(args.short, 200_000))
    args.silent = max(0, min(args.silent, 5000))
    args.silent_sources = max(1, min(args.silent_sources, 50))
    args.concurrency = max(1, min(args.concurrency, 256))
    args.tun_seconds = max(5.0, min(args.tun_seconds, 1800.0))
    if args.tun_load:
        asyncio.run(tun_load(args))
        return
    if not sys.platform.startswith("linux"):
        sys.exit("bench_soak reads /proc: Linux only")
    for name in args.only or list(SECTIONS):
        title, rows = SECTIONS[name](args)
        print_table(title, rows)


if __name__ == "__main__":
    main()
