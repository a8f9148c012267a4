"""TIME-WAIT in compact form, as Linux keeps ``tcp_timewait_sock`` mini-sockets.

A connection that enters TIME-WAIT leaves the host's connection table and
becomes one entry here: the 4-tuple, SND.NXT, RCV.NXT, the window, the
SO_REUSEADDR flag and a deadline.  Nothing else of the connection is kept.

Storage: a million entries must fit in about 200 bytes each, so an entry is
not an object.  The 4-tuple is packed into one integer (the dictionary key)
and the rest into another (the value):

    value = [ts_stamp_ms << 219 | ts_recent << 187 | 1 << 186]   (timestamps only)
            | deadline << 122 | queue_index << 82 | reuse << 81
            | rcv_wnd << 64 | rcv_nxt << 32 | snd_nxt

The timestamp part (RFC 7323 TS.Recent and when it was set, for PAWS and
RFC 6191) exists only for connections that negotiated timestamps, so an
entry without them stays as small as before.

(see :func:`_pack`).  :meth:`TimeWaitTable.get` unpacks a value into a
short-lived :class:`TimeWaitEntry` for the code that processes a segment.

Expiry: every entry lives exactly ``time_wait_length``, so entries expire in
the order they entered; a FIFO queue of keys gives O(1) expiry per entry and
no per-tick cost that grows with the table.  A restarted entry (a
retransmitted FIN) is queued again; the value remembers the index of its
latest queue item, so an older item is recognised as stale when it reaches
the head and is skipped, exactly and in O(1).

Behaviour (:class:`TimeWait`, RFC 9293 3.10.7.4, RFC 1337, RFC 6191, RFC
5961): a retransmitted FIN is ACKed again and restarts the 2MSL timer; a RST
is ignored (RFC 1337); a SYN beyond RCV.NXT may reopen the 4-tuple; anything
else unacceptable gets an ACK.  An entry's state changes (TIME-WAIT ->
CLOSED) are traced by :meth:`TimeWait.set_closed` with the entry's own
variables, as :meth:`Connection.set_state <tcplab.engine.connection.Connection.set_state>`
traces a connection's.
"""

from __future__ import annotations

import struct
from collections import deque
from functools import lru_cache
from typing import Final

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.context import EngineContext
from tcplab.engine.timestamps import TsOffsets, paws_rejects, ts_lt, tsval
from tcplab.trace import Tcb, state_event, timer_event
from tcplab.wire.checksum import addr_bytes, addr_str
from tcplab.wire.seq import seq_gt, seq_in_window
from tcplab.wire.tcp import ACK, FIN, RST, SYN, Nop, TcpOption, TcpSegment, Timestamps

Key = tuple[str, int, str, int]

_M32: Final = 0xFFFFFFFF


class TimeWaitEntry:
    """An unpacked view of one TIME-WAIT entry (not what is stored)."""

    __slots__ = ("deadline", "name", "rcv_nxt", "rcv_wnd", "reuse", "snd_nxt", "ts_recent",
                 "ts_stamp")

    def __init__(self, snd_nxt: int, rcv_nxt: int, rcv_wnd: int, reuse: bool,
                 deadline: float, name: str | None = None, ts_recent: int | None = None,
                 ts_stamp: float = 0.0) -> None:
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.rcv_wnd = rcv_wnd
        self.reuse = reuse
        self.deadline = deadline
        self.name = name  # kept only when tracing, for the trace's "conn" field
        self.ts_recent = ts_recent  # TS.Recent (RFC 7323), None: no timestamps
        self.ts_stamp = ts_stamp    # when TS.Recent was set (ms resolution)


@lru_cache(maxsize=65536)
def _addr_int(addr: str) -> int:
    b = addr_bytes(addr)
    return int.from_bytes(b, "big") | (1 << 128 if len(b) == 16 else 0)


@lru_cache(maxsize=4096)
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
_QSHIFT: Final = 82
_DSHIFT: Final = 122
_QMASK: Final = (1 << 40) - 1
_D64: Final = (1 << 64) - 1
_TSFLAG: Final = 1 << 186
_TSSHIFT: Final = 187
_STAMPSHIFT: Final = 219


_DOUBLE: Final = struct.Struct(">d")


def _dbits(t: float) -> int:
    return int.from_bytes(_DOUBLE.pack(max(t, 0.0)), "big")


