"""Ctrl+C that Python swallows is not lost.

Python ignores an exception raised in a weakref callback (it prints "Exception ignored"
and goes on). A Ctrl+C that lands there, while an import releases its module lock, once
left `tcplab watch` running for its whole duration after the user asked it to stop."""

from __future__ import annotations

import signal
import weakref

import pytest

from tcplab.signals import interrupt_handled, interrupt_handler, raise_if_interrupted


class _Thing:
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_swallows_is_acted_on_at_the_next_check() -> None:
    thing = _Thing()
    ref = weakref.ref(thing, lambda _r: interrupt_handler(signal.SIGINT, None))
    del thing  # the callback raises KeyboardInterrupt; Python ignores it and goes on
    assert ref() is None
    with pytest.raises(KeyboardInterrupt):
        raise_if_interrupted()
    raise_if_interrupted()  # acted on once: nothing more


def test_an_interrupt_caught_and_handled_is_not_raised_again() -> None:
    with pytest.raises(KeyboardInterrupt):
        interrupt_handler(signal.SIGINT, None)
    interrupt_handled()
    raise_if_interrupted()
