"""One lesson on Linux: the testbed, the wire, the programs, the trace; everything removed.

Theory of operation
-------------------
:func:`run_lesson` builds, in this order, the two namespaces with their TUN devices
and sysctls (:class:`~tcplab.onlinux.testbed.Testbed`), a private tracefs instance with
the TCP tracepoints (:class:`tcplab.kernel.tracefs.TraceInstance`), the wire
(:class:`~tcplab.onlinux.middlebox.Middlebox`) with the faults, and then starts the
lesson's programs (:mod:`~tcplab.onlinux.sides`). Its main loop waits on the trace
buffers and both captures, and hands what arrives to a
:class:`tcplab.kernel.watch.KernelWatch`:

* tracepoint records, only those of this lesson's sockets (:class:`Owners`:
  tracepoints report every namespace of the machine);
* each captured packet twice: leaving its sender's device (``sent``: the ``segment``
  event, at the kernel's timestamp) and arriving at the receiver's (``arrived``: the
  segment that caused a state change, a FIN reaching a timewait mini-socket);
* sock_diag in each namespace for the timewait mini-sockets, and their timer:
  when a connection enters TIME-WAIT, and again when a FIN reaches it there, the
  milliseconds left on its timer become ``timer`` events (a retransmitted FIN
  restarts the 60 s, which no tracepoint shows).

It stops when the lesson's point is shown: the programs are done, nothing is on the
wire, every connection is CLOSED or in TIME-WAIT (whose fixed 60 s on Linux are not
waited out: a note says so, with the time sock_diag shows left), or at the lesson's
time limit. Then the wire's log gives each segment its fate (dropped, delayed,
duplicated, with the rule that did it), and everything made is removed, in reverse
order, also on Ctrl+C and on errors.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcplab.faults import FaultSpec
from tcplab.i18n import text
from tcplab.kernel.tracefs import (
    EVENTS,
    TracefsUnavailable,
    TraceInstance,
    TraceRecord,
    endpoints,
)
from tcplab.kernel.watch import KernelWatch, clock_now, conn_text, packet_clock_offset
from tcplab.onlinux.middlebox import Middlebox, Passage, Rule, rule_of
from tcplab.onlinux.sides import Side, Sides
from tcplab.onlinux.testbed import (
    CLIENT_ADDR,
    COUNTERS,
    SERVER_ADDR,
    End,
    LinuxUnavailable,
    Testbed,
)
from tcplab.signals import deferred
from tcplab.trace import Event, note_event, timer_event
from tcplab.tun.netns import list_tcplab_namespaces, owner_alive
from tcplab.wire.errors import WireError
from tcplab.wire.ip import parse_ip_tcp

__all__ = ["Lesson", "LinuxResult", "Owners", "Progress", "kernel_filters", "needs_root",
           "run_lesson"]

TCP_LISTEN = 10
TCP_SYN_RECV = 3
TCP_CLOSE = 7
GRACE = 0.3        #: seconds of quiet after the point is shown, before the run ends
TW_RESTART = 0.1   #: a deadline this much later than before: the timer was restarted (s)
Key = tuple[str, int, str, int]

_CAP_NET_ADMIN = 12
_CAP_NET_RAW = 13
_CAP_SYS_ADMIN = 21


@dataclass
class Lesson:
    """A story for two kernels: one program per end, the wire's own faults, limits."""

    name: str
    #: end name -> its program, started in this order (the server first, usually)
    programs: dict[str, Callable[[Side], None]]
    ends: tuple[tuple[str, str], ...] = (("client", CLIENT_ADDR), ("server", SERVER_ADDR))
    rules: list[Rule] = field(default_factory=list)  #: the lesson's own faults
    delay: float = 0.05      #: one-way delay of the wire (seconds)
    limit: float = 60.0      #: the whole run at most (seconds)
    #: the point is shown: checked after the programs ended and the wire is empty
    settled: Callable[[Progress], bool] | None = None
    #: extra addresses and the name their packets are drawn under (spoofed senders)
    others: dict[str, str] = field(default_factory=dict)
    #: end name -> extra prefixes routed to its TUN device (replies to spoofed senders;
    #: the wire does not deliver them)
    routes: dict[str, list[str]] = field(default_factory=dict)
    #: the ends whose programs must have finished before the run ends (None: all); the
    #: others (a server waiting in accept()) are stopped then
    main: tuple[str, ...] | None = None


