"""sock_diag netlink, the interface ``ss`` uses: requests, records, and columns of text.

How it works
------------
One ``SOCK_DIAG_BY_FAMILY`` request (``NETLINK_SOCK_DIAG``, ``linux/inet_diag.h``)
carrying an ``inet_diag_req_v2`` with ``NLM_F_DUMP`` asks the kernel for every TCP
socket of one family whose state is in a bitmask. The kernel answers with datagrams of
records, each a netlink header and an ``inet_diag_msg`` (72 bytes: state, 4-tuple,
queues, uid, inode, and the active timer with the milliseconds left on it, which is
where TIME-WAIT's countdown comes from), then attributes, and ends with ``NLMSG_DONE``.
The same request without ``NLM_F_DUMP`` and with the 4-tuple filled in looks up one
socket.

Speed is the point of this module's shape: ``tcplab sockets`` must keep up with
``ss -tan`` on 10,000 sockets, Python's start-up included.

- A datagram of equal-length records (a dump of many sockets of one kind, say 10,000
  TIME-WAIT sockets) is decoded by ``struct.iter_unpack`` in C; it is recognised with
  a few strided slices, not a loop (:func:`_uniform_length`).
- The records become columns (:func:`to_columns`): each field is converted with
  ``map`` over a dictionary of its few distinct values (states, timers, addresses) or a
  C function (ports), so no Python code runs per socket.
- The module imports only ``_socket``, ``struct``, ``errno``, ``os`` and ``itertools``
  (not ``socket``, whose enums cost more start-up time than the whole dump, nor
  ``typing``): the quick path of ``tcplab sockets`` (:mod:`tcplab.cli.sockets_quick`)
  is this module, :mod:`tcplab.kernel.table` and nothing else.

:mod:`tcplab.kernel.sockets` builds :class:`~tcplab.kernel.sockets.KernelSocket` rows
from the same columns, and adds the ``/proc/net/tcp`` fallback.

State names follow RFC 9293's spelling (``TIME-WAIT``); Linux's ``NEW_SYN_RECV`` (a
request socket, not a full socket) is shown as ``SYN-RECEIVED`` like ``ss`` does.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
from itertools import repeat

TYPE_CHECKING = False  # typing costs start-up time; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Literal

    # One record as _MSG unpacks it: family state timer retrans sport dport src dst
    # expires rqueue wqueue uid inode.
    RawRecord = tuple[int, int, int, int, bytes, bytes, bytes, bytes, int, int, int, int,
                      int]
    # The columns of a list of sockets, in KernelSocket's field order: family (4 or 6),
    # state, local address, local port, remote address, remote port, recv-q, send-q,
    # timer, ms left, retransmits, uid, inode.
    Columns = tuple[Sequence[int], Sequence[str], Sequence[str], Sequence[int],
                    Sequence[str], Sequence[int], Sequence[int], Sequence[int],
                    Sequence[str], Sequence[int], Sequence[int], Sequence[int],
                    Sequence[int]]
    # pid, command name, fd
    Owner = tuple[int, str, int]

__all__ = [
    "ALL_STATES_MASK",
    "STATES",
    "TIMERS",
    "NetlinkUnavailable",
    "dump",
    "lookup",
    "parse_state",
    "scan_owners",
    "to_columns",
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

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_NOCOOKIE = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
_HDR_SIZE = _NLMSGHDR.size  # 16
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid.
_REQ = struct.Struct("=BBBxI")
# inet_diag_sockid: sport and dport are big-endian, the rest host order.
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_REST = struct.Struct("=III")
# inet_diag_msg: family state timer retrans | sport dport (2 bytes each, big-endian) |
# src dst (16 bytes each; IPv4 uses the first 4) | if cookie[2] (skipped) |
# expires rqueue wqueue uid inode (host order).
_MSG = struct.Struct("=BBBB2s2s16s16s12xIIIII")
_MSG_SIZE = _MSG.size  # 72
_RECORD_MIN = _HDR_SIZE + _MSG_SIZE  # 88
_RECV_BUFFER = 1 << 20


class NetlinkUnavailable(OSError):
    """sock_diag netlink cannot be used here (not allowed or not supported)."""


def parse_state(text: str) -> list[int]:
    """Kernel state numbers for a user's state name ("time-wait", "TIME_WAIT", "listen")."""
    key = text.strip().upper().replace("_", "-")
    key = _STATE_ALIASES.get(key, key)
    if key not in _STATE_NUMBERS:
        names = ", ".join(sorted({s.lower() for s in STATES.values()}))
        raise ValueError(f"unknown TCP state {text!r} (one of: {names})")
    return _STATE_NUMBERS[key]


