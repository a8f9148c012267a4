"""One TCP segment decoded from an IP packet, as the capture reader and the follower use it.

:func:`decode_ip_tcp` reads the IPv4 or IPv6 header (IPv6 extension headers hop-by-hop,
routing and destination options are skipped) and the TCP header, leniently: checksums are
not verified (captures taken on the sending host carry checksums the NIC never filled in),
and the payload length comes from the IP header, so a capture cut short by its snapshot
length still gives the right ``length``. It returns None for a packet that is not TCP or is
a fragment, and raises :class:`BadPacket` for one that cannot be decoded.

This module sits below both :mod:`tcplab.pcap.reader` and :mod:`tcplab.pcap.follow`, so
that neither has to import the other's internals.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from tcplab.wire.errors import WireError
from tcplab.wire.tcp import Eol, Nop, WindowScale, flags_str, option_text, parse_options

__all__ = ["BadPacket", "Packet", "decode_ip_tcp"]


class BadPacket(Exception):
    """One packet that cannot be decoded (skipped with a note)."""


@dataclass
class Packet:
    """One TCP segment as seen in the capture."""

    number: int
    t: float
    src: str
    dst: str
    flags: str
    seq: int
    ack: int
    win: int
    length: int
    opts: list[str] = field(default_factory=list)
    wscale: int | None = None
    raw: bytes = b""


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def decode_ip_tcp(number: int, t: float, ip: bytes) -> Packet | None:
    """A TCP segment from an IP packet; None if not TCP; BadPacket if malformed."""
    if not ip:
        raise BadPacket("empty IP packet")
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20:
            raise BadPacket("IPv4 header cut short")
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0] or len(ip)  # 0 with TSO: trust the capture
        frag = struct.unpack_from("!H", ip, 6)[0]
        if ihl < 20 or total < ihl or len(ip) < ihl:
            raise BadPacket(f"bad IPv4 header length {ihl}")
        if ip[9] != 6 or frag & 0x3FFF:
            return None
        src, dst = _addr(ip[12:16]), _addr(ip[16:20])
        off, tcp_total = ihl, total - ihl
    elif version == 6:
        if len(ip) < 40:
            raise BadPacket("IPv6 header cut short")
        plen = struct.unpack_from("!H", ip, 4)[0] or len(ip) - 40
        nxt, off = ip[6], 40
        while nxt in (0, 43, 60) and len(ip) >= off + 8:
            nxt, off = ip[off], off + (ip[off + 1] + 1) * 8
        if nxt != 6:
            return None
        src, dst = _addr(ip[8:24]), _addr(ip[24:40])
        tcp_total = 40 + plen - off
    else:
        raise BadPacket(f"not an IP packet (version {version})")
    tcp = ip[off:]
    if len(tcp) < 20:
        raise BadPacket("TCP header cut short")
    sport, dport, seq, ack, doff_byte, fl, win = struct.unpack_from("!HHIIBBH", tcp, 0)
    doff = (doff_byte >> 4) * 4
    if doff < 20 or doff > tcp_total:
        raise BadPacket(f"bad TCP data offset {doff}")
    flags = flags_str(fl)
    opts: list[str] = []
    wscale: int | None = None
    if doff > 20 and len(tcp) >= doff:
        try:
            for o in parse_options(bytes(tcp[20:doff])):
                if isinstance(o, WindowScale):
                    wscale = o.shift
                text = "" if isinstance(o, (Nop, Eol)) else option_text(o)
                if text:
                    opts.append(text)
        except (WireError, ValueError):
            opts = ["(malformed options)"]
    sfx = f"[{src}]" if version == 6 else src
    dfx = f"[{dst}]" if version == 6 else dst
    return Packet(number, t, f"{sfx}:{sport}", f"{dfx}:{dport}", flags, seq, ack, win,
                  max(tcp_total - doff, 0), opts, wscale, bytes(ip))
