"""The lesson's programs: one thread per end, inside that end's namespace, real sockets.

A lesson (:mod:`tcplab.onlinux.lessons`) gives a function per end. Each runs in its own
thread, which first enters the end's network namespace (``setns``, per thread), so
every socket it makes is a kernel socket of that namespace, and every system call it
makes is seen by the tracepoints with that thread's id: :class:`Sides` records the
ids, so a state change made by ``connect()`` or ``listen()`` is known to be this
lesson's (tracepoints report every namespace of the machine).

A :class:`Side` is what the function gets: ``socket()`` (with a timeout, so no call
waits for ever), ``note()`` (a line in the trace at this moment, with the same
catalogue keys as the simulator's scenarios), ``signal()``/``wait()`` to order the
two ends ("the server listens" before "the client connects"), and ``sleep()``.
Every wait is bounded: a lesson ends within its time limit whatever the kernels do.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from tcplab.onlinux.middlebox import Middlebox
from tcplab.trace import Event, note_event
from tcplab.tun.netns import enter_netns

__all__ = ["Side", "SideFailed", "Sides", "Socket", "errname"]

Socket = socket.socket


class SideFailed(Exception):
    """A lesson's program failed in a way the lesson did not expect (a bug, not TCP)."""


def errname(exc: BaseException) -> str:
    """ETIMEDOUT, ECONNREFUSED, ...: the errno name of an OSError ("timeout" for
    Python's own timeout, which is not the kernel's)."""
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


class Sides:
    """The two ends' threads, their marks, their notes."""

    def __init__(self, clock_ns: Callable[[], int], t0_ns: int, limit: float) -> None:
        self.clock_ns = clock_ns
        self.t0_ns = t0_ns
        self.limit = limit  #: the longest any call may block (seconds)
        self.tids: dict[int, str] = {}  #: thread id -> end name
        self.notes: list[Event] = []
        self.errors: list[str] = []
        self._marks: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[tuple[str, threading.Thread]] = []
        self.stopping = threading.Event()
        self.sockets: list[Socket] = []
        self.wire: Middlebox | None = None  #: for a lesson that puts its own packets on it

    def start(self, name: str, netns: str, addr: str, fn: Callable[[Side], None]) -> None:
        side = Side(self, name, addr)
        ready = threading.Event()

        def run() -> None:
            try:
                enter_netns(netns)
                with self._lock:
                    self.tids[threading.get_native_id()] = name
                ready.set()
                fn(side)
            except _Stopped:
                pass
            except BaseException as exc:  # reported by the run, as one line
                if not self.stopping.is_set():
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    self.errors.append(f"{name}: {type(exc).__name__}: {exc} "
                                       f"({where.name}, line {where.lineno})")
            finally:
                ready.set()
                side.close_all()

        th = threading.Thread(target=run, name=f"tcplab-{name}", daemon=True)
        self._threads.append((name, th))
        th.start()
        ready.wait(5.0)

    def alive(self, names: tuple[str, ...] | None = None) -> bool:
        """Is a program still running (of the ends ``names``, default all)?"""
        return any(th.is_alive() for name, th in self._threads
                   if names is None or name in names)

    def stop(self, wait: float = 0.5) -> None:
        """End the programs: every wait released, every socket shut down (which wakes a
        thread blocked in accept(), recv() or connect()) and closed; then up to ``wait``
        seconds for the threads (daemons: one still blocked ends with the process)."""
        self.stopping.set()
        with self._lock:
            for ev in self._marks.values():
                ev.set()
            socks = list(self.sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        deadline = time.monotonic() + wait
        for _name, th in self._threads:
            if th.ident is None:   # interrupted between its creation and start(): never ran
                continue
            th.join(max(deadline - time.monotonic(), 0.0))

    def marks(self) -> set[str]:
        """The marks signalled so far."""
        with self._lock:
            return {name for name, ev in self._marks.items() if ev.is_set()}

    def mark(self, name: str) -> threading.Event:
        with self._lock:
            return self._marks.setdefault(name, threading.Event())

    def add_note(self, ev: Event) -> None:
        with self._lock:
            if len(self.notes) < 10_000:
                self.notes.append(ev)


class _Stopped(Exception):
    """The run is over (Ctrl+C, its time limit): the program stops where it is."""


class Side:
    """What a lesson's program for one end can do (see the module doc)."""

    def __init__(self, sides: Sides, name: str, addr: str) -> None:
        self.sides = sides
        self.name = name
        self.addr = addr
        self._mine: list[Socket] = []

    def now_ns(self) -> int:
        return self.sides.clock_ns()

    def socket(self, timeout: float | None = None) -> Socket:
        """A TCP socket of this end's namespace (IPv4), with a timeout on every call."""
        self._check()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(min(timeout, self.sides.limit) if timeout is not None
                     else self.sides.limit)
        self._mine.append(s)
        with self.sides._lock:
            self.sides.sockets.append(s)
        return s

    def note(self, text: str, **fields: Any) -> None:
        """A note in the trace now (``key`` and values as the simulator's scenarios)."""
        if self.sides.stopping.is_set():
            return  # the run is over: what a stopped program says is not the lesson's
        ts = self.now_ns()
        ev: Event = dict(note_event((ts - self.sides.t0_ns) / 1e9, text, **fields))
        ev["t_ns"] = ts
        self.sides.add_note(ev)

    def inject(self, dst: str, data: bytes, *, src: str | None = None,
               delay: float | None = None) -> None:
        """Put a packet this program made (an old SYN, a spoofed one) on the wire to
        ``dst``, after ``delay`` (default: the wire's one-way delay)."""
        wire = self.sides.wire
        if wire is None:
            raise SideFailed("no wire to inject into")
        wire.inject(src or self.name, dst, data, delay)

    def signal(self, mark: str) -> None:
        self.sides.mark(mark).set()

    def wait(self, mark: str, timeout: float | None = None) -> bool:
        """Wait for the other end's ``signal(mark)``; False after ``timeout``."""
        limit = self.sides.limit if timeout is None else min(timeout, self.sides.limit)
        ok = self.sides.mark(mark).wait(limit)
        self._check()
        return ok

    def sleep(self, seconds: float) -> None:
        self.sides.stopping.wait(seconds)
        self._check()

    def _check(self) -> None:
        if self.sides.stopping.is_set():
            raise _Stopped

    def close_all(self) -> None:
        for s in self._mine:
            with contextlib.suppress(OSError):
                s.close()

    def recv_exactly(self, sock: Socket, n: int) -> bytes:
        """Read ``n`` bytes (less at end of stream); bounded by the socket's timeout."""
        data = b""
        deadline = time.monotonic() + self.sides.limit
        while len(data) < n and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def recv_all(self, sock: Socket, limit: int = 1 << 20) -> bytes:
        """Read until end of stream (at most ``limit`` bytes)."""
        data = b""
        deadline = time.monotonic() + self.sides.limit
        while len(data) < limit and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
