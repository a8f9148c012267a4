"""Local ports: bind(), ephemeral ports for connect(), and SO_REUSEADDR, as Linux does them.

A :class:`Binding` is a local (address, port) held by a socket: bound,
listening or used by connections.  :class:`PortTable` keeps them per port and
checks a new bind against them and against TIME-WAIT entries, with Linux's
rules (``inet_csk_bind_conflict``):

* a listener always blocks another bind of its port (SO_REUSEADDR or not);
* any other holder, live or in TIME-WAIT, blocks unless both it and the new
  socket set SO_REUSEADDR;
* addresses overlap when they are equal or one is a wildcard of the same family.

Ephemeral ports come from ``ip_local_port_range`` (32768-60999), starting at
a random offset.  bind(port 0) needs a port nobody holds.  connect() needs
only a free 4-tuple: a port used by other connect()ed sockets can be shared
when they go elsewhere, so running out of ports (EADDRNOTAVAIL) happens per
destination, as on Linux; a port whose 4-tuple is in TIME-WAIT is skipped
unless the caller may reuse it (``tcp_tw_reuse``).
"""

from __future__ import annotations

import errno as _errno
import random
from collections.abc import Callable
from typing import Final, Protocol

from tcplab.engine.errors import TcpError, addr_in_use

WILDCARDS: Final = ("0.0.0.0", "::")


class TimeWaitPorts(Protocol):
    """What the port table needs to know of TIME-WAIT entries."""

    def addrs_on_port(self, port: int) -> list[str]: ...

    def holders(self, addr: str, port: int) -> tuple[int, int]: ...

    def __contains__(self, key: object) -> bool: ...


class Binding:
    """A local (address, port) held by a socket: bound, listening or connected."""

    __slots__ = ("addr", "by_connect", "listening", "port", "released", "reuse", "users")

    def __init__(self, addr: str, port: int, reuse: bool, by_connect: bool = False) -> None:
        self.addr = addr
        self.port = port
        self.reuse = reuse
        self.listening = False
        self.users = 1
        self.released = False
        self.by_connect = by_connect  #: taken by connect() (may be shared across destinations)

    def __repr__(self) -> str:
        return f"<Binding {self.addr}:{self.port} users={self.users}>"


def overlap(a: str, b: str) -> bool:
    """Do two local addresses conflict for bind()?"""
    if a == b:
        return True
    if a in WILDCARDS or b in WILDCARDS:
        return (":" in a) == (":" in b) or a == "::" or b == "::"
    return False


class PortTable:
    """A host's bindings, per port."""

    __slots__ = ("bindings", "high", "low", "rng", "time_wait")

    def __init__(self, low: int, high: int, rng: random.Random,
                 time_wait: TimeWaitPorts) -> None:
        self.bindings: dict[int, list[Binding]] = {}
        self.low = low
        self.high = high
        self.rng = rng
        self.time_wait = time_wait

    def holders(self, port: int) -> list[Binding]:
        return self.bindings.get(port, [])

    def check(self, addr: str, port: int, reuse: bool) -> None:
        """Raise EADDRINUSE when binding ``addr:port`` would conflict (Linux's rules)."""
        for b in self.holders(port):
            if not overlap(b.addr, addr):
                continue
            if b.listening:
                raise addr_in_use(addr, port, "a socket is listening on it")
            if not (b.reuse and reuse):
                raise addr_in_use(addr, port, "a connection is using it" if b.users else
                                  "a socket is bound to it")
        tw = self.time_wait
        for tw_addr in tw.addrs_on_port(port):
            if not overlap(tw_addr, addr):
                continue
            count, noreuse = tw.holders(tw_addr, port)
            if count and (not reuse or noreuse):
                why = ("TIME-WAIT connections hold it; SO_REUSEADDR is needed on both the old"
                       " and the new socket" if noreuse and reuse else
                       "TIME-WAIT connections hold it")
                raise addr_in_use(addr, port, why)

    def bind(self, addr: str, port: int, reuse: bool) -> Binding:
        """Reserve ``addr:port`` (port 0: an ephemeral one)."""
        if port == 0:
            port = self.ephemeral(addr)
        elif not 0 < port < 65536:
            raise TcpError(_errno.EINVAL, f"port out of range: {port}")
        self.check(addr, port, reuse)
        return self.add(addr, port, reuse)

    def add(self, addr: str, port: int, reuse: bool, by_connect: bool = False) -> Binding:
        """Record a binding without checks (connect() picked a free port)."""
        b = Binding(addr, port, reuse, by_connect)
        self.bindings.setdefault(port, []).append(b)
        return b

    def release(self, b: Binding) -> None:
        """One user fewer; the last one frees the port."""
        b.users -= 1
        if b.users <= 0 and not b.released:
            b.released = True
            lst = self.bindings.get(b.port)
            if lst is not None:
                try:
                    lst.remove(b)
                except ValueError:
                    pass
                if not lst:
                    del self.bindings[b.port]

    def ephemeral(self, laddr: str, raddr: str | None = None, rport: int | None = None,
                  in_use: Callable[[tuple[str, int, str, int]], bool] | None = None,
                  tw_reusable: Callable[[tuple[str, int, str, int]], bool] | None = None,
                  ) -> int:
        """A free port from the ephemeral range: for bind() a port nobody holds; towards
        ``raddr:rport`` (connect()) a port whose 4-tuple is free (``in_use`` says which
        4-tuples connections hold; ``tw_reusable`` which TIME-WAIT ones may be taken)."""
        lo, hi = self.low, self.high
        span = hi - lo + 1
        start = self.rng.randrange(span)
        tw = self.time_wait
        for i in range(span):
            port = lo + (start + i) % span
            holders = self.bindings.get(port)
            if raddr is None or rport is None:
                if holders or tw.addrs_on_port(port):
                    continue
                return port
            if holders and not all(b.by_connect for b in holders):
                continue  # bound or listening: not for connect()'s picking
            key = (laddr, port, raddr, rport)
            if holders and in_use is not None and in_use(key):
                continue
            if key in tw and (tw_reusable is None or not tw_reusable(key)):
                continue
            return port
        where = f" towards {raddr}:{rport}" if raddr is not None else ""
        raise TcpError(_errno.EADDRNOTAVAIL, f"no free ephemeral port{where} "
                       f"(ip_local_port_range {lo}-{hi} all in use or in TIME-WAIT)")
