"""docs/scenarios.md lists every scenario of the catalogue (a row of its table each)."""

from __future__ import annotations

from pathlib import Path

from tcplab.scenarios import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def test_every_scenario_has_a_row_in_docs_scenarios_md() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in CATALOGUE if f"| `{name}` |" not in text]
    assert not missing, f"docs/scenarios.md has no row for {missing}"
