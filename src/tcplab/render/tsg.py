"""The time-sequence graph (Stevens, tcptrace): sequence numbers over time, one direction.

x is time, y the sender's sequence number relative to its ISN.  Every
segment the sender puts on the wire is a vertical bar from its first to its
last sequence number (a SYN or FIN, one number, is a short bar with a dot);
a retransmission is red with a ring, a lost segment dashed with a cross.
The receiver's acknowledgements draw the ACK line (a step line: everything
below it has arrived), and ACK plus advertised window draws the window line
(the sender may not send above it).  Idle sender, window closing, a
retransmission after a timeout: each has its shape.

The graph is drawn for one connection (:mod:`tcplab.render.conns`) and one
direction; :func:`time_sequence_svgs` picks the connection that carried the
most data and draws both directions.  Works for any trace, including one
read from a pcap file.
"""

from __future__ import annotations

from html import escape

from tcplab.i18n import text as tr
from tcplab.render.conns import Connections, Incarnation
from tcplab.render.model import Event, ordered
from tcplab.render.textsize import text_width
from tcplab.render.theme import FONT, MONO, palette

_W, _H = 460.0, 300.0
_L, _R, _T, _B = 64.0, 16.0, 34.0, 62.0


def _nice(span: float, n: int = 6) -> float:
    if span <= 0:
        return 1.0
    raw = span / n
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return float(m * mag)
    return float(10 * mag)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def busiest(events: list[Event], conns: Connections) -> Incarnation | None:
    """The connection that carried the most sequence space (data, SYN, FIN)."""
    score: dict[int, int] = {}
    for e in events:
        info = conns.info(e)
        if info is None or e.get("event") not in ("send", "recv"):
            continue
        flags = str(e.get("flags", ""))
        n = int(e.get("len", 0) or 0) + ("S" in flags) + ("F" in flags)
        score[info.inc.number] = score.get(info.inc.number, 0) + n + 1
    if not score:
        return None
    best = max(score, key=lambda k: (score[k], -k))
    return next(i for i in conns.incarnations if i.number == best)


