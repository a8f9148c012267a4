"""The kernel's TCP sockets as rows, read through sock_diag netlink or /proc/net/tcp.

:mod:`tcplab.kernel.sockdiag` speaks sock_diag (the interface ``ss`` uses) and turns its
records into columns; this module makes :class:`KernelSocket` rows of them, the form the
labs, the HTTP server, the TUN backend and ``tcplab sockets --json/--watch`` use. Each
row carries the state, the 4-tuple, the queues, the uid and inode, and the active timer
with the time left on it (TIME-WAIT's countdown).

Where netlink is not allowed (some sandboxes and containers refuse the socket),
:func:`list_sockets` falls back to ``/proc/net/tcp`` and ``/proc/net/tcp6``, which hold
the same facts in hexadecimal text, with timers in clock ticks instead of milliseconds.

State names follow RFC 9293's spelling (``TIME-WAIT``); Linux's ``NEW_SYN_RECV``
(a request socket, not a full socket) is shown as ``SYN-RECEIVED`` like ``ss`` does.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from itertools import repeat
from typing import NamedTuple

from tcplab.kernel import sockdiag
from tcplab.kernel.sockdiag import (
    ALL_STATES_MASK,
    STATES,
    TIMERS,
    NetlinkUnavailable,
    parse_state,
    scan_owners,
    states_mask,
)
from tcplab.kernel.table import count_states

__all__ = [
    "STATES",
    "KernelSocket",
    "NetlinkUnavailable",
    "Process",
    "Snapshot",
    "count_by_state",
    "find_owners",
    "list_sockets",
    "lookup_socket",
    "netlink_list",
    "parse_state",
    "proc_list",
]


class KernelSocket(NamedTuple):
    """One kernel TCP socket as the kernel describes it."""

    family: int  # 4 or 6
    state: str  # RFC 9293 spelling, e.g. "TIME-WAIT"
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    recv_q: int  # bytes not yet read by the program (LISTEN: connections not yet accepted)
    send_q: int  # bytes not yet acknowledged by the peer (LISTEN: the backlog)
    timer: str  # "", "retransmit", "keepalive", "time-wait", "zero-window-probe"
    expires_ms: int  # time left on the timer, in milliseconds
    retrans: int
    uid: int
    inode: int  # 0 for sockets no program holds any more (TIME-WAIT, orphans)

    @property
    def local(self) -> str:
        return _endpoint(self.local_addr, self.local_port)

    @property
    def remote(self) -> str:
        return _endpoint(self.remote_addr, self.remote_port)


class Process(NamedTuple):
    """A process holding a socket's file descriptor."""

    pid: int
    name: str
    fd: int


class Snapshot(NamedTuple):
    """A list of sockets taken at one moment, and how it was read."""

    sockets: list[KernelSocket]
    source: str  # "netlink" or "proc"
    taken_at: float  # time.monotonic()


def _endpoint(addr: str, port: int) -> str:
    if ":" in addr:
        return f"[{addr}]:{port}"
    return f"{addr}:{port}"


# --------------------------------------------------------------------------- netlink


def rows_from_columns(cols: sockdiag.Columns) -> list[KernelSocket]:
    """KernelSocket rows from columns, without a Python-level constructor call per row."""
    return list(map(tuple.__new__, repeat(KernelSocket), zip(*cols, strict=True)))


def netlink_list(families: Iterable[int] = (4, 6), states: int = ALL_STATES_MASK
                 ) -> list[KernelSocket]:
    """Every TCP socket of the given families whose state bit is in ``states``."""
    out: list[KernelSocket] = []
    sock = sockdiag.open_netlink()
    try:
        for family in families:
            out.extend(rows_from_columns(sockdiag.to_columns(family, sockdiag.dump(family, states, sock))))
    finally:
        sock.close()
    return out


# --------------------------------------------------------------------------- /proc


def _proc_addr(text: str) -> tuple[str, int]:
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port_hex, 16)
    # Four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port_hex, 16)


def parse_proc_net_tcp(text: str, family: int, states: int = ALL_STATES_MASK) -> list[KernelSocket]:
    """Parse the text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: list[KernelSocket] = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        st = int(f[3], 16)
        if not states & (1 << st):
            continue
        la, lp = _proc_addr(f[1])
        ra, rp = _proc_addr(f[2])
        tx, rx = (int(x, 16) for x in f[4].split(":"))
        tr, when = f[5].split(":")
        tmr = int(tr, 16)
        expires = int(when, 16) * 1000 // ticks if tmr else 0
        out.append(KernelSocket(
            family, STATES.get(st, str(st)), la, lp, ra, rp, rx, tx,
            TIMERS.get(tmr, str(tmr)), expires, int(f[6], 16), int(f[7]), int(f[9]),
        ))
    return out


def proc_list(families: Iterable[int] = (4, 6), states: int = ALL_STATES_MASK) -> list[KernelSocket]:
    out: list[KernelSocket] = []
    for family in families:
        path = "/proc/net/tcp" if family == 4 else "/proc/net/tcp6"
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read()
        except FileNotFoundError:
            continue
        out.extend(parse_proc_net_tcp(text, family, states))
    return out


# --------------------------------------------------------------------------- API


def list_sockets(
    states: Iterable[str] | None = None,
    port: int | None = None,
    source: str = "auto",
    families: Iterable[int] = (4, 6),
) -> Snapshot:
    """The kernel's TCP sockets, optionally only some states and one port (either end).

    ``source`` is "netlink", "proc" or "auto" (netlink, else /proc).
    """
    mask = states_mask(states)
    fams = tuple(families)
    used = source
    if source == "proc":
        found = proc_list(fams, mask)
    elif source == "netlink":
        found = netlink_list(fams, mask)
    elif source == "auto":
        try:
            found = netlink_list(fams, mask)
            used = "netlink"
        except NetlinkUnavailable:
            found = proc_list(fams, mask)
            used = "proc"
    else:
        raise ValueError(f"unknown source {source!r} (auto, netlink or proc)")
    if port is not None:
        found = [s for s in found if s.local_port == port or s.remote_port == port]
    return Snapshot(found, used, time.monotonic())


def lookup_socket(local: tuple[str, int], remote: tuple[str, int]) -> KernelSocket | None:
    """The one socket with this local and remote end (as the local side sees it), if any."""
    family = 6 if ":" in local[0] else 4
    try:
        records = sockdiag.lookup(local, remote)
    except NetlinkUnavailable:
        for s in proc_list((family,)):
            if (s.local_addr, s.local_port, s.remote_addr, s.remote_port) == (
                local[0], local[1], remote[0], remote[1]
            ):
                return s
        return None
    except OSError:
        return None
    # The kernel's lookup falls back to a listener on the local port: check the tuple.
    for s in rows_from_columns(sockdiag.to_columns(family, records)):
        if (s.remote_port, s.local_port) == (remote[1], local[1]):
            return s
    return None


def count_by_state(sockets: Iterable[KernelSocket]) -> dict[str, int]:
    """How many sockets are in each state, most frequent first."""
    return count_states(s.state for s in sockets)


def find_owners(inodes: Iterable[int]) -> dict[int, list[Process]]:
    """Which processes hold each socket inode, by scanning /proc/*/fd for socket:[inode]."""
    return {inode: [Process(*p) for p in procs]
            for inode, procs in scan_owners(inodes).items()}
