"""What an interrupted tcplab run may leave behind, and how a test interrupts one: shared by
tests/tun/test_interrupt.py and tests/onlinux/test_linux_interrupt.py (importable because
tests/conftest.py's folder is on pytest's path).

A run named by its PID owns namespaces and tracefs instances called ``tcplab-<pid>-*`` and
the processes of its own process group (it is started in a new session)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tcplab.tun.netns import list_tcplab_namespaces

# The console script a user runs (with `python -m tcplab`, runpy's own imports come first,
# where a Ctrl+C can only end in Python's traceback).
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "tcplab")
TCPLAB = [_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "tcplab"]
TRACEFS_INSTANCES = "/sys/kernel/tracing/instances"
EXIT_WITHIN = 2.0  # seconds from SIGINT to exit


def live_processes() -> dict[int, tuple[int, int]]:
    """Every live process (not a zombie): pid -> (parent pid, process group)."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(entry)] = (int(fields[1]), int(fields[2]))
    return out


def group(pgid: int) -> list[int]:
    """Live processes (not zombies) in process group ``pgid``."""
    return [pid for pid, (_ppid, pg) in live_processes().items() if pg == pgid]


def left_behind(pid: int) -> dict[str, list[str]]:
    """The run's namespaces, tracefs instances and processes that still exist."""
    mine = f"tcplab-{pid}-"
    try:
        instances = [n for n in os.listdir(TRACEFS_INSTANCES) if n.startswith(mine)]
    except OSError:
        instances = []
    return {
        "namespaces": [n for n in list_tcplab_namespaces() if n.startswith(mine)],
        "tracefs instances": instances,
        "processes": [str(p) for p in group(pid)],
    }


def interrupt(argv: list[str], delay: float, whole_group: bool) -> tuple[float, str, int]:
    """Start ``argv`` in a new session, SIGINT it (or, as a terminal's Ctrl+C does, its
    whole group) after ``delay``; (seconds to exit, stderr, pid)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        time.sleep(delay)
        sent = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            return float("inf"), err, proc.pid
        return time.monotonic() - sent, err, proc.pid
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def clean_up_after(pid: int) -> None:
    """Remove what a failed test found, so that one failure does not spread."""
    for p in group(pid):
        os.kill(p, signal.SIGKILL)
    for name in left_behind(pid)["namespaces"]:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)
    for name in left_behind(pid)["tracefs instances"]:
        os.rmdir(os.path.join(TRACEFS_INSTANCES, name))
