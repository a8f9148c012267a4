"""Errors the engine raises for misuse of its API (never for what a peer sends)."""

from __future__ import annotations

import errno as _errno


class TcpError(Exception):
    """A local program misused the API, or a call cannot succeed now.

    ``errno`` is the POSIX error number a socket call would fail with, so the
    socket layers can raise exactly what Python's ``socket`` module raises.
    """

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def addr_in_use(addr: str, port: int, why: str) -> TcpError:
    return TcpError(_errno.EADDRINUSE, f"address already in use: {addr}:{port} ({why})")


# Connection errors reported to the application (conn.error), with their errno.
ERRORS = {
    "refused": _errno.ECONNREFUSED,
    "reset": _errno.ECONNRESET,
    "timed out": _errno.ETIMEDOUT,
    "aborted": _errno.ECONNABORTED,
    "host unreachable": _errno.EHOSTUNREACH,
    "network unreachable": _errno.ENETUNREACH,
    "protocol unreachable": _errno.ENOPROTOOPT,
    "protocol error": _errno.EPROTO,
}
