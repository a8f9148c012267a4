"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers: enough for a TUN device and pcap files.

``parse_ip`` takes a whole IP packet and returns an :class:`IpPacket` (version,
addresses, protocol, TTL/hop limit, payload); ``emit_ipv4``/``emit_ipv6``
build one.  IPv4 options are skipped; fragments are not reassembled (tcplab
never sends any and drops received ones with a reason).  IPv6 extension
headers other than none are not followed.
"""

from __future__ import annotations

import struct
from typing import Final

from tcplab.wire.checksum import addr_bytes, addr_str, internet_checksum
from tcplab.wire.errors import WireError
from tcplab.wire.tcp import TcpSegment, emit_tcp, parse_tcp

PROTO_TCP: Final = 6
_V4: Final = struct.Struct("!BBHHHBBH4s4s")
_V6: Final = struct.Struct("!IHBB16s16s")


class IpPacket:
    """A parsed IP packet (a plain class: a dataclass's generated methods would stay
    interpreted in the compiled build)."""

    __slots__ = ("dst", "ident", "payload", "proto", "src", "ttl", "version")

    def __init__(self, version: int, src: str, dst: str, proto: int, ttl: int,
                 payload: bytes, ident: int = 0) -> None:
        self.version = version
        self.src = src
        self.dst = dst
        self.proto = proto
        self.ttl = ttl
        self.payload = payload
        self.ident = ident

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, IpPacket) and other.version == self.version
                and other.src == self.src and other.dst == self.dst
                and other.proto == self.proto and other.ttl == self.ttl
                and other.payload == self.payload and other.ident == self.ident)

    def __hash__(self) -> int:
        return hash((self.version, self.src, self.dst, self.proto, self.payload))

    def __repr__(self) -> str:
        return (f"IpPacket(version={self.version!r}, src={self.src!r}, dst={self.dst!r}, "
                f"proto={self.proto!r}, ttl={self.ttl!r}, payload={self.payload!r}, "
                f"ident={self.ident!r})")


def parse_ip(data: bytes) -> IpPacket:
    """Parse an IPv4 or IPv6 packet; raise WireError when malformed."""
    if not data:
        raise WireError("empty packet")
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            raise WireError("truncated IPv4 header")
        vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _V4.unpack_from(data)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or ihl > len(data):
            raise WireError("bad IPv4 header length")
        if total < ihl or total > len(data):
            raise WireError("bad IPv4 total length")
        if internet_checksum(data[:ihl]) != 0:
            raise WireError("bad IPv4 header checksum")
        if frag & 0x3FFF:
            raise WireError("IPv4 fragment")
        return IpPacket(4, addr_str(src), addr_str(dst), proto, ttl, bytes(data[ihl:total]), ident)
    if version == 6:
        if len(data) < 40:
            raise WireError("truncated IPv6 header")
        _vtf, plen, nxt, hops, src, dst = _V6.unpack_from(data)
        if 40 + plen > len(data):
            raise WireError("bad IPv6 payload length")
        return IpPacket(6, addr_str(src), addr_str(dst), nxt, hops, bytes(data[40:40 + plen]))
    raise WireError(f"IP version {version}")


def emit_ipv4(src: str, dst: str, payload: bytes, proto: int = PROTO_TCP, ttl: int = 64,
              ident: int = 0) -> bytes:
    """An IPv4 header (DF set, no options, correct checksum) followed by ``payload``."""
    header = _V4.pack(0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0,
                      addr_bytes(src), addr_bytes(dst))
    csum = internet_checksum(header)
    return header[:10] + csum.to_bytes(2, "big") + header[12:] + payload


def emit_ipv6(src: str, dst: str, payload: bytes, proto: int = PROTO_TCP,
              hop_limit: int = 64) -> bytes:
    """An IPv6 header followed by ``payload``."""
    return _V6.pack(6 << 28, len(payload), proto, hop_limit, addr_bytes(src),
                    addr_bytes(dst)) + payload


def emit_ip_tcp(src: str, dst: str, seg: TcpSegment, ttl: int = 64, ident: int = 0) -> bytes:
    """A whole IP packet carrying ``seg``, IPv4 or IPv6 by the address family."""
    tcp = emit_tcp(seg, src, dst)
    if ":" in src:
        return emit_ipv6(src, dst, tcp, hop_limit=ttl)
    return emit_ipv4(src, dst, tcp, ttl=ttl, ident=ident)


def parse_ip_tcp(data: bytes) -> tuple[IpPacket, TcpSegment]:
    """Parse an IP packet that must carry TCP; the TCP checksum is verified."""
    ip = parse_ip(data)
    if ip.proto != PROTO_TCP:
        raise WireError(f"not TCP (protocol {ip.proto})")
    return ip, parse_tcp(ip.payload, ip.src, ip.dst)
