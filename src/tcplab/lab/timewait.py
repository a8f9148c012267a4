"""The source article's practice, measured live: Ctrl+C, TIME-WAIT, and SO_REUSEADDR.

Steps (each one measured on this kernel, over loopback):

1. Start ``tcplab http serve`` as a child process on port A with SO_REUSEADDR off (the
   article's first server), connect a keep-alive client and fetch a page.
2. Send the server SIGINT. It closes its connections first (it is the active closer), the
   client sees EOF and closes too, and the server's side of the connection moves to
   TIME-WAIT for 60 s (Linux's TCP_TIMEWAIT_LEN). The socket table shows that row and its
   countdown.
3. Try to restart on port A: socket(), SO_REUSEADDR off or on, bind(), listen(). Both fail
   with EADDRINUSE on Linux: a TIME-WAIT socket is skipped by bind() only when the new
   socket *and* the TIME-WAIT socket (which inherited the old listener's flag) both have
   SO_REUSEADDR.
4. Do it again on a second port B with a server that had SO_REUSEADDR on (the article's
   fixed program): without the flag the restart fails, with it it succeeds.

The child server resets SIGINT to Python's default handler itself (see
:func:`tcplab.http.server.run_server`): a background job of a non-interactive shell
inherits an *ignored* SIGINT, and a server that kept ignoring it could never be stopped
the way the article stops it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from tcplab.kernel.sockets import KernelSocket, list_sockets

__all__ = [
    "LabError",
    "Narrate",
    "RestartAttempt",
    "TimeWaitResult",
    "free_port",
    "run_timewait_lab",
    "try_restart",
    "wait_for_expiry",
]

Narrate = Callable[[str, str, list[KernelSocket] | None], None]
TIME_WAIT_LIMIT_S = 75.0  # bound for --wait: TCP_TIMEWAIT_LEN is 60 s on Linux


class LabError(Exception):
    """The lab cannot go on; the message says why."""


def _quiet(title: str, text: str, rows: list[KernelSocket] | None) -> None:
    return None


@dataclass(frozen=True)
class RestartAttempt:
    old_reuseaddr: bool  # did the server that left the TIME-WAIT socket set SO_REUSEADDR?
    new_reuseaddr: bool  # does the restarted server set it?
    port: int
    ok: bool
    error: str | None  # "EADDRINUSE" or another errno name
    failed_at: str | None  # "bind" or "listen"
    time_wait_sockets: int  # TIME-WAIT sockets holding the port when it was tried
    explanation: str


@dataclass
class Round:
    port: int
    old_reuseaddr: bool
    client_port: int
    time_wait: list[KernelSocket]
    server_exit_code: int | None
    stop_seconds: float


@dataclass
class TimeWaitResult:
    host: str
    rounds: list[Round] = field(default_factory=list)
    attempts: list[RestartAttempt] = field(default_factory=list)
    expiry: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "kernel": os.uname().release,
            "matrix": [asdict(a) for a in self.attempts],
            "rounds": [
                {"port": r.port, "old_reuseaddr": r.old_reuseaddr, "client_port": r.client_port,
                 "server_exit_code": r.server_exit_code,
                 "server_stop_seconds": round(r.stop_seconds, 3),
                 "time_wait": [s._asdict() for s in r.time_wait]}
                for r in self.rounds
            ],
            "expiry": self.expiry,
        }


def free_port(host: str = "127.0.0.1") -> int:
    """A port no socket uses at either end (bind(0) may pick one with TIME-WAIT sockets)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = 0
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not list_sockets(port=port).sockets:
            return int(port)
    return port


