"""Faults named after the segments of a connection's life: ``--drop syn:all``, ``--delay fin=2``.

A learner asks "what if the SYN-ACK is lost?", not "drop the second packet".
This module gives each segment of a life its textbook name (its *role*):

============  ==========================================================
``syn``       the client's SYN (the first SYN without ACK)
``syn-ack``   the server's SYN-ACK
``ack``       the handshake's third segment: the client's first ACK of the
              server's SYN (it may carry data)
``data``      the first segment that carries data
``fin``       the first FIN of the connection (from the side that closes first)
``fin-ack``   the ACK of that FIN (from the other side; it may carry that side's
              FIN too: a three-segment close)
``fin2``      the second FIN (from the side that closed second)
``last-ack``  the ACK of the second FIN: the last segment of the life
============  ==========================================================

Retransmissions keep their role, so copies can be counted: ``WHAT`` alone is the
first copy, ``WHAT:3`` the first three, ``WHAT:all`` every copy.  A prefix
``client:`` or ``server:`` picks the segment of that side: ``server:fin`` is the
server's FIN, first or second; ``client:data`` the client's first data.

:class:`LifeRoles` names each segment it is shown (it follows every connection
by its 4-tuple); :class:`FaultSpec` is one ``--drop``/``--delay``/``--dup``;
:func:`install` puts specs on a simulated :class:`~tcplab.sim.network.Network`.
Other backends (a kernel lesson on Linux) use the same classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tcplab.wire.seq import seq_gt, seq_le
from tcplab.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

ROLES = ("syn", "syn-ack", "ack", "data", "fin", "fin-ack", "fin2", "last-ack")
ACTIONS = ("drop", "delay", "dup")
SIDES = ("client", "server")
ALL = 1 << 30  #: "every copy"


class FaultError(ValueError):
    """A fault the command line cannot mean (one clear line for the user)."""


@dataclass(frozen=True)
class FaultSpec:
    """One fault: ``action`` on the first ``copies`` segments with ``role`` (from ``side``)."""

    action: str
    role: str
    side: str | None = None
    copies: int = 1
    seconds: float = 0.0  #: the delay, for ``delay``

    @property
    def every(self) -> bool:
        return self.copies >= ALL

    def text(self) -> str:
        """The spec as it is written on the command line: ``server:fin:all=2``."""
        s = f"{self.side}:{self.role}" if self.side else self.role
        if self.every:
            s += ":all"
        elif self.copies != 1:
            s += f":{self.copies}"
        if self.action == "delay":
            s += f"={self.seconds:g}"
        return f"--{self.action} {s}"


def parse(action: str, spec: str) -> FaultSpec:
    """``parse("drop", "client:syn:all")``; ``parse("delay", "fin=2.5")``."""
    if action not in ACTIONS:
        raise FaultError(f"unknown fault {action!r}; use one of {', '.join(ACTIONS)}")
    text = spec.strip()
    seconds = 0.0
    if action == "delay":
        text, eq, value = text.rpartition("=")
        if not eq:
            raise FaultError(f"--delay {spec}: give the delay, e.g. --delay syn=3 (seconds)")
        try:
            seconds = float(value)
        except ValueError:
            raise FaultError(f"--delay {spec}: {value!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or not 0 < seconds <= 3600:
            raise FaultError(f"--delay {spec}: the delay must be more than 0 and at most 3600 s")
    elif "=" in text:
        raise FaultError(f"--{action} {spec}: only --delay takes =SECONDS")
    parts = text.split(":")
    side = None
    if parts and parts[0] in SIDES:
        side = parts.pop(0)
    if not parts or parts[0] not in ROLES:
        raise FaultError(f"--{action} {spec}: name a segment of the life: {', '.join(ROLES)} "
                         "(optionally client: or server: before it, :N or :all after it)")
    role = parts.pop(0)
    copies = 1
    if parts:
        count = parts.pop(0)
        if count == "all":
            copies = ALL
        elif count.isdigit() and 1 <= int(count) <= 1000:
            copies = int(count)
        else:
            raise FaultError(f"--{action} {spec}: after the segment, :N (1-1000) or :all")
    if parts:
        raise FaultError(f"--{action} {spec}: too many ':' parts")
    return FaultSpec(action, role, side, copies, seconds)


# ---------------------------------------------------------------- naming segments

Endpoint = tuple[str, int]


@dataclass
class _Life:
    """What has happened so far on one connection (both directions)."""

    client: Endpoint | None = None       #: the sender of the first SYN
    syn_seq: int | None = None           #: that SYN's sequence number (the client's ISN)
    number: int = 0                      #: how many lives this 4-tuple had before
    server_isn: int | None = None        #: from the SYN-ACK
    third: tuple[int, int] | None = None  #: (seq, ack) of the handshake's third segment
    first_data: tuple[Endpoint, int] | None = None  #: (sender, seq)
    fins: list[tuple[Endpoint, int]] = field(default_factory=list)  #: (sender, FIN's seq)
    fin_acks: list[int | None] = field(default_factory=lambda: [None, None])  #: their ACK


class LifeRoles:
    """Names the segments of every connection it is shown, in the order they are sent."""

    def __init__(self) -> None:
        self._lives: dict[frozenset[Endpoint], _Life] = {}
        self.seen: dict[str, int] = dict.fromkeys(ROLES, 0)  #: segments seen per role

    def life(self, src: Endpoint, dst: Endpoint) -> int:
        """Which life of the 4-tuple ``src``-``dst`` the last segment belonged to (0 for the
        first connection, 1 for the next one that reused the 4-tuple, ...)."""
        life = self._lives.get(frozenset((src, dst)))
        return life.number if life is not None else 0

    def roles(self, src: Endpoint, dst: Endpoint, seg: TcpSegment) -> list[tuple[str, str]]:
        """The roles of a segment from ``src`` to ``dst``, each with its sender's side
        (``client``/``server``); updates what is known of the connection."""
        pair = frozenset((src, dst))
        life = self._lives.setdefault(pair, _Life())
        flags = seg.flags
        out: list[tuple[str, str]] = []
        if flags & RST:
            return out
        if flags & SYN and not flags & ACK:
            if life.client == src and life.syn_seq is not None and seg.seq != life.syn_seq:
                # A SYN with another ISN from the same client: a new connection reusing
                # the 4-tuple (after CLOSED, through TIME-WAIT, or after a reboot).
                life = self._lives[pair] = _Life(number=life.number + 1)
            if life.client is None or life.client == src:
                life.client = src
                life.syn_seq = seg.seq
                out.append(("syn", "client"))
            return self._count(out)
        side = "client" if src == life.client else "server"
        if flags & SYN:
            if side == "server":
                life.server_isn = seg.seq
                out.append(("syn-ack", side))
            return self._count(out)
        if not flags & ACK:
            return out
        bare = not seg.payload and not flags & FIN
        # The handshake's third segment, and the same ACK sent again (to a resent SYN-ACK).
        if side == "client" and life.server_isn is not None:
            if life.third is None and seq_gt(seg.ack, life.server_isn):
                life.third = (seg.seq, seg.ack)
                out.append(("ack", side))
            elif bare and life.third == (seg.seq, seg.ack):
                out.append(("ack", side))
        # The first data, and its retransmissions (same sender, same sequence number).
        if seg.payload and (life.first_data is None or life.first_data == (src, seg.seq)):
            life.first_data = (src, seg.seq)
            out.append(("data", side))
        # The ACK of each FIN (the first segment from the other side that covers it,
        # then the same bare ACK again, e.g. TIME-WAIT answering a resent FIN).
        for i, (sender, fseq) in enumerate(life.fins):
            if sender == src or not seq_gt(seg.ack, fseq):
                continue
            if life.fin_acks[i] is None:
                life.fin_acks[i] = seg.ack
                out.append(("fin-ack" if i == 0 else "last-ack", side))
            elif bare and seg.ack == life.fin_acks[i]:
                out.append(("fin-ack" if i == 0 else "last-ack", side))
        if flags & FIN:
            fseq = (seg.seq + len(seg.payload)) & 0xFFFFFFFF
            mine = [i for i, (sender, _s) in enumerate(life.fins) if sender == src]
            if mine:
                i = mine[0]
                if seq_le(fseq, life.fins[i][1]):  # that FIN again
                    out.append(("fin" if i == 0 else "fin2", side))
            elif len(life.fins) < 2:
                life.fins.append((src, fseq))
                out.append(("fin" if len(life.fins) == 1 else "fin2", side))
        return self._count(out)

    def _count(self, out: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for role, _side in out:
            self.seen[role] += 1
        return out


def matches(spec: FaultSpec, roles: list[tuple[str, str]]) -> bool:
    """Is a segment with these roles one that ``spec`` names?  With a side, ``fin`` is
    that side's FIN whether it came first or second."""
    for role, side in roles:
        if spec.side is not None and side != spec.side:
            continue
        if role == spec.role:
            return True
        if spec.side is not None and spec.role == "fin" and role == "fin2":
            return True
    return False


