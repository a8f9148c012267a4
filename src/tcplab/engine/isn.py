"""Initial sequence numbers as RFC 6528 describes: ISN = M + F(4-tuple, secretkey).

M is a clock that ticks every 4 microseconds (RFC 9293 3.4.1; Linux's
secure_tcp_seq ticks every 64 ns: ``TcpConfig.isn_tick_ns``); F is a keyed
hash (BLAKE2s) of the connection's 4-tuple.  Both the clock (``now``) and the
key are passed in, so runs are reproducible and nothing here reads a real
clock or global random state.
"""

from __future__ import annotations

import hashlib
import random
from typing import Protocol


class IsnSource(Protocol):
    """Where a host's initial sequence numbers come from (passed to ``Host(isn=...)``)."""

    def isn(self, now: float, laddr: str, lport: int, raddr: str, rport: int) -> int: ...


class IsnGenerator:
    """RFC 6528 ISN generator with an injected key."""

    __slots__ = ("_hasher", "_key", "_rate")

    def __init__(self, key: bytes, tick_ns: int = 4000) -> None:
        if not 1 <= len(key) <= 32:
            raise ValueError("ISN key must be 1..32 bytes")
        if tick_ns <= 0:
            raise ValueError("the ISN clock's tick must be positive")
        self._key = key
        self._rate = 1e9 / tick_ns   # clock ticks per second
        # keyed once; each ISN hashes a copy (the same digest as a fresh keyed hash)
        self._hasher = hashlib.blake2s(key=key, digest_size=4)

    @classmethod
    def from_rng(cls, rng: random.Random, tick_ns: int = 4000) -> IsnGenerator:
        """A generator whose secret key is the next 128 bits of ``rng``; its clock ticks
        every ``tick_ns`` nanoseconds (RFC 9293: 4 µs; Linux: 64 ns)."""
        return cls(rng.getrandbits(128).to_bytes(16, "big"), tick_ns)

    def isn(self, now: float, laddr: str, lport: int, raddr: str, rport: int) -> int:
        m = int(now * self._rate)
        h = self._hasher.copy()
        h.update(f"{laddr}|{lport}|{raddr}|{rport}".encode())
        return (m + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF


class ChosenIsn:
    """ISNs chosen in advance, one per connection, then another source's.

    Scenarios and exam questions use it where particular numbers matter
    ("the client's ISN is 1000"); real stacks pick ISNs from a clock plus a
    keyed hash (:class:`IsnGenerator`).
    """

    __slots__ = ("_fallback", "_values")

    def __init__(self, values: list[int], fallback: IsnSource) -> None:
        self._values = list(values)
        self._fallback = fallback

    def isn(self, now: float, laddr: str, lport: int, raddr: str, rport: int) -> int:
        if self._values:
            return self._values.pop(0) & 0xFFFFFFFF
        return self._fallback.isn(now, laddr, lport, raddr, rport)
