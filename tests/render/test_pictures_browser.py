"""Every picture of every scenario, measured in headless Chromium: no text overlaps, none clipped.

For each scenario of ``tcplab scenario list`` (with its mechanism and, when it
has one, with its switch) and for ``tcplab demo``, in English and in Chinese,
the command writes its SVG and its HTML report.  The browser then lays out
every ``<text>`` of every SVG (the standalone ones in one page, then each
report with its embedded sequence diagram, time-sequence graphs and state
diagram) and measures it with ``getBoundingClientRect``: no two text boxes may
intersect and none may stick out of its drawing.

The same report is then used as a learner would: the "What happens next?"
mode is clicked through (predicting, being checked against the trace,
revealing), and the time-sequence graph is checked against the trace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.scenarios import CATALOGUE

_MEASURE = r"""
function measureSvg(svg, name) {
  var r = svg.getBoundingClientRect();
  var boxes = [];
  svg.querySelectorAll('text').forEach(function (t) {
    var b = t.getBoundingClientRect();
    if (b.width > 0 && b.height > 0) {
      boxes.push([b.left, b.top, b.right, b.bottom, t.textContent.slice(0, 60)]);
    }
  });
  var tol = 0.5, problems = [];
  for (var i = 0; i < boxes.length; i++) {
    var a = boxes[i];
    if (a[0] < r.left - tol || a[1] < r.top - tol || a[2] > r.right + tol ||
        a[3] > r.bottom + tol) {
      problems.push('sticks out: ' + a[4]);
    }
    for (var j = i + 1; j < boxes.length; j++) {
      var b = boxes[j];
      var w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
      var h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
      if (w > tol && h > tol) { problems.push('overlap: ' + a[4] + ' | ' + b[4]); }
    }
  }
  return {name: name, texts: boxes.length, problems: problems};
}
"""


def _runs() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = [("demo", [])]
    for name, sc in CATALOGUE.items():
        out.append((name, []))
        if sc.counterfactual is not None:
            out.append((name, " ".join(sc.counterfactual.flags()).split()))
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every run's SVG and HTML, in both languages, written by the commands themselves."""
    out = tmp_path_factory.mktemp("pictures")
    runner = CliRunner()
    files: dict[str, Path] = {}
    for lang in ("en", "zh"):
        for name, flags in _runs():
            stem = f"{name}{''.join(flags)}.{lang}"
            args = (["demo"] if name == "demo" else ["scenario", "run", name, *flags])
            svg, html = out / f"{stem}.svg", out / f"{stem}.html"
            res = runner.invoke(cli, [*args, "--lang", lang, "--svg", str(svg),
                                      "--html", str(html)])
            assert res.exit_code == 0, (stem, res.output[-500:])
            files[f"{stem}.svg"] = svg
            files[f"{stem}.html"] = html
    return files


def test_every_run_has_its_pictures(pictures: dict[str, Path]) -> None:
    n_runs = 1 + len(CATALOGUE) + sum(1 for s in CATALOGUE.values() if s.counterfactual)
    assert len(pictures) == n_runs * 2 * 2


def test_no_text_overlaps_or_sticks_out_in_any_picture(browser: Any,
                                                        pictures: dict[str, Path],
                                                        tmp_path: Path) -> None:
    svgs = {k: v for k, v in pictures.items() if k.endswith(".svg")}
    page = tmp_path / "all-svgs.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + "".join(f"<div class='case' data-name='{k}'>{v.read_text('utf-8')}</div>"
                              for k, v in svgs.items()) + "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    results: list[dict[str, Any]] = browser.execute_script(
        _MEASURE + "var o = []; document.querySelectorAll('.case').forEach(function (c) {"
        "  o.push(measureSvg(c.querySelector('svg'), c.dataset.name)); }); return o;")
    for key, html in pictures.items():
        if not key.endswith(".html"):
            continue
        browser.get(html.as_uri())
        results += browser.execute_script(
            _MEASURE + "var o = []; document.querySelectorAll('svg').forEach(function (s, k) {"
            f"  o.push(measureSvg(s, '{key}#' + k)); }}); return o;")
    # every report embeds the sequence diagram, two time-sequence graphs and the state diagram
    assert len(results) == len(svgs) + 4 * len(svgs)
    assert all(r["texts"] > 0 for r in results)
    problems = [f"{r['name']}: {p}" for r in results for p in r["problems"]]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


