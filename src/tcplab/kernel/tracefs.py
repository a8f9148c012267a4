"""The kernel's own TCP tracepoints, read from a private tracefs instance.

How it works
------------
tracefs (``/sys/kernel/tracing``; mounted here if it is not) lets a program make its
own *instance*: ``mkdir instances/NAME`` gives a ring buffer and a copy of every event
switch that are independent of the global ones, so other tracing on the machine is
untouched. :class:`TraceInstance` makes ``instances/tcplab-<pid>-<n>``, sets its clock,
enables only the events asked for, each with a filter the kernel evaluates (``sport ==
8080 || dport == 8080``), and reads the per-CPU binary buffers
(``per_cpu/cpuN/trace_pipe_raw``). :meth:`TraceInstance.close` disables every event,
clears the filters and removes the directory (``rmdir``), which frees the buffer; it
runs from ``with``, ``finally`` and an :mod:`atexit` hook, and a later run removes the
instances of a tcplab process that died (:func:`remove_stale_instances`). Making the
instance and registering it for removal happen with SIGINT held
(:func:`tcplab.signals.deferred`). If tcplab mounted tracefs itself, it unmounts it at
the end; a marker file (:data:`MOUNT_MARKER`) lets a later run finish that job for a
tcplab that was killed.

The binary buffers give the kernel's nanosecond timestamps and the raw fields. A read
returns one sub-buffer page: a 16-byte header (the page's first timestamp, then the
committed length) and events, each with a 32-bit header (5 bits of type/length, 27
bits of time delta; see ``events/header_event``). The fields of each event are decoded
from the offsets its ``format`` file gives, so a kernel that moves or adds fields is
read correctly.

Clock: ``tai`` by default where the kernel offers it (CLOCK_TAI, which is CLOCK_REALTIME
plus a whole number of seconds, the same clock packet timestamps are taken on, so
segments and state changes line up to the nanosecond), else ``mono``; the TUN backend
asks for ``mono``, the clock of its event loop.

The tracepoints this module knows (docs/kernel.md says what each shows and misses):

``sock:inet_sock_set_state``  every state change of a TCP socket (full sockets only)
``tcp:tcp_retransmit_skb``     a segment retransmitted (timeout, fast retransmit, TLP)
``tcp:tcp_retransmit_synack``  a SYN-ACK retransmitted by a request socket
``tcp:tcp_send_reset``         the kernel sends a RST, with the reason
``tcp:tcp_receive_reset``      a RST accepted by a socket
``skb:kfree_skb``              a packet dropped, with the drop reason
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import os
import re
import select
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from tcplab.signals import deferred

__all__ = [
    "EVENTS",
    "EventFormat",
    "TraceInstance",
    "TraceRecord",
    "TracefsUnavailable",
    "find_tracefs",
    "parse_format",
    "parse_page",
    "remove_stale_instances",
]

# The events tcplab watch enables, "system/name".
EVENTS = (
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
    "tcp/tcp_retransmit_synack",
    "tcp/tcp_send_reset",
    "tcp/tcp_receive_reset",
    "skb/kfree_skb",
)
MOUNT_POINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
INSTANCE_PREFIX = "tcplab-"
_INSTANCE_RE = re.compile(r"^tcplab-(\d+)(?:-\d+)?$")
_counter = itertools.count(1)

# Ring-buffer event types (kernel/trace/ring_buffer.c).
_TYPE_PADDING = 29
_TYPE_TIME_EXTEND = 30
_TYPE_TIME_STAMP = 31
_TS_SHIFT = 27
_ABS_TS_MASK = (1 << 59) - 1  # an absolute time stamp event holds the low 59 bits

# common_flags (include/linux/trace_events.h): the event ran in interrupt context, so
# common_pid is whoever was interrupted, not the cause.
TRACE_FLAG_HARDIRQ = 0x08
TRACE_FLAG_SOFTIRQ = 0x10
TRACE_FLAG_NMI = 0x40
TRACE_FLAG_BH_OFF = 0x80  # bottom halves off in a task: e.g. packets handled on its behalf
_NOT_A_SYSCALL = TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI | TRACE_FLAG_BH_OFF


class TracefsUnavailable(Exception):
    """The tracepoints cannot be read here; the message (one line) says why."""


class Field(NamedTuple):
    name: str
    offset: int
    size: int
    signed: bool
    is_array: bool


@dataclass
class EventFormat:
    """One event's id, fields and symbol tables, parsed from its ``format`` file."""

    system: str
    name: str
    id: int
    fields: dict[str, Field]
    # __print_symbolic tables of the print format, by field: value -> symbol.
    symbols: dict[str, dict[int, str]] = field(default_factory=dict)


