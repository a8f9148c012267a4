"""A self-contained HTML report of a trace: one file, nothing fetched.

The report holds, inline: the sequence diagram and the RFC 9293 state diagram
(SVG from :mod:`tcplab.render.svg`), the scenario's explanation, and a
step-through control.  Steps are the trace's segments, state changes, fired
timers, drops and notes, in time order; for each, the panel shows the
event's fields (for a segment: flags, seq, ack, len, win, options, fate) and
every host's TCB variables at that moment (state, SND.UNA, SND.NXT, SND.WND,
RCV.NXT, RCV.WND: the last snapshot the trace recorded for that host, from
the ``tcb`` of its segment and state events).  The current step's arrow or
state label is highlighted in the diagrams.

Controls: the Previous / Next buttons (ids ``prev`` and ``next``), the left
and right arrow keys, Home and End.  The step data travel as JSON in a
``<script type="application/json">``; the script is a few dozen lines of
plain JavaScript, no libraries.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from tcplab.render.model import Event, flag_words, ordered
from tcplab.render.svg import sequence_svg, state_diagram_svg
from tcplab.render.theme import FONT, MONO, palette

_TCB_KEYS = ("snd_una", "snd_nxt", "snd_wnd", "rcv_nxt", "rcv_wnd")
TCB_HEADINGS = ("state", "SND.UNA", "SND.NXT", "SND.WND", "RCV.NXT", "RCV.WND")


def _step_of(e: Event) -> tuple[str, list[list[str]]] | None:
    """Title and fields of a step, or None if the event is not a step."""
    kind = e.get("kind")
    if kind == "segment":
        ev = e.get("event")
        flags = str(e.get("flags", ""))
        if ev in ("send", "recv"):
            fate = str(e.get("fate", "delivered"))
            title = (f"{e.get('src')} → {e.get('dst')}: {flag_words(flags)}"
                     + ("" if fate == "delivered" else f" ({fate})")
                     + (" (retransmission)" if e.get("retrans") else ""))
            fields = [["sender", str(e.get("host", e.get("src")))],
                      ["src", str(e.get("src"))], ["dst", str(e.get("dst"))],
                      ["flags", f"{flags} ({flag_words(flags)})"],
                      ["seq", str(e.get("seq"))], ["ack", str(e.get("ack"))],
                      ["len", str(e.get("len"))], ["win", str(e.get("win"))],
                      ["options", ", ".join(str(o) for o in e.get("opts") or []) or "none"],
                      ["fate", fate]]
            if "t_arrive" in e:
                fields.append(["arrives", f"t={float(e['t_arrive']):.6f} s"])
            if "frame" in e:
                fields.append(["capture packet", str(e["frame"])])
            return title, fields
        if ev == "drop":
            return (f"{e.get('host')} drops {flag_words(flags)}",
                    [["host", str(e.get("host"))], ["reason", str(e.get("reason", ""))],
                     ["seq", str(e.get("seq"))], ["ack", str(e.get("ack"))]])
        return None
    if kind == "state":
        title = f"{e.get('host')}: {e.get('from')} → {e.get('to')}"
        fields = [["host", str(e.get("host"))], ["from", str(e.get("from"))],
                  ["to", str(e.get("to"))], ["cause", str(e.get("cause") or "")]]
        if e.get("inferred"):
            fields.append(["inferred", "from the segments on the wire"])
        return title, fields
    if kind == "timer" and e.get("action") == "fired":
        return (f"{e.get('host')}: {e.get('timer')} timer fired",
                [["host", str(e.get("host"))], ["timer", str(e.get("timer"))]])
    if kind == "note" and e.get("text"):
        return str(e["text"]), [["note", str(e["text"])]]
    return None


def _steps(evs: list[Event]) -> tuple[list[str], list[dict[str, Any]]]:
    hosts: list[str] = []
    tcb: dict[str, list[Any]] = {}
    steps: list[dict[str, Any]] = []
    for i, e in enumerate(evs):
        h = e.get("host")
        snap = e.get("tcb")
        if isinstance(h, str) and isinstance(snap, dict):
            if h not in hosts:
                hosts.append(h)
            tcb[h] = [str(snap.get("state", "?"))] + [snap.get(k) for k in _TCB_KEYS]
        elif isinstance(h, str) and e.get("kind") == "state" and h in tcb:
            tcb[h] = [str(e.get("to")), *tcb[h][1:]]
        step = _step_of(e)
        if step is None:
            continue
        title, fields = step
        steps.append({"i": i, "t": float(e.get("t", 0.0)), "k": str(e.get("kind")),
                      "title": title, "f": fields,
                      "tcb": {hh: list(v) for hh, v in tcb.items()}})
    return hosts, steps


_JS = r"""
(function(){
  var data = JSON.parse(document.getElementById('steps').textContent);
  var steps = data.steps, hosts = data.hosts, heads = data.heads;
  var cur = -1;
  function esc(s){ return String(s).replace(/[&<>"]/g, function(c){
    return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]; }); }
  function show(n){
    if (!steps.length) { return; }
    n = Math.max(0, Math.min(steps.length - 1, n));
    var old = document.querySelectorAll('.current');
    for (var k = 0; k < old.length; k++) { old[k].classList.remove('current'); }
    cur = n;
    var s = steps[n];
    document.getElementById('counter').textContent = 'Step ' + (n + 1) + ' of ' + steps.length;
    document.getElementById('step-time').textContent = 't = ' + s.t.toFixed(6) + ' s';
    document.getElementById('step-title').textContent = s.title;
    var rows = '';
    for (var j = 0; j < s.f.length; j++) {
      rows += '<tr><th>' + esc(s.f[j][0]) + '</th><td>' + esc(s.f[j][1]) + '</td></tr>';
    }
    document.getElementById('step-fields').innerHTML = rows;
    var t = '<tr><th>host</th>';
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
    document.getElementById('tcb').innerHTML = t;
    document.getElementById('prev').disabled = (n === 0);
    document.getElementById('next').disabled = (n === steps.length - 1);
    var els = document.querySelectorAll('[data-i="' + s.i + '"]');
    for (var m = 0; m < els.length; m++) { els[m].classList.add('current'); }
    var seq = document.querySelector('#sequence [data-i="' + s.i + '"]');
    if (seq && seq.scrollIntoView) { seq.scrollIntoView({block: 'nearest', inline: 'nearest'}); }
  }
  document.getElementById('next').addEventListener('click', function(){ show(cur + 1); });
  document.getElementById('prev').addEventListener('click', function(){ show(cur - 1); });
  document.addEventListener('keydown', function(ev){
    if (ev.key === 'ArrowRight') { show(cur + 1); }
    else if (ev.key === 'ArrowLeft') { show(cur - 1); }
    else if (ev.key === 'Home') { show(0); }
    else if (ev.key === 'End') { show(steps.length - 1); }
  });
  show(0);
})();
"""


def report_html(events: list[dict[str, Any]], *, title: str, explanation: str = "",
                meta: dict[str, Any] | None = None, theme: str = "light",
                relative: bool = False) -> str:
    """One self-contained HTML document: diagrams, explanation, step-through."""
    pal = palette(theme)
    evs = ordered(events)
    hosts, steps = _steps(evs)
    seq = sequence_svg(evs, theme=theme, title=None, relative=relative)
    sd = state_diagram_svg(evs, theme=theme)
    data = json.dumps({"hosts": hosts, "heads": list(TCB_HEADINGS), "steps": steps},
                      separators=(",", ":"), default=str).replace("</", "<\\/")
    paras = "".join(f"<p>{escape(p.strip())}</p>" for p in explanation.split("\n\n")
                    if p.strip())
    meta_rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                        for k, v in (meta or {}).items())
    nseg = sum(1 for e in evs if e.get("kind") == "segment" and e.get("event") in ("send",
                                                                                   "recv"))
    css = (
        f"body{{margin:0;font-family:{FONT};background:{pal['bg']};color:{pal['fg']}}}"
        f"header,section{{padding:12px 20px}}h1{{font-size:22px;margin:8px 0}}"
        f"h2{{font-size:17px;margin:10px 0}}"
        f".meta th,.fields th,.tcb th{{text-align:left;padding:2px 10px 2px 0;"
        f"color:{pal['muted']};font-weight:normal}}"
        f".fields td,.tcb td{{font-family:{MONO};font-size:13px;padding:2px 10px 2px 0}}"
        f".tcb th{{font-family:{FONT}}}"
        f"#controls{{position:sticky;top:0;z-index:2;background:{pal['panel']};"
        f"border-bottom:1px solid {pal['border']};padding:10px 20px;display:flex;gap:16px;"
        f"align-items:flex-start;flex-wrap:wrap}}"
        f"#controls button{{font-size:15px;padding:6px 14px;border-radius:6px;cursor:pointer;"
        f"border:1px solid {pal['border']};background:{pal['bg']};color:{pal['fg']}}}"
        f"#controls button:disabled{{opacity:.4;cursor:default}}"
        f"#step-title{{font-weight:bold;font-size:15px;margin:2px 0 6px}}"
        f"#counter,#step-time{{color:{pal['muted']};font-size:13px;margin-right:10px}}"
        f".panel{{min-width:300px}}"
        f"#sequence{{overflow:auto;max-height:80vh;border:1px solid {pal['border']};"
        f"border-radius:6px}}"
        f"#states{{overflow:auto}}"
        f".sq .current line{{stroke:{pal['current']} !important}}"
        f".sq .st.current rect{{stroke:{pal['current']};stroke-width:3}}"
        f"footer{{padding:12px 20px;color:{pal['muted']};font-size:12px}}")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{escape(title)}</title><style>{css}</style></head><body>",
        f"<header><h1>{escape(title)}</h1>",
        f'<div id="explanation">{paras}</div>' if paras else "",
        f'<table class="meta">{meta_rows}</table>' if meta_rows else "",
        f"<p>{nseg} segments, {len(steps)} steps. Use the buttons or the ← → keys.</p>",
        "</header>",
        '<div id="controls"><div><button id="prev" type="button">◀ Previous</button> '
        '<button id="next" type="button">Next ▶</button><div>'
        '<span id="counter"></span><span id="step-time"></span></div></div>',
        '<div class="panel"><div id="step-title"></div>'
        '<table class="fields"><tbody id="step-fields"></tbody></table></div>',
        '<div class="panel"><table class="tcb"><tbody id="tcb"></tbody></table></div></div>',
        f'<section><h2>Sequence diagram</h2><div id="sequence">{seq}</div></section>',
        f'<section><h2>State diagram</h2><div id="states">{sd}</div></section>',
        "<footer>Generated by tcplab. Self-contained: no network access needed.</footer>",
        f'<script type="application/json" id="steps">{data}</script>',
        f"<script>{_JS}</script></body></html>\n"])
