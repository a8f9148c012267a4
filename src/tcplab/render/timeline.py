"""Many connections at once: one lane per connection, its states over a time axis.

A sequence diagram of forty connections is forty sequence diagrams stacked
into one column thousands of pixels tall.  When a trace has many
connections (a close storm), :func:`timeline_svg` draws instead what matters
there: for every connection, a lane with two bars, one per side, coloured by
the state each side was in over time.  Lanes are grouped by the pair of hosts
they join, so "server closes first" and "client closes first" sit in groups
of their own, and TIME-WAIT shows as a long purple bar on whichever side
closed first.

Text sizes are fixed and every lane is taller than its label, so labels
cannot overlap; the canvas is sized to the lanes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from tcplab.i18n import seconds
from tcplab.i18n import text as tr
from tcplab.render.conns import Connections
from tcplab.render.layout import Box
from tcplab.render.model import Event, Lifelines, conn_endpoints
from tcplab.render.textsize import text_width
from tcplab.render.theme import FONT, MONO, palette

_LANE = 18.0
_BAR = 6.0
_AXIS_W = 860.0
_STATE_COLOURS = {
    "light": {"SYN-SENT": "#54aeff", "SYN-RECEIVED": "#54aeff", "ESTABLISHED": "#4ac26b",
              "FIN-WAIT-1": "#c297ff", "FIN-WAIT-2": "#c297ff", "CLOSING": "#c297ff",
              "TIME-WAIT": "#6639ba", "CLOSE-WAIT": "#fb8f44", "LAST-ACK": "#fb8f44",
              "LISTEN": "#afb8c1"},
    "dark": {"SYN-SENT": "#388bfd", "SYN-RECEIVED": "#388bfd", "ESTABLISHED": "#2ea043",
             "FIN-WAIT-1": "#a371f7", "FIN-WAIT-2": "#a371f7", "CLOSING": "#a371f7",
             "TIME-WAIT": "#d2a8ff", "CLOSE-WAIT": "#db6d28", "LAST-ACK": "#db6d28",
             "LISTEN": "#6e7681"},
}
_LEGEND_STATES = ("SYN-SENT", "ESTABLISHED", "FIN-WAIT-2", "TIME-WAIT", "CLOSE-WAIT")


@dataclass
class _Span:
    state: str
    t0: float
    t1: float | None
    i: int


@dataclass
class _Lane:
    conn: str
    t0: float
    sides: dict[str, list[_Span]] = field(default_factory=dict)


def _lanes(evs: list[Event], lines: Lifelines) -> dict[tuple[str, str], list[_Lane]]:
    """Per pair of hosts: the connections between them, each with every side's states."""
    lanes: dict[str, _Lane] = {}
    pair_of: dict[str, tuple[str, str]] = {}
    for i, e in enumerate(evs):
        if e.get("kind") != "state":
            continue
        host, conn = e.get("host"), e.get("conn")
        if not isinstance(host, str) or not isinstance(conn, str):
            continue
        ends = conn_endpoints(conn)
        if ends is None:
            continue
        key = "-".join(sorted(ends))
        lane = lanes.get(key)
        if lane is None or (e.get("from") in ("CLOSED", "LISTEN") and e.get("to") in (
                "SYN-SENT", "SYN-RECEIVED") and host in lane.sides
                and lane.sides[host] and lane.sides[host][-1].state == "CLOSED"):
            lane = _Lane(key + f"#{len(lanes)}", float(e["t"]))
            lanes[key] = lane
            lanes[lane.conn] = lane
        spans = lane.sides.setdefault(host, [])
        if spans and spans[-1].t1 is None:
            spans[-1].t1 = float(e["t"])
        spans.append(_Span(str(e.get("to")), float(e["t"]), None, i))
        if key not in pair_of:
            other = lines.host_of(ends[1]) or ends[1]
            pair_of[key] = (host, other)
    groups: dict[tuple[str, str], list[_Lane]] = {}
    for lane in {id(v): v for v in lanes.values()}.values():
        base = lane.conn.split("#")[0]
        hosts = tuple(sorted(lane.sides, key=lambda h: lines.hosts.index(h)
                             if h in lines.hosts else 99))
        if len(hosts) == 1:
            hosts = (hosts[0], pair_of.get(base, (hosts[0], "?"))[1])
        groups.setdefault((hosts[0], hosts[1]), []).append(lane)
    for g in groups.values():
        g.sort(key=lambda ln: ln.t0)
    return groups


