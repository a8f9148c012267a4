"""Private network namespaces for the TUN backend: create, enter, run in, remove.

How it works
------------
A namespace is made with ``ip netns add tcplab-<pid>-<n>`` (the name carries the
owning process id, so a namespace whose owner has died can be told apart from a
live one).  Python 3.11 has no ``os.setns``, so :func:`call_in_netns` calls libc's
``setns(fd, CLONE_NEWNET)`` through :mod:`ctypes` in a short-lived thread: the
network namespace is per thread on Linux, so everything that thread opens (the TUN
device, a netlink socket, a kernel TCP socket) belongs to the namespace, while the
rest of the process stays where it was.  Commands run inside with
``ip netns exec NAME ...``.

Removal: :meth:`Namespace.remove` terminates the processes that this process
started in the namespace (by pid), then ``ip netns delete``.  Every live
:class:`Namespace` is also in a registry that an :mod:`atexit` hook and the
SIGTERM handler of the commands empty, as a last resort after the context
managers and ``finally`` blocks.  A namespace enters the registry *before*
``ip netns add`` runs, and a child process the moment it is started, with
SIGINT and SIGTERM held for those few milliseconds (:func:`tcplab.signals.deferred`),
so Ctrl+C at any moment leaves nothing that the registry does not know.

A tcplab killed with SIGKILL cannot clean up. :func:`remove_stale_namespaces`
(run by every :meth:`Namespace.create`) finds the namespaces whose owner (the
pid in the name) is gone, stops the processes still inside them (by the pids
``ip netns pids`` gives) and deletes them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from tcplab.signals import deferred

__all__ = [
    "Namespace",
    "TunUnavailable",
    "call_in_netns",
    "check_requirements",
    "find_running",
    "list_tcplab_namespaces",
    "needs_root_text",
    "owner_alive",
    "remove_stale_namespaces",
]

T = TypeVar("T")

PREFIX = "tcplab-"
_NAME_RE = re.compile(r"^tcplab-(\d+)-(\d+)$")
CLONE_NEWNET = 0x40000000
_counter = itertools.count(1)
_live: dict[str, Namespace] = {}
_live_lock = threading.Lock()


class TunUnavailable(Exception):
    """The TUN backend cannot run here; the message (one line) says what is missing."""


CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def needs_root_text(command: str = "tun") -> str:
    """One line: what is missing, and the command line that works."""
    import shlex
    import sys

    argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) or command
    return (f"tcplab {command} needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN, to make a "
            f"network namespace and a TUN device). Run: sudo tcplab {argv}")


def check_requirements() -> None:
    """Raise :class:`TunUnavailable` naming the first missing piece."""
    if not hasattr(os, "geteuid"):
        raise TunUnavailable("the TUN backend needs Linux")
    caps = _effective_caps()
    if caps is not None and not (caps >> CAP_NET_ADMIN & 1 and caps >> CAP_SYS_ADMIN & 1):
        raise TunUnavailable(needs_root_text())
    if caps is None and os.geteuid() != 0:
        raise TunUnavailable(needs_root_text())
    if shutil.which("ip") is None:
        raise TunUnavailable("the `ip` command (iproute2) is not installed: "
                             "apt-get install iproute2")
    if not os.path.exists("/dev/net/tun"):
        raise TunUnavailable("/dev/net/tun does not exist (no TUN driver: modprobe tun, or "
                             "run the container with --device /dev/net/tun)")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise TunUnavailable("/dev/net/tun is not readable and writable by this user")


def _effective_caps() -> int | None:
    """This process's effective capabilities (None where /proc does not say)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _libc_setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn: Callable[[int, int], int] = libc.setns
    return fn


