"""TCP Fast Open (RFC 7413) as Linux does it: cookies, the client's cache, the server's policy.

A client that holds a cookie from a server may put data in its SYN; the server
that recognises its cookie hands that data to the application before the
handshake ends.  The pieces, each following ``net/ipv4/tcp_fastopen.c``:

* the cookie (:func:`make_cookie`): 8 bytes, SipHash-2-4 of the client's and
  the server's IP addresses under a 128-bit key (Linux
  ``__tcp_fastopen_cookie_gen_cipher``; the key is ``tcp_fastopen_key``, four
  32-bit words each stored little-endian, or ``TCP_FASTOPEN_KEY`` per
  listener);
* the option (:func:`peer_cookie`): kind 34, or kind 254 with ExID 0xF989
  (the experimental format); a cookie is valid with an even length from 4 to
  16 bytes, an empty option is a request (``tcp_parse_fastopen_option``);
* the client's cache (:class:`CookieCache`, Linux keeps it in tcp_metrics):
  per destination the last cookie, the server's MSS, whether to try the
  experimental format, and how many SYNs with data were lost;
* the flags of ``net.ipv4.tcp_fastopen`` (:data:`CLIENT_ENABLE`, ...).

The connection uses these in :mod:`~tcplab.engine.connection` (the SYN with
data, the SYN-ACK that acknowledges it or not) and the host in
:mod:`~tcplab.engine.host` (the listener's decision).
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict

CLIENT_ENABLE = 0x1             #: TFO_CLIENT_ENABLE: connect with Fast Open
SERVER_ENABLE = 0x2             #: TFO_SERVER_ENABLE: accept Fast Open
CLIENT_NO_COOKIE = 0x4          #: TFO_CLIENT_NO_COOKIE: data in the SYN without a cookie
SERVER_COOKIE_NOT_REQD = 0x200  #: TFO_SERVER_COOKIE_NOT_REQD: accept data without a cookie
SERVER_WO_SOCKOPT1 = 0x400      #: TFO_SERVER_WO_SOCKOPT1: every listener, queue = backlog

COOKIE_MIN = 4                  #: TCP_FASTOPEN_COOKIE_MIN
COOKIE_MAX = 16                 #: TCP_FASTOPEN_COOKIE_MAX
COOKIE_SIZE = 8                 #: TCP_FASTOPEN_COOKIE_SIZE: what a Linux server issues
KEY_LENGTH = 16                 #: TCP_FASTOPEN_KEY_LENGTH
MAX_OPTION_SPACE = 40           #: MAX_TCP_OPTION_SPACE: kept free in a SYN with data
CACHE_ENTRIES = 4096            #: a bound on the client's cache (Linux: tcp_metrics hash)

_M64 = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M64


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein) of ``data`` under a 16-byte ``key``."""
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:16], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return (v0 ^ v1 ^ v2 ^ v3) & _M64


def key_from_text(text: str) -> bytes:
    """The 16 key bytes of ``tcp_fastopen_key`` text (four hex words joined by '-'):
    Linux stores each 32-bit word little-endian (``proc_tcp_fastopen_key``)."""
    words = text.strip().split(",")[0].split("-")
    if len(words) != 4:
        raise ValueError(f"{text!r}: four hex words joined by '-'")
    return b"".join(struct.pack("<I", int(w, 16) & 0xFFFFFFFF) for w in words)


def key_text(key: bytes) -> str:
    """The inverse of :func:`key_from_text`."""
    return "-".join(f"{w:08x}" for w in struct.unpack("<IIII", key))


def make_cookie(key: bytes, client: str, server: str) -> bytes:
    """The cookie a server issues to ``client`` (Linux: SipHash of source and destination
    address of the SYN, stored little-endian, 8 bytes)."""
    data = ipaddress.ip_address(client).packed + ipaddress.ip_address(server).packed
    return struct.pack("<Q", siphash24(key, data))


def peer_cookie(raw: bytes | None) -> bytes | None:
    """What a Fast Open option in a SYN or SYN-ACK means (``tcp_parse_fastopen_option``):
    ``b""`` a request, a cookie of 4 to 16 bytes of even length, None for no option or
    one Linux ignores (odd or bad length)."""
    if raw is None or len(raw) & 1:
        return None
    if not raw:
        return b""
    if COOKIE_MIN <= len(raw) <= COOKIE_MAX:
        return raw
    return None


