"""The "why" of every step, written from the run itself, in English or Chinese.

One :class:`Narrator` reads a whole trace once and can then say, for any of
its events, what a learner should understand at that moment.  The terminal
diagram, the HTML step-through and the pictures all ask the same narrator,
so they say the same thing.

Numbers come from the run, never from the text: the TIME-WAIT length is
measured from the trace's own ``time-wait`` timer (its deadline minus the
time it was armed), the retransmission timeout from the ``retransmit`` timer
that fired, and so on; :class:`RunInfo` carries what the trace cannot show
(the configured MSL, the switches of an experiment).  A run without
TIME-WAIT (``--time-wait 0``) is told as such, never as "wait 2MSL".

Texts live in the catalogues of :mod:`tcplab.i18n`; this module only picks
the key and fills in the numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tcplab.i18n import colon, maybe, phrase, seconds, text
from tcplab.render.conns import Connections
from tcplab.render.model import Event, ordered

LINUX_TIME_WAIT = 60.0  #: TCP_TIMEWAIT_LEN, a constant in the Linux kernel


@dataclass
class RunInfo:
    """What the trace cannot say about its run: configuration and experiment switches."""

    msl: float | None = None
    time_wait: float | None = None    #: configured TIME-WAIT length (None: 2 * MSL)
    delay: float | None = None        #: one-way delay of the simulated link
    switches: list[str] = field(default_factory=list)  #: e.g. ["--time-wait 0"]
    scenario: str | None = None
    counterfactual: bool = False
    source: str = "sim"               #: sim | tun | pcap

    @property
    def tw_configured(self) -> float | None:
        if self.time_wait is not None:
            return self.time_wait
        return 2 * self.msl if self.msl is not None else None

    @classmethod
    def of_meta(cls, meta: dict[str, Any] | None) -> RunInfo:
        """From the ``meta`` the commands write next to a trace."""
        meta = meta or {}
        sw = meta.get("switches") if isinstance(meta.get("switches"), dict) else {}
        flags = meta.get("flags")
        info = cls(msl=_num(meta.get("msl")), delay=_num(meta.get("delay")),
                   time_wait=_num(sw.get("time_wait")) if sw else None,
                   scenario=meta.get("scenario") if isinstance(meta.get("scenario"), str)
                   else None,
                   switches=list(flags) if isinstance(flags, list) else [])
        info.counterfactual = bool(info.switches)
        return info


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


_POLLED = re.compile(r"\s*\(polled every [^)]*\)$")


def cause_key(cause: str) -> str:
    """The catalogue form of a cause: without the kernel poller's "(polled every 50 ms)"."""
    return _POLLED.sub("", cause)


def reason_text(reason: str, lang: str) -> str:
    """An engine drop reason in ``lang`` (as written when the catalogue has none)."""
    if lang == "en" or not reason:
        return reason
    return phrase("reason", reason, lang) or reason


def cause_text(cause: str, lang: str) -> str:
    """A state change's cause as a short phrase in ``lang``."""
    if lang == "en" or not cause:
        return cause
    return phrase("causename", cause_key(cause), lang) or cause


def timer_name(name: str, lang: str) -> str:
    return maybe(f"timer.{name}", lang) or name


def note_text(e: Event, lang: str) -> str:
    """A scenario's note in ``lang``: its ``key`` in the catalogue, filled from its fields."""
    key = e.get("key")
    if isinstance(key, str):
        raw = {k: v for k, v in e.items() if k not in ("kind", "text", "args")}
        args = e.get("args")
        if isinstance(args, dict):
            raw.update(args)
        fields = {k: _field(k, v, lang) for k, v in raw.items()}
        found = maybe(f"note.{key}", lang, **fields)
        if found is not None:
            return found
    return str(e.get("text", ""))


