"""The virtio-net header of a TUN device opened with ``IFF_VNET_HDR``: offloads, both ways.

Theory of operation
-------------------
With ``IFF_VNET_HDR`` every read from and every write to the TUN descriptor starts
with a 10-byte ``struct virtio_net_hdr`` (``include/uapi/linux/virtio_net.h``; native
byte order on a TUN fd)::

    u8 flags        NEEDS_CSUM (1): the TCP checksum is still to be computed
                    DATA_VALID (2): the checksum was already checked
    u8 gso_type     NONE (0), TCPV4 (1), TCPV6 (4), | ECN (0x80)
    u16 hdr_len     length of the IP and TCP headers
    u16 gso_size    segment size (payload bytes per wire segment) of a GSO packet
    u16 csum_start  where checksumming starts (the TCP header) ...
    u16 csum_offset ... and where, from there, the checksum goes (16 for TCP)

``TUNSETOFFLOAD`` with ``TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`` tells the kernel that
tcplab is a "device" that computes checksums and segments TCP itself, as a network
card with TSO would.  So the kernel hands over:

* **checksum-partial packets** (``NEEDS_CSUM``): the TCP checksum field holds only the
  pseudo-header's sum.  These bytes come straight from the kernel's memory and never
  crossed a wire, so there is nothing to verify: Linux itself trusts such packets on
  ``lo`` and ``veth`` (``CHECKSUM_PARTIAL`` counts as checked).  :func:`decode` accepts
  them without summing 64 KB in Python; :func:`fill_checksum` completes the checksum
  when the packet's bytes are kept (the trace and the pcap then hold a correct packet).
* **GSO super-segments** (``gso_type`` TCPV4/TCPV6): up to 64 KB of payload behind one
  TCP header, to be cut into ``gso_size`` pieces.  A network card would cut them; a
  receiver with GRO would glue them back.  tcplab's engine takes the super-segment
  whole, as Linux's TCP takes a GRO packet, so one engine call moves ~44 segments.
* anything else (``flags`` 0: a packet from a raw socket, say) is verified in full.

The other way, :func:`super_segment` joins a run of wire-sized segments of one
connection (consecutive sequence numbers, the same header but for PSH/FIN on the
last) into one write: one header with ``gso_size`` = the first segment's payload and
``NEEDS_CSUM``; the kernel treats it as the segments it stands for (it keeps
``gso_size`` as the sender's MSS) and computes nothing in Python.  The engine still
decides every segment itself, so its congestion window, Nagle and SWS decisions stay
in units of the real MSS; while the trace is off it hands a run of full segments
over as one segment with ``Outgoing.gso`` set (``EngineContext.gso_max``), which
:func:`super_segment` writes the same way, so no per-segment object is made.

Nothing here touches a descriptor; :mod:`tcplab.tun.device` opens the device and
:mod:`tcplab.tun.backend` reads and writes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tcplab.wire.checksum import addr_bytes, addr_str, ones_sum, pseudo_header
from tcplab.wire.errors import WireError
from tcplab.wire.ip import PROTO_TCP
from tcplab.wire.tcp import FIN, PSH, TcpSegment, emit_options, parse_tcp

__all__ = [
    "F_DATA_VALID",
    "F_NEEDS_CSUM",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "HDR_PLAIN",
    "MAX_IP_PACKET",
    "VNET_HDR",
    "VNET_HDR_LEN",
    "Decoded",
    "can_follow",
    "decode",
    "fill_checksum",
    "packet_headers",
    "parse_header",
    "plain_packet_source",
    "super_segment",
]

VNET_HDR = struct.Struct("=BBHHHH")
VNET_HDR_LEN = VNET_HDR.size  # 10
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
#: the header of a packet that needs nothing from the kernel (checksum complete, no GSO)
HDR_PLAIN = VNET_HDR.pack(0, GSO_NONE, 0, 0, 0, 0)
#: the largest IP packet a GSO write may carry (IPv4's total length is 16 bits)
MAX_IP_PACKET = 65535
TCP_CSUM_OFFSET = 16

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_CSUM = struct.Struct("!H")


class Decoded:
    """One packet read from the device, checked: addresses, the segment, its GSO size."""

    __slots__ = ("dst", "gso_size", "ip", "partial", "seg", "src", "src_raw")

    def __init__(self, src: str, dst: str, src_raw: bytes, seg: TcpSegment, gso_size: int,
                 ip: memoryview, partial: bool) -> None:
        self.src = src
        self.dst = dst
        self.src_raw = src_raw  #: the packed source address (for the martian check)
        self.seg = seg
        self.gso_size = gso_size  #: 0, or the wire segment size of a super-segment
        self.ip = ip  #: the IP packet (a view of the buffer read)
        self.partial = partial  #: the TCP checksum field holds only the pseudo-header sum


def _ipv4_header_ok(view: memoryview, ihl: int) -> bool:
    return ones_sum(bytes(view[:ihl])) == 0xFFFF


def decode(buf: bytes, *, vnet: bool) -> Decoded:
    """Check one packet as read from the device (with its virtio-net header when
    ``vnet``); raise :class:`WireError` with the reason when it is malformed.

    The TCP checksum is verified unless the header says the kernel left it to the
    device (``NEEDS_CSUM``) or checked it already (``DATA_VALID``)."""
    view = memoryview(buf)
    flags = gso_type = gso_size = csum_start = csum_offset = 0
    if vnet:
        if len(buf) < VNET_HDR_LEN:
            raise WireError("truncated virtio-net header")
        flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(buf)
        view = view[VNET_HDR_LEN:]
    n = len(view)
    if n == 0:
        raise WireError("empty packet")
    version = view[0] >> 4
    if version == 4:
        if n < 20:
            raise WireError("truncated IPv4 header")
        vihl, _tos, total, _ident, frag, _ttl, proto, _csum, s, d = _V4.unpack_from(view)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or ihl > n:
            raise WireError("bad IPv4 header length")
        if total < ihl or total > n:
            raise WireError("bad IPv4 total length")
        if not _ipv4_header_ok(view, ihl):
            raise WireError("bad IPv4 header checksum")
        if frag & 0x3FFF:
            raise WireError("IPv4 fragment")
        gso_family = GSO_TCPV4
    elif version == 6:
        if n < 40:
            raise WireError("truncated IPv6 header")
        _vtf, plen, proto, _hops, s, d = _V6.unpack_from(view)
        ihl = 40
        total = 40 + plen
        if total > n:
            raise WireError("bad IPv6 payload length")
        gso_family = GSO_TCPV6
    else:
        raise WireError(f"IP version {version}")
    if proto != PROTO_TCP:
        raise WireError(f"not TCP (protocol {proto})")
    kind = gso_type & ~GSO_ECN
    if kind != GSO_NONE:
        if kind != gso_family:
            raise WireError(f"GSO type {gso_type} does not match IPv{version}")
        if gso_size == 0:
            raise WireError("GSO packet with segment size 0")
    else:
        gso_size = 0
    partial = bool(flags & F_NEEDS_CSUM)
    if partial and (csum_start != ihl or csum_offset != TCP_CSUM_OFFSET):
        raise WireError("checksum offload not at the TCP checksum")
    src, dst = addr_str(bytes(s)), addr_str(bytes(d))
    # parse_tcp reads any buffer; a view spares a copy of up to 64 KB (the payload is
    # copied once, into the segment).
    tcp = view[ihl:total]
    if partial or flags & F_DATA_VALID:
        seg = parse_tcp(tcp)  # nothing to verify: the kernel left the sum to the device
    else:
        seg = parse_tcp(tcp, src, dst)
    if gso_size and len(seg.payload) <= gso_size:
        gso_size = 0  # one segment's worth: not a super-segment after all
    return Decoded(src, dst, bytes(s), seg, gso_size, view[:total], partial)


def fill_checksum(d: Decoded) -> bytes:
    """The IP packet of ``d`` with a complete TCP checksum (what a device would send)."""
    if not d.partial:
        return bytes(d.ip)
    pkt = bytearray(d.ip)
    start = (pkt[0] & 0x0F) * 4 if pkt[0] >> 4 == 4 else 40
    # The field already holds the pseudo-header's sum: sum from the TCP header on.
    _CSUM.pack_into(pkt, start + TCP_CSUM_OFFSET, ~ones_sum(bytes(pkt[start:])) & 0xFFFF)
    return bytes(pkt)


def plain_packet_source(pkt: bytes) -> bytes | None:
    """The packed source address of a raw IP packet (no virtio header); None if too short."""
    if not pkt:
        return None
    version = pkt[0] >> 4
    if version == 4 and len(pkt) >= 20:
        return pkt[12:16]
    if version == 6 and len(pkt) >= 40:
        return pkt[8:24]
    return None


# ---------------------------------------------------------------- output


def packet_headers(src: str, dst: str, seg: TcpSegment, flags: int, payload_len: int,
                   ident: int = 0) -> tuple[bytes, int, int]:
    """IP and TCP headers for ``seg`` with ``payload_len`` bytes of payload after them,
    the TCP checksum field holding the pseudo-header's sum (for ``NEEDS_CSUM``).

    Returns (headers, IP header length, TCP header length)."""
    opts = emit_options(seg.options) if seg.options else b""
    thl = 20 + len(opts)
    tcp_len = thl + payload_len
    partial = ones_sum(pseudo_header(src, dst, tcp_len))
    tcp = _TCP.pack(seg.src_port, seg.dst_port, seg.seq & 0xFFFFFFFF, seg.ack & 0xFFFFFFFF,
                    (thl // 4) << 4, flags & 0xFF, seg.window & 0xFFFF, partial,
                    seg.urgent & 0xFFFF) + opts
    if ":" in src:
        ip = _V6.pack(6 << 28, tcp_len, PROTO_TCP, 64, addr_bytes(src), addr_bytes(dst))
        return ip + tcp, 40, thl
    hdr = _V4.pack(0x45, 0, 20 + tcp_len, ident & 0xFFFF, 0x4000, 64, PROTO_TCP, 0,
                   addr_bytes(src), addr_bytes(dst))
    ip = hdr[:10] + (~ones_sum(hdr) & 0xFFFF).to_bytes(2, "big") + hdr[12:]
    return ip + tcp, 20, thl


def super_segment(src: str, dst: str, segs: Sequence[TcpSegment],
                  gso_size: int = 0) -> list[bytes]:
    """The buffers of one write (for ``writev``) carrying ``segs``, a run of one
    connection's segments that :func:`can_follow` accepted: the virtio-net header,
    the headers of the first segment (PSH/FIN of the last), then every payload as it is.

    One segment is sent as itself (checksum left to the kernel, no GSO), unless
    ``gso_size`` says it is already a super-segment (the engine made it for a device
    that segments) and its payload is longer than that."""
    first = segs[0]
    last = segs[-1]
    total = 0
    for s in segs:
        total += len(s.payload)
    flags = first.flags | (last.flags & (PSH | FIN))
    headers, ihl, thl = packet_headers(src, dst, first, flags, total)
    if len(segs) > 1:
        gso_size = len(first.payload)
    elif total <= gso_size:
        gso_size = 0
    gso = (GSO_TCPV6 if ihl == 40 else GSO_TCPV4) if gso_size else GSO_NONE
    vh = VNET_HDR.pack(F_NEEDS_CSUM, gso, ihl + thl, gso_size, ihl, TCP_CSUM_OFFSET)
    out = [vh + headers]
    out.extend(s.payload for s in segs)
    return out


def can_follow(prev: TcpSegment, seg: TcpSegment, gso_size: int) -> bool:
    """May ``seg`` go in the same super-segment, right after ``prev``?

    The device cuts a super-segment into ``gso_size`` pieces that copy its first
    header (sequence numbers advanced, PSH and FIN only on the last piece), so
    every segment but the last must be full and carry neither, and the headers
    must agree in everything else."""
    return (seg.seq == (prev.seq + len(prev.payload)) & 0xFFFFFFFF
            and len(prev.payload) == gso_size
            and 0 < len(seg.payload) <= gso_size
            and not prev.flags & (PSH | FIN)
            and (seg.flags | PSH | FIN) == (prev.flags | PSH | FIN)
            and seg.ack == prev.ack and seg.window == prev.window
            and seg.src_port == prev.src_port and seg.dst_port == prev.dst_port
            and seg.urgent == 0 and seg.options == prev.options)


def parse_header(buf: bytes) -> tuple[int, int, int, int, int, int]:
    """The fields of a virtio-net header: flags, gso_type, hdr_len, gso_size,
    csum_start, csum_offset."""
    if len(buf) < VNET_HDR_LEN:
        raise WireError("truncated virtio-net header")
    fields: tuple[int, int, int, int, int, int] = VNET_HDR.unpack_from(buf)
    return fields