def time_sequence_svg(events: list[Event], conns: Connections, inc: Incarnation, sender: str,
                      *, lang: str = "en", theme: str = "light") -> str:
    """The graph of ``sender``'s sequence numbers in connection ``inc``."""
    pal = palette(theme)
    receiver = inc.key[1] if inc.key[0] == sender else inc.key[0]
    sent: list[tuple[Event, int, int, bool]] = []
    acks: list[tuple[float, int, int]] = []
    for e in events:
        info = conns.info(e)
        if info is None or info.inc is not inc or e.get("event") not in ("send", "recv"):
            continue
        if e.get("src") == sender and info.seq is not None:
            flags = str(e.get("flags", ""))
            n = int(e.get("len", 0) or 0) + ("S" in flags) + ("F" in flags)
            if n:
                sent.append((e, info.seq, info.seq + n, info.retransmission))
        elif e.get("src") == receiver and info.ack is not None and e.get("fate") != "dropped":
            ta = e.get("t_arrive")
            t = float(ta) if isinstance(ta, (int, float)) else float(e.get("t", 0.0))
            acks.append((t, info.ack, int(e.get("win", 0) or 0)))
    acks.sort()
    title = tr("tsg.title", lang, a=sender, b=receiver)
    ts = [float(e.get("t", 0.0)) for e, *_ in sent] + [a[0] for a in acks]
    ys = [v for _e, lo, hi, _r in sent for v in (lo, hi)] + [a[1] for a in acks]
    out: list[str] = []
    if not sent:
        body = tr("tsg.nothing", lang)
        return _frame(pal, title, lang, [f'<text class="muted" x="{_L:.1f}" y="{_T + 40:.1f}">'
                                         f"{escape(body)}</text>"], 120.0)
    t0, t1 = min(ts), max(ts)
    if t1 <= t0:
        t1 = t0 + 1e-3
    pad_t = (t1 - t0) * 0.04
    t0, t1 = t0 - pad_t, t1 + pad_t
    y0 = min(0, min(ys))
    y1 = max(ys)
    wins = [a[1] + a[2] for a in acks]
    # the window line is drawn, but it does not stretch the axis beyond twice the data
    y_top = max(y1, min(max(wins, default=y1), y1 + max(y1 - y0, 1) * 1.0))
    if y_top <= y0:
        y_top = y0 + 1
    y_top += (y_top - y0) * 0.05
    pw, ph = _W - _L - _R, _H - _T - _B

    def px(t: float) -> float:
        return _L + (t - t0) / (t1 - t0) * pw

    def py(v: float) -> float:
        return _T + ph - (v - y0) / (y_top - y0) * ph

    # axes and ticks
    out.append(f'<rect class="plot" x="{_L:.1f}" y="{_T:.1f}" width="{pw:.1f}" '
               f'height="{ph:.1f}"/>')
    step = _nice(y_top - y0, 5)
    v = (y0 // step) * step
    last_y = 1e9
    while v <= y_top:
        if v >= y0:
            yy = py(v)
            out.append(f'<line class="grid" x1="{_L:.1f}" y1="{yy:.1f}" x2="{_L + pw:.1f}" '
                       f'y2="{yy:.1f}"/>')
            if last_y - yy >= 14:
                out.append(f'<text class="tick" x="{_L - 6:.1f}" y="{yy + 3.5:.1f}" '
                           f'text-anchor="end">{_fmt(v)}</text>')
                last_y = yy
        v += step
    tstep = _nice(t1 - t0, 4)
    tv = (t0 // tstep + 1) * tstep
    last_x = -1e9
    while tv <= t1:
        xx = px(tv)
        label = _fmt(round(tv, 9))
        w = text_width(label, 10, mono=True) + 8
        if xx - last_x >= w and _L + w / 2 <= xx <= _L + pw - w / 2 + 4:
            out.append(f'<line class="grid" x1="{xx:.1f}" y1="{_T:.1f}" x2="{xx:.1f}" '
                       f'y2="{_T + ph:.1f}"/><text class="tick" x="{xx:.1f}" '
                       f'y="{_T + ph + 14:.1f}" text-anchor="middle">{label}</text>')
            last_x = xx
        tv += tstep
    out.append(f'<text class="axis" x="{_L + pw / 2:.1f}" y="{_T + ph + 30:.1f}" '
               f'text-anchor="middle">{escape(tr("tsg.x", lang))}</text>')
    # window and ACK lines (steps)
    for cls, values in (("win", [(t, a + w) for t, a, w in acks]),
                        ("ackline", [(t, a) for t, a, _w in acks])):
        if not values:
            continue
        pts: list[str] = []
        prev: float | None = None
        for t, val in values:
            vv = min(val, y_top)
            if prev is not None:
                pts.append(f"{px(t):.1f},{py(prev):.1f}")
            pts.append(f"{px(t):.1f},{py(vv):.1f}")
            prev = vv
        if prev is not None:
            pts.append(f"{px(t1):.1f},{py(prev):.1f}")
        out.append(f'<polyline class="{cls}" points="{" ".join(pts)}"/>')
    # segments
    for e, lo, hi, retrans in sent:
        x = px(float(e.get("t", 0.0)))
        ya, yb = py(lo), py(hi)
        lost = e.get("fate") == "dropped"
        cls = "seg" + (" retrans" if retrans else "") + (" lost" if lost else "")
        flags = str(e.get("flags", ""))
        tip = (f"t={float(e.get('t', 0.0)):.6f} {flags} {lo}–{hi}"
               + (f" ({tr('svg.mark.retransmission', lang)})" if retrans else ""))
        parts = [f'<g class="{cls}" data-i-id="{escape(str(e.get("id", "")))}">'
                 f"<title>{escape(tip)}</title>"
                 f'<line x1="{x:.1f}" y1="{ya:.1f}" x2="{x:.1f}" y2="{min(yb, ya - 3):.1f}"/>'
                 f'<line x1="{x - 3:.1f}" y1="{ya:.1f}" x2="{x + 3:.1f}" y2="{ya:.1f}"/>'
                 f'<line x1="{x - 3:.1f}" y1="{min(yb, ya - 3):.1f}" x2="{x + 3:.1f}" '
                 f'y2="{min(yb, ya - 3):.1f}"/>']
        if "S" in flags or "F" in flags:
            parts.append(f'<circle cx="{x:.1f}" cy="{(ya + yb) / 2:.1f}" r="2.5"/>')
        if retrans:
            parts.append(f'<circle class="ring" cx="{x:.1f}" cy="{(ya + yb) / 2:.1f}" r="6"/>')
        if lost:
            parts.append(f'<path class="cross" d="M{x - 4:.1f},{ya - 8:.1f} l8,8 m0,-8 l-8,8"/>')
        parts.append("</g>")
        out.append("".join(parts))
    # legend, under the plot
    lx, ly = _L, _T + ph + 46
    for cls, key in (("seg", "tsg.legend.seg"), ("ackline", "tsg.legend.ack"),
                     ("win", "tsg.legend.win"), ("retrans", "tsg.legend.retrans")):
        word = tr(key, lang)
        w = 26 + text_width(word, 10.5) + 12
        if lx + w > _W - 4:
            lx, ly = _L, ly + 15
        if cls == "retrans":
            sym = (f'<circle class="ring" cx="{lx + 9:.1f}" cy="{ly - 4:.1f}" r="5"/>')
        elif cls == "seg":
            sym = (f'<line class="segsym" x1="{lx + 9:.1f}" y1="{ly - 9:.1f}" x2="{lx + 9:.1f}" '
                   f'y2="{ly + 1:.1f}"/>')
        else:
            sym = (f'<line class="{cls}" x1="{lx:.1f}" y1="{ly - 4:.1f}" x2="{lx + 20:.1f}" '
                   f'y2="{ly - 4:.1f}"/>')
        out.append(f'{sym}<text class="legend" x="{lx + 24:.1f}" y="{ly:.1f}">'
                   f"{escape(word)}</text>")
        lx += w
    return _frame(pal, title, lang, out, ly + 10, ylabel=tr("tsg.y", lang))


def _frame(pal: dict[str, str], title: str, lang: str, body: list[str], height: float,
           ylabel: str = "") -> str:
    h = max(height, 80.0)
    css = (f"<style>.tsg text{{font-family:{FONT};fill:{pal['fg']};font-size:11px}}"
           f".tsg .ttl{{font-size:13px;font-weight:bold}}"
           f".tsg .tick{{font-family:{MONO};font-size:10px;fill:{pal['muted']}}}"
           f".tsg .axis{{font-size:11px;fill:{pal['muted']}}}"
           f".tsg .muted{{fill:{pal['muted']}}}"
           f".tsg .legend{{font-size:10.5px}}"
           f".tsg .plot{{fill:{pal['panel']};stroke:{pal['border']}}}"
           f".tsg .grid{{stroke:{pal['border']};stroke-width:.7}}"
           f".tsg .seg line,.tsg .segsym{{stroke:{pal['data']};stroke-width:1.6}}"
           f".tsg .seg circle{{fill:{pal['data']}}}"
           f".tsg .retrans line{{stroke:{pal['rst']}}}"
           f".tsg .ring{{fill:none !important;stroke:{pal['rst']};stroke-width:1.4}}"
           f".tsg .lost line{{stroke-dasharray:3 2}}"
           f".tsg .cross{{stroke:{pal['lost']};stroke-width:1.8;fill:none}}"
           f".tsg .ackline{{fill:none;stroke:{pal['syn']};stroke-width:1.5}}"
           f".tsg .win{{fill:none;stroke:{pal['timer']};stroke-width:1.3;"
           f"stroke-dasharray:5 3}}</style>")
    ylab = ""
    if ylabel:
        cy = _T + (_H - _T - _B) / 2
        ylab = (f'<text class="axis" x="14" y="{cy:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 14 {cy:.1f})">{escape(ylabel)}</text>')
    tw = text_width(title, 13, True)
    width = max(_W, tw + 24)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="tsg" lang="{lang}" '
            f'width="{width:.0f}" height="{h:.0f}" viewBox="0 0 {width:.0f} {h:.0f}" '
            f'role="img" aria-label="{escape(title)}">{css}'
            f'<rect width="{width:.0f}" height="{h:.0f}" fill="{pal["bg"]}"/>'
            f'<text class="ttl" x="12" y="20">{escape(title)}</text>{ylab}'
            + "".join(body) + "</svg>\n")


def time_sequence_svgs(events: list[Event], *, lang: str = "en", theme: str = "light",
                       conns: Connections | None = None) -> list[str]:
    """Both directions of the busiest connection (empty list for a trace without one)."""
    evs = ordered(events)
    conns = conns or Connections(evs)
    inc = busiest(evs, conns)
    if inc is None:
        return []
    a, b = inc.key
    first = next((str(e["src"]) for e in evs if conns.info(e) is not None
                  and conns.info(e).inc is inc and e.get("event") in ("send", "recv")), a)  # type: ignore[union-attr]
    second = b if first == a else a
    return [time_sequence_svg(evs, conns, inc, first, lang=lang, theme=theme),
            time_sequence_svg(evs, conns, inc, second, lang=lang, theme=theme)]
