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

The parser produces immutable dataclasses (:class:`Script`, :class:`Event`
with a :class:`TimeSpec` and one of :class:`PacketSpec`, :class:`SyscallSpec`,
:class:`ShellSpec`, :class:`CodeSpec`).  Malformed input raises
:class:`ScriptError` with the file and line number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG


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


Action = PacketSpec | SyscallSpec | ShellSpec | CodeSpec


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


# ------------------------------------------------------------------ lexing helpers

_FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR,
              "C": CWR}
_NUM = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_TIME_RE = re.compile(
    rf"^\s*(?:(?P<any>\*)|(?P<s_rel>\+\s*)?(?P<start>{_NUM})"
    rf"(?:\s*~\s*(?P<e_rel>\+\s*)?(?P<end>{_NUM}))?"
    rf"(?:\.\.\.\s*(?P<b_rel>\+\s*)?(?P<bend>{_NUM}))?)(?=\s|$|[<>`%])")
_SEQ_RE = re.compile(r"^(?:(\d+):(\d+)|\.\.\.)\((\d+)\)$")


def _int(text: str, where: str) -> int:
    try:
        return int(text, 0)
    except ValueError as exc:
        raise ValueError(f"expected a number in {where}, got {text!r}") from exc


def strip_comments(text: str) -> list[str]:
    """Remove ``/* */`` and ``//`` comments (outside backquotes and strings)."""
    out: list[str] = []
    in_block = False
    for raw in text.splitlines():
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
                raise ScriptError(f"bad directive {s!r}", path, n)
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
    for part in [p.strip() for p in body.split(",")]:
        if not part:
            raise ValueError("empty TCP option")
        words = part.split()
        name = words[0]
        if name in ("nop", "eol", "sackOK") and len(words) == 1:
            opts.append(OptionSpec(name))
        elif name in ("mss", "wscale") and len(words) == 2:
            opts.append(OptionSpec(name, (_int(words[1], name),)))
        elif name == "sack":
            vals: list[int] = []
            for block in words[1:]:
                a, sep, b = block.partition(":")
                if not sep:
                    raise ValueError(f"bad SACK block {block!r}")
                vals += [_int(a, "sack"), _int(b, "sack")]
            opts.append(OptionSpec("sack", tuple(vals)))
        elif name == "TS" and len(words) == 5 and words[1] == "val" and words[3] == "ecr":
            opts.append(OptionSpec("TS", (_int(words[2], "TS val"), _int(words[4], "TS ecr"))))
        elif name in ("md5", "FO", "FOEXP", "mptcp"):
            opts.append(OptionSpec(name + (" " + " ".join(words[1:]) if words[1:] else "")))
        else:
            raise ValueError(f"unknown TCP option {part!r}")
    return tuple(opts), False


def parse_packet(direction: str, rest: str) -> PacketSpec:
    """``[annotations] FLAGS seq(len) [ack N] [win N] [<options>]``."""
    annotations: list[str] = []
    s = rest.strip()
    while s.startswith("[") or s.startswith("("):
        close = "]" if s[0] == "[" else ")"
        close_at = s.find(close)
        if close_at < 0:
            raise ValueError(f"unclosed {s[0]!r}")
        annotations.append(s[1:close_at].strip())
        s = s[close_at + 1:].strip()
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
            raise ValueError(f"text after the option list: {s[gt + 1:].strip()!r}")
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
    for ch in flag_text:
        if ch not in _FLAG_BITS:
            raise ValueError(f"unknown TCP flag {ch!r}")
        flags |= _FLAG_BITS[ch]
    m = _SEQ_RE.match(words[1])
    if m is None:
        raise ValueError(f"bad sequence numbers {words[1]!r} (want start:end(len))")
    length = int(m.group(3))
    start: int | None = None
    end: int | None = None
    if m.group(1) is not None:
        start, end = int(m.group(1)), int(m.group(2))
        if (end - start) & 0xFFFFFFFF != length:
            raise ValueError(f"{words[1]}: end - start != length")
    ack = window = None
    i = 2
    while i < len(words):
        key = words[i]
        if i + 1 >= len(words):
            raise ValueError(f"{key!r} needs a value")
        if key == "ack":
            ack = _int(words[i + 1], "ack")
        elif key == "win":
            window = _int(words[i + 1], "win")
        elif key == "urg":
            pass
        else:
            raise ValueError(f"unexpected {key!r} in a packet")
        i += 2
    return PacketSpec(direction, flags, flag_text, start, end, length, ack, window, opts,
                      opts_any, absolute, tuple(annotations))


# ------------------------------------------------------------------ system calls

_TOKEN_RE = re.compile(r"""\s*(?:(?P<ell>\.\.\.)|(?P<num>-?0[xX][0-9a-fA-F]+|-?[0-9]+)
    |(?P<id>[A-Za-z_][A-Za-z0-9_.]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<p>[\[\]{}(),|=]))""",
                       re.VERBOSE)


