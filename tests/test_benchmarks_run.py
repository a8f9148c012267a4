"""The simulator's benchmarks still run (at a tiny size) and print their figures.

They measure speed and memory for the issues' goals; this only keeps them from rotting
when the engine's API changes (the figures themselves are quoted from full runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    (["bench_scale.py", "--tw", "3000", "--conns", "200"],
     [r"TIME-WAIT entries held \(with TS\.Recent\): 3,000 .* = \d+ bytes/entry",
      r"idle ESTABLISHED connections: 200 .* bytes per connection end"]),
    (["bench_render.py", "--segments", "200", "--runs", "1"], [r"HTML report\s+[\d.]+ s"]),
    (["bench_sim.py", "--quick", "--rounds", "1"], [r"bulk: [\d.]+ MB/s at MSS 1460"]),
]


@pytest.mark.parametrize(("argv", "figures"), CASES, ids=[c[0][0] for c in CASES])
def test_the_benchmark_runs_and_prints_its_figures(argv: list[str], figures: list[str]) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / argv[0]), *argv[1:]],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for figure in figures:
        assert re.search(figure, done.stdout), (figure, done.stdout[-1500:])
