"""List 10,000 TIME-WAIT sockets: ``tcplab sockets`` against ``ss -tan``, in one run.

Makes N server-side TIME-WAIT sockets on loopback (the server end of each connection
closes first), then times, alternately and several times each:

- ``ss -tan`` (a subprocess, output read from a pipe), and ``ss -tanp``, which finds the
  owners as ``tcplab sockets`` does by default;
- ``tcplab sockets``, the console script a user runs (a subprocess: Python's start-up and
  imports included, output read from a pipe), with and without the owner scan, and
  ``tcplab sockets --json``;
- the same listing in process (netlink dump + the plain table), and the /proc fallback.

and prints the medians side by side, with each one's ratio to ``ss -tan``. Every command
runs once untimed first, and the subprocesses may write bytecode caches (as any installed
program has them), so start-up is measured as a user meets it from the second run on. Loopback only; bounded in count (``--count``, at most
50,000) and time (``--max-seconds`` to make the sockets). The sockets expire by themselves
after 60 s.

Run: .venv/bin/python benchmarks/bench_sockets.py [--count 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tcplab.kernel.inspect import format_plain, owners_for
from tcplab.kernel.sockets import list_sockets


def make_time_wait(count: int, max_seconds: float) -> tuple[int, int]:
    """(port, made): ``made`` server-side TIME-WAIT sockets on a fresh loopback port."""
    made = 0
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(128)
        port: int = lst.getsockname()[1]
        deadline = time.monotonic() + max_seconds
        while made < count and time.monotonic() < deadline:
            # Several client addresses (all loopback), so that a new connection never
            # reuses the 4-tuple of a TIME-WAIT socket and recycles it.
            source = (f"127.0.0.{2 + made % 8}", 0)
            client = socket.create_connection(("127.0.0.1", port), timeout=5,
                                              source_address=source)
            server, _ = lst.accept()
            server.close()  # the server closes first ...
            client.recv(1)
            client.close()  # ... so its side ends in TIME-WAIT
            made += 1
    return port, made


def timed(fn: Callable[[], int], runs: int) -> tuple[float, int]:
    """Median wall time in ms over ``runs`` calls, and the line count of the last call."""
    times = []
    lines = 0
    for _ in range(runs):
        start = time.perf_counter()
        lines = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), lines


# Subprocesses as a user's shell starts them: bytecode caches allowed (a development
# environment may forbid writing them, which would time the compiler instead).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_cmd(cmd: list[str]) -> int:
    out = subprocess.run(cmd, capture_output=True, check=True, env=_ENV).stdout
    return out.count(b"\n")


def tcplab_command() -> list[str]:
    """The ``tcplab`` console script beside this Python (else ``python -m tcplab``)."""
    script = Path(sys.executable).with_name("tcplab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tcplab"]


def in_process(source: str) -> int:
    snap = list_sockets(source=source)
    return format_plain(snap.sockets, owners_for(snap.sockets)).count("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--max-seconds", type=float, default=40.0)
    args = ap.parse_args()
    count = max(1, min(args.count, 50_000))
    if shutil.which("ss") is None:
        print("ss not found (Debian package iproute2): apt-get install -y iproute2")
        sys.exit(1)
    start = time.monotonic()
    port, made = make_time_wait(count, args.max_seconds)
    print(f"made {made} TIME-WAIT sockets on 127.0.0.1:{port} in "
          f"{time.monotonic() - start:.1f} s; "
          f"{len(list_sockets(states=['time-wait']).sockets)} TIME-WAIT sockets on the machine "
          "(a new connection may recycle an old one's 4-tuple)")
    tcplab_cmd = [*tcplab_command(), "sockets"]
    candidates: list[tuple[str, Callable[[], int]]] = [
        ("ss -tan", lambda: run_cmd(["ss", "-tan"])),
        ("ss -tanp (with owners)", lambda: run_cmd(["ss", "-tanp"])),
        ("tcplab sockets", lambda: run_cmd(tcplab_cmd)),
        ("tcplab sockets --no-processes", lambda: run_cmd([*tcplab_cmd, "--no-processes"])),
        ("python -m tcplab sockets", lambda: run_cmd([sys.executable, "-m", "tcplab",
                                                      "sockets"])),
        ("tcplab sockets --json", lambda: run_cmd([*tcplab_cmd, "--json"])),
        ("in process: netlink + table", lambda: in_process("netlink")),
        ("in process: /proc + table", lambda: in_process("proc")),
    ]
    # Alternate the candidates run by run so that noise hits all of them alike.
    results: dict[str, list[float]] = {name: [] for name, _ in candidates}
    lines: dict[str, int] = {}
    for _name, fn in candidates:
        fn()  # untimed: caches filled, as for any program run before
    for _ in range(max(1, args.runs)):
        for name, fn in candidates:
            ms, n = timed(fn, 1)
            results[name].append(ms)
            lines[name] = n
    ss_ms = statistics.median(results["ss -tan"])
    print(f"\ncommand: {' '.join(tcplab_cmd)}")
    print(f"{'command':34} {'median ms':>10} {'x ss':>7} {'lines':>7}")
    for name, _ in candidates:
        ms = statistics.median(results[name])
        print(f"{name:34} {ms:10.1f} {ms / ss_ms:7.2f} {lines[name]:7d}")
    print(f"\nmedians of {args.runs} runs each; lines include the header and summary lines.")


if __name__ == "__main__":
    main()
