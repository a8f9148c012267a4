"""Running ``tcplab watch`` around a connection life on loopback, for the tests."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tcplab.kernel.watch import lookup_state

REQUIRED = os.environ.get("TCPLAB_REQUIRE_TUN") == "1"
TCPLAB = [sys.executable, "-m", "tcplab"]


def watch_unavailable() -> str | None:
    """None when `tcplab watch` can use tracepoints here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.isdir("/sys/kernel/tracing") and not os.path.isdir(
            "/sys/kernel/debug/tracing"):
        return "no tracefs mount point"
    return None


def need_watch() -> None:
    reason = watch_unavailable()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"TCPLAB_REQUIRE_TUN=1 but tcplab watch cannot run: {reason}")
    pytest.skip(f"tcplab watch unavailable: {reason}")


def free_port() -> int:
    """A loopback port no socket uses (TIME-WAIT ones from earlier tests included)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        from tcplab.kernel.sockets import list_sockets

        if not list_sockets(port=port).sockets:
            return port
    return port


def wait_state(key: tuple[str, int, str, int], state: str, timeout: float = 3.0) -> None:
    """Wait until sock_diag reports ``state`` for this 4-tuple (a mini-socket's too)."""
    deadline = time.monotonic() + timeout
    while lookup_state(key) != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} never reached {state} (now {lookup_state(key)})")
        time.sleep(0.005)


@contextmanager
def watching(*args: str, ready_timeout: float = 20.0,
             max_seconds: float = 30.0) -> Iterator[dict[str, Any]]:
    """Run ``tcplab watch ARGS --json`` until the block ends; the result fills the dict.

    The block runs once the command says it is watching; afterwards the command gets
    SIGINT (the same as Ctrl+C) and its JSON trace lands in ``result["doc"]``.
    """
    proc = subprocess.Popen([*TCPLAB, "watch", *args, "--json", "--duration",
                             str(max_seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    result: dict[str, Any] = {"pid": proc.pid}
    try:
        assert proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + ready_timeout
        seen = ""
        while "watching" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"tcplab watch did not start: {seen}")
            if sel.select(0.2):
                seen += proc.stderr.readline()
        sel.close()
        result["ready"] = seen
        yield result
        time.sleep(0.3)  # let the last events reach the trace buffers and the capture
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        result["stderr"] = seen + err
        assert proc.returncode == 0, result["stderr"]
        result["doc"] = json.loads(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def states(doc: dict[str, Any], host: str, conn: str | None = None) -> list[str]:
    """The states one end entered, in order (``conn``: only that connection)."""
    return [e["to"] for e in doc["events"] if e["kind"] == "state" and e["host"] == host
            and (conn is None or e["conn"] == conn)]


def timeline(doc: dict[str, Any], keep: Callable[[dict[str, Any]], bool] = lambda e: True
             ) -> list[str]:
    """States as "host:STATE" and segments as "host>FLAGS", in the trace's order."""
    out = []
    for e in doc["events"]:
        if not keep(e):
            continue
        if e["kind"] == "state":
            out.append(f"{e['host']}:{e['to']}")
        elif e["kind"] == "segment" and e["event"] == "send":
            out.append(f"{e['host']}>{e['flags']}")
    return out