def states_mask(names: Iterable[str] | None) -> int:
    """The kernel's state bitmask for state names (None: every state)."""
    if names is None:
        return ALL_STATES_MASK
    mask = 0
    for name in names:
        for n in parse_state(name):
            mask |= 1 << n
    return mask


# --------------------------------------------------------------------------- requests


def open_netlink() -> _socket.socket:
    try:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise NetlinkUnavailable(exc.errno, f"sock_diag netlink socket refused: {exc}") from exc
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, _RECV_BUFFER)
    except OSError:
        pass  # the default buffer works, with more datagrams
    return sock


def _sockid(family: int, local: tuple[str, int], remote: tuple[str, int]) -> bytes:
    af = AF_INET if family == 4 else AF_INET6
    src = _socket.inet_pton(af, local[0]).ljust(16, b"\0")
    dst = _socket.inet_pton(af, remote[0]).ljust(16, b"\0")
    return _SOCKID.pack(local[1], remote[1], src, dst) + _SOCKID_REST.pack(
        0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)


def _request(family: int, states: int, sockid: bytes, flags: int, seq: int) -> bytes:
    af = AF_INET if family == 4 else AF_INET6
    body = _REQ.pack(af, _socket.IPPROTO_TCP, 0, states) + sockid
    header = _NLMSGHDR.pack(_HDR_SIZE + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0)
    return header + body


# --------------------------------------------------------------------------- records

_STRUCTS: dict[int, struct.Struct] = {}


def _record_struct(length: int) -> struct.Struct:
    """A struct for a whole record of ``length`` bytes, header and attributes skipped."""
    st = _STRUCTS.get(length)
    if st is None:
        st = _STRUCTS[length] = struct.Struct(
            f"={_HDR_SIZE}x{_MSG.format[1:]}{length - _RECORD_MIN}x")
    return st


def _uniform_length(data: bytes) -> int:
    """The record length if ``data`` is nothing but socket records of one length, else 0.

    A dump of many sockets of one kind (which carry the same attributes) arrives as
    datagrams of equal-length records. That is checked without a Python loop: every
    record's length and type fields are read with one strided slice per byte. If the
    record at every offset k * L says "length L, type SOCK_DIAG_BY_FAMILY", the walk by
    L is the real walk.
    """
    n = len(data)
    if n < _RECORD_MIN:
        return 0
    length = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
    if length < _RECORD_MIN or length >= 1 << 16 or length % 4 or n % length:
        return 0
    count = n // length
    if (data[0::length] != bytes((length & 0xFF,)) * count
            or data[1::length] != bytes((length >> 8,)) * count
            or data[2::length] != bytes(count)
            or data[3::length] != bytes(count)
            or data[4::length] != bytes((SOCK_DIAG_BY_FAMILY,)) * count
            or data[5::length] != bytes(count)):
        return 0
    return length


def parse_records(data: bytes, out: list[RawRecord]) -> bool:
    """Append the socket records of one netlink datagram to ``out``; True when the dump is done.

    A datagram of equal-length records is decoded by ``struct.iter_unpack``; anything
    else (records with different attributes, NLMSG_DONE, errors) goes through the
    general loop, one ``unpack_from`` per message.
    """
    length = _uniform_length(data)
    if length:
        out.extend(_record_struct(length).iter_unpack(data))
        return False
    unpack_hdr = _NLMSGHDR.unpack_from
    unpack_msg = _MSG.unpack_from
    end = len(data)
    offset = 0
    while offset + _HDR_SIZE <= end:
        length, mtype, _flags, _seq, _pid = unpack_hdr(data, offset)
        if length < _HDR_SIZE:
            break
        if mtype == NLMSG_DONE:
            return True
        if mtype == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + _HDR_SIZE)
            if code == 0:
                return True
            raise OSError(-code, os.strerror(-code))
        if mtype == SOCK_DIAG_BY_FAMILY and length >= _RECORD_MIN:
            out.append(unpack_msg(data, offset + _HDR_SIZE))
        offset += (length + 3) & ~3
    return False


