"""A small SVG line chart: counts over time (TIME-WAIT entries in a close storm).

Self-contained SVG, light or dark theme, one polyline per series with a legend.
"""

from __future__ import annotations

from html import escape

from tcplab.render.theme import FONT, MONO, palette

_KEYS = ("syn", "timer", "data", "fin", "rst", "ack")

Series = dict[str, list[tuple[float, float]]]


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** (len(str(int(v))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * mag
        if top >= v:
            return float(top)
    return float(10 * mag)


def line_chart_svg(series: Series, *, title: str, xlabel: str, ylabel: str,
                   theme: str = "light", width: int = 720, height: int = 360) -> str:
    """``series`` maps a label to (x, y) points; returns the SVG text."""
    pal = palette(theme)
    left, right, top, bottom = 64, 180, 40, 48
    pw, ph = width - left - right, height - top - bottom
    xs = [x for pts in series.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in series.values() for _, y in pts] or [0.0]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1.0
    ymax = _nice_max(max(ys))

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - y / ymax * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{FONT}">',
           f'<rect width="100%" height="100%" fill="{pal["bg"]}"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold" fill="{pal["fg"]}">'
           f'{escape(title)}</text>']
    for i in range(5):  # horizontal grid and y labels
        yv = ymax * i / 4
        y = py(yv)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   f'stroke="{pal["border"]}" stroke-width="1"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                   f'font-family="{MONO}" fill="{pal["muted"]}">{yv:g}</text>')
    for i in range(6):  # x labels
        xv = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{px(xv):.1f}" y="{top + ph + 18}" font-size="11" '
                   f'text-anchor="middle" font-family="{MONO}" fill="{pal["muted"]}">'
                   f'{xv:g}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" '
               f'stroke="{pal["line"]}"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" font-size="12" '
               f'text-anchor="middle" fill="{pal["fg"]}">{escape(xlabel)}</text>')
    out.append(f'<text x="16" y="{top + ph / 2:.1f}" font-size="12" text-anchor="middle" '
               f'fill="{pal["fg"]}" transform="rotate(-90 16 {top + ph / 2:.1f})">'
               f'{escape(ylabel)}</text>')
    for i, (label, pts) in enumerate(series.items()):
        colour = pal[_KEYS[i % len(_KEYS)]]
        # Later series are dashed and thinner, so lines that coincide stay visible.
        dash = ' stroke-dasharray="6 4"' if i % 2 else ""
        widthpx = 3.5 if i % 2 == 0 else 2
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="{widthpx}"{dash}/>')
            for x, y in pts:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" '
                           f'fill="{colour}"><title>{escape(label)}: {y:g} at {x:g}</title>'
                           '</circle>')
        ly = top + 14 + i * 20
        out.append(f'<line x1="{left + pw + 16}" y1="{ly - 4}" x2="{left + pw + 36}" '
                   f'y2="{ly - 4}" stroke="{colour}" stroke-width="3"{dash}/>')
        out.append(f'<text x="{left + pw + 42}" y="{ly}" font-size="12" fill="{pal["fg"]}">'
                   f'{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def panels_svg(panels: list[tuple[str, Series]], *, title: str, xlabel: str, ylabel: str,
               theme: str = "light", lang: str = "en") -> str:
    """Small multiples: one grouped-bar panel per (heading, series), side by side.

    Bars of one sample time stand next to each other, so series with equal
    values never hide each other; a zero is a thin stub on the axis, and each
    bar's value is in its tooltip.  Every panel shares the y scale.
    """
    from tcplab.render.textsize import text_width

    pal = palette(theme)
    pw, ph = 420, 230
    left, top, gap = 58, 58, 40
    ymax = _nice_max(max((y for _h, s in panels for pts in s.values() for _x, y in pts),
                         default=1.0))
    names = list(panels[0][1]) if panels else []
    width = left + len(panels) * (pw + gap) + 10
    legend_y = top + ph + 50
    height = legend_y + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" lang="{lang}" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'font-family="{FONT}">',
           f'<rect width="100%" height="100%" fill="{pal["bg"]}"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold" fill="{pal["fg"]}">'
           f"{escape(title)}</text>",
           f'<text x="16" y="{top + ph / 2:.1f}" font-size="12" text-anchor="middle" '
           f'fill="{pal["fg"]}" transform="rotate(-90 16 {top + ph / 2:.1f})">'
           f"{escape(ylabel)}</text>"]
    for n, (heading, series) in enumerate(panels):
        x0 = left + n * (pw + gap)
        out.append(f'<text x="{x0 + pw / 2:.1f}" y="{top - 12}" font-size="13" '
                   f'font-weight="bold" text-anchor="middle" fill="{pal["fg"]}">'
                   f"{escape(heading)}</text>")
        for i in range(5):
            yv = ymax * i / 4
            y = top + ph - yv / ymax * ph
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" '
                       f'stroke="{pal["border"]}"/>')
            if n == 0:
                out.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" font-size="11" '
                           f'text-anchor="end" font-family="{MONO}" fill="{pal["muted"]}">'
                           f"{yv:g}</text>")
        xs = sorted({x for pts in series.values() for x, _y in pts})
        slot = pw / max(len(xs), 1)
        bar = max(min((slot - 6) / max(len(series), 1), 14.0), 2.0)
        for k, x in enumerate(xs):
            cx = x0 + slot * (k + 0.5)
            if k % max(1, round(len(xs) / 7)) == 0:
                out.append(f'<text x="{cx:.1f}" y="{top + ph + 16}" font-size="11" '
                           f'text-anchor="middle" font-family="{MONO}" '
                           f'fill="{pal["muted"]}">{x:g}</text>')
            for j, (label, pts) in enumerate(series.items()):
                y = dict(pts).get(x, 0.0)
                h = max(y / ymax * ph, 1.5)
                bx = cx - len(series) * bar / 2 + j * bar
                out.append(f'<rect x="{bx:.1f}" y="{top + ph - h:.1f}" width="{bar - 1:.1f}" '
                           f'height="{h:.1f}" fill="{pal[_KEYS[j % len(_KEYS)]]}">'
                           f"<title>{escape(label)}: {y:g} ({x:g})</title></rect>")
        out.append(f'<line x1="{x0}" y1="{top + ph}" x2="{x0 + pw}" y2="{top + ph}" '
                   f'stroke="{pal["line"]}"/>')
        out.append(f'<text x="{x0 + pw / 2:.1f}" y="{top + ph + 34}" font-size="12" '
                   f'text-anchor="middle" fill="{pal["fg"]}">{escape(xlabel)}</text>')
    lx = float(left)
    for j, label in enumerate(names):
        out.append(f'<rect x="{lx:.1f}" y="{legend_y - 10}" width="14" height="10" '
                   f'fill="{pal[_KEYS[j % len(_KEYS)]]}"/><text x="{lx + 20:.1f}" '
                   f'y="{legend_y}" font-size="12" fill="{pal["fg"]}">{escape(label)}</text>')
        lx += 34 + text_width(label, 12)
    out.append("</svg>")
    return "\n".join(out)
