"""``tcplab demo --on linux``: the whole life on two Linux kernels, as a user runs it.

Each test runs the command (a subprocess, bounded) and reads its JSON trace: the
kernel's own states from the tracepoints, the segments from the captures, TIME-WAIT's
timer from sock_diag. TIME-WAIT on Linux is a fixed 60 s: the run ends once it has
begun (and says so), so no test waits it out.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tcplab.i18n import width
from tcplab.scenarios.findings import roles_of
from tcplab.trace import Event, validate_event
from tcplab.tun.netns import list_tcplab_namespaces

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("linux")]

TCPLAB = [sys.executable, "-m", "tcplab"]


def demo(*args: str) -> dict[str, Any]:
    res = subprocess.run([*TCPLAB, "demo", "--on", "linux", "--json", *args],
                         capture_output=True, text=True, timeout=100, check=False)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    for e in doc["events"]:
        assert not validate_event(e), (validate_event(e), e)
    assert not [n for n in list_tcplab_namespaces() if n in doc["meta"]["namespaces"].values()]
    return doc


def path(events: list[Event], host: str) -> list[str]:
    """The states of ``host``'s connection (not its listener), in order."""
    out: list[str] = []
    for e in events:
        if e["kind"] == "state" and e["host"] == host and not e["conn"].endswith("-*:*"):
            if not out:
                out.append(e["from"])
            out.append(e["to"])
    return out


def sent(events: list[Event]) -> list[Event]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and "copy_of" not in e]


def test_the_whole_life_on_linux_with_both_ends_states_and_every_segment() -> None:
    doc = demo()
    events = doc["events"]
    assert doc["meta"]["why_ended"] == "settled" and doc["meta"]["source"] == "linux"
    assert path(events, "client") == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1",
                                      "FIN-WAIT-2", "TIME-WAIT"]
    assert path(events, "server") == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT",
                                      "LAST-ACK", "CLOSED"]
    roles = [r for _e, rs in roles_of(events) for r in rs]
    for role in ("syn", "syn-ack", "ack", "fin", "fin-ack", "fin2", "last-ack"):
        assert roles.count(role) == 1, (role, roles)
    segs = sent(events)
    assert all(e["fate"] == "delivered" and e["t_arrive"] > e["t"] for e in segs)
    # both directions' data: the request (35 bytes) and the response (52)
    assert sorted(e["len"] for e in segs if e["len"]) == [35, 52]
    # TIME-WAIT's 60 s, read from sock_diag when it began, then not waited out
    arms = [e for e in events if e["kind"] == "timer" and e["timer"] == "time-wait"]
    assert len(arms) == 1 and arms[0]["host"] == "client"
    assert arms[0]["deadline"] - arms[0]["t"] == pytest.approx(60.0, abs=0.5)
    assert [e["host"] for e in events if e.get("key") == "onlinux.tw-end"] == ["client"]
    assert all("t_ns" in e for e in events if e["kind"] in ("segment", "state"))


def test_drop_last_ack_the_fin_comes_again_and_time_wait_restarts() -> None:
    doc = demo("--drop", "last-ack")
    events = doc["events"]
    lost = [e for e in sent(events) if e["fate"] == "dropped"]
    assert len(lost) == 1 and lost[0]["host"] == "client" and lost[0]["flags"] == "A"
    assert lost[0]["reason"] == "fault: drop last-ack"
    server_fins = [e for e in sent(events) if e["host"] == "server" and "F" in e["flags"]]
    assert len(server_fins) == 2  # the kernel sent its FIN again
    again = server_fins[1]
    arms = [e for e in events if e["kind"] == "timer" and e["timer"] == "time-wait"]
    assert len(arms) == 2  # armed when TIME-WAIT began, and again
    assert arms[1]["t"] == pytest.approx(again["t_arrive"], abs=0.005)
    assert arms[1]["deadline"] - arms[1]["t"] == pytest.approx(60.0, abs=0.5)
    assert arms[1]["deadline"] > arms[0]["deadline"] + 0.1  # restarted, not the same timer
    assert any(e.get("key") == "onlinux.tw-restart" for e in events)
    assert path(events, "server")[-2:] == ["LAST-ACK", "CLOSED"]
    assert doc["meta"]["findings"]["faults"] == [{"fault": "--drop last-ack", "hits": 1}]