_FIELD_RE = re.compile(
    r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?")
_SYMBOLIC_RE = re.compile(r"__print_symbolic\(REC->(\w+),((?:\s*\{[^}]*\},?)+)\)")
_PAIR_RE = re.compile(r"\{\s*(-?\w+)\s*,\s*\"([^\"]*)\"\s*\}")


def parse_format(system: str, name: str, text: str) -> EventFormat:
    """Parse an ``events/SYSTEM/NAME/format`` file."""
    m = re.search(r"^ID:\s*(\d+)", text, re.M)
    if m is None:
        raise ValueError(f"no ID in the format of {system}:{name}")
    fields: dict[str, Field] = {}
    for fm in _FIELD_RE.finditer(text):
        decl = fm.group("decl").strip()
        is_array = decl.endswith("]")
        if is_array:
            decl = decl[: decl.index("[")]
        fname = decl.split()[-1].lstrip("*")
        fields[fname] = Field(fname, int(fm.group("off")), int(fm.group("size")),
                              fm.group("signed") == "1", is_array)
    symbols: dict[str, dict[int, str]] = {}
    for sm in _SYMBOLIC_RE.finditer(text):
        table: dict[int, str] = {}
        for value, symbol in _PAIR_RE.findall(sm.group(2)):
            with contextlib.suppress(ValueError):
                table[int(value, 0)] = symbol
        if table:
            symbols.setdefault(sm.group(1), table)
    return EventFormat(system, name, int(m.group(1)), fields, symbols)


class TraceRecord(NamedTuple):
    """One event as the kernel recorded it."""

    ts_ns: int  # on the instance's clock
    cpu: int
    event: str  # "inet_sock_set_state", ...
    pid: int  # common_pid: the task that was running (see ``in_irq``)
    # The event ran in interrupt context or with bottom halves off (a packet or a timer,
    # maybe on behalf of another task), not plainly in a system call of ``pid``.
    in_irq: bool
    values: dict[str, int | bytes]


def parse_page(page: bytes, header_ts_off: int = 0, commit_off: int = 8,
               data_off: int = 16) -> Iterator[tuple[int, memoryview]]:
    """(timestamp, event bytes) for every data event of one ring-buffer page."""
    view = memoryview(page)
    ts = int.from_bytes(page[header_ts_off:header_ts_off + 8], "little")
    commit = int.from_bytes(page[commit_off:commit_off + 8], "little")
    end = data_off + (commit & ((1 << 30) - 1))  # bits 30-31 flag missed events
    end = min(end, len(page))
    off = data_off
    u32 = struct.Struct("<I").unpack_from
    while off + 4 <= end:
        (head,) = u32(page, off)
        type_len = head & 0x1F
        delta = head >> 5
        if type_len == _TYPE_PADDING:
            if delta == 0:
                break  # the rest of the page is padding
            (length,) = u32(page, off + 4)
            ts += delta
            off += 4 + length
        elif type_len == _TYPE_TIME_EXTEND:
            (ext,) = u32(page, off + 4)
            ts += (ext << _TS_SHIFT) + delta
            off += 8
        elif type_len == _TYPE_TIME_STAMP:
            (ext,) = u32(page, off + 4)
            ts = (ts & ~_ABS_TS_MASK) | ((ext << _TS_SHIFT) + delta)
            off += 8
        elif type_len == 0:
            (length,) = u32(page, off + 4)  # includes these 4 bytes
            if length < 4:
                break
            ts += delta
            yield ts, view[off + 8: off + 4 + length]
            off += 4 + ((length + 3) & ~3)
        else:
            ts += delta
            yield ts, view[off + 4: off + 4 + type_len * 4]
            off += 4 + type_len * 4


def find_tracefs() -> str | None:
    """Where tracefs is mounted (a directory with ``instances``), if anywhere."""
    for path in MOUNT_POINTS:
        if os.path.isdir(os.path.join(path, "instances")):
            return path
    return None


# Written when tcplab mounts tracefs itself: the pid of the process that will unmount it.
# A run that finds it with a dead pid (a tcplab killed with SIGKILL) takes the job over.
MOUNT_MARKER = "/run/tcplab-tracefs-mount.pid"


def _marker_pid() -> int | None:
    try:
        with open(MOUNT_MARKER, encoding="ascii") as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError):
        return None


