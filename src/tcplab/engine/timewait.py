"""TIME-WAIT in compact form, as Linux keeps ``tcp_timewait_sock`` mini-sockets.

A connection that enters TIME-WAIT leaves the host's connection table and
becomes one entry here: the 4-tuple, SND.NXT, RCV.NXT, the window, the
SO_REUSEADDR flag and a deadline.  Nothing else of the connection is kept.

Storage: a million entries must fit in about 200 bytes each, so an entry is
not an object.  The 4-tuple is packed into one integer (the dictionary key)
and the rest into another (the value):

    value = deadline_us << 122 | queue_index << 82 | reuse << 81
            | rcv_wnd << 64 | rcv_nxt << 32 | snd_nxt

(see :func:`_pack`).  :meth:`TimeWaitTable.get` unpacks a value into a
short-lived :class:`TimeWaitEntry` for the code that processes a segment.

Expiry: every entry lives exactly ``time_wait_length``, so entries expire in
the order they entered; a FIFO queue of keys gives O(1) expiry per entry and
no per-tick cost that grows with the table.  A restarted entry (a
retransmitted FIN) is queued again; the value remembers the index of its
latest queue item, so an older item is recognised as stale when it reaches
the head and is skipped, exactly and in O(1).

Behaviour (in :mod:`tcplab.engine.host`, RFC 9293 3.10.7.4, RFC 1337,
RFC 6191, RFC 5961): a retransmitted FIN is ACKed again and restarts the 2MSL
timer; a RST is ignored (RFC 1337); a SYN beyond RCV.NXT may reopen the
4-tuple; anything else unacceptable gets an ACK.
"""

from __future__ import annotations

import struct
from collections import deque
from functools import lru_cache

from tcplab.wire.checksum import addr_bytes, addr_str

Key = tuple[str, int, str, int]

_M32 = 0xFFFFFFFF


class TimeWaitEntry:
    """An unpacked view of one TIME-WAIT entry (not what is stored)."""

    __slots__ = ("deadline", "name", "rcv_nxt", "rcv_wnd", "reuse", "snd_nxt")

    def __init__(self, snd_nxt: int, rcv_nxt: int, rcv_wnd: int, reuse: bool,
                 deadline: float, name: str | None = None) -> None:
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.rcv_wnd = rcv_wnd
        self.reuse = reuse
        self.deadline = deadline
        self.name = name  # kept only when tracing, for the trace's "conn" field


@lru_cache(maxsize=65536)
def _addr_int(addr: str) -> int:
    b = addr_bytes(addr)
    return int.from_bytes(b, "big") | (1 << 128 if len(b) == 16 else 0)


def _addr_of(value: int) -> str:
    if value >> 128:
        return addr_str((value & ((1 << 128) - 1)).to_bytes(16, "big"))
    return addr_str(value.to_bytes(4, "big"))


def pack_key(key: Key) -> int:
    """The 4-tuple as one integer: laddr | raddr | lport | rport."""
    laddr, lport, raddr, rport = key
    return (_addr_int(laddr) << 161) | (_addr_int(raddr) << 32) | (lport << 16) | rport


def unpack_key(k: int) -> Key:
    rport = k & 0xFFFF
    lport = (k >> 16) & 0xFFFF
    raddr = (k >> 32) & ((1 << 129) - 1)
    laddr = k >> 161
    return (_addr_of(laddr), lport, _addr_of(raddr), rport)


# value layout, low to high: snd_nxt 32 | rcv_nxt 32 | window 17 | reuse 1 |
# queue index 40 | deadline.  The deadline is stored as the bits of the IEEE
# double: exact, and for non-negative values the bits order like the numbers.
_QSHIFT = 82
_DSHIFT = 122
_QMASK = (1 << 40) - 1


_DOUBLE = struct.Struct(">d")


def _dbits(t: float) -> int:
    return int.from_bytes(_DOUBLE.pack(max(t, 0.0)), "big")


def _pack(snd_nxt: int, rcv_nxt: int, rcv_wnd: int, reuse: bool, deadline: float,
          qindex: int) -> int:
    return ((_dbits(deadline) << _DSHIFT) | ((qindex & _QMASK) << _QSHIFT)
            | (int(reuse) << 81) | (min(rcv_wnd, 0x1FFFF) << 64) | ((rcv_nxt & _M32) << 32)
            | (snd_nxt & _M32))


def _deadline(v: int) -> float:
    return float(_DOUBLE.unpack((v >> _DSHIFT).to_bytes(8, "big"))[0])