# ---------------------------------------------------------------- the simulator


@dataclass
class Installed:
    """The faults put on one network, and how often each took effect."""

    specs: list[FaultSpec]
    applied: list[int]
    roles: LifeRoles

    def never_matched(self) -> list[FaultSpec]:
        return [s for s, n in zip(self.specs, self.applied, strict=True) if n == 0]


def install(net: object, specs: list[FaultSpec]) -> Installed:
    """Put ``specs`` on a simulated network (each segment is named once, in send order)."""
    from tcplab.sim.network import Fault, Network, Packet

    assert isinstance(net, Network)
    tracker = LifeRoles()
    cache: dict[tuple[str, int], list[tuple[str, str]]] = {}
    done = Installed(list(specs), [0] * len(specs), tracker)

    def roles_of(pkt: Packet) -> list[tuple[str, str]]:
        key = (pkt.src_host, pkt.index)
        found = cache.get(key)
        if found is None:
            src_addr = net.hosts[pkt.src_host].addrs[0]
            dst_addr = net.hosts[pkt.dst_host].addrs[0]
            found = tracker.roles((src_addr, pkt.seg.src_port), (dst_addr, pkt.seg.dst_port),
                                  pkt.seg)
            cache.clear()
            cache[key] = found
        return found

    for i, spec in enumerate(specs):
        def match(pkt: Packet, spec: FaultSpec = spec, i: int = i) -> bool:
            hit = matches(spec, roles_of(pkt))
            if hit and done.applied[i] < spec.copies:
                done.applied[i] += 1
            return hit
        action = {"drop": "drop", "delay": "delay", "dup": "duplicate"}[spec.action]
        net.add_fault(Fault(action, match, count=spec.copies, delay=spec.seconds,
                            name=spec.text().removeprefix("--")))
    return done
