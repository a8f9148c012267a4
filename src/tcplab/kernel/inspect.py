"""Presenting the kernel's sockets: rows for tables and JSON, and change tracking for --watch.

Kept apart from :mod:`tcplab.kernel.sockets` (which only reads) so that the reader
stays fast and the HTTP server and the labs can use it without pulling in any output code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tcplab.kernel.sockets import KernelSocket, Process, find_owners
from tcplab.kernel.table import (
    HEADER,
    format_columns,
    format_counts,
    format_time_left,
    process_text,
)

if TYPE_CHECKING:
    from tcplab.kernel.sockdiag import Columns, Owner

__all__ = [
    "COLUMNS",
    "RowKey",
    "changed_keys",
    "columns_of",
    "format_counts",
    "format_plain",
    "format_time_left",
    "row_cells",
    "row_key",
    "socket_json",
]

COLUMNS = HEADER

RowKey = tuple[int, str, int, str, int]


def row_key(s: KernelSocket) -> RowKey:
    """A socket's identity across snapshots: family and 4-tuple."""
    return (s.family, s.local_addr, s.local_port, s.remote_addr, s.remote_port)


def _timer_text(s: KernelSocket) -> str:
    if not s.timer:
        return ""
    return f"{s.timer} {format_time_left(s.expires_ms)}"


def row_cells(s: KernelSocket, owners: dict[int, list[Process]]) -> tuple[str, ...]:
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
        process_text(owners.get(s.inode)),
    )


def columns_of(sockets: Sequence[KernelSocket]) -> Columns:
    """Rows as columns, in KernelSocket's field order (13 empty columns for no rows)."""
    cols = tuple(zip(*sockets, strict=True))
    return cols if cols else ((),) * 13  # type: ignore[return-value]


def format_plain(sockets: Sequence[KernelSocket], owners: Mapping[int, Sequence[Owner]]) -> str:
    """A fixed-width text table (what goes to a pipe), by :func:`.table.format_columns`."""
    return format_columns(columns_of(sockets), owners)


def socket_json(s: KernelSocket, owners: dict[int, list[Process]]) -> dict[str, Any]:
    d: dict[str, Any] = s._asdict()
    d["processes"] = [{"pid": p.pid, "name": p.name, "fd": p.fd} for p in owners.get(s.inode, [])]
    return d


def owners_for(sockets: Iterable[KernelSocket], enabled: bool = True) -> dict[int, list[Process]]:
    if not enabled:
        return {}
    return find_owners(s.inode for s in sockets)


def changed_keys(previous: dict[RowKey, KernelSocket], current: Iterable[KernelSocket]
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
