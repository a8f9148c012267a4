"""Presenting the kernel's sockets: rows for tables and JSON, and change tracking for --watch.

Kept apart from :mod:`tcplab.kernel.sockets` (which only reads) so that the reader
stays fast and the HTTP server and the labs can use it without pulling in any output code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tcplab.kernel.sockets import KernelSocket, Process, find_owners

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


def row_key(s: KernelSocket) -> RowKey:
    """A socket's identity across snapshots: family and 4-tuple."""
    return (s.family, s.local_addr, s.local_port, s.remote_addr, s.remote_port)


def format_time_left(ms: int) -> str:
    """Milliseconds as a short countdown: "59.9s", "2m05s", "1h59m"."""
    if ms >= 3_600_000:
        return f"{ms // 3_600_000}h{ms % 3_600_000 // 60_000:02d}m"
    if ms >= 60_000:
        return f"{ms // 60_000}m{ms % 60_000 // 1000:02d}s"
    return f"{ms / 1000:.1f}s"


def _timer_text(s: KernelSocket) -> str:
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
        _process_text(owners.get(s.inode)),
    )


def format_plain(sockets: Sequence[KernelSocket], owners: dict[int, list[Process]]) -> str:
    """A fixed-width text table (what goes to a pipe; 10,000 rows in a few milliseconds).

    Column widths come from the few distinct addresses, uids and timers rather than from
    every row, and each row is one f-string: this is what keeps up with ``ss``.
    """
    if not sockets:
        return "  ".join(COLUMNS) + "\n"
    addrs = {s.local_addr for s in sockets} | {s.remote_addr for s in sockets}
    wa = max(len(a) + (2 if ":" in a else 0) for a in addrs) + 6  # ":" and up to 5 digits
    wq = max(6, len(str(max(max(s.recv_q, s.send_q) for s in sockets))))
    wt = max(len("Timer"), *(len(t) + 7 for t in {s.timer for s in sockets}))
    wu = max(3, *(len(str(u)) for u in {s.uid for s in sockets}))
    wi = max(5, len(str(max(s.inode for s in sockets))))
    left = format_time_left
    lines = [f"{'State':<12}  {'Recv-Q':>{wq}}  {'Send-Q':>{wq}}  {'Local':<{wa}}  "
             f"{'Peer':<{wa}}  {'Timer':<{wt}}  {'Uid':>{wu}}  {'Inode':>{wi}}  Process"]
    lines.extend(
        f"{st:<12}  {rq:>{wq}}  {sq:>{wq}}  "
        f"{f'[{la}]:{lp}' if fam == 6 else f'{la}:{lp}':<{wa}}  "
        f"{f'[{ra}]:{rp}' if fam == 6 else f'{ra}:{rp}':<{wa}}  "
        f"{(f'{tm} {ex / 1000:.1f}s' if ex < 60_000 else f'{tm} {left(ex)}') if tm else '':<{wt}}"
        f"  {uid:>{wu}}  {ino:>{wi}}  {_process_text(owners[ino]) if ino in owners else ''}"
        for (fam, st, la, lp, ra, rp, rq, sq, tm, ex, _rt, uid, ino) in sockets
    )
    return "\n".join(lines) + "\n"


def format_counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    noun = "socket" if total == 1 else "sockets"
    return f"{total} {noun}" + (f": {parts}" if parts else "")


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