def _unpack(v: int, name: str | None) -> TimeWaitEntry:
    return TimeWaitEntry(v & _M32, (v >> 32) & _M32, (v >> 64) & 0x1FFFF, bool((v >> 81) & 1),
                         _deadline(v), name)


class TimeWaitTable:
    """The host's TIME-WAIT entries with FIFO expiry."""

    __slots__ = ("_head", "_names", "_tab", "port_count", "port_noreuse", "queue")

    def __init__(self) -> None:
        self._tab: dict[int, int] = {}
        self._names: dict[int, str] = {}  # only when tracing
        self.queue: deque[int] = deque()
        self._head = 0  # queue index of queue[0]: how many items were ever popped
        # local port -> {local addr: entries}, and (addr, port) -> entries without SO_REUSEADDR
        self.port_count: dict[int, dict[str, int]] = {}
        self.port_noreuse: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        return len(self._tab)

    def __contains__(self, key: Key) -> bool:
        return bool(self._tab) and pack_key(key) in self._tab

    def get(self, key: Key) -> TimeWaitEntry | None:
        k = pack_key(key)
        v = self._tab.get(k)
        if v is None:
            return None
        return _unpack(v, self._names.get(k))

    def add(self, key: Key, entry: TimeWaitEntry) -> None:
        k = pack_key(key)
        if k in self._tab:
            self.remove(key)
        self._tab[k] = _pack(entry.snd_nxt, entry.rcv_nxt, entry.rcv_wnd, entry.reuse,
                             entry.deadline, self._head + len(self.queue))
        if entry.name is not None:
            self._names[k] = entry.name
        self.queue.append(k)
        lp = (key[0], key[1])
        addrs = self.port_count.setdefault(key[1], {})
        addrs[key[0]] = addrs.get(key[0], 0) + 1
        if not entry.reuse:
            self.port_noreuse[lp] = self.port_noreuse.get(lp, 0) + 1

    def restart(self, key: Key, deadline: float) -> None:
        """Move the entry's deadline later (a retransmitted FIN) and queue it again."""
        k = pack_key(key)
        v = self._tab[k]
        qindex = self._head + len(self.queue)
        self._tab[k] = ((v & ((1 << _QSHIFT) - 1)) | ((qindex & _QMASK) << _QSHIFT)
                        | (_dbits(deadline) << _DSHIFT))
        self.queue.append(k)

    def remove(self, key: Key) -> TimeWaitEntry | None:
        entry = self.get(key)
        if entry is None:
            return None
        self._drop(pack_key(key), key, entry.reuse)
        return entry

    def _drop(self, k: int, key: Key, reuse: bool) -> None:
        del self._tab[k]
        self._names.pop(k, None)
        lp = (key[0], key[1])
        addrs = self.port_count[key[1]]
        n = addrs[key[0]] - 1
        if n:
            addrs[key[0]] = n
        else:
            del addrs[key[0]]
            if not addrs:
                del self.port_count[key[1]]
        if not reuse:
            m = self.port_noreuse[lp] - 1
            if m:
                self.port_noreuse[lp] = m
            else:
                del self.port_noreuse[lp]

    def _head_live(self) -> int | None:
        """The value of the entry at the queue's head, dropping stale items."""
        q = self.queue
        tab = self._tab
        while q:
            v = tab.get(q[0])
            if v is not None and (v >> _QSHIFT) & _QMASK == self._head & _QMASK:
                return v
            q.popleft()  # removed, or queued again later (restarted)
            self._head += 1
        return None

    def next_deadline(self) -> float | None:
        v = self._head_live()
        return None if v is None else _deadline(v)

    def pop_expired(self, now: float) -> list[tuple[Key, TimeWaitEntry]]:
        """Remove and return every entry whose deadline is ``<= now``."""
        out: list[tuple[Key, TimeWaitEntry]] = []
        limit = _dbits(now)
        while True:
            v = self._head_live()
            if v is None or v >> _DSHIFT > limit:
                return out
            k = self.queue.popleft()
            self._head += 1
            key = unpack_key(k)
            entry = _unpack(v, self._names.get(k))
            self._drop(k, key, entry.reuse)
            out.append((key, entry))

    def holders(self, addr: str, port: int) -> tuple[int, int]:
        """(entries, entries without SO_REUSEADDR) on a local address and port."""
        return (self.port_count.get(port, {}).get(addr, 0),
                self.port_noreuse.get((addr, port), 0))

    def addrs_on_port(self, port: int) -> list[str]:
        return list(self.port_count.get(port, ()))

    def keys(self) -> list[Key]:
        return [unpack_key(k) for k in self._tab]
