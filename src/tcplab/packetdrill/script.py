"""packetdrill's script language: a hand-written, line-oriented parser.

A script is a header of ``--name=value`` option lines followed by events,
one per line, each with a time and an action::

     0.00 `sysctl -w net.inet.tcp.rfc1323=1`          shell command
    +0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3   system call
    +0.10 < S. 0:0(0) ack 1 win 32767 <mss 1460>      inbound packet
    +0.00 > . 1:1(0) ack 1 win 65535                  outbound packet
    +0.00 %{ assert tcpi_state == TCPI_ESTABLISHED }% inline code
    *     > S 0:0(0) win 65535 <...>                  any time
    1.0~2.0 > S 0:0(0) <...>                          a time range

Times are absolute (``0.1``), relative to the previous event (``+0.1``,
also written ``+ 0.1``), ``*`` (any time) or ranges ``a~b`` (either end
may be relative).  ``//`` and ``/* */`` start comments; ``#ifdef NAME`` ..
``#else`` .. ``#endif`` keep lines when ``NAME`` is defined.

Both dialects are read: the FreeBSD suite's and Linux's (google/packetdrill
gtests/net/tcp).  Linux's adds system calls spread over several lines (an
event continues while a bracket is open, a backquote or ``%{`` unclosed),
blocking calls with a duration (``+0...0.2 accept(...)``, also ``+0 ... .2``),
``< icmp ...`` packets, packets with no flags (``-``), ``msg_name(...)=...``
fields and named constants in options (``FO TFO_COOKIE``).

The parser produces immutable dataclasses (:class:`Script`, :class:`Event`
with a :class:`TimeSpec` and one of :class:`PacketSpec`, :class:`IcmpSpec`,
:class:`SyscallSpec`, :class:`ShellSpec`, :class:`CodeSpec`).  Malformed
input raises :class:`ScriptError` with the file and line number.

Scripts are untrusted input (issue 19): a script, an event and the nesting of
brackets have caps (``MAX_*`` below), numbers have packetdrill's ranges
(sequence numbers 32 bits, payload lengths 16 bits), and every violation is a
one-line :class:`ScriptError` that names the line, never a RecursionError or
an allocation sized by the script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG

# Caps on hostile input.  The largest script of both corpora is 12 KB with events
# of at most 600 characters and brackets nested 4 deep.
MAX_SCRIPT_CHARS = 1 << 20       #: a script longer than 1 MiB is refused
MAX_EVENT_CHARS = 1 << 16        #: one event, after joining its continuation lines
MAX_EVENT_LINES = 400            #: continuation lines of one event
MAX_EVENTS = 20_000
MAX_NESTING = 32                 #: brackets ( [ { nested in system call arguments
MAX_OPTIONS = 40                 #: TCP options in one packet (their space is 40 octets)
MAX_PAYLOAD = 0xFFFF             #: packetdrill: a payload length is a 16-bit number
MAX_TIME = 86_400.0              #: script times beyond a day are refused


class ScriptError(Exception):
    """A script that does not parse: ``path:line: message``."""

    def __init__(self, message: str, path: str = "<script>", line: int = 0) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line
        self.reason = message


# ------------------------------------------------------------------ the AST


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """When an event happens.  ``kind``: absolute | relative | any | range."""

    kind: str
    start: float = 0.0
    end: float = 0.0
    start_relative: bool = False
    end_relative: bool = False
    #: a blocking system call ``a...b``: it starts at ``start`` and returns at ``block_end``
    block_end: float | None = None
    block_end_relative: bool = False


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One TCP option as written: ``mss 1460``, ``sack 1:2 3:4``, ``TS val 1 ecr 0``."""

    name: str                      # mss wscale sackOK sack TS nop eol md5 ...
    values: tuple[int, ...] = ()

    def text(self) -> str:
        if self.name == "TS":
            return f"TS val {self.values[0]} ecr {self.values[1]}"
        if self.name == "sack":
            pairs = zip(self.values[0::2], self.values[1::2], strict=True)
            return "sack " + " ".join(f"{a}:{b}" for a, b in pairs)
        if self.values:
            return f"{self.name} {' '.join(str(v) for v in self.values)}"
        return self.name


