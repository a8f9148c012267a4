"""Presenting the kernel's sockets: rows for tables and JSON, and change tracking for --watch.

Kept apart from :mod:`tcplab.kernel.sockets` (which only reads) so that the reader
stays fast and the HTTP server and the labs can use it without pulling in any output code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tcplab.kernel.sockets import Process, TcpSocket, find_owners

__all__ = [
    "COLUMNS",
    "RowKey",
    "changed_keys",
    "format_counts",
    "format_plain",
    "format_time_left",
    "row_cells",
    "row_key",
    "socket_json",
]

COLUMNS = ("State", "Recv-Q", "Send-Q", "Local", "Peer", "Timer", "Uid", "Inode", "Process")

RowKey = tuple[int, str, int, str, int]


def row_key(s: TcpSocket) -> RowKey:
    """A socket's identity across snapshots: family and 4-tuple."""
    return (s.family, s.local_addr, s.local_port, s.remote_addr, s.remote_port)


def format_time_left(ms: int) -> str:
    """Milliseconds as a short countdown: "59.9s", "2m05s", "1h59m"."""
    if ms >= 3_600_000:
        return f"{ms // 3_600_000}h{ms % 3_600_000 // 60_000:02d}m"
    if ms >= 60_000:
        return f"{ms // 60_000}m{ms % 60_000 // 1000:02d}s"
    return f"{ms / 1000:.1f}s"


def _timer_text(s: TcpSocket) -> str:
    if not s.timer:
        return ""
    return f"{s.timer} {format_time_left(s.expires_ms)}"


def _process_text(procs: Sequence[Process] | None) -> str:
    if not procs:
        return ""
    seen: dict[int, str] = {}
    for p in procs:
        seen.setdefault(p.pid, p.name)
    return ",".join(f"{name}({pid})" for pid, name in seen.items())


def row_cells(s: TcpSocket, owners: dict[int, list[Process]]) -> tuple[str, ...]:
    """The text of one table row, in :data:`COLUMNS` order."""
    return (
        s.state,
        str(s.recv_q),
        str(s.send_q),
        s.local,
        s.remote,
        _timer_text(s),
        str(s.uid),
        str(s.inode),
        _process_text(owners.get(s.inode)),
    )


def format_plain(sockets: Sequence[TcpSocket], owners: dict[int, list[Process]]) -> str:
    """A fixed-width text table (fast for 10,000 rows; what goes to a pipe)."""
    rows = [row_cells(s, owners) for s in sockets]
    widths = [len(c) for c in COLUMNS]
    for r in rows:
        for i, c in enumerate(r):
            if len(c) > widths[i]:
                widths[i] = len(c)
    right = {1, 2, 6, 7}

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [line(COLUMNS)]
    out.extend(line(r) for r in rows)
    return "\n".join(out) + "\n"


def format_counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    noun = "socket" if total == 1 else "sockets"
    return f"{total} {noun}" + (f": {parts}" if parts else "")


def socket_json(s: TcpSocket, owners: dict[int, list[Process]]) -> dict[str, Any]:
    d: dict[str, Any] = s._asdict()
    d["processes"] = [{"pid": p.pid, "name": p.name, "fd": p.fd} for p in owners.get(s.inode, [])]
    return d


def owners_for(sockets: Iterable[TcpSocket], enabled: bool = True) -> dict[int, list[Process]]:
    if not enabled:
        return {}
    return find_owners(s.inode for s in sockets)


def changed_keys(previous: dict[RowKey, TcpSocket], current: Iterable[TcpSocket]
                 ) -> tuple[set[RowKey], set[RowKey]]:
    """(new, changed) row keys between two snapshots; timers counting down are no change."""
    new: set[RowKey] = set()
    changed: set[RowKey] = set()
    for s in current:
        key = row_key(s)
        old = previous.get(key)
        if old is None:
            new.add(key)
        elif (old.state, old.recv_q, old.send_q, old.timer, old.inode) != (
            s.state, s.recv_q, s.send_q, s.timer, s.inode
        ):
            changed.add(key)
    return new, changed
