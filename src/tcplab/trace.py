"""One structured trace of everything that happens: the source of every picture.

Diagrams, pcap files, JSON output and tests are all built from a
:class:`Trace`, a list of events.  An event is a plain dictionary (so it is
JSON as it stands), and its shape is fixed by the typed vocabulary below:
one ``TypedDict`` per kind and one constructor per kind, used by every
emitter (the engine, the simulator, the TUN backend, the pcap reader, the
kernel watcher, the scenarios).  :func:`validate_event` checks an event
against the vocabulary; the tests run it over every scenario's trace.
The schema is documented in ``docs/trace.md``; in short, every event has
``t`` (virtual or real seconds) and ``kind``:

``segment``
    one TCP segment.  ``event`` is ``"send"`` (a host put it on the wire; the
    backend then sets ``fate`` to ``delivered | dropped | duplicated |
    corrupted`` and ``t_arrive``), ``"recv"`` (a segment from outside the
    trace's own hosts, e.g. the kernel on a TUN device), ``"drop"`` (a host
    discarded it on arrival; ``reason`` says why) or ``"accept"`` (a host acted
    on a control segment).
``state``
    ``host``, ``conn``, ``from``, ``to`` (RFC spellings, "SYN-SENT"), ``cause``,
    ``tcb``.
``timer``
    ``host``, ``conn``, ``timer`` (retransmit, persist, delayed-ack,
    time-wait, fin-wait-2, keepalive, loss-probe: the retransmission timer armed for a
    tail loss probe, RFC 8985), ``action`` (armed | fired | cancelled),
    ``deadline``.
``app``
    ``host``, ``conn``, ``call`` and ``result``.
``note``
    narration from a scenario or backend (``text``), with optional facts.

Raw packet bytes travel in the in-memory-only key ``raw`` (for pcap); it is
left out of JSON.
"""

# No "from __future__ import annotations" here: TypedDict needs the real NotRequired[...]
# objects at class creation to know which keys are optional.
import json
import types
import typing
from collections.abc import Callable, Iterator
from typing import (
    IO,
    Any,
    Literal,
    NotRequired,
    TypedDict,
    get_args,
    get_origin,
    get_type_hints,
)

from tcplab.wire.tcp import TcpSegment, flags_str, option_text

#: An event as stored and passed around (a dictionary of one of the shapes below).
Event = dict[str, Any]

JSON_OMIT = frozenset({"raw"})

SegmentKind = Literal["send", "recv", "drop", "accept"]
Fate = Literal["delivered", "dropped", "duplicated", "corrupted"]
TimerName = Literal["retransmit", "loss-probe", "persist", "delayed-ack", "time-wait",
                    "fin-wait-2", "keepalive", "syn-ack"]
TimerAction = Literal["armed", "fired", "cancelled"]


# The shapes are written in TypedDict's functional form: the class form loses
# its field types when mypyc compiles this module (they become ``type``), and
# validate_event reads them at run time.  (StateEvent needs the functional form
# anyway, for its "from" key.)

#: A snapshot of a connection's variables (RFC 9293 3.3.1 names, lower case).
Tcb = TypedDict("Tcb", {
    "state": str,
    "snd_una": int,
    "snd_nxt": int,
    "snd_wnd": int,
    "rcv_nxt": int,
    "rcv_wnd": int,
    "iss": int,
    "irs": int,
    "cwnd": int,
    "rto": float,
})

SegmentEvent = TypedDict("SegmentEvent", {
    "t": float,
    "kind": Literal["segment"],
    "event": SegmentKind,
    "id": int | None,
    "host": str,
    "src": NotRequired[str],
    "dst": NotRequired[str],
    "flags": NotRequired[str],
    "seq": NotRequired[int],
    "ack": NotRequired[int],
    "len": int,
    "win": NotRequired[int],
    "opts": NotRequired[list[str]],
    "fate": Fate,
    "reason": NotRequired[str],
    "t_arrive": NotRequired[float],
    "copy_of": NotRequired[int],
    "conn": NotRequired[str],
    "tcb": NotRequired[Tcb],
    "raw": NotRequired[bytes],
    "injected": NotRequired[bool],
    "delayed": NotRequired[float],
    "tso": NotRequired[int],
    "t_ns": NotRequired[int],         # the kernel's own timestamp (nanoseconds), for kernel events
})



