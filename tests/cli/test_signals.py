"""Ctrl+C that Python swallows is not lost.

Python ignores an exception raised in a weakref callback (it prints "Exception ignored"
through sys.unraisablehook and goes on). A Ctrl+C that lands there, while an import
releases its module lock, twice left `tcplab watch` running its whole duration in CI
after the user asked it to stop."""

from __future__ import annotations

import subprocess
import sys
import weakref

import pytest

from tcplab.signals import interrupt_handled, raise_if_interrupted, remember_swallowed_interrupts


class _Thing:
    pass


def _swallowed_ctrl_c() -> None:
    """A KeyboardInterrupt raised where Python swallows it."""
    def cb(_ref: object) -> None:
        raise KeyboardInterrupt

    thing = _Thing()
    ref = weakref.ref(thing, cb)
    del thing  # the callback raises; Python reports it as unraisable and goes on
    assert ref() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_swallows_is_acted_on_at_the_next_check() -> None:
    remember_swallowed_interrupts()
    _swallowed_ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        raise_if_interrupted()
    raise_if_interrupted()  # acted on once: nothing more


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_acted_on_is_not_raised_again() -> None:
    remember_swallowed_interrupts()
    _swallowed_ctrl_c()
    interrupt_handled()
    raise_if_interrupted()


def test_the_command_remembers_from_its_first_import() -> None:
    """Importing tcplab as the `tcplab` command installs the hook before anything else
    it imports, so a Ctrl+C swallowed during start-up is still acted on."""
    code = (
        "import sys, weakref\n"
        "sys.argv = ['/usr/local/bin/tcplab']\n"
        "import tcplab\n"
        "class T: pass\n"
        "def cb(_r): raise KeyboardInterrupt\n"
        "t = T(); r = weakref.ref(t, cb); del t\n"
        "from tcplab.signals import raise_if_interrupted\n"
        "try:\n"
        "    raise_if_interrupted()\n"
        "    print('lost')\n"
        "except KeyboardInterrupt:\n"
        "    print('acted on')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert res.stdout.strip() == "acted on", res.stderr
    # A program that imports tcplab keeps Python's own behaviour.
    res = subprocess.run([sys.executable, "-c", code.replace(
        "sys.argv = ['/usr/local/bin/tcplab']\n", "")], capture_output=True, text=True,
        timeout=60, check=True)
    assert res.stdout.strip() == "lost"
