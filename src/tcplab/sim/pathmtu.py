"""A path with an MTU: IP packets larger than it are cut into fragments (RFC 791 2.3, 3.2).

Theory of operation
-------------------
The simulator moves whole IP packets.  :class:`PathMtu` watches the packets of
one direction of a link (it is installed as two :class:`~tcplab.sim.network.Fault`
rules, so the network itself is unchanged) and works out what IP would put on a
wire of ``mtu`` bytes: a packet that fits is one *unit*; a larger one is cut
into fragments whose data (past the IP header) is a multiple of 8 bytes, each
fragment a unit.  Units are numbered as they cross the link, and the path loses
the units the scenario names (``lose={3}``: the third one).

A fragment cannot be delivered alone: the receiver must reassemble the whole
packet (RFC 791 3.2; Linux waits ``ipfrag_time``, 30 s, then discards what it
holds).  So losing one fragment loses the whole packet, and with it the whole
TCP segment: the sender's retransmission resends all of it, and IP cuts it into
fragments again.

Every packet the path cuts is written into the trace as a ``note`` with
``fact="fragments"``: the packet's size, the
fragments' sizes and which of them were lost (``seq`` and ``t`` name the
segment), so the outcome is read from the trace.  A packet that fits, but is lost, is dropped with the reason
:data:`LOST_PACKET`; a fragmented one with :data:`LOST_FRAGMENT`.

Real stacks: Linux sets DF on TCP packets and finds the path MTU (RFC 1191,
RFC 8201), so routers do not fragment TCP; they answer "fragmentation needed"
and TCP lowers its segment size.  This module models the world without that:
IP fragmenting what TCP hands it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.sim.network import Fault, Network, Packet

LOST_PACKET = "path: IP packet lost"
LOST_FRAGMENT = "path: one fragment lost, the packet cannot be reassembled"


@dataclass
class Cut:
    """What IP made of one packet on the path."""

    size: int                    #: the packet's total length (bytes)
    fragments: list[int]         #: the sizes of the units on the wire (one: not cut)
    first_unit: int              #: the number of its first unit on the path (1-based)
    lost: list[int] = field(default_factory=list)  #: lost fragments (1-based, in this packet)

    @property
    def fragmented(self) -> bool:
        return len(self.fragments) > 1


def ip_header_length(packet: bytes) -> int:
    """The IP header length: IPv4's IHL, IPv6's 40 bytes plus a fragment header."""
    if packet and packet[0] >> 4 == 4:
        return (packet[0] & 0x0F) * 4
    return 48


def cut(size: int, header: int, mtu: int) -> list[int]:
    """The sizes of the fragments of a ``size``-byte packet on a path of ``mtu`` bytes
    (every fragment but the last carries a multiple of 8 bytes, RFC 791 3.2)."""
    if size <= mtu:
        return [size]
    step = (mtu - header) // 8 * 8
    if step <= 0:
        raise ValueError(f"MTU {mtu} leaves no room past a {header}-byte header")
    data = size - header
    sizes = []
    while data > 0:
        n = min(step, data)
        sizes.append(header + n)
        data -= n
    return sizes


class PathMtu:
    """The path from ``src_host`` to ``dst_host``: an MTU, and the units it loses.

    ``data_only``: count (and lose) only packets that carry TCP data, so that
    "the third unit" means the third piece of the data, whatever the handshake
    and the ACKs did.
    """

    def __init__(self, net: Network, src_host: str, dst_host: str, mtu: int, *,
                 lose: frozenset[int] = frozenset(), data_only: bool = True) -> None:
        if mtu < 68:
            raise ValueError("an IPv4 path carries at least 68 bytes (RFC 791)")
        self.net = net
        self.src_host = src_host
        self.dst_host = dst_host
        self.mtu = mtu
        self.lose = lose
        self.data_only = data_only
        self.units = 0                 #: units that crossed (or tried to cross) the path
        self.cuts: list[Cut] = []
        self._seen: dict[int, Cut | None] = {}
        net.add_fault(Fault("drop", self._lost_fragment, count=1 << 30, name=LOST_FRAGMENT))
        net.add_fault(Fault("drop", self._lost_packet, count=1 << 30, name=LOST_PACKET))

    def _classify(self, pkt: Packet) -> Cut | None:
        """What happens to ``pkt`` (computed once per packet; None: not on this path)."""
        if pkt.src_host != self.src_host or pkt.dst_host != self.dst_host:
            return None
        if pkt.index in self._seen:
            return self._seen[pkt.index]
        self._seen.clear()  # packets are classified in sending order: keep the last only
        result: Cut | None = None
        if pkt.seg.payload or not self.data_only:
            sizes = cut(len(pkt.data), ip_header_length(pkt.data), self.mtu)
            result = Cut(len(pkt.data), sizes, self.units + 1)
            result.lost = [i + 1 for i in range(len(sizes)) if self.units + 1 + i in self.lose]
            self.units += len(sizes)
            self.cuts.append(result)
            if result.fragmented:
                self._record(pkt, result)
        self._seen[pkt.index] = result
        return result

    def _record(self, pkt: Packet, c: Cut) -> None:
        tr = self.net.trace
        key = "mtu.cut-lost" if c.lost else "mtu.cut"
        tr.note(self.net.now,
                f"IP: the {c.size}-byte packet is cut into {len(c.fragments)} fragments "
                f"for the {self.mtu}-byte MTU"
                + (f"; fragment {c.lost[0]} is lost, so the whole packet is" if c.lost else ""),
                fact="fragments", host=self.src_host, seq=pkt.seg.seq, key=key,
                size=c.size, n=len(c.fragments), mtu=self.mtu, sizes=c.fragments,
                lost=c.lost, frag=c.lost[0] if c.lost else 0)

    def _lost_fragment(self, pkt: Packet) -> bool:
        c = self._classify(pkt)
        return c is not None and c.fragmented and bool(c.lost)

    def _lost_packet(self, pkt: Packet) -> bool:
        c = self._classify(pkt)
        return c is not None and not c.fragmented and bool(c.lost)
