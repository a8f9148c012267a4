"""Placing labels so that none overlaps another: boxes, a spatial index, candidates.

The pictures are laid out in two steps.  Everything with a fixed place (an
arrow, a lifeline, a bracket) is drawn where the time axis puts it; every
*text* is a :class:`Box` that must find room.  A :class:`Placer` holds the
boxes placed so far in a grid of horizontal bands (so a check looks at a few
neighbours, not at every label); :meth:`Placer.place` tries a label's
candidate positions in order of preference and takes the first free one.

When no candidate is free, the caller asks the time axis for more room at
that moment and lays the picture out again (see ``render.svg``); a label that
still finds no room is shortened, its full text kept in a ``<title>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, gap: float = 0.0) -> bool:
        return not (self.x1 + gap <= other.x0 or other.x1 + gap <= self.x0
                    or self.y1 + gap <= other.y0 or other.y1 + gap <= self.y0)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def union(boxes: Iterable[Box]) -> Box | None:
    out: Box | None = None
    for b in boxes:
        out = b if out is None else Box(min(out.x0, b.x0), min(out.y0, b.y0),
                                        max(out.x1, b.x1), max(out.y1, b.y1))
    return out


class Placer:
    """Boxes that must not overlap, indexed by horizontal bands of ``band`` px."""

    def __init__(self, band: float = 40.0, gap: float = 2.0) -> None:
        self.band = band
        self.gap = gap
        self._bands: dict[int, list[Box]] = {}
        self.boxes: list[Box] = []

    def _keys(self, b: Box) -> range:
        return range(int((b.y0 - self.gap) // self.band), int((b.y1 + self.gap) // self.band) + 1)

    def free(self, b: Box) -> bool:
        for k in self._keys(b):
            for other in self._bands.get(k, ()):
                if b.overlaps(other, self.gap):
                    return False
        return True

    def add(self, b: Box) -> Box:
        for k in self._keys(b):
            self._bands.setdefault(k, []).append(b)
        self.boxes.append(b)
        return b

    def place(self, candidates: Iterable[Box]) -> Box | None:
        """The first free candidate, added; None when every one is taken."""
        for b in candidates:
            if self.free(b):
                return self.add(b)
        return None