def enter_netns(name: str) -> None:
    """Move the calling thread into namespace ``name`` (only this thread)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc_setns()(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_netns(name: str, fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Run ``fn()`` in a fresh thread that entered namespace ``name``; return its result.

    Sockets and file descriptors that ``fn`` opens belong to the namespace and
    stay usable from any thread afterwards.
    """
    box: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            enter_netns(name)
            box.append(fn())
        except BaseException as exc:  # handed to the caller
            err.append(exc)

    th = threading.Thread(target=run, name=f"netns-{name}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise TimeoutError(f"operation inside {name} did not finish in {timeout} s")
    if err:
        raise err[0]
    return box[0]


def _run_ip(args: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


NETNS_DIR = "/run/netns"


def list_tcplab_namespaces() -> list[str]:
    """Names of every ``tcplab-*`` namespace on the machine (live, stale or half-made).

    Read from ``/run/netns`` itself: a namespace whose ``ip netns add`` was killed
    half-way is a file there that ``ip netns list`` reports only as "Peer netns
    reference is invalid".
    """
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    except OSError:
        return []


def owner_alive(name: str) -> bool:
    """Is the process whose pid is in the namespace's name (tcplab-PID-N) running?

    A zombie (killed, not yet reaped by its parent) is not.
    """
    m = _NAME_RE.match(name)
    if m is None:
        return False
    try:
        with open(f"/proc/{m.group(1)}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def remove_stale_namespaces() -> list[str]:
    """Delete the namespaces of tcplab processes that are gone; their names.

    The processes still inside such a namespace (a kernel server a killed tcplab had
    started) are stopped first, by the pids ``ip netns pids`` lists.
    """
    removed = []
    for name in list_tcplab_namespaces():
        if _NAME_RE.match(name) is None or owner_alive(name):
            continue
        stale = Namespace(name)
        stale.created = True
        for pid in stale.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        res = _run_ip(["netns", "delete", name])
        if res.returncode != 0 and os.path.exists(os.path.join(NETNS_DIR, name)):
            with contextlib.suppress(OSError):  # a half-made one: not even a mount
                os.unlink(os.path.join(NETNS_DIR, name))
        if not os.path.exists(os.path.join(NETNS_DIR, name)):
            removed.append(name)
    return removed


def find_running() -> str:
    """The only tcplab namespace whose owner is alive; a clear error otherwise."""
    alive = [n for n in list_tcplab_namespaces() if owner_alive(n)]
    if not alive:
        raise TunUnavailable("no tcplab namespace is running: start one with "
                             "`tcplab tun serve --http` in another terminal")
    if len(alive) > 1:
        raise TunUnavailable(f"{len(alive)} tcplab namespaces are running "
                             f"({', '.join(alive)}): choose one with --netns NAME")
    return alive[0]


class Namespace:
    """One private network namespace owned by this process."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.created = False
        self.processes: list[subprocess.Popen[bytes]] = []

    def create(self) -> None:
        check_requirements()
        remove_stale_namespaces()
        with deferred():
            # Known to the registry before it exists: Ctrl+C at any moment from here on
            # ends in remove(), which tolerates a namespace that was never made.
            self.created = True
            with _live_lock:
                _live[self.name] = self
        res = _run_ip(["netns", "add", self.name])
        if res.returncode != 0:
            msg = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
            self.remove()
            raise TunUnavailable(f"cannot create network namespace {self.name}: {msg}")

    def ip(self, *args: str) -> None:
        """``ip -n NAME args...``; raises TunUnavailable with ip's message on failure."""
        res = _run_ip(["-n", self.name, *args])
        if res.returncode != 0:
            raise TunUnavailable(f"ip {' '.join(args)} in {self.name}: {res.stderr.strip()}")

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the namespace; it is terminated on :meth:`remove`."""
        with deferred():  # started and listed at once
            proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
                self.exec_argv(argv), **kwargs)
            self.processes.append(proc)
        return proc

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        return call_in_netns(self.name, fn, timeout)

    def pids(self) -> list[int]:
        """Every process whose network namespace is this one (``ip netns pids``)."""
        res = _run_ip(["netns", "pids", self.name])
        return [int(p) for p in res.stdout.split() if p.isdigit()]

    def remove(self) -> None:
        """Terminate the processes this process started inside, then delete the namespace."""
        with deferred():  # not split by a second Ctrl+C
            self._remove()

    def _remove(self) -> None:
        for proc in self.processes:
            _stop_process(proc)
        self.processes.clear()
        if self.created:
            path = os.path.join(NETNS_DIR, self.name)
            for _ in range(3):
                if not os.path.exists(path):
                    break
                res = _run_ip(["netns", "delete", self.name])
                if res.returncode != 0 and os.path.exists(path):
                    with contextlib.suppress(OSError):  # half-made: a plain file
                        if not os.path.ismount(path):
                            os.unlink(path)
                if not os.path.exists(path):
                    break
                time.sleep(0.05)
            self.created = False
        with _live_lock:
            _live.pop(self.name, None)

    def __enter__(self) -> Namespace:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _stop_process(proc: subprocess.Popen[bytes], grace: float = 1.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


def remove_all_live() -> None:
    """Remove every namespace this process still holds (atexit and signal handlers)."""
    with _live_lock:
        live = list(_live.values())
    for ns in live:
        with contextlib.suppress(Exception):
            ns.remove()


atexit.register(remove_all_live)