def _ts_bits(ts_recent: int | None, ts_stamp: float) -> int:
    if ts_recent is None:
        return 0
    stamp_ms = int(max(ts_stamp, 0.0) * 1000) & ((1 << 48) - 1)
    return (stamp_ms << _STAMPSHIFT) | ((ts_recent & _M32) << _TSSHIFT) | _TSFLAG


def _pack(snd_nxt: int, rcv_nxt: int, rcv_wnd: int, reuse: bool, deadline: float,
          qindex: int, ts_recent: int | None = None, ts_stamp: float = 0.0) -> int:
    return (_ts_bits(ts_recent, ts_stamp) | (_dbits(deadline) << _DSHIFT)
            | ((qindex & _QMASK) << _QSHIFT)
            | (int(reuse) << 81) | (min(rcv_wnd, 0x1FFFF) << 64) | ((rcv_nxt & _M32) << 32)
            | (snd_nxt & _M32))


def _dkey(v: int) -> int:
    """The deadline's bits (they order like the deadlines)."""
    return (v >> _DSHIFT) & _D64


def _deadline(v: int) -> float:
    return float(_DOUBLE.unpack(_dkey(v).to_bytes(8, "big"))[0])


def _unpack(v: int, name: str | None) -> TimeWaitEntry:
    entry = TimeWaitEntry(v & _M32, (v >> 32) & _M32, (v >> 64) & 0x1FFFF,
                          bool((v >> 81) & 1), _deadline(v), name)
    if v & _TSFLAG:
        entry.ts_recent = (v >> _TSSHIFT) & _M32
        entry.ts_stamp = (v >> _STAMPSHIFT) / 1000.0
    return entry


class TimeWaitTable:
    """The host's TIME-WAIT entries with FIFO expiry."""

    __slots__ = ("_head", "_head_deadline", "_head_value", "_names", "_tab", "port_count",
                 "port_noreuse", "queue")

    def __init__(self) -> None:
        self._tab: dict[int, int] = {}
        self._names: dict[int, str] = {}  # only when tracing
        self.queue: deque[int] = deque()
        self._head = 0  # queue index of queue[0]: how many items were ever popped
        self._head_value = -1  # the packed value whose deadline is cached below
        self._head_deadline = 0.0
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
                             entry.deadline, self._head + len(self.queue), entry.ts_recent,
                             entry.ts_stamp)
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
        ts_part = v & ~((1 << 186) - 1)
        self._tab[k] = (ts_part | (v & ((1 << _QSHIFT) - 1)) | ((qindex & _QMASK) << _QSHIFT)
                        | (_dbits(deadline) << _DSHIFT))
        self.queue.append(k)

    def set_ts_recent(self, key: Key, ts_recent: int, now: float) -> None:
        """A newer TSval arrived for the entry (its FIN again): keep it for PAWS."""
        k = pack_key(key)
        v = self._tab[k]
        self._tab[k] = (v & ((1 << 186) - 1)) | _ts_bits(ts_recent, now)

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
        if not self._tab:
            return None
        v = self._head_live()
        if v is None:
            return None
        if v != self._head_value:
            self._head_value = v
            self._head_deadline = _deadline(v)
        return self._head_deadline

    def pop_expired(self, now: float) -> list[tuple[Key, TimeWaitEntry]]:
        """Remove and return every entry whose deadline is ``<= now``."""
        out: list[tuple[Key, TimeWaitEntry]] = []
        limit = _dbits(now)
        while True:
            v = self._head_live()
            if v is None or _dkey(v) > limit:
                return out
            k = self.queue.popleft()
            self._head += 1
            key = unpack_key(k)
            entry = _unpack(v, self._names.get(k))
            self._drop(k, key, entry.reuse)
            out.append((key, entry))

    def drop_expired(self, now: float) -> int:
        """Remove every entry whose deadline is ``<= now`` and say how many: the fast
        path when nobody reads the entries (no trace)."""
        n = 0
        limit = _dbits(now)
        tab, names = self._tab, self._names
        while True:
            v = self._head_live()
            if v is None or _dkey(v) > limit:
                return n
            k = self.queue.popleft()
            self._head += 1
            laddr, lport = _addr_of(k >> 161), (k >> 16) & 0xFFFF
            del tab[k]
            if names:
                names.pop(k, None)
            addrs = self.port_count[lport]
            left = addrs[laddr] - 1
            if left:
                addrs[laddr] = left
            else:
                del addrs[laddr]
                if not addrs:
                    del self.port_count[lport]
            if not (v >> 81) & 1:  # no SO_REUSEADDR
                lp = (laddr, lport)
                m = self.port_noreuse[lp] - 1
                if m:
                    self.port_noreuse[lp] = m
                else:
                    del self.port_noreuse[lp]
            n += 1

    def holders(self, addr: str, port: int) -> tuple[int, int]:
        """(entries, entries without SO_REUSEADDR) on a local address and port."""
        return (self.port_count.get(port, {}).get(addr, 0),
                self.port_noreuse.get((addr, port), 0))

    def addrs_on_port(self, port: int) -> list[str]:
        return list(self.port_count.get(port, ()))

    def keys(self) -> list[Key]:
        return [unpack_key(k) for k in self._tab]


