"""TIME-WAIT in compact form, as Linux keeps ``tcp_timewait_sock`` mini-sockets.

A connection that enters TIME-WAIT leaves the host's connection table and
becomes a :class:`TimeWaitEntry`: the 4-tuple (as the table key), SND.NXT,
RCV.NXT, the window, the SO_REUSEADDR flag and a deadline.  Nothing else of
the connection is kept.

Expiry: every entry lives exactly ``time_wait_length``, so entries expire in
the order they were created; a FIFO queue gives O(1) expiry per entry and no
per-tick cost that grows with the table.  An entry whose timer was restarted
(a retransmitted FIN) is simply re-queued; its old queue item is skipped
when it comes up, because the deadline no longer matches.

Behaviour (RFC 9293 3.10.7.4 for TIME-WAIT, RFC 1337, RFC 6191, RFC 5961):

* a retransmitted FIN is ACKed again and restarts the 2MSL timer;
* a RST is ignored (RFC 1337) unless ``rfc1337`` is off;
* a SYN whose sequence number is beyond RCV.NXT may reopen the 4-tuple
  (RFC 1122 4.2.2.13 / RFC 6191 without timestamps); any other SYN gets a
  challenge ACK (RFC 5961 4);
* any other segment is answered with an ACK when it is not acceptable, and
  otherwise dropped.
"""

from __future__ import annotations

from collections import deque

Key = tuple[str, int, str, int]


class TimeWaitEntry:
    """One connection in TIME-WAIT.  ``__slots__`` keeps it small."""

    __slots__ = ("deadline", "name", "rcv_nxt", "rcv_wnd", "reuse", "snd_nxt")

    def __init__(self, snd_nxt: int, rcv_nxt: int, rcv_wnd: int, reuse: bool,
                 deadline: float, name: str | None) -> None:
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.rcv_wnd = rcv_wnd
        self.reuse = reuse
        self.deadline = deadline
        self.name = name  # kept only when tracing, for the trace's "conn" field


class TimeWaitTable:
    """The host's TIME-WAIT entries with FIFO expiry."""

    __slots__ = ("by_key", "port_count", "port_noreuse", "queue")

    def __init__(self) -> None:
        self.by_key: dict[Key, TimeWaitEntry] = {}
        self.queue: deque[tuple[float, Key]] = deque()
        # (local addr, local port) -> entries, and entries without SO_REUSEADDR
        self.port_count: dict[tuple[str, int], int] = {}
        self.port_noreuse: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        return len(self.by_key)

    def __contains__(self, key: Key) -> bool:
        return key in self.by_key

    def get(self, key: Key) -> TimeWaitEntry | None:
        return self.by_key.get(key)

    def add(self, key: Key, entry: TimeWaitEntry) -> None:
        old = self.by_key.get(key)
        if old is not None:
            self.remove(key)
        self.by_key[key] = entry
        self.queue.append((entry.deadline, key))
        lp = (key[0], key[1])
        self.port_count[lp] = self.port_count.get(lp, 0) + 1
        if not entry.reuse:
            self.port_noreuse[lp] = self.port_noreuse.get(lp, 0) + 1

    def restart(self, key: Key, deadline: float) -> None:
        entry = self.by_key[key]
        entry.deadline = deadline
        self.queue.append((deadline, key))

    def remove(self, key: Key) -> TimeWaitEntry | None:
        entry = self.by_key.pop(key, None)
        if entry is None:
            return None
        lp = (key[0], key[1])
        n = self.port_count[lp] - 1
        if n:
            self.port_count[lp] = n
        else:
            del self.port_count[lp]
        if not entry.reuse:
            m = self.port_noreuse[lp] - 1
            if m:
                self.port_noreuse[lp] = m
            else:
                del self.port_noreuse[lp]
        return entry

    def next_deadline(self) -> float | None:
        q = self.queue
        while q:
            deadline, key = q[0]
            entry = self.by_key.get(key)
            if entry is not None and entry.deadline == deadline:
                return deadline
            q.popleft()  # stale: removed or restarted
        return None

    def pop_expired(self, now: float) -> list[tuple[Key, TimeWaitEntry]]:
        out: list[tuple[Key, TimeWaitEntry]] = []
        q = self.queue
        while q and q[0][0] <= now:
            deadline, key = q.popleft()
            entry = self.by_key.get(key)
            if entry is None or entry.deadline != deadline:
                continue
            self.remove(key)
            out.append((key, entry))
        return out

    def holders(self, addr: str, port: int) -> tuple[int, int]:
        """(entries, entries without SO_REUSEADDR) on a local address and port."""
        return self.port_count.get((addr, port), 0), self.port_noreuse.get((addr, port), 0)

    def addrs_on_port(self, port: int) -> list[str]:
        return [a for (a, p) in self.port_count if p == port]
