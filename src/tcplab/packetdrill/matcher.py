"""Compare a segment the engine sent with the packet line a script expects.

packetdrill's rules: flags exactly; the local side's sequence numbers
relative to our ISN (learned from the first SYN we send on a 4-tuple), the
remote side's literally, ``S!``/``seq!`` absolute; the payload length; the
window when the line gives one; options exactly unless ``<...>``.  The
``portable`` profile adapts three FreeBSD policies and says so in the
returned notes; it never accepts what an RFC forbids:

* SYN options: which optional extensions (window scale, SACK-permitted,
  timestamps) a SYN offers, and their order, are the stack's choice.  The MSS
  must still match, and a SYN-ACK may carry only options the SYN offered
  (RFC 7323 2.2/3.2, RFC 2018 2).
* Later options: timestamps and SACK blocks are expected only when the
  engine negotiated them (it offers neither); padding (``nop``, ``eol``) is
  layout.
* Windows: FreeBSD's receive buffer (65536 rounded up to a multiple of the
  MSS, so 65700) differs from the engine's.  The expected window is turned
  into "octets held" against FreeBSD's buffer and compared as the window the
  engine must offer holding the same octets in its own buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.packetdrill.script import OptionSpec, PacketSpec
from tcplab.wire.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Eol,
    FastOpen,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    TcpSegment,
    Timestamps,
    WindowScale,
    flags_str,
)

MASK = 0xFFFFFFFF
_PAD = ("nop", "eol")
_EXTENSIONS = ("wscale", "sackOK", "TS")


def option_spec(opt: TcpOption) -> OptionSpec:
    """A wire option in the script's notation."""
    if isinstance(opt, Mss):
        return OptionSpec("mss", (opt.value,))
    if isinstance(opt, WindowScale):
        return OptionSpec("wscale", (opt.shift,))
    if isinstance(opt, SackPermitted):
        return OptionSpec("sackOK")
    if isinstance(opt, Sack):
        return OptionSpec("sack", tuple(e for b in opt.blocks for e in b))
    if isinstance(opt, Timestamps):
        return OptionSpec("TS", (opt.tsval, opt.tsecr))
    if isinstance(opt, FastOpen):
        name = "FOEXP" if opt.exp else "FO"
        return OptionSpec(f"{name} {opt.cookie.hex()}" if opt.cookie else name)
    if isinstance(opt, Nop):
        return OptionSpec("nop")
    if isinstance(opt, Eol):
        return OptionSpec("eol")
    return OptionSpec(f"opt-{opt.kind}")


def wire_option(spec: OptionSpec, isn: int) -> TcpOption:
    """A script option as a wire option (SACK blocks name our sequence space)."""
    v = spec.values
    if spec.name == "mss":
        return Mss(v[0])
    if spec.name == "wscale":
        return WindowScale(v[0])
    if spec.name == "sackOK":
        return SackPermitted()
    if spec.name == "sack":
        return Sack(tuple(((a + isn) & MASK, (b + isn) & MASK)
                          for a, b in zip(v[0::2], v[1::2], strict=True)))
    if spec.name == "TS":
        return Timestamps(v[0], v[1])
    if spec.name == "nop":
        return Nop()
    if spec.name == "eol":
        return Eol()
    words = spec.name.split()
    if words[0] in ("FO", "FOEXP") and len(words) <= 2:
        text = words[1] if len(words) == 2 else ""
        if len(text) % 2:
            text = "0" + text        # packetdrill reads an odd hex string from the left
        try:
            cookie = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"Fast Open cookie {text[:40]!r} is not hex (an undefined name?)"
                             ) from None
        return FastOpen(cookie, exp=words[0] == "FOEXP")
    raise ValueError(f"option {spec.name!r} cannot be sent")


def packet_text(seg: TcpSegment, isn: int, risn: int = 0) -> str:
    """The segment in script notation, sequence numbers relative to our ISN (and, for a
    segment without SYN, acknowledgments relative to the peer's ISN ``risn``)."""
    flags = flags_str(seg.flags).replace("A", ".")
    if flags.startswith("."):
        flags = flags or "."
    start = (seg.seq - isn) & MASK
    text = f"{flags or '.'} {start}:{(start + len(seg.payload)) & MASK}({len(seg.payload)})"
    roff = 0 if seg.flags & SYN else risn
    if seg.flags & ACK:
        text += f" ack {(seg.ack - roff) & MASK}"
    text += f" win {seg.window}"
    if seg.options:
        opts = [option_spec(o) for o in seg.options]
        if roff:
            opts = [OptionSpec("sack", tuple((v - roff) & MASK for v in o.values))
                    if o.name == "sack" else o for o in opts]
        text += " <" + ",".join(o.text() for o in opts) + ">"
    return text


