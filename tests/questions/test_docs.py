"""docs/questions.md and docs/questions.zh.md: current, complete, in both languages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_question_docs_are_generated_from_the_registry_and_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "questions_docs.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_question_is_in_both_docs_with_its_command_answer_and_linux_facts() -> None:
    for name in ("questions.md", "questions.zh.md"):
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert not re.search(r"\bq\.\d+\.", text), "a text key instead of its text"
        numbers = [int(n) for n in re.findall(r"^### (\d+)\. ", text, flags=re.M)]
        assert sorted(numbers) == list(range(1, 52)), name
        for block in re.split(r"^### ", text, flags=re.M)[1:]:
            assert "```\ntcplab " in block, block[:60]
            assert block.count("**") >= 4, block[:60]   # the answer and the Linux facts
            if name.endswith("zh.md"):
                heading, _, body = block.partition("\n")
                assert CJK.search(heading) and CJK.search(body), block[:60]