@dataclass(frozen=True, slots=True)
class PacketSpec:
    """A TCP packet line: direction ``<`` (inbound) or ``>`` (outbound)."""

    direction: str
    flags: int
    flag_text: str
    seq_start: int | None          # None: ``...`` (unchecked)
    seq_end: int | None
    length: int
    ack: int | None = None
    window: int | None = None
    options: tuple[OptionSpec, ...] | None = None   # None: no ``<...>`` list given
    options_any: bool = False      # ``<...>``: options unchecked
    absolute: bool = False         # ``S!``: sequence numbers are absolute
    ip_annotations: tuple[str, ...] = ()   # ``(ttl 64)``, ``[ect0]`` ...

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


@dataclass(frozen=True, slots=True)
class IcmpSpec:
    """``< icmp unreachable frag_needed mtu 1400 [1:1461(1460)]``: an ICMP error.

    ``echoed``: the TCP segment the error quotes, as ``(start, end, length)``
    in the sequence space of the packet's sender (ours, for an inbound error).
    """

    direction: str
    icmp_type: str
    code: str | None = None
    mtu: int | None = None
    echoed: tuple[int, int, int] | None = None
    ip_annotations: tuple[str, ...] = ()

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


@dataclass(frozen=True, slots=True)
class SyscallSpec:
    """``name(args) = result [ERRNO (text)]``."""

    name: str
    args: tuple[object, ...]
    result: object                 # int, or "..." / None when unchecked
    errno: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ShellSpec:
    command: str


@dataclass(frozen=True, slots=True)
class CodeSpec:
    code: str


Action = PacketSpec | IcmpSpec | SyscallSpec | ShellSpec | CodeSpec


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    time: TimeSpec
    action: Action
    text: str


@dataclass(frozen=True, slots=True)
class Script:
    path: str
    options: Mapping[str, str]
    events: tuple[Event, ...]
    defines: Mapping[str, str] = field(default_factory=dict)


# Syscall argument forms other than int/str/lists.
@dataclass(frozen=True, slots=True)
class Ellipsis_:
    def __repr__(self) -> str:
        return "..."


ELLIPSIS = Ellipsis_()


@dataclass(frozen=True, slots=True)
class Ident:
    name: str


@dataclass(frozen=True, slots=True)
class BitOr:
    parts: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class ListArg:
    items: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class StructArg:
    fields: tuple[tuple[str | None, object], ...]

    def get(self, name: str) -> object:
        """The value of field ``name`` (``None`` when absent)."""
        for n, v in self.fields:
            if n == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class CallArg:
    """``inet_addr("192.0.2.1")``, ``htons(8080)``: a function applied to arguments."""

    name: str
    args: tuple[object, ...]


# ------------------------------------------------------------------ lexing helpers

_FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR,
              "C": CWR}
_NUM = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_TIME_RE = re.compile(
    rf"^\s*(?:(?P<any>\*)|(?P<s_rel>\+\s*)?(?P<start>{_NUM})"
    rf"(?:\s*~\s*(?P<e_rel>\+\s*)?(?P<end>{_NUM}))?"
    rf"(?:\s*\.\.\.\s*(?P<b_rel>\+\s*)?(?P<bend>{_NUM}))?)(?=\s|$|[<>`%])")
_SEQ_RE = re.compile(r"^(?:(\d{1,12}):(\d{1,12})|\.\.\.)\((\d{1,12})\)$")
_U32 = 0xFFFFFFFF


def _int(text: str, where: str, limit: int | None = None) -> int:
    if len(text) > 24:
        raise ValueError(f"number too long in {where}: {text[:24]}...")
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise ValueError(f"expected a number in {where}, got {text!r}") from exc
    if limit is not None and not 0 <= value <= limit:
        raise ValueError(f"{where} {value} out of range (0..{limit})")
    return value


