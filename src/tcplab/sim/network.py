"""A deterministic discrete-event network for :class:`~tcplab.engine.Host` objects.

Theory of operation
-------------------
The network owns a virtual clock and the in-flight packets, ordered by
arrival time: a heap of the distinct arrival times and, for each, a list of
the packets due then in the order they were sent (a burst of segments sent at
once over one link arrives at one time: one heap entry, not one per packet).
:meth:`Network.step` jumps the clock to the next thing that happens, a packet
arrival or a host timer, and lets it happen; so a 60 s TIME-WAIT costs as much
wall time as any other event.

Each directed link has its own ``random.Random`` seeded from the network seed
and the two host names, so adding a link or a host never changes what
happens on another link, and the same seed gives the same trace, byte for
byte.  A link can delay (with jitter), lose, duplicate, reorder and corrupt
packets.  A corrupted packet has one byte flipped: the receiving host's
checksum check fails and it records the drop with the reason "bad checksum".

Fault rules (:class:`Fault`) target single segments by predicate, e.g. "drop
the first FIN from the server" or "delay the client's first SYN by 20 s".

A packet that has been in flight longer than MSL is discarded on arrival
(reason "exceeded MSL"): that bound on segment lifetime is what the
TIME-WAIT argument relies on (RFC 9293 3.4.1).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr

from tcplab.engine.config import TcpConfig
from tcplab.engine.context import Outgoing
from tcplab.engine.host import Host
from tcplab.engine.isn import IsnSource
from tcplab.trace import Event, Trace, segment_event
from tcplab.wire.errors import WireError
from tcplab.wire.ip import parse_ip_tcp
from tcplab.wire.tcp import TcpSegment


@dataclass(slots=True)
class LinkSpec:
    """Behaviour of one direction of a link."""

    delay: float = 0.01      #: one-way propagation delay, seconds
    jitter: float = 0.0      #: uniform extra delay in [0, jitter]
    loss: float = 0.0        #: probability a packet is lost
    duplicate: float = 0.0   #: probability a packet is delivered twice
    reorder: float = 0.0     #: probability a packet is held back (arrives after later ones)
    corrupt: float = 0.0     #: probability one byte is flipped
    bandwidth: float = 0.0   #: bytes per second; 0 = unlimited


@dataclass(slots=True)
class Packet:
    """What a fault predicate sees: one packet about to cross a link."""

    src_host: str
    dst_host: str
    seg: TcpSegment
    data: bytes
    t: float
    index: int  #: 1-based count of packets from src_host so far

    @property
    def flags(self) -> str:
        return self.seg.flag_letters


@dataclass
class Fault:
    """A targeted fault: ``action`` applied to the ``nth`` .. ``nth+count-1`` matches.

    ``action`` is "drop", "delay" (by ``delay`` seconds), "duplicate" or
    "corrupt".  Example: ``Fault("drop", lambda p: p.src_host == "server" and
    p.seg.fin)`` drops the server's first FIN.
    """

    action: str
    match: Callable[[Packet], bool]
    nth: int = 1
    count: int = 1
    delay: float = 0.0
    name: str = ""
    # Counters, not constructor arguments.  Set in __post_init__: mypyc's
    # dataclasses leave an init=False field with a default unset.
    seen: int = field(init=False)
    applied: int = field(init=False)

    def __post_init__(self) -> None:
        self.seen = 0
        self.applied = 0
        if self.action not in ("drop", "delay", "duplicate", "corrupt"):
            raise ValueError(f"unknown fault action {self.action!r}")
        if not self.name:
            self.name = self.action

    def check(self, pkt: Packet) -> bool:
        if not self.match(pkt):
            return False
        self.seen += 1
        if self.nth <= self.seen < self.nth + self.count:
            self.applied += 1
            return True
        return False


# Compiled: not tracked by the cycle collector (nothing it refers to refers back to
# it), and one freed instance is kept for the next packet.
@mypyc_attr(acyclic=True, free_list_len=1)
class InFlight:
    """A packet on its way: to ``dst``, sent at ``sent``, with its trace event."""

    __slots__ = ("data", "dst", "ev", "sent")

    def __init__(self, dst: Host, data: bytes | Outgoing, ev: Event | None, sent: float) -> None:
        self.dst = dst
        self.data = data  #: the checked segment (with its packet), or corrupted bytes
        self.ev = ev
        self.sent = sent


@mypyc_attr(native_class=False)  # mypyc's native classes cannot subclass TimeoutError
class SimulationStuck(TimeoutError):
    """Nothing more can happen, but the awaited condition is still false."""


class Network:
    """Hosts, links and a virtual clock."""

    def __init__(self, seed: int = 0, *, msl: float | None = None, trace: Trace | None = None,
                 start: float = 0.0) -> None:
        self.seed = seed
        self.now = start
        self.trace = trace if trace is not None else Trace()
        self.msl = msl
        self.hosts: dict[str, Host] = {}
        self._by_addr: dict[str, Host] = {}
        self.links: dict[tuple[str, str], tuple[LinkSpec, random.Random]] = {}
        # The same links by sender, then receiver: found per packet without a tuple key.
        self._links_from: dict[str, dict[str, tuple[LinkSpec, random.Random]]] = {}
        self.faults: list[Fault] = []
        # In flight: arrival time -> packets due then, in sending order, and a heap of
        # those arrival times.
        self._due: dict[float, list[InFlight]] = {}
        self._times: list[float] = []
        self._last_at = 0.0  # the arrival time last pushed, and its list (a burst's)
        self._last_due: list[InFlight] | None = None
        self._sent_count: dict[str, int] = {}
        self.events_processed = 0
        self.on_step: list[Callable[[], None]] = []

    # ------------------------------------------------------------ building

    def host_rng(self, name: str) -> random.Random:
        """The random generator of host ``name``, derived from the network seed."""
        return random.Random(f"{self.seed}:host:{name}")

    def add_host(self, name: str, addrs: str | list[str], config: TcpConfig | None = None,
                 isn: IsnSource | None = None) -> Host:
        """A host whose randomness is derived from the network seed and its name."""
        return self.add(Host(name, addrs, config=config, rng=self.host_rng(name),
                             trace=self.trace, isn=isn))

    def add(self, host: Host) -> Host:
        """Attach a host built elsewhere (a subclass: a scripted peer); it must use
        this network's trace."""
        if host.name in self.hosts:
            raise ValueError(f"host {host.name!r} exists")
        if host.trace is not self.trace:
            raise ValueError(f"host {host.name!r} must record into the network's trace")
        self.hosts[host.name] = host
        for a in host.addrs:
            self._by_addr[a] = host
        if self.msl is None:
            self.msl = host.config.msl
        return host

    def link(self, a: Host | str, b: Host | str, spec: LinkSpec | None = None,
             back: LinkSpec | None = None, **kw: Any) -> None:
        """Join two hosts; ``spec`` (or keyword fields) for a->b, ``back`` for b->a."""
        an = a if isinstance(a, str) else a.name
        bn = b if isinstance(b, str) else b.name
        fwd = spec or LinkSpec(**kw)
        rev = back or (LinkSpec(**kw) if spec is None else spec)
        self.links[(an, bn)] = (fwd, random.Random(f"{self.seed}:link:{an}>{bn}"))
        self.links[(bn, an)] = (rev, random.Random(f"{self.seed}:link:{bn}>{an}"))
        self._links_from.setdefault(an, {})[bn] = self.links[(an, bn)]
        self._links_from.setdefault(bn, {})[an] = self.links[(bn, an)]

    def add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def host_of(self, addr: str) -> Host | None:
        return self._by_addr.get(addr)

    # ------------------------------------------------------------ moving packets

    def inject(self, src_host: str, packet: bytes, delay: float = 0.0) -> None:
        """Put a raw IP packet on the wire as if ``src_host`` sent it (attackers, old SYNs)."""
        try:
            ip, seg = parse_ip_tcp(packet)
        except WireError:
            ip = None
        ev: Event | None = None
        if self.trace.enabled and ip is not None:
            sev = segment_event(self.now, "send", src_host, ip.src, ip.dst, seg,
                                self.trace.next_id(), raw=packet)
            sev["injected"] = True
            self.trace.add(sev)
            ev = sev  # type: ignore[assignment]
        dst = self._by_addr.get(ip.dst) if ip is not None else None
        if dst is None:
            if ev is not None:
                ev["fate"] = "dropped"
                ev["reason"] = "no route"
            return
        self._push(self.now + delay, dst, packet, ev, self.now)

    def _push(self, at: float, dst: Host, data: bytes | Outgoing, ev: Event | None,
              sent: float) -> None:
        packet = InFlight(dst, data, ev, sent)
        due = self._last_due
        if due is None or at != self._last_at:
            due = self._due.get(at)
            if due is None:
                due = self._due[at] = []
                heapq.heappush(self._times, at)
            self._last_at = at
            self._last_due = due
        due.append(packet)

    def _send(self, src: Host, out: Outgoing) -> None:
        dst = self._by_addr.get(out.dst)
        ev = out.event
        if dst is None:
            if ev is not None:
                ev["fate"] = "dropped"
                ev["reason"] = "no route to host"
            return
        links = self._links_from.get(src.name)
        link = links.get(dst.name) if links is not None else None
        if link is None:
            if ev is not None:
                ev["fate"] = "dropped"
                ev["reason"] = "no link"
            return
        spec, rng = link
        data = out.data if (spec.corrupt or self.faults) else b""
        n = self._sent_count.get(src.name, 0) + 1
        self._sent_count[src.name] = n
        extra = 0.0
        duplicate = False
        corrupted = False
        if self.faults:
            seg = out.seg
            if seg is not None:
                pkt = Packet(src.name, dst.name, seg, data, self.now, n)
                for fault in self.faults:
                    if fault.check(pkt):
                        if fault.action == "drop":
                            if ev is not None:
                                ev["fate"] = "dropped"
                                ev["reason"] = f"fault: {fault.name}"
                            return
                        if fault.action == "delay":
                            extra += fault.delay
                            if ev is not None:
                                ev["delayed"] = fault.delay
                                ev["reason"] = f"fault: {fault.name}"
                        elif fault.action == "duplicate":
                            duplicate = True
                        elif fault.action == "corrupt":
                            data = _corrupt(data, rng)
                            corrupted = True
                            if ev is not None:
                                ev["fate"] = "corrupted"
                                ev["reason"] = f"fault: {fault.name}"
        # Random link behaviour, drawn in a fixed order so runs are reproducible.
        if spec.loss and rng.random() < spec.loss:
            if ev is not None:
                ev["fate"] = "dropped"
                ev["reason"] = "link loss"
            return
        if spec.corrupt and rng.random() < spec.corrupt:
            data = _corrupt(data, rng)
            corrupted = True
            if ev is not None:
                ev["fate"] = "corrupted"
        if spec.duplicate and rng.random() < spec.duplicate:
            duplicate = True
        delay = spec.delay + extra
        if spec.jitter:
            delay += rng.random() * spec.jitter
        if spec.reorder and rng.random() < spec.reorder:
            delay += spec.delay * (1.0 + rng.random() * 2.0)
        if spec.bandwidth:
            delay += len(out.data) / spec.bandwidth
        # What travels: the corrupted bytes, or the checked segment itself (the
        # receiver would parse exactly that from the emitted bytes).
        cargo: bytes | Outgoing = data if corrupted else out
        at = self.now + delay
        if ev is not None:
            ev["t_arrive"] = at
        self._push(at, dst, cargo, ev, self.now)
        if duplicate:
            at2 = at + spec.delay * 0.25 + (rng.random() * spec.jitter if spec.jitter else 0.0)
            ev2: Event | None = None
            if ev is not None:
                if ev["fate"] == "delivered":
                    ev["fate"] = "duplicated"
                ev2 = {**ev, "id": self.trace.next_id(), "copy_of": ev["id"], "t_arrive": at2,
                       "fate": "delivered" if ev["fate"] != "corrupted" else "corrupted"}
                self.trace.add(ev2)
            self._push(at2, dst, cargo, ev2, self.now)

    def flush(self) -> None:
        """Move every packet the hosts produced onto the wire."""
        for host in self.hosts.values():
            cx = host.cx
            if cx.outbox or cx.requests:
                for out in host.transmit():
                    self._send(host, out)

    # ------------------------------------------------------------ the clock

    def next_time(self) -> float | None:
        best = self._times[0] if self._times else None
        for host in self.hosts.values():
            d = host.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def step(self, until: float | None = None) -> bool:
        """Let the next event happen (not later than ``until``).  False: nothing to do.

        The next event is the earliest packet arrival or host timer.  Every
        packet due then is delivered (the receiver's answers go on the wire at
        once), then every host timer due then fires.
        """
        self.flush()
        times = self._times
        hosts = list(self.hosts.values())
        deadlines = [host.next_deadline() for host in hosts]
        t = times[0] if times else None
        for d in deadlines:
            if d is not None and (t is None or d < t):
                t = d
        if t is None or (until is not None and t > until):
            if until is not None and until > self.now:
                self.now = until
            return False
        if t > self.now:
            self.now = t
        now = self.now
        touched: set[Host] | None = None
        msl = self.msl
        while times and times[0] <= now:
            at = times[0]
            due = self._due[at]
            # In sending order; a packet sent meanwhile with no delay arrives at
            # ``at`` too and is appended here, so it is delivered in this pass.
            i = 0
            while i < len(due):
                packet = due[i]
                i += 1
                dst = packet.dst
                data = packet.data
                ev = packet.ev
                self.events_processed += 1
                if msl is not None and now - packet.sent > msl:
                    if ev is not None:
                        ev["fate"] = "dropped"
                        ev["reason"] = "exceeded MSL in the network"
                    continue
                pid = ev["id"] if ev is not None else None
                if type(data) is bytes:
                    dst.receive(data, now, pid)
                else:
                    assert isinstance(data, Outgoing)
                    dst.cx.packet_id = pid
                    dst.receive_segment(data.src, data.dst, data.seg, now)
                if touched is None:
                    touched = {dst}
                else:
                    touched.add(dst)
                cx = dst.cx
                if cx.outbox or cx.requests:
                    for out in dst.transmit():
                        self._send(dst, out)
            del self._due[at]
            if due is self._last_due:
                self._last_due = None
            heapq.heappop(times)
        for i in range(len(hosts)):
            host = hosts[i]
            d = deadlines[i]
            if touched is not None and host in touched:
                d = host.next_deadline()  # what it received may have moved its timers
            if d is not None and d <= now:
                self.events_processed += 1
                host.handle_timers(now)
        self.flush()
        for cb in self.on_step:
            cb()
        return True

    def run(self, until: float | None = None, max_events: int = 10_000_000) -> None:
        """Run until nothing is left to happen, or until virtual time ``until``."""
        for _ in range(max_events):
            if not self.step(until):
                return
        raise SimulationStuck(f"more than {max_events} events; stopping")

    def settle(self, limit: float) -> None:
        """Run until nothing is left to happen, but not past virtual time ``limit``; unlike
        ``run(until=...)``, an idle network leaves the clock where it stopped."""
        for _ in range(10_000_000):
            t = self.next_time()
            if t is None or t > limit:
                return
            self.step(limit)
        raise SimulationStuck("more than 10000000 events; stopping")

    def run_for(self, seconds: float) -> None:
        self.run(until=self.now + seconds)

    def run_until(self, cond: Callable[[], bool], timeout: float = 3600.0,
                  what: str = "condition") -> None:
        """Step until ``cond()`` holds; SimulationStuck if time runs out or nothing happens."""
        deadline = self.now + timeout
        if cond():
            return
        while True:
            if not self.step(deadline):
                if cond():
                    return
                if self.now >= deadline:
                    raise SimulationStuck(f"{what}: not reached within {timeout:g} s of "
                                          "virtual time")
                raise SimulationStuck(f"{what}: never happens (the network is idle)")
            if cond():
                return


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    """Flip one bit in the TCP part of the packet (the IP header stays intact)."""
    ihl = (data[0] & 0x0F) * 4 if data and data[0] >> 4 == 4 else 40
    if len(data) <= ihl:
        return data
    i = ihl + rng.randrange(len(data) - ihl)
    b = bytearray(data)
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)
