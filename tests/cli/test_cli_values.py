"""Command-line values (issue 19, point 8): every bad value is one clear line, before anything runs.

Each case is a command line a user (or a fuzzer) typed: nan and inf where a number of
seconds goes, absurd ranges, switches that do not apply to what was asked, output files
in directories that do not exist, flags that exclude each other. The answer must be exit
status 2 with a message naming the option, no traceback, and no work done first.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab.cli import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{args}: {result.exception!r}"  # a Python exception would be a traceback
    return result.exit_code, result.output


@pytest.mark.parametrize(("args", "says"), [
    # numbers: finite and in range
    (["demo", "--delay", "nan"], "Invalid value for '--delay': 'nan' is not a finite number"),
    (["demo", "--delay", "inf"], "'inf' is not a finite number"),
    (["demo", "--msl", "nan"], "Invalid value for '--msl': 'nan' is not a finite number"),
    (["demo", "--msl", "-inf"], "'-inf' is not a finite number"),
    (["demo", "--width", "0"], "--width must be a whole number of columns from 60 to 400"),
    (["demo", "--width", "-5"], "--width must be"),
    (["demo", "--seed", "-1"], "'--seed'"),
    (["scenario", "run", "close", "--time-wait", "1e308"],
     "'--time-wait': 1e+308 is not in the range 0.0<=x<=3600.0"),
    (["scenario", "run", "close", "--time-wait", "nan"], "'nan' is not a finite number"),
    (["scenario", "run", "close", "--time-wait", "-1"], "'--time-wait'"),
    (["scenario", "run", "close", "--width", "0"], "--width must be"),
    (["sockets", "--watch", "--interval", "nan"], "'--interval': 'nan' is not a finite"),
    (["sockets", "--watch", "--duration", "nan"], "'--duration': 'nan' is not a finite"),
    (["http", "serve", "--keepalive-timeout", "nan"], "'--keepalive-timeout': 'nan'"),
    (["http", "serve", "--request-timeout", "inf"], "'--request-timeout': 'inf'"),
    (["http", "serve", "--send-timeout", "nan"], "'--send-timeout': 'nan'"),
    (["http", "serve", "--max-pipelined", "0"], "'--max-pipelined'"),
    (["http", "serve", "--max-connections", "0"], "'--max-connections'"),
    (["pcap", "diagram", "x.pcap", "--conn", "0"], "'--conn': 0 is not in the range x>=1"),
    # switches that do not apply
    (["demo", "--all", "--svg", "x.svg"], "--svg does not apply to --all"),
    (["demo", "--all", "--delay", "0.1"], "--delay does not apply to --all"),
    (["demo", "--json", "--width", "80"], "--width does not apply to --json"),
    (["scenario", "run", "close", "--four-segment"],
     "--four-segment does not apply to scenario close (only to isn-sync)"),
    (["scenario", "run", "handshake", "--syn-cookies"],
     "--syn-cookies does not apply to scenario handshake (only to syn-flood)"),
    (["scenario", "run", "close", "--no-reuseaddr"], "only to port-reuse"),
    (["scenario", "run", "close", "--json", "--width", "80"], "--width does not apply"),
    (["sockets", "--interval", "2"], "--interval does not apply without --watch"),
    (["sockets", "--duration", "2"], "--duration does not apply without --watch"),
    (["sockets", "--watch", "--json"], "--json does not apply to --watch"),
    (["sockets", "-4", "-6"], "-4 and -6 exclude each other"),
    (["sockets", "-6", "-4"], "-6 and -4 exclude each other"),
    (["pcap", "diagram", "x.pcap", "--theme", "dark"],
     "--theme does not apply without --svg or --html"),
    (["pcap", "diagram", "x.pcap", "--relative"], "--relative does not apply"),
    (["pcap", "diagram", "x.pcap", "--absolute"], "--absolute does not apply"),
    (["tun", "serve", "--root", "."], "--root does not apply without --http"),
    (["tun", "connect", "--path", "/ HTTP/1.1\r\nX: y"], "'--path': must start with /"),
    (["tun", "connect", "--path", "index.html"], "'--path': must start with /"),
    # output files: checked first
    (["demo", "--svg", "/nonexistent/x.svg"], "'--svg': /nonexistent: no such directory"),
    (["demo", "--pcap", "/etc/passwd/x.pcap"], "'--pcap': /etc/passwd: no such directory"),
    (["demo", "--html", "/"], "'--html'"),
    (["scenario", "run", "server-close-storm", "--plot", "/nonexistent/p.svg"],
     "'--plot': /nonexistent: no such directory"),
    (["lab", "close-storm", "--plot", "/nonexistent/p.svg"], "'--plot'"),
    (["pcap", "diagram", "x.pcap", "--svg", "/nonexistent/x.svg"], "'--svg'"),
])
def test_bad_value_is_one_clear_error_before_anything_runs(args: list[str], says: str) -> None:
    code, output = run(*args)
    assert code == 2, output
    assert says in output
    assert "[TIME-WAIT]" not in output and "listening on" not in output  # nothing ran
    assert len(output.splitlines()) <= 4  # usage, try --help, blank, the error


def test_absurd_time_wait_does_not_print_its_300_digits() -> None:
    _code, output = run("scenario", "run", "close", "--time-wait", "1e308")
    assert "0" * 30 not in output


def test_output_files_in_a_writable_directory_are_written(tmp_path: Path) -> None:
    svg, pcap = tmp_path / "d.svg", tmp_path / "d.pcap"
    code, output = run("demo", "--svg", str(svg), "--pcap", str(pcap))
    assert code == 0, output
    assert svg.read_text().startswith("<svg") and pcap.stat().st_size > 24


def test_switch_that_applies_is_accepted() -> None:
    code, output = run("scenario", "run", "isn-sync", "--four-segment", "--json")
    assert code == 0, output
    assert json.loads(output)["meta"]["switches"]["four_segment"] is True


@pytest.mark.parametrize(("flag", "family"), [("-4", 4), ("-6", 6)])
def test_sockets_family_flags_still_filter(flag: str, family: int) -> None:
    with socket.socket(socket.AF_INET) as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        try:
            v6.bind(("::1", port))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        v4.listen()
        v6.listen()
        code, output = run("sockets", flag, "--json", "--port", str(port), "--no-processes")
        assert code == 0, output
        rows = json.loads(output)["sockets"]
        assert rows and {r["family"] for r in rows} == {family}
        _code, both = run("sockets", "--json", "--port", str(port), "--no-processes")
        assert {r["family"] for r in json.loads(both)["sockets"]} == {4, 6}


def test_ctrl_c_while_python_imports_the_cli_is_one_line() -> None:
    # Ctrl+C lands while `import click` runs (the slow part of start-up).
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'click':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from tcplab.__main__ import main\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, "demo"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 130
    assert res.stderr == "Interrupted.\n"