def _field(name: str, v: Any, lang: str) -> Any:
    """A note's field for its text: floats short, words from the catalogue ("who.restart")."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return maybe(f"{name}.{v}", lang) or v
    return v


@dataclass
class _Timing:
    tw: dict[tuple[str, str], float] = field(default_factory=dict)       # first 2MSL armed
    tw_none: set[tuple[str, str]] = field(default_factory=set)            # TIME-WAIT disabled
    armed: dict[tuple[str, str, str], float] = field(default_factory=dict)


class Narrator:
    """Explanations of the events of one trace."""

    def __init__(self, events: list[Event], lang: str = "en",
                 info: RunInfo | None = None) -> None:
        self.lang = lang
        self.info = info or RunInfo()
        self.events = ordered(events)
        self.conns = Connections(self.events)
        self._why: dict[int, str] = {}
        self._scan()

    # ------------------------------------------------------------ public

    def why(self, e: Event) -> str | None:
        """The explanation of ``e`` (an event of this trace), or None."""
        return self._why.get(id(e))

    def tw_length(self, host: str | None = None, conn: str | None = None) -> float | None:
        """The TIME-WAIT length this run used: measured, else configured."""
        if host is not None and conn is not None and (host, conn) in self._timing.tw:
            return self._timing.tw[(host, conn)]
        if self._timing.tw:
            return next(iter(self._timing.tw.values()))
        return self.info.tw_configured

    def t(self, key: str, **fmt: Any) -> str:
        return text(key, self.lang, **fmt)

    # ------------------------------------------------------------ scanning

    def _scan(self) -> None:
        timing = _Timing()
        for e in self.events:
            if e.get("kind") == "timer" and e.get("timer") == "time-wait" \
                    and e.get("action") == "armed" and isinstance(e.get("deadline"), (int, float)):
                key = (str(e.get("host")), str(e.get("conn")))
                timing.tw.setdefault(key, float(e["deadline"]) - float(e["t"]))
            if e.get("kind") == "state" and e.get("from") == "TIME-WAIT" \
                    and "disabled" in str(e.get("cause", "")):
                timing.tw_none.add((str(e.get("host")), str(e.get("conn"))))
        self._timing = timing
        armed: dict[tuple[str, str, str], float] = {}
        tw_arms: dict[tuple[str, str], int] = {}
        for e in self.events:
            kind = e.get("kind")
            why: str | None = None
            if kind == "state":
                why = self._state(e)
            elif kind == "segment":
                why = self._segment(e)
            elif kind == "timer":
                key3 = (str(e.get("host")), str(e.get("conn")), str(e.get("timer")))
                action = e.get("action")
                if action == "armed":
                    armed[key3] = float(e["t"])
                    if e.get("timer") == "time-wait":
                        n = tw_arms.get(key3[:2], 0)
                        tw_arms[key3[:2]] = n + 1
                        why = self._time_wait_armed(e, restart=n > 0)
                    elif e.get("timer") == "fin-wait-2" and isinstance(e.get("deadline"),
                                                                     (int, float)):
                        why = self.t("why.timer.fin-wait-2",
                                     d=seconds(float(e["deadline"]) - float(e["t"]), self.lang))
                elif action == "fired":
                    since = armed.pop(key3, None)
                    d = seconds(float(e["t"]) - since, self.lang) if since is not None else "?"
                    name = str(e.get("timer"))
                    if name in ("retransmit", "loss-probe", "syn-ack", "delayed-ack", "persist",
                                "keepalive"):
                        why = self.t(f"why.timer.{name}", d=d)
                elif action == "cancelled":
                    armed.pop(key3, None)
            elif kind == "note":
                why = None
            if why:
                self._why[id(e)] = why

    def _tw_for(self, e: Event) -> float | None:
        key = (str(e.get("host")), str(e.get("conn")))
        if key in self._timing.tw_none:
            return 0.0
        return self._timing.tw.get(key, self.info.tw_configured)

    def _linux(self, tw: float) -> str:
        if abs(tw - LINUX_TIME_WAIT) < 1e-9:
            return self.t("why.linux.same")
        return self.t("why.linux.other", linux=seconds(LINUX_TIME_WAIT, self.lang))

    def _time_wait_armed(self, e: Event, restart: bool) -> str:
        d = float(e.get("deadline") or e["t"]) - float(e["t"])
        tw = seconds(d, self.lang)
        if restart:
            return self.t("why.timer.time-wait.restart", tw=tw)
        msl = self.info.msl
        if msl is not None and abs(2 * msl - d) < 1e-6:
            return self.t("why.timer.time-wait.msl", msl=seconds(msl, self.lang), tw=tw,
                          linux=self._linux(d))
        return self.t("why.timer.time-wait", tw=tw, linux=self._linux(d))

    def _state(self, e: Event) -> str | None:
        cause = cause_key(str(e.get("cause") or ""))
        frm, to = str(e.get("from")), str(e.get("to"))
        host = str(e.get("host", ""))
        if cause:
            by_cause = maybe(f"cause.{cause}", self.lang, host=host)
            if by_cause is None:  # a cause with numbers in it: "... ({n}) reached"
                by_cause = phrase("cause", cause, self.lang)
            if by_cause is not None:
                return by_cause
        if to == "TIME-WAIT":
            tw = self._tw_for(e)
            if tw == 0.0:
                return self.t("step.to-TIME-WAIT.none")
            step = maybe(f"step.{frm}>{to}", self.lang, host=host,
                         tw=seconds(tw, self.lang) if tw is not None else "2MSL")
            return step
        if frm == "TIME-WAIT" and to == "CLOSED":
            tw = self._tw_for(e)
            if "RST" in cause:
                return None
            return self.t("step.TIME-WAIT>CLOSED",
                          tw=seconds(tw, self.lang) if tw else "2MSL")
        if to == "CLOSED" and frm not in ("LAST-ACK", "TIME-WAIT", "CLOSING"):
            if "RST" in cause or "reset" in cause.lower():
                return self.t("step.to-CLOSED.rst", frm=frm)
            if "timeout" in cause.lower() or "retries" in cause.lower():
                return self.t("step.to-CLOSED.timeout", frm=frm)
            if cause:
                return self.t("step.to-CLOSED.other", frm=frm, cause=cause_text(cause, self.lang))
        return maybe(f"step.{frm}>{to}", self.lang, host=host)

    def _segment(self, e: Event) -> str | None:
        ev = e.get("event")
        if ev not in ("send", "recv"):
            return None
        flags = str(e.get("flags", ""))
        info = self.conns.info(e)
        parts: list[str] = []
        length = int(e.get("len", 0) or 0)
        if info is not None and info.old_duplicate:
            parts.append(self.t("seg.old-duplicate"))
        elif "R" in flags:
            parts.append(self.t("seg.R"))
        elif "S" in flags and "A" in flags:
            parts.append(self.t("seg.SA.retrans" if info and info.retransmission else "seg.SA"))
        elif "S" in flags:
            parts.append(self.t("seg.S.retrans" if info and info.retransmission else "seg.S",
                                n=length))
        elif "F" in flags and length:
            parts.append(self.t("seg.FIN-data", n=length))
        elif "F" in flags:
            parts.append(self.t("seg.FA.retrans" if info and info.retransmission else "seg.FA"))
        elif info is not None and info.keepalive:
            parts.append(self.t("seg.keepalive"))
        elif length:
            parts.append(self.t("seg.data.retrans" if info and info.retransmission
                                else "seg.data", n=length))
        elif "A" in flags:
            parts.append(self.t("seg.A"))
        else:
            return None
        cookie = _fast_open(e)
        if "S" in flags and length and not (info and info.old_duplicate):
            parts.append(self.t("seg.syn-data.cookie" if cookie else "seg.syn-data", n=length))
        elif "S" in flags and "A" not in flags and cookie == "":
            parts.append(self.t("seg.fo-request"))
        elif "S" in flags and "A" in flags and cookie:
            parts.append(self.t("seg.fo-cookie", cookie=cookie))
        if "S" in flags and "A" in flags and info is not None and info.ack is not None \
                and info.ack > 1:
            parts.append(self.t("seg.SA.data-acked", n=info.ack - 1))
        if info is not None and info.stale:
            parts.append(self.t("seg.stale"))
        fate = e.get("fate")
        if fate == "dropped":
            parts.append(self.t("seg.lost"))
        elif fate == "corrupted":
            parts.append(self.t("seg.corrupted"))
        elif fate == "duplicated":
            parts.append(self.t("seg.duplicated"))
        if e.get("delayed") and isinstance(e.get("t_arrive"), (int, float)):
            parts.append(self.t("seg.delayed",
                                d=seconds(float(e["t_arrive"]) - float(e["t"]), self.lang)))
        sep = "；" if self.lang == "zh" else "; "
        return sep.join(parts)


def _fast_open(e: Event) -> str | None:
    """The Fast Open option (RFC 7413) of a segment: its cookie in hex, "" for a cookie
    request (the option without a cookie), None when there is none."""
    for opt in e.get("opts") or ():
        name, _, cookie = str(opt).partition(" ")
        if name in ("FO", "FOEXP"):   # kind 34, or the experimental 254 with magic 0xF989
            return cookie
    return None


def describe_outcome_value(value: Any, lang: str) -> str:
    """An outcome value as a person reads it (not a Python repr)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return text("word.yes" if value else "word.no", lang)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        if value and all(isinstance(x, str) and (x.isupper() or "-" in x) and " " not in x
                         for x in value) and len(value) > 1:
            return " → ".join(value)
        return ("、" if lang == "zh" else ", ").join(describe_outcome_value(x, lang)
                                                    for x in value) or "—"
    if isinstance(value, dict):
        return ("；" if lang == "zh" else "; ").join(
            f"{maybe(f'value.{k}', lang) or k}{colon(lang)}{describe_outcome_value(v, lang)}"
            for k, v in value.items())
    if isinstance(value, str):
        if "\r" in value or "\n" in value or any(ord(c) < 32 for c in value):
            return repr(value)[1:-1]
        found = maybe(f"value.{value}", lang) or maybe(f"reason.{value}", lang) \
            or phrase("error", value, lang)
        return found or cause_text(value, lang)
    return str(value)


def outcome_rows(outcome: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """A scenario's outcome as (label, value) rows in ``lang`` (the ``table`` key left out)."""
    return [(maybe(f"outcome.{k}", lang) or k, describe_outcome_value(v, lang))
            for k, v in outcome.items() if k != "table"]