def strip_comments(text: str) -> list[str]:
    """Remove ``/* */`` and ``//`` comments (outside backquotes and strings)."""
    out: list[str] = []
    in_block = False
    for raw in text.splitlines():
        if not in_block and "/" not in raw:
            out.append(raw)            # the common case: nothing to strip
            continue
        line = []
        i = 0
        quote: str | None = None
        while i < len(raw):
            ch = raw[i]
            if in_block:
                if raw.startswith("*/", i):
                    in_block = False
                    i += 2
                    continue
                i += 1
                continue
            if quote is not None:
                line.append(ch)
                if ch == quote:
                    quote = None
                i += 1
                continue
            if ch in "`\"":
                quote = ch
                line.append(ch)
                i += 1
                continue
            if raw.startswith("//", i):
                break
            if raw.startswith("/*", i):
                in_block = True
                i += 2
                continue
            line.append(ch)
            i += 1
        out.append("".join(line))
    return out


def preprocess(lines: list[str], defines: Mapping[str, str], path: str) -> list[str]:
    """Apply ``#ifdef``/``#ifndef``/``#else``/``#endif``; dropped lines become blank."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []    # (this branch active, parent active)
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#ifdef") or s.startswith("#ifndef"):
            parts = s.split()
            if len(parts) != 2:
                raise ScriptError(f"bad directive {s[:40]!r}", path, n)
            if len(stack) >= MAX_NESTING:
                raise ScriptError(f"#ifdef nested deeper than {MAX_NESTING}", path, n)
            parent = all(a for a, _p in stack)
            cond = parts[1] in defines
            if parts[0] == "#ifndef":
                cond = not cond
            stack.append((cond, parent))
            out.append("")
            continue
        if s.startswith("#else"):
            if not stack:
                raise ScriptError("#else without #ifdef", path, n)
            cond, parent = stack.pop()
            stack.append((not cond, parent))
            out.append("")
            continue
        if s.startswith("#endif"):
            if not stack:
                raise ScriptError("#endif without #ifdef", path, n)
            stack.pop()
            out.append("")
            continue
        out.append(line if all(a for a, _p in stack) else "")
    if stack:
        raise ScriptError("#ifdef without #endif", path, len(lines))
    return out


# ------------------------------------------------------------------ packets


def parse_options(text: str) -> tuple[tuple[OptionSpec, ...], bool]:
    """The inside of ``<...>``; returns (options, unchecked)."""
    body = text.strip()
    if body == "...":
        return (), True
    opts: list[OptionSpec] = []
    parts = [p.strip() for p in body.split(",")]
    if len(parts) > MAX_OPTIONS:
        raise ValueError(f"more than {MAX_OPTIONS} TCP options")
    for part in parts:
        if not part:
            raise ValueError("empty TCP option")
        words = part.split()
        name = words[0]
        if name in ("nop", "eol", "sackOK") and len(words) == 1:
            opts.append(OptionSpec(name))
        elif name == "mss" and len(words) == 2:
            opts.append(OptionSpec(name, (_int(words[1], "mss", 0xFFFF),)))
        elif name == "wscale" and len(words) == 2:
            opts.append(OptionSpec(name, (_int(words[1], "wscale", 0xFF),)))
        elif name == "sack":
            vals: list[int] = []
            for block in words[1:]:
                a, sep, b = block.partition(":")
                if not sep:
                    raise ValueError(f"bad SACK block {block[:40]!r}")
                vals += [_int(a, "sack", _U32), _int(b, "sack", _U32)]
            opts.append(OptionSpec("sack", tuple(vals)))
        elif name == "TS" and len(words) == 5 and words[1] == "val" and words[3] == "ecr":
            opts.append(OptionSpec("TS", (_int(words[2], "TS val", _U32),
                                          _int(words[4], "TS ecr", _U32))))
        elif name in ("md5", "FO", "FOEXP", "mptcp") and len(words) <= 2:
            # A Fast Open cookie is hex or a named constant (``FO TFO_COOKIE``);
            # kept as text, never interpreted here.
            if len(words) == 2 and not re.fullmatch(r"[0-9A-Za-z_]{1,64}", words[1]):
                raise ValueError(f"bad {name} value {words[1][:40]!r}")
            opts.append(OptionSpec(" ".join(words)))
        else:
            raise ValueError(f"unknown TCP option {part[:40]!r}")
    return tuple(opts), False


def _annotations(s: str) -> tuple[list[str], str]:
    """Leading ``[ect0]``, ``(tos 0x1)`` groups of a packet line, and the rest."""
    annotations: list[str] = []
    while s.startswith("[") or s.startswith("("):
        close = "]" if s[0] == "[" else ")"
        close_at = s.find(close)
        if close_at < 0:
            raise ValueError(f"unclosed {s[0]!r}")
        annotations.append(s[1:close_at].strip())
        s = s[close_at + 1:].strip()
    return annotations, s


def parse_icmp(direction: str, annotations: list[str], rest: str) -> IcmpSpec:
    """``icmp TYPE [CODE] [mtu N] [id N] [[start:end(len)]]`` (after ``icmp``)."""
    echoed: tuple[int, int, int] | None = None
    body = rest.strip()
    lb = body.find("[")
    if lb >= 0:
        rb = body.rfind("]")
        if rb < lb or body[rb + 1:].strip():
            raise ValueError("bad echoed segment in an ICMP packet")
        inner = body[lb + 1:rb].strip()
        body = body[:lb].strip()
        m = _SEQ_RE.match(inner)
        if m is None or m.group(1) is None:
            raise ValueError(f"bad echoed segment {inner[:40]!r} (want start:end(len))")
        start = _int(m.group(1), "echoed start", _U32)
        end = _int(m.group(2), "echoed end", _U32)
        length = _int(m.group(3), "echoed length", MAX_PAYLOAD)
        echoed = (start, end, length)
    words = body.split()
    if not words:
        raise ValueError("an ICMP packet needs a type")
    icmp_type, words = words[0], words[1:]
    code: str | None = None
    mtu: int | None = None
    if words and words[0] not in ("mtu", "id"):
        code, words = words[0], words[1:]
    while words:
        if len(words) < 2 or words[0] not in ("mtu", "id"):
            raise ValueError(f"unexpected {' '.join(words)[:40]!r} in an ICMP packet")
        if words[0] == "mtu":
            mtu = _int(words[1], "ICMP mtu", 0xFFFF)
        else:
            _int(words[1], "ICMP echo id", 0xFFFF)
        words = words[2:]
    return IcmpSpec(direction, icmp_type, code, mtu, echoed, tuple(annotations))


def parse_packet(direction: str, rest: str) -> PacketSpec | IcmpSpec:
    """``[annotations] FLAGS seq(len) [ack N] [win N] [<options>]``, or an ICMP packet."""
    annotations, s = _annotations(rest.strip())
    if s.startswith("icmp ") or s == "icmp":
        return parse_icmp(direction, annotations, s[4:])
    if s.startswith("udp ") or s.startswith("udp("):
        raise ValueError("UDP packets are not supported")
    udp = re.search(r"/udp\(([^)]*)\)", s)
    if udp is not None:
        annotations.append("udp " + udp.group(1).strip())
        s = (s[:udp.start()] + s[udp.end():]).strip()
    opts: tuple[OptionSpec, ...] | None = None
    opts_any = False
    lt = s.find("<")
    if lt >= 0:
        gt = s.rfind(">")
        if gt < lt:
            raise ValueError("unclosed TCP option list")
        if s[gt + 1:].strip():
            raise ValueError(f"text after the option list: {s[gt + 1:].strip()[:40]!r}")
        opts, opts_any = parse_options(s[lt + 1:gt])
        s = s[:lt].strip()
    words = s.split()
    if len(words) < 2:
        raise ValueError("a packet needs flags and sequence numbers")
    if words[1].endswith("!"):
        words[1] = words[1][:-1]
        words[0] += "!"
    flag_text = words[0]
    absolute = flag_text.endswith("!")
    if absolute:
        flag_text = flag_text[:-1]
    flags = 0
    if flag_text == "-":            # packetdrill: a segment with no flags at all
        flag_text = ""
    for ch in flag_text:
        if ch not in _FLAG_BITS:
            raise ValueError(f"unknown TCP flag {ch!r}")
        flags |= _FLAG_BITS[ch]
    m = _SEQ_RE.match(words[1])
    if m is None:
        raise ValueError(f"bad sequence numbers {words[1][:40]!r} (want start:end(len))")
    length = int(m.group(3))
    if length > MAX_PAYLOAD:
        raise ValueError(f"TCP payload length {length} out of range (at most {MAX_PAYLOAD})")
    start: int | None = None
    end: int | None = None
    if m.group(1) is not None:
        start = _int(m.group(1), "TCP start sequence number", _U32)
        end = _int(m.group(2), "TCP end sequence number", _U32)
        if (end - start) & _U32 != length:
            raise ValueError(f"{words[1]}: end - start != length")
    ack = window = None
    i = 2
    while i < len(words):
        key = words[i]
        if i + 1 >= len(words):
            raise ValueError(f"{key[:20]!r} needs a value")
        if key == "ack":
            ack = _int(words[i + 1], "ack", _U32)
        elif key == "win":
            window = _int(words[i + 1], "win", 0xFFFF)
        elif key == "urg":
            _int(words[i + 1], "urg", 0xFFFF)
        else:
            raise ValueError(f"unexpected {key[:20]!r} in a packet")
        i += 2
    if opts_any and direction == "<":
        raise ValueError("<...> (options unchecked) is only for outbound packets")
    return PacketSpec(direction, flags, flag_text, start, end, length, ack, window, opts,
                      opts_any, absolute, tuple(annotations))


# ------------------------------------------------------------------ system calls

_TOKEN_RE = re.compile(r"""\s*(?:(?P<ell>\.\.\.)|(?P<num>-?0[xX][0-9a-fA-F]+|-?[0-9]+)
    |(?P<id>[A-Za-z_][A-Za-z0-9_.]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<p>[\[\]{}(),|=]))""",
                       re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, int]]:
    """Tokens of a system call, each with the offset just past it."""
    toks: list[tuple[str, int]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"unexpected text {text[pos:pos + 20].strip()!r}")
        toks.append((m.group(m.lastgroup or "p"), m.end()))
        pos = m.end()
    return toks


_CLOSE = {"(": ")", "[": "]", "{": "}"}


class _ArgParser:
    """Recursive descent over system call arguments, at most ``MAX_NESTING`` deep."""

    def __init__(self, toks: list[tuple[str, int]]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.toks[j][0] if j < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise ValueError(f"expected {want or 'a value'}, got {tok or 'end of line'}")
        self.i += 1
        return tok

    def _enter(self, opener: str) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ValueError(f"brackets nested deeper than {MAX_NESTING}")

    def value(self) -> object:
        parts = [self.atom()]
        while self.peek() == "|":
            self.take("|")
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else BitOr(tuple(parts))

    def items(self, opener: str) -> list[object]:
        """Comma-separated values up to the bracket that closes ``opener``."""
        self._enter(opener)
        close = _CLOSE[opener]
        out: list[object] = []
        while self.peek() != close:
            out.append(self.value())
            if self.peek() == ",":
                self.take(",")
            elif self.peek() != close:
                raise ValueError(f"expected ',' or {close!r}, got {self.peek() or 'end of line'}")
        self.take(close)
        self.depth -= 1
        return out

    def atom(self) -> object:
        tok = self.take()
        if tok == "...":
            return ELLIPSIS
        if tok == "[":
            return ListArg(tuple(self.items("[")))
        if tok == "{":
            return self.struct()
        if tok[0] == '"':
            text = tok[1:-1]
            while self.peek() is not None and str(self.peek())[:1] == '"':
                text += self.take()[1:-1]          # "a" "b": concatenation
            if self.peek() == "...":
                self.take("...")                   # "prefix"...: the rest unchecked
            return text
        if tok[0].isdigit() or tok[0] == "-":
            return int(tok, 0)
        if tok[0].isalpha() or tok[0] == "_":
            if self.peek() == "(":
                self.take("(")
                return CallArg(tok, tuple(self.items("(")))
            return Ident(tok)
        raise ValueError(f"unexpected {tok!r}")

    def struct(self) -> StructArg:
        """``{name=value, name(...)=value, value, ...}`` (after the ``{``)."""
        self._enter("{")
        fields: list[tuple[str | None, object]] = []
        while self.peek() != "}":
            name: str | None = None
            nxt = self.peek(1)
            tok = self.peek() or ""
            if nxt == "=" and tok[:1].isalpha():
                name = self.take()
                self.take("=")
            elif nxt == "(" and tok[:1].isalpha() and self._named_call():
                # ``msg_name(...)=...``, ``msg_iov(1)=[...]``: a field with a count.
                name = self.take()
                self.take("(")
                self.items("(")
                self.take("=")
            fields.append((name, self.value()))
            if self.peek() == ",":
                self.take(",")
            elif self.peek() != "}":
                raise ValueError(f"expected ',' or '}}', got {self.peek() or 'end of line'}")
        self.take("}")
        self.depth -= 1
        return StructArg(tuple(fields))

    def _named_call(self) -> bool:
        """Is the ``name(`` ahead a field ``name(...)=`` rather than a call value?"""
        depth = 0
        for j in range(self.i + 1, len(self.toks)):
            t = self.toks[j][0]
            if t in ("(", "[", "{"):
                depth += 1
            elif t in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return j + 1 < len(self.toks) and self.toks[j + 1][0] == "="
        return False


_NAME_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*\(")


def parse_syscall(text: str) -> SyscallSpec:
    """``name(args) = result [ERRNO] [(note)]``."""
    m = _NAME_RE.match(text)
    if m is None:
        raise ValueError(f"not a system call: {text.strip()[:40]!r}")
    name = m.group(1)
    toks = _tokens(text[m.end():])
    p = _ArgParser(toks)
    try:
        args = p.items("(")
    except RecursionError:
        raise ValueError(f"brackets nested deeper than {MAX_NESTING}") from None
    after = m.end() + (toks[p.i - 1][1] if p.i else 0)
    restext = text[after:].strip()
    if not restext.startswith("="):
        raise ValueError(f"expected '= result' after {name}(...)")
    restext = restext[1:].strip()
    note = None
    paren = restext.find("(")
    if paren >= 0:
        note = restext[paren + 1:].rstrip().rstrip(")").strip()
        restext = restext[:paren].strip()
    words = restext.split()
    if not words:
        raise ValueError("missing result after '='")
    result: object
    if words[0] == "...":
        result = ELLIPSIS
    else:
        result = _int(words[0], "the result")
    errno = words[1] if len(words) > 1 else None
    if len(words) > 2:
        raise ValueError(f"unexpected {' '.join(words[2:])[:40]!r} after the result")
    return SyscallSpec(name, tuple(args), result, errno, note)


# ------------------------------------------------------------------ lines


def parse_time(text: str) -> tuple[TimeSpec | None, str]:
    m = _TIME_RE.match(text)
    if m is None:
        return None, text
    rest = text[m.end():]
    if m.group("any"):
        return TimeSpec("any"), rest
    start = _time(m.group("start"))
    srel = m.group("s_rel") is not None
    if m.group("bend") is not None:
        return TimeSpec("relative" if srel else "absolute", start,
                        block_end=_time(m.group("bend")),
                        block_end_relative=m.group("b_rel") is not None), rest
    if m.group("end") is not None:
        end = _time(m.group("end"))
        return TimeSpec("range", start, end, srel, m.group("e_rel") is not None), rest
    return TimeSpec("relative" if srel else "absolute", start), rest


def _time(text: str) -> float:
    if len(text) > 20:
        raise ValueError(f"time too long: {text[:20]}...")
    value = float(text)
    if value > MAX_TIME:
        raise ValueError(f"time {text} beyond {MAX_TIME:.0f} s")
    return value


def parse_event(text: str, line: int) -> Event:
    time, rest = parse_time(text)
    if time is None:
        if not rest.strip().startswith(("`", "%{")):
            raise ValueError("expected a time (0.1, +0.1, *, a~b) at the start of the line")
        time = TimeSpec("relative", 0.0)  # a command without a time runs right after
    body = rest.strip()
    action: Action
    if body.startswith("`"):
        end = body.rfind("`")
        if end <= 0:
            raise ValueError("unclosed backquote")
        action = ShellSpec(body[1:end].strip())
    elif body.startswith("%{"):
        end = body.rfind("}%")
        if end < 0:
            raise ValueError("unclosed %{ ... }%")
        action = CodeSpec(body[2:end].strip())
    elif body[:1] in ("<", ">"):
        action = parse_packet(body[0], body[1:])
    elif body.startswith("..."):
        raise ValueError("'...' needs an end time ('+0...0.2 call()')")
    else:
        action = parse_syscall(body)
    return Event(line, time, action, " ".join(text.split()) if "\n" in text else text.strip())


def _depth(s: str) -> int:
    """Open brackets ( [ { minus closed ones, outside strings."""
    depth = 0
    quote = False
    for ch in s:
        if ch == '"':
            quote = not quote
        elif quote:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


def _open_kind(s: str) -> str:
    """What keeps this line open: a code block, a backquote, a bracket, or nothing."""
    at = s.find("%{")
    if at >= 0 and "}%" not in s[at:]:
        return "code"
    if s.count("`") % 2 == 1:
        return "shell"
    if s.count("(") == s.count(")") and s.count("[") == s.count("]") and \
            s.count("{") == s.count("}"):
        return ""
    body = parse_time(s)[1].strip()
    if body[:1] not in ("<", ">", "`", "%") and _depth(body) > 0:
        return "brackets"
    return ""


def _closed(kind: str, joined: str) -> bool:
    if kind == "code":
        return "}%" in joined[joined.find("%{"):]
    if kind == "shell":
        return joined.count("`") % 2 == 0
    return _depth(joined) <= 0


def logical_lines(lines: list[str], path: str) -> list[tuple[int, str]]:
    """Join events that continue over several lines; (first line number, text).

    Shell commands and code keep their line breaks; system call arguments are
    joined with spaces.
    """
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    kind = ""
    first = 0
    size = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if pending:
            pending.append(s)
            size += len(s) + 1
            if size > MAX_EVENT_CHARS or len(pending) > MAX_EVENT_LINES:
                raise ScriptError(f"an event longer than {MAX_EVENT_CHARS} characters or "
                                  f"{MAX_EVENT_LINES} lines (unclosed {_WHAT[kind]}?)",
                                  path, first)
            joined = ("\n" if kind != "brackets" else " ").join(pending)
            if _closed(kind, joined):
                out.append((first, joined))
                pending = []
            continue
        if not s:
            continue
        if len(s) > MAX_EVENT_CHARS:
            raise ScriptError(f"a line longer than {MAX_EVENT_CHARS} characters", path, n)
        kind = _open_kind(s)
        if kind:
            pending, first, size = [s], n, len(s)
            continue
        out.append((n, s))
    if pending:
        raise ScriptError(f"unclosed {_WHAT[kind]}", path, first)
    return out


_WHAT = {"code": "%{ ... }%", "shell": "backquote", "brackets": "bracket"}


def parse_script(text: str, path: str = "<script>",
                 defines: Mapping[str, str] | None = None) -> Script:
    """Parse a whole script; ``defines`` select ``#ifdef`` branches."""
    if len(text) > MAX_SCRIPT_CHARS:
        raise ScriptError(f"script longer than {MAX_SCRIPT_CHARS} characters", path)
    defs = dict(defines or {})
    lines = preprocess(strip_comments(text), defs, path)
    options: dict[str, str] = {}
    events: list[Event] = []
    for n, s in logical_lines(lines, path):
        if s.startswith("--"):
            if events:
                raise ScriptError("option lines must come before the events", path, n)
            name, _sep, value = s[2:].partition("=")
            options[name.strip()] = value.strip()
            continue
        if len(events) >= MAX_EVENTS:
            raise ScriptError(f"more than {MAX_EVENTS} events", path, n)
        try:
            events.append(parse_event(s, n))
        except (ValueError, RecursionError) as exc:
            msg = str(exc) if isinstance(exc, ValueError) else \
                f"brackets nested deeper than {MAX_NESTING}"
            raise ScriptError(msg, path, n) from None
    return Script(path, options, tuple(events), defs)


def load_script(path: str | Path, defines: Mapping[str, str] | None = None) -> Script:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_SCRIPT_CHARS * 4 + 1)
    except OSError as exc:
        raise ScriptError(f"cannot read: {exc.strerror}", str(p)) from None
    text = data.decode("utf-8", errors="replace")
    return parse_script(text, str(p), defines)
