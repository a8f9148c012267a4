"""``tcplab tun serve / exec / connect`` as a person runs them (subprocesses, bounded)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tcplab.tun.netns import list_tcplab_namespaces

pytestmark = pytest.mark.timeout(60)

TCPLAB = [sys.executable, "-m", "tcplab"]


def test_connect_fetches_from_the_kernel_and_merges_both_sides_states() -> None:
    res = subprocess.run([*TCPLAB, "tun", "connect", "--json"], capture_output=True,
                         text=True, timeout=40, check=False)
    assert res.returncode == 0, res.stderr
    assert "HTTP 200" in res.stderr
    doc = json.loads(res.stdout)
    events = doc["events"]
    recv = [e for e in events if e["kind"] == "segment" and e["event"] == "recv"]
    assert recv and all(e["host"] == "kernel" and e["fate"] == "delivered" for e in recv)
    assert "SA" in {e["flags"] for e in recv}  # the kernel's SYN-ACK, drawn from the kernel
    tcplab_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "tcplab"]
    kernel_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "kernel"]
    assert tcplab_states[-1] == "CLOSED" and "LAST-ACK" in tcplab_states
    assert "LISTEN" in kernel_states and kernel_states[-1] == "TIME-WAIT"
    assert doc["meta"]["netns"] not in list_tcplab_namespaces()


def test_serve_exec_curl_then_ctrl_c_removes_the_namespace() -> None:
    proc = subprocess.Popen([*TCPLAB, "tun", "serve", "--http", "--port", "8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("tcplab-"), proc.stderr.read() if proc.stderr else ""
        res = subprocess.run([*TCPLAB, "tun", "exec", "--netns", name, "--", "curl", "-sS",
                              "--max-time", "10", "http://192.0.2.2:8080/"],
                             capture_output=True, text=True, timeout=20, check=False)
        assert res.returncode == 0, res.stderr
        assert "Your connection" in res.stdout
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped after 1 connection(s)" in err
        assert name not in list_tcplab_namespaces()
        assert "tcplab" in out and "kernel" in out  # the diagram's two lanes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_exec_without_a_running_namespace_says_so_in_one_line() -> None:
    res = subprocess.run([*TCPLAB, "tun", "exec", "--netns", "tcplab-0-0", "--", "true"],
                         capture_output=True, text=True, timeout=20, check=False)
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0
    assert "no network namespace named tcplab-0-0" in res.stderr


def test_connect_over_ipv6_fetches_and_merges_both_sides_states() -> None:
    res = subprocess.run([*TCPLAB, "tun", "connect", "-6", "--json"], capture_output=True,
                         text=True, timeout=40, check=False)
    assert res.returncode == 0, res.stderr
    assert "HTTP 200 from [2001:db8::1]:8000/" in res.stderr
    doc = json.loads(res.stdout)
    events = doc["events"]
    segs = [e for e in events if e["kind"] == "segment" and e["event"] in ("send", "recv")]
    assert segs and all(e["src"].startswith("2001:db8::") for e in segs)
    tcplab_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "tcplab"]
    kernel_states = [e["to"] for e in events if e["kind"] == "state" and e["host"] == "kernel"]
    assert tcplab_states[-1] == "CLOSED" and "LAST-ACK" in tcplab_states
    assert "LISTEN" in kernel_states and kernel_states[-1] == "TIME-WAIT"
    assert all("2001:db8::1" in e["conn"] for e in events
               if e["kind"] == "state" and e["host"] == "kernel")
    assert doc["meta"]["family"] == 6


def test_serve_answers_curl_over_ipv6_and_ipv4_alike() -> None:
    proc = subprocess.Popen([*TCPLAB, "tun", "serve", "--http", "--port", "8080", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("tcplab-"), proc.stderr.read() if proc.stderr else ""
        for url in ("http://[2001:db8::2]:8080/", "http://192.0.2.2:8080/"):
            res = subprocess.run([*TCPLAB, "tun", "exec", "--netns", name, "--", "curl", "-g",
                                  "-sS", "--max-time", "10", url],
                                 capture_output=True, text=True, timeout=20, check=False)
            assert res.returncode == 0, res.stderr
            assert "Your connection" in res.stdout
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped after 2 connection(s)" in err
        syns = [e["src"] for e in json.loads(out)["events"]
                if e["kind"] == "segment" and e["event"] == "recv" and e["flags"] == "S"]
        assert len(syns) == 2 and syns[0].startswith("2001:db8::1:")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