def _tokens(text: str) -> list[str]:
    toks: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"unexpected text {text[pos:pos + 20]!r}")
        toks.append(m.group(m.lastgroup or "p"))
        pos = m.end()
    return toks


class _ArgParser:
    def __init__(self, toks: list[str]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise ValueError(f"expected {want or 'a value'}, got {tok or 'end of line'}")
        self.i += 1
        return tok

    def value(self) -> object:
        parts = [self.atom()]
        while self.peek() == "|":
            self.take("|")
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else BitOr(tuple(parts))

    def atom(self) -> object:
        tok = self.take()
        if tok == "...":
            return ELLIPSIS
        if tok == "[":
            items: list[object] = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return ListArg(tuple(items))
        if tok == "{":
            fields: list[tuple[str | None, object]] = []
            while self.peek() != "}":
                name: str | None = None
                if self.i + 1 < len(self.toks) and self.toks[self.i + 1] == "=":
                    name = self.take()
                    self.take("=")
                fields.append((name, self.value()))
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
            return StructArg(tuple(fields))
        if tok[0] == '"':
            return tok[1:-1]
        if tok[0].isdigit() or tok[0] == "-":
            return int(tok, 0)
        if tok[0].isalpha() or tok[0] == "_":
            return Ident(tok)
        raise ValueError(f"unexpected {tok!r}")


_SYSCALL_RE = re.compile(r"^([a-z_][a-z0-9_]*)\s*\((.*)\)\s*=\s*(.*)$", re.DOTALL)


def parse_syscall(text: str) -> SyscallSpec:
    m = _SYSCALL_RE.match(text.strip())
    if m is None:
        raise ValueError(f"not a system call: {text.strip()!r}")
    name, argtext, restext = m.group(1), m.group(2), m.group(3).strip()
    # ``= value [ERRNO] [(note)]``; the argument list may itself hold ')'.
    p = _ArgParser(_tokens(argtext))
    args: list[object] = []
    while p.peek() is not None:
        args.append(p.value())
        if p.peek() == ",":
            p.take(",")
        elif p.peek() is not None:
            raise ValueError(f"expected ',' between arguments, got {p.peek()!r}")
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
        raise ValueError(f"unexpected {' '.join(words[2:])!r} after the result")
    return SyscallSpec(name, tuple(args), result, errno, note)


# ------------------------------------------------------------------ lines


def parse_time(text: str) -> tuple[TimeSpec | None, str]:
    m = _TIME_RE.match(text)
    if m is None:
        return None, text
    rest = text[m.end():]
    if m.group("any"):
        return TimeSpec("any"), rest
    start = float(m.group("start"))
    srel = m.group("s_rel") is not None
    if m.group("bend") is not None:
        return TimeSpec("relative" if srel else "absolute", start,
                        block_end=float(m.group("bend")),
                        block_end_relative=m.group("b_rel") is not None), rest
    if m.group("end") is not None:
        end = float(m.group("end"))
        return TimeSpec("range", start, end, srel, m.group("e_rel") is not None), rest
    return TimeSpec("relative" if srel else "absolute", start), rest


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
        raise ValueError("blocking-call durations ('...') are not supported")
    else:
        action = parse_syscall(body)
    return Event(line, time, action, text.strip())


def parse_script(text: str, path: str = "<script>",
                 defines: Mapping[str, str] | None = None) -> Script:
    """Parse a whole script; ``defines`` select ``#ifdef`` branches."""
    defs = dict(defines or {})
    lines = preprocess(strip_comments(text), defs, path)
    options: dict[str, str] = {}
    events: list[Event] = []
    pending: list[tuple[int, str]] = []   # a %{ ... }% block spanning lines
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if pending:
            pending.append((n, s))
            if "}%" in s or "`" in s:
                first = pending[0][0]
                joined = " ".join(t for _n, t in pending)
                pending = []
                try:
                    events.append(parse_event(joined, first))
                except ValueError as exc:
                    raise ScriptError(str(exc), path, first) from None
            continue
        if not s:
            continue
        if s.startswith("--"):
            if events:
                raise ScriptError("option lines must come before the events", path, n)
            name, _sep, value = s[2:].partition("=")
            options[name.strip()] = value.strip()
            continue
        if ("%{" in s and "}%" not in s) or s.count("`") == 1:
            pending = [(n, s)]
            continue
        try:
            events.append(parse_event(s, n))
        except ValueError as exc:
            raise ScriptError(str(exc), path, n) from None
    if pending:
        raise ScriptError("unclosed %{ ... }%", path, pending[0][0])
    return Script(path, options, tuple(events), defs)


def load_script(path: str | Path, defines: Mapping[str, str] | None = None) -> Script:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ScriptError(f"cannot read: {exc.strerror}", str(p)) from None
    return parse_script(text, str(p), defines)