def dump(family: int, states: int = ALL_STATES_MASK,
         sock: _socket.socket | None = None) -> list[RawRecord]:
    """Every record of one family (4 or 6) whose state bit is in ``states``.

    An empty list when the family is not supported here (no IPv6); NetlinkUnavailable
    when netlink is refused.
    """
    own = sock is None
    nl = open_netlink() if sock is None else sock
    out: list[RawRecord] = []
    try:
        nl.sendto(_request(family, states, bytes(48), NLM_F_REQUEST | NLM_F_DUMP, family),
                  (0, 0))
        recv = nl.recv
        while True:
            data = recv(_RECV_BUFFER)
            if not data or parse_records(data, out):
                break
    except OSError as exc:
        if family == 6 and exc.errno in (errno.EAFNOSUPPORT, errno.ENOENT):
            return []  # no IPv6 here
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EPROTONOSUPPORT):
            raise NetlinkUnavailable(exc.errno, f"sock_diag refused: {exc}") from exc
        raise
    finally:
        if own:
            nl.close()
    return out


def lookup(local: tuple[str, int], remote: tuple[str, int]) -> list[RawRecord]:
    """The records the kernel returns for one 4-tuple (it may add a listener's)."""
    family = 6 if ":" in local[0] else 4
    nl = open_netlink()
    try:
        nl.sendto(_request(family, ALL_STATES_MASK, _sockid(family, local, remote),
                           NLM_F_REQUEST, 1), (0, 0))
        out: list[RawRecord] = []
        parse_records(nl.recv(_RECV_BUFFER), out)
        return out
    finally:
        nl.close()


# --------------------------------------------------------------------------- columns


def _address_texts(family: int, raw: Iterable[bytes]) -> dict[bytes, str]:
    """Text of each distinct raw address (a listing has few: one lookup per row after)."""
    ntop = _socket.inet_ntop
    if family == 4:
        return {a: ntop(AF_INET, a[:4]) for a in set(raw)}
    return {a: ntop(AF_INET6, a) for a in set(raw)}


def to_columns(family: int, records: Sequence[RawRecord]) -> Columns:
    """The records of one family's dump as columns of values ready to show.

    Each column is converted with ``map``: over a dictionary of its few distinct values
    (states, timers, addresses), or a C function (ports).
    """
    if not records:
        return ((),) * 13
    (_fam, st, tmr, retrans, sport, dport, src, dst, expires, rq, wq, uid, inode) = zip(
        *records, strict=True)
    addrs = _address_texts(family, (*src, *dst))
    state_names = {n: STATES.get(n) or str(n) for n in set(st)}
    timer_names = {n: TIMERS.get(n, str(n)) for n in set(tmr)}
    big: repeat[Literal["big"]] = repeat("big")
    from_bytes = int.from_bytes
    return (
        (family,) * len(st),
        tuple(map(state_names.__getitem__, st)),
        tuple(map(addrs.__getitem__, src)),
        tuple(map(from_bytes, sport, big)),
        tuple(map(addrs.__getitem__, dst)),
        tuple(map(from_bytes, dport, big)),
        rq,
        wq,
        tuple(map(timer_names.__getitem__, tmr)),
        # The kernel reports 0 ms left when no timer runs; keep it so even if not.
        tuple(map(int.__mul__, expires, map(bool, tmr))),
        retrans,
        uid,
        inode,
    )


def keep_port(records: list[RawRecord], port: int) -> list[RawRecord]:
    """The records with ``port`` at either end."""
    p = port.to_bytes(2, "big")
    return [r for r in records if r[4] == p or r[5] == p]


def keep_ports(records: list[RawRecord], ports: Iterable[int]) -> list[RawRecord]:
    """The records with any of ``ports`` at either end."""
    wanted = {p.to_bytes(2, "big") for p in ports}
    return [r for r in records if r[4] in wanted or r[5] in wanted]


# --------------------------------------------------------------------------- owners


def scan_owners(inodes: Iterable[int]) -> dict[int, list[Owner]]:
    """Which processes hold each socket inode: (pid, name, fd), from /proc/*/fd."""
    wanted = {i for i in inodes if i}
    owners: dict[int, list[Owner]] = {}
    if not wanted:
        return owners
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return owners
    for pid in pids:
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
            owners.setdefault(inode, []).append((pid, name, int(fd)))
    return owners
