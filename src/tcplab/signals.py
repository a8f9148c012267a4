"""Critical sections that Ctrl+C cannot split: make something and register it, at once.

A namespace created but not yet in the registry that removes it, a child process started
but not yet in the list that stops it, a tracefs instance made but not yet known: if
SIGINT lands between the two steps, the thing outlives the program. :func:`deferred`
holds SIGINT and SIGTERM for the few milliseconds such a pair of steps takes, then
delivers them as they would have been.

Blocking the signal with ``pthread_sigmask`` is not enough in a program with threads:
the kernel hands the signal to another thread and Python still runs the handler in the
main thread at once. So the Python-level handlers are swapped for a recorder instead;
the C-level handler still runs, so asyncio's wake-up file descriptor still hears the
signal and its loop handles it afterwards as usual.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["deferred", "interrupt_handler", "raise_if_interrupted"]

# Signals that raised KeyboardInterrupt through :func:`interrupt_handler` and were not
# yet acted on (see there).
_pending: list[int] = []


def interrupt_handler(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM handler: remember the signal, then raise KeyboardInterrupt.

    Python swallows an exception raised inside a weakref callback or a ``__del__``
    (it prints "Exception ignored in ..." and goes on): a Ctrl+C that lands while
    an import releases a module lock is lost that way, and a watch that should stop
    runs on.  The long-running loops call :func:`raise_if_interrupted`, so a
    swallowed interrupt still stops them."""
    _pending.append(signum)
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if :func:`interrupt_handler` ran and nothing acted on it
    (the one it raised was swallowed)."""
    if _pending:
        _pending.clear()
        raise KeyboardInterrupt


def interrupt_handled() -> None:
    """The KeyboardInterrupt raised was caught and acted on: forget it."""
    _pending.clear()

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM during the block, then deliver what arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread runs handlers: nothing to defer elsewhere
        return
    got: list[int] = []
    old: dict[int, Any] = {}

    def record(signum: int, frame: FrameType | None) -> None:
        got.append(signum)

    try:
        for one in _SIGNALS:
            old[one] = signal.signal(one, record)
    except (ValueError, OSError):
        for num, handler in old.items():
            signal.signal(num, handler)
        yield
        return
    try:
        yield
    finally:
        for num, handler in old.items():
            signal.signal(num, handler)
        for num in dict.fromkeys(got):
            _deliver(num, old.get(num))


def _deliver(sig: int, handler: Callable[[int, FrameType | None], Any] | int | None
             ) -> None:
    if callable(handler):
        handler(sig, None)  # Python's default SIGINT handler raises KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.raise_signal(sig)
