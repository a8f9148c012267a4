"""The kernel's sockets as a fixed-width text table, built a column at a time.

What goes to a pipe (and to a terminal for big listings): ``tcplab sockets`` prints
10,000 rows with it about as fast as ``ss -tan`` does. Each column is converted with
``map`` over a dictionary of its few distinct values (the state and queue cells, the
address prefixes, the timer texts, the uid and inode cells, the owners) or a C function
(``str``, ``str.ljust``), and each row is one ``"".join``: no Python code runs per row.

Like :mod:`tcplab.kernel.sockdiag` this imports nothing beyond the standard library's
cheapest modules, for the quick path of ``tcplab sockets``.
"""

from __future__ import annotations

from itertools import repeat
from operator import add

TYPE_CHECKING = False  # typing costs start-up time; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from tcplab.kernel.sockdiag import Columns, Owner

__all__ = ["HEADER", "count_states", "format_columns", "format_counts", "format_time_left",
           "process_text"]

HEADER = ("State", "Recv-Q", "Send-Q", "Local", "Peer", "Timer", "Uid", "Inode", "Process")


def format_time_left(ms: int) -> str:
    """Milliseconds as a short countdown: "59.9s", "2m05s", "1h59m"."""
    if ms >= 3_600_000:
        return f"{ms // 3_600_000}h{ms % 3_600_000 // 60_000:02d}m"
    if ms >= 60_000:
        return f"{ms // 60_000}m{ms % 60_000 // 1000:02d}s"
    return f"{ms / 1000:.1f}s"


def process_text(procs: Sequence[Owner] | None) -> str:
    """``name(pid)`` for each process holding a socket, once per process."""
    if not procs:
        return ""
    seen: dict[int, str] = {}
    for pid, name, _fd in procs:
        seen.setdefault(pid, name)
    return ",".join(f"{name}({pid})" for pid, name in seen.items())


def format_columns(cols: Columns, owners: Mapping[int, Sequence[Owner]]) -> str:
    """The table (header and one line per socket) of sockets given as columns."""
    (_fam, state, laddr, lport, raddr, rport, recv_q, send_q, timer, expires, _retrans,
     uid, inode) = cols
    if not state:
        return "  ".join(HEADER) + "\n"
    prefix = {a: (f"[{a}]:" if ":" in a else f"{a}:") for a in {*laddr, *raddr}}
    wa = max(map(len, prefix.values())) + 5 + 2  # up to 5 digits of port, 2 spaces
    wq = max(6, len(str(max(max(recv_q), max(send_q)))))
    wu = max(3, len(str(max(uid))))
    wi = max(5, len(str(max(inode))))
    # Cells that repeat across rows are made once per distinct value.
    lefts = {k: f"{k[0]:<12}  {k[1]:>{wq}}  {k[2]:>{wq}}  "
             for k in set(zip(state, recv_q, send_q, strict=True))}
    timers = {k: f"{k[0]} {format_time_left(k[1])}" if k[0] else ""
              for k in set(zip(timer, expires, strict=True))}
    wt = max(5, *map(len, timers.values())) + 2
    timers = {k: v.ljust(wt) for k, v in timers.items()}
    rights = {k: f"{k[0]:>{wu}}  {k[1]:>{wi}}" for k in set(zip(uid, inode, strict=True))}
    procs = {i: "  " + process_text(p) for i, p in owners.items() if p}
    head = (f"{HEADER[0]:<12}  {HEADER[1]:>{wq}}  {HEADER[2]:>{wq}}  {HEADER[3]:<{wa}}"
            f"{HEADER[4]:<{wa}}{HEADER[5]:<{wt}}{HEADER[6]:>{wu}}  {HEADER[7]:>{wi}}  "
            f"{HEADER[8]}")
    rows = map("".join, zip(
        map(lefts.__getitem__, zip(state, recv_q, send_q, strict=True)),
        map(str.ljust, map(add, map(prefix.__getitem__, laddr), map(str, lport)), repeat(wa)),
        map(str.ljust, map(add, map(prefix.__getitem__, raddr), map(str, rport)), repeat(wa)),
        map(timers.__getitem__, zip(timer, expires, strict=True)),
        map(rights.__getitem__, zip(uid, inode, strict=True)),
        map(procs.get, inode, repeat("")),
        strict=True))
    return head + "\n" + "\n".join(rows) + "\n"


def count_states(states: Iterable[str]) -> dict[str, int]:
    """How many sockets are in each state, most frequent first."""
    names = list(states)
    counts = {name: names.count(name) for name in set(names)}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    noun = "socket" if total == 1 else "sockets"
    return f"{total} {noun}" + (f": {parts}" if parts else "")