def syn_data_space(mss: int, cached_mss: int | None, user_mss: int | None) -> int:
    """How many data bytes a SYN may carry (Linux ``tcp_send_syn_data``): the MSS the path
    allows, bounded by the server's MSS learnt before (or our own) and TCP_MAXSEG, minus
    the 40 bytes of option space kept free for middleboxes."""
    clamp = cached_mss if cached_mss else (user_mss or mss)
    if user_mss and user_mss < clamp:
        clamp = user_mss
    return max(min(mss, clamp), 48) - MAX_OPTION_SPACE


class Attempt:
    """What a client's Fast Open SYN will carry, from its cache (Linux
    ``tcp_fastopen_cookie_check``): a cookie (data may go with it), ``no_cookie``
    (tcp_fastopen bit 4: data without any cookie), or neither (a cookie request,
    in the experimental format when ``exp``)."""

    __slots__ = ("cookie", "exp", "mss", "no_cookie")

    def __init__(self, cookie: bytes = b"", exp: bool = False, mss: int | None = None,
                 no_cookie: bool = False) -> None:
        self.cookie = cookie
        self.exp = exp
        self.mss = mss
        self.no_cookie = no_cookie

    @property
    def with_data(self) -> bool:
        """Will the SYN carry data (the application's connect() may be deferred)?"""
        return bool(self.cookie) or self.no_cookie


class CacheEntry:
    """What a client remembers of one server (Linux ``struct tcp_fastopen_metrics``)."""

    __slots__ = ("cookie", "exp", "last_syn_loss", "mss", "syn_loss", "try_exp")

    def __init__(self) -> None:
        self.mss = 0                  #: the server's MSS option, 0: not known
        self.cookie = b""             #: the last cookie it issued
        self.exp = False              #: that cookie came in the experimental format
        self.try_exp = 0              #: 1: request in the experimental format; 2: back to 34
        self.syn_loss = 0             #: SYNs with data lost in a row
        self.last_syn_loss = 0.0


class CookieCache:
    """The client's Fast Open cache, per destination address (bounded, oldest out first)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def get(self, dst: str) -> CacheEntry | None:
        return self.entries.get(dst)

    def set(self, dst: str, mss: int | None, cookie: bytes | None, exp: bool, syn_lost: bool,
            try_exp: int, now: float) -> None:
        """Linux ``tcp_fastopen_cache_set``."""
        e = self.entries.get(dst)
        if e is None:
            e = self.entries[dst] = CacheEntry()
            if len(self.entries) > CACHE_ENTRIES:
                self.entries.popitem(last=False)
        if mss:
            e.mss = mss
        if cookie:
            e.cookie, e.exp = cookie, exp
        elif try_exp > e.try_exp and not e.cookie and not e.exp:
            e.try_exp = try_exp
        if syn_lost:
            e.syn_loss += 1
            e.last_syn_loss = now
        else:
            e.syn_loss = 0

    def flush(self) -> None:
        """``ip tcp_metrics flush all``."""
        self.entries.clear()

    def attempt(self, dst: str, flags: int, now: float) -> Attempt:
        """What the next SYN to ``dst`` carries (Linux tcp_fastopen_cookie_check and
        tcp_send_syn_data): the cached cookie and MSS, unless SYNs with data kept
        getting lost lately (then a plain cookie request)."""
        e = self.entries.get(dst)
        if e is None:
            return Attempt(no_cookie=bool(flags & CLIENT_NO_COOKIE))
        self.entries.move_to_end(dst)
        if e.syn_loss > 1 and now < e.last_syn_loss + (60.0 * (1 << e.syn_loss)):
            return Attempt(mss=e.mss or None)
        if flags & CLIENT_NO_COOKIE:
            return Attempt(mss=e.mss or None, no_cookie=True)
        return Attempt(e.cookie, e.exp if e.cookie else e.try_exp == 1, e.mss or None)


class ServerKey:
    """A host's Fast Open key: ``tcp_fastopen_key`` when set, else its own secret."""

    __slots__ = ("_default", "_parsed", "_text")

    def __init__(self, default: bytes) -> None:
        self._default = default
        self._text = ""
        self._parsed = default

    def key(self, text: str) -> bytes:
        if not text:
            return self._default
        if text != self._text:
            self._text, self._parsed = text, key_from_text(text)
        return self._parsed
