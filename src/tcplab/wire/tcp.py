"""TCP header: parse bytes into a checked :class:`TcpSegment`, emit it back (RFC 9293 3.1).

``parse_tcp`` validates everything the engine relies on (length, data offset,
option lengths, checksum) and raises :class:`WireError` with a reason; nothing
else escapes it.  ``TcpSegment`` is a small slots class; build variants with
``TcpSegment.replace``.

Options (RFC 9293 3.2, RFC 7323, RFC 2018, RFC 7413) keep their order, because peers
(and packetdrill scripts) care about it; unknown options are kept verbatim and
skipped by their length.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from mypy_extensions import mypyc_attr

from tcplab.wire.checksum import ones_sum, pseudo_header
from tcplab.wire.errors import WireError

# Final: mypyc compiles these as constants, not as lookups in the module's globals.
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

# Letters as the trace schema writes them: "SA", "FA", "R", "PA".  That is
# S F R P U E C with A last, the way tcpdump and most textbooks print them.
_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"), (ECE, "E"),
                 (CWR, "C"), (ACK, "A"))
_LETTER_FLAGS = {letter: bit for bit, letter in _FLAG_LETTERS}

_HDR: Final = struct.Struct("!HHIIBBHHH")
HEADER_LEN: Final = 20


def _make_flag_table() -> tuple[str, ...]:
    table = []
    for value in range(256):
        table.append("".join(letter for bit, letter in _FLAG_LETTERS if value & bit))
    return tuple(table)


_FLAG_STR: Final = _make_flag_table()


def flags_str(flags: int) -> str:
    """Flags as letters, ACK last: ``"SA"``, ``"FA"``, ``"PA"``, ``"R"``, ``"A"``."""
    return _FLAG_STR[flags & 0xFF]


def parse_flags(text: str) -> int:
    """Inverse of :func:`flags_str` (order does not matter; ``"."`` means ACK)."""
    value = 0
    for ch in text:
        if ch == ".":
            value |= ACK
            continue
        if ch not in _LETTER_FLAGS:
            raise ValueError(f"unknown TCP flag letter {ch!r}")
        value |= _LETTER_FLAGS[ch]
    return value


# ---------------------------------------------------------------- options

OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WSCALE: Final = 3
OPT_SACK_PERMITTED: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMPS: Final = 8
OPT_FASTOPEN: Final = 34
OPT_EXPERIMENTAL: Final = 254       #: RFC 6994 shared experimental option
FASTOPEN_MAGIC: Final = 0xF989      #: RFC 7413's ExID in kind 254 (Linux TCPOPT_FASTOPEN_MAGIC)


# The options are immutable values, written out by hand rather than as frozen
# dataclasses: compiled with mypyc, a dataclass's generated __init__/__eq__/__hash__
# stay interpreted Python (about 1 us per option built), and a Timestamps option is
# built for every segment sent.


@mypyc_attr(acyclic=True)
class Eol:
    """End of option list (kind 0)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Eol)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Eol()"


@mypyc_attr(acyclic=True)
class Nop:
    """No-operation, used for alignment (kind 1)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nop)

    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "Nop()"


@mypyc_attr(acyclic=True)
class Mss:
    """Maximum segment size (kind 2), only in SYN segments."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mss) and other.value == self.value

    def __hash__(self) -> int:
        return hash((2, self.value))

    def __repr__(self) -> str:
        return f"Mss(value={self.value!r})"


@mypyc_attr(acyclic=True)
class WindowScale:
    """Window scale shift count (kind 3, RFC 7323)."""

    __slots__ = ("shift",)

    def __init__(self, shift: int) -> None:
        self.shift = shift

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowScale) and other.shift == self.shift

    def __hash__(self) -> int:
        return hash((3, self.shift))

    def __repr__(self) -> str:
        return f"WindowScale(shift={self.shift!r})"


