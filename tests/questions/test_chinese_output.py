"""Under --lang zh every question's commands print Chinese: narration, notes, findings,
outcome lines and explanations (protocol words, numbers and commands stay as they are)."""

from __future__ import annotations

import re
import shlex

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.scenarios.questions import QUESTIONS

CJK = re.compile(r"[\u4e00-\u9fff]")
#: Chinese text, or Chinese punctuation around protocol words ("server：SYN-ACK")
ZH = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")
PROSE = re.compile(r"\b[a-z]{4,}\b")             # an English word of four letters or more
DIAGRAM_ROW = re.compile(r"\|.*\||-->|<--|--\|")  # lifelines and arrows carry packet fields
#: commands that read the machine's own kernel (their output is the kernel's table)
KERNEL = ("tcplab sockets", "tcplab watch")

COMMANDS = sorted({c for q in QUESTIONS for c in q.commands
                   if not c.startswith(KERNEL) and "--json" not in c})


def english_lines(output: str) -> list[str]:
    """Lines with English prose and no Chinese at all (a diagram's rows are left out)."""
    return [line for line in output.splitlines()
            if PROSE.search(line) and not ZH.search(line) and not DIAGRAM_ROW.search(line)
            and not line.strip().startswith("tcplab ")]


def test_the_checker_finds_an_english_line() -> None:
    assert english_lines("结果：\n  server: CLOSED at 3 s: the timer expired\n") == \
        ["  server: CLOSED at 3 s: the timer expired"]
    assert english_lines("   0.050  |- S seq=0 len=0 -->|\n  server：SYN-ACK\n") == []


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_speaks_chinese(command: str) -> None:
    # wide, so that a wrapped Chinese sentence never leaves a Latin word alone on a line
    argv = [*shlex.split(command)[1:], "--lang", "zh", "--width", "400"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output[-400:]
    assert CJK.search(result.output)
    assert english_lines(result.output) == []