def timeline_svg(events: list[Event], *, theme: str = "light", title: str | None = None,
                 lang: str = "en", conns: Connections | None = None) -> str:
    """Lanes of connection states over time (for traces with many connections)."""
    pal = palette(theme)
    colours = _STATE_COLOURS[theme]
    evs = events
    conns = conns or Connections(evs)
    lines = Lifelines.of(evs)
    groups = _lanes(evs, lines)
    ts = [float(e.get("t", 0.0)) for e in evs] or [0.0, 1.0]
    t_lo, t_hi = min(ts), max(ts)
    if t_hi <= t_lo:
        t_hi = t_lo + 1.0
    label_w = 150.0
    x0 = 16.0 + label_w
    x1 = x0 + _AXIS_W

    def px(t: float) -> float:
        return x0 + (t - t_lo) / (t_hi - t_lo) * _AXIS_W

    out: list[str] = []
    y = 40.0
    boxes: list[Box] = []
    if title:
        out.append(f'<text class="title" x="16" y="24">{escape(title)}</text>')
        boxes.append(Box(16, 10, 16 + text_width(title, 16, True), 30))
    summary = tr("tl.summary", lang, n=str(conns.count()), d=seconds(t_hi - t_lo, lang))
    out.append(f'<text class="sub" x="16" y="{y + 4:.1f}">{escape(summary)}</text>')
    boxes.append(Box(16, y - 8, 16 + text_width(summary, 12), y + 8))
    y += 26
    # time axis
    ticks = _ticks(t_lo, t_hi)
    out.append(f'<line class="axis" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}"/>')
    for t in ticks:
        out.append(f'<line class="tick" x1="{px(t):.1f}" y1="{y - 4:.1f}" x2="{px(t):.1f}" '
                   f'y2="{y:.1f}"/><text class="mono" x="{px(t):.1f}" y="{y - 7:.1f}" '
                   f'text-anchor="middle">{t:g}</text>')
    out.append(f'<text class="mono" x="{x1:.1f}" y="{y + 14:.1f}" text-anchor="end">'
               f"{escape(tr('tl.axis', lang))}</text>")
    y += 26
    grid_top = y
    for (ha, hb), lanes in groups.items():
        head = tr("tl.group", lang, a=ha, b=hb, n=str(len(lanes)))
        out.append(f'<text class="group" x="16" y="{y + 12:.1f}">{escape(head)}</text>')
        y += 18
        sub = tr("tl.bars", lang, a=ha, b=hb)
        out.append(f'<text class="note" x="16" y="{y + 10:.1f}">{escape(sub)}</text>')
        y += 16
        for n, lane in enumerate(lanes):
            out.append(f'<text class="mono" x="{x0 - 8:.1f}" y="{y + 12:.1f}" '
                       f'text-anchor="end">#{n + 1}</text>')
            for side_n, host in enumerate((ha, hb)):
                by = y + 3 + side_n * (_BAR + 1)
                for sp in lane.sides.get(host, []):
                    if sp.state in ("CLOSED",):
                        continue
                    a = px(sp.t0)
                    b = px(sp.t1 if sp.t1 is not None else t_hi)
                    col = colours.get(sp.state, pal["muted"])
                    out.append(f'<rect class="span" data-i="{sp.i}" x="{a:.1f}" y="{by:.1f}" '
                               f'width="{max(b - a, 1.5):.1f}" height="{_BAR:.1f}" '
                               f'fill="{col}"><title>{escape(host)}: {escape(sp.state)} '
                               f'{sp.t0:g}–{(sp.t1 if sp.t1 is not None else t_hi):g} s'
                               f"</title></rect>")
            y += _LANE
        y += 10
    for t in ticks:
        out.insert(0, f'<line class="grid" x1="{px(t):.1f}" y1="{grid_top:.1f}" '
                      f'x2="{px(t):.1f}" y2="{y:.1f}"/>')
    # legend
    lx = 16.0
    y += 8
    for st in _LEGEND_STATES:
        label = {"FIN-WAIT-2": "FIN-WAIT-1/2, CLOSING", "CLOSE-WAIT": "CLOSE-WAIT, LAST-ACK",
                 "SYN-SENT": "SYN-SENT/RECEIVED"}.get(st, st)
        w = 18 + text_width(label, 11) + 18
        if lx + w > x1:
            lx, y = 16.0, y + 18
        out.append(f'<rect x="{lx:.1f}" y="{y:.1f}" width="12" height="10" '
                   f'fill="{colours[st]}"/><text class="legend" x="{lx + 16:.1f}" '
                   f'y="{y + 9:.1f}">{escape(label)}</text>')
        lx += w
    y += 26
    width = max(x1 + 24, max((b.x1 for b in boxes), default=0) + 16)
    css = (f"<style>.tl text{{font-family:{FONT};font-size:12px;fill:{pal['fg']}}}"
           f".tl .title{{font-size:16px;font-weight:bold}}"
           f".tl .sub{{fill:{pal['muted']}}}"
           f".tl .group{{font-weight:bold;font-size:12.5px}}"
           f".tl .note{{fill:{pal['muted']};font-size:10.5px;font-style:italic}}"
           f".tl .legend{{font-size:11px}}"
           f".tl .mono{{font-family:{MONO};font-size:10px;fill:{pal['muted']}}}"
           f".tl .axis,.tl .tick{{stroke:{pal['line']}}}"
           f".tl .grid{{stroke:{pal['border']};stroke-width:1}}"
           f".tl .current{{stroke:{pal['current']};stroke-width:2}}</style>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="tl" lang="{lang}" '
            f'width="{width:.0f}" height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}" '
            f'role="img" aria-label="{escape(title or tr("tl.aria", lang))}">{css}'
            f'<rect width="{width:.0f}" height="{y:.0f}" fill="{pal["bg"]}"/>'
            + "".join(out) + "</svg>\n")


def _ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60,
                 120, 300, 600, 1800, 3600):
        if span / step <= 12:
            break
    first = (lo // step) * step
    out = []
    t = first
    while t <= hi + 1e-9:
        if t >= lo - 1e-9:
            out.append(round(t, 6))
        t += step
    return out