@dataclass(slots=True)
class Context:
    """What the matcher knows about the connection the segment belongs to."""

    isn: int                       #: our ISN on this 4-tuple (0 when unknown)
    adapt: bool                    #: the portable profile
    peer_syn_options: frozenset[str]   #: option names in the peer's SYN, if seen
    engine_offered: frozenset[str]     #: option names in the engine's own SYN
    fb_shift: int                  #: FreeBSD's window shift on this connection
    eng_shift: int                 #: the engine's window shift (RCV.Wind.Shift)
    fb_rcvbuf: int                 #: FreeBSD's receive buffer (from SO_RCVBUF lines)
    eng_rcvbuf: int                #: the engine's receive buffer
    psh_policy: bool = False       #: linux: where PSH goes is the sender's choice
    wscale_policy: bool = False    #: linux: the window-scale shift is the receiver's choice
    missing: frozenset[str] = frozenset()  #: linux-explore: option names the engine lacks
    risn: int = 0                  #: linux: the peer's ISN (its numbers count from it)


def _strip_pad(opts: list[OptionSpec]) -> list[OptionSpec]:
    return [o for o in opts if o.name not in _PAD]


def _same(a: OptionSpec, b: OptionSpec) -> bool:
    if a.name != b.name:
        return False
    if a.name == "TS":
        return True  # packetdrill does not check our TS val; ecr is mapped, not literal
    return a.values == b.values


def _check_options(spec: PacketSpec, seg: TcpSegment, ctx: Context,
                   notes: list[str]) -> str | None:
    if spec.options_any:
        return None
    want = list(spec.options or ())
    have = [option_spec(o) for o in seg.options]
    roff = 0 if seg.flags & SYN else ctx.risn
    if roff:
        # SACK blocks name the peer's sequence space, relative to its ISN (packetdrill).
        have = [OptionSpec("sack", tuple((v - roff) & MASK for v in o.values))
                if o.name == "sack" else o for o in have]
    if not ctx.adapt:
        w = list(want)
        h = list(have)
        if ctx.missing and any(o.name.split()[0] in ctx.missing for o in w):
            # linux-explore: drop what the engine cannot send, and the padding
            # whose layout followed it.
            dropped = sorted({o.name.split()[0] for o in w if o.name.split()[0] in ctx.missing})
            notes.append("explore: expected " + ", ".join(dropped) + " dropped (the engine "
                         "lacks them)")
            w = [o for o in w if o.name.split()[0] not in ctx.missing and o.name not in _PAD]
            h = [o for o in h if o.name not in _PAD]
        while w and w[-1].name == "eol":
            w.pop()
        while h and h[-1].name == "eol":
            h.pop()
        if len(w) != len(h):
            return "options differ"
        for a, b in zip(w, h, strict=True):
            if _same(a, b):
                continue
            if ctx.wscale_policy and a.name == b.name == "wscale" and seg.flags & SYN:
                # RFC 7323 2.3: the shift is the receiver's choice.  Linux takes it
                # from its largest buffer (tcp_rmem[2]), the engine from its buffer;
                # TcpConfig has no field for Linux's rule yet.
                notes.append(f"window scale {b.values[0]} where Linux chooses {a.values[0]} "
                             "(Linux derives the shift from tcp_rmem[2], the engine from its "
                             "buffer; RFC 7323 2.3 leaves it to the receiver)")
                continue
            return "options differ"
        return None
    w = _strip_pad(want)
    h = _strip_pad(have)
    if seg.flags & SYN:
        # RFC 7323 2.2 / 3.2, RFC 2018 2: a SYN-ACK only echoes what the SYN offered.
        if seg.flags & ACK:
            for o in h:
                if o.name in _EXTENSIONS and o.name not in ctx.peer_syn_options:
                    return f"{o.name} in a SYN-ACK whose SYN did not offer it"
        wmss = [o for o in w if o.name == "mss"]
        hmss = [o for o in h if o.name == "mss"]
        if wmss and (not hmss or hmss[0].values != wmss[0].values):
            return "MSS option differs"
        if not wmss and hmss:
            return "MSS option not expected"
        missing = sorted({o.name for o in w if o.name in _EXTENSIONS} -
                         {o.name for o in h})
        extra = sorted({o.name for o in h if o.name in _EXTENSIONS} -
                       {o.name for o in w})
        if missing:
            notes.append("SYN options: the engine does not offer " + ", ".join(missing)
                         + " (optional extensions: FreeBSD policy)")
        if extra:
            notes.append("SYN options: the engine offers " + ", ".join(extra)
                         + " where FreeBSD does not")
        others_w = [o for o in w if o.name not in _EXTENSIONS and o.name != "mss"]
        others_h = [o for o in h if o.name not in _EXTENSIONS and o.name != "mss"]
        if len(others_w) != len(others_h):
            return "options differ"
        if [o.name for o in w] != [o.name for o in h] and not missing and not extra:
            notes.append("SYN options: order differs from FreeBSD's (policy)")
        return None
    dropped = []
    if "TS" not in ctx.engine_offered and any(o.name == "TS" for o in w):
        w = [o for o in w if o.name != "TS"]
        dropped.append("timestamps")
    if "sackOK" not in ctx.engine_offered and any(o.name == "sack" for o in w):
        w = [o for o in w if o.name != "sack"]
        dropped.append("SACK blocks")
    if dropped:
        notes.append(" and ".join(dropped) + " not expected: the engine did not negotiate them")
    if len(w) != len(h) or not all(_same(a, b) for a, b in zip(w, h, strict=True)):
        return "options differ"
    return None


