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
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

TYPE_CHECKING = False  # typing costs start-up time (this module is imported first)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["deferred", "interrupt_handled", "interrupt_handler", "raise_if_interrupted",
           "remember_swallowed_interrupts"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# KeyboardInterrupts Python swallowed and nobody acted on yet (see
# :func:`remember_swallowed_interrupts`).
_pending: list[int] = []
_previous_hook: Callable[[Any], object] = sys.unraisablehook


def _note_swallowed(unraisable: Any) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _pending.append(1)
    _previous_hook(unraisable)


def remember_swallowed_interrupts() -> None:
    """From now on, remember each KeyboardInterrupt that Python swallows.

    Python ignores an exception raised inside a weakref callback or a ``__del__``
    (it prints "Exception ignored in ..." through ``sys.unraisablehook`` and goes on):
    a Ctrl+C that lands while an import releases its module lock is lost that way,
    and a watch that should stop runs on.  The command's start-up and its
    long-running loops call :func:`raise_if_interrupted`, so a swallowed Ctrl+C still
    stops them."""
    global _previous_hook
    if sys.unraisablehook is not _note_swallowed:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _note_swallowed


def interrupt_handler(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM handler: the orderly stop of Ctrl+C (KeyboardInterrupt)."""
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if one was swallowed and nothing acted on it since."""
    if _pending:
        _pending.clear()
        raise KeyboardInterrupt


def interrupt_handled() -> None:
    """A KeyboardInterrupt was caught and acted on: forget any swallowed before it."""
    _pending.clear()


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
