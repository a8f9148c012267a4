"""One structured trace of everything that happens: the source of every picture.

Diagrams, pcap files, JSON output and tests are all built from a
:class:`Trace`, a list of plain dictionaries (events).  The schema is
documented in ``docs/trace.md``; in short, every event has ``t`` (virtual or
real seconds) and ``kind``:

``segment``
    one TCP segment.  ``event`` is ``"send"`` (a host put it on the wire; the
    backend then sets ``fate`` to ``delivered | dropped | duplicated |
    corrupted`` and ``t_arrive``), ``"recv"`` (a segment from outside the
    trace's own hosts, e.g. the kernel on a TUN device) or ``"drop"`` (a host
    discarded it on arrival; ``reason`` says why).  Fields: ``id``, ``host``,
    ``src``, ``dst`` ("addr:port"), ``flags`` ("SA", "FA", "R", "PA"),
    ``seq``, ``ack`` (absolute), ``len`` (payload octets), ``win``, ``opts``,
    and ``tcb`` (the sender's SND.UNA, SND.NXT, RCV.NXT, SND.WND, RCV.WND).
``state``
    ``host``, ``conn``, ``from``, ``to`` (RFC spellings, "SYN-SENT"), ``cause``.
``timer``
    ``host``, ``conn``, ``timer`` (retransmit, persist, delayed-ack,
    time-wait, fin-wait-2, syn-ack), ``action`` (armed | fired | cancelled),
    ``deadline``.
``app``
    ``host``, ``conn``, ``call`` (connect, listen, accept, send, recv, close,
    shutdown, abort, bind, event) and ``result``.
``note``
    free text from a scenario or backend (``text``).

Raw packet bytes travel in the in-memory-only key ``raw`` (for pcap); it is
left out of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

Event = dict[str, Any]

JSON_OMIT = frozenset({"raw"})


class Trace:
    """An append-only list of events with a packet-id counter.

    ``enabled=False`` makes every ``add`` a no-op (the hot path checks
    :attr:`enabled` before building an event at all).
    """

    __slots__ = ("_next_id", "enabled", "events", "listeners")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.events: list[Event] = []
        self._next_id = 0
        self.listeners: list[Any] = []

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add(self, event: Event) -> Event:
        if self.enabled:
            self.events.append(event)
            for listener in self.listeners:
                listener(event)
        return event

    def note(self, t: float, text: str, **extra: Any) -> None:
        if self.enabled:
            self.add({"t": t, "kind": "note", "text": text, **extra})

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


def merge(traces: Iterable[Iterable[Event]]) -> list[Event]:
    """Events of several traces in time order (stable)."""
    allev = [e for tr in traces for e in tr]
    allev.sort(key=lambda e: e["t"])
    return allev
