"""Lessons on Linux: skipped where namespaces, TUN or tracefs are missing, required with
TCPLAB_REQUIRE_TUN=1 (as CI sets it).

Tests that run lessons on Linux take the ``linux`` fixture; the others (the comparison
of traces, the wire's rules, the sysctl table) need no root. A session
finalizer checks that no ``tcplab-<this pid>-*`` namespace or tracefs instance is left,
also when a test failed (it removes what it finds, then fails the session).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tcplab.tun.netns import list_tcplab_namespaces

REQUIRED = os.environ.get("TCPLAB_REQUIRE_TUN") == "1"
TRACEFS_INSTANCES = "/sys/kernel/tracing/instances"

_REASON: str | None = None
_PROBED = False


def _probe() -> str | None:
    """None when a lesson can run on Linux here, else why not."""
    from tcplab.kernel.tracefs import TracefsUnavailable, TraceInstance
    from tcplab.onlinux.run import needs_root
    from tcplab.onlinux.testbed import LinuxUnavailable, Testbed

    why = needs_root("test")
    if why is not None:
        return why
    try:
        with Testbed(capture=True):
            pass
        with TraceInstance(("sock/inet_sock_set_state",)):
            pass
    except (LinuxUnavailable, TracefsUnavailable, OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


def linux_unavailable() -> str | None:
    global _REASON, _PROBED
    if not _PROBED:
        _REASON = _probe()
        _PROBED = True
    return _REASON


@pytest.fixture
def linux() -> None:
    """The test runs lessons on Linux: skip (or, with TCPLAB_REQUIRE_TUN=1, fail) if it
    cannot."""
    reason = linux_unavailable()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"TCPLAB_REQUIRE_TUN=1 but lessons cannot run on Linux: {reason}")
    pytest.skip(f"lessons on Linux unavailable: {reason}")


def _mine(prefix: str) -> tuple[list[str], list[str]]:
    try:
        instances = [n for n in os.listdir(TRACEFS_INSTANCES) if n.startswith(prefix)]
    except OSError:
        instances = []
    return [n for n in list_tcplab_namespaces() if n.startswith(prefix)], instances


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    yield
    prefix = f"tcplab-{os.getpid()}-"
    spaces, instances = _mine(prefix)
    for name in spaces:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)
    for name in instances:
        try:
            os.rmdir(os.path.join(TRACEFS_INSTANCES, name))
        except OSError:
            pass
    assert not spaces, f"namespaces left behind: {spaces}"
    assert not instances, f"tracefs instances left behind: {instances}"
