"""The kernel's TCP sockets, read through sock_diag netlink or /proc/net/tcp.

How it works
------------
``sock_diag`` (``NETLINK_SOCK_DIAG``, see ``linux/inet_diag.h``) is the interface ``ss``
uses. One ``SOCK_DIAG_BY_FAMILY`` request carrying an ``inet_diag_req_v2`` with
``NLM_F_DUMP`` asks the kernel for every TCP socket of one family whose state is in a
bitmask; the kernel answers with a stream of ``inet_diag_msg`` records (72 bytes each)
ended by ``NLMSG_DONE``. Each record carries the state, the 4-tuple, the queues, the uid
and inode, and the active timer with the time left on it (``idiag_timer`` and
``idiag_expires`` in milliseconds): this is where TIME-WAIT's countdown comes from.
The same request without ``NLM_F_DUMP`` and with the 4-tuple filled in looks up one
socket.

Where netlink is not allowed (some sandboxes and containers refuse the socket),
:func:`list_sockets` falls back to ``/proc/net/tcp`` and ``/proc/net/tcp6``, which hold
the same facts in hexadecimal text, with timers in clock ticks instead of milliseconds.

Parsing is plain :mod:`struct` over one large receive buffer: listing 10,000 sockets
costs a few milliseconds, about what ``ss`` needs.

State names follow RFC 9293's spelling (``TIME-WAIT``); Linux's ``NEW_SYN_RECV``
(a request socket, not a full socket) is shown as ``SYN-RECEIVED`` like ``ss`` does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

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
    "parse_state",
]

# Linux tcp_states.h numbering -> RFC 9293 spelling.
STATES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN-SENT",
    3: "SYN-RECEIVED",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "CLOSED",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECEIVED",  # TCP_NEW_SYN_RECV: a request socket waiting for the final ACK
}
_STATE_NUMBERS: dict[str, list[int]] = {}
for _num, _name in STATES.items():
    _STATE_NUMBERS.setdefault(_name, []).append(_num)
ALL_STATES_MASK = sum(1 << n for n in STATES)

# idiag_timer / the "tr" column of /proc/net/tcp.
TIMERS: dict[int, str] = {
    0: "",
    1: "retransmit",
    2: "keepalive",
    3: "time-wait",
    4: "zero-window-probe",
}

# Aliases accepted by --state, besides every state name in any spelling.
_STATE_ALIASES: dict[str, str] = {
    "SYN-RECV": "SYN-RECEIVED",
    "FIN-WAIT1": "FIN-WAIT-1",
    "FIN-WAIT2": "FIN-WAIT-2",
    "CLOSE": "CLOSED",
    "ESTAB": "ESTABLISHED",
    "LISTENING": "LISTEN",
    "TIMEWAIT": "TIME-WAIT",
}

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_NOCOOKIE = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid.
_REQ = struct.Struct("=BBBxI")
# inet_diag_sockid: sport and dport are big-endian, the rest host order.
_SOCKID_PORTS = struct.Struct("!HH")
_SOCKID_REST = struct.Struct("=16s16sIII")
# inet_diag_msg: family state timer retrans | sport dport (big-endian, read as host and
# swapped) src dst if cookie[2] | expires rqueue wqueue uid inode.
_MSG = struct.Struct("=BBBBHH16s16sIIIIIIII")
_MSG_SIZE = _MSG.size  # 72
_RECV_BUFFER = 1 << 20


class NetlinkUnavailable(OSError):
    """sock_diag netlink cannot be used here (not allowed or not supported)."""


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


@dataclass(frozen=True)
class Process:
    """A process holding a socket's file descriptor."""

    pid: int
    name: str
    fd: int


@dataclass(frozen=True)
class Snapshot:
    """A list of sockets taken at one moment, and how it was read."""

    sockets: list[KernelSocket]
    source: str  # "netlink" or "proc"
    taken_at: float  # time.monotonic()


def _endpoint(addr: str, port: int) -> str:
    if ":" in addr:
        return f"[{addr}]:{port}"
    return f"{addr}:{port}"


