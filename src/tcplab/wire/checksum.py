"""The Internet checksum (RFC 1071) and the TCP pseudo-headers (RFC 9293 3.1, RFC 8200 8.1).

The one's-complement sum of 16-bit words is congruent to the buffer, read as
one big-endian integer, modulo 0xFFFF (because 2**16 = 1 mod 0xFFFF).  CPython
does that reduction in C, which is far faster than a loop over words.
"""

from __future__ import annotations

import socket
import struct
from functools import lru_cache
from typing import Final

_TCP: Final = 6


def ones_sum(data: bytes) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words (0..0xFFFF)."""
    if len(data) & 1:
        data += b"\x00"
    value = int.from_bytes(data, "big")
    if value == 0:
        return 0
    s = value % 0xFFFF
    return s if s else 0xFFFF


def internet_checksum(data: bytes) -> int:
    """The 16-bit Internet checksum of ``data``."""
    return ~ones_sum(data) & 0xFFFF


@lru_cache(maxsize=4096)
def addr_bytes(addr: str) -> bytes:
    """Packed form of an IPv4 or IPv6 address string (cached)."""
    if ":" in addr:
        return socket.inet_pton(socket.AF_INET6, addr)
    return socket.inet_aton(addr)


@lru_cache(maxsize=4096)
def addr_str(packed: bytes) -> str:
    """Text form of a packed IPv4 (4 bytes) or IPv6 (16 bytes) address (cached)."""
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    return socket.inet_ntop(socket.AF_INET6, packed)


def pseudo_header(src: str, dst: str, length: int, proto: int = _TCP) -> bytes:
    """The IPv4 (12-byte) or IPv6 (40-byte) pseudo-header for a TCP checksum."""
    s = addr_bytes(src)
    d = addr_bytes(dst)
    if len(s) == 4:
        return s + d + struct.pack("!BBH", 0, proto, length)
    return s + d + struct.pack("!IxxxB", length, proto)


def tcp_checksum(src: str, dst: str, segment: bytes) -> int:
    """Checksum of a TCP segment (whose checksum field is zero) with its pseudo-header."""
    return internet_checksum(pseudo_header(src, dst, len(segment)) + segment)


def verify_tcp_checksum(src: str, dst: str, segment: bytes) -> bool:
    """True when ``segment`` (checksum field included) sums correctly."""
    return ones_sum(pseudo_header(src, dst, len(segment)) + segment) == 0xFFFF
