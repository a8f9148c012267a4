"""The TIME-WAIT charts: well-formed SVG drawn from the run; no series hides another."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.render.chart import line_chart_svg

NS = "{http://www.w3.org/2000/svg}"


def test_chart_has_one_polyline_per_series_scaled_to_the_data() -> None:
    svg = line_chart_svg({"a": [(0, 0), (10, 20)], "b": [(0, 5), (10, 5)]}, title="t",
                         xlabel="x", ylabel="y", theme="dark")
    root = ET.fromstring(svg)
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 2
    ya = [float(p.split(",")[1]) for p in lines[0].get("points", "").split()]
    assert ya[0] > ya[1]  # 20 is drawn above 0
    assert "20" in svg and ">a<" in svg and ">b<" in svg


def test_scenario_plot_writes_the_time_wait_series(tmp_path: Path) -> None:
    out = tmp_path / "storm.svg"
    res = CliRunner().invoke(cli, ["scenario", "run", "server-close-storm", "--plot", str(out)])
    assert res.exit_code == 0, res.output
    root = ET.fromstring(out.read_text())
    titles = [t.text or "" for t in root.iter(f"{NS}title")]
    # the server that closes first peaks at 20 entries (one per request), at the servers;
    # the client that closes first, at the client: two panels, 3 series x 13 samples each
    assert any(t.startswith("server-close: 20") for t in titles)
    assert any(t.startswith("client-close: 20") for t in titles)
    bars = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert len(bars) == 2 * 3 * 13
    # server-close and client-close used to be drawn on top of each other: bars never overlap
    spans = sorted((float(r.get("x", "0")), float(r.get("x", "0")) + float(r.get("width", "0")))
                   for r in bars)
    assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(spans))
    texts = "".join(t.text or "" for t in root.iter(f"{NS}text"))
    assert "TIME-WAIT" in texts


def test_scenario_plot_in_chinese(tmp_path: Path) -> None:
    out = tmp_path / "storm.svg"
    res = CliRunner().invoke(cli, ["scenario", "run", "server-close-storm", "--lang", "zh",
                                   "--plot", str(out)])
    assert res.exit_code == 0, res.output
    texts = [t.text or "" for t in ET.fromstring(out.read_text()).iter(f"{NS}text")]
    assert "服务器端" in texts and "客户端" in texts and "虚拟时间（秒）" in texts


def test_plot_for_a_scenario_without_series_is_one_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["scenario", "run", "close", "--plot", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "no time series" in res.output
