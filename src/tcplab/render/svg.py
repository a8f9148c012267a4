"""SVG pictures of a trace: the sequence diagram and the RFC 9293 state diagram.

``sequence_svg(events)`` draws the figure of every TCP textbook: one vertical
lifeline per host, time flowing down, one slanted arrow per segment from its
send time to its arrival time (``t_arrive``; a small fixed slant when the
trace has none), labelled with flags, seq, ack and len.  A lost segment
(``fate == "dropped"``) ends in a cross half way; a corrupted one ends in a
cross at the receiver.  Each side's state is written beside its lifeline
where it changes, and timers are brackets beside the lifeline from armed to
fired or cancelled (see :func:`sequence_svg` for which ones).

Time is proportional to the trace's time, with two departures that keep the
figure readable (see :class:`tcplab.render.model.TimeAxis`): every segment
gets a row of its own, and an idle stretch taller than a few rows (an RTO
back-off, 2MSL) is compressed to a fixed height and labelled with its length.

``state_diagram_svg`` lives in :mod:`tcplab.render.statediagram` and is
re-exported here.

The output is plain SVG 1.1 with an inline ``<style>``; no scripts, no fonts
or images fetched.  Every segment's group carries ``data-i`` (its index in
:func:`tcplab.render.model.ordered` events) so that the HTML report can
highlight the current step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from tcplab.render.model import (
    Event,
    Lifelines,
    SeqNumbers,
    TimeAxis,
    fmt_duration,
    ordered,
    segment_kind,
    segment_label,
)
from tcplab.render.statediagram import state_diagram_svg
from tcplab.render.theme import FONT, MONO, host_colour, palette

__all__ = ["sequence_svg", "state_diagram_svg"]

_TOP = 96.0          # y of the first event (below the host boxes)
_LEFT = 236.0        # x of the first lifeline
_SPACING = 470.0     # between lifelines (two hosts)
_SPACING_MANY = 380.0
_RIGHT = 210.0
_SLANT = 16.0        # arrow drop when the trace has no arrival time
_TIMER_NAMES = {"retransmit": "RTO", "time-wait": "2MSL", "fin-wait-2": "FIN-WAIT-2 timer",
                "persist": "persist", "syn-ack": "SYN-ACK RTO", "delayed-ack": "delayed ACK",
                "keepalive": "keep-alive"}
_TIMER_SLOT = {"retransmit": 0, "syn-ack": 0, "time-wait": 1, "fin-wait-2": 2, "persist": 3,
               "keepalive": 3, "delayed-ack": 4}
_ALWAYS_TIMERS = frozenset({"time-wait", "fin-wait-2", "persist", "keepalive"})
_KINDS = ("syn", "fin", "rst", "data", "ack")


@dataclass
class _Timer:
    host: str
    name: str
    t0: float
    t1: float | None
    end: str  # fired | cancelled | rearmed | open


def _style(pal: dict[str, str]) -> str:
    kinds = "".join(
        f".sq-k-{k} line,.sq-k-{k} path{{stroke:{pal[k]}}}.sq-k-{k} text{{fill:{pal[k]}}}"
        for k in _KINDS)
    return (
        f"<style>"
        f".sq text{{font-family:{FONT};font-size:12px;fill:{pal['fg']}}}"
        f".sq .lbl{{font-size:11.5px}}"
        f".sq .mono{{font-family:{MONO};font-size:10.5px;fill:{pal['muted']}}}"
        f".sq .seg line{{stroke-width:1.6}}"
        f".sq .lost line{{stroke-dasharray:5 3}}"
        f".sq .cross{{stroke:{pal['lost']};stroke-width:2.4}}"
        f".sq .life{{stroke:{pal['line']};stroke-width:1.4}}"
        f".sq .life-gap{{stroke:{pal['line']};stroke-width:1.4;stroke-dasharray:2 4}}"
        f".sq .st rect{{fill:{pal['state_bg']};stroke:{pal['state_stroke']}}}"
        f".sq .st text{{fill:{pal['state_fg']};font-weight:bold;font-size:11px}}"
        f".sq .tm path{{fill:none;stroke:{pal['timer']};stroke-width:1.5}}"
        f".sq .tm text{{fill:{pal['timer']};font-size:9.5px}}"
        f".sq .tm-time-wait path{{stroke:{pal['tw']};stroke-width:2.2}}"
        f".sq .tm-time-wait text{{fill:{pal['tw']}}}"
        f".sq .open path{{stroke-dasharray:4 3}}"
        f".sq .gap rect{{fill:{pal['panel']}}}"
        f".sq .gap text{{fill:{pal['muted']};font-style:italic}}"
        f".sq .drop text{{fill:{pal['lost']};font-size:10px}}"
        f".sq .current line{{stroke-width:3.2}}.sq .current text{{font-weight:bold}}"
        f"{kinds}"
        f"</style>")


def _markers(pal: dict[str, str]) -> str:
    out = ["<defs>"]
    for k in _KINDS:
        out.append(
            f'<marker id="sq-ah-{k}" viewBox="0 0 10 10" refX="9.5" refY="5" '
            f'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{pal[k]}" stroke="none"/></marker>')
    out.append("</defs>")
    return "".join(out)


def sequence_svg(events: list[dict[str, Any]], *, theme: str = "light",
                 title: str | None = None, relative: bool = False,
                 all_timers: bool = False) -> str:
    """The sequence diagram of ``events`` as an SVG document (a string).

    ``relative`` writes sequence and acknowledgement numbers relative to each
    side's ISN (the first SYN's seq, as Wireshark does); absolute by default.
    Timers: TIME-WAIT (2MSL), FIN-WAIT-2, persist and keep-alive are always
    drawn; a retransmission timer only when it fires (an RTO that an ACK
    cancels is the normal case and would bracket every segment), unless
    ``all_timers``, which also draws the delayed-ACK timer.
    """
    pal = palette(theme)
    evs = ordered(events)
    lines = Lifelines.of(evs)
    numbers = SeqNumbers(evs, relative)
    nhosts = max(len(lines.hosts), 1)
    spacing = _SPACING if nhosts <= 2 else _SPACING_MANY
    xs = {h: _LEFT + i * spacing for i, h in enumerate(lines.hosts)}
    width = _LEFT + (nhosts - 1) * spacing + _RIGHT
    if nhosts == 1:
        width += spacing

    # ---- anchors: every time that needs a y, in drawing order
    # (t, rank, n, needs_row, ref): arrivals (rank 0) sort before what they cause.
    anchors: list[tuple[float, int, int, bool, tuple[str, int]]] = []
    for i, e in enumerate(evs):
        kind = e.get("kind")
        t = float(e.get("t", 0.0))
        if kind == "segment":
            ev = e.get("event")
            if ev in ("send", "recv") and "src" in e and "dst" in e:
                anchors.append((t, 1, len(anchors), True, ("s", i)))
                ta = e.get("t_arrive")
                if isinstance(ta, (int, float)) and ta > t:
                    anchors.append((float(ta), 0, len(anchors), False, ("a", i)))
            elif ev == "drop":
                anchors.append((t, 1, len(anchors), False, ("d", i)))
        elif kind in ("state", "timer"):
            anchors.append((t, 1, len(anchors), False, ("x", i)))
    anchors.sort(key=lambda a: (a[0], a[1], a[2]))
    axis = TimeAxis(_TOP)
    ys = axis.layout([(a[0], a[3]) for a in anchors])
    ypos: dict[tuple[str, int], float] = {a[4]: y for a, y in zip(anchors, ys, strict=True)}
    bottom = axis.bottom + 40.0
    fine = any(0 < b[0] - a[0] < 1e-3 for a, b in itertools.pairwise(anchors))
    tfmt = "{:.6f}" if fine else "{:.3f}"

    out: list[str] = []
    # ---- lifelines, broken by compressed gaps
    for h, x in xs.items():
        y = _TOP - 14.0
        for gap in axis.gaps:
            out.append(f'<line class="life" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" '
                       f'y2="{gap.y0:.1f}"/>')
            out.append(f'<line class="life-gap" x1="{x:.1f}" y1="{gap.y0:.1f}" x2="{x:.1f}" '
                       f'y2="{gap.y1:.1f}"/>')
            y = gap.y1
        out.append(f'<line class="life" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" '
                   f'y2="{bottom:.1f}"/>')
        del h
    for gap in axis.gaps:
        mid = (gap.y0 + gap.y1) / 2
        out.append(f'<g class="gap"><rect x="{_LEFT - 60:.1f}" y="{gap.y0 + 8:.1f}" '
                   f'width="{(nhosts - 1) * spacing + 120:.1f}" height="{gap.y1 - gap.y0 - 16:.1f}"'
                   f' rx="6" opacity="0.8"/>'
                   f'<text x="{_LEFT + (nhosts - 1) * spacing / 2:.1f}" y="{mid + 4:.1f}" '
                   f'text-anchor="middle">⋯ {escape(fmt_duration(gap.seconds))} '
                   f'later (gap compressed) ⋯</text></g>')

    # ---- timers (under the arrows)
    side = {h: (-1.0 if i == 0 and nhosts > 1 else 1.0) for i, h in enumerate(lines.hosts)}
    for tm in _timers(evs, all_timers):
        lx = xs.get(tm.host)
        if lx is None:
            continue
        s = side[tm.host]
        bx = lx + s * (9.0 + 7.0 * _TIMER_SLOT.get(tm.name, 4))
        y0 = axis.y_at(tm.t0)
        y1 = axis.y_at(tm.t1) if tm.t1 is not None else bottom - 10.0
        if y1 - y0 < 6:
            y1 = y0 + 6
        tick = -s * 4.0
        cls = f"tm tm-{escape(tm.name)}" + (" open" if tm.end == "open" else "")
        name = _TIMER_NAMES.get(tm.name, tm.name)
        end_word = {"fired": " fired", "cancelled": "", "rearmed": "", "open": " (running)"}
        if tm.name == "time-wait" and tm.end == "fired":
            end_word["fired"] = " expired"
        mid = (y0 + y1) / 2
        tx = bx + s * 5.0
        text = name + end_word[tm.end]
        out.append(
            f'<g class="{cls}"><path d="M{bx + tick:.1f},{y0:.1f} H{bx:.1f} V{y1:.1f} '
            f'H{bx + tick:.1f}"/><text x="{tx:.1f}" y="{mid:.1f}" text-anchor="middle" '
            f'dominant-baseline="{"auto" if s < 0 else "hanging"}" '
            f'transform="rotate(-90 {tx:.1f} {mid:.1f})">{escape(text)}</text>'
            + "</g>")

    # ---- segments
    last_time_y = -1e9
    for i, e in enumerate(evs):
        if e.get("kind") != "segment":
            continue
        ev = e.get("event")
        if ev == "drop" and ("d", i) in ypos:
            dh = e.get("host")
            if isinstance(dh, str) and dh in xs:
                x = xs[dh]
                y = ypos[("d", i)]
                s = side[dh]
                out.append(f'<g class="drop"><text x="{x + s * 46:.1f}" y="{y + 12:.1f}" '
                           f'text-anchor="{"end" if s < 0 else "start"}">✗ dropped: '
                           f'{escape(str(e.get("reason", "")))}</text></g>')
            continue
        if ("s", i) not in ypos:
            continue
        sender, receiver = e.get("host"), e.get("host")
        if ev == "send":
            receiver = lines.host_of(str(e["dst"]))
            if not isinstance(sender, str):
                sender = lines.host_of(str(e["src"]))
        else:  # "recv": from an endpoint outside the trace's hosts
            sender = lines.host_of(str(e["src"]))
        if not isinstance(sender, str) or not isinstance(receiver, str):
            continue
        src_host, dst_host = sender, receiver
        if src_host not in xs or dst_host not in xs:
            continue
        x1, x2 = xs[src_host], xs[dst_host]
        if x1 == x2:
            x2 = x1 + 60.0
        y1 = ypos[("s", i)]
        y2 = ypos.get(("a", i), y1 + _SLANT)
        if y2 - y1 < _SLANT and ("a", i) not in ypos:
            y2 = y1 + _SLANT
        fate = e.get("fate", "delivered")
        kind = segment_kind(str(e.get("flags", "")), int(e.get("len", 0)))
        label = segment_label(e, numbers)
        if fate == "duplicated":
            label += " (duplicated)"
        elif fate == "corrupted":
            label += " (corrupted)"
        if e.get("retrans"):
            label += " (retransmission)"
        lost = fate == "dropped"
        ex, ey = ((x1 + x2) / 2, (y1 + y2) / 2) if lost else (x2, y2)
        ang = math.degrees(math.atan2(y2 - y1, x2 - x1))
        if x2 < x1:
            ang -= 180.0
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        cls = f"seg sq-k-{kind}" + (" lost" if lost else "")
        parts = [f'<g class="{cls}" data-i="{i}"><title>{escape(_tooltip(e))}</title>'
                 f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{ex:.1f}" y2="{ey:.1f}"'
                 + ("" if lost else f' marker-end="url(#sq-ah-{kind})"') + "/>"
                 f'<text class="lbl" x="{mx:.1f}" y="{my - 5:.1f}" text-anchor="middle" '
                 f'transform="rotate({ang:.2f} {mx:.1f} {my:.1f})">{escape(label)}</text>']
        if lost or fate == "corrupted":
            parts.append(f'<path class="cross" d="M{ex - 6:.1f},{ey - 6:.1f} l12,12 '
                         f'm0,-12 l-12,12"/>')
        parts.append("</g>")
        out.append("".join(parts))
        if y1 - last_time_y >= 12:
            out.append(f'<text class="mono" x="10" y="{y1 + 4:.1f}">'
                       f'{tfmt.format(float(e["t"]))}</text>')
            last_time_y = y1

    # ---- states beside the lifelines
    last_state_y: dict[str, float] = {}
    for i, e in enumerate(evs):
        if e.get("kind") != "state" or ("x", i) not in ypos:
            continue
        sh = e.get("host")
        if not isinstance(sh, str) or sh not in xs:
            continue
        y = max(ypos[("x", i)], last_state_y.get(sh, -1e9) + 17.0)
        last_state_y[sh] = y
        to = str(e.get("to", "?"))
        w = 7.4 * len(to) + 12
        s = side[sh]
        rx = xs[sh] + s * 44.0 - (w if s < 0 else 0)
        out.append(f'<g class="st" data-i="{i}"><title>{escape(_state_tip(e))}</title>'
                   f'<rect x="{rx:.1f}" y="{y - 7:.1f}" width="{w:.1f}" height="15" rx="4"/>'
                   f'<text x="{rx + w / 2:.1f}" y="{y + 4.5:.1f}" text-anchor="middle">'
                   f'{escape(to)}</text></g>')
        bottom = max(bottom, y + 30)

    # ---- header: title, host boxes
    head: list[str] = []
    ytitle = 24.0
    if title:
        head.append(f'<text x="{width / 2:.1f}" y="{ytitle:.1f}" text-anchor="middle" '
                    f'style="font-size:16px;font-weight:bold">{escape(title)}</text>')
    for idx, (h, x) in enumerate(xs.items()):
        addrs = lines.addresses.get(h, [])
        sub = addrs[0] if addrs and addrs[0] != h else ""
        if len(addrs) > 1 and sub:
            sub += f" (+{len(addrs) - 1})"
        col = host_colour(pal, idx)
        head.append(f'<rect x="{x - 90:.1f}" y="38" width="180" height="{38 if sub else 26}" '
                    f'rx="6" fill="{pal["panel"]}" stroke="{col}" stroke-width="1.6"/>'
                    f'<text x="{x:.1f}" y="56" text-anchor="middle" '
                    f'style="font-weight:bold">{escape(h)}</text>')
        if sub:
            head.append(f'<text class="mono" x="{x:.1f}" y="70" text-anchor="middle">'
                        f'{escape(sub)}</text>')
    head.append(f'<text class="mono" x="10" y="{_TOP - 20:.1f}">t (s)</text>')

    # ---- legend
    ly = bottom + 6
    legend = [f'<g class="legend" transform="translate({_LEFT - 60:.1f},{ly:.1f})">']
    lx = 0.0
    for k, word in (("syn", "SYN"), ("data", "data"), ("ack", "ACK"), ("fin", "FIN"),
                    ("rst", "RST")):
        legend.append(f'<g class="sq-k-{k}"><line x1="{lx:.1f}" y1="0" x2="{lx + 26:.1f}" '
                      f'y2="0" stroke-width="2"/><text x="{lx + 31:.1f}" y="4">{word}</text></g>')
        lx += 78
    legend.append(f'<path class="cross" d="M{lx:.1f},-5 l10,10 m0,-10 l-10,10"/>'
                  f'<text x="{lx + 16:.1f}" y="4">lost</text>')
    if numbers.relative:
        legend.append(f'<text class="mono" x="{lx + 70:.1f}" y="4">seq/ack relative to ISN</text>')
    legend.append("</g>")
    height = ly + 24

    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sq" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{escape(title or "TCP sequence diagram")}">',
        _style(pal), _markers(pal),
        f'<rect width="100%" height="100%" fill="{pal["bg"]}"/>',
        *head, *out, *legend, "</svg>\n"])


def _tooltip(e: Event) -> str:
    parts = [f"t={float(e.get('t', 0.0)):.6f}", f"{e.get('src')} → {e.get('dst')}",
             f"[{e.get('flags', '')}] seq={e.get('seq')} ack={e.get('ack')} "
             f"len={e.get('len')} win={e.get('win')}"]
    opts = e.get("opts")
    if opts:
        parts.append("opts: " + ", ".join(str(o) for o in opts))
    parts.append(f"fate: {e.get('fate', 'delivered')}")
    if "t_arrive" in e:
        parts.append(f"arrives t={float(e['t_arrive']):.6f}")
    return "\n".join(parts)


def _state_tip(e: Event) -> str:
    return (f"t={float(e.get('t', 0.0)):.6f} {e.get('host')}: {e.get('from')} → {e.get('to')}"
            + (f" ({e.get('cause')})" if e.get("cause") else ""))


def _timers(evs: Sequence[Event], all_timers: bool) -> list[_Timer]:
    """Intervals from armed to fired / cancelled / re-armed, per (host, conn, timer)."""
    open_: dict[tuple[str, str, str], _Timer] = {}
    done: list[_Timer] = []
    closed_at: dict[tuple[str, str], float] = {}
    for e in evs:
        kind = e.get("kind")
        if kind == "state" and e.get("to") == "CLOSED":
            closed_at.setdefault((str(e.get("host")), str(e.get("conn"))), float(e["t"]))
        if kind != "timer":
            continue
        key = (str(e.get("host")), str(e.get("conn")), str(e.get("timer")))
        t = float(e.get("t", 0.0))
        action = e.get("action")
        cur = open_.pop(key, None)
        if cur is not None:
            cur.t1 = t
            cur.end = "rearmed" if action == "armed" else str(action)
            done.append(cur)
        if action == "armed":
            open_[key] = _Timer(key[0], key[2], t, None, "open")
    for key, cur in open_.items():
        end = closed_at.get((key[0], key[1]))
        if end is not None and end >= cur.t0:
            cur.t1, cur.end = end, "cancelled"
        done.append(cur)
    keep: list[_Timer] = []
    for tm in done:
        if tm.name in _ALWAYS_TIMERS or all_timers or tm.end in ("fired", "open"):
            if tm.name == "delayed-ack" and not all_timers:
                continue
            if tm.name in ("retransmit", "syn-ack") and tm.end == "open" and not all_timers:
                continue
            keep.append(tm)
    return keep