@dataclass
class Progress:
    """What the run knows so far (for a lesson's ``settled``)."""

    states: dict[tuple[str, str], str]  #: (host, conn) -> state now
    t: float                            #: seconds since the start
    events: list[Event]
    marks: set[str]                     #: the programs' signals so far


@dataclass
class LinuxResult:
    lesson: str
    events: list[Event]
    meta: dict[str, Any]
    why: str                     #: settled | limit | interrupted
    wall: float
    passages: list[Passage]
    rules: list[Rule]
    notices: list[str]


def needs_root(command: str) -> str | None:
    """None when this process may make namespaces, read tracefs and capture; else the one
    line that says what is missing and how to run it."""
    import shlex
    import sys

    caps = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status",
                                                         encoding="ascii") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    need = (1 << _CAP_NET_ADMIN) | (1 << _CAP_NET_RAW) | (1 << _CAP_SYS_ADMIN)
    if caps & need == need and os.geteuid() == 0:
        return None
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) or command
    return (f"tcplab {command} needs root (namespaces, TUN devices, the kernel's "
            f"tracepoints and a packet capture). Run: sudo tcplab {argv}")


# --------------------------------------------------------------------------- ownership


def _alone() -> bool:
    """No tcplab namespace of another live process (then our addresses are ours alone)."""
    mine = f"tcplab-{os.getpid()}-"
    return not [n for n in list_tcplab_namespaces() if not n.startswith(mine)
                and owner_alive(n)]


class Owners:
    """Which tracepoint records are this lesson's sockets.

    A socket is ours when a program's thread made the call (its thread id is known), when
    one of our listeners made it (a connection accepted: its 4-tuple is then in our
    namespace's sock_diag), or, for records about no socket (a RST to a closed port),
    when its addresses are ours and no other tcplab namespace is alive.
    """

    def __init__(self, tids: dict[int, str], ends: list[End],
                 alone: Callable[[], bool] = _alone) -> None:
        self.tids = tids
        self.ends = ends
        self.alone = alone
        self.mine: set[object] = set()
        self.listeners: set[tuple[str, int]] = set()
        self._addrs = {e.addr for e in ends}

    def keep(self, rec: TraceRecord) -> bool:
        v = rec.values
        sk = v.get("rx_sk") if rec.event == "kfree_skb" else v.get("skaddr")
        if sk and sk in self.mine:
            if rec.event == "inet_sock_set_state" and v.get("newstate") == TCP_CLOSE:
                self.mine.discard(sk)  # the address may be a new socket's next time
            return True
        if rec.event != "inet_sock_set_state":
            if sk or rec.event == "kfree_skb":
                return False
            ends = endpoints(v)
            return ends is not None and ends[1] in self._addrs and ends[3] in self._addrs \
                and self.alone()
        if not self._decide(rec):
            return False
        ends = endpoints(v)
        if v.get("newstate") == TCP_LISTEN and ends is not None:
            self.listeners.add((ends[1], ends[2]))
        if v.get("newstate") != TCP_CLOSE and len(self.mine) < 100_000:
            self.mine.add(sk)
        return True

    def _decide(self, rec: TraceRecord) -> bool:
        if not rec.in_irq and rec.pid in self.tids:
            return True  # a program's system call
        v = rec.values
        ends = endpoints(v)
        if ends is None or v.get("oldstate") != TCP_LISTEN \
                or v.get("newstate") != TCP_SYN_RECV:
            return False
        if not any((a, ends[2]) in self.listeners for a in (ends[1], "0.0.0.0")):
            return False
        for end in self.ends:  # a child of our listener: is it in our namespace?
            if end.addr == ends[1]:
                with contextlib.suppress(OSError):
                    return end.lookup((ends[1], ends[2], ends[3], ends[4])) is not None \
                        or self.alone()
        return self.alone()


