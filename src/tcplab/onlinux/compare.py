"""The engine and Linux, the same lesson: where their traces agree and where they differ.

:func:`differences` reads two traces in the JSON form (the engine's from the simulator,
Linux's from :mod:`tcplab.onlinux.run`) and returns :class:`Row` s, one per aspect:

* ``segments``: how many went on the wire and how many were lost;
* ``exchange``: the segments in order (sender, flags, data or not), aligned with
  :mod:`difflib`; a segment only one side sent is a row of its own;
* ``timing``: aligned segments whose time since the previous aligned segment differs
  by more than :func:`tolerance` (so one late segment is one row, not a shift of all
  that follow; times count from each trace's first segment);
* ``retransmissions``: per sender and role (``syn``, ``fin2``, ...), the times of the
  copies after the first: the SYN back-off of Linux against the RFC's, or the same;
* ``states``: each host's states, in order (Linux's run ends in TIME-WAIT without
  waiting its 60 s: that is not a difference, and the row says so);
* ``failed``: calls that failed, with the error (connect(): ETIMEDOUT);
* ``facts``: what the programs saw, from the notes both stories write (``connect``
  results, bytes read, ``bind`` results).

:func:`differences` reads the traces alone. :func:`run_both` runs a lesson in both
(the engine with the ``linux`` profile unless told otherwise, Linux through
:func:`tcplab.onlinux.run.run_lesson`) with the same sysctls and faults.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from tcplab.i18n import text
from tcplab.scenarios import findings
from tcplab.scenarios.base import Switches
from tcplab.trace import Event

if TYPE_CHECKING:
    from tcplab.faults import FaultSpec
    from tcplab.onlinux.run import Lesson, LinuxResult

__all__ = ["CompareError", "Comparison", "Row", "comparable", "differences", "run_both",
           "tolerance"]

MOST = 10  #: rows of one kind shown one by one; the rest are counted


@dataclass(frozen=True)
class Row:
    """One aspect of the lesson: what the engine did, what Linux did, alike or not."""

    aspect: str      #: segments | exchange | timing | retransmissions | states | failed | facts
    subject: str     #: what within the aspect ("client", "syn (client)", "#5")
    engine: str
    linux: str
    same: bool
    note: str = ""   #: why they differ, where it is known and not TCP itself

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tolerance(t: float) -> float:
    """How far apart two times (or two intervals) may be and still count as the same:
    20 ms (the kernels, the wire and tcplab's own scheduling add a few), plus 5 %."""
    return 0.02 + 0.05 * abs(t)


def _sent(events: list[Event]) -> list[Event]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and "copy_of" not in e]


def _t0(events: list[Event]) -> float:
    sent = _sent(events)
    return float(sent[0]["t"]) if sent else 0.0


def _token(e: Event) -> str:
    return f"{e['host']} {e['flags']}{'+data' if e.get('len') else ''}"


def _when(t: float) -> str:
    return f"{t:.3f}"