def parse_state(text: str) -> list[int]:
    """Kernel state numbers for a user's state name ("time-wait", "TIME_WAIT", "listen")."""
    key = text.strip().upper().replace("_", "-")
    key = _STATE_ALIASES.get(key, key)
    if key not in _STATE_NUMBERS:
        names = ", ".join(sorted({s.lower() for s in STATES.values()}))
        raise ValueError(f"unknown TCP state {text!r} (one of: {names})")
    return _STATE_NUMBERS[key]


# --------------------------------------------------------------------------- netlink


def _open_netlink() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise NetlinkUnavailable(exc.errno, f"sock_diag netlink socket refused: {exc}") from exc
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
    return sock


def _sockid(family: int, local: tuple[str, int], remote: tuple[str, int]) -> bytes:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    src = socket.inet_pton(af, local[0]).ljust(16, b"\0")
    dst = socket.inet_pton(af, remote[0]).ljust(16, b"\0")
    return _SOCKID_PORTS.pack(local[1], remote[1]) + _SOCKID_REST.pack(
        src, dst, 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE
    )


def _request(family: int, states: int, sockid: bytes, flags: int, seq: int) -> bytes:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    body = _REQ.pack(af, socket.IPPROTO_TCP, 0, states) + sockid
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0)
    return header + body


# One whole netlink record without attributes: nlmsghdr + inet_diag_msg (88 bytes), with
# each address split into its first 4 bytes (all of IPv4) and the other 12.
_RECORD = struct.Struct("=IHHIIBBBBHH4s12s4s12sIIIIIIII")
_RECORD_SIZE = _RECORD.size


def _parse_messages(buf: memoryview, out: list[KernelSocket]) -> bool:
    """Append the sockets in one netlink datagram to ``out``; True when the dump is done.

    Fast path: each socket record (header and inet_diag_msg, attributes skipped) is
    decoded with one ``unpack_from`` and built with ``tuple.__new__`` (no Python-level
    constructor); anything else (NLMSG_DONE, errors) goes through the general loop.
    """
    end = len(buf)
    offset = 0
    new = tuple.__new__
    unpack = _RECORD.unpack_from
    ntohs = socket.ntohs
    ntop = socket.inet_ntop
    af4, af6 = socket.AF_INET, socket.AF_INET6
    states = STATES
    timers = TIMERS
    append = out.append
    cache4: dict[bytes, str] = {}
    last = end - _RECORD_SIZE
    while offset <= last:
        (length, mtype, _f, _q, _p, fam, st, tmr, retrans, sport, dport, s4, s12, d4, d12,
         _if, _c0, _c1, expires, rq, wq, uid, inode) = unpack(buf, offset)
        if length < _RECORD_SIZE or mtype != SOCK_DIAG_BY_FAMILY:
            break
        if fam == af4:
            la = cache4.get(s4)
            if la is None:
                la = cache4[s4] = ntop(af4, s4)
            ra = cache4.get(d4)
            if ra is None:
                ra = cache4[d4] = ntop(af4, d4)
            v = 4
        else:
            la = ntop(af6, s4 + s12)
            ra = ntop(af6, d4 + d12)
            v = 6
        append(new(KernelSocket, (
            v, states.get(st) or str(st), la, ntohs(sport), ra, ntohs(dport), rq, wq,
            timers.get(tmr) or "", expires if tmr else 0, retrans, uid, inode)))
        offset += (length + 3) & ~3
    return _parse_general(buf, offset, out)