def try_restart(host: str, port: int, reuseaddr: bool) -> tuple[bool, str | None, str | None]:
    """What a restarted server's socket(), setsockopt(), bind(), listen() get: (ok, errno, call)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if reuseaddr else 0)
        step = "bind"
        try:
            s.bind((host, port))
            step = "listen"
            s.listen(16)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            return False, name, step
    return True, None, None


def explain(old: bool, new: bool, ok: bool, error: str | None) -> str:
    flag = {True: "on", False: "off"}
    head = f"old socket SO_REUSEADDR {flag[old]}, new {flag[new]}: "
    if ok and old and new:
        return head + ("bound at once. Both had SO_REUSEADDR, so Linux lets the new listener "
                       "share the port with the TIME-WAIT sockets (the article's fix works "
                       "because the same program sets it on every run).")
    if not ok and not new:
        return head + (f"{error}. A TIME-WAIT socket still holds the port and the new socket "
                       "did not ask for SO_REUSEADDR.")
    if not ok and new and not old:
        return head + (f"{error}, even with SO_REUSEADDR. On Linux a bind() may ignore a "
                       "TIME-WAIT socket only if that socket had SO_REUSEADDR too (it "
                       "inherits the old listener's flag); the old server did not set it.")
    return head + ("bound." if ok else f"{error}.") + " (Not what Linux usually does.)"


@contextlib.contextmanager
def child_server(host: str, port: int, reuseaddr: bool) -> Iterator[subprocess.Popen[bytes]]:
    """``tcplab http serve`` in a child process, ready to accept; killed by PID on the way out."""
    cmd = [sys.executable, "-m", "tcplab", "http", "serve", "--host", host, "--port", str(port),
           "--reuseaddr" if reuseaddr else "--no-reuseaddr", "--keepalive-timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 15
        line = b""
        while b"\n" not in line and time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        sel.close()
        if b"listening on" not in line:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
            raise LabError(f"the server on port {port} did not start: "
                           f"{err.strip() or line.decode(errors='replace').strip()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise LabError("the server closed before answering")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def _server_rows(port: int) -> list[KernelSocket]:
    return [s for s in list_sockets(port=port).sockets if s.local_port == port
            or s.remote_port == port]


def leave_time_wait(host: str, port: int, old_reuseaddr: bool, narrate: Narrate) -> Round:
    """Steps 1 and 2 on one port: a server, a keep-alive client, SIGINT, TIME-WAIT."""
    flag = "on" if old_reuseaddr else "off"
    with child_server(host, port, old_reuseaddr) as proc:
        narrate(f"Start the server on {host}:{port} (SO_REUSEADDR {flag})",
                f"tcplab http serve --port {port} {'--reuseaddr' if old_reuseaddr else '--no-reuseaddr'}"
                f" runs as process {proc.pid}.", None)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        client = socket.socket(family, socket.SOCK_STREAM)
        client.settimeout(5)
        try:
            client.connect((host, port))
            client.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n")
            status = _read_response(client).split(b"\r\n", 1)[0].decode()
            client_port = client.getsockname()[1]
            narrate("Connect a keep-alive client (like a browser tab)",
                    f"GET / -> {status}. The connection stays open: one ESTABLISHED socket "
                    "on each side, and the listener.", _server_rows(port))
            start = time.monotonic()
            os.kill(proc.pid, signal.SIGINT)
            # The server closes first: the client reads EOF and closes its side too.
            eof = client.recv(65536) == b""
            client.close()
            try:
                code: int | None = proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            stop_seconds = time.monotonic() - start
        finally:
            client.close()
    if code is None:
        raise LabError(f"the server (pid {proc.pid}) did not stop within 5 s of SIGINT")
    rows: list[KernelSocket] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        rows = [s for s in list_sockets(states=["time-wait"], port=port).sockets
                if s.local_port == port and s.remote_port == client_port]
        if rows:
            break
        time.sleep(0.02)
    narrate("Ctrl+C: send SIGINT to the server",
            f"The server stopped in {stop_seconds:.2f} s (exit code {code}). It closed the "
            f"connection first{' (the client read EOF and closed too)' if eof else ''}, so "
            "the server is the active closer: its side is now in TIME-WAIT, counting down "
            "from 60 s; the client's side is gone.", _server_rows(port))
    if not rows:
        raise LabError(f"no server-side TIME-WAIT socket appeared on port {port}")
    return Round(port, old_reuseaddr, client_port, rows, code, stop_seconds)


def _attempt(host: str, port: int, old: bool, new: bool) -> RestartAttempt:
    waiting = len([s for s in list_sockets(states=["time-wait"], port=port).sockets
                   if s.local_port == port])
    ok, error, step = try_restart(host, port, new)
    return RestartAttempt(old, new, port, ok, error, step, waiting, explain(old, new, ok, error))


def _check_port(host: str, port: int) -> None:
    rows = [s for s in list_sockets(port=port).sockets if s.local_port == port]
    if rows:
        busy = rows[0]
        left = max((s.expires_ms for s in rows if s.state == "TIME-WAIT"), default=0)
        more = f" ({left / 1000:.0f} s left)" if left else ""
        raise LabError(f"port {port} is not free: {len(rows)} socket(s) hold it, e.g. "
                       f"{busy.state} {busy.local}{more}; wait, or choose another with --port")


def run_timewait_lab(host: str = "127.0.0.1", port: int = 8080, second_port: int | None = None,
                     narrate: Narrate = _quiet) -> TimeWaitResult:
    """The whole practice; returns the measured restart matrix."""
    second = second_port if second_port is not None else free_port(host)
    if second == port:
        raise LabError("the two rounds need two different ports")
    _check_port(host, port)
    _check_port(host, second)
    result = TimeWaitResult(host)
    # Round 1: the article's first server, without SO_REUSEADDR.
    result.rounds.append(leave_time_wait(host, port, False, narrate))
    for new in (False, True):
        result.attempts.append(_attempt(host, port, False, new))
    narrate(f"Restart on port {port}", "\n".join(a.explanation for a in result.attempts), None)
    # Round 2: the article's fixed server, with SO_REUSEADDR, on another port (port A is
    # held by round 1's TIME-WAIT socket, which is itself the lesson).
    result.rounds.append(leave_time_wait(host, second, True, narrate))
    for new in (False, True):
        result.attempts.append(_attempt(host, second, True, new))
    narrate(f"Restart on port {second}",
            "\n".join(a.explanation for a in result.attempts[2:]), None)
    return result


def wait_for_expiry(host: str, port: int, narrate: Narrate,
                    tick: Callable[[list[KernelSocket]], None] | None = None,
                    limit: float = TIME_WAIT_LIMIT_S, interval: float = 1.0) -> dict[str, Any]:
    """Watch the TIME-WAIT sockets on ``port`` expire, then bind without SO_REUSEADDR."""
    start = time.monotonic()
    rows: list[KernelSocket] = []
    while time.monotonic() - start < limit:
        rows = [s for s in list_sockets(states=["time-wait"], port=port).sockets
                if s.local_port == port]
        if tick is not None:
            tick(rows)
        if not rows:
            break
        time.sleep(min(interval, max(0.05, max(s.expires_ms for s in rows) / 1000)))
    waited = time.monotonic() - start
    ok, error, _step = try_restart(host, port, False)
    text = (f"after {waited:.1f} s no TIME-WAIT socket holds port {port}; a plain bind() "
            + ("succeeds." if ok else f"still fails with {error}."))
    if rows:
        text = f"gave up after {waited:.1f} s with {len(rows)} TIME-WAIT socket(s) left."
    narrate("Wait for TIME-WAIT to expire", text, None)
    return {"port": port, "waited_s": round(waited, 1), "time_wait_left": len(rows),
            "plain_bind_ok": ok, "error": error}