def _check_window(spec: PacketSpec, seg: TcpSegment, ctx: Context,
                  notes: list[str]) -> str | None:
    if spec.window is None or seg.window == spec.window:
        return None
    if not ctx.adapt or seg.flags & RST:  # an RST's window is never adapted
        return "window differs"
    fb_shift = 0 if seg.flags & SYN else ctx.fb_shift
    eng_shift = 0 if seg.flags & SYN else ctx.eng_shift
    fb_bytes = spec.window << fb_shift
    fb_cap = 0xFFFF << fb_shift
    # Octets FreeBSD holds: exact below its 16-bit cap, a range at the cap.
    if fb_bytes >= min(ctx.fb_rcvbuf, fb_cap):
        held_lo, held_hi = 0, max(ctx.fb_rcvbuf - fb_cap, 0)
    else:
        held_lo = held_hi = ctx.fb_rcvbuf - fb_bytes
    eng_cap = 0xFFFF << eng_shift
    hi = min(max(ctx.eng_rcvbuf - held_lo, 0), eng_cap) >> eng_shift
    lo = min(max(ctx.eng_rcvbuf - held_hi, 0), eng_cap) >> eng_shift
    if lo <= seg.window <= hi:
        notes.append("windows follow the receive buffer (FreeBSD policy): the engine's window "
                     "was checked for the same octets held in its own buffer")
        return None
    want = str(lo) if lo == hi else f"{lo}..{hi}"
    return f"window differs (portable expects {want})"


def match(spec: PacketSpec, seg: TcpSegment, ctx: Context, notes: list[str]) -> str | None:
    """None when ``seg`` matches ``spec``; else what differs."""
    isn = 0 if spec.absolute else ctx.isn
    flags = spec.flags
    seq_start = spec.seq_start
    if ctx.adapt and flags == FIN | ACK and seg.flags == ACK and seq_start is not None \
            and seg.seq == (seq_start + isn + 1) & MASK and not seg.payload:
        # FreeBSD resends its unacknowledged FIN along with the ACK (tcp_output);
        # RFC 9293 3.10.7.4 answers with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
        notes.append("FreeBSD resends its FIN with an ACK; the engine sends the RFC 9293 ACK "
                     "<SEQ=SND.NXT><CTL=ACK>")
        flags, seq_start = ACK, seq_start + 1
    if ctx.adapt and flags == RST | ACK and seg.flags == RST:
        # A RST in a synchronized state is validated by its sequence number
        # alone (RFC 9293 3.10.7.4 second, RFC 5961 3.2): the ACK bit is a choice.
        notes.append("RST without the ACK bit where FreeBSD sets it (validated by SEQ alone)")
        flags = RST
    seg_flags = seg.flags
    if ctx.psh_policy and (seg_flags ^ flags) == PSH:
        # RFC 9293 3.9.1.2: the sender decides where PSH goes, and must set it
        # at least when its queue empties.  Linux sets it at the end of each
        # write() (on its skb boundaries); the engine when its send queue empties.
        notes.append("PSH where Linux " + ("sets none" if seg_flags & PSH else "sets it") +
                     " (Linux pushes at the end of each write, the engine when its send "
                     "queue empties; RFC 9293 3.9.1.2 leaves it to the sender)")
        seg_flags = flags
    if seg_flags != flags:
        return "flags differ"
    if seq_start is not None and seg.seq != (seq_start + isn) & MASK:
        return "sequence number differs"
    if len(seg.payload) != spec.length:
        return "length differs"
    roff = 0 if flags & SYN or spec.absolute else ctx.risn
    if flags & ACK and spec.ack is not None and seg.ack != (spec.ack + roff) & MASK:
        return "acknowledgment number differs"
    why = _check_window(spec, seg, ctx, notes)
    if why is not None:
        return why
    return _check_options(spec, seg, ctx, notes)