def _parse_general(buf: memoryview, offset: int, out: list[KernelSocket]) -> bool:
    unpack_hdr = _NLMSGHDR.unpack_from
    unpack_msg = _MSG.unpack_from
    ntohs = socket.ntohs
    ntop = socket.inet_ntop
    af4, af6 = socket.AF_INET, socket.AF_INET6
    end = len(buf)
    while offset + 16 <= end:
        length, mtype, _flags, _seq, _pid = unpack_hdr(buf, offset)
        if length < 16:
            break
        if mtype == NLMSG_DONE:
            return True
        if mtype == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", buf, offset + 16)
            if code == 0:
                return True
            raise OSError(-code, os.strerror(-code))
        if mtype == SOCK_DIAG_BY_FAMILY and length >= 16 + _MSG_SIZE:
            (fam, st, tmr, retrans, sport, dport, src, dst, _if, _c0, _c1,
             expires, rq, wq, uid, inode) = unpack_msg(buf, offset + 16)
            if fam == af4:
                la, ra, v = ntop(af4, src[:4]), ntop(af4, dst[:4]), 4
            else:
                la, ra, v = ntop(af6, src), ntop(af6, dst), 6
            out.append(KernelSocket(
                v, STATES.get(st, str(st)), la, ntohs(sport), ra, ntohs(dport),
                rq, wq, TIMERS.get(tmr, str(tmr)), expires if tmr else 0, retrans, uid, inode,
            ))
        offset += (length + 3) & ~3
    return False


def _netlink_dump(sock: socket.socket, family: int, states: int, out: list[KernelSocket]) -> None:
    sock.sendto(_request(family, states, b"\0" * 48, NLM_F_REQUEST | NLM_F_DUMP, family),
                (0, 0))
    buf = bytearray(_RECV_BUFFER)
    view = memoryview(buf)
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            return
        if _parse_messages(view[:n], out):
            return


def netlink_list(families: Iterable[int] = (4, 6), states: int = ALL_STATES_MASK) -> list[KernelSocket]:
    """Every TCP socket of the given families whose state bit is in ``states``."""
    out: list[KernelSocket] = []
    sock = _open_netlink()
    try:
        for family in families:
            try:
                _netlink_dump(sock, family, states, out)
            except OSError as exc:
                if family == 6 and exc.errno in (errno.EAFNOSUPPORT, errno.ENOENT):
                    continue  # no IPv6 here
                if exc.errno in (errno.EPERM, errno.EACCES, errno.EPROTONOSUPPORT):
                    raise NetlinkUnavailable(exc.errno, f"sock_diag refused: {exc}") from exc
                raise
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
    mask = ALL_STATES_MASK
    if states is not None:
        mask = 0
        for name in states:
            for n in parse_state(name):
                mask |= 1 << n
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
        sock = _open_netlink()
    except NetlinkUnavailable:
        sock = None
    if sock is not None:
        try:
            sock.sendto(_request(family, ALL_STATES_MASK, _sockid(family, local, remote),
                                 NLM_F_REQUEST, 1), (0, 0))
            data = sock.recv(_RECV_BUFFER)
            out: list[KernelSocket] = []
            _parse_messages(memoryview(data), out)
            # The kernel's lookup falls back to a listener on the local port: check the tuple.
            for s in out:
                if (s.remote_port, s.local_port) == (remote[1], local[1]):
                    return s
            return None
        except OSError:
            return None
        finally:
            sock.close()
    for s in proc_list((family,)):
        if (s.local_addr, s.local_port, s.remote_addr, s.remote_port) == (
            local[0], local[1], remote[0], remote[1]
        ):
            return s
    return None


def count_by_state(sockets: Iterable[KernelSocket]) -> dict[str, int]:
    """How many sockets are in each state, most frequent first."""
    counts: dict[str, int] = {}
    for s in sockets:
        counts[s.state] = counts.get(s.state, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _iter_pids() -> Iterator[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def find_owners(inodes: Iterable[int]) -> dict[int, list[Process]]:
    """Which processes hold each socket inode, by scanning /proc/*/fd for socket:[inode]."""
    wanted = {i for i in inodes if i}
    owners: dict[int, list[Process]] = {}
    if not wanted:
        return owners
    for pid in _iter_pids():
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        name: str | None = None
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if not target.startswith("socket:["):
                continue
            inode = int(target[8:-1])
            if inode not in wanted:
                continue
            if name is None:
                try:
                    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                        name = fh.read().strip()
                except OSError:
                    name = "?"
            owners.setdefault(inode, []).append(Process(pid, name, int(fd)))
    return owners
