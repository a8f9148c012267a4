"""What every picture needs from a trace: lifelines, labels and a time axis.

The pictures (SVG sequence diagram, state diagram, HTML report) are drawn from
the structured trace of :mod:`tcplab.trace`.  This module turns a list of
events into the few things they share, so that all of them agree:

* :func:`ordered` sorts events by time (stably: events at the same instant
  keep the order in which they were recorded);
* :class:`Lifelines` decides which hosts get a vertical line, left to right in
  order of appearance, and which line each ``"addr:port"`` belongs to;
* :func:`segment_label` writes the textbook label of a segment ("SYN, ACK
  seq=0 ack=1 len=0"), with sequence numbers absolute or relative to each
  side's initial sequence number (ISN);
* :class:`TimeAxis` maps time to a y coordinate: proportional to time, but
  every segment gets a row of its own and idle gaps longer than a few rows
  (an RTO, 2MSL) are compressed to a fixed height and labelled.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

Event = dict[str, Any]

FLAG_WORDS = {"S": "SYN", "A": "ACK", "F": "FIN", "R": "RST", "P": "PSH", "U": "URG",
              "E": "ECE", "C": "CWR"}
# Textbook order: SYN, FIN, RST, PSH first, ACK last ("SYN, ACK", "FIN, ACK", "PSH, ACK").
_WORD_ORDER = "SFRPUECA"


def ordered(events: Iterable[Event]) -> list[Event]:
    """Events sorted by ``t``, stably (same-instant events keep trace order)."""
    return sorted(events, key=_t)


def _t(e: Event) -> float:
    return float(e.get("t", 0.0))


@cache
def flag_words(flags: str) -> str:
    """``"SA"`` -> ``"SYN, ACK"``; ``""`` -> ``"(none)"``."""
    letters = [c for c in _WORD_ORDER if c in flags]
    return ", ".join(FLAG_WORDS[c] for c in letters) if letters else "(none)"


def segment_kind(flags: str, length: int = 0) -> str:
    """A colour class for a segment: syn, fin, rst, data or ack."""
    if "R" in flags:
        return "rst"
    if "S" in flags:
        return "syn"
    if "F" in flags:
        return "fin"
    return "data" if length > 0 else "ack"


def endpoint_ip(endpoint: str) -> str:
    """``"192.0.2.1:80"`` -> ``"192.0.2.1"``; ``"[::1]:80"`` and ``"::1:80"`` -> ``"::1"``."""
    addr = endpoint.rsplit(":", 1)[0] if ":" in endpoint else endpoint
    return addr.strip("[]")


def conn_endpoints(conn: str) -> tuple[str, str] | None:
    """``"a:1-b:2"`` -> ``("a:1", "b:2")`` (addresses never contain '-')."""
    if not conn or "-" not in conn:
        return None
    local, _, remote = conn.partition("-")
    return local, remote


@dataclass
class Lifelines:
    """The vertical lines of a sequence diagram and who owns each endpoint."""

    hosts: list[str] = field(default_factory=list)
    by_endpoint: dict[str, str] = field(default_factory=dict)
    by_ip: dict[str, set[str]] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    #: port -> hosts with a listening socket on it (a SYN to that port is for them)
    listeners: dict[int, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Sequence[Event]) -> Lifelines:
        lines = cls()
        for e in events:
            kind = e.get("kind")
            host = e.get("host")
            if not isinstance(host, str):
                continue
            if kind == "segment":
                ev = e.get("event")
                if ev in ("send", "recv") and "src" in e:
                    # "recv": a packet from outside the trace's hosts; host names its sender
                    lines._own(e["src"], host)
                elif ev in ("accept", "drop") and "dst" in e:
                    lines._own(e["dst"], host)
                else:
                    lines._add(host)
            elif kind == "state":
                conn = str(e.get("conn") or "")
                if conn.endswith("-*:*"):
                    # a listening socket: its host gets a line from its connections
                    port = conn[:-4].rpartition(":")[2]
                    if port.isdigit():
                        lines.listeners.setdefault(int(port), set()).add(host)
                    continue
                ends = conn_endpoints(conn)
                if ends is not None:
                    lines._own(ends[0], host)
                else:
                    lines._add(host)
        for e in events:  # hosts that only listened
            if e.get("kind") == "state" and isinstance(e.get("host"), str):
                lines._add(e["host"])
        # Endpoints that only ever receive (a peer outside the trace): a line of their own.
        for e in events:
            if e.get("kind") == "segment" and e.get("event") == "send" and "dst" in e:
                if lines.host_of(e["dst"]) is None:
                    lines._own(e["dst"], e["dst"])
        return lines

    def _add(self, host: str) -> None:
        if host not in self.addresses:
            self.hosts.append(host)
            self.addresses[host] = []

    def _own(self, endpoint: str, host: str) -> None:
        self._add(host)
        if endpoint not in self.by_endpoint:
            self.by_endpoint[endpoint] = host
            self.addresses[host].append(endpoint)
            self.by_ip.setdefault(endpoint_ip(endpoint), set()).add(host)

    def host_of(self, endpoint: str) -> str | None:
        """The lifeline that owns ``endpoint``, by address:port, else by a unique address."""
        host = self.by_endpoint.get(endpoint)
        if host is not None:
            return host
        owners = self.by_ip.get(endpoint_ip(endpoint))
        if owners is not None and len(owners) == 1:
            return next(iter(owners))
        # An endpoint that never sent (every SYN to it was lost): the host listening there.
        port = endpoint.rpartition(":")[2]
        listening = self.listeners.get(int(port)) if port.isdigit() else None
        if listening is not None and len(listening) == 1:
            return next(iter(listening))
        return None


class SeqNumbers:
    """Absolute or ISN-relative sequence numbers, per sending endpoint."""

    def __init__(self, events: Sequence[Event], relative: bool) -> None:
        self.relative = relative
        self.isn: dict[str, int] = {}
        if not relative:
            return
        for e in events:
            if e.get("kind") != "segment" or "src" not in e or "seq" not in e:
                continue
            src = e["src"]
            if "S" in str(e.get("flags", "")):
                self.isn.setdefault(src, int(e["seq"]))
        for e in events:  # no SYN seen (capture started late): the first seq seen
            if e.get("kind") == "segment" and "src" in e and "seq" in e:
                self.isn.setdefault(e["src"], int(e["seq"]))

    def seq(self, src: str, value: int) -> int:
        base = self.isn.get(src) if self.relative else None
        return value if base is None else (value - base) & 0xFFFFFFFF

    def ack(self, dst: str, value: int) -> int:
        base = self.isn.get(dst) if self.relative else None
        return value if base is None else (value - base) & 0xFFFFFFFF


def segment_label(e: Event, numbers: SeqNumbers | None = None) -> str:
    """``"SYN, ACK seq=1034665461 ack=2239496607 len=0"``: flags, seq, ack (if ACK), len."""
    flags = str(e.get("flags", ""))
    seq = int(e.get("seq", 0))
    ack = int(e.get("ack", 0))
    if numbers is not None:
        seq = numbers.seq(str(e.get("src", "")), seq)
        ack = numbers.ack(str(e.get("dst", "")), ack)
    parts = [flag_words(flags), f"seq={seq}"]
    if "A" in flags:
        parts.append(f"ack={ack}")
    parts.append(f"len={int(e.get('len', 0))}")
    return " ".join(parts)


def fmt_duration(seconds: float) -> str:
    """A short human duration: ``"60 s"``, ``"1.5 s"``, ``"200 ms"``, ``"35 µs"``."""
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


@dataclass
class Gap:
    """A compressed idle stretch of the time axis."""

    y0: float
    y1: float
    seconds: float


class TimeAxis:
    """Monotone map from time to y.

    Built from *anchors* (times that need a position, in drawing order): the
    vertical distance between consecutive anchors is proportional to the time
    between them (``px_per_s``), at least ``row`` pixels before an anchor that
    carries a label, and an interval that would be taller than ``max_gap``
    pixels is drawn ``gap_px`` tall and recorded in :attr:`gaps`.
    """

    def __init__(self, top: float, row: float = 24.0, max_gap: float = 150.0,
                 gap_px: float = 56.0) -> None:
        self.top = top
        self.row = row
        self.max_gap = max_gap
        self.gap_px = gap_px
        self.px_per_s = 1.0
        self.times: list[float] = []
        self.ys: list[float] = []
        self.gaps: list[Gap] = []
        self.bottom = top

    def layout(self, anchors: Sequence[tuple[float, bool]]) -> list[float]:
        """Positions for ``anchors`` = [(t, needs_row)], sorted by t; returns their y."""
        labelled = [t for t, lab in anchors if lab]
        steps = sorted(b - a for a, b in itertools.pairwise(labelled) if b > a)
        typical = steps[len(steps) // 4] if steps else 1.0
        # The quicker quarter of the gaps between labelled events gets about one row.
        self.px_per_s = self.row / typical if typical > 0 else self.row
        out: list[float] = []
        y = self.top
        last_label = -1e18
        prev_t = anchors[0][0] if anchors else 0.0
        for t, needs_row in anchors:
            dt = t - prev_t
            if dt > 0:
                dy = dt * self.px_per_s
                if dy > self.max_gap:
                    self.gaps.append(Gap(y, y + self.gap_px, dt))
                    y += self.gap_px
                    last_label = y - self.row / 2
                else:
                    y += dy
            if needs_row and y < last_label + self.row:
                y = last_label + self.row
            if needs_row:
                last_label = y
            out.append(y)
            prev_t = t
            if not self.times or t > self.times[-1] or y > self.ys[-1]:
                self.times.append(t)
                self.ys.append(y)
        self.bottom = y
        return out

    def y_at(self, t: float) -> float:
        """y of time ``t`` (the first anchor at or after it; the bottom past the end)."""
        i = bisect.bisect_left(self.times, t)
        if i >= len(self.ys):
            return self.bottom
        return self.ys[i]