def _segment_rows(eng: list[Event], lin: list[Event], lang: str) -> list[Row]:
    rows: list[Row] = []
    es, ls = _sent(eng), _sent(lin)
    e0, l0 = _t0(eng), _t0(lin)

    def count(segs: list[Event]) -> str:
        lost = sum(1 for e in segs if e.get("fate") == "dropped")
        return text("compare.v.lost", lang, n=len(segs), lost=lost) if lost else str(len(segs))

    rows.append(Row("segments", "", count(es), count(ls),
                    len(es) == len(ls) and count(es) == count(ls)))
    a, b = [_token(e) for e in es], [_token(e) for e in ls]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    diffs: list[Row] = []
    timing: list[Row] = []
    prev: tuple[float, float] | None = None
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                te, tl = float(es[i]["t"]) - e0, float(ls[j]["t"]) - l0
                if prev is not None:
                    # the time since the previous aligned segment: one late segment is
                    # one row, not a shift of every later one
                    ge, gl = te - prev[0], tl - prev[1]
                    if abs(ge - gl) > tolerance(ge):
                        timing.append(Row("timing", f"#{i + 1} {a[i]}", text(
                            "compare.v.gap", lang, d=f"{ge:+.3f}", t=_when(te)), text(
                            "compare.v.gap", lang, d=f"{gl:+.3f}", t=_when(tl)), False))
                prev = (te, tl)
            continue
        for i in range(i1, i2):
            diffs.append(Row("exchange", f"#{i + 1}", text(
                "compare.v.at", lang, what=a[i], t=_when(float(es[i]["t"]) - e0)), "-", False))
        for j in range(j1, j2):
            note = ""
            if 0 < j < len(b) - 1 and b[j].endswith(" A") and b[j + 1].endswith("+data") \
                    and "SA" in b[j - 1] and a[i1 - 1:i1] == [b[j - 1]] and i1 < len(a) \
                    and a[i1] == b[j + 1]:
                note = text("compare.note.syn-sent-data", lang)
            diffs.append(Row("exchange", f"#{j + 1}", "-", text(
                "compare.v.at", lang, what=b[j], t=_when(float(ls[j]["t"]) - l0)), False,
                note))
    if not diffs:
        rows.append(Row("exchange", "", text("compare.v.order", lang, n=len(a)),
                        text("compare.v.order", lang, n=len(b)), True))
    rows += _most(diffs, lang)
    if not timing:
        rows.append(Row("timing", "", text("compare.v.within", lang),
                        text("compare.v.within", lang), True))
    rows += _most(timing, lang)
    return rows


def _most(rows: list[Row], lang: str) -> list[Row]:
    if len(rows) <= MOST:
        return rows
    first = rows[0]
    more = text("compare.v.more", lang, n=len(rows) - MOST + 1)
    return [*rows[:MOST - 1], Row(first.aspect, "...", more, more, False)]


def _retransmissions(eng: list[Event], lin: list[Event], lang: str) -> list[Row]:
    def by_role(events: list[Event]) -> dict[str, list[float]]:
        t0 = _t0(events)
        out: dict[str, list[float]] = {}
        for r in findings.timeline(events):
            out.setdefault(f"{r['role']} ({r['host']})", []).append(float(r["t"]) - t0)
        return out

    e, li = by_role(eng), by_role(lin)
    rows = []
    for subject in sorted(set(e) | set(li)):
        te, tl = e.get(subject, []), li.get(subject, [])
        same = len(te) == len(tl) and all(abs(x - y) <= tolerance(x)
                                          for x, y in zip(te, tl, strict=True))
        rows.append(Row("retransmissions", subject, _times(te, lang), _times(tl, lang), same))
    if not rows:
        none = text("compare.v.none", lang)
        rows.append(Row("retransmissions", "", none, none, True))
    return rows


def _times(ts: list[float], lang: str) -> str:
    if not ts:
        return text("compare.v.none", lang)
    return text("compare.v.times", lang, ts=" ".join(f"{t:.2f}" for t in ts))


def _paths(events: list[Event]) -> dict[str, list[str]]:
    """Each host's states in order (connections one after the other), listeners left out."""
    paths: dict[str, dict[str, list[str]]] = {}
    for e in events:
        if e["kind"] != "state" or str(e["conn"]).endswith("-*:*"):
            continue
        conns = paths.setdefault(e["host"], {})
        path = conns.setdefault(e["conn"], [e["from"]])
        if path[-1] != e["from"]:
            path.append(e["from"])
        path.append(e["to"])
    return {h: _joined(conns) for h, conns in paths.items()}


def _joined(conns: dict[str, list[str]]) -> list[str]:
    """The paths of a host's connections one after the other, "|" between them."""
    out: list[str] = []
    for path in conns.values():
        if out:
            out.append("|")
        out += path
    return out


def _ended_in_time_wait(events: list[Event]) -> set[str]:
    """Hosts whose TIME-WAIT the Linux run did not wait out (its note says so)."""
    return {str(e.get("host")) for e in events
            if e["kind"] == "note" and e.get("key") == "onlinux.tw-end"}


