"""The labs run live on loopback: the restart matrix, SIGINT semantics, the close storm."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from tcplab.cli.lab import lab as lab_command
from tcplab.kernel.sockets import KernelSocket
from tcplab.lab.closestorm import run_close_storm
from tcplab.lab.timewait import (
    LabError,
    TimeWaitResult,
    explain,
    free_port,
    leave_time_wait,
    run_timewait_lab,
    try_restart,
)


@pytest.fixture(scope="module")
def matrix() -> TimeWaitResult:
    return run_timewait_lab("127.0.0.1", free_port(), free_port())


def _cell(result: TimeWaitResult, old: bool, new: bool) -> tuple[bool, str | None]:
    (a,) = [a for a in result.attempts if (a.old_reuseaddr, a.new_reuseaddr) == (old, new)]
    assert a.time_wait_sockets >= 1  # measured while TIME-WAIT held the port
    return a.ok, a.error


def test_restart_without_reuseaddr_fails_with_eaddrinuse(matrix: TimeWaitResult) -> None:
    assert _cell(matrix, old=False, new=False) == (False, "EADDRINUSE")
    assert _cell(matrix, old=True, new=False) == (False, "EADDRINUSE")


def test_restart_with_reuseaddr_succeeds_when_the_old_socket_had_it(
        matrix: TimeWaitResult) -> None:
    assert _cell(matrix, old=True, new=True) == (True, None)


def test_restart_with_reuseaddr_fails_on_linux_when_the_old_socket_lacked_it(
        matrix: TimeWaitResult) -> None:
    assert _cell(matrix, old=False, new=True) == (False, "EADDRINUSE")


def test_sigint_leaves_a_server_side_time_wait_socket_with_its_countdown(
        matrix: TimeWaitResult) -> None:
    for rnd in matrix.rounds:
        assert rnd.server_exit_code == 0
        assert rnd.stop_seconds < 3  # Ctrl+C stops it at once
        (row,) = rnd.time_wait
        assert (row.local_port, row.remote_port) == (rnd.port, rnd.client_port)
        assert row.timer == "time-wait" and 50_000 < row.expires_ms <= 60_000


def test_matrix_json_has_the_four_measured_cells(matrix: TimeWaitResult) -> None:
    doc = json.loads(json.dumps(matrix.to_json()))
    cells = {(m["old_reuseaddr"], m["new_reuseaddr"]): m["ok"] for m in doc["matrix"]}
    assert cells == {(False, False): False, (False, True): False,
                     (True, False): False, (True, True): True}


@pytest.fixture
def ignore_sigint() -> Iterator[None]:
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a non-interactive shell's `&` does
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_server_stops_on_sigint_even_if_started_with_sigint_ignored(
        ignore_sigint: None) -> None:
    seen: list[str] = []

    def narrate(title: str, text: str, rows: list[KernelSocket] | None) -> None:
        seen.append(title)

    rnd = leave_time_wait("127.0.0.1", free_port(), True, narrate)
    assert rnd.server_exit_code == 0
    assert rnd.time_wait and rnd.time_wait[0].state == "TIME-WAIT"
    assert any("SIGINT" in t for t in seen)


def test_a_free_port_binds_with_or_without_reuseaddr() -> None:
    port = free_port()
    assert try_restart("127.0.0.1", port, False) == (True, None, None)
    assert try_restart("127.0.0.1", port, True) == (True, None, None)


def test_a_live_listener_blocks_even_a_reuseaddr_restart() -> None:
    with socket.socket() as live:
        live.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        live.bind(("127.0.0.1", 0))
        live.listen()
        ok, error, step = try_restart("127.0.0.1", live.getsockname()[1], True)
        assert (ok, error, step) == (False, "EADDRINUSE", "bind")


def test_lab_refuses_a_port_that_is_not_free() -> None:
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        with pytest.raises(LabError, match="not free"):
            run_timewait_lab("127.0.0.1", live.getsockname()[1])


def test_cli_reports_a_taken_port_in_one_line() -> None:
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        result = CliRunner().invoke(lab_command, ["timewait", "--port",
                                                  str(live.getsockname()[1])])
        assert result.exit_code == 1
        assert "is not free" in result.output and "Traceback" not in result.output


def test_explanations_name_the_linux_rule() -> None:
    assert "only if that socket had SO_REUSEADDR" in explain(False, True, False, "EADDRINUSE")
    assert "bound at once" in explain(True, True, True, None)


def test_close_storm_puts_time_wait_on_whoever_closes_first() -> None:
    results = {r.mode: r for r in run_close_storm(40, samples=4)}
    server_close = results["server-close"].samples[-1]
    client_close = results["client-close"].samples[-1]
    keep_alive = results["keep-alive"].samples[-1]
    assert (server_close.server_time_wait, server_close.client_time_wait) == (40, 0)
    assert (client_close.server_time_wait, client_close.client_time_wait) == (0, 40)
    assert keep_alive.server_time_wait == 0 and keep_alive.client_time_wait <= 1
    counts = [s.server_time_wait for s in results["server-close"].samples]
    assert counts == sorted(counts) and counts[0] == 0  # grows with the requests


def test_close_storm_cli_prints_a_table_and_json() -> None:
    runner = CliRunner()
    result = runner.invoke(lab_command, ["close-storm", "-n", "10", "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert "server-close" in result.output and "10 / 0" in result.output
    result = runner.invoke(lab_command, ["close-storm", "-n", "5", "--mode", "keep-alive",
                                         "--json"])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)
    assert doc["mode"] == "keep-alive" and doc["requests"] == 5


def test_wait_is_bounded_and_reports_what_is_left(matrix: TimeWaitResult) -> None:
    from tcplab.lab.timewait import wait_for_expiry

    port = matrix.rounds[0].port
    ticks: list[int] = []
    report = wait_for_expiry("127.0.0.1", port, lambda *a: None,
                             lambda rows: ticks.append(len(rows)), limit=0.3, interval=0.1)
    assert report["time_wait_left"] >= 1 and report["plain_bind_ok"] is False
    assert ticks and ticks[0] >= 1


def test_timewait_cli_json_prints_the_measured_matrix() -> None:
    result = CliRunner().invoke(lab_command, ["timewait", "--port", str(free_port()),
                                              "--second-port", str(free_port()), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [m["ok"] for m in doc["matrix"]] == [False, False, False, True]
    assert all(m["error"] in (None, "EADDRINUSE") for m in doc["matrix"])