def kernel_filters(addrs: list[str]) -> dict[str, str]:
    """In-kernel filters: TCP sockets with one of our addresses (or a wildcard listener)."""
    nums = [int.from_bytes(socket.inet_aton(a), "little") for a in addrs]
    either = " || ".join(f"saddr == {n} || daddr == {n}" for n in nums)
    return {
        "sock/inet_sock_set_state": f"protocol == 6 && family == 2 && ({either} || saddr == 0)",
        "tcp/tcp_retransmit_skb": either,
        "tcp/tcp_retransmit_synack": either,
        "tcp/tcp_receive_reset": either,
        "skb/kfree_skb": "(protocol == 2048 || protocol == 34525) && rx_sk != 0",
    }


# --------------------------------------------------------------------------- the run


def _key_of(conn: str) -> Key | None:
    """"192.0.2.1:40000-192.0.2.2:80" -> its 4-tuple (IPv4)."""
    try:
        a, b = conn.split("-")
        la, lp = a.rsplit(":", 1)
        ra, rp = b.rsplit(":", 1)
        return la, int(lp), ra, int(rp)
    except ValueError:
        return None


class _Run:
    def __init__(self, lesson: Lesson, sysctls: tuple[str, ...], faults: tuple[FaultSpec, ...],
                 lang: str, notice: Callable[[str], None]) -> None:
        self.lesson = lesson
        self.sysctls = sysctls
        self.faults = faults
        self.lang = lang
        self.notice = notice
        self.notices: list[str] = []
        self.testbed = Testbed(sysctls, lesson.ends, routes=lesson.routes)
        self.instance: TraceInstance | None = None
        self.wire: Middlebox | None = None
        self.sides: Sides | None = None
        self.watch: KernelWatch | None = None
        self.clock = "tai"
        self.offset = 0
        self.t0_ns = 0
        self.extra: list[Event] = []  # notes and timers made here
        self.states: dict[tuple[str, str], str] = {}
        self.arrivals: dict[bytes, list[int]] = {}
        self.tw: dict[tuple[str, str], float] = {}  # (host, conn) -> TIME-WAIT deadline
        self.probes: list[tuple[float, str, str, int]] = []  # (when, host, conn, ts)
        self.last_event = 0.0
        self.owners: Owners | None = None
        self.rules: list[Rule] = []
        self._log_seen = 0
        self.counters: dict[str, dict[str, int]] = {}  # at the start, per end

    # ------------------------------------------------------------ set-up

    def open(self) -> None:
        self.testbed.open()
        inst = TraceInstance(EVENTS, kernel_filters([e.addr for e in self.testbed.ends]))
        try:
            inst.open()
        except (TracefsUnavailable, OSError) as exc:
            why = str(exc) if isinstance(exc, TracefsUnavailable) else exc.strerror
            raise LinuxUnavailable(f"the kernel's tracepoints are not available ({why}); "
                                   "a lesson on Linux needs them") from None
        self.instance = inst
        if inst.missing:
            self._notice("this kernel lacks " + ", ".join(
                e.replace("/", ":") for e in inst.missing) + "; the lesson runs without")
        self.clock = inst.clock
        self.offset = packet_clock_offset(self.clock)
        clock = self.clock
        self.t0_ns = clock_now(clock)
        symbols = {fmt.name: fmt.symbols for fmt in inst.formats.values()}
        others = self.lesson.others

        def host_of(addr: str) -> str | None:
            return self.testbed.host_of(addr) or others.get(addr)

        self.watch = KernelWatch(lang=self.lang, t0_ns=self.t0_ns,
                                 now_ns=lambda: clock_now(clock), lookup=self._lookup_state,
                                 on_event=self._on_event, symbols=symbols, host_of=host_of,
                                 host_names=(self.lesson.ends[0][0], self.lesson.ends[1][0]))
        self.rules = [*self.lesson.rules, *(rule_of(f) for f in self.faults)]
        self.wire = Middlebox({e.name: e.fd for e in self.testbed.ends}, self.lesson.delay,
                              self.rules, lambda: clock_now(clock), host_of)
        self.sides = Sides(lambda: clock_now(clock), self.t0_ns, self.lesson.limit)
        self.sides.wire = self.wire
        self.owners = Owners(self.sides.tids, self.testbed.ends)
        self.counters = {e.name: e.counters() for e in self.testbed.ends}
        self.wire.start()

    def _notice(self, line: str) -> None:
        self.notices.append(line)
        self.notice(line)

    def close(self) -> None:
        with deferred():
            if self.sides is not None:
                self.sides.stop()
            if self.wire is not None:
                self.wire.stop()
            if self.instance is not None:
                self.instance.close()
            self.testbed.close()

    # ------------------------------------------------------------ the loop

    def run(self) -> str:
        assert self.sides is not None and self.wire is not None
        for name, program in self.lesson.programs.items():
            end = self.testbed.end(name)
            self.sides.start(name, end.ns.name, end.addr, program)
        deadline = time.monotonic() + self.lesson.limit
        quiet_since: float | None = None
        why = "limit"
        while time.monotonic() < deadline:
            self._wait(0.02)
            self._pump()
            if self.sides.errors or self.wire.errors:
                why = "error"
                break
            if self._settled():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= GRACE:
                    why = "settled"
                    break
            else:
                quiet_since = None
        self._pump()
        return why

    def _wait(self, timeout: float) -> None:
        assert self.instance is not None
        extra = [e.capture.fileno() for e in self.testbed.ends if e.capture is not None]
        self.instance.wait(timeout, extra)

    def _pump(self) -> None:
        watch, inst, owners = self.watch, self.instance, self.owners
        assert watch is not None and inst is not None and owners is not None
        for rec in inst.read_available():
            if owners.keep(rec):
                watch.feed_record(rec)
        for end in self.testbed.ends:
            if end.capture is None:
                continue
            for pkt in end.capture.read_available():
                ts = pkt.ts_ns + self.offset
                if pkt.outgoing:
                    watch.feed_packet(ts, pkt.data, "sent")
                else:
                    watch.feed_packet(ts, pkt.data, "arrived")
                    self._arrived(end, ts, pkt.data)
        wire = self.wire
        assert wire is not None
        log = wire.log
        while self._log_seen < len(log):
            p = log[self._log_seen]
            self._log_seen += 1
            if p.action == "inject":  # made by the lesson: no kernel sent it
                watch.feed_packet(p.t_ns, p.data, "sent")
        watch.advance()
        self._probe()

    def _settled(self) -> bool:
        assert self.sides is not None and self.wire is not None and self.watch is not None
        if self.sides.alive(self.lesson.main) or self.wire.in_flight():
            return False
        if any(when for when, *_ in self.probes):
            return False
        if time.monotonic() - self.last_event < 0.05:
            return False
        states = {k: v for k, v in self.states.items() if v != "LISTEN"}
        if self.lesson.settled is not None:
            progress = Progress(dict(states), (clock_now(self.clock) - self.t0_ns) / 1e9,
                                self.watch.events, self.sides.marks())
            return self.lesson.settled(progress)
        return all(s in ("CLOSED", "TIME-WAIT") for s in states.values())

    # ------------------------------------------------------------ TIME-WAIT's timer

    def _on_event(self, ev: Event) -> None:
        self.last_event = time.monotonic()
        if ev["kind"] != "state":
            return
        key = (str(ev["host"]), str(ev["conn"]))
        self.states[key] = str(ev["to"])
        if ev["to"] == "TIME-WAIT":
            self.probes.append((time.monotonic(), key[0], key[1], int(ev["t_ns"])))
        elif ev["from"] == "TIME-WAIT":
            self.tw.pop(key, None)

    def _arrived(self, end: End, ts: int, data: bytes) -> None:
        """A FIN reaching a connection in TIME-WAIT: look at its timer a moment later."""
        if len(self.arrivals) < 100_000:
            self.arrivals.setdefault(bytes(data), []).append(ts)
        try:
            ip, seg = parse_ip_tcp(data)
        except WireError:
            return
        if not seg.fin:
            return
        conn = conn_text((ip.dst, seg.dst_port, ip.src, seg.src_port))
        if (end.name, conn) in self.tw:
            self.probes.append((time.monotonic() + 0.005, end.name, conn, ts))

    def _probe(self) -> None:
        now = time.monotonic()
        later: list[tuple[float, str, str, int]] = []
        for when, host, conn, ts in self.probes:
            if when > now:
                later.append((when, host, conn, ts))
                continue
            self._read_timer(host, conn, ts)
        self.probes = later

    def _read_timer(self, host: str, conn: str, ts: int) -> None:
        key = _key_of(conn)
        if key is None:
            return
        try:
            found = self.testbed.end(host).lookup(key)
        except (KeyError, OSError):
            return
        if found is None or found[0] != "TIME-WAIT":
            return
        now_ns = clock_now(self.clock)
        deadline = (now_ns - self.t0_ns) / 1e9 + found[1] / 1000
        t = (ts - self.t0_ns) / 1e9
        before = self.tw.get((host, conn))
        if before is not None and deadline - before < TW_RESTART:
            return
        self.tw[(host, conn)] = deadline
        ev: Event = dict(timer_event(t, host, conn, "time-wait", "armed", round(deadline, 6)))
        ev["t_ns"] = ts
        self._extra(ev)
        left = round(deadline - t, 1)
        if before is not None:
            self._note(ts, "onlinux.tw-restart", host=host, conn=conn, end=host, left=left)
        else:
            self._note(ts, "onlinux.tw-timer", host=host, conn=conn, end=host, left=left)

    def _lookup_state(self, key: Key) -> str | None:
        """sock_diag in the namespace that holds the local end of ``key``."""
        for end in self.testbed.ends:
            if end.addr == key[0]:
                with contextlib.suppress(OSError):
                    found = end.lookup(key)
                    return None if found is None else found[0]
        return None

    # ------------------------------------------------------------ output

    def _extra(self, ev: Event) -> None:
        if len(self.extra) < 10_000:
            self.extra.append(ev)

    def _note(self, ts: int, key: str, **args: Any) -> None:
        ev: Event = dict(note_event((ts - self.t0_ns) / 1e9, text(f"note.{key}", "en", **args),
                                    key=key, **args))
        ev["t_ns"] = ts
        self._extra(ev)

    def finish(self, why: str) -> list[Event]:
        """Everything that happened, in time order, each segment with its fate."""
        watch, sides, wire = self.watch, self.sides, self.wire
        assert watch is not None and sides is not None and wire is not None
        watch.finish()
        end_ns = clock_now(self.clock)
        for (host, conn), state in sorted(self.states.items()):
            if state != "TIME-WAIT":
                continue
            deadline = self.tw.get((host, conn))
            left = round(deadline - (end_ns - self.t0_ns) / 1e9, 1) if deadline else 60.0
            self._note(end_ns, "onlinux.tw-end", host=host, conn=conn, end=host, left=left)
        if why == "limit":
            self._note(end_ns, "onlinux.limit", limit=self.lesson.limit)
        for end in self.testbed.ends:
            moved = self.moved_counters(end)
            if moved:
                self._note(end_ns, "onlinux.counters", host=end.name, end=end.name,
                           counters=", ".join(f"{k} {v}" for k, v in moved.items()))
        events = [*watch.events, *sides.notes, *self.extra]
        events.sort(key=lambda e: int(e.get("t_ns", 0)))
        _fates(events, wire.log, self.arrivals, self.t0_ns)
        for e in events:
            name = e.get("conn")
            if isinstance(name, str) and name.endswith(("-0.0.0.0:0", "-:::0", "-[::]:0")):
                e["conn"] = name.rsplit("-", 1)[0] + "-*:*"  # a listener, as the simulator names it
                if isinstance(e.get("text"), str):
                    e["text"] = e["text"].replace(name, e["conn"])
        return events

    def moved_counters(self, end: End) -> dict[str, int]:
        """The counters of :data:`COUNTERS` that moved during the lesson, and by how much."""
        before = self.counters.get(end.name, {})
        try:
            now = end.counters()
        except (OSError, TimeoutError):
            return {}
        return {k: now[k] - before.get(k, 0) for k in COUNTERS
                if k in now and now[k] != before.get(k, 0)}

    def meta(self) -> dict[str, Any]:
        inst = self.instance
        return {
            "source": "linux",
            "kernel": os.uname().release,
            "clock": self.clock,
            "t0_ns": self.t0_ns,
            "namespaces": {e.name: e.ns.name for e in self.testbed.ends},
            "addresses": {e.name: e.addr for e in self.testbed.ends},
            "sysctls": {e.name: {p.removeprefix("/proc/sys/").replace("/", "."): v
                                 for p, v in e.sysctls.items()} for e in self.testbed.ends},
            "faults": [f.text() for f in self.faults],
            "rules": {r.name: r.applied for r in self.rules},
            "tracepoints": [e.replace("/", ":") for e in inst.enabled] if inst else [],
            "delay": self.lesson.delay,
            "notices": list(self.notices),
        }


