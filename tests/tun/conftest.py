"""TUN tests: skipped where TUN or namespaces are missing, required with TCPLAB_REQUIRE_TUN=1.

A session finalizer checks that no ``tcplab-<this pid>-*`` namespace and no child
process is left behind, also when a test failed (it removes what it finds, then
fails the session).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tcplab.tun.netns import Namespace, TunUnavailable, list_tcplab_namespaces

REQUIRED = os.environ.get("TCPLAB_REQUIRE_TUN") == "1"


def _probe() -> str | None:
    """None when TUN and namespaces work here, else why not."""
    try:
        with Namespace() as ns:
            from tcplab.tun.device import TunDevice
            TunDevice.create(ns).close()
    except (TunUnavailable, OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


_REASON: str | None = None
_PROBED = False


def tun_unavailable() -> str | None:
    global _REASON, _PROBED
    if not _PROBED:
        _REASON = _probe()
        _PROBED = True
    return _REASON


@pytest.fixture(autouse=True)
def _need_tun() -> None:
    reason = tun_unavailable()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"TCPLAB_REQUIRE_TUN=1 but the TUN backend cannot run: {reason}")
    print(f"\nskipped: TUN backend unavailable: {reason}")
    pytest.skip(f"TUN backend unavailable: {reason}")


def _children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.append(int(entry))
    return out


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    yield
    mine = f"tcplab-{os.getpid()}-"
    left = [n for n in list_tcplab_namespaces() if n.startswith(mine)]
    for name in left:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)
    kids = _children()
    for pid in kids:  # our own children only, by pid
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert not left, f"namespaces left behind: {left}"
    assert not kids, f"child processes left behind: {kids}"