def _state_rows(eng: list[Event], lin: list[Event], lang: str) -> list[Row]:
    pe, pl = _paths(eng), _paths(lin)
    cut = _ended_in_time_wait(lin)
    rows = []
    for host in sorted(set(pe) | set(pl), key=lambda h: (h not in pe, h)):
        a, b = pe.get(host, []), pl.get(host, [])
        same = a == b
        shown_b = " → ".join(b)
        if not same and host in cut and b and b[-1] == "TIME-WAIT" \
                and a[:len(b)] == b and a[len(b):] == ["CLOSED"]:
            same = True  # Linux's 60 s of TIME-WAIT were not waited out
            shown_b = text("compare.v.tw", lang, path=shown_b)
        note = ""
        if not same and a.count("SYN-RECEIVED") > b.count("SYN-RECEIVED"):
            note = text("compare.note.request-socks", lang)
        rows.append(Row("states", host, " → ".join(a) or "-", shown_b or "-", same, note))
    return rows


def _failed_rows(eng: list[Event], lin: list[Event], lang: str) -> list[Row]:
    def failed(events: list[Event]) -> dict[str, tuple[str, float | None]]:
        out: dict[str, tuple[str, float | None]] = {}
        for f in findings.outcome(events)["failed"]:
            after = f.get("after")
            out[f"{f['host']} {f['call']}()"] = (
                str(f["error"]), float(after) if isinstance(after, (int, float)) else None)
        return out

    def shown(v: tuple[str, float | None] | None) -> str:
        if v is None:
            return text("compare.v.ok", lang)
        if v[1] is None:
            return v[0]
        return text("compare.v.after", lang, err=v[0], t=f"{v[1]:.2f}")

    e, li = failed(eng), failed(lin)
    rows = []
    for subject in sorted(set(e) | set(li)):
        a, b = e.get(subject), li.get(subject)
        same = a is not None and b is not None and a[0] == b[0] and (
            a[1] is None or b[1] is None or abs(a[1] - b[1]) <= tolerance(a[1]))
        rows.append(Row("failed", subject, shown(a), shown(b), same))
    return rows


_FACTS = ("connect", "app-recv", "bind", "accepted")


