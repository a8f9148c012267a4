"""The terminal diagram: fits the width it is given, in display cells, in both languages."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from tcplab.cli import cli
from tcplab.i18n import wrap
from tcplab.scenarios import CATALOGUE


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("value", ["0", "-3", "abc", "59", "401", "1e3"])
def test_bad_width_is_one_clear_line(value: str) -> None:
    res = tcplab("demo", "--width", value)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--width" in lines[0] and "Traceback" not in res.stderr


def test_bad_width_in_chinese() -> None:
    res = tcplab("scenario", "run", "close", "--lang", "zh", "--width", "0")
    assert res.returncode == 2 and "--width 必须是" in res.stderr


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("cols", [60, 80, 120])
def test_every_line_fits_the_width(lang: str, cols: int) -> None:
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["demo", "--lang", lang, "--width", str(cols)]).output]
    for name in CATALOGUE:
        res = runner.invoke(cli, ["scenario", "run", name, "--lang", lang, "--width", str(cols)])
        assert res.exit_code == 0, res.output
        outputs.append(res.output)
    for out in outputs:
        too_wide = [line for line in out.splitlines() if cell_len(line) > cols
                    and not line.startswith("  '")]  # the stale-segment bytes table
        assert not too_wide, too_wide[:3]


def test_terminal_width_is_followed_when_no_width_is_given() -> None:
    res = CliRunner().invoke(cli, ["demo"], env={"COLUMNS": "72"})
    assert res.exit_code == 0
    assert max(cell_len(line) for line in res.output.splitlines()) <= 72


def test_chinese_terminal_has_no_english_narration() -> None:
    out = CliRunner().invoke(cli, ["demo", "--lang", "zh", "--width", "100"]).output
    for english in ("time (s)", "active open", "final states", "segments:", "timer starts",
                    "of virtual time", "client: connect", "# server:"):
        assert english not in out, english
    assert "主动打开" in out and "最终状态" in out and "虚拟时间" in out


def test_wrap_breaks_chinese_between_characters_and_keeps_punctuation() -> None:
    text = "收到对方的 FIN：对方不会再发送数据，但本方仍可继续发送（CLOSE-WAIT）。"
    for cells in range(16, 60):
        lines = wrap(text, cells)
        assert all(cell_len(line) <= cells for line in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        assert not any(line[0] in "，。：；）" for line in lines)
        assert "CLOSE-WAIT" in "".join(lines) and not any(
            line.endswith("CLOSE-") for line in lines)
