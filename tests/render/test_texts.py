"""Texts a learner reads: complete in both languages, and true for the run they describe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.i18n import catalogue, phrase, placeholders, seconds
from tcplab.render.narrate import Narrator, RunInfo, cause_key, note_text
from tcplab.render.svg import sequence_svg
from tcplab.scenarios import CATALOGUE
from tcplab.scenarios.base import DEFAULT, execute
from tcplab.scenarios.demo import run_demo

CJK = re.compile(r"[\u4e00-\u9fff]")
#: catalogue values that are the same in every language (protocol words and pure templates)
SAME_IN_ZH = re.compile(r"^[A-Z0-9 ,./=\-{}→()_a-z:·]*$")


def _runs() -> list[tuple[str, list[dict[str, object]]]]:
    out: list[tuple[str, list[dict[str, object]]]] = [
        ("demo", run_demo().trace.to_json_list())]
    for name, sc in CATALOGUE.items():
        for sw in [DEFAULT, *([sc.counterfactual] if sc.counterfactual else [])]:
            out.append((f"{name} {' '.join(sw.flags())}", execute(sc, 1, sw).events))
    return out


RUNS = _runs()


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    en, zh = catalogue("en"), catalogue("zh")
    assert set(en) == set(zh)
    for key in en:
        assert placeholders(en[key]) == placeholders(zh[key]), key


def test_every_chinese_text_is_chinese() -> None:
    zh = catalogue("zh")
    untranslated = [k for k, v in zh.items() if not CJK.search(v) and not SAME_IN_ZH.match(v)]
    assert not untranslated, untranslated
    # narration: every explanation, note, reason and cause has its own Chinese text
    for prefix in ("step.", "seg.", "why.", "note.", "reason.", "causename.", "cause.",
                   "scenario.", "html.", "term.", "outcome."):
        keys = [k for k in zh if k.startswith(prefix)]
        assert keys, prefix
        missing = [k for k in keys if not CJK.search(zh[k]) and not SAME_IN_ZH.match(zh[k])]
        assert not missing, missing


def test_full_width_punctuation_after_chinese() -> None:
    bad = {k: v for k, v in catalogue("zh").items() if re.search(r"[\u4e00-\u9fff][,:;!?]", v)}
    assert not bad, bad


@pytest.mark.parametrize(("name", "events"), RUNS, ids=[n for n, _ in RUNS])
def test_every_narration_string_of_every_run_has_a_chinese_text(
        name: str, events: list[dict[str, object]]) -> None:
    zh = catalogue("zh")
    for e in events:
        if e["kind"] == "note":
            assert f"note.{e.get('key')}" in zh, (name, e["text"])
            assert CJK.search(note_text(e, "zh")), e
        if e["kind"] == "segment" and e.get("reason"):
            said = phrase("reason", str(e["reason"]), "zh")
            assert said is not None and CJK.search(said), (name, e["reason"])
        if e["kind"] == "state" and e.get("cause"):
            said = phrase("causename", cause_key(str(e["cause"])), "zh")
            assert said is not None and CJK.search(said), (name, e["cause"])
    nar = Narrator(events, "zh", RunInfo(msl=30.0))
    whys = [nar.why(e) for e in nar.events]
    assert any(whys)
    assert all(CJK.search(w) for w in whys if w)


@pytest.mark.parametrize("name", ["demo", "stale-segment --time-wait 0", "lost-final-ack ",
                                  "old-duplicate-syn --two-way-handshake"])
def test_chinese_svg_and_html_carry_the_chinese_narration(name: str, tmp_path: Path) -> None:
    args = ["demo"] if name == "demo" else ["scenario", "run", *name.split()]
    svg, html = tmp_path / "x.svg", tmp_path / "x.html"
    res = CliRunner().invoke(cli, [*args, "--lang", "zh", "--svg", str(svg), "--html",
                                   str(html)])
    assert res.exit_code == 0, res.output
    events = dict(RUNS)[name if name != "lost-final-ack " else "lost-final-ack "]
    nar = Narrator(events, "zh", RunInfo(msl=30.0))
    svg_text, html_text = svg.read_text("utf-8"), html.read_text("utf-8")
    for e in nar.events:
        if e["kind"] == "note":
            first_words = note_text(e, "zh")[:8]
            assert first_words in svg_text, first_words
        why = nar.why(e)
        if why:
            assert why in html_text, why
    english_only = sequence_svg(events, lang="en")
    assert english_only != svg_text
    for word in ("丢失", "数据"):  # the legend
        assert word in svg_text


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("msl", "tw", "tw_zh"), [(5, "10 s", "10 秒"), (30, "60 s", "60 秒"),
                                                   (0.5, "1 s", "1 秒")])
def test_texts_quoting_msl_and_time_wait_follow_the_run(msl: float, tw: str, tw_zh: str) -> None:
    out = tcplab("demo", "--msl", str(msl), "--width", "400").stdout
    assert f"MSL = {seconds(msl)} in this run, so TIME-WAIT lasts {tw}" in out
    assert f"wait {tw} in TIME-WAIT" in out
    assert f"{tw} (2MSL) have passed" in out
    if msl != 30:
        assert "Linux always waits 60 s" in out
        assert "MSL = 30 s" not in out
    zh = tcplab("demo", "--msl", str(msl), "--lang", "zh", "--width", "400").stdout
    assert f"TIME-WAIT 持续 {tw_zh}" in zh
    assert f"MSL = {seconds(msl, 'zh')}" in zh


def test_svg_brackets_quote_the_runs_time_wait(tmp_path: Path) -> None:
    svg = tmp_path / "d.svg"
    assert tcplab("demo", "--msl", "5", "--svg", str(svg)).returncode == 0
    text = svg.read_text("utf-8")
    assert "2MSL = 10 s expired" in text and "2MSL = 60 s" not in text


def test_no_time_wait_run_never_says_wait_2msl() -> None:
    out = tcplab("scenario", "run", "lost-final-ack", "--time-wait", "0", "--width", "400").stdout
    assert "wait 2MSL" not in out and "ACK it and wait" not in out
    assert "this run has no TIME-WAIT" in out
    assert "without the mechanism" in out.splitlines()[0]


def test_counterfactual_report_has_counterfactual_title_and_text(tmp_path: Path) -> None:
    html = tmp_path / "s.html"
    res = CliRunner().invoke(cli, ["scenario", "run", "stale-segment", "--time-wait", "0",
                                   "--html", str(html)])
    assert res.exit_code == 0
    page = html.read_text("utf-8")
    title = re.search(r"<title>(.*?)</title>", page)
    assert title is not None and "--time-wait 0: without the mechanism" in title.group(1)
    assert "What to watch without the mechanism" in page
    assert "silent corruption" in page
    # readable facts and outcome: no Python reprs, no docstring as subtitle
    assert "{&#x27;" not in page and "[&#x27;" not in page and "&#x27;two_way" not in page
    assert "bytes that differ" in page and "TIME-WAIT</th><td>none (experiment)" in page
    # the source article is named with its title and credit
    assert "The source article" in page and "zhangxing-tech" in page


def test_demo_report_names_the_source_and_is_not_a_docstring(tmp_path: Path) -> None:
    html = tmp_path / "d.html"
    assert tcplab("demo", "--html", str(html)).returncode == 0
    page = html.read_text("utf-8")
    assert "Run the demo connection and return the network" not in page
    assert "TCP三次握手过程和状态变迁" in page and "小林coding" in page
    assert "seq</th><td>0 (absolute" not in page  # relative numbers in the panel, with the abs.
    assert '"seq","1 (absolute ' in page