def _fact_rows(eng: list[Event], lin: list[Event], lang: str) -> list[Row]:
    # Linux's run ends when the lesson's point is shown (TIME-WAIT not waited out); what
    # the engine's programs saw after that moment has nothing to be compared with.
    e0, l0 = _t0(eng), _t0(lin)
    linux_end = max((float(e["t"]) for e in lin), default=0.0) - l0
    later: dict[str, int] = {}

    def facts(events: list[Event], until: float | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in events:
            fact = e.get("fact") if e["kind"] == "note" else None
            if fact not in _FACTS:
                continue
            if until is not None and float(e["t"]) - e0 > until + tolerance(until):
                subject = f"{fact} ({e.get('host')})" if e.get("host") else str(fact)
                later[subject] = later.get(subject, 0) + 1
                continue
            host = str(e.get("host") or "")
            if fact == "connect":
                value = str(e.get("result"))
            elif fact == "app-recv":
                data = str(e.get("data") or "")
                value = repr(data if len(data) <= 24 else data[:21] + "...")
            elif fact == "bind":
                value = f"{e.get('label')}: {e.get('result')}"
            else:
                value = "accept()"
            out.setdefault(f"{fact} ({host})" if host else fact, []).append(value)
        return out

    e, li = facts(eng, linux_end), facts(lin)
    return [Row("facts", subject, "; ".join(e.get(subject, [])) or "-",
                "; ".join(li.get(subject, [])) or "-", e.get(subject) == li.get(subject),
                text("compare.note.later", lang, n=later[subject]) if subject in later
                else "")
            for subject in sorted(set(e) | set(li))]


def differences(engine: list[Event], linux: list[Event], lang: str = "en") -> list[Row]:
    """Every aspect of the two traces, alike or not (see the module doc), in ``lang``."""
    return [*_segment_rows(engine, linux, lang), *_retransmissions(engine, linux, lang),
            *_state_rows(engine, linux, lang), *_failed_rows(engine, linux, lang),
            *_fact_rows(engine, linux, lang)]


# --------------------------------------------------------------------------- running both


class CompareError(ValueError):
    """A name or a switch that cannot be compared (one line says why)."""


@dataclass
class Comparison:
    """One lesson run by the engine and by Linux, and the rows of :func:`differences`."""

    name: str
    engine: list[Event]           #: JSON form
    engine_meta: dict[str, Any]
    linux: LinuxResult
    linux_events: list[Event]     #: JSON form
    rows: list[Row]
    engine_wall: float


def comparable() -> list[str]:
    """What can be compared: the demo, and the catalogue scenarios Linux can run."""
    from tcplab.onlinux.lessons import LESSONS
    from tcplab.scenarios import CATALOGUE

    return ["demo", *(n for n in CATALOGUE if n in LESSONS)]


def run_both(name: str, *, switches: Switches | None = None, sysctls: tuple[str, ...] = (),
             faults: tuple[FaultSpec, ...] = (), profile: str = "linux", seed: int = 1,
             delay: float = 0.05, lang: str = "en",
             notice: Callable[[str], None] | None = None,
             on_linux: Callable[[Lesson, tuple[str, ...]], LinuxResult] | None = None
             ) -> Comparison:
    """Run ``name`` (``demo`` or a catalogue scenario) in the engine with ``profile`` and on
    Linux, with the same sysctls and faults; compare them. The engine runs first (it
    takes milliseconds, and a bad option shows before anything is built). ``on_linux``
    runs the Linux lesson with its sysctls (default :func:`tcplab.onlinux.run.run_lesson`)."""
    import time

    from tcplab.engine.profiles import configured
    from tcplab.onlinux.lessons import (
        NOT_ON_LINUX,
        LessonError,
        demo_lesson,
        lesson_for,
        linux_sysctls,
    )
    from tcplab.onlinux.run import run_lesson
    from tcplab.scenarios import CATALOGUE
    from tcplab.scenarios.base import execute
    from tcplab.scenarios.demo import run_demo
    from tcplab.trace import to_json_event

    if name not in comparable():
        why = NOT_ON_LINUX.get(name)
        if why:
            raise CompareError(f"scenario {name} cannot run on Linux: {why}")
        raise CompareError(f"{name!r} cannot be compared; these can: "
                           f"{', '.join(comparable())}")
    sw = replace(switches or Switches(), profile=profile, sysctls=tuple(sysctls),
                 faults=tuple(faults))
    t0 = time.perf_counter()
    if name == "demo":
        net = run_demo(seed=seed, delay=delay, config=configured(profile, sysctls),
                       faults=tuple(faults))
        engine = net.trace.to_json_list()
        engine_meta: dict[str, Any] = {"command": "demo", "profile": profile, "seed": seed,
                                       "virtual_seconds": round(net.now, 6)}
        linux_sysctl = tuple(sysctls)
        lesson = demo_lesson(delay, linux_sysctl)
    else:
        result = execute(CATALOGUE[name], seed, sw)
        engine, engine_meta = result.events, dict(result.meta)
        linux_sysctl = (*linux_sysctls(sw), *sysctls)
        try:
            lesson = lesson_for(name, sw, linux_sysctl)
        except LessonError as exc:
            raise CompareError(str(exc)) from None
    engine_wall = time.perf_counter() - t0
    if on_linux is None:
        res = run_lesson(lesson, sysctls=linux_sysctl, faults=tuple(faults), lang=lang,
                         notice=notice, command=f"compare {name}")
    else:
        res = on_linux(lesson, linux_sysctl)
    linux = [to_json_event(e) for e in res.events]
    return Comparison(name, engine, engine_meta, res, linux,
                      differences(engine, linux, lang), engine_wall)
