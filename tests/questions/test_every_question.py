"""Every one of the 51 drilled questions has a test that runs its documented command."""

from __future__ import annotations

import ast
from pathlib import Path

from tcplab.scenarios import CATALOGUE
from tcplab.scenarios.questions import QUESTIONS

HERE = Path(__file__).parent


def _tested() -> set[int]:
    """Question numbers named by test functions ``test_q<N>_...`` in this folder."""
    out: set[int] = set()
    for path in HERE.glob("test_q_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_q"):
                digits = node.name[len("test_q"):].split("_")[0]
                if digits.isdigit():
                    out.add(int(digits))
    return out


def test_the_registry_holds_the_51_questions_in_order() -> None:
    assert [q.n for q in QUESTIONS] == list(range(1, 52))


def test_every_question_has_a_test() -> None:
    missing = sorted(set(range(1, 52)) - _tested())
    assert not missing, f"questions without a test: {missing}"


def test_every_scenario_a_question_names_exists() -> None:
    named = {q.scenario for q in QUESTIONS if q.scenario}
    assert not named - set(CATALOGUE), sorted(named - set(CATALOGUE))
