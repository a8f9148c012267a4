"""TUN tests: skipped where TUN or namespaces are missing, required with TCPLAB_REQUIRE_TUN=1.

A session finalizer checks that no ``tcplab-<this pid>-*`` namespace and no process
that these tests started is left behind, also when a test failed (it removes what
it finds, then fails the session).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from leftovers import live_processes
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


def _tun_descendants() -> list[int]:
    """Live descendants of this process that the TUN tests started.

    Those are the ones inside another network namespace (the kernel's HTTP server,
    the bulk peers, curl) or running ``tcplab tun``; other suites' helpers in the
    root namespace are not this suite's to judge.
    """
    me = os.getpid()
    parent = {pid: ppid for pid, (ppid, _pgid) in live_processes().items()}
    my_ns = os.readlink("/proc/self/ns/net")
    out = []
    for pid in parent:
        p, depth = parent.get(pid, 0), 0
        while p not in (0, 1, me) and depth < 64:
            p, depth = parent.get(p, 0), depth + 1
        if p != me:
            continue
        try:
            ns = os.readlink(f"/proc/{pid}/ns/net")
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ")
        except OSError:
            continue
        if ns != my_ns or b"tcplab tun" in cmd or b"tcplab.tun" in cmd:
            out.append(pid)
    return out


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    yield
    mine = f"tcplab-{os.getpid()}-"
    left = [n for n in list_tcplab_namespaces() if n.startswith(mine)]
    for name in left:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)
    kids = _tun_descendants()
    for pid in kids:  # what this suite started, by pid
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # already gone, or a grandchild that its own parent reaps
    assert not left, f"namespaces left behind: {left}"
    assert not kids, f"child processes left behind: {kids}"