StateEvent = TypedDict("StateEvent", {
    "t": float,
    "kind": Literal["state"],
    "host": str,
    "conn": str,
    "from": str,
    "to": str,
    "cause": str,
    "tcb": NotRequired[Tcb],
    "source": NotRequired[str],
    "t_ns": NotRequired[int],
})


TimerEvent = TypedDict("TimerEvent", {
    "t": float,
    "kind": Literal["timer"],
    "host": str,
    "conn": str,
    "timer": TimerName,
    "action": TimerAction,
    "deadline": float | None,
    "t_ns": NotRequired[int],
})



AppEvent = TypedDict("AppEvent", {
    "t": float,
    "kind": Literal["app"],
    "host": str,
    "conn": str | None,
    "call": str,
    "result": str,
})


#: Narration.  A scenario's note may carry a structured fact its outcome reads:
#: ``fact`` names it (``app-recv``, ``connect``, ``bind``, ``old-syn``, ``stale``, ...)
#: and the fields below hold its values.
NoteEvent = TypedDict("NoteEvent", {
    "t": float,
    "kind": Literal["note"],
    "text": str,
    "key": NotRequired[str],          # its text in the catalogues: note.<key>
    "args": NotRequired[dict[str, Any]],  # the values that text is filled with
    "fact": NotRequired[str],         # which fact this note records
    "host": NotRequired[str],         # the host it is about
    "conn": NotRequired[str],         # the connection it is about
    "label": NotRequired[str],        # a short name for the case (a row of a table)
    "data": NotRequired[str],         # bytes an application read or sent (latin-1 text)
    "result": NotRequired[str],       # what a call returned: "ok", "timeout", an errno name
    "reuse": NotRequired[bool],       # SO_REUSEADDR of the socket the fact is about
    "why": NotRequired[str],          # the error text of a failed call
    "who": NotRequired[str],          # which socket of the story the fact is about
    "isn": NotRequired[int],          # a sequence number the fact is about
    "seq": NotRequired[int],
    "frame": NotRequired[int],        # pcap: the frame a note is about
    "epoch": NotRequired[float],      # pcap: the capture's start, seconds since 1970
    "t_ns": NotRequired[int],         # kernel: the kernel's own timestamp (nanoseconds)
})



VOCABULARY: dict[str, type] = {
    "segment": SegmentEvent,
    "state": StateEvent,
    "timer": TimerEvent,
    "app": AppEvent,
    "note": NoteEvent,
}


# ---------------------------------------------------------------- constructors


def segment_event(t: float, event: SegmentKind, host: str, src: str, dst: str,
                  seg: TcpSegment, pid: int | None, *, fate: Fate = "delivered",
                  conn: str | None = None, tcb: Tcb | None = None, raw: bytes | None = None,
                  reason: str | None = None) -> SegmentEvent:
    """A segment seen by ``host``: sent (``send``), from outside (``recv``), or handled on
    arrival (``drop``/``accept``); ``src``/``dst`` are addresses, the ports come from ``seg``."""
    ev: SegmentEvent = {
        "t": t, "kind": "segment", "event": event, "id": pid, "host": host,
        "src": f"{src}:{seg.src_port}", "dst": f"{dst}:{seg.dst_port}",
        "flags": flags_str(seg.flags), "seq": seg.seq, "ack": seg.ack, "len": len(seg.payload),
        "win": seg.window, "opts": [option_text(o) for o in seg.options], "fate": fate,
    }
    if conn is not None:
        ev["conn"] = conn
    if tcb is not None:
        ev["tcb"] = tcb
    if raw is not None:
        ev["raw"] = raw
    if reason is not None:
        ev["reason"] = reason
    return ev


