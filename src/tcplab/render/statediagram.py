"""The TCP state diagram of RFC 9293 (Figure 5) as SVG, with a run's path on it.

The nodes and edges are data (:data:`NODES`, :data:`EDGES`), drawn in the
RFC's layout: opening at the top, ESTABLISHED in the middle, the active close
on the left and the passive close on the right.  As in the RFC figure CLOSED
appears twice, at the top (where connections start) and at the bottom (where
LAST-ACK and TIME-WAIT end).

The transitions a run took (its ``state`` events) are highlighted and
numbered in the order they happened, each number in the colour of its host;
a transition the RFC figure does not draw (a reset, an abort, Linux's
FIN-WAIT-1 -> TIME-WAIT on a FIN that also acknowledges ours) is added as a
dashed edge.  A numbered list under the figure says who moved, when and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

from tcplab.i18n import maybe
from tcplab.i18n import text as tr
from tcplab.render.model import Event, ordered
from tcplab.render.narrate import cause_text
from tcplab.render.textsize import text_width
from tcplab.render.theme import FONT, host_colour, palette

_W, _H = 120.0, 34.0  # node box
_WIDTH = 920.0

# node id -> (label, centre x, centre y)
NODES: dict[str, tuple[str, float, float]] = {
    "CLOSED": ("CLOSED", 460, 50),
    "LISTEN": ("LISTEN", 460, 160),
    "SYN-RECEIVED": ("SYN-RECEIVED", 170, 285),
    "SYN-SENT": ("SYN-SENT", 750, 285),
    "ESTABLISHED": ("ESTABLISHED", 460, 395),
    "FIN-WAIT-1": ("FIN-WAIT-1", 170, 520),
    "CLOSE-WAIT": ("CLOSE-WAIT", 750, 520),
    "CLOSING": ("CLOSING", 460, 600),
    "FIN-WAIT-2": ("FIN-WAIT-2", 170, 690),
    "LAST-ACK": ("LAST-ACK", 750, 690),
    "TIME-WAIT": ("TIME-WAIT", 460, 780),
    "CLOSED-END": ("CLOSED", 750, 860),
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str
    bend: float = 0.0          # control-point offset, px, to the left of the direction
    extra: bool = False        # not drawn in RFC 9293 Figure 5
    label_at: float = 0.5      # where along the edge the label sits
    anchor: str = "middle"     # text-anchor of the label


# RFC 9293 Figure 5, "event / action".
EDGES: tuple[Edge, ...] = (
    Edge("CLOSED", "LISTEN", "passive OPEN / create TCB", -30, anchor="start"),
    Edge("LISTEN", "CLOSED", "CLOSE / delete TCB", -30, anchor="end"),
    Edge("CLOSED", "SYN-SENT", "active OPEN / create TCB, snd SYN", -30, label_at=0.45),
    Edge("SYN-SENT", "CLOSED", "CLOSE / delete TCB", -30, label_at=0.3, anchor="start"),
    Edge("LISTEN", "SYN-RECEIVED", "rcv SYN / snd SYN,ACK", 25),
    Edge("SYN-RECEIVED", "LISTEN", "rcv RST", 25, label_at=0.55),
    Edge("LISTEN", "SYN-SENT", "SEND / snd SYN", -20, label_at=0.3),
    Edge("SYN-SENT", "SYN-RECEIVED", "rcv SYN / snd SYN,ACK", 0, label_at=0.5),
    Edge("SYN-RECEIVED", "ESTABLISHED", "rcv ACK of SYN", 0),
    Edge("SYN-SENT", "ESTABLISHED", "rcv SYN,ACK / snd ACK", 0),
    Edge("SYN-RECEIVED", "FIN-WAIT-1", "CLOSE / snd FIN", 0, label_at=0.4),
    Edge("ESTABLISHED", "FIN-WAIT-1", "CLOSE / snd FIN", 0),
    Edge("ESTABLISHED", "CLOSE-WAIT", "rcv FIN / snd ACK", 0),
    Edge("FIN-WAIT-1", "FIN-WAIT-2", "rcv ACK of FIN", 0),
    Edge("FIN-WAIT-1", "CLOSING", "rcv FIN / snd ACK", 0),
    Edge("FIN-WAIT-1", "TIME-WAIT", "rcv FIN,ACK of FIN / snd ACK", 0, extra=True,
         label_at=0.62),
    Edge("FIN-WAIT-2", "TIME-WAIT", "rcv FIN / snd ACK", 0),
    Edge("CLOSING", "TIME-WAIT", "rcv ACK of FIN", 0),
    Edge("CLOSE-WAIT", "LAST-ACK", "CLOSE / snd FIN", 0),
    Edge("LAST-ACK", "CLOSED-END", "rcv ACK of FIN", 0),
    Edge("TIME-WAIT", "CLOSED-END", "Timeout=2MSL / delete TCB", 0),
)
_BY_PAIR = {(e.src, e.dst): e for e in EDGES}

#: Where transitions the figure does not draw go, when the default curve would run into
#: a node or a label: (bend, label_at, anchor).  The closing side's timeouts and resets
#: end at the bottom CLOSED: FIN-WAIT-2 dips under TIME-WAIT; CLOSE-WAIT swings left of
#: LAST-ACK with its label to the left of the curve.
EXTRA_SHAPES: dict[tuple[str, str], tuple[float, float, str]] = {
    ("FIN-WAIT-2", "CLOSED-END"): (80.0, 0.5, "middle"),
    ("CLOSE-WAIT", "CLOSED-END"): (80.0, 0.5, "end"),
}


def _edge_label(label: str, lang: str) -> str:
    """An RFC Figure 5 label ("rcv SYN / snd SYN,ACK") in ``lang``."""
    if lang == "en":
        return label
    return maybe(f"sd.edge.{label}", lang) or label


def _node_for(state: str, as_target_from: str | None = None) -> str:
    """The node id of ``state``: CLOSED is the bottom node when a close path ends there."""
    if state != "CLOSED":
        return state if state in NODES else "CLOSED"
    if as_target_from is not None and (as_target_from, "CLOSED") not in _BY_PAIR:
        return "CLOSED-END"
    return "CLOSED"


def _clip(cx: float, cy: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the ray from a node centre towards (tx, ty) leaves the node's box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    s = min((_W / 2 + 3) / abs(dx) if dx else math.inf, (_H / 2 + 3) / abs(dy) if dy else math.inf)
    return cx + dx * s, cy + dy * s


def _geometry(edge: Edge) -> tuple[str, float, float, float]:
    """SVG path, label x, label y and the direction angle at the label."""
    _, ax, ay = NODES[edge.src]
    _, bx, by = NODES[edge.dst]
    mx, my = (ax + bx) / 2, (ay + by) / 2
    length = math.hypot(bx - ax, by - ay) or 1.0
    nx, ny = -(by - ay) / length, (bx - ax) / length
    cx, cy = mx + nx * edge.bend * 2, my + ny * edge.bend * 2
    sx, sy = _clip(ax, ay, cx, cy)
    ex, ey = _clip(bx, by, cx, cy)
    t = edge.label_at
    lx = (1 - t) ** 2 * sx + 2 * (1 - t) * t * cx + t * t * ex
    ly = (1 - t) ** 2 * sy + 2 * (1 - t) * t * cy + t * t * ey
    ang = math.atan2(ey - sy, ex - sx)
    return (f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}", lx, ly, ang)


@dataclass
class Step:
    n: int
    host: str
    src: str
    dst: str
    t: float
    cause: str
    index: int


def transitions(events: list[Event], host: str | None = None) -> list[Step]:
    """The state changes of ``host`` (all hosts if None), numbered from 1, in time order."""
    out: list[Step] = []
    for i, e in enumerate(ordered(events)):
        if e.get("kind") != "state":
            continue
        h = str(e.get("host"))
        if host is not None and h != host:
            continue
        out.append(Step(len(out) + 1, h, str(e.get("from")), str(e.get("to")),
                        float(e.get("t", 0.0)), str(e.get("cause") or ""), i))
    return out


def state_diagram_svg(events: list[dict[str, Any]], host: str | None = None,
                      theme: str = "light", lang: str = "en") -> str:
    """RFC 9293's state diagram with the transitions of ``host`` (or all) numbered."""
    pal = palette(theme)
    steps = transitions(events, host)
    hosts: list[str] = []
    for s in steps:
        if s.host not in hosts:
            hosts.append(s.host)
    hcol = {h: host_colour(pal, i) for i, h in enumerate(hosts)}

    extras: dict[tuple[str, str], Edge] = {}
    taken: dict[tuple[str, str], list[Step]] = {}
    visited: set[str] = set()
    for s in steps:
        a = _node_for(s.src)
        if a == "CLOSED" and s.dst == "SYN-RECEIVED":
            # The engine (like Linux) creates the new connection's TCB from the
            # listener: draw it leaving LISTEN, as the RFC figure does.
            a = "LISTEN"
        b = _node_for(s.dst, as_target_from=s.src)
        visited.update((a, b))
        pair = (a, b)
        if pair not in _BY_PAIR and pair not in extras and a != b:
            bend, label_at, anchor = EXTRA_SHAPES.get(pair, (45.0, 0.5, "middle"))
            extras[pair] = Edge(a, b, cause_text(s.cause, lang) or tr("sd.not-in-figure", lang),
                                bend, extra=True, label_at=label_at, anchor=anchor)
        taken.setdefault(pair, []).append(s)

    out: list[str] = []
    list_y0 = 920.0
    nlist = min(len(steps), 60)
    height = list_y0 + 26 + 17 * nlist + (17 if len(steps) > nlist else 0) + 20
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sd" width="{_WIDTH:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {_WIDTH:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(tr("sd.aria", lang))}">'
        f"<style>"
        f".sd text{{font-family:{FONT};fill:{pal['fg']}}}"
        f".sd .node rect{{fill:{pal['node_bg']};stroke:{pal['line']};stroke-width:1.4}}"
        f".sd .node text{{font-size:12.5px;font-weight:bold}}"
        f".sd .visited rect{{fill:{pal['hl_bg']};stroke:{pal['hl']};stroke-width:2.2}}"
        f".sd .edge path{{fill:none;stroke:{pal['line']};stroke-width:1.3}}"
        f".sd .edge text{{font-size:10.5px;fill:{pal['muted']};paint-order:stroke;"
        f"stroke:{pal['bg']};stroke-width:4px;stroke-linejoin:round}}"
        f".sd .extra path{{stroke-dasharray:5 4}}"
        f".sd .taken path{{stroke:{pal['hl']};stroke-width:2.6}}"
        f".sd .taken text{{fill:{pal['fg']};font-weight:bold}}"
        f".sd .badge text{{font-size:10px;font-weight:bold;fill:#fff}}"
        f".sd .list text{{font-size:12px}}"
        f".sd .current rect,.sd .current circle{{stroke:{pal['current']};stroke-width:3}}"
        f"</style><defs>"
        f'<marker id="sd-ah" viewBox="0 0 10 10" refX="9.5" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{pal["line"]}"/>'
        f"</marker>"
        f'<marker id="sd-ah-hl" viewBox="0 0 10 10" refX="9.5" refY="5" markerWidth="6" '
        f'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{pal["hl"]}"/>'
        f"</marker></defs>"
        f'<rect width="100%" height="100%" fill="{pal["bg"]}"/>')
    title = tr("sd.title", lang)
    if host is not None:
        title += f" — {host}"
    out.append(f'<text x="16" y="22" style="font-size:14px;font-weight:bold">'
               f"{escape(title)}</text>")

    badges: list[str] = []
    for edge in (*EDGES, *extras.values()):
        pair = (edge.src, edge.dst)
        path, lx, ly, _ang = _geometry(edge)
        hit = taken.get(pair, [])
        cls = "edge" + (" extra" if edge.extra else "") + (" taken" if hit else "")
        if edge.extra and not hit:
            continue  # extra edges are drawn only when a run takes them
        marker = "sd-ah-hl" if hit else "sd-ah"
        out.append(f'<g class="{cls}"><path d="{path}" marker-end="url(#{marker})"/>'
                   f'<text x="{lx + {"start": 6, "end": -6}.get(edge.anchor, 0):.1f}" '
                   f'y="{ly - 4:.1f}" text-anchor="{edge.anchor}">'
                   f"{escape(_edge_label(edge.label, lang))}</text></g>")
        # number badges along the edge, just below its label
        shown = hit[:6]
        pitch = max(20.0, max((text_width(str(s.n), 10, True) for s in shown), default=0) + 6)
        bx0 = lx - (len(shown) - 1) * pitch / 2 + (6 if len(hit) > 6 else 0)
        for k, s in enumerate(shown):
            bx = bx0 + k * pitch
            by = ly + 10
            badges.append(
                f'<g class="badge" data-n="{s.n}" data-i="{s.index}"><title>'
                f"{escape(f'{s.n}. {s.host}: {s.src} → {s.dst} at t={s.t:.6f}')}</title>"
                f'<circle cx="{bx:.1f}" cy="{by:.1f}" r="{max(9.0, pitch / 2 - 2):.1f}" '
                f'fill="{hcol[s.host]}"/>'
                f'<text x="{bx:.1f}" y="{by + 3.5:.1f}" text-anchor="middle">{s.n}</text></g>')
        if len(hit) > 6:
            badges.append(f'<text x="{bx0 + 6 * pitch:.1f}" y="{ly + 14:.1f}" '
                          f'style="font-size:10px">+{len(hit) - 6}</text>')
    for node, (label, x, y) in NODES.items():
        cls = "node" + (" visited" if node in visited else "")
        out.append(f'<g class="{cls}" data-node="{node}"><rect x="{x - _W / 2:.1f}" '
                   f'y="{y - _H / 2:.1f}" width="{_W:.0f}" height="{_H:.0f}" rx="8"/>'
                   f'<text x="{x:.1f}" y="{y + 4.5:.1f}" text-anchor="middle">'
                   f"{escape(label)}</text></g>")
    out.extend(badges)

    # host legend and the numbered list
    lx = 16.0
    for h in hosts:
        out.append(f'<circle cx="{lx + 6:.1f}" cy="{list_y0 - 4:.1f}" r="6" fill="{hcol[h]}"/>'
                   f'<text x="{lx + 16:.1f}" y="{list_y0:.1f}" style="font-size:12px">'
                   f"{escape(h)}</text>")
        lx += 28 + text_width(h, 12)
    if not steps:
        out.append(f'<text x="16" y="{list_y0 + 20:.1f}" style="font-size:12px">'
                   f"{escape(tr('sd.none', lang))}</text>")
    out.append(f'<g class="list" transform="translate(16,{list_y0 + 24:.1f})">')
    for k, s in enumerate(steps[:nlist]):
        why = f" — {cause_text(s.cause, lang)}" if s.cause else ""
        out.append(f'<text y="{17 * k:.1f}" data-i="{s.index}"><tspan fill="{hcol[s.host]}" '
                   f'font-weight="bold">{s.n}.</tspan> t={s.t:.6f}  {escape(s.host)}: '
                   f"{escape(s.src)} → {escape(s.dst)}{escape(why)}</text>")
    if len(steps) > nlist:
        out.append(f'<text y="{17 * nlist:.1f}">'
                   f"{escape(tr('sd.more', lang, n=len(steps) - nlist))}</text>")
    out.append("</g></svg>\n")
    return "".join(out)
