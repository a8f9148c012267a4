"""`tcplab http serve` start-up errors: one clear explanation, never a traceback."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from tcplab.cli.http import http as http_command
from tcplab.http.app import hello_handler
from tcplab.http.messages import Limits
from tcplab.http.protocol import ServerState
from tcplab.http.server import ServeConfig, explain_port_in_use
from tcplab.kernel.sockets import KernelSocket


def test_taken_port_names_the_live_listener_and_its_process() -> None:
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        port = live.getsockname()[1]
        result = CliRunner().invoke(http_command, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} is already in use" in result.output
    assert "A live listener holds it" in result.output and "pid" in result.output
    assert "Traceback" not in result.output


def _tw(port: int, left_ms: int) -> KernelSocket:
    return KernelSocket(4, "TIME-WAIT", "127.0.0.1", port, "127.0.0.1", 40000, 0, 0,
                     "time-wait", left_ms, 0, 0, 0)


def test_time_wait_explanation_lists_time_left_and_the_options() -> None:
    text = explain_port_in_use("127.0.0.1", 8080, False, [_tw(8080, 41_000), _tw(8080, 12_000)])
    assert "2 socket(s) in TIME-WAIT" in text
    assert "41.0s left" in text and "wait 41.0s" in text
    assert "--reuseaddr" in text and "--port N" in text


def test_time_wait_explanation_with_reuseaddr_says_the_old_socket_lacked_it() -> None:
    text = explain_port_in_use("127.0.0.1", 8080, True, [_tw(8080, 5_000)])
    assert "old server's sockets did not have it" in text


def test_address_not_on_this_machine_is_one_clear_line() -> None:
    result = CliRunner().invoke(http_command, ["serve", "--host", "192.0.2.1", "--port", "0"])
    assert result.exit_code == 1
    assert "not an address of this machine" in result.output


def test_serve_options_become_the_servers_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ServeConfig] = []

    def fake_run_server(config: ServeConfig, announce: object = None) -> ServerState:
        seen.append(config)
        return ServerState(hello_handler)

    monkeypatch.setattr("tcplab.cli.http.run_server", fake_run_server)
    result = CliRunner().invoke(http_command, [
        "serve", "--port", "0", "--max-pipelined", "4", "--send-timeout", "2.5",
        "--keepalive-timeout", "1", "--request-timeout", "3", "--max-connections", "9"])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.limits == Limits(max_connections=9, keepalive_timeout=1.0,
                                   request_timeout=3.0, max_pipelined=4, send_timeout=2.5)