@mypyc_attr(acyclic=True)
class SackPermitted:
    """SACK permitted (kind 4, RFC 2018)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SackPermitted)

    def __hash__(self) -> int:
        return 4

    def __repr__(self) -> str:
        return "SackPermitted()"


@mypyc_attr(acyclic=True)
class Sack:
    """Selective acknowledgment blocks (kind 5, RFC 2018): (left, right) edges."""

    __slots__ = ("blocks",)

    def __init__(self, blocks: tuple[tuple[int, int], ...]) -> None:
        self.blocks = blocks

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sack) and other.blocks == self.blocks

    def __hash__(self) -> int:
        return hash((5, self.blocks))

    def __repr__(self) -> str:
        return f"Sack(blocks={self.blocks!r})"


@mypyc_attr(acyclic=True)
class Timestamps:
    """Timestamps (kind 8, RFC 7323)."""

    __slots__ = ("tsecr", "tsval")

    def __init__(self, tsval: int, tsecr: int) -> None:
        self.tsval = tsval
        self.tsecr = tsecr

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Timestamps) and other.tsval == self.tsval
                and other.tsecr == self.tsecr)

    def __hash__(self) -> int:
        return hash((8, self.tsval, self.tsecr))

    def __repr__(self) -> str:
        return f"Timestamps(tsval={self.tsval!r}, tsecr={self.tsecr!r})"


@mypyc_attr(acyclic=True)
class FastOpen:
    """TCP Fast Open cookie (kind 34, RFC 7413 4.1.1), or the same in the shared
    experimental kind 254 with ExID 0xF989 (``exp``: RFC 6994, what Linux calls the
    experimental format).  An empty cookie is a cookie request."""

    __slots__ = ("cookie", "exp")

    def __init__(self, cookie: bytes = b"", exp: bool = False) -> None:
        self.cookie = cookie
        self.exp = exp

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FastOpen) and other.cookie == self.cookie
                and other.exp == self.exp)

    def __hash__(self) -> int:
        return hash((34, self.cookie, self.exp))

    def __repr__(self) -> str:
        return f"FastOpen(cookie={self.cookie!r}, exp={self.exp!r})"

    @property
    def length(self) -> int:
        """The option's length field: 2 (kind 34) or 4 (kind 254) plus the cookie."""
        return (4 if self.exp else 2) + len(self.cookie)


