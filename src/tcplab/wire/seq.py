"""TCP sequence numbers: 32-bit values compared and added modulo 2**32.

RFC 9293 section 3.4: "the sequence number space is finite, though very large
... all arithmetic dealing with sequence numbers must be performed modulo
2**32".  A plain ``<`` on integers is wrong near the wrap point, so the engine
uses :class:`Seq` for every sequence and acknowledgment number.

``Seq`` subclasses ``int`` (so it packs, hashes and prints like one) but its
ordering compares the signed 32-bit distance, and ``+``/``-`` with an integer
wrap.  ``Seq - Seq`` is the signed distance as a plain ``int``.
"""

from __future__ import annotations

MOD = 1 << 32
_MASK = MOD - 1
_HALF = 1 << 31


class Seq(int):
    """A sequence number in the 32-bit circular space."""

    __slots__ = ()

    def __new__(cls, value: int) -> Seq:
        return int.__new__(cls, value & _MASK)

    def __add__(self, other: int) -> Seq:
        return int.__new__(Seq, (int(self) + int(other)) & _MASK)

    __radd__ = __add__

    def __sub__(self, other: int) -> int:
        """``Seq - Seq`` is the signed distance; ``Seq - int`` is a Seq."""
        if type(other) is Seq:
            d = (int(self) - int(other)) & _MASK
            return d - MOD if d >= _HALF else d
        return int.__new__(Seq, (int(self) - int(other)) & _MASK)

    def __lt__(self, other: int) -> bool:
        d = (int(self) - int(other)) & _MASK
        return d >= _HALF

    def __le__(self, other: int) -> bool:
        d = (int(self) - int(other)) & _MASK
        return d == 0 or d >= _HALF

    def __gt__(self, other: int) -> bool:
        d = (int(other) - int(self)) & _MASK
        return d >= _HALF

    def __ge__(self, other: int) -> bool:
        d = (int(other) - int(self)) & _MASK
        return d == 0 or d >= _HALF

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and (int(self) - int(other)) & _MASK == 0

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return int.__hash__(self)

    def __repr__(self) -> str:
        return f"Seq({int(self)})"

    def dist(self, other: int) -> int:
        """Signed distance ``self - other`` in the circular space."""
        d = (int(self) - int(other)) & _MASK
        return d - MOD if d >= _HALF else d


def seq_in_window(value: int, start: int, size: int) -> bool:
    """``start <= value < start + size`` modulo 2**32 (RFC 9293 3.4)."""
    return ((value - start) & _MASK) < size


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` modulo 2**32, on plain integers."""
    return ((a - b) & _MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` modulo 2**32, on plain integers."""
    d = (a - b) & _MASK
    return d == 0 or d >= _HALF