def test_two_syn_retries_and_every_syn_lost_this_kernel_sends_six_and_times_out() -> None:
    # Linux 6.5 and later: the first tcp_syn_linear_timeouts (4) timeouts do not back
    # off, and each adds a SYN; with tcp_syn_retries=2 the time budget (7 s) ends it.
    # (Before 6.5: 3 SYNs, at 0, 1 and 3 s.)
    doc = demo("--sysctl", "net.ipv4.tcp_syn_retries=2", "--drop", "syn:all")
    events = doc["events"]
    syns = sent(events)
    assert [e["flags"] for e in syns] == ["S"] * 6
    assert all(e["fate"] == "dropped" for e in syns)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(syns)]
    assert gaps == pytest.approx([1.0] * 5, abs=0.15)
    failed = doc["meta"]["findings"]["outcome"]["failed"]
    assert [(f["host"], f["call"], f["error"]) for f in failed] == [
        ("client", "connect", "ETIMEDOUT")]
    assert failed[0]["after"] == pytest.approx(7.0, abs=0.5)
    assert path(events, "client") == ["CLOSED", "SYN-SENT", "CLOSED"]
    assert doc["meta"]["sysctls"]["client"] == {"net.ipv4.tcp_syn_retries": "2"}


def test_two_syn_retries_without_linear_timeouts_three_syns_as_before_6_5() -> None:
    # The count the textbooks give (3 SYNs at 0, 1 and 3 s, ETIMEDOUT after 7 s) is what
    # this kernel does once tcp_syn_linear_timeouts is 0: the behaviour before Linux 6.5.
    doc = demo("--sysctl", "net.ipv4.tcp_syn_retries=2",
               "--sysctl", "net.ipv4.tcp_syn_linear_timeouts=0", "--drop", "syn:all")
    events = doc["events"]
    syns = sent(events)
    assert [e["flags"] for e in syns] == ["S"] * 3
    assert all(e["fate"] == "dropped" for e in syns)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(syns)]
    assert gaps == pytest.approx([1.0, 2.0], abs=0.15)
    failed = doc["meta"]["findings"]["outcome"]["failed"]
    assert [(f["host"], f["call"], f["error"]) for f in failed] == [
        ("client", "connect", "ETIMEDOUT")]
    assert failed[0]["after"] == pytest.approx(7.0, abs=0.5)


def test_the_terminal_tells_it_in_chinese_with_the_end_of_the_run() -> None:
    res = subprocess.run([*TCPLAB, "demo", "--on", "linux", "--lang", "zh", "--width", "80"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "[TIME-WAIT]" in out and "[LAST-ACK]" in out
    assert "Linux 的 TIME-WAIT 固定为 60 秒" in out  # why the run ends there
    assert "命名空间" in out and "实际耗时" in out
    assert max(width(line) for line in out.splitlines()) <= 80  # display cells


@pytest.mark.parametrize("command", [["demo", "--on", "linux"],
                                     ["scenario", "run", "close", "--on", "linux"],
                                     ["compare", "close"]])
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
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--msl", "10"], "--msl does not apply with --on linux"),
    (["--isn", "1000"], "--isn does not apply with --on linux"),
    (["--sysctl", "net.ipv4.tcp_syn_retries=0"], "out of range"),
])
def test_what_a_kernel_cannot_take_gets_one_clear_line(args: list[str], says: str) -> None:
    res = subprocess.run([*TCPLAB, "demo", "--on", "linux", *args], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr
