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
- ``tun``: ``tcplab tun serve --http`` under 50,000 short connections and 1,000 silent
  peers (to be added as a second section of this file).

Bounded: loopback only, one connection, ``--hold`` <= 30 s, reading stops after 120 s;
each server is stopped by its PID.

Run: .venv/bin/python benchmarks/bench_soak.py [--only http] [--requests 100]
     [--size-mb 5] [--hold 3] [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HTTP_GOAL_MB = 100.0


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


# ---------------------------------------------------------------- printing, main

SECTIONS: dict[str, Callable[[argparse.Namespace], tuple[str, list[Row]]]] = {
    "http": http_section,
    # "tun": tun_section,  (tun serve --http: short connections and silent peers)
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
    args = ap.parse_args()
    args.requests = max(1, min(args.requests, 1000))
    args.size_mb = max(0.001, min(args.size_mb, 50.0))
    args.hold = max(0.1, min(args.hold, 30.0))
    if not sys.platform.startswith("linux"):
        sys.exit("bench_soak reads /proc: Linux only")
    for name in args.only or list(SECTIONS):
        title, rows = SECTIONS[name](args)
        print_table(title, rows)


if __name__ == "__main__":
    main()
