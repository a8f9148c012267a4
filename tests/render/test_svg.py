"""The SVG pictures: sequence diagram and RFC 9293 state diagram, from engine traces."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tcplab.render.model import TimeAxis, flag_words, ordered
from tcplab.render.sample import engine_trace, lose_first_fin, synthetic_trace
from tcplab.render.svg import sequence_svg, state_diagram_svg

NS = "{http://www.w3.org/2000/svg}"


def _lose_first_server_fin() -> list[dict[str, Any]]:
    return engine_trace(drop=lose_first_fin("server"))


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def test_sequence_svg_is_valid_xml_with_both_lifelines_and_states() -> None:
    svg = sequence_svg(engine_trace(), title="one connection life")
    texts = _texts(svg)
    assert "client" in texts and "server" in texts
    for state in ("SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                  "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"):
        assert state in texts, state
    assert any(t.startswith("SYN seq=") for t in texts)
    assert any(t.startswith("SYN, ACK seq=") and "ack=" in t for t in texts)
    assert any(t.startswith("FIN, ACK") for t in texts)


def test_sequence_svg_one_arrow_per_segment() -> None:
    events = engine_trace()
    sent = [e for e in events if e["kind"] == "segment" and e["event"] == "send"]
    root = ET.fromstring(sequence_svg(events))
    groups = [g for g in root.iter(f"{NS}g") if "seg" in (g.get("class") or "").split()]
    assert len(groups) == len(sent)


def test_sequence_svg_relative_numbers_start_at_zero() -> None:
    texts = _texts(sequence_svg(engine_trace(), relative=True))
    assert "SYN seq=0 len=0" in texts
    assert "SYN, ACK seq=0 ack=1 len=0" in texts


def test_lost_segment_ends_in_a_cross_and_rto_bracket_is_drawn() -> None:
    svg = sequence_svg(_lose_first_server_fin())
    root = ET.fromstring(svg)
    lost = [g for g in root.iter(f"{NS}g") if "lost" in (g.get("class") or "").split()]
    assert len(lost) == 1
    assert any(p.get("class") == "cross" for p in lost[0].iter(f"{NS}path"))
    texts = _texts(svg)
    assert "RTO fired" in texts
    assert any(t.startswith("2MSL") for t in texts)


def test_long_idle_gap_is_compressed_and_labelled() -> None:
    svg = sequence_svg(engine_trace())
    texts = _texts(svg)
    assert any("60 s later" in t for t in texts)
    height = float(ET.fromstring(svg).get("height", "0"))
    assert height < 1200  # 60 s of TIME-WAIT did not become 60 s worth of pixels


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_themes(theme: str) -> None:
    svg = sequence_svg(engine_trace(), theme=theme)
    ET.fromstring(svg)
    assert ("#0d1117" in svg) == (theme == "dark")
    ET.fromstring(state_diagram_svg(engine_trace(), theme=theme))


def test_unknown_theme_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown theme"):
        sequence_svg([], theme="sepia")


def test_empty_trace_still_draws() -> None:
    ET.fromstring(sequence_svg([]))
    ET.fromstring(state_diagram_svg([]))


def test_state_diagram_numbers_transitions_in_order() -> None:
    events = engine_trace()
    svg = state_diagram_svg(events, host="client")
    root = ET.fromstring(svg)
    badges = [g for g in root.iter(f"{NS}g") if g.get("class") == "badge"]
    numbers = sorted(int(b.get("data-n", "0")) for b in badges)
    client_states = [e["to"] for e in ordered(events)
                     if e["kind"] == "state" and e["host"] == "client"]
    assert numbers == list(range(1, len(client_states) + 1))
    texts = _texts(svg)
    assert any("client: CLOSED → SYN-SENT" in t for t in texts)
    assert any("client: FIN-WAIT-2 → TIME-WAIT" in t for t in texts)
    visited = {g.get("data-node") for g in root.iter(f"{NS}g")
               if "visited" in (g.get("class") or "")}
    assert {"SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"} <= visited
    assert "CLOSE-WAIT" not in visited


def test_time_axis_rows_and_gaps() -> None:
    axis = TimeAxis(0.0, row=20.0, max_gap=100.0, gap_px=40.0)
    ys = axis.layout([(0.0, True), (0.0, True), (0.01, True), (0.02, True), (60.0, True)])
    assert ys[1] - ys[0] >= 20.0
    assert ys == sorted(ys)
    assert len(axis.gaps) == 1 and axis.gaps[0].seconds == pytest.approx(59.98)


def test_flag_words() -> None:
    assert flag_words("SA") == "SYN, ACK"
    assert flag_words("PA") == "PSH, ACK"
    assert flag_words("FA") == "FIN, ACK"
    assert flag_words("R") == "RST"


def test_synthetic_trace_renders() -> None:
    svg = sequence_svg(synthetic_trace(500))
    ET.fromstring(svg)
