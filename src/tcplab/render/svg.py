"""SVG pictures of a trace: the sequence diagram (and, re-exported, the state diagram).

``sequence_svg(events)`` draws the figure of every TCP textbook: one vertical
lifeline per host, time flowing down, one slanted arrow per segment from its
send time to its arrival time (``t_arrive``; a small fixed slant when the
trace has none).  A lost segment (``fate == "dropped"``) ends in a cross half
way; a corrupted one ends in a cross at the receiver.  Each side's state is
written beside its lifeline where it changes, timers are brackets beside the
lifeline from armed to fired, cancelled or re-armed, a host's drop of a
segment is written beside it with the engine's reason, and the scenario's
notes (what the applications do) run down a column on the right.

Layout (see :mod:`tcplab.render.layout`): positions in time come from a time
axis that is proportional to the trace's time, except that every segment
gets a row of its own and an idle stretch taller than a few rows is
compressed to a fixed height, drawn as a dotted break in every lifeline and
labelled in human units ("59.9 s later").  Then every text finds a free
place: a segment's label along its arrow (above it, or below), a state
beside its lifeline, a timer's name beside its bracket, a note in its
column.  A text that finds no room makes the time axis give that moment
more room, and the picture is laid out again.  No two texts overlap, and the
canvas is sized to what was drawn.

Sequence numbers (``relative=True``) count from each *connection's* ISN
(:mod:`tcplab.render.conns`), so a new connection on the same 4-tuple starts
again at 0, an old duplicate SYN shows how far behind it is
("seq=−100000"), and a segment of an earlier connection that arrives in a
later one keeps its old numbers and is marked.

A trace with many connections (a close storm) is drawn instead as one lane
per connection over a time axis (:mod:`tcplab.render.timeline`).

The output is plain SVG 1.1 with an inline ``<style>``; no scripts, no fonts
or images fetched.  Every drawn event's group carries ``data-i`` (its index in
:func:`tcplab.render.model.ordered` events) so that the HTML report can
highlight the current step; long texts keep their full wording in a
``<title>`` tooltip.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from tcplab.i18n import maybe, seconds
from tcplab.i18n import text as tr
from tcplab.render.conns import Connections
from tcplab.render.layout import Box, Placer, union
from tcplab.render.model import (
    Event,
    Gap,
    Lifelines,
    flag_words,
    ordered,
    segment_kind,
)
from tcplab.render.narrate import Narrator, note_text, reason_text
from tcplab.render.statediagram import state_diagram_svg
from tcplab.render.textsize import text_width
from tcplab.render.theme import FONT, MONO, host_colour, palette

__all__ = ["sequence_svg", "state_diagram_svg"]

_TOP = 100.0          # y of the first event (below the host boxes)
_ROW = 30.0           # vertical room of one segment row
_MAX_GAP = 170.0      # an idle stretch taller than this is compressed ...
_GAP_PX = 58.0        # ... to this height
_SLANT = 16.0         # arrow drop when the trace has no arrival time
_FS = 11.5            # segment label font size
_FS_SMALL = 10.0
_FS_STATE = 11.0
_FS_NOTE = 11.0
_LH = 1.3             # line height / font size
_NOTE_W = 270.0       # width of the notes column
_DROP_W = 230.0       # a drop reason wraps at this width
_TIME_W = 58.0        # the time column
_TIMER_SLOT = {"retransmit": 0, "loss-probe": 0, "syn-ack": 0, "time-wait": 1, "fin-wait-2": 2, "persist": 3,
               "keepalive": 3, "delayed-ack": 4}
_ALWAYS_TIMERS = frozenset({"time-wait", "fin-wait-2", "persist", "keepalive"})
#: a timer that stops mattering when its connection leaves this state
_TIMER_STATE = {"fin-wait-2": "FIN-WAIT-2", "time-wait": "TIME-WAIT"}
_KINDS = ("syn", "fin", "rst", "data", "ack")
_MAX_TRIES = 10


@dataclass
class _Timer:
    host: str
    conn: str
    name: str
    t0: float
    t1: float | None
    end: str              # fired | cancelled | replaced | stopped | open
    i0: int               # index of the arming event
    i1: int | None = None
    deadline: float | None = None


@dataclass
class _Label:
    """A text to place: its lines, font, and where it may go."""

    lines: list[str]
    size: float
    bold: bool = False
    width: float = 0.0
    full: str = ""        # the whole text, when the label was shortened

    def __post_init__(self) -> None:
        if not self.width:
            self.width = max((text_width(s, self.size, self.bold) for s in self.lines),
                             default=0.0)

    @property
    def height(self) -> float:
        return len(self.lines) * self.size * _LH + 1


@dataclass
class _Seg:
    i: int
    e: Event
    src: str
    dst: str
    k_send: int
    k_arr: int | None
    label: _Label
    kind: str
    lost: bool
    corrupted: bool
    marked: bool


@dataclass
class _Anchor:
    t: float
    rank: int             # 0: an arrival (before what it causes at the same instant)
    serial: int
    row: bool             # needs a row of its own (a segment is sent)


@dataclass
class _Placed:
    label: _Label
    box: Box
    anchor: str = "start"


@dataclass
class _Layout:
    ys: list[float]
    gaps: list[Gap]
    bottom: float
    placed: dict[tuple[str, int], _Placed] = field(default_factory=dict)
    failed: dict[int, float] = field(default_factory=dict)
    placer: Placer = field(default_factory=Placer)


def _wrap_px(s: str, size: float, max_w: float, bold: bool = False) -> list[str]:
    """``s`` in lines no wider than ``max_w`` px (breaks at spaces or between CJK characters)."""
    from tcplab.i18n import wrap

    # wrap() counts cells; one cell is about 0.55 em of DejaVu Sans, a CJK character two
    cells = max(int(max_w / (size * 0.6)), 8)
    lines = wrap(s, cells)
    out: list[str] = []
    for line in lines:
        while text_width(line, size, bold) > max_w and cells > 8:
            cells -= 2
            line = " ".join(wrap(line, cells)[:1])
        out.append(line)
    # lines dropped by the narrowing above are re-wrapped together
    if "".join(out).replace(" ", "") != s.replace(" ", "").replace("\n", ""):
        return wrap(s, max(cells - 4, 8))
    return out


class _Diagram:
    def __init__(self, evs: list[Event], pal: dict[str, str], lang: str, relative: bool,
                 all_timers: bool, conns: Connections, narrator: Narrator | None) -> None:
        self.evs = evs
        self.pal = pal
        self.lang = lang
        self.relative = relative
        self.conns = conns
        self.narrator = narrator
        self.lines = Lifelines.of(evs)
        self.hosts = self.lines.hosts
        n = max(len(self.hosts), 1)
        self.side = {h: (-1.0 if i == 0 and n > 1 else 1.0) for i, h in enumerate(self.hosts)}
        self.anchors: list[_Anchor] = []
        self.segs: list[_Seg] = []
        self.states: list[tuple[int, int, str, str]] = []     # (i, k, host, text)
        self.drops: list[tuple[int, int, str, _Label]] = []
        self.notes: list[tuple[int, int, _Label]] = []
        self.timers = _timers(evs, all_timers)
        self.timer_k: dict[int, int] = {}   # event index -> anchor (timers and states)
        self._collect()
        self._horizontal()

    # ------------------------------------------------------------ what to draw

    def _anchor(self, t: float, rank: int = 1, row: bool = False) -> int:
        self.anchors.append(_Anchor(t, rank, len(self.anchors), row))
        return len(self.anchors) - 1

    def _collect(self) -> None:
        lang = self.lang
        for i, e in enumerate(self.evs):
            kind = e.get("kind")
            t = float(e.get("t", 0.0))
            if kind == "segment":
                ev = e.get("event")
                if ev in ("send", "recv") and "src" in e and "dst" in e:
                    seg = self._segment(i, e, t)
                    if seg is not None:
                        self.segs.append(seg)
                elif ev == "drop":
                    host = e.get("host")
                    if isinstance(host, str) and host in self.side:
                        reason = reason_text(str(e.get("reason", "")), lang)
                        full = tr("svg.drop", lang, reason=reason)
                        lab = _Label(_wrap_px(full, _FS_SMALL, _DROP_W), _FS_SMALL)
                        self.drops.append((i, self._anchor(t), host, lab))
            elif kind == "state":
                host = e.get("host")
                k = self._anchor(t)
                self.timer_k[i] = k
                if isinstance(host, str) and host in self.side:
                    self.states.append((i, k, host, str(e.get("to", "?"))))
            elif kind == "timer":
                self.timer_k[i] = self._anchor(t)
            elif kind == "note" and e.get("text"):
                body = note_text(e, lang)
                self.notes.append((i, self._anchor(t),
                                   _Label(_wrap_px(body, _FS_NOTE, _NOTE_W), _FS_NOTE)))

    def _segment(self, i: int, e: Event, t: float) -> _Seg | None:
        ev = e.get("event")
        if ev == "send":
            src = e.get("host")
            if not isinstance(src, str):
                src = self.lines.host_of(str(e["src"]))
            dst = self.lines.host_of(str(e["dst"]))
        else:  # "recv": from an endpoint outside the trace's hosts
            src = self.lines.host_of(str(e["src"]))
            dst = e.get("host")
        if not isinstance(src, str) or not isinstance(dst, str):
            return None
        if src not in self.side or dst not in self.side:
            return None
        k_send = self._anchor(t, 1, row=True)
        ta = e.get("t_arrive")
        k_arr = self._anchor(float(ta), 0) if isinstance(ta, (int, float)) and ta > t else None
        flags = str(e.get("flags", ""))
        fate = str(e.get("fate", "delivered"))
        info = self.conns.info(e)
        seq, ack = int(e.get("seq", 0)), int(e.get("ack", 0))
        if self.relative and info is not None:
            seq = info.seq if info.seq is not None else seq
            ack = info.ack if info.ack is not None else ack
        main = [flag_words(flags), f"seq={_signed(seq)}"]
        if "A" in flags:
            main.append(f"ack={_signed(ack)}")
        main.append(f"len={int(e.get('len', 0) or 0)}")
        marks: list[str] = []
        if info is not None and info.old_duplicate:
            marks.append(tr("svg.mark.old-duplicate", self.lang))
        if info is not None and info.stale:
            marks.append(tr("svg.mark.stale", self.lang))
        if (info is not None and info.retransmission) or e.get("retrans"):
            marks.append(tr("svg.mark.retransmission", self.lang))
        if fate in ("duplicated", "corrupted", "dropped"):
            marks.append(tr(f"svg.mark.{fate}", self.lang))
        if e.get("delayed") and isinstance(ta, (int, float)):
            marks.append(tr("svg.mark.delayed", self.lang, d=seconds(float(ta) - t, self.lang)))
        lines = [" ".join(main)]
        if marks:
            lines.append(" · ".join(marks))
        label = _Label(lines, _FS)
        return _Seg(i, e, src, dst, k_send, k_arr, label,
                    segment_kind(flags, int(e.get("len", 0) or 0)), fate == "dropped",
                    fate == "corrupted", bool(marks and (info is not None and (
                        info.old_duplicate or info.stale))))

    # ------------------------------------------------------------ horizontal geometry

    def _horizontal(self) -> None:
        widest = max((s.label.width for s in self.segs), default=160.0)
        self.spacing = min(max(widest + 110.0, 380.0), 640.0)
        outer: dict[str, float] = {h: 0.0 for h in self.hosts}
        for _i, _k, host, name in self.states:
            outer[host] = max(outer[host], text_width(name, _FS_STATE, True) + 12)
        for _i, _k, host, lab in self.drops:
            outer[host] = max(outer[host], lab.width)
        self.slots: dict[str, int] = {h: 0 for h in self.hosts}
        for tm in self.timers:
            if tm.host in self.slots:
                self.slots[tm.host] = max(self.slots[tm.host], _TIMER_SLOT.get(tm.name, 4) + 1)
        first = self.hosts[0] if self.hosts else ""
        left = _TIME_W + 14.0
        if first and self.side.get(first, 1.0) < 0:
            left += min(outer[first], 260.0) + self._zone(first) + 8.0
        if first:
            left = max(left, _TIME_W + 16 + self._host_w(first) / 2)
        self.xs = {h: left + i * self.spacing for i, h in enumerate(self.hosts)}
        last = self.hosts[-1] if self.hosts else ""
        self.right = (self.xs[last] if last else left) + 100.0
        if last:
            self.right = max(self.right, self.xs[last] + self._zone(last)
                             + min(outer[last], 260.0) + 24.0)
        self.note_x = self.right + 6.0

    def _zone(self, host: str) -> float:
        """Distance from a lifeline to where its texts may start (past its timer brackets)."""
        return 12.0 + 7.0 * self.slots.get(host, 0)

    # ------------------------------------------------------------ vertical layout

    def _order(self) -> list[int]:
        return sorted(range(len(self.anchors)),
                      key=lambda k: (self.anchors[k].t, self.anchors[k].rank,
                                     self.anchors[k].serial))

    def _vertical(self, extra: dict[int, float]) -> tuple[list[float], list[Gap], float]:
        order = self._order()
        rows = sorted({self.anchors[k].t for k in order if self.anchors[k].row})
        steps = sorted(b - a for a, b in itertools.pairwise(rows) if b > a)
        typical = steps[len(steps) // 4] if steps else 1.0
        pxs = _ROW / typical if typical > 0 else _ROW
        ys = [0.0] * len(self.anchors)
        gaps: list[Gap] = []
        y = _TOP
        last_row = -1e18
        prev_t = self.anchors[order[0]].t if order else 0.0
        for k in order:
            a = self.anchors[k]
            dt = a.t - prev_t
            if dt > 0:
                dy = dt * pxs
                if dy > _MAX_GAP:
                    gaps.append(Gap(y + 6, y + 6 + _GAP_PX, dt))
                    y += _GAP_PX + 12
                    last_row = y - _ROW
                else:
                    y += dy
            if a.row:
                y = max(y, last_row + _ROW)
            y += extra.get(k, 0.0)
            if a.row:
                last_row = y
            ys[k] = y
            prev_t = a.t
        return ys, gaps, y

    # ------------------------------------------------------------ placing texts

    def layout(self) -> _Layout:
        extra: dict[int, float] = {}
        lay = self._try(extra)
        for _ in range(_MAX_TRIES):
            if not lay.failed:
                break
            for k, need in lay.failed.items():
                extra[k] = extra.get(k, 0.0) + need
            lay = self._try(extra)
        if lay.failed:  # still no room: shorten what failed and place it where it least harms
            lay = self._try(extra, force=True)
        return lay

    def _try(self, extra: dict[int, float], force: bool = False) -> _Layout:
        ys, gaps, bottom = self._vertical(extra)
        lay = _Layout(ys, gaps, bottom)
        pl = lay.placer
        # fixed: the host boxes and the gap labels
        for h, x in self.xs.items():
            pl.add(Box(x - self._host_w(h) / 2, 36, x + self._host_w(h) / 2, 80))
        tw = text_width(tr("svg.time", self.lang), 10.5, mono=True)
        pl.add(Box(_TIME_W - tw, _TOP - 24, _TIME_W, _TOP - 9))
        mid = self._mid()
        for n, gap in enumerate(gaps):
            lab = _Label([tr("svg.gap", self.lang, d=seconds(gap.seconds, self.lang))],
                         _FS, width=0.0)
            cy = (gap.y0 + gap.y1) / 2
            box = Box(mid - lab.width / 2, cy - lab.height / 2, mid + lab.width / 2,
                      cy + lab.height / 2)
            lay.placed[("gap", n)] = _Placed(lab, pl.add(box), "middle")
        for i, k, host, name in self.states:
            self._place_state(lay, i, k, host, name, force)
        for seg in self.segs:
            self._place_seg(lay, seg, force)
        for i, k, host, lab in self.drops:
            self._place_side(lay, ("drop", i), k, host, lab, force)
        for n, tm in enumerate(self.timers):
            self._place_timer(lay, n, tm, force)
        for i, k, lab in self.notes:
            self._place_note(lay, i, k, lab, force)
        return lay

    def _fail(self, lay: _Layout, k: int, need: float) -> None:
        lay.failed[k] = max(lay.failed.get(k, 0.0), need)

    def _place_state(self, lay: _Layout, i: int, k: int, host: str, name: str,
                     force: bool) -> None:
        lab = _Label([name], _FS_STATE, bold=True)
        w, h = lab.width + 12, 16.0
        s = self.side[host]
        x0 = self.xs[host] + s * self._zone(host)
        y = lay.ys[k]
        cands = []
        for dx in (0.0, w + 6, 2 * (w + 6)):
            for dy in (0.0, 9.0, 18.0, 27.0, -9.0):
                bx = x0 + s * dx
                cands.append(Box(bx - (w if s < 0 else 0), y + dy - h / 2,
                                 bx + (0 if s < 0 else w), y + dy + h / 2))
        got = lay.placer.place(cands)
        if got is None:
            if not force:
                self._fail(lay, k, 18.0)
                return
            got = lay.placer.add(cands[0])
        lay.placed[("state", i)] = _Placed(lab, got, "middle")

    def _mid(self) -> float:
        xs = list(self.xs.values())
        return (min(xs) + max(xs)) / 2 if xs else 200.0

    def _arrow(self, lay: _Layout, seg: _Seg) -> tuple[float, float, float, float]:
        x1, x2 = self.xs[seg.src], self.xs[seg.dst]
        if x1 == x2:
            x2 = x1 + 60.0
        y1 = lay.ys[seg.k_send]
        y2 = lay.ys[seg.k_arr] if seg.k_arr is not None else y1 + _SLANT
        if y2 - y1 < _SLANT and seg.k_arr is None:
            y2 = y1 + _SLANT
        return x1, y1, x2, y2

    def _seg_candidates(self, lay: _Layout, seg: _Seg) -> Iterator[Box]:
        x1, y1, x2, y2 = self._arrow(lay, seg)
        w, h = seg.label.width, seg.label.height
        lo, hi = min(x1, x2), max(x1, x2)

        def line_y(x: float) -> float:
            if x2 == x1:
                return y1
            f = min(max((x - x1) / (x2 - x1), 0.0), 1.0)
            return y1 + f * (y2 - y1)

        span = hi - lo
        fracs = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82, 0.1, 0.9)
        # a steep arrow (a segment held up for seconds): beside the line, left or right
        if abs(x2 - x1) > 1 and abs(y2 - y1) > 0.3 * abs(x2 - x1):
            run = abs(x2 - x1) / abs(y2 - y1)      # px of x per px of y
            pad = 5 + h / 2 * run
            for f in (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.08, 0.92):
                px_, py_ = x1 + f * (x2 - x1), y1 + f * (y2 - y1)
                yield Box(px_ + pad, py_ - h / 2, px_ + pad + w, py_ + h / 2)
                yield Box(px_ - pad - w, py_ - h / 2, px_ - pad, py_ + h / 2)
        # above the arrow first (lazily: the first candidate is usually free), then below
        for below in (False, True):
            for f in fracs:
                cx = x1 + f * (x2 - x1)
                if w < span - 16:
                    cx = min(max(cx, lo + 8 + w / 2), hi - 8 - w / 2)
                xa, xb = cx - w / 2, cx + w / 2
                ya, yb = line_y(xa), line_y(xb)
                if below:
                    edge = max(ya, yb)
                    yield Box(xa, edge + 3, xb, edge + 3 + h)
                else:
                    edge = min(ya, yb)
                    yield Box(xa, edge - 3 - h, xb, edge - 3)

    def _place_seg(self, lay: _Layout, seg: _Seg, force: bool) -> None:
        got = lay.placer.place(self._seg_candidates(lay, seg))
        if got is None and not force:
            self._fail(lay, seg.k_send, _ROW * 0.75)
            return
        if got is None:  # shorten to the flags, full text in the tooltip
            full = " ".join(seg.label.lines)
            seg.label = _Label([seg.label.lines[0].split(" seq=")[0] + " …"], _FS, full=full)
            got = lay.placer.place(self._seg_candidates(lay, seg))
            if got is None:
                return  # the arrow keeps its tooltip; no visible label
        lay.placed[("seg", seg.i)] = _Placed(seg.label, got, "middle")

    def _place_side(self, lay: _Layout, key: tuple[str, int], k: int, host: str,
                    lab: _Label, force: bool) -> None:
        s = self.side[host]
        x0 = self.xs[host] + s * self._zone(host)
        y = lay.ys[k]
        w, h = lab.width, lab.height
        cands = [Box(x0 + s * dx - (w if s < 0 else 0), y + dy,
                     x0 + s * dx + (0 if s < 0 else w), y + dy + h)
                 for dx in (0.0, 30.0, 60.0) for dy in (2.0, 12.0, 24.0, 36.0, -h - 2)]
        got = lay.placer.place(cands)
        if got is None:
            if not force:
                self._fail(lay, k, h + 4)
                return
            return
        lay.placed[key] = _Placed(lab, got, "end" if s < 0 else "start")

    def _timer_span(self, lay: _Layout, tm: _Timer) -> tuple[float, float]:
        y0 = lay.ys[self.timer_k[tm.i0]]
        if tm.i1 is not None and tm.i1 in self.timer_k:
            y1 = lay.ys[self.timer_k[tm.i1]]
        else:
            y1 = lay.bottom + 20
        return y0, max(y1, y0 + 8)

    def _timer_label(self, tm: _Timer) -> _Label:
        name = maybe(f"svgtimer.{tm.name}", self.lang) or tm.name
        if tm.deadline is not None and tm.name in ("time-wait", "fin-wait-2"):
            name = tr("svg.timer.len", self.lang, name=name,
                      d=seconds(tm.deadline - tm.t0, self.lang))
        end = "expired" if tm.name == "time-wait" and tm.end == "fired" else tm.end
        return _Label([tr(f"svg.timer.{end}", self.lang, name=name)], _FS_SMALL)

    def _place_timer(self, lay: _Layout, n: int, tm: _Timer, force: bool) -> None:
        if tm.host not in self.xs or tm.i0 not in self.timer_k:
            return
        lab = self._timer_label(tm)
        y0, y1 = self._timer_span(lay, tm)
        s = self.side[tm.host]
        x0 = self.xs[tm.host] + s * self._zone(tm.host)
        w, h = lab.width, lab.height
        ys_ = [(y0 + y1) / 2 - h / 2]
        step = 7.0
        for d in range(1, 40):
            for sign in (1, -1):
                yy = (y0 + y1) / 2 - h / 2 + sign * d * step
                if y0 - h <= yy <= y1:
                    ys_.append(yy)
        cands = [Box(x0 + s * dx - (w if s < 0 else 0), yy, x0 + s * dx + (0 if s < 0 else w),
                     yy + h) for dx in (0.0, 40.0) for yy in ys_]
        got = lay.placer.place(cands)
        if got is None:
            k_end = self.timer_k.get(tm.i1) if tm.i1 is not None else None
            if not force and k_end is not None:
                self._fail(lay, k_end, h + 6)
            return
        lay.placed[("timer", n)] = _Placed(lab, got, "end" if s < 0 else "start")

    def _place_note(self, lay: _Layout, i: int, k: int, lab: _Label, force: bool) -> None:
        y = lay.ys[k]
        w, h = lab.width, lab.height
        cands = [Box(self.note_x, y - 7 + dy, self.note_x + w, y - 7 + dy + h)
                 for dy in (0.0, 4.0, 8.0, 12.0, 16.0, 20.0, -4.0)]
        got = lay.placer.place(cands)
        if got is None:
            if not force:
                self._fail(lay, k, h / 2 + 4)
            else:
                got = lay.placer.add(cands[0])
            if got is None:
                return
        lay.placed[("note", i)] = _Placed(lab, got)

    def _host_w(self, h: str) -> float:
        addrs = self.lines.addresses.get(h, [])
        sub = addrs[0] if addrs else ""
        return max(170.0, text_width(h, 12, True) + 24, text_width(sub, 10.5, mono=True) + 60)

    # ------------------------------------------------------------ drawing

    def draw(self, title: str | None) -> str:
        lay = self.layout()
        pal, lang = self.pal, self.lang
        out: list[str] = []
        texts: list[str] = []
        bottom = lay.bottom + 30.0
        for tm in self.timers:
            if tm.end == "open":
                bottom = max(bottom, self._timer_span(lay, tm)[1] + 10)
        # lifelines, broken by compressed gaps
        for x in self.xs.values():
            y = _TOP - 18.0
            for gap in lay.gaps:
                out.append(f'<line class="life" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" '
                           f'y2="{gap.y0:.1f}"/>')
                out.append(f'<line class="life-gap" x1="{x:.1f}" y1="{gap.y0:.1f}" '
                           f'x2="{x:.1f}" y2="{gap.y1:.1f}"/>')
                y = gap.y1
            out.append(f'<line class="life" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" '
                       f'y2="{bottom:.1f}"/>')
        xs_all = list(self.xs.values()) or [200.0]
        for n, gap in enumerate(lay.gaps):
            out.append(f'<rect class="gapband" x="{min(xs_all) - 40:.1f}" y="{gap.y0:.1f}" '
                       f'width="{max(xs_all) - min(xs_all) + 80:.1f}" '
                       f'height="{gap.y1 - gap.y0:.1f}" rx="6"/>')
            texts.append(self._text(lay.placed[("gap", n)], "gap"))
        # timers
        for n, tm in enumerate(self.timers):
            if tm.host not in self.xs or tm.i0 not in self.timer_k:
                continue
            s = self.side[tm.host]
            bx = self.xs[tm.host] + s * (9.0 + 7.0 * _TIMER_SLOT.get(tm.name, 4))
            y0, y1 = self._timer_span(lay, tm)
            tick = -s * 4.0
            cls = f"tm tm-{escape(tm.name)}" + (" open" if tm.end == "open" else "")
            end_mark = ""
            if tm.end in ("cancelled", "stopped", "replaced"):
                end_mark = (f'<path class="tm-end" d="M{bx - 4:.1f},{y1 - 4:.1f} l8,8 '
                            f'm0,-8 l-8,8"/>')
            tip = self._timer_label(tm).lines[0]
            out.append(f'<g class="{cls}" data-i="{tm.i1 if tm.i1 is not None else tm.i0}">'
                       f'<title>{escape(tip)}</title>'
                       f'<path d="M{bx + tick:.1f},{y0:.1f} H{bx:.1f} V{y1:.1f}'
                       + ("" if tm.end == "open" else f" H{bx + tick:.1f}") + f'"/>{end_mark}</g>')
            tp = lay.placed.get(("timer", n))
            if tp is not None:
                texts.append(self._text(tp, f"tmt tmt-{escape(tm.name)}"))
        # segments
        for seg in self.segs:
            x1, y1, x2, y2 = self._arrow(lay, seg)
            ex, ey = ((x1 + x2) / 2, (y1 + y2) / 2) if seg.lost else (x2, y2)
            cls = f"seg sq-k-{seg.kind}" + (" lost" if seg.lost else "") + (
                " marked" if seg.marked else "")
            tip = _tooltip(seg.e, lang, seg.label.full or " ".join(seg.label.lines))
            parts = [f'<g class="{cls}" data-i="{seg.i}"><title>{escape(tip)}</title>'
                     f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{ex:.1f}" y2="{ey:.1f}"'
                     + ("" if seg.lost else f' marker-end="url(#sq-ah-{seg.kind})"') + "/>"]
            if seg.lost or seg.corrupted:
                parts.append(f'<path class="cross" d="M{ex - 6:.1f},{ey - 6:.1f} l12,12 '
                             f'm0,-12 l-12,12"/>')
            parts.append("</g>")
            out.append("".join(parts))
            sp = lay.placed.get(("seg", seg.i))
            if sp is not None:
                texts.append(self._text(sp, f"sl sq-k-{seg.kind}" + (
                    " marked" if seg.marked else ""), data_i=seg.i, tip=tip))
        # time column
        times: list[str] = []
        fine = any(0 < abs(float(a.e["t"]) - float(b.e["t"])) < 1e-3
                   for a, b in zip(self.segs, self.segs[1:], strict=False))
        tfmt = "{:.6f}" if fine else "{:.3f}"
        last_time = ""
        for seg in self.segs:
            y = lay.ys[seg.k_send]
            stamp = tfmt.format(float(seg.e["t"]))
            if stamp == last_time:
                continue
            w = text_width(stamp, 10.5, mono=True)
            box = Box(_TIME_W - w, y - 6, _TIME_W, y + 7)
            if lay.placer.free(box):
                lay.placer.add(box)
                last_time = stamp
                times.append(f'<text class="mono" x="{_TIME_W:.1f}" y="{y + 4:.1f}" '
                             f'text-anchor="end">{stamp}</text>')
        # states, drops, notes
        for i, _k, _host, _name in self.states:
            stp = lay.placed.get(("state", i))
            if stp is None:
                continue
            b = stp.box
            e = self.evs[i]
            texts.append(f'<g class="st" data-i="{i}"><title>{escape(_state_tip(e, lang))}'
                         f'</title><rect x="{b.x0:.1f}" y="{b.y0:.1f}" width="{b.width:.1f}" '
                         f'height="{b.height:.1f}" rx="4"/>'
                         f'<text x="{(b.x0 + b.x1) / 2:.1f}" y="{b.y0 + 12:.1f}" '
                         f'text-anchor="middle">{escape(stp.label.lines[0])}</text></g>')
        for i, _k, _host, _lab in self.drops:
            dp = lay.placed.get(("drop", i))
            if dp is not None:
                texts.append(self._text(dp, "drop", data_i=i))
        for i, _k, _lab in self.notes:
            np_ = lay.placed.get(("note", i))
            if np_ is not None:
                b = np_.box
                out.append(f'<line class="note-bar" x1="{b.x0 - 5:.1f}" y1="{b.y0 + 1:.1f}" '
                           f'x2="{b.x0 - 5:.1f}" y2="{b.y1 - 1:.1f}"/>')
                texts.append(self._text(np_, "note", data_i=i))
        # header
        head: list[str] = []
        for idx, (h, x) in enumerate(self.xs.items()):
            addrs = self.lines.addresses.get(h, [])
            sub = addrs[0] if addrs and addrs[0] != h else ""
            if len(addrs) > 1 and sub:
                sub += f" (+{len(addrs) - 1})"
            w = self._host_w(h)
            col = host_colour(pal, idx)
            head.append(f'<rect x="{x - w / 2:.1f}" y="38" width="{w:.1f}" '
                        f'height="{40 if sub else 28}" rx="6" fill="{pal["panel"]}" '
                        f'stroke="{col}" stroke-width="1.6"/>'
                        f'<text class="host" x="{x:.1f}" y="57" text-anchor="middle">'
                        f'{escape(h)}</text>')
            if sub:
                head.append(f'<text class="mono" x="{x:.1f}" y="72" text-anchor="middle">'
                            f'{escape(sub)}</text>')
        tlab = tr("svg.time", lang)
        head.append(f'<text class="mono" x="{_TIME_W:.1f}" y="{_TOP - 12:.1f}" '
                    f'text-anchor="end">{escape(tlab)}</text>')
        # extent of what is drawn so far, then the legend and the title around it
        shapes = [Box(min(xs_all) - 48, 36, max(xs_all) + 48, bottom)]
        ext = union([*lay.placer.boxes, *shapes]) or Box(0, 0, 400, 200)
        legend, ly_end, lw = self._legend(ext.x0 + 8, bottom + 22, ext.x1 - ext.x0 - 16)
        x_lo = min(ext.x0, 4.0) - 8
        x_hi = max(ext.x1, ext.x0 + lw + 16) + 12
        shift = 0.0
        ttl: list[str] = []
        if title:
            tlines = _wrap_px(title, 16, max(x_hi - x_lo - 24, 320), bold=True)
            tw_ = max(text_width(line, 16, True) for line in tlines)
            x_hi = max(x_hi, x_lo + tw_ + 24)
            shift = 22.0 * (len(tlines) - 1)
            for n, line in enumerate(tlines):
                ttl.append(f'<text class="title" x="{x_lo + 12:.1f}" y="{24 + 22 * n:.1f}">'
                           f"{escape(line)}</text>")
        width = x_hi - x_lo
        height = ly_end + 12 + shift
        body = "".join([*out, *texts, *times, *head, *legend])
        return "".join([
            f'<svg xmlns="http://www.w3.org/2000/svg" class="sq" lang="{lang}" '
            f'width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="{x_lo:.1f} 0 {width:.0f} {height:.0f}" '
            f'role="img" aria-label="{escape(title or tr("svg.aria", lang))}">',
            _style(pal), _markers(pal),
            f'<rect x="{x_lo:.1f}" y="0" width="{width:.0f}" height="{height:.0f}" '
            f'fill="{pal["bg"]}"/>', *ttl,
            f'<g transform="translate(0,{shift:.1f})">' if shift else "<g>",
            body, "</g></svg>\n"])

    def _text(self, p: _Placed, cls: str, data_i: int | None = None, tip: str = "") -> str:
        b = p.box
        lab = p.label
        if p.anchor == "middle":
            x = (b.x0 + b.x1) / 2
        elif p.anchor == "end":
            x = b.x1
        else:
            x = b.x0
        lh = lab.size * _LH
        spans = []
        for n, line in enumerate(lab.lines):
            y = b.y0 + lab.size * 0.95 + n * lh
            small = ' class="mark"' if n > 0 and cls.startswith("sl") else ""
            spans.append(f'<tspan x="{x:.1f}" y="{y:.1f}"{small}>{escape(line)}</tspan>')
        di = f' data-i="{data_i}"' if data_i is not None else ""
        body = (f'<text class="{cls} lbl" text-anchor="{p.anchor}"{di}>' + "".join(spans)
                + "</text>")
        if lab.full or tip:  # the tooltip on a group, so that the text holds only its words
            return f"<g><title>{escape(tip or lab.full)}</title>{body}</g>"
        return body

    def _legend(self, x0: float, y0: float, max_w: float) -> tuple[list[str], float, float]:
        lang = self.lang
        items: list[tuple[str, str]] = [(k, tr(f"svg.legend.{k}", lang)) for k in _KINDS]
        out = ['<g class="legend">']
        x, y = x0, y0
        widest = 0.0
        for k, word in items:
            w = 34 + text_width(word, 12) + 18
            if x + w > x0 + max(max_w, 300) and x > x0:
                x, y = x0, y + 20
            out.append(f'<g class="sq-k-{k}"><line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 26:.1f}" '
                       f'y2="{y:.1f}" stroke-width="2"/><text x="{x + 31:.1f}" y="{y + 4:.1f}">'
                       f"{escape(word)}</text></g>")
            x += w
            widest = max(widest, x - x0)
        extra = [("cross", tr("svg.legend.lost", lang))]
        if self.relative:
            extra.append(("mono", tr("svg.legend.relative", lang)))
        for kind, word in extra:
            w = (18 if kind == "cross" else 0) + (text_width(word, 12) if kind == "cross"
                                                    else text_width(word, 10.5, mono=True))
            w += 18
            if x + w > x0 + max(max_w, 300) and x > x0:
                x, y = x0, y + 20
            if kind == "cross":
                out.append(f'<path class="cross" d="M{x:.1f},{y - 5:.1f} l10,10 m0,-10 l-10,10"/>'
                           f'<text x="{x + 16:.1f}" y="{y + 4:.1f}">{escape(word)}</text>')
            else:
                out.append(f'<text class="mono" x="{x:.1f}" y="{y + 4:.1f}">{escape(word)}</text>')
            x += w
            widest = max(widest, x - x0)
        out.append("</g>")
        return out, y + 10, widest


def _signed(v: int) -> str:
    return f"−{-v}" if v < 0 else str(v)


def _style(pal: dict[str, str]) -> str:
    kinds = "".join(
        f".sq-k-{k} line,.sq-k-{k} path{{stroke:{pal[k]}}}.sq .sq-k-{k}.sl{{fill:{pal[k]}}}"
        for k in _KINDS)
    halo = (f"paint-order:stroke;stroke:{pal['bg']};stroke-width:3.5px;"
            "stroke-linejoin:round")
    return (
        f"<style>"
        f".sq text{{font-family:{FONT};font-size:12px;fill:{pal['fg']}}}"
        f".sq .title{{font-size:16px;font-weight:bold}}"
        f".sq .host{{font-weight:bold}}"
        f".sq .lbl{{{halo}}}"
        f".sq .sl{{font-size:{_FS}px}}"
        f".sq .sl .mark{{font-size:{_FS_SMALL}px;font-weight:bold;fill:{pal['hl']}}}"
        f".sq .mono{{font-family:{MONO};font-size:10.5px;fill:{pal['muted']}}}"
        f".sq .seg line{{stroke-width:1.6}}"
        f".sq .seg.marked line{{stroke-width:2.4}}"
        f".sq .lost line{{stroke-dasharray:5 3}}"
        f".sq .cross{{stroke:{pal['lost']};stroke-width:2.4;fill:none}}"
        f".sq .life{{stroke:{pal['line']};stroke-width:1.4}}"
        f".sq .life-gap{{stroke:{pal['line']};stroke-width:1.4;stroke-dasharray:2 4}}"
        f".sq .st rect{{fill:{pal['state_bg']};stroke:{pal['state_stroke']}}}"
        f".sq .st text{{fill:{pal['state_fg']};font-weight:bold;font-size:{_FS_STATE}px}}"
        f".sq .tm path{{fill:none;stroke:{pal['timer']};stroke-width:1.5}}"
        f".sq .tm-time-wait path{{stroke:{pal['tw']};stroke-width:2.2}}"
        f".sq .tmt{{fill:{pal['timer']};font-size:{_FS_SMALL}px}}"
        f".sq .tmt-time-wait{{fill:{pal['tw']}}}"
        f".sq .open path{{stroke-dasharray:4 3}}"
        f".sq .gapband{{fill:{pal['panel']};opacity:.85}}"
        f".sq .gap{{fill:{pal['muted']};font-style:italic;font-size:{_FS}px}}"
        f".sq .drop{{fill:{pal['lost']};font-size:{_FS_SMALL}px}}"
        f".sq .note{{fill:{pal['muted']};font-size:{_FS_NOTE}px;font-style:italic}}"
        f".sq .note-bar{{stroke:{pal['border']};stroke-width:2}}"
        f".sq .current line{{stroke-width:3.2}}.sq text.current{{text-decoration:underline}}"
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
                 all_timers: bool = False, lang: str = "en",
                 narrator: Narrator | None = None, max_connections: int = 24) -> str:
    """The sequence diagram of ``events`` as an SVG document (a string).

    ``relative`` writes sequence and acknowledgement numbers relative to each
    connection's ISNs; absolute by default.  Timers: TIME-WAIT (2MSL),
    FIN-WAIT-2, persist and keep-alive are always drawn; a retransmission
    timer only when it fires (an RTO that an ACK cancels is the normal case
    and would bracket every segment), unless ``all_timers``, which also draws
    the delayed-ACK timer.  A trace of more than ``max_connections``
    connections is drawn as lanes over a time axis instead.
    """
    pal = palette(theme)
    evs = narrator.events if narrator is not None else ordered(events)
    conns = narrator.conns if narrator is not None else Connections(evs)
    if conns.count() > max_connections:
        from tcplab.render.timeline import timeline_svg

        return timeline_svg(evs, theme=theme, title=title, lang=lang, conns=conns)
    return _Diagram(evs, pal, lang, relative, all_timers, conns, narrator).draw(title)


def _tooltip(e: Event, lang: str, label: str) -> str:
    parts = [label, f"t={float(e.get('t', 0.0)):.6f}", f"{e.get('src')} → {e.get('dst')}",
             f"[{e.get('flags', '')}] seq={e.get('seq')} ack={e.get('ack')} "
             f"len={e.get('len')} win={e.get('win')}"]
    opts = e.get("opts")
    if opts:
        parts.append("opts: " + ", ".join(str(o) for o in opts))
    parts.append(tr("svg.tip.fate", lang, fate=tr(f"fate.{e.get('fate', 'delivered')}", lang)))
    if "t_arrive" in e:
        parts.append(tr("svg.tip.arrives", lang, t=f"{float(e['t_arrive']):.6f}"))
    return "\n".join(parts)


def _state_tip(e: Event, lang: str) -> str:
    from tcplab.render.narrate import cause_text

    cause = cause_text(str(e.get("cause") or ""), lang)
    return (f"t={float(e.get('t', 0.0)):.6f} {e.get('host')}: {e.get('from')} → {e.get('to')}"
            + (f" ({cause})" if cause else ""))


def _timers(evs: Sequence[Event], all_timers: bool) -> list[_Timer]:
    """Intervals from armed to fired / cancelled / replaced, per (host, conn, timer).

    A timer the trace never stops ends where its connection leaves the state it
    belongs to (FIN-WAIT-2's timer when the FIN arrives, 2MSL when TIME-WAIT
    ends), or when the connection is CLOSED; such an end is drawn as
    "stopped".  A ``cancelled`` event in the trace is used when there is one.
    """
    open_: dict[tuple[str, str, str], _Timer] = {}
    done: list[_Timer] = []
    for i, e in enumerate(evs):
        kind = e.get("kind")
        if kind == "state":
            host, conn = str(e.get("host")), str(e.get("conn"))
            for (h, c, name), cur in list(open_.items()):
                if h != host or c != conn:
                    continue
                owner = _TIMER_STATE.get(name)
                left_owner = owner is not None and e.get("from") == owner
                if left_owner or e.get("to") == "CLOSED":
                    cur.t1, cur.i1, cur.end = float(e["t"]), i, "stopped"
                    done.append(open_.pop((h, c, name)))
            continue
        if kind != "timer":
            continue
        key = (str(e.get("host")), str(e.get("conn")), str(e.get("timer")))
        t = float(e.get("t", 0.0))
        action = e.get("action")
        cur_ = open_.pop(key, None)
        if cur_ is not None:
            cur = cur_
            cur.t1, cur.i1 = t, i
            if action == "armed":
                cur.end = "replaced"
            elif action in ("fired", "cancelled", "replaced"):
                cur.end = str(action)
            else:
                cur.end = "cancelled"
            done.append(cur)
        if action == "armed":
            dl = e.get("deadline")
            open_[key] = _Timer(key[0], key[1], key[2], t, None, "open", i,
                                deadline=float(dl) if isinstance(dl, (int, float)) else None)
    done.extend(open_.values())
    keep: list[_Timer] = []
    for tm in done:
        if tm.name == "delayed-ack" and not all_timers:
            continue
        if tm.name in ("retransmit", "loss-probe", "syn-ack") and not all_timers \
                and tm.end != "fired":
            continue
        if tm.name in _ALWAYS_TIMERS or all_timers or tm.end == "fired":
            keep.append(tm)
    keep.sort(key=lambda tm: (tm.t0, tm.i0))
    return keep