@mypyc_attr(acyclic=True)
class UnknownOption:
    """An option tcplab does not interpret, kept verbatim."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: int, data: bytes) -> None:
        self.kind = kind
        self.data = data

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, UnknownOption) and other.kind == self.kind
                and other.data == self.data)

    def __hash__(self) -> int:
        return hash((self.kind, self.data))

    def __repr__(self) -> str:
        return f"UnknownOption(kind={self.kind!r}, data={self.data!r})"


TcpOption = (Eol | Nop | Mss | WindowScale | SackPermitted | Sack | Timestamps | FastOpen
             | UnknownOption)


def option_text(opt: TcpOption) -> str:
    """An option as traces write it: "mss 1460", "wscale 7", "sackOK", "nop"."""
    if isinstance(opt, Mss):
        return f"mss {opt.value}"
    if isinstance(opt, WindowScale):
        return f"wscale {opt.shift}"
    if isinstance(opt, SackPermitted):
        return "sackOK"
    if isinstance(opt, Timestamps):
        return f"TS val {opt.tsval} ecr {opt.tsecr}"
    if isinstance(opt, Sack):
        return "sack " + " ".join(f"{a}:{b}" for a, b in opt.blocks)
    if isinstance(opt, FastOpen):
        name = "FOEXP" if opt.exp else "FO"
        return f"{name} {opt.cookie.hex()}" if opt.cookie else name
    if isinstance(opt, Nop):
        return "nop"
    if isinstance(opt, Eol):
        return "eol"
    return f"opt-{opt.kind}"


def parse_options(raw: bytes) -> tuple[TcpOption, ...]:
    """Parse the option bytes of a header; raise WireError on bad lengths."""
    out: list[TcpOption] = []
    i = 0
    n = len(raw)
    while i < n:
        kind = raw[i]
        if kind == OPT_EOL:
            out.append(Eol())
            break  # the rest is padding
        if kind == OPT_NOP:
            out.append(Nop())
            i += 1
            continue
        if i + 1 >= n:
            raise WireError("option length missing")
        length = raw[i + 1]
        if length < 2:
            raise WireError(f"option length {length}")
        if i + length > n:
            raise WireError("option runs past the header")
        body = raw[i + 2 : i + length]
        if kind == OPT_MSS and length == 4:
            out.append(Mss(struct.unpack("!H", body)[0]))
        elif kind == OPT_WSCALE and length == 3:
            out.append(WindowScale(body[0]))
        elif kind == OPT_SACK_PERMITTED and length == 2:
            out.append(SackPermitted())
        elif kind == OPT_SACK and length >= 2 and (length - 2) % 8 == 0:
            words = struct.unpack(f"!{(length - 2) // 4}I", body)
            out.append(Sack(tuple(zip(words[0::2], words[1::2], strict=True))))
        elif kind == OPT_TIMESTAMPS and length == 10:
            tsval, tsecr = struct.unpack("!II", body)
            out.append(Timestamps(tsval, tsecr))
        elif kind == OPT_FASTOPEN:
            out.append(FastOpen(bytes(body)))
        elif kind == OPT_EXPERIMENTAL and length >= 4 and \
                struct.unpack("!H", body[:2])[0] == FASTOPEN_MAGIC:
            out.append(FastOpen(bytes(body[2:]), exp=True))
        else:
            # Unknown kinds, and known kinds with an unexpected length, are kept
            # and skipped by their length (RFC 9293 3.2: "must be prepared to
            # handle an illegal option length ... without crashing").
            out.append(UnknownOption(kind, bytes(body)))
        i += length
    return tuple(out)


def emit_options(options: tuple[TcpOption, ...]) -> bytes:
    """Option bytes, padded with EOL/zero to a multiple of four."""
    parts: list[bytes] = []
    for opt in options:
        if isinstance(opt, Nop):
            parts.append(b"\x01")
        elif isinstance(opt, Eol):
            parts.append(b"\x00")
        elif isinstance(opt, Mss):
            parts.append(struct.pack("!BBH", OPT_MSS, 4, opt.value))
        elif isinstance(opt, WindowScale):
            parts.append(struct.pack("!BBB", OPT_WSCALE, 3, opt.shift))
        elif isinstance(opt, SackPermitted):
            parts.append(b"\x04\x02")
        elif isinstance(opt, Sack):
            flat = [edge for block in opt.blocks for edge in block]
            parts.append(struct.pack(f"!BB{len(flat)}I", OPT_SACK, 2 + 4 * len(flat), *flat))
        elif isinstance(opt, Timestamps):
            parts.append(struct.pack("!BBII", OPT_TIMESTAMPS, 10, opt.tsval, opt.tsecr))
        elif isinstance(opt, FastOpen):
            if opt.exp:
                parts.append(struct.pack("!BBH", OPT_EXPERIMENTAL, opt.length, FASTOPEN_MAGIC)
                             + opt.cookie)
            else:
                parts.append(struct.pack("!BB", OPT_FASTOPEN, opt.length) + opt.cookie)
        else:
            parts.append(struct.pack("!BB", opt.kind, 2 + len(opt.data)) + opt.data)
    raw = b"".join(parts)
    pad = -len(raw) % 4
    if len(raw) + pad > 40:
        raise ValueError("TCP options longer than 40 bytes")
    return raw + b"\x00" * pad


# ---------------------------------------------------------------- segment


# Compiled, a segment is not tracked by the cycle collector (it refers to no object
# that could refer back to it) and one freed segment is kept for the next one.
@mypyc_attr(acyclic=True, free_list_len=1)
class TcpSegment:
    """The checked, high-level form of a TCP header plus payload.

    ``seq`` and ``ack`` are plain integers in 0..2**32-1; compare them with
    :mod:`tcplab.wire.seq`.  ``window`` is the raw 16-bit field (unscaled).
    :func:`parse_tcp` is what checks a segment from the wire; the engine
    builds its own.  Treat a segment as immutable: :meth:`replace` makes a
    variant.  Equality ignores the checksum field.
    """

    __slots__ = ("ack", "checksum", "dst_port", "flags", "options", "payload", "seq",
                 "src_port", "urgent", "window")

    def __init__(self, src_port: int, dst_port: int, seq: int, ack: int = 0, flags: int = 0,
                 window: int = 0, urgent: int = 0, options: tuple[TcpOption, ...] = (),
                 payload: bytes = b"", checksum: int = 0) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.urgent = urgent
        self.options = options
        self.payload = payload
        self.checksum = checksum

    def _fields(self) -> tuple[int, int, int, int, int, int, int, tuple[TcpOption, ...], bytes]:
        return (self.src_port, self.dst_port, self.seq, self.ack, self.flags, self.window,
                self.urgent, self.options, self.payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TcpSegment):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"TcpSegment(src_port={self.src_port}, dst_port={self.dst_port}, "
                f"seq={self.seq}, ack={self.ack}, flags={self.flag_letters!r}, "
                f"window={self.window}, urgent={self.urgent}, options={self.options!r}, "
                f"payload={self.payload[:32]!r}{'...' if len(self.payload) > 32 else ''})")

    def replace(self, **changes: Any) -> TcpSegment:
        """A copy with some fields changed: ``seg.replace(flags=ACK, payload=b"")``."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _SEGMENT_FIELDS}
        for name, value in changes.items():
            if name not in values:
                raise TypeError(f"TcpSegment has no field {name!r}")
            values[name] = value
        return TcpSegment(**values)

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    @property
    def seg_len(self) -> int:
        """SEG.LEN: payload octets plus one for SYN and one for FIN (RFC 9293 3.4)."""
        flags = self.flags
        return len(self.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

    @property
    def flag_letters(self) -> str:
        return _FLAG_STR[self.flags & 0xFF]

    @property
    def mss(self) -> int | None:
        for opt in self.options:
            if isinstance(opt, Mss):
                return opt.value
        return None

    @property
    def wscale(self) -> int | None:
        for opt in self.options:
            if isinstance(opt, WindowScale):
                return opt.shift
        return None

    @property
    def sack_permitted(self) -> bool:
        return any(isinstance(opt, SackPermitted) for opt in self.options)

    @property
    def timestamps(self) -> Timestamps | None:
        for opt in self.options:
            if isinstance(opt, Timestamps):
                return opt
        return None

    @property
    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """The SACK blocks the segment carries (RFC 2018 3), in their order."""
        for opt in self.options:
            if isinstance(opt, Sack):
                return opt.blocks
        return ()

    @property
    def fastopen(self) -> FastOpen | None:
        """The last Fast Open option (Linux keeps the last of several), or None."""
        found = None
        for opt in self.options:
            if isinstance(opt, FastOpen):
                found = opt
        return found

    def summary(self) -> str:
        """One line: ``40000 > 80 [SA] seq=1 ack=2 win=65535 len=0``."""
        return (f"{self.src_port} > {self.dst_port} [{self.flag_letters}] seq={self.seq} "
                f"ack={self.ack} win={self.window} len={len(self.payload)}")


_SEGMENT_FIELDS = ("src_port", "dst_port", "seq", "ack", "flags", "window", "urgent", "options",
                   "payload", "checksum")


def parse_tcp(data: bytes | memoryview, src: str | None = None,
              dst: str | None = None) -> TcpSegment:
    """Parse a TCP segment; verify the checksum when both addresses are given.  ``data``
    may be a view into a larger buffer (a TUN read): only the payload is copied."""
    n = len(data)
    if n < HEADER_LEN:
        raise WireError("truncated header")
    sport, dport, seq, ack, off_byte, flags, window, csum, urg = _HDR.unpack_from(data)
    doff = (off_byte >> 4) * 4
    if doff < HEADER_LEN:
        raise WireError("data offset < 5")
    if doff > n:
        raise WireError("data offset past the end")
    if src is not None and dst is not None:
        if ones_sum(pseudo_header(src, dst, n) + data) != 0xFFFF:
            raise WireError("bad checksum")
    options = parse_options(bytes(data[HEADER_LEN:doff])) if doff > HEADER_LEN else ()
    return TcpSegment(sport, dport, seq, ack, flags, window, urg, options,
                      bytes(data[doff:]), csum)


def emit_tcp(seg: TcpSegment, src: str | None = None, dst: str | None = None) -> bytes:
    """Bytes of ``seg``; with both addresses the checksum is computed, else left zero."""
    opts = emit_options(seg.options) if seg.options else b""
    doff = (HEADER_LEN + len(opts)) // 4
    header = _HDR.pack(seg.src_port, seg.dst_port, seg.seq & 0xFFFFFFFF, seg.ack & 0xFFFFFFFF,
                       doff << 4, seg.flags & 0xFF, seg.window & 0xFFFF, 0, seg.urgent & 0xFFFF)
    raw = header + opts + seg.payload
    if src is None or dst is None:
        return raw
    csum = ~ones_sum(pseudo_header(src, dst, len(raw)) + raw) & 0xFFFF
    return raw[:16] + csum.to_bytes(2, "big") + raw[18:]
