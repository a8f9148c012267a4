"""The wire between the two kernels: tcplab reads, names, drops, delays, duplicates, writes.

Theory of operation
-------------------
Each end's TUN device (:mod:`tcplab.onlinux.testbed`) hands tcplab every IP packet
its kernel sends. One thread waits on both file descriptors. For each packet it

1. parses the TCP segment and asks :class:`tcplab.faults.LifeRoles` which segment of
   the life this is (``syn``, ``fin``, ``last-ack``, ... and whose), in the order the
   kernels sent them;
2. checks every :class:`Rule` in order (the ``--drop``/``--delay``/``--dup`` of the
   command line, made by :func:`rule_of`, and a lesson's own, e.g. "the server's
   second data segment"): a rule applies to the first ``copies`` segments it matches,
   as the simulator's faults do. ``drop`` ends there; ``delay`` adds its seconds;
   ``dup`` sends a second copy a quarter of the link delay after the first;
3. schedules the write to the other end's TUN device at *now + one-way delay
   (+ the delays)*, from a heap ordered by due time.

Every packet that passes is logged as a :class:`Passage` (what it was, what was done,
which rule), so the trace can say what happened to each segment and why. Packets a
lesson injects (an old duplicate SYN, a spoofed SYN) go through :meth:`inject`; a
packet addressed to neither end (a SYN-ACK to a flood's spoofed address, routed to the
wire so that the server keeps its half-open connection) is logged and not delivered.

Why not nftables or tc: their rules see headers, not lives. "The second FIN", "the
ACK of the last FIN" or "every retransmission of the SYN" depend on what came
before in both directions; a rule on flags cannot tell the ACK of the last FIN from
any other bare ACK. Here the classifier sees both directions in order, exactly as the
simulator's faults do, and the same code names the segments in both.

Bounds: at most :data:`MAX_QUEUED` packets wait (more are dropped and counted), the
log keeps :data:`MAX_LOG` passages, a read takes at most 256 packets per wake-up.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcplab.faults import FaultSpec, LifeRoles, matches
from tcplab.wire.errors import WireError
from tcplab.wire.ip import IpPacket, parse_ip
from tcplab.wire.tcp import TcpSegment, parse_tcp

__all__ = ["MAX_LOG", "MAX_QUEUED", "Middlebox", "Passage", "Rule", "Seen", "rule_of"]

MAX_QUEUED = 100_000
MAX_LOG = 200_000
_READ_SIZE = 65_536
_ACTIONS = ("drop", "delay", "dup")


@dataclass(frozen=True)
class Seen:
    """What a rule is shown: the segment, who sent it, its roles in the life."""

    src: str                       #: the sending end's name ("client", "server")
    seg: TcpSegment
    roles: list[tuple[str, str]]   #: (role, side) pairs from LifeRoles
    data: bytes                    #: the whole IP packet


@dataclass
class Rule:
    """Drop, delay or duplicate the first ``copies`` segments that ``match``."""

    action: str
    match: Callable[[Seen], bool]
    name: str
    copies: int = 1
    seconds: float = 0.0
    seen: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")

    def check(self, seen: Seen) -> bool:
        if not self.match(seen):
            return False
        self.seen += 1
        if self.seen <= self.copies:
            self.applied += 1
            return True
        return False


def rule_of(spec: FaultSpec) -> Rule:
    """A command-line fault (``--drop last-ack``) as a rule of the wire."""
    return Rule(spec.action, lambda s: matches(spec, s.roles), spec.text().removeprefix("--"),
                copies=spec.copies, seconds=spec.seconds)


@dataclass
class Passage:
    """One packet through the wire, and what was done to it."""

    t_ns: int                  #: when tcplab read it (the run's clock)
    src: str                   #: the end that sent it (or the injector's name)
    dst: str                   #: the end it was for
    data: bytes
    roles: list[tuple[str, str]] = field(default_factory=list)
    action: str = "pass"       #: pass | drop | delay | dup | inject | sink
    rule: str = ""             #: the rule that acted (its command-line text)
    delayed: float = 0.0       #: seconds added to the link delay
    copies: int = 1            #: packets written (0 dropped, 2 duplicated)


class Middlebox:
    """The wire between named ends, each a TUN file descriptor (see the module doc)."""

    def __init__(self, ends: dict[str, int], delay: float, rules: list[Rule],
                 clock_ns: Callable[[], int], host_of: Callable[[str], str | None]) -> None:
        if len(ends) != 2:
            raise ValueError("the wire joins exactly two ends")
        self.ends = dict(ends)
        self.delay = delay
        self.rules = rules
        self.clock_ns = clock_ns
        self.host_of = host_of
        self.roles = LifeRoles()
        self.log: list[Passage] = []
        self.overflow = 0
        self.errors: list[str] = []
        self._other = dict(zip(ends, reversed(list(ends)), strict=True))
        self._queue: list[tuple[float, int, str, bytes]] = []  # (due, order, dst, data)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="tcplab-wire", daemon=True)

    # ------------------------------------------------------------ life

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(2.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def in_flight(self) -> int:
        """Packets waiting to be written (delayed or on the link)."""
        with self._lock:
            return len(self._queue)

    def inject(self, src: str, dst: str, data: bytes, delay: float | None = None) -> None:
        """Put a packet made by the lesson on the wire towards ``dst`` (after ``delay``,
        default the link's)."""
        when = time.monotonic() + (self.delay if delay is None else delay)
        self._log(Passage(self.clock_ns(), src, dst, bytes(data), action="inject"))
        self._schedule(when, dst, bytes(data))

    # ------------------------------------------------------------ the thread

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        fds = {fd: name for name, fd in self.ends.items()}
        try:
            while not self._stop.is_set():
                with self._lock:
                    due = self._queue[0][0] if self._queue else None
                timeout = 0.05 if due is None else max(0.0, min(0.05, due - time.monotonic()))
                try:
                    ready, _, _ = select.select([*fds, self._wake_r], [], [], timeout)
                except InterruptedError:
                    ready = []
                for fd in ready:
                    if fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                        continue
                    self._read(fd, fds[fd])
                self._write_due()
        except OSError as exc:  # a device gone under us: the run reports it
            if not self._stop.is_set():
                self.errors.append(f"the wire stopped: {exc.strerror or exc}")

    def _read(self, fd: int, src: str) -> None:
        for _ in range(256):
            try:
                data = os.read(fd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            self._handle(src, data)

    def _handle(self, src: str, data: bytes) -> None:
        now = time.monotonic()
        dst = self._other[src]
        passage = Passage(self.clock_ns(), src, dst, data)
        extra = 0.0
        dup = False
        parsed = _segment(data)
        if parsed is not None and self.host_of(parsed[0].dst) != dst:
            # To a spoofed sender (a SYN-ACK to a flood's fake address): nobody answers.
            passage.action, passage.copies = "sink", 0
            self._log(passage)
            return
        if parsed is not None:
            ip, seg = parsed
            passage.roles = self.roles.roles((ip.src, seg.src_port), (ip.dst, seg.dst_port),
                                             seg)
            seen = Seen(src, seg, passage.roles, data)
            for rule in self.rules:
                if not rule.check(seen):
                    continue
                passage.rule = passage.rule or rule.name
                if rule.action == "drop":
                    passage.action, passage.rule, passage.copies = "drop", rule.name, 0
                    self._log(passage)
                    return
                if rule.action == "delay":
                    extra += rule.seconds
                    passage.action = "delay"
                else:
                    dup = True
        passage.delayed = extra
        at = now + self.delay + extra
        self._schedule(at, dst, data)
        if dup:
            passage.action, passage.copies = "dup", 2
            self._schedule(at + self.delay * 0.25, dst, data)
        self._log(passage)

    def _log(self, passage: Passage) -> None:
        if len(self.log) < MAX_LOG:
            self.log.append(passage)

    def _schedule(self, when: float, dst: str, data: bytes) -> None:
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self.overflow += 1
                return
            heapq.heappush(self._queue, (when, next(self._order), dst, data))
        if threading.current_thread() is not self._thread:
            self._wake()

    def _write_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > now:
                    return
                _when, _o, dst, data = heapq.heappop(self._queue)
            try:
                os.write(self.ends[dst], data)
            except BlockingIOError:
                self.overflow += 1  # the device's queue is full: lost, as on a wire


def _segment(data: bytes) -> tuple[IpPacket, TcpSegment] | None:
    try:
        ip = parse_ip(data)
        if ip.proto != 6:
            return None
        return ip, parse_tcp(ip.payload)
    except WireError:
        return None