def undecodable_event(t: float, host: str, pid: int | None, length: int,
                      reason: str) -> SegmentEvent:
    """A packet a host could not parse (bad checksum, truncated): dropped with ``reason``."""
    return {"t": t, "kind": "segment", "event": "drop", "id": pid, "host": host, "len": length,
            "fate": "dropped", "reason": reason}


def state_event(t: float, host: str, conn: str, old: str, new: str, cause: str,
                tcb: Tcb | None = None, source: str | None = None) -> StateEvent:
    """``host``'s connection ``conn`` went from state ``old`` to ``new`` because of ``cause``."""
    ev: StateEvent = {"t": t, "kind": "state", "host": host, "conn": conn, "from": old,
                      "to": new, "cause": cause}
    if tcb is not None:
        ev["tcb"] = tcb
    if source is not None:
        ev["source"] = source
    return ev


def timer_event(t: float, host: str, conn: str, timer: TimerName, action: TimerAction,
                deadline: float | None = None) -> TimerEvent:
    """A timer of ``host``'s connection was armed (with its ``deadline``), fired or cancelled."""
    return {"t": t, "kind": "timer", "host": host, "conn": conn, "timer": timer,
            "action": action, "deadline": deadline}


def app_event(t: float, host: str, call: str, result: str, conn: str | None = None) -> AppEvent:
    """An application call (``bind``, ``connect``, ``accept``, ``close``, ...) and its result."""
    return {"t": t, "kind": "app", "host": host, "conn": conn, "call": call, "result": result}


#: the fields a note may carry beside its text (NoteEvent's own); any other keyword
#: given to :func:`note_event` is a value for its catalogue text and goes in ``args``
NOTE_FIELDS = frozenset({"key", "fact", "host", "conn", "label", "data", "result", "reuse",
                         "why", "who", "isn", "seq", "frame", "epoch"})


def note_event(t: float, text: str, **fields: Any) -> NoteEvent:
    """Narration, with optional structured facts (``fact``, ``host``, ``label``, ...), a
    catalogue ``key`` and the values its text is filled with (every other keyword)."""
    ev: dict[str, Any] = {"t": t, "kind": "note", "text": text}
    args: dict[str, Any] = {}
    for name, value in fields.items():
        if name in NOTE_FIELDS:
            ev[name] = value
        else:
            args[name] = value
    if args:
        ev["args"] = args
    return ev  # type: ignore[return-value]  # the keys are checked by validate_event


# ---------------------------------------------------------------- validation


def _type_ok(value: Any, hint: Any) -> bool:
    """Does ``value`` have the type ``hint`` (the subset of typing the vocabulary uses)?"""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is Literal:
        return value in get_args(hint)
    if origin is types.UnionType or origin is typing.Union:
        return any(_type_ok(value, a) for a in get_args(hint))
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key_t, val_t = get_args(hint)
        return isinstance(value, dict) and all(
            _type_ok(k, key_t) and _type_ok(v, val_t) for k, v in value.items())
    if isinstance(hint, type) and hasattr(hint, "__required_keys__"):
        return isinstance(value, dict) and not validate_shape(value, hint)
    if isinstance(hint, type):
        return isinstance(value, hint)
    raise TypeError(f"the vocabulary uses a type validate_event does not know: {hint!r}")


def validate_shape(event: dict[str, Any], shape: type) -> list[str]:
    """Problems of ``event`` against one TypedDict ``shape`` (empty: it conforms)."""
    hints = get_type_hints(shape)
    required: frozenset[str] = shape.__required_keys__  # type: ignore[attr-defined]
    problems = [f"missing {k!r}" for k in sorted(required) if k not in event]
    for key, value in event.items():
        if key not in hints:
            problems.append(f"unknown field {key!r}")
        elif not _type_ok(value, hints[key]):
            problems.append(f"{key!r} = {value!r} is not {hints[key]}")
    return problems


