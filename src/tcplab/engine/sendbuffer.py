"""The send buffer: bytes from SND.UNA on (unacknowledged, then unsent), in one bytearray.

An ACK releases bytes at the front, and the application appends at the back.  With a
plain bytearray, ``del buf[:n]`` at the front followed by an append that outgrows the
allocation copies the whole buffer each time (CPython reallocates a bytearray with a
logical offset by copying it); for a sender with megabytes queued that copy was the
largest cost of a bulk transfer.  Here acknowledged bytes are only counted at the
front, and dropped in one move (the live bytes copied into a fresh buffer) once they
are at least half of it: amortized constant work per byte.  Reading a segment's payload copies its bytes once.
"""

from __future__ import annotations

from typing import Final

#: dead bytes at the front are dropped once there are this many and they are at
#: least half of the buffer
COMPACT_AT: Final = 65536
#: payloads up to this size are copied through a bytearray slice (cheaper than views)
SMALL: Final = 16384


class SendBuffer:
    """Bytes the connection must keep for sending: ``len()`` of them, from offset 0."""

    __slots__ = ("_buf", "_start")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = 0   # bytes at the front of _buf already acknowledged

    def __len__(self) -> int:
        return len(self._buf) - self._start

    def __bool__(self) -> bool:
        return len(self._buf) > self._start

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` at the end (copied once)."""
        self._buf += data

    def take(self, off: int, size: int) -> bytes:
        """``size`` bytes from offset ``off`` (fewer at the end), copied once."""
        if size <= 0:
            return b""
        start = self._start + off
        if size <= SMALL:
            # a segment's worth: two small copies cost less than making views
            return bytes(self._buf[start:start + size])
        with memoryview(self._buf) as view:
            return view[start:start + size].tobytes()

    def consume(self, n: int) -> None:
        """The first ``n`` bytes are acknowledged: they leave the buffer."""
        if n <= 0:
            return
        buf = self._buf
        start = self._start + n
        if start >= len(buf):
            buf.clear()
            self._start = 0
        elif start >= COMPACT_AT and 2 * start >= len(buf):
            # a fresh buffer holding the live bytes (one copy); ``del buf[:start]``
            # would leave an offset that makes every later growth copy it all again
            with memoryview(buf) as view:
                self._buf = bytearray(view[start:])
            self._start = 0
        else:
            self._start = start

    def clear(self) -> None:
        self._buf.clear()
        self._start = 0