def _fates(events: list[Event], log: list[Passage], arrivals: dict[bytes, list[int]],
           t0_ns: int) -> None:
    """Each sent segment's fate from the wire's log and the receiver's capture; copies
    of duplicated ones; segments the wire injected marked as such."""
    passages: dict[bytes, list[Passage]] = {}
    for one in log:
        passages.setdefault(one.data, []).append(one)
    out: list[Event] = []
    next_id = max((int(e.get("id") or 0) for e in events if e["kind"] == "segment"),
                  default=0) + 1
    for e in events:
        out.append(e)
        if e["kind"] != "segment" or e.get("event") != "send":
            continue
        raw = e.get("raw")
        if not isinstance(raw, bytes):
            continue
        queue = passages.get(raw)
        p = queue.pop(0) if queue else None
        times = arrivals.get(raw, [])
        if p is not None and p.action == "inject":
            e["injected"] = True
        n = p.copies if p is not None else (1 if times else 0)
        got = [times.pop(0) for _ in range(min(n, len(times)))]
        if p is not None and p.action == "drop":
            e["fate"], e["reason"] = "dropped", f"fault: {p.rule}"
            continue
        if p is not None and p.action == "sink":
            e["fate"], e["reason"] = "dropped", "no route to host"  # a spoofed address
            continue
        if p is None and not got:
            e["fate"], e["reason"] = "dropped", "not read from the TUN device"
            continue
        if got:
            e["t_arrive"] = (got[0] - t0_ns) / 1e9
        if p is not None and p.delayed:
            e["delayed"] = p.delayed
            e["reason"] = f"fault: {p.rule}"
        if p is not None and p.action == "dup":
            e["fate"], e["reason"] = "duplicated", f"fault: {p.rule}"
            copy: Event = {**e, "id": next_id, "copy_of": e["id"], "fate": "delivered"}
            copy.pop("raw", None)
            copy.pop("reason", None)  # the fault hit one segment; the copy is its effect
            next_id += 1
            if len(got) > 1:
                copy["t_arrive"] = (got[1] - t0_ns) / 1e9
            out.append(copy)
    events[:] = out


def run_lesson(lesson: Lesson, *, sysctls: tuple[str, ...] = (),
               faults: tuple[FaultSpec, ...] = (), lang: str = "en",
               notice: Callable[[str], None] | None = None,
               command: str = "demo") -> LinuxResult:
    """Run ``lesson`` on Linux (see the module doc). Raises LinuxUnavailable (one line)."""
    why_not = needs_root(command)
    if why_not is not None:
        raise LinuxUnavailable(why_not)
    t0 = time.monotonic()
    run = _Run(lesson, sysctls, faults, lang, notice or (lambda line: None))
    why = "interrupted"
    try:
        run.open()
        why = run.run()
        if run.sides is not None and run.sides.errors:
            raise LinuxUnavailable(f"the lesson's program failed: {run.sides.errors[0]}")
        if run.wire is not None and run.wire.errors:
            raise LinuxUnavailable(run.wire.errors[0])
        events = run.finish(why)  # before the programs are stopped: their sockets' ends
        meta = run.meta()           # (FIN or RST) are not part of the lesson
    finally:
        run.close()
    wire = run.wire
    assert wire is not None
    return LinuxResult(lesson.name, events, meta, why, time.monotonic() - t0, wire.log,
                       run.rules, run.notices)

