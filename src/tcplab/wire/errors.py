"""The one exception the wire parsers raise."""

from __future__ import annotations


class WireError(ValueError):
    """Malformed bytes: truncated header, bad offset, bad option, bad checksum.

    ``reason`` is a short phrase suitable for a trace (``"bad checksum"``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
