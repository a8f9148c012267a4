"""Sequence diagrams in the terminal, drawn from a trace.

One lifeline per host, time flowing down, one arrow per segment labelled
with its flags, seq, ack, len and win; lost segments end in ``x``; each
side's state is written beside its lifeline where it changes; long idle gaps
(2MSL) are compressed into one labelled line.  Sequence numbers are shown
relative to each side's initial sequence number by default (as Wireshark
does), absolute with ``relative=False``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tcplab.trace import Event

GAP = 1.0  # idle time (s) that is compressed into one line


@dataclass
class _Lane:
    name: str
    x: int
    addrs: set[str]


def _hosts(events: list[Event]) -> list[str]:
    """Lanes in order of appearance; a listening socket (``addr:port-*:*``) does not
    put its host first, so the active opener stays on the left, as textbooks draw it."""
    order: list[str] = []
    for e in events:
        h = e.get("host")
        if isinstance(h, str) and h not in order and e["kind"] in ("segment", "state") \
                and not str(e.get("conn", "")).endswith("-*:*"):
            order.append(h)
    for e in events:
        h = e.get("host")
        if isinstance(h, str) and h not in order and e["kind"] == "state":
            order.append(h)
    return order


def _addr(ep: str) -> str:
    return ep.rsplit(":", 1)[0]


def load_steps(lang: str = "en") -> dict[str, str]:
    """One-line explanations of state changes and segments, from the data files."""
    raw = resources.files("tcplab").joinpath("data", "steps.json").read_text("utf-8")
    table: dict[str, dict[str, str]] = json.loads(raw)
    return {k: v.get(lang) or v["en"] for k, v in table.items()}


def explain(ev: Event, steps: dict[str, str]) -> str | None:
    """The explanation of one event, or None."""
    kind = ev["kind"]
    if kind == "state":
        return steps.get(f"{ev['from']}>{ev['to']}")
    if kind == "segment" and ev.get("event") == "send":
        flags = ev.get("flags", "")
        if ev.get("fate") == "dropped":
            return steps.get("lost")
        key = {"S": "seg:S", "SA": "seg:SA", "FA": "seg:FA", "F": "seg:FA", "R": "seg:R",
               "RA": "seg:R"}.get(flags)
        if (key is None and "P" in flags) or ev.get("len"):
            key = "seg:data"
        elif key is None and flags == "A":
            key = "seg:A"
        return steps.get(key) if key else None
    if kind == "timer" and ev.get("timer") == "time-wait" and ev.get("action") == "armed":
        return steps.get("timer:time-wait")
    if kind == "timer" and ev.get("timer") == "retransmit" and ev.get("action") == "fired":
        return steps.get("timer:retransmit")
    return None


def render(events: Iterable[Event], *, width: int = 100, relative: bool = True,
           explain_fn: Callable[[Event], str | None] | None = None,
           show_timers: bool = True, show_drops: bool = True) -> list[str]:
    """The diagram as a list of lines (no colour)."""
    evs = list(events)
    hosts = _hosts(evs)
    if not hosts:
        return ["(empty trace)"]
    n = len(hosts)
    tcol = 9
    left = tcol + 16
    right = width - 16
    span = max(right - left, 20)
    lanes = [_Lane(h, left + (span * i) // max(n - 1, 1), set()) for i, h in enumerate(hosts)]
    by_name = {ln.name: ln for ln in lanes}
    for e in evs:
        if e["kind"] == "segment" and e.get("event") in ("send", "recv") \
                and e.get("host") in by_name:
            by_name[e["host"]].addrs.add(_addr(e["src"]))
    by_addr: dict[str, _Lane] = {}
    for ln in lanes:
        for address in ln.addrs:
            by_addr.setdefault(address, ln)
    isn: dict[str, int] = {}
    for e in evs:
        if e["kind"] == "segment" and e.get("event") in ("send", "recv") \
                and "S" in e.get("flags", ""):
            isn.setdefault(e["src"], e["seq"])

    def rel(ep: str, value: int) -> int:
        base = isn.get(ep)
        if not relative or base is None:
            return value
        return (value - base) & 0xFFFFFFFF

    def blank() -> list[str]:
        row = [" "] * width
        for ln in lanes:
            if ln.x < width:
                row[ln.x] = "|"
        return row

    def put(row: list[str], x: int, text: str) -> None:
        for i, ch in enumerate(text):
            if 0 <= x + i < width:
                row[x + i] = ch

    lines: list[str] = []
    header = [" "] * width
    put(header, 0, "time (s)")
    for ln in lanes:
        put(header, max(ln.x - len(ln.name) // 2, tcol), ln.name)
    lines.append("".join(header).rstrip())
    last_t: float | None = None
    for e in evs:
        t = float(e["t"])
        kind = e["kind"]
        row: list[str] | None = None
        if last_t is not None and t - last_t >= GAP:
            gap = blank()
            put(gap, 0, "   ...")
            put(gap, left + 2, f"~ {t - last_t:.3g} s pass ~")
            lines.append("".join(gap).rstrip())
        if kind == "state":
            lane = by_name.get(e.get("host", ""))
            if lane is None:
                continue
            row = blank()
            label = f"[{e['to']}]"
            if lane.x >= width // 2:
                put(row, lane.x + 2, label)
            else:
                put(row, max(lane.x - len(label) - 1, tcol), label)
        elif kind == "segment" and e.get("event") in ("send", "recv"):
            a = by_name.get(e.get("host", ""))
            b = by_addr.get(_addr(e.get("dst", "")))
            if a is None or b is None or a is b:
                continue
            row = blank()
            flags = e.get("flags", "")
            label = (f" {flags} seq={rel(e['src'], e['seq'])}"
                     + (f" ack={rel(e['dst'], e['ack'])}" if "A" in flags else "")
                     + f" len={e.get('len', 0)} win={e.get('win', 0)} ")
            lo, hi = min(a.x, b.x), max(a.x, b.x)
            for x in range(lo + 1, hi):
                row[x] = "-"
            fate = e.get("fate", "delivered")
            if fate == "dropped":
                mid = (lo + hi) // 2
                if a.x < b.x:
                    for x in range(mid + 1, hi):
                        row[x] = " "
                    row[mid] = "x"
                else:
                    for x in range(lo + 1, mid):
                        row[x] = " "
                    row[mid] = "x"
            elif a.x < b.x:
                row[hi - 1] = ">"
            else:
                row[lo + 1] = "<"
            start = lo + 2 if a.x < b.x else lo + 3
            put(row, start, label[: max(hi - lo - 5, 0)])
            if fate not in ("delivered",):
                note = {"dropped": "lost", "duplicated": "dup", "corrupted": "corrupt"}.get(
                    fate, fate)
                put(row, hi + 2 if hi + 2 < width - 6 else lo - 8, f"({note})")
        elif kind == "segment" and e.get("event") == "drop" and show_drops:
            lane = by_name.get(e.get("host", ""))
            if lane is None:
                continue
            row = blank()
            text = f"x {e.get('reason', 'dropped')}"
            if lane.x >= width // 2:
                put(row, max(lane.x - len(text) - 1, tcol), text)
            else:
                put(row, lane.x + 2, text)
        elif (kind == "timer" and show_timers and e.get("action") in ("fired",)) or (
                kind == "timer" and show_timers and e.get("timer") == "time-wait"
                and e.get("action") == "armed"):
            lane = by_name.get(e.get("host", ""))
            if lane is None:
                continue
            row = blank()
            action = e.get("action")
            text = (f"timer {e['timer']} {action}" + (
                f" (until {e['deadline']:.3f})" if action == "armed" and e.get("deadline")
                else ""))
            if lane.x >= width // 2:
                put(row, max(lane.x - len(text) - 1, tcol), text)
            else:
                put(row, lane.x + 2, text)
        elif kind == "note":
            row = [" "] * width
            put(row, tcol, "# " + str(e.get("text", "")))
        if row is None:
            continue
        put(row, 0, f"{t:8.3f}")
        line = "".join(row).rstrip()
        if explain_fn is not None:
            why = explain_fn(e)
            if why:
                line = line + "\n" + " " * tcol + "  . " + why
        lines.append(line)
        last_t = t
    return lines


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
    return {"segments": fates,
            "final_states": {h: final[h] for h in _hosts(evs) if h in final}}