def _write_marker() -> None:
    with contextlib.suppress(OSError), open(MOUNT_MARKER, "w", encoding="ascii") as fh:
        fh.write(str(os.getpid()))


def _mount_tracefs() -> str:
    path = MOUNT_POINTS[0]
    if not os.path.isdir(path):
        raise TracefsUnavailable(f"{path} does not exist (kernel without tracefs)")
    try:
        res = subprocess.run(["mount", "-t", "tracefs", "nodev", path], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TracefsUnavailable(f"cannot mount tracefs on {path}: {exc}") from None
    if res.returncode != 0 or not os.path.isdir(os.path.join(path, "instances")):
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
        raise TracefsUnavailable(f"cannot mount tracefs on {path}: {why}")
    return path


def _pid_alive(pid: int) -> bool:
    """Is process ``pid`` running? (A zombie, killed but not yet reaped, is not.)"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def remove_stale_instances(root: str | None = None) -> list[str]:
    """Remove ``instances/tcplab-<pid>[-n]`` whose process is gone; their names."""
    root = root or find_tracefs()
    if root is None:
        return []
    removed = []
    try:
        names = os.listdir(os.path.join(root, "instances"))
    except OSError:
        return []
    for name in names:
        m = _INSTANCE_RE.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, "instances", name))
            removed.append(name)
    return removed


_live: dict[str, TraceInstance] = {}
_live_lock = threading.Lock()


def close_all_live() -> None:
    """Close every instance this process still holds (atexit and signal paths)."""
    with _live_lock:
        live = list(_live.values())
    for inst in live:
        with contextlib.suppress(Exception):
            inst.close()


atexit.register(close_all_live)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as fh:
        return fh.read()


def _online_cpus(root: str) -> list[int]:
    """The CPUs the instance has buffers for (per_cpu/cpuN)."""
    cpus = []
    for name in os.listdir(os.path.join(root, "per_cpu")):
        if name.startswith("cpu") and name[3:].isdigit():
            cpus.append(int(name[3:]))
    return sorted(cpus)


class TraceInstance:
    """A private tracefs instance with some TCP events enabled; read it, then close it.

    ``filters`` maps "system/name" to a filter expression the kernel evaluates; an
    event whose filter the kernel refuses (a field it does not have) is enabled
    without one, and the refusal is in :attr:`unfiltered`.
    """

    def __init__(self, events: Iterable[str] = EVENTS,
                 filters: dict[str, str] | None = None, buffer_kb: int = 2048,
                 clock: str = "tai") -> None:
        self.events = list(events)
        self.want_clock = clock
        self.filters = dict(filters or {})
        self.buffer_kb = buffer_kb
        self.name = f"{INSTANCE_PREFIX}{os.getpid()}-{next(_counter)}"
        self.root = ""
        self.path = ""
        self.mounted_here = False
        self.clock = ""
        self.formats: dict[int, EventFormat] = {}
        self.enabled: list[str] = []
        self.missing: list[str] = []
        self.unfiltered: list[str] = []
        self._fds: dict[int, int] = {}  # fd -> cpu
        self._page_size = 4096
        self._hdr = (0, 8, 16)

    # ------------------------------------------------------------ life

    def open(self) -> None:
        """Mount tracefs if needed, make the instance, enable the events."""
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        root = find_tracefs()
        if root is None:
            with deferred():
                root = _mount_tracefs()
                self.mounted_here = True
                _write_marker()
        else:
            owner = _marker_pid()
            if owner is not None and owner != os.getpid() and not _pid_alive(owner):
                self.mounted_here = True  # a killed tcplab mounted it: unmount it later
                _write_marker()
        self.root = root
        remove_stale_instances(root)
        self.path = os.path.join(root, "instances", self.name)
        with deferred():  # made and registered at once
            try:
                os.mkdir(self.path)
            except OSError as exc:
                raise TracefsUnavailable(
                    f"cannot make tracefs instance {self.path}: {exc.strerror}") from None
            with _live_lock:
                _live[self.name] = self
        clocks = _read(os.path.join(self.path, "trace_clock")).replace("[", "").replace(
            "]", "").split()
        self.clock = self.want_clock if self.want_clock in clocks else (
            "tai" if "tai" in clocks else "mono")
        _write(os.path.join(self.path, "trace_clock"), self.clock)
        with contextlib.suppress(OSError):
            _write(os.path.join(self.path, "buffer_size_kb"), str(self.buffer_kb))
        with contextlib.suppress(OSError):
            _write(os.path.join(self.path, "buffer_percent"), "0")  # wake on any event
        self._read_page_header()
        for ev in self.events:
            system, name = ev.split("/")
            evdir = os.path.join(self.path, "events", system, name)
            try:
                fmt = parse_format(system, name, _read(os.path.join(evdir, "format")))
            except (OSError, ValueError):
                self.missing.append(ev)
                continue
            flt = self.filters.get(ev)
            if flt:
                try:
                    _write(os.path.join(evdir, "filter"), flt)
                except OSError:
                    self.unfiltered.append(ev)
            try:
                _write(os.path.join(evdir, "enable"), "1")
            except OSError:
                self.missing.append(ev)
                continue
            self.enabled.append(ev)
            self.formats[fmt.id] = fmt
        if "sock/inet_sock_set_state" not in self.enabled:
            raise TracefsUnavailable("the kernel has no sock:inet_sock_set_state tracepoint")
        for cpu in _online_cpus(self.path):
            fd = os.open(os.path.join(self.path, "per_cpu", f"cpu{cpu}", "trace_pipe_raw"),
                         os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._fds[fd] = cpu

    def _read_page_header(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            text = _read(os.path.join(self.root, "events", "header_page"))
            offs = {}
            for fm in _FIELD_RE.finditer(text):
                name = fm.group("decl").split()[-1]
                offs[name] = int(fm.group("off"))
            self._hdr = (offs.get("timestamp", 0), offs.get("commit", 8), offs.get("data", 16))
        with contextlib.suppress(OSError, ValueError):
            kb = int(_read(os.path.join(self.path, "buffer_subbuf_size_kb")).strip())
            self._page_size = max(4096, kb * 1024)

    def close(self) -> None:
        """Disable the events, clear the filters, remove the instance. Idempotent."""
        with deferred():  # not split by a second Ctrl+C
            self._close()

    def _close(self) -> None:
        for fd in list(self._fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if self.path and os.path.isdir(self.path):
            for ev in self.enabled:
                evdir = os.path.join(self.path, "events", *ev.split("/"))
                with contextlib.suppress(OSError):
                    _write(os.path.join(evdir, "enable"), "0")
                with contextlib.suppress(OSError):
                    _write(os.path.join(evdir, "filter"), "0")
            for _ in range(20):
                try:
                    os.rmdir(self.path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    threading.Event().wait(0.05)  # a reader may still be closing
        self.enabled = []
        with _live_lock:
            _live.pop(self.name, None)
        if self.mounted_here:
            self.mounted_here = False
            with _live_lock:
                others = bool(_live)
            if not others:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    res = subprocess.run(["umount", self.root], capture_output=True,
                                         timeout=10, check=False)
                    if res.returncode == 0:
                        with contextlib.suppress(OSError):
                            os.unlink(MOUNT_MARKER)
                    # else: busy (another tcplab reads it); the marker stays, and a
                    # later run unmounts it once this process is gone.

    def __enter__(self) -> TraceInstance:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reading

    def read_available(self, fds: Iterable[int] | None = None) -> list[TraceRecord]:
        """Every event waiting in the buffers (of ``fds``, default all), in time order."""
        out: list[TraceRecord] = []
        for fd in list(fds if fds is not None else self._fds):
            cpu = self._fds.get(fd)
            if cpu is None:
                continue
            for _ in range(256):  # bounded: at most 256 pages per CPU per call
                try:
                    page = os.read(fd, self._page_size)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EINTR):
                        break
                    raise
                if not page:
                    break
                out.extend(self._decode_page(page, cpu))
        out.sort(key=lambda r: r.ts_ns)
        return out

    def wait(self, timeout: float, extra: Iterable[int] = ()) -> list[int]:
        """Wait up to ``timeout`` s for events (or for ``extra`` fds); the ready fds."""
        fds = [*self._fds, *extra]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return []
        return ready

    def _decode_page(self, page: bytes, cpu: int) -> Iterator[TraceRecord]:
        ts_off, commit_off, data_off = self._hdr
        for ts, data in parse_page(page, ts_off, commit_off, data_off):
            if len(data) < 8:
                continue
            etype = int.from_bytes(data[0:2], "little")
            fmt = self.formats.get(etype)
            if fmt is None:
                continue
            flags = data[2]
            pid = int.from_bytes(data[4:8], "little", signed=True)
            yield TraceRecord(ts, cpu, fmt.name, pid, bool(flags & _NOT_A_SYSCALL),
                              decode_fields(fmt, data))


def decode_fields(fmt: EventFormat, data: memoryview | bytes) -> dict[str, int | bytes]:
    """The event's own fields (not the common_* ones): ints, or bytes for arrays."""
    out: dict[str, int | bytes] = {}
    n = len(data)
    for f in fmt.fields.values():
        if f.name.startswith("common_") or f.offset + f.size > n:
            continue
        raw = bytes(data[f.offset:f.offset + f.size])
        if f.is_array or f.size not in (1, 2, 4, 8):
            out[f.name] = raw
        else:
            out[f.name] = int.from_bytes(raw, "little", signed=f.signed)
    return out


def _ntop(family: int, raw: bytes) -> str:
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def endpoints(values: dict[str, int | bytes]) -> tuple[int, str, int, str, int] | None:
    """(family 4/6, local addr, local port, remote addr, remote port) of an event's fields.

    Handles both layouts the TCP tracepoints use: ``family``, ``sport``, ``dport`` with
    ``saddr``/``daddr`` (4 bytes) and ``saddr_v6``/``daddr_v6``; or ``saddr``/``daddr``
    as whole 28-byte socket addresses (``tcp_send_reset``).
    """
    saddr = values.get("saddr")
    daddr = values.get("daddr")
    if isinstance(saddr, bytes) and isinstance(daddr, bytes) and len(saddr) >= 16 \
            and "sport" not in values:
        fam = int.from_bytes(saddr[0:2], "little")
        if fam not in (socket.AF_INET, socket.AF_INET6):
            return None
        sport = int.from_bytes(saddr[2:4], "big")
        dport = int.from_bytes(daddr[2:4], "big")
        if fam == socket.AF_INET:
            return 4, _ntop(fam, saddr[4:8]), sport, _ntop(fam, daddr[4:8]), dport
        return 6, _ntop(fam, saddr[8:24]), sport, _ntop(fam, daddr[8:24]), dport
    fam_v = values.get("family")
    sport_v = values.get("sport")
    dport_v = values.get("dport")
    if not isinstance(fam_v, int) or not isinstance(sport_v, int) or not isinstance(
            dport_v, int):
        return None
    if fam_v == socket.AF_INET6:
        s6, d6 = values.get("saddr_v6"), values.get("daddr_v6")
        if not isinstance(s6, bytes) or not isinstance(d6, bytes):
            return None
        return 6, _ntop(fam_v, s6), sport_v, _ntop(fam_v, d6), dport_v
    if not isinstance(saddr, bytes) or not isinstance(daddr, bytes):
        return None
    return 4, _ntop(socket.AF_INET, saddr), sport_v, _ntop(socket.AF_INET, daddr), dport_v