class TimeWait:
    """TIME-WAIT for a host: its compact entries and what they do with segments."""

    __slots__ = ("config", "cx", "reopened", "table", "ts_offsets")

    def __init__(self, cx: EngineContext, ts_offsets: TsOffsets | None = None) -> None:
        self.cx = cx
        self.config: TcpConfig = cx.config
        self.table = TimeWaitTable()
        self.ts_offsets = ts_offsets if ts_offsets is not None else TsOffsets(b"tcplab")
        #: the 4-tuple a SYN just reopened, and the ISN its new connection takes (Linux
        #: tcp_timewait_state_process: tw_snd_nxt + 65535 + 2), until the host takes it
        self.reopened: tuple[Key, int] | None = None

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key in self.table

    @staticmethod
    def entry_name(key: Key, entry: TimeWaitEntry) -> str:
        return entry.name or f"{key[0]}:{key[1]}-{key[2]}:{key[3]}"

    @staticmethod
    def tcb(entry: TimeWaitEntry, state: str) -> Tcb:
        """The variables an entry keeps, in the trace's TCB shape (the rest of the
        connection's TCB is gone: ISNs, cwnd and RTO are 0)."""
        return {"state": state, "snd_una": entry.snd_nxt, "snd_nxt": entry.snd_nxt,
                "snd_wnd": 0, "rcv_nxt": entry.rcv_nxt, "rcv_wnd": entry.rcv_wnd, "iss": 0,
                "irs": 0, "cwnd": 0, "rto": 0.0}

    # ------------------------------------------------------------ life of an entry

    def enter(self, conn: Connection, now: float) -> None:
        """Keep ``conn`` (already in TIME-WAIT) as a compact entry for 2MSL."""
        deadline = now + self.config.time_wait_length
        tracing = self.cx.trace.enabled
        ts = conn.ts
        key = conn.key
        # a name is kept only when it is not the one entry_name() derives from the key
        name = conn.name if tracing and conn.name != (
            f"{key[0]}:{key[1]}-{key[2]}:{key[3]}") else None
        entry = TimeWaitEntry(conn.snd_nxt, conn.rcv_nxt, max(conn.rcv_wnd, 1), conn.reuseaddr,
                              deadline, name,
                              ts.recent if ts.ok else None, max(ts.recent_stamp, 0.0))
        self.table.add(conn.key, entry)
        conn.time_wait_entries = self
        if tracing:
            self.cx.trace.add(timer_event(now, self.cx.name, conn.name, "time-wait", "armed",
                                          deadline))

    def set_closed(self, key: Key, entry: TimeWaitEntry, now: float, cause: str) -> None:
        """The entry leaves TIME-WAIT for CLOSED (already removed from the table)."""
        tr = self.cx.trace
        if tr.enabled:
            tr.add(state_event(now, self.cx.name, self.entry_name(key, entry), "TIME-WAIT",
                               "CLOSED", cause, self.tcb(entry, "CLOSED")))

    def expire(self, now: float) -> None:
        """2MSL has passed for every entry whose deadline is ``<= now``."""
        tr = self.cx.trace
        if not tr.enabled:
            gone = self.table.drop_expired(now)
            if gone:
                self.cx.counters.inc("TcpExtTW", gone)
            return
        for key, entry in self.table.pop_expired(now):
            self.cx.counters.inc("TcpExtTW")
            if tr.enabled:
                tr.add(timer_event(now, self.cx.name, self.entry_name(key, entry), "time-wait",
                                   "fired", None))
            self.set_closed(key, entry, now, "2MSL timer expired")

    def next_deadline(self) -> float | None:
        return self.table.next_deadline()

    # ------------------------------------------------------------ segments (3.10.7.4)

    def _ack(self, key: Key, entry: TimeWaitEntry, now: float) -> None:
        wnd = min(entry.rcv_wnd, 0xFFFF)
        opts: tuple[TcpOption, ...] = ()
        if entry.ts_recent is not None:
            val = tsval(now, self.ts_offsets.offset(key[0], key[2]))
            opts = (Nop(), Nop(), Timestamps(val, entry.ts_recent))
        self.cx.emit(key[0], key[2], TcpSegment(key[1], key[3], entry.snd_nxt, entry.rcv_nxt,
                                                ACK, wnd, 0, opts), now,
                     self.entry_name(key, entry))

    def reusable(self, key: Key, now: float, bound: bool) -> bool:
        """May connect() take this TIME-WAIT 4-tuple (Linux tcp_twsk_unique)?  Only when
        timestamps protect the new connection from the old one's segments (PAWS): from
        a socket bound to the port, always then; from an ephemeral port, when
        tcp_tw_reuse allows it (2: loopback only) and the last timestamp is older than
        tcp_tw_reuse_delay."""
        entry = self.table.get(key)
        if entry is None or entry.ts_recent is None:
            return False
        if bound:
            return True
        reuse = self.config.tw_reuse
        if reuse == 2 and not (_loopback(key[0]) or _loopback(key[2])):
            reuse = 0
        return bool(reuse) and now - entry.ts_stamp >= self.config.tw_reuse_delay

    def take_for_reuse(self, key: Key, now: float) -> TimeWaitEntry | None:
        """connect() reuses the 4-tuple: the entry ends (its TS.Recent goes to the new
        connection)."""
        entry = self.table.remove(key)
        if entry is None:
            return None
        self.cx.counters.inc("TcpExtTWRecycled")
        self.set_closed(key, entry, now, "4-tuple reused by connect() (timestamps protect it)")
        return entry

    def _remove(self, key: Key, entry: TimeWaitEntry, now: float, cause: str) -> None:
        self.table.remove(key)
        self.set_closed(key, entry, now, cause)

    def on_segment(self, key: Key, seg: TcpSegment, now: float) -> bool:
        """A segment for a TIME-WAIT entry.  True: it reopens the 4-tuple, hand it on
        to the listener."""
        entry = self.table.get(key)
        if entry is None:
            return True
        cx = self.cx
        config = self.config
        name = self.entry_name(key, entry)
        flags = seg.flags
        src, dst = key[2], key[0]

        def record(reason: str, accepted: bool = False) -> None:
            cx.record(src, dst, seg, now, reason, name, accepted)

        # RFC 7323 5 (PAWS) and RFC 6191: with timestamps, an old TSval marks an old
        # duplicate, whatever its sequence number.
        tso = seg.timestamps if entry.ts_recent is not None else None
        paws_reject = (tso is not None and entry.ts_recent is not None
                       and paws_rejects(tso.tsval, entry.ts_recent, entry.ts_stamp, now))
        if paws_reject and not flags & RST:
            cx.counters.inc("TcpExtPAWSEstab")
            self._ack(key, entry, now)
            record("PAWS in TIME-WAIT: timestamp older than TS.Recent; ACK sent")
            return False
        if flags & RST:
            if config.rfc1337:
                record("RST in TIME-WAIT ignored (RFC 1337)")
                return False
            if seg.seq == entry.rcv_nxt or (not config.rfc5961 and seq_in_window(
                    seg.seq, entry.rcv_nxt, entry.rcv_wnd)):
                record("RST in TIME-WAIT: assassinated", accepted=True)
                self._remove(key, entry, now, "RST in TIME-WAIT (no RFC 1337 protection)")
            else:
                record("RST in TIME-WAIT out of sequence")
            return False
        seg_len = seg.seg_len
        in_window = (seq_in_window(seg.seq, entry.rcv_nxt, entry.rcv_wnd) if seg_len == 0 else
                     seq_in_window(seg.seq, entry.rcv_nxt, entry.rcv_wnd) or
                     seq_in_window((seg.seq + seg_len - 1) & 0xFFFFFFFF, entry.rcv_nxt,
                                   entry.rcv_wnd))
        if flags & SYN:
            ts_newer = (tso is not None and entry.ts_recent is not None
                        and ts_lt(entry.ts_recent, tso.tsval))
            if not flags & ACK and config.time_wait_reopen \
                    and (seq_gt(seg.seq, entry.rcv_nxt) or ts_newer):
                # RFC 1122 4.2.2.13 / RFC 6191 section 2 (no timestamps): a new
                # incarnation may start when its SYN is beyond RCV.NXT (Linux
                # and FreeBSD do this).  RFC 9293 3.10.7.4 allows it only with
                # timestamps; time_wait_reopen=False gives that strict reading.
                why = ("newer timestamp" if ts_newer and not seq_gt(seg.seq, entry.rcv_nxt)
                       else "higher sequence number")
                record(f"SYN with a {why} in TIME-WAIT: entry closed, SYN reopens (RFC 6191)",
                       accepted=True)
                if config.tw_reopen_isn:
                    self.reopened = (key, (entry.snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1)
                self._remove(key, entry, now, f"new SYN with a {why}")
                return True
            if not config.rfc5961 and seq_in_window(seg.seq, entry.rcv_nxt, entry.rcv_wnd):
                # RFC 793: a SYN in the window is an error: reset, and the entry goes.
                cx.emit(key[0], key[2], TcpSegment(key[1], key[3], entry.snd_nxt,
                                                   entry.rcv_nxt, RST | ACK, 0), now, name)
                record("SYN in window in TIME-WAIT (RFC 793): reset", accepted=True)
                self._remove(key, entry, now, "SYN in window (RFC 793)")
                return False
            if not config.rfc5961:
                self._ack(key, entry, now)
                record("SYN outside window in TIME-WAIT: ACK")
                return False
            # RFC 5961 4.2 / RFC 9293 3.10.7.4 fourth step: a challenge ACK.
            if cx.challenge.allow(now):
                cx.counters.inc("TcpExtTCPChallengeACK")
                self._ack(key, entry, now)
                record("SYN in TIME-WAIT: challenge ACK")
            else:
                record("SYN in TIME-WAIT: rate-limited")
            return False
        if in_window and not flags & ACK:
            # RFC 9293 3.10.7.4 fifth step: "if the ACK bit is off, drop the segment".
            record("no ACK bit (TIME-WAIT)")
            return False
        if flags & FIN and (in_window or (seg.seq + seg_len) & 0xFFFFFFFF == entry.rcv_nxt):
            # The peer's FIN again (or a FIN in the window): ACK it and restart
            # the 2MSL timer (RFC 9293 3.10.7.4 eighth step, TIME-WAIT).
            if tso is not None:
                self.table.set_ts_recent(key, tso.tsval, now)
                entry.ts_recent = tso.tsval
            self._ack(key, entry, now)
            deadline = now + config.time_wait_length
            self.table.restart(key, deadline)
            record("FIN again in TIME-WAIT: ACK, restart 2MSL", accepted=True)
            if cx.trace.enabled:
                cx.trace.add(timer_event(now, cx.name, name, "time-wait", "armed", deadline))
            return False
        if not in_window:
            self._ack(key, entry, now)
            record("outside window in TIME-WAIT: ACK sent")
        elif flags == ACK and not seg.payload and seg.seq == entry.rcv_nxt \
                and seg.ack == entry.snd_nxt:
            record("duplicate ACK in TIME-WAIT ignored")
        else:
            # Anything else new in the window (data, an ACK of something else):
            # answer with an ACK so the peer learns the state, as FreeBSD
            # (tcp_twcheck) and Linux (tcp_timewait_state_process) do.
            self._ack(key, entry, now)
            record("segment in TIME-WAIT: ACK sent")
        return False

    # ------------------------------------------------------------ ports

    def addrs_on_port(self, port: int) -> list[str]:
        return self.table.addrs_on_port(port)

    def holders(self, addr: str, port: int) -> tuple[int, int]:
        return self.table.holders(addr, port)

    def keys(self) -> list[Key]:
        return self.table.keys()

    def get(self, key: Key) -> TimeWaitEntry | None:
        return self.table.get(key)

    def remove(self, key: Key) -> TimeWaitEntry | None:
        return self.table.remove(key)


def _loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"