def validate_event(event: dict[str, Any]) -> list[str]:
    """Problems of one event against the vocabulary (empty list: it conforms)."""
    kind = event.get("kind")
    shape = VOCABULARY.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return [f"unknown kind {kind!r}"]
    return validate_shape(event, shape)


# ---------------------------------------------------------------- the trace


class Trace:
    """An append-only list of events with a packet-id counter.

    ``enabled=False`` makes every ``add`` a no-op (the hot path checks
    :attr:`enabled` before building an event at all).  ``limit`` bounds the
    trace: past it, the oldest events are discarded (a ring buffer) and
    counted in :attr:`discarded`.  ``keep_raw=False`` lets each segment's packet bytes
    go once the listeners have seen them (a long-running server whose trace feeds a
    diagram and no pcap).
    """

    __slots__ = ("_next_id", "discarded", "enabled", "events", "keep_raw", "limit",
                 "listeners")

    def __init__(self, enabled: bool = True, limit: int | None = None,
                 keep_raw: bool = True) -> None:
        self.enabled = enabled
        self.limit = limit
        self.keep_raw = keep_raw
        self.events: list[Event] = []
        self._next_id = 0
        self.discarded = 0
        #: called with each event as it is added (a live view, the kernel lane's model)
        self.listeners: list[Callable[[Event], None]] = []

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add(self, event: Any) -> None:
        """Append one event (a vocabulary TypedDict) when tracing is on."""
        if self.enabled:
            events = self.events
            events.append(event)
            limit = self.limit
            if limit is not None and len(events) > limit:
                drop = len(events) - limit + limit // 4  # amortised: trim a quarter at once
                del events[:drop]
                self.discarded += drop
            for listener in self.listeners:
                listener(event)
            if not self.keep_raw and "raw" in event:
                del event["raw"]

    def note(self, t: float, text: str, **facts: Any) -> None:
        if self.enabled:
            self.add(note_event(t, text, **facts))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    # ------------------------------------------------------------ queries

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["kind"] == kind]

    def states(self, host: str | None = None) -> list[str]:
        """The sequence of states entered (``to``), optionally for one host."""
        return [e["to"] for e in self.events
                if e["kind"] == "state" and (host is None or e["host"] == host)]

    def segments(self, event: str = "send") -> list[Event]:
        return [e for e in self.events if e["kind"] == "segment" and e["event"] == event]

    # ------------------------------------------------------------ output

    def to_json_list(self) -> list[Event]:
        return [to_json_event(e) for e in self.events]

    def dump_json(self, fp: IO[str], meta: dict[str, Any] | None = None) -> None:
        doc = {"schema": "tcplab-trace/1", "meta": meta or {}, "events": self.to_json_list()}
        json.dump(doc, fp, indent=1, sort_keys=False)
        fp.write("\n")


def to_json_event(event: Event) -> Event:
    """A JSON-safe copy: drops in-memory-only keys, renders floats to microseconds."""
    out: Event = {}
    for key, value in event.items():
        if key in JSON_OMIT:
            continue
        if isinstance(value, float):
            value = round(value, 6)
        out[key] = value
    return out


def load_json(fp: IO[str]) -> list[Event]:
    """Read events written by :meth:`Trace.dump_json`."""
    doc = json.load(fp)
    events = doc["events"] if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise ValueError("not a tcplab trace")
    return list(events)


__all__ = [
    "VOCABULARY", "AppEvent", "Event", "NoteEvent", "SegmentEvent", "StateEvent", "Tcb",
    "TimerEvent", "Trace", "app_event", "load_json", "note_event", "segment_event",
    "state_event", "timer_event", "to_json_event", "undecodable_event",
    "validate_event", "validate_shape",
]
