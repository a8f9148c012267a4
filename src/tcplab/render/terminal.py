"""Sequence diagrams in the terminal, drawn from a trace, in English or Chinese.

One lifeline per host, time flowing down, one arrow per segment labelled
with its flags, seq, ack, len (and win when there is room); lost segments end
in ``x``; each side's state is written beside its lifeline where it changes;
long idle gaps (2MSL) are compressed into one labelled line.  Sequence
numbers are relative to each connection's ISN by default (see
:mod:`tcplab.render.conns`), absolute with ``relative=False``.

The diagram fits the width it is given (the terminal's, or ``--width``):
arrow labels drop ``win=`` and then shorten to fit between the lifelines,
and the explanations (from :class:`tcplab.render.narrate.Narrator`, the
same texts as the HTML report) are wrapped under their line.  Widths are
counted in display cells, so Chinese text (two cells per character) lines
up and wraps between characters, never inside an English word.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tcplab.i18n import seconds, truncate, wrap
from tcplab.i18n import text as tr
from tcplab.i18n import width as _cells
from tcplab.render.model import Event, Lifelines, ordered
from tcplab.render.narrate import Narrator, note_text, reason_text, timer_name

GAP = 1.0          #: idle time (s) that is compressed into one line
MIN_WIDTH = 60     #: narrower than this, nothing readable fits
MAX_WIDTH = 400
_TCOL = 9          #: the time column


@dataclass
class _Lane:
    name: str
    x: int


class _Row:
    """One line of cells; a wide (CJK) character fills two cells."""

    def __init__(self, cols: int, lanes: Iterable[_Lane] = ()) -> None:
        self.cells: list[str] = [" "] * cols
        for ln in lanes:
            if 0 <= ln.x < cols:
                self.cells[ln.x] = "|"

    def put(self, x: int, s: str) -> None:
        for ch in s:
            w = _cells(ch)
            if x < 0 or x + w > len(self.cells):
                x += w
                continue
            if self.cells[x] == "":          # overwriting the right half of a wide char
                self.cells[x - 1] = " "
            self.cells[x] = ch
            if w == 2:
                self.cells[x + 1] = ""
            x += w

    def text(self) -> str:
        return "".join(self.cells).rstrip()


def render(events: Iterable[Event], *, width: int = 80, relative: bool = True,
           lang: str = "en", narrator: Narrator | None = None, explain: bool = True,
           show_timers: bool = True, show_drops: bool = True) -> list[str]:
    """The diagram as a list of lines (no colour), each at most ``width`` cells."""
    cols = max(min(width, MAX_WIDTH), MIN_WIDTH)

    evs = narrator.events if narrator is not None else ordered(list(events))
    nar = narrator or Narrator(evs, lang)
    lines_ = Lifelines.of(evs)
    hosts = [h for h in lines_.hosts
             if any(e.get("host") == h and e.get("kind") in ("segment", "state") for e in evs)]
    if not hosts:
        return [tr("term.empty", lang)]
    n = len(hosts)
    side_w = 16
    left = _TCOL + side_w
    right = cols - side_w
    span = max(right - left, 20)
    lanes = [_Lane(h, left + (span * i) // max(n - 1, 1)) for i, h in enumerate(hosts)]
    by_name = {ln.name: ln for ln in lanes}
    why_w = cols - _TCOL - 4
    out: list[str] = []
    head = _Row(cols)
    head.put(0, tr("term.time", lang))
    for ln in lanes:
        head.put(max(ln.x - _cells(ln.name) // 2, _TCOL), ln.name)
    out.append(head.text())
    last_t: float | None = None
    for e in evs:
        t = float(e.get("t", 0.0))
        kind = e.get("kind")
        row: _Row | None = None
        extra: list[str] = []
        if kind == "state":
            lane = by_name.get(str(e.get("host", "")))
            if lane is None:
                continue
            row = _Row(cols, lanes)
            _beside(row, lane, f"[{e.get('to')}]", cols)
        elif kind == "segment" and e.get("event") in ("send", "recv"):
            row = _segment_row(e, lanes, lines_, nar, relative, cols)
            if row is None:
                continue
        elif kind == "segment" and e.get("event") == "drop" and show_drops:
            lane = by_name.get(str(e.get("host", "")))
            if lane is None:
                continue
            row = _Row(cols, lanes)
            msg = "x " + reason_text(str(e.get("reason") or tr("fate.dropped", lang)), lang)
            room = (lane.x - _TCOL - 2) if lane.x >= cols // 2 else (cols - lane.x - 3)
            _beside(row, lane, truncate(msg, max(room, 8)), cols, inward=True)
        elif kind == "timer" and show_timers and (_shown_timer(e) or nar.why(e)):
            lane = by_name.get(str(e.get("host", "")))
            if lane is None:
                continue
            row = _Row(cols, lanes)
            name = timer_name(str(e.get("timer")), lang)
            if e.get("action") == "armed" and isinstance(e.get("deadline"), (int, float)):
                msg = tr("term.timer.armed", lang, name=name,
                         d=seconds(float(e["deadline"]) - t, lang))
            else:
                msg = tr("term.timer.fired", lang, name=name)
            room = (lane.x - _TCOL - 2) if lane.x >= cols // 2 else (cols - lane.x - 3)
            _beside(row, lane, truncate(msg, max(room, 8)), cols, inward=True)
        elif kind == "note" and e.get("text"):
            body = note_text(e, lang)
            parts = wrap(body, cols - _TCOL - 3)
            row = _Row(cols)
            row.put(_TCOL, "# " + parts[0])
            extra = [" " * (_TCOL + 2) + p for p in parts[1:]]
        if row is None:
            continue
        if last_t is not None and t - last_t >= GAP:
            gap = _Row(cols, lanes)
            gap.put(0, "   ...")
            gap.put(left + 2, tr("term.gap", lang, d=seconds(t - last_t, lang)))
            out.append(gap.text())
        row.put(0, f"{t:8.3f}")
        out.append(row.text())
        out.extend(extra)
        if explain:
            why = nar.why(e)
            if why:
                for k, part in enumerate(wrap(why, why_w)):
                    out.append(" " * (_TCOL + 1) + ("· " if k == 0 else "  ") + part)
        last_t = t
    return out


def _shown_timer(e: Event) -> bool:
    if e.get("action") == "fired":
        return True
    return e.get("action") == "armed" and e.get("timer") == "time-wait"


def _beside(row: _Row, lane: _Lane, label: str, cols: int, inward: bool = False) -> None:
    """A label next to a lifeline: outside the lifelines, or (``inward``) between them."""
    w = _cells(label)
    on_right = lane.x >= cols // 2
    if on_right != inward:
        row.put(min(lane.x + 2, cols - w), label)
    else:
        row.put(max(lane.x - w - 1, _TCOL), label)


def _segment_row(e: Event, lanes: list[_Lane], lines_: Lifelines, nar: Narrator,
                 relative: bool, cols: int) -> _Row | None:
    by_name = {ln.name: ln for ln in lanes}
    if e.get("event") == "send":
        a = by_name.get(str(e.get("host", "")))
        dst_host = lines_.host_of(str(e.get("dst", "")))
    else:
        a = by_name.get(str(lines_.host_of(str(e.get("src", "")))))
        dst_host = e.get("host")
    b = by_name.get(str(dst_host)) if dst_host is not None else None
    if a is None or b is None or a is b:
        return None
    row = _Row(cols, lanes)
    flags = str(e.get("flags", ""))
    seq, ack = int(e.get("seq", 0)), int(e.get("ack", 0))
    info = nar.conns.info(e)
    if relative and info is not None:
        seq = info.seq if info.seq is not None else seq
        ack = info.ack if info.ack is not None else ack
    body = f"{flags} seq={seq}" + (f" ack={ack}" if "A" in flags else "") + \
        f" len={e.get('len', 0)}"
    full = body + f" win={e.get('win', 0)}"
    lo, hi = min(a.x, b.x), max(a.x, b.x)
    room = hi - lo - 5
    marks: list[str] = []
    fate = e.get("fate", "delivered")
    if fate not in ("delivered", None):
        marks.append(tr(f"term.fate.{fate}", nar.lang))
    if info is not None and info.retransmission:
        marks.append(tr("svg.mark.retransmission", nar.lang))
    if info is not None and info.old_duplicate:
        marks.append(tr("term.mark.old", nar.lang))
    if info is not None and info.stale:
        marks.append(tr("term.mark.stale", nar.lang))
    tag = "(" + ", ".join(marks) + ")" if marks else ""
    w_tag = _cells(tag)
    # The tag goes beside the arrow: right of it, else left of it, else inside it after
    # a shortened label; never clipped (the step's explanation below says it in words).
    tag_at: int | None = None
    if tag and hi + 2 + w_tag <= cols:
        tag_at = hi + 2
    elif tag and lo - w_tag - 1 >= _TCOL + 1:
        tag_at = lo - w_tag - 1
    inside = bool(tag) and tag_at is None and room - w_tag - 3 >= 8
    room_label = room - w_tag - 1 if inside else room
    label = f" {full} " if _cells(full) + 2 <= room_label else f" {body} "
    if _cells(label) > room_label:
        label = " " + truncate(body, max(room_label - 2, 1)) + " "
    if inside:
        label += tag + " "
    for x in range(lo + 1, hi):
        row.cells[x] = "-"
    if fate == "dropped":
        mid = (lo + hi) // 2
        rng = range(mid + 1, hi) if a.x < b.x else range(lo + 1, mid)
        for x in rng:
            row.cells[x] = " "
        row.cells[mid] = "x"
    elif a.x < b.x:
        row.cells[hi - 1] = ">"
    else:
        row.cells[lo + 1] = "<"
    start = lo + 2 if a.x < b.x else lo + 3
    row.put(start, label)
    if tag_at is not None:
        row.put(tag_at, tag)
    return row


def summarize(events: Iterable[Event]) -> dict[str, Any]:
    """Counts for a footer: segments by fate, final state per host."""
    evs = list(events)
    fates: dict[str, int] = {}
    final: dict[str, str] = {}
    for e in evs:
        if e["kind"] == "segment" and e.get("event") == "send":
            fates[e.get("fate", "delivered")] = fates.get(e.get("fate", "delivered"), 0) + 1
        elif e["kind"] == "state":
            final[e["host"]] = e["to"]
    order = [h for h in Lifelines.of(evs).hosts if h in final]  # the diagram's lane order
    order += [h for h in final if h not in order]
    return {"segments": fates, "final_states": {h: final[h] for h in order}}


def footer(events: list[Event], lang: str, finals: bool = True) -> str:
    """"segments: 9 delivered. final states: client: CLOSED, server: CLOSED." in ``lang``."""
    from tcplab.i18n import colon, enum

    s = summarize(events)
    segs = enum(lang).join(tr("term.count", lang, n=n, what=tr(f"fate.{fate}", lang))
                           for fate, n in s["segments"].items())
    line = tr("term.segments", lang, segs=segs or "0")
    if finals and s["final_states"]:
        fin = enum(lang).join(f"{h}{colon(lang)}{st}" for h, st in s["final_states"].items())
        line += tr("term.finals", lang, finals=fin)
    return line
