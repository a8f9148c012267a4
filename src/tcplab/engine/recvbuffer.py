"""The receive buffer: in-order bytes the application has not read yet, as the segments'
own payloads.

A segment's payload is already a ``bytes`` object of its own; keeping it as it is
costs no copy on arrival, and a read joins what it takes into one ``bytes`` (one
copy, none when a read takes exactly one whole payload).  A single ``bytearray``
copied every payload in, grew by reallocation (for megabytes: fresh pages, zeroed by
the kernel, each time the reader emptied it), and copied again on the way out.
"""

from __future__ import annotations


class ReceiveBuffer:
    """Bytes in arrival order: ``len()`` of them, read from the front.

    The payloads are a list read from index ``_first`` on (an empty list costs no item
    storage: an idle connection's buffer stays small); read payloads are dropped when
    the buffer empties, or in one move once they are most of the list."""

    __slots__ = ("_chunks", "_first", "_head", "_len")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._first = 0  # index of the first payload not wholly read
        self._head = 0   # bytes of that payload already read
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` at the end (a ``bytes`` object is kept as it is)."""
        if not data:
            return
        chunk = data if type(data) is bytes else bytes(data)
        self._chunks.append(chunk)
        self._len += len(chunk)

    def take(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes (all of them if fewer)."""
        if n <= 0 or not self._len:
            return b""
        chunks = self._chunks
        i = self._first
        head = self._head
        first = chunks[i]
        if len(first) - head > n:  # within the first payload
            self._head = head + n
            self._len -= n
            return first[head:head + n]
        need = n if n < self._len else self._len
        self._len -= need
        parts: list[bytes] = []
        while need:
            first = chunks[i]
            avail = len(first) - head
            if avail <= need:
                parts.append(first[head:] if head else first)
                i += 1
                need -= avail
                head = 0
            else:
                parts.append(first[head:head + need])
                head += need
                need = 0
        if i == len(chunks):
            chunks.clear()
            i = 0
        elif i >= 64 and 2 * i >= len(chunks):
            del chunks[:i]
            i = 0
        self._first = i
        self._head = head
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes, left in the buffer."""
        out: list[bytes] = []
        need = n if n < self._len else self._len
        head = self._head
        chunks = self._chunks
        i = self._first
        while need > 0:
            part = chunks[i][head:head + need]
            out.append(part)
            need -= len(part)
            head = 0
            i += 1
        return b"".join(out)

    def clear(self) -> None:
        self._chunks.clear()
        self._first = 0
        self._head = 0
        self._len = 0

    def __bytes__(self) -> bytes:
        return self.peek(self._len)
