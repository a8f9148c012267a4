"""Ctrl+C at any moment of start-up, and SIGKILL: nothing left behind.

`tcplab tun connect` makes a namespace, a TUN device, a tracefs instance (the kernel's
lane) and starts a kernel HTTP server in the namespace; `tcplab watch` makes a tracefs
instance and a packet socket. Each test starts the command in its own process group,
sends SIGINT after a delay (20 delays across the start-up, to the process alone or, like
a terminal's Ctrl+C, to its whole group), and then looks for what the run could leave:
its namespaces (``tcplab-<pid>-*``), its tracefs instances (``tcplab-<pid>-*``) and its
processes (anything still in its process group). After SIGKILL nothing can clean up;
the next run must find the dead run's namespace and processes and remove them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from leftovers import (
    EXIT_WITHIN,
    TCPLAB,
    clean_up_after,
    interrupt,
    left_behind,
)
from tcplab.tun.netns import NETNS_DIR

pytestmark = pytest.mark.timeout(240)

def _check_runs(argv: list[str], delays: list[float]) -> None:
    def one(i_delay: tuple[int, float]) -> tuple[float, float, str, int, dict[str, list[str]]]:
        i, delay = i_delay
        took, err, pid = interrupt(argv, delay, whole_group=bool(i % 2))
        return delay, took, err, pid, left_behind(pid)

    problems = []
    with ThreadPoolExecutor(2) as pool:  # two at a time: 2 cores
        for delay, took, err, pid, left in pool.map(one, enumerate(delays)):
            # Before tcplab's code runs (the interpreter starting, the console script's
            # `from tcplab.cli import main`), a Ctrl+C can only end in Python's own
            # traceback; from there on, one line ("Interrupted.", "Aborted.").
            ours = "Traceback" in err and "/tcplab/" in err.split("Traceback", 1)[1]
            if took > EXIT_WITHIN or ours or any(left.values()):
                problems.append(f"SIGINT at {delay:.2f} s: exit after {took:.2f} s, "
                                f"left {left}, stderr {err.strip()[-300:]!r}")
                clean_up_after(pid)
    assert not problems, "\n".join(problems)


def _start_up_seconds(argv: list[str], done: str) -> float:
    """How long an uninterrupted run takes until it prints ``done`` (on stderr)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if done in line:
                return time.monotonic() - start
        raise AssertionError(f"{argv} never printed {done!r}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_ctrl_c_at_20_moments_of_tun_connect_start_up() -> None:
    argv = [*TCPLAB, "tun", "connect"]
    # From the interpreter's first steps to the page fetched: namespace, device, the
    # kernel lane's tracefs instance, the kernel's HTTP server, the connection.
    span = _start_up_seconds(argv, "HTTP 200")
    _check_runs(argv, [span * i / 20 for i in range(20)])


def test_ctrl_c_at_8_moments_of_tun_serve_start_up() -> None:
    argv = [*TCPLAB, "tun", "serve", "--http", "--port", "8080"]
    span = _start_up_seconds(argv, "Ctrl+C to stop")
    _check_runs(argv, [span * i / 8 for i in range(8)])


def test_ctrl_c_at_10_moments_of_watch_start_up() -> None:
    argv = [*TCPLAB, "watch", "--port", "9", "--duration", "30"]
    span = _start_up_seconds(argv, "watching")
    _check_runs(argv, [span * i / 10 for i in range(10)])


def test_sigkill_then_a_new_run_removes_what_the_dead_run_left() -> None:
    proc = subprocess.Popen([*TCPLAB, "tun", "serve", "--http", "--port", "8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()  # printed once the server is up
        assert name.startswith(f"tcplab-{proc.pid}-")
        proc.kill()  # SIGKILL: no finally, no atexit
        proc.wait(10)
        assert os.path.exists(os.path.join(NETNS_DIR, name))  # left behind, as expected
        # A process left inside it, for the next run to stop (as a `tcplab tun exec`
        # shell a user left open would be).
        sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"],
                                   start_new_session=True)
        res = subprocess.run([*TCPLAB, "tun", "connect"], capture_output=True, text=True,
                             timeout=60, check=False)
        assert res.returncode == 0, res.stderr
        assert not os.path.exists(os.path.join(NETNS_DIR, name))
        assert sleeper.wait(10) != 0  # stopped by the new run
        assert left_behind(proc.pid) == {"namespaces": [], "tracefs instances": [],
                                          "processes": []}
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_up_after(proc.pid)


@pytest.mark.parametrize("command", [["tun", "connect"], ["tun", "serve", "--http"],
                                     ["watch", "--port", "8080"]])
def test_without_root_one_line_says_so_and_how_to_run_it(command: list[str]) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    # Root without its network and admin capabilities: what `sudo` would give back.
    res = subprocess.run(["setpriv", "--bounding-set=-net_admin,-net_raw,-sys_admin", "--",
                          *TCPLAB, *command], capture_output=True, text=True, timeout=30,
                         check=False)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "needs root" in lines[0] and f"Run: sudo tcplab {' '.join(command)}" in lines[0]
    assert "mount" not in lines[0] and "Traceback" not in res.stderr


def test_sigkilled_watch_leaves_an_instance_that_the_next_run_removes() -> None:
    proc = subprocess.Popen([*TCPLAB, "watch", "--port", "9", "--duration", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr is not None
        assert "watching" in proc.stderr.readline()
        proc.kill()
        proc.wait(10)
        assert left_behind(proc.pid)["tracefs instances"]  # nothing could remove it
        res = subprocess.run([*TCPLAB, "watch", "--port", "9", "--duration", "0.2"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert res.returncode == 0, res.stderr
        assert left_behind(proc.pid) == {"namespaces": [], "tracefs instances": [],
                                          "processes": []}
        # If the killed run had mounted tracefs, the new run unmounted it.
        assert not os.path.exists("/run/tcplab-tracefs-mount.pid")
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_up_after(proc.pid)
