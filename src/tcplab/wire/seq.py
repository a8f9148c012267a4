"""TCP sequence numbers: plain integers compared and added modulo 2**32.

RFC 9293 section 3.4: "the sequence number space is finite, though very large
... all arithmetic dealing with sequence numbers must be performed modulo
2**32".  A plain ``<`` on integers is wrong near the wrap point, so the engine
never compares sequence numbers with operators: it calls these functions.

Sequence numbers are plain ``int`` values in ``0 .. 2**32 - 1``.  ``a`` is
"before" ``b`` when the 32-bit distance from ``a`` to ``b`` is less than
2**31 and not zero, as RFC 1982 (serial number arithmetic) defines it.  The
functions are tiny on purpose: they cost one subtraction and one mask, and
they compile to native code with mypyc (an ``int`` subclass with overloaded
operators did neither).
"""

from __future__ import annotations

from typing import Final

# Final: mypyc compiles these as constants, not as lookups in the module's globals.
MOD: Final = 1 << 32
MASK: Final = MOD - 1
HALF: Final = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & MASK


def seq_sub(a: int, b: int) -> int:
    """The signed distance ``a - b``, in ``-2**31 .. 2**31 - 1``."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` modulo 2**32."""
    return ((a - b) & MASK) >= HALF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` modulo 2**32."""
    d = (a - b) & MASK
    return d == 0 or d >= HALF


def seq_gt(a: int, b: int) -> bool:
    """``a > b`` modulo 2**32."""
    return ((b - a) & MASK) >= HALF


def seq_ge(a: int, b: int) -> bool:
    """``a >= b`` modulo 2**32."""
    d = (b - a) & MASK
    return d == 0 or d >= HALF


def seq_max(a: int, b: int) -> int:
    """The later of two sequence numbers."""
    return b if ((a - b) & MASK) >= HALF else a


def seq_min(a: int, b: int) -> int:
    """The earlier of two sequence numbers."""
    return a if ((a - b) & MASK) >= HALF else b


def seq_in_window(value: int, start: int, size: int) -> bool:
    """``start <= value < start + size`` modulo 2**32 (RFC 9293 3.4)."""
    return ((value - start) & MASK) < size