def _click_through_predicting(browser: Any, html: Path, wrong_every: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    browser.get(html.as_uri())
    data = json.loads(browser.find_element(By.ID, "steps").get_attribute("textContent"))
    steps = data["steps"]
    browser.find_element(By.ID, "mode-predict").click()
    nxt = browser.find_element(By.ID, "next")
    quiz = browser.find_element(By.ID, "quiz")
    asked = right = 0
    revealed: list[str] = []
    if not quiz.is_displayed():  # the first step asks nothing: it is shown at once
        revealed.append(browser.find_element(By.ID, "step-title").text)
    for _ in range(4 * len(steps)):
        choices = browser.find_elements(By.CSS_SELECTOR, "#quiz-choices .choice")
        if quiz.is_displayed() and choices and choices[0].is_enabled():
            n = int(quiz.get_attribute("data-step"))  # the step the question is about
            q = steps[n]["q"]
            pick = q["answer"] if asked % wrong_every else (q["answer"] + 1) % len(q["choices"])
            assert [c.text for c in choices] == q["choices"]
            choices[pick].click()
            asked += 1
            right += pick == q["answer"]
            feedback = browser.find_element(By.ID, "quiz-feedback")
            assert ("right" in feedback.get_attribute("class")) == (pick == q["answer"])
            if pick != q["answer"]:
                assert q["choices"][q["answer"]] in feedback.text
            # the answer is revealed: the step it asked about is shown, with its why
            assert browser.find_element(By.ID, "step-title").text == steps[n]["title"]
            revealed.append(steps[n]["title"])
            continue
        if nxt.get_attribute("disabled") is not None:
            break
        nxt.click()
        if not quiz.is_displayed():
            revealed.append(browser.find_element(By.ID, "step-title").text)
    return {"steps": steps, "asked": asked, "right": right, "revealed": revealed,
            "score": browser.find_element(By.ID, "score").text,
            "why": browser.find_element(By.ID, "step-why").text}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_what_happens_next_mode_checks_each_prediction_against_the_trace(
        browser: Any, pictures: dict[str, Path], lang: str) -> None:
    got = _click_through_predicting(browser, pictures[f"lost-final-ack.{lang}.html"],
                                    wrong_every=3)
    questions = [s for s in got["steps"] if s["q"]]
    assert got["asked"] == len(questions) > 10
    assert 0 < got["right"] < got["asked"]
    assert got["revealed"] == [s["title"] for s in got["steps"]]  # every step, in order
    numbers = [int(x) for x in re.findall(r"\d+", got["score"])]
    assert numbers == [got["right"], got["asked"]]
    # the answers come from the trace: the state questions' answers are the states entered
    states = [s for s in questions if s["k"] == "state"]
    assert [s["q"]["choices"][s["q"]["answer"]] for s in states] == \
        [s["title"].rsplit("→ ", 1)[1] for s in states]
    if lang == "zh":
        assert re.search(r"[\u4e00-\u9fff]", got["score"] + got["why"])


def test_time_sequence_graph_shows_the_retransmitted_fin(browser: Any,
                                                          pictures: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(pictures["lost-final-ack.en.html"].as_uri())
    graphs = browser.find_elements(By.CSS_SELECTOR, "#tsg svg")
    assert len(graphs) == 2
    titles = [g.find_element(By.CSS_SELECTOR, ".ttl").text for g in graphs]
    server_graph = graphs[[t.startswith("192.0.2.2") for t in titles].index(True)]
    retrans = server_graph.find_elements(By.CSS_SELECTOR, ".seg.retrans")
    assert len(retrans) == 1                        # the FIN, sent again after the RTO
    assert server_graph.find_elements(By.CSS_SELECTOR, ".ackline")
    assert server_graph.find_elements(By.CSS_SELECTOR, ".win")
    # the graph sits beside the sequence diagram, both visible on a wide screen
    seq = browser.find_element(By.ID, "sequence").rect
    tsg = browser.find_element(By.ID, "tsg").rect
    assert tsg["x"] >= seq["x"] + seq["width"] - 1 and abs(tsg["y"] - seq["y"]) < 5
    # a segment bar and the ACK line go up with the data: the response's 52 bytes
    client_graph = graphs[1 - [t.startswith("192.0.2.2") for t in titles].index(True)]
    assert client_graph.find_elements(By.CSS_SELECTOR, ".seg")


def test_chinese_report_is_chinese(browser: Any, pictures: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(pictures["stale-segment--time-wait0.zh.html"].as_uri())
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "去掉该机制" in browser.title
    for word in ("时序图", "时间-序列号图", "状态图", "本次运行", "结果（由 trace 计算得出）",
                 "接下来会发生什么？", "原文"):
        assert word in body, word
    assert browser.find_element(By.CSS_SELECTOR, "html").get_attribute("lang") == "zh-CN"
    why = browser.find_element(By.ID, "step-why").text
    assert re.search(r"[\u4e00-\u9fff]", why)
