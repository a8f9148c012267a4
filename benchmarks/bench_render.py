"""Rendering benchmark: a 10,000-segment trace to SVG and to the HTML report.

Run: ``.venv/bin/python benchmarks/bench_render.py [--segments N] [--runs K]``.
Prints the median wall time of K runs for each output, side by side; the goal
is under 3 s each.  The trace is synthesised in the trace schema
(:func:`tcplab.render.sample.synthetic_trace`): a bulk transfer with a lost
segment every 100, RTO brackets, the four-way close and TIME-WAIT.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from tcplab.render.html import report_html
from tcplab.render.sample import synthetic_trace
from tcplab.render.svg import sequence_svg, state_diagram_svg


def _median(fn: Callable[[], str], runs: int) -> tuple[float, int]:
    times: list[float] = []
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    events = synthetic_trace(args.segments)
    nseg = sum(1 for e in events if e["kind"] == "segment")
    print(f"trace: {len(events)} events, {nseg} segments; median of {args.runs} runs")
    rows = [
        ("sequence SVG", lambda: sequence_svg(events, title="bench")),
        ("state diagram SVG", lambda: state_diagram_svg(events)),
        ("HTML report", lambda: report_html(events, title="bench")),
    ]
    for name, fn in rows:
        secs, size = _median(fn, args.runs)
        verdict = "ok" if secs < 3.0 else "OVER the 3 s goal"
        print(f"{name:<18} {secs:8.3f} s  {size / 1e6:7.2f} MB  ({verdict})")


if __name__ == "__main__":
    main()
