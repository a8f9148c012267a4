"""Ctrl+C at any moment of ``tcplab demo --on linux``, and SIGKILL: nothing left behind.

A run makes two namespaces (each with a TUN device, sysctls, a sock_diag socket and a
capture), a tracefs instance, the wire's thread and the programs' threads. Each test
starts the command in its own process group, sends SIGINT after a delay (12 delays from
the interpreter's start to the end of the lesson, alone or, like a terminal's Ctrl+C,
to the whole group), and then looks for what the run could leave: its namespaces and
tracefs instances (``tcplab-<pid>-*``) and its processes. After SIGKILL nothing can
clean up; the next run must find the dead run's namespaces and instance and remove them.
"""

from __future__ import annotations

import os
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

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("linux")]

ARGV = [*TCPLAB, "demo", "--on", "linux", "--json"]


def test_ctrl_c_at_12_moments_of_demo_on_linux() -> None:
    start = time.monotonic()
    done = subprocess.run(ARGV, capture_output=True, text=True, timeout=60, check=False)
    span = time.monotonic() - start  # the interpreter, the set-up, the lesson, the end
    assert done.returncode == 0, done.stderr

    def one(i: int) -> tuple[float, float, str, int, dict[str, list[str]]]:
        delay = span * i / 12
        took, err, pid = interrupt(ARGV, delay, whole_group=bool(i % 2))
        return delay, took, err, pid, left_behind(pid)

    problems = []
    with ThreadPoolExecutor(2) as pool:  # two at a time: 2 cores
        for delay, took, err, pid, left in pool.map(one, range(12)):
            # Before tcplab's code runs (the interpreter starting), a Ctrl+C can only end
            # in Python's own traceback; from there on, one line ("Interrupted.").
            ours = "Traceback" in err and "/tcplab/" in err.split("Traceback", 1)[1]
            if took > EXIT_WITHIN or ours or any(left.values()):
                problems.append(f"SIGINT at {delay:.2f} s: exit after {took:.2f} s, "
                                f"left {left}, stderr {err.strip()[-300:]!r}")
                clean_up_after(pid)
    assert not problems, "\n".join(problems)


def test_sigkill_then_a_new_run_removes_what_the_dead_run_left() -> None:
    # A long lesson (every SYN lost): killed while its namespaces and instance exist.
    proc = subprocess.Popen([*ARGV, "--drop", "syn:all"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        assert "Running on Linux" in proc.stderr.readline()
        deadline = time.monotonic() + 20
        while len(left_behind(proc.pid)["namespaces"]) < 2 or not left_behind(
                proc.pid)["tracefs instances"]:
            assert time.monotonic() < deadline, left_behind(proc.pid)
            time.sleep(0.05)
        time.sleep(0.3)  # the lesson under way
        proc.kill()  # SIGKILL: no finally, no atexit
        proc.wait(10)
        left = left_behind(proc.pid)
        assert len(left["namespaces"]) == 2 and left["tracefs instances"]  # as expected
        res = subprocess.run([*TCPLAB, "demo", "--on", "linux", "--json"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stderr
        assert left_behind(proc.pid) == {"namespaces": [], "tracefs instances": [],
                                          "processes": []}
        assert not any(os.path.exists(os.path.join(NETNS_DIR, n)) for n in left["namespaces"])
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_up_after(proc.pid)
