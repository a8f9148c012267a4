"""The demo and the catalogue's scenarios, as programs for two Linux kernels.

Each function here builds a :class:`~tcplab.onlinux.run.Lesson`: the same story as the
simulator's scenario (:mod:`tcplab.scenarios`), told with real sockets: the same
ports, data, pauses and notes (with the same catalogue keys, so the pictures tell
them in English or Chinese), and the same disturbances on the wire (a SYN held up,
the last ACK lost) as rules of the middlebox. Where the simulator *chooses* something
a kernel does not let a program choose (ISNs, a server that is a script), the
scenario is not offered on Linux, and :data:`NOT_ON_LINUX` says why.

Every program is bounded: each blocking call has the lesson's timeout, and the run
has a time limit.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

from tcplab.engine.profiles import configured
from tcplab.engine.retries import model_timeout
from tcplab.faults import FaultSpec
from tcplab.onlinux.middlebox import Rule, Seen
from tcplab.onlinux.run import Lesson, Progress
from tcplab.onlinux.sides import Side, errname
from tcplab.onlinux.testbed import CLIENT_ADDR, SERVER_ADDR
from tcplab.scenarios.base import REQUEST, RESPONSE, Switches
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import SYN, Mss, TcpSegment

__all__ = ["LESSONS", "NOT_ON_LINUX", "LessonError", "demo_lesson", "lesson_for",
           "syn_budget"]

DELAY = 0.05


class LessonError(ValueError):
    """A scenario or switch that has no meaning on Linux (one line says why)."""


def syn_budget(sysctls: tuple[str, ...] = ()) -> float:
    """How long this kernel's connect() keeps sending SYNs before ETIMEDOUT (seconds):
    ``tcp_model_timeout(tcp_syn_retries, 1 s)`` plus the linear timeouts (131 s for the
    defaults, 7 s with tcp_syn_retries=2)."""
    cfg = configured("linux", sysctls)
    return model_timeout(cfg.syn_retries, 1.0) + cfg.syn_linear_timeouts


def _failed(side: Side, call: str, exc: BaseException, started_ns: int) -> None:
    secs = round((side.now_ns() - started_ns) / 1e9, 2)
    side.note(f"{side.name}: {call}() failed: {errname(exc)} after {secs:g} s",
              key="onlinux.call-failed", fact=call, host=side.name, result=errname(exc),
              why=str(exc), end=side.name, call=call, err=errname(exc), secs=secs)


def _listener(side: Side, port: int, *, reuse: bool = True, backlog: int = 128
              ) -> socket.socket:
    srv = side.socket()
    if reuse:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(backlog)
    return srv


# --------------------------------------------------------------------------- demo


def demo_lesson(delay: float = DELAY, sysctls: tuple[str, ...] = (),
                faults: tuple[FaultSpec, ...] = ()) -> Lesson:
    """``tcplab demo`` on Linux: handshake, request and response, the client closes
    first, the server 0.2 s later, TIME-WAIT (not waited out)."""
    budget = syn_budget(sysctls)
    patience = budget + 10 * delay + 5

    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.note("server: socket(), bind(80), listen()", key="app.listen", port=80)
        side.signal("listening")
        started = side.now_ns()
        try:
            conn, _addr = srv.accept()
        except OSError as exc:
            _failed(side, "accept", exc, started)
            return
        conn.settimeout(patience)
        got = b""
        while not got.endswith(b"\r\n\r\n") and len(got) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            got += chunk
        if got.endswith(b"\r\n\r\n"):
            side.note("server: request received; send the response", key="demo.respond",
                      n=len(RESPONSE))
            conn.sendall(RESPONSE)
        rest = conn.recv(4096)  # b"": the client's FIN, end of stream
        if rest:
            side.note(f"server: unexpected bytes {rest!r}")
        side.sleep(0.2)  # the server's application takes a moment before it closes
        side.note("server: recv() returned b'' (end of stream); close()",
                  key="demo.server-close", d=0.2)
        conn.close()
        srv.close()

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket(timeout=patience)
        side.note("client: connect(192.0.2.2:80)", key="demo.connect", to=f"{SERVER_ADDR}:80")
        started = side.now_ns()
        try:
            cli.connect((SERVER_ADDR, 80))
        except OSError as exc:
            _failed(side, "connect", exc, started)
            return
        side.note("client: send an HTTP request", key="demo.request", n=len(REQUEST))
        cli.sendall(REQUEST)
        side.recv_exactly(cli, len(RESPONSE))
        side.note("client: response received; close(): the client closes first",
                  key="demo.close")
        cli.close()

    return Lesson("demo", {"server": server, "client": client}, delay=delay,
                  limit=max(60.0, patience + 10), main=("client",))


# --------------------------------------------------------------------------- scenarios

#: scenarios a kernel cannot tell, and why
NOT_ON_LINUX: dict[str, str] = {}

LessonFn = Callable[[Switches, tuple[str, ...]], Lesson]
LESSONS: dict[str, LessonFn] = {}


def lesson_for(name: str, sw: Switches, sysctls: tuple[str, ...] = ()) -> Lesson:
    """The Linux lesson of catalogue scenario ``name`` with switches ``sw``."""
    if name in NOT_ON_LINUX:
        raise LessonError(f"scenario {name} cannot run on Linux: {NOT_ON_LINUX[name]}")
    fn = LESSONS.get(name)
    if fn is None:
        raise LessonError(f"unknown scenario {name!r}")
    return fn(sw, sysctls)


_ = (errno, Any, Progress, Rule, Seen, emit_ip_tcp, SYN, Mss, TcpSegment, CLIENT_ADDR)
