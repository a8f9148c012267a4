"""A self-contained HTML report of a trace: a small lesson in one file, nothing fetched.

The report holds, inline: what the run is (title, a subtitle, the run's
configuration as a table, the scenario's texts), the sequence diagram and
beside it the time-sequence graph (:mod:`tcplab.render.tsg`), the RFC 9293
state diagram, and a step-through.  Steps are the trace's segments, state
changes, fired timers, drops and notes, in time order; for each the panel
shows the same "why" as the terminal diagram (:class:`Narrator`), the
event's fields (sequence numbers relative to the connection's ISN, as in the
picture, with the absolute value beside), and every host's TCB at that
moment.  The current step is highlighted in the pictures.

Two modes.  *Step through*: Previous / Next buttons (ids ``prev``, ``next``),
the arrow keys, Home and End.  *What happens next?* (``mode-predict``): before
a state change or a segment is revealed, the learner picks what comes next
from a few choices; the answer is checked against the trace, the step is
revealed with its explanation, and a score is kept.  Every text, in the
page and in the script, comes from the catalogue of the report's language.

The step data travel as JSON in a ``<script type="application/json">``; the
script is plain JavaScript, no libraries.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from tcplab.i18n import colon, seconds
from tcplab.i18n import text as tr
from tcplab.render.model import Event, flag_words
from tcplab.render.narrate import Narrator, RunInfo, cause_text, note_text, reason_text, timer_name
from tcplab.render.svg import sequence_svg, state_diagram_svg
from tcplab.render.theme import FONT, MONO, palette
from tcplab.render.tsg import time_sequence_svgs

_TCB_KEYS = ("snd_una", "snd_nxt", "snd_wnd", "rcv_nxt", "rcv_wnd")
TCB_HEADINGS = ("state", "SND.UNA", "SND.NXT", "SND.WND", "RCV.NXT", "RCV.WND")
#: states a learner might confuse with each other: the wrong choices of a question
_NEIGHBOURS = {
    "SYN-SENT": ("SYN-RECEIVED", "ESTABLISHED", "LISTEN"),
    "SYN-RECEIVED": ("SYN-SENT", "ESTABLISHED", "LISTEN"),
    "ESTABLISHED": ("SYN-RECEIVED", "CLOSE-WAIT", "FIN-WAIT-1"),
    "FIN-WAIT-1": ("FIN-WAIT-2", "CLOSE-WAIT", "TIME-WAIT"),
    "FIN-WAIT-2": ("TIME-WAIT", "CLOSING", "CLOSE-WAIT"),
    "CLOSING": ("TIME-WAIT", "FIN-WAIT-2", "LAST-ACK"),
    "TIME-WAIT": ("CLOSED", "FIN-WAIT-2", "LAST-ACK"),
    "CLOSE-WAIT": ("LAST-ACK", "FIN-WAIT-2", "CLOSED"),
    "LAST-ACK": ("CLOSED", "TIME-WAIT", "CLOSE-WAIT"),
    "CLOSED": ("TIME-WAIT", "LISTEN", "LAST-ACK"),
    "LISTEN": ("SYN-RECEIVED", "CLOSED", "ESTABLISHED"),
}
_SEG_CHOICES = ("SYN", "SYN, ACK", "ACK", "PSH, ACK", "FIN, ACK", "RST")


def _choices(correct: str, pool: tuple[str, ...], salt: int) -> tuple[list[str], int]:
    """Three or four choices, the correct one among them at a place that varies by step."""
    wrong = [c for c in pool if c != correct][:3]
    opts = wrong[:]
    pos = salt % (len(opts) + 1)
    opts.insert(pos, correct)
    return opts, pos


class _Steps:
    def __init__(self, nar: Narrator, relative: bool) -> None:
        self.nar = nar
        self.lang = nar.lang
        self.relative = relative
        self._tr: dict[str, str] = {}

    def _t(self, key: str) -> str:
        """A text without placeholders, looked up once per report."""
        got = self._tr.get(key)
        if got is None:
            got = self._tr[key] = tr(key, self.lang)
        return got

    def _num(self, rel: int | None, absolute: Any) -> str:
        if not self.relative or rel is None:
            return str(absolute)
        return tr("html.rel", self.lang, rel=str(rel), abs=str(absolute))

    def step(self, e: Event) -> tuple[str, list[list[str]], dict[str, Any] | None] | None:
        """Title, fields and the question of a step, or None if the event is not a step."""
        lang = self.lang
        kind = e.get("kind")
        if kind == "segment":
            ev = e.get("event")
            flags = str(e.get("flags", ""))
            if ev in ("send", "recv"):
                fate = str(e.get("fate", "delivered"))
                info = self.nar.conns.info(e)
                title = f"{e.get('src')} → {e.get('dst')}{colon(lang)}{flag_words(flags)}"
                if fate != "delivered":
                    title += f" ({tr('fate.' + fate, lang)})"
                if info is not None and info.retransmission:
                    title += f" ({tr('svg.mark.retransmission', lang)})"
                fields = [[self._t("html.f.sender"), str(e.get("host", e.get("src")))],
                          [self._t("html.f.flags"), f"{flags} ({flag_words(flags)})"],
                          ["seq", self._num(info.seq if info else None, e.get("seq"))],
                          ["ack", self._num(info.ack if info else None, e.get("ack"))
                           if "A" in flags else "—"],
                          ["len", str(e.get("len"))], ["win", str(e.get("win"))],
                          [self._t("html.f.options"),
                           ", ".join(str(o) for o in e.get("opts") or [])
                           or self._t("html.none")],
                          [self._t("html.f.fate"), self._t(f"fate.{fate}")]]
                if isinstance(e.get("t_arrive"), (int, float)):
                    fields.append([self._t("html.f.arrives"), f"t = {float(e['t_arrive']):.6f}"])
                if "frame" in e:
                    fields.append([self._t("html.f.frame"), str(e["frame"])])
                sender = str(e.get("host", e.get("src")))
                opts, ans = _choices(flag_words(flags), _SEG_CHOICES, int(e.get("id", 0) or 0))
                if flag_words(flags) not in _SEG_CHOICES:
                    opts, ans = _choices(flag_words(flags), _SEG_CHOICES, int(e.get("id", 0) or 0))
                q = {"prompt": tr("html.q.segment", lang, host=sender), "choices": opts,
                     "answer": ans}
                return title, fields, q
            if ev == "drop":
                reason = reason_text(str(e.get("reason", "")), lang)
                return (tr("html.drop.title", lang, host=str(e.get("host")),
                           what=flag_words(flags)),
                        [[self._t("html.f.host"), str(e.get("host"))],
                         [self._t("html.f.reason"), reason]], None)
            return None
        if kind == "state":
            host = str(e.get("host"))
            frm, to = str(e.get("from")), str(e.get("to"))
            title = f"{host}{colon(lang)}{frm} → {to}"
            fields = [[self._t("html.f.host"), host], [self._t("html.f.from"), frm],
                      [self._t("html.f.to"), to],
                      [self._t("html.f.cause"), cause_text(str(e.get("cause") or ""), lang)]]
            if e.get("inferred"):
                fields.append([self._t("html.f.inferred"), tr("html.inferred", lang)])
            near: tuple[str, ...] = _NEIGHBOURS.get(frm, ("ESTABLISHED", "CLOSED", "TIME-WAIT"))
            pool = (*near, "CLOSED", "ESTABLISHED", "TIME-WAIT", "LISTEN")
            seen: list[str] = []
            for p in pool:
                if p not in seen and p != to:
                    seen.append(p)
            opts, ans = _choices(to, tuple(seen[:3]), len(title))
            q = {"prompt": tr("html.q.state", lang, host=host, frm=frm), "choices": opts,
                 "answer": ans}
            return title, fields, q
        if kind == "timer" and e.get("action") == "armed" and self.nar.why(e):
            name = timer_name(str(e.get("timer")), lang)
            return (tr("html.timer.armed", lang, host=str(e.get("host")), name=name),
                    [[self._t("html.f.host"), str(e.get("host"))],
                     [self._t("html.f.timer"), name]], None)
        if kind == "timer" and e.get("action") == "fired":
            name = timer_name(str(e.get("timer")), lang)
            return (tr("html.timer.title", lang, host=str(e.get("host")), name=name),
                    [[self._t("html.f.host"), str(e.get("host"))],
                     [self._t("html.f.timer"), name]], None)
        if kind == "note" and e.get("text"):
            body = note_text(e, lang)
            return body, [[self._t("html.f.note"), body]], None
        return None

    def all(self) -> tuple[list[str], list[dict[str, Any]]]:
        hosts: list[str] = []
        tcb: dict[str, list[Any]] = {}
        bases: dict[str, tuple[int | None, int | None]] = {}
        steps: list[dict[str, Any]] = []
        for i, e in enumerate(self.nar.events):
            h = e.get("host")
            snap = e.get("tcb")
            info = self.nar.conns.info(e)
            if isinstance(h, str) and info is not None and e.get("event") == "send":
                bases[h] = (info.inc.base(str(e.get("src"))), info.inc.base(str(e.get("dst"))))
            if isinstance(h, str) and isinstance(snap, dict):
                if h not in hosts:
                    hosts.append(h)
                tcb[h] = [str(snap.get("state", "?")), *self._tcb(snap, bases.get(h))]
            elif isinstance(h, str) and e.get("kind") == "state" and h in tcb:
                tcb[h] = [str(e.get("to")), *tcb[h][1:]]
            got = self.step(e)
            if got is None:
                continue
            title, fields, q = got
            why = self.nar.why(e) or ""
            steps.append({"i": i, "t": float(e.get("t", 0.0)), "k": str(e.get("kind")),
                          "title": title, "why": why, "f": fields, "q": q,
                          "tcb": {hh: list(v) for hh, v in tcb.items()}})
        return hosts, steps

    def _tcb(self, snap: dict[str, Any], base: tuple[int | None, int | None] | None) -> list[Any]:
        out: list[Any] = []
        for k in _TCB_KEYS:
            v = snap.get(k)
            b = None
            if self.relative and base is not None and isinstance(v, int):
                b = base[0] if k.startswith("snd_") and k != "snd_wnd" else (
                    base[1] if k == "rcv_nxt" else None)
            out.append(v if b is None or not isinstance(v, int) else f"{(v - b) % (1 << 32)}")
        return out


_JS = r"""
(function(){
  var data = JSON.parse(document.getElementById('steps').textContent);
  var steps = data.steps, hosts = data.hosts, heads = data.heads, ui = data.ui;
  var cur = -1, mode = 'step', asked = {}, right = 0, answered = 0;
  function $(id){ return document.getElementById(id); }
  function esc(s){ return String(s).replace(/[&<>"]/g, function(c){
    return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]; }); }
  function fill(s, o){ return s.replace(/\{(\w+)\}/g, function(m, k){ return o[k]; }); }
  function show(n, still){
    if (!steps.length) { return; }
    n = Math.max(0, Math.min(steps.length - 1, n));
    var old = document.querySelectorAll('.current');
    for (var k = 0; k < old.length; k++) { old[k].classList.remove('current'); }
    cur = n;
    var s = steps[n];
    $('counter').textContent = fill(ui.counter, {n: n + 1, of: steps.length});
    $('step-time').textContent = 't = ' + s.t.toFixed(6) + ' s';
    $('step-title').textContent = s.title;
    $('step-why').textContent = s.why;
    var rows = '';
    for (var j = 0; j < s.f.length; j++) {
      rows += '<tr><th>' + esc(s.f[j][0]) + '</th><td>' + esc(s.f[j][1]) + '</td></tr>';
    }
    $('step-fields').innerHTML = rows;
    var t = '<tr><th>' + esc(ui.host) + '</th>';
    for (var h = 0; h < heads.length; h++) { t += '<th>' + esc(heads[h]) + '</th>'; }
    t += '</tr>';
    for (var q = 0; q < hosts.length; q++) {
      var v = s.tcb[hosts[q]];
      t += '<tr><th>' + esc(hosts[q]) + '</th>';
      for (var c = 0; c < heads.length; c++) {
        t += '<td>' + (v ? esc(v[c] === null ? '—' : v[c]) : '—') + '</td>';
      }
      t += '</tr>';
    }
    $('tcb').innerHTML = t;
    $('prev').disabled = (n === 0);
    $('next').disabled = (n === steps.length - 1);
    var els = document.querySelectorAll('[data-i="' + s.i + '"]');
    for (var m = 0; m < els.length; m++) { els[m].classList.add('current'); }
    var seq = document.querySelector('#sequence [data-i="' + s.i + '"]');
    if (!still && seq && seq.scrollIntoView) {
      seq.scrollIntoView({block: 'nearest', inline: 'nearest'});
    }
  }
  function ask(n){
    var s = steps[n];
    $('quiz').hidden = false;
    $('quiz').setAttribute('data-step', n);
    $('quiz-prompt').textContent = s.q.prompt;
    $('quiz-feedback').textContent = '';
    $('quiz-feedback').className = '';
    var box = $('quiz-choices');
    box.innerHTML = '';
    s.q.choices.forEach(function(c, k){
      var b = document.createElement('button');
      b.type = 'button'; b.className = 'choice'; b.textContent = c;
      b.setAttribute('data-k', k);
      b.addEventListener('click', function(){ answer(n, k); });
      box.appendChild(b);
    });
    $('next').disabled = true;
  }
  function answer(n, k){
    var s = steps[n];
    if (asked[n] !== undefined) { return; }
    asked[n] = k; answered += 1;
    var ok = (k === s.q.answer);
    if (ok) { right += 1; }
    var fb = $('quiz-feedback');
    fb.className = ok ? 'right' : 'wrong';
    fb.textContent = ok ? ui.right : fill(ui.wrong, {answer: s.q.choices[s.q.answer]});
    var bs = document.querySelectorAll('#quiz-choices .choice');
    for (var b = 0; b < bs.length; b++) {
      bs[b].disabled = true;
      if (+bs[b].getAttribute('data-k') === s.q.answer) { bs[b].classList.add('answer'); }
    }
    $('score').textContent = fill(ui.score, {right: right, of: answered});
    show(n);
  }
  function forward(){
    var n = cur + 1;
    if (n >= steps.length) { return; }
    if (mode === 'predict' && steps[n].q && asked[n] === undefined) { ask(n); return; }
    $('quiz').hidden = true;
    show(n);
  }
  function setMode(m){
    mode = m;
    $('mode-step').classList.toggle('on', m === 'step');
    $('mode-predict').classList.toggle('on', m === 'predict');
    $('quiz').hidden = true;
    $('score').hidden = (m !== 'predict');
    if (m === 'predict') {  // a lesson starts at the beginning, with a clean score
      asked = {}; right = 0; answered = 0;
      $('score').textContent = fill(ui.score, {right: 0, of: 0});
      cur = -1; forward();
    } else {
      $('next').disabled = (cur === steps.length - 1);
    }
  }
  $('next').addEventListener('click', forward);
  $('prev').addEventListener('click', function(){ $('quiz').hidden = true; show(cur - 1); });
  $('mode-step').addEventListener('click', function(){ setMode('step'); });
  $('mode-predict').addEventListener('click', function(){ setMode('predict'); });
  document.addEventListener('keydown', function(ev){
    if (ev.key === 'ArrowRight') { forward(); }
    else if (ev.key === 'ArrowLeft') { $('quiz').hidden = true; show(cur - 1); }
    else if (ev.key === 'Home') { show(0); }
    else if (ev.key === 'End' && mode === 'step') { show(steps.length - 1); }
  });
  show(0, true);
})();
"""


def report_html(events: list[dict[str, Any]], *, title: str, explanation: str = "",
                meta: dict[str, Any] | None = None, theme: str = "light",
                relative: bool = False, lang: str = "en", narrator: Narrator | None = None,
                subtitle: str = "", sections: list[tuple[str, str]] | None = None,
                facts: list[tuple[str, str]] | None = None,
                outcome: list[tuple[str, str]] | None = None) -> str:
    """One self-contained HTML document: the lesson, the diagrams, the step-through.

    ``sections`` are (heading, text) paragraphs (a scenario's "what to
    watch"...), ``facts`` the run's configuration and ``outcome`` its results,
    each as (label, value) rows, already in ``lang``.  ``meta`` (a plain
    dict) is shown as a table when ``facts`` is not given.
    """
    pal = palette(theme)
    nar = narrator or Narrator(events, lang, RunInfo.of_meta(meta))
    evs = nar.events
    hosts, steps = _Steps(nar, relative).all()
    seq = sequence_svg(evs, theme=theme, title=None, relative=relative, lang=lang,
                       narrator=nar)
    graphs = time_sequence_svgs(evs, lang=lang, theme=theme, conns=nar.conns)
    sd = state_diagram_svg(evs, theme=theme, lang=lang)
    ui = {k: tr(f"html.js.{k}", lang) for k in ("counter", "host", "right", "wrong", "score")}
    data = json.dumps({"hosts": hosts, "heads": [tr("html.tcb.state", lang), *TCB_HEADINGS[1:]],
                       "steps": steps, "ui": ui},
                      separators=(",", ":"), default=str, ensure_ascii=False).replace("</", "<\\/")
    paras = "".join(f"<p>{escape(p.strip())}</p>" for p in explanation.split("\n\n")
                    if p.strip())
    secs = "".join(f'<h2>{escape(h)}</h2><p>{escape(body)}</p>' for h, body in sections or []
                   if body)
    rows = facts if facts is not None else [(str(k), str(v)) for k, v in (meta or {}).items()]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    out_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                       for k, v in outcome or [])
    nseg = sum(1 for e in evs if e.get("kind") == "segment" and e.get("event") in ("send",
                                                                                   "recv"))
    css = (
        f"body{{margin:0;font-family:{FONT};background:{pal['bg']};color:{pal['fg']}}}"
        f"header,section{{padding:12px 20px}}h1{{font-size:22px;margin:8px 0}}"
        f"h2{{font-size:17px;margin:14px 0 6px}}"
        f"header p{{max-width:60em;line-height:1.5}}"
        f".sub{{color:{pal['muted']};font-size:15px}}"
        f".facts th,.fields th,.tcb th,.outcome th{{text-align:left;padding:2px 12px 2px 0;"
        f"color:{pal['muted']};font-weight:normal;vertical-align:top}}"
        f".facts td,.outcome td{{padding:2px 10px 2px 0}}"
        f".fields td,.tcb td{{font-family:{MONO};font-size:13px;padding:2px 10px 2px 0}}"
        f".tcb th{{font-family:{FONT}}}"
        f"#controls{{position:sticky;top:0;z-index:2;background:{pal['panel']};"
        f"border-bottom:1px solid {pal['border']};padding:10px 20px;display:flex;gap:16px;"
        f"align-items:flex-start;flex-wrap:wrap}}"
        f"#controls button{{font-size:15px;padding:6px 14px;border-radius:6px;cursor:pointer;"
        f"border:1px solid {pal['border']};background:{pal['bg']};color:{pal['fg']}}}"
        f"#controls button:disabled{{opacity:.4;cursor:default}}"
        f"#controls button.on{{border-color:{pal['syn']};box-shadow:0 0 0 1px {pal['syn']}}}"
        f"#step-title{{font-weight:bold;font-size:15px;margin:2px 0 4px}}"
        f"#step-why{{max-width:38em;margin:0 0 6px;line-height:1.4}}"
        f"#counter,#step-time,#score{{color:{pal['muted']};font-size:13px;margin-right:10px}}"
        f"#quiz{{border:1px solid {pal['syn']};border-radius:6px;padding:8px 12px;"
        f"max-width:30em}}#quiz-prompt{{font-weight:bold;margin-bottom:6px}}"
        f"#quiz .choice{{margin:0 6px 6px 0;font-family:{MONO}}}"
        f"#quiz .choice.answer{{border-color:{pal['data']};box-shadow:0 0 0 2px {pal['data']}}}"
        f"#quiz-feedback.right{{color:{pal['data']};font-weight:bold}}"
        f"#quiz-feedback.wrong{{color:{pal['rst']};font-weight:bold}}"
        f".panel{{min-width:300px}}"
        f".pictures{{display:flex;gap:16px;align-items:flex-start}}"
        f".pictures>div:first-child{{min-width:0;flex:1 1 auto}}"
        f".pictures>div:last-child{{flex:0 0 auto;width:480px}}"
        f"@media (max-width:900px){{.pictures{{flex-wrap:wrap}}}}"
        f"#sequence{{overflow:auto;max-height:85vh;border:1px solid {pal['border']};"
        f"border-radius:6px}}"
        f"#tsg{{display:flex;flex-direction:column;gap:8px}}"
        f"#states{{overflow:auto}}"
        f".sq .current line{{stroke:{pal['current']} !important}}"
        f".sq .st.current rect{{stroke:{pal['current']};stroke-width:3}}"
        f"footer{{padding:12px 20px;color:{pal['muted']};font-size:12px}}")
    tsg_html = ("".join(f'<div class="graph">{g}</div>' for g in graphs) if graphs
                else f"<p>{escape(tr('tsg.none', lang))}</p>")
    return "".join([
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        '<meta charset="utf-8">',
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{escape(title)}</title><style>{css}</style></head><body>",
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="sub" id="subtitle">{escape(subtitle)}</p>' if subtitle else "",
        f'<div id="explanation">{paras}{secs}</div>' if paras or secs else "",
        f'<h2>{escape(tr("html.h.run", lang))}</h2><table class="facts">{fact_rows}</table>'
        if fact_rows else "",
        f'<h2>{escape(tr("html.h.outcome", lang))}</h2><table class="outcome" id="outcome">'
        f"{out_rows}</table>" if out_rows else "",
        f"<p>{escape(tr('html.howto', lang, n=nseg, steps=len(steps)))}</p>",
        "</header>",
        '<div id="controls"><div>'
        f'<button id="mode-step" type="button" class="on">{escape(tr("html.mode.step", lang))}'
        f'</button> <button id="mode-predict" type="button">'
        f'{escape(tr("html.mode.predict", lang))}</button><br><br>'
        f'<button id="prev" type="button">◀ {escape(tr("html.prev", lang))}</button> '
        f'<button id="next" type="button">{escape(tr("html.next", lang))} ▶</button><div>'
        '<span id="counter"></span><span id="step-time"></span>'
        '<span id="score" hidden></span></div></div>',
        '<div class="panel"><div id="quiz" hidden><div id="quiz-prompt"></div>'
        '<div id="quiz-choices"></div><div id="quiz-feedback"></div></div>'
        '<div id="step-title"></div><p id="step-why"></p>'
        '<table class="fields"><tbody id="step-fields"></tbody></table></div>',
        '<div class="panel"><table class="tcb"><tbody id="tcb"></tbody></table></div></div>',
        '<section class="pictures"><div>'
        f'<h2>{escape(tr("html.h.sequence", lang))}</h2><div id="sequence">{seq}</div></div>'
        f'<div><h2>{escape(tr("html.h.tsg", lang))}</h2><div id="tsg">{tsg_html}</div>'
        f'<p class="sub">{escape(tr("html.tsg.about", lang))}</p></div></section>',
        f'<section><h2>{escape(tr("html.h.states", lang))}</h2><div id="states">{sd}</div>'
        "</section>",
        f"<footer>{escape(tr('html.footer', lang))}</footer>",
        f'<script type="application/json" id="steps">{data}</script>',
        f"<script>{_JS}</script></body></html>\n"])


def run_facts(info: RunInfo, lang: str, *, seed: int | None = None,
              extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The run's configuration as (label, value) rows in ``lang``."""
    rows: list[tuple[str, str]] = []
    if seed is not None:
        rows.append((tr("html.fact.seed", lang), str(seed)))
    if info.delay is not None:
        rows.append((tr("html.fact.delay", lang), seconds(info.delay, lang)))
    if info.msl is not None:
        rows.append((tr("html.fact.msl", lang), seconds(info.msl, lang)))
    tw = info.tw_configured
    if tw is not None:
        rows.append((tr("html.fact.tw", lang), seconds(tw, lang) if tw else
                     tr("html.fact.tw.none", lang)))
    rows.extend(extra or [])
    return rows
