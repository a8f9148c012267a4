"""``tcplab scenario``: the catalogue of runnable "why" experiments.

``list`` shows the scenarios; ``run NAME`` runs one as a sequence diagram
with explanations, or as JSON; the switches remove the mechanism the
scenario demonstrates.  :func:`run_catalogue` runs them all (``tcplab demo
--all``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click

from tcplab.cli.common import (
    OptionError,
    echo_line,
    echo_wrapped,
    emit_outputs,
    environment_options,
    parse_environment,
    resolve_width,
    trace_options,
)
from tcplab.cli.onlinux import on_option
from tcplab.cli.params import SEED, FiniteFloat, OutputFile, reject_unless
from tcplab.i18n import colon, maybe, pad, wrap
from tcplab.i18n import text as tr
from tcplab.i18n import width as width_of
from tcplab.render.html import run_facts
from tcplab.render.narrate import Narrator, RunInfo, describe_outcome_value, outcome_rows
from tcplab.render.terminal import footer, render
from tcplab.scenarios import CATALOGUE, UnknownScenario, findings, get
from tcplab.scenarios.base import (
    DEFAULT,
    DELAY,
    GROUPS,
    MSL,
    Result,
    Scenario,
    Switches,
    execute,
)
from tcplab.scenarios.questions import QUESTIONS, question
from tcplab.scenarios.texts import scenario_text, ui


@click.group()
def scenario() -> None:
    """Run the classic "why" questions of TCP: with the mechanism, and without it.

    Why three segments to open, four to close, why TIME-WAIT and 2MSL, why
    a restarted server cannot bind its port.  Start with `tcplab scenario list`.
    """


@scenario.command("list")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--question", "number", type=click.IntRange(1, len(QUESTIONS)), default=None,
              metavar="N", help="Question N of docs/questions.md: its answer, what Linux "
              "does, and the commands that show it.")
@click.option("--width", default=None, metavar="COLUMNS",
              help="Wrap at COLUMNS (default: the terminal's width).")
def list_cmd(lang: str, number: int | None, width: str | None) -> None:
    """The scenarios by group, one line each, with the switch that removes their mechanism."""
    cols = resolve_width(width, lang)
    if number is not None:
        q = question(number)
        for line in wrap(tr("q.heading", lang, n=number, ask=tr(f"q.{number}.ask", lang)),
                         cols):
            click.echo(line)
        for label, key in (("q.answer", "answer"), ("q.linux", "linux")):
            said = maybe(f"q.{number}.{key}", lang)
            if said is None:  # no Linux-specific fact for this question
                continue
            click.echo(tr(label, lang) + colon(lang).rstrip())
            echo_wrapped(said, cols)
        click.echo(tr("q.commands", lang) + colon(lang).rstrip())
        for cmd in q.commands:
            echo_line(f"  {cmd}", cols)
        return
    w_name = max(len(n) for n in CATALOGUE)
    for group in GROUPS:
        members = [(n, sc) for n, sc in CATALOGUE.items() if sc.group == group]
        asked = [q.n for q in QUESTIONS if q.group == group]
        if not members and not asked:
            continue
        numbers = tr("q.numbers", lang, ns=", ".join(map(str, asked))) if asked else ""
        head = tr(f"group.{group}", lang) + (
            (f" ({numbers})" if lang == "en" else f"（{numbers}）") if asked else "")
        for line in wrap(head, cols):
            click.echo(line)
        for name, sc in members:
            flags = " ".join(sc.counterfactual.flags()) if sc.counterfactual else ""
            variants = " ".join(f"--variant {v}" for v in sc.variants
                                if f"--variant {v}" not in flags)
            extra = " ".join(x for x in (flags, variants) if x)
            body = (scenario_text(name, "summary", lang) or "") + (f"  [{extra}]" if extra else "")
            # the summary hangs beside the names when there is room, else below its name
            hang = w_name + 4 if cols - w_name - 4 >= 40 else 6
            parts = wrap(body, cols - hang)
            if hang == 6:
                click.echo(f"  {name}")
            else:
                click.echo(f"  {name:<{w_name}}  {parts.pop(0)}")
            for part in parts:
                click.echo(" " * hang + part)


def _get(name: str, lang: str = "en") -> Scenario:
    try:
        return get(name)
    except UnknownScenario:
        raise click.ClickException(tr("err.unknown", lang, name=name,
                                      names=", ".join(CATALOGUE))) from None


# Switches that belong to one scenario (the others set every host's configuration).
_ONLY_FOR = {"syn_cookies": "syn-flood", "four_segment": "isn-sync",
             "no_reuseaddr": "port-reuse", "reuseaddr_new_only": "port-reuse"}
_PLOTTED = ("server-close-storm",)  # outcomes with a time series (a "table")


@scenario.command("run")
@click.argument("name")
@click.option("--seed", type=SEED, default=1, show_default=True,
              help="Seed for ISNs, ports and links.")
@click.option("--two-way-handshake", is_flag=True,
              help="Passive side ESTABLISHED as soon as it sends its SYN-ACK (experiment).")
@click.option("--time-wait", type=FiniteFloat(0.0, 3600.0), default=None, metavar="SECONDS",
              help="TIME-WAIT length (default 2*MSL = 60 s; 0 = no TIME-WAIT).")
@click.option("--syn-cookies", is_flag=True, help="SYN cookies when the SYN queue is full.")
@click.option("--no-rfc1337", is_flag=True, help="Let a RST end TIME-WAIT (Linux's default).")
@click.option("--no-reuseaddr", is_flag=True,
              help="port-reuse: SO_REUSEADDR on neither the old nor the new socket.")
@click.option("--reuseaddr-new-only", is_flag=True,
              help="port-reuse: SO_REUSEADDR on the restarted socket only.")
@click.option("--four-segment", is_flag=True,
              help="isn-sync: the server sends its SYN and its ACK separately.")
@click.option("--plot", type=OutputFile(), default=None,
              help="server-close-storm: also write TIME-WAIT entries over time as an SVG chart.")
@click.option("--variant", default=None, metavar="NAME",
              help="Another case the scenario can show (tcplab scenario list names them).")
@environment_options
@trace_options
@on_option
def run_cmd(name: str, seed: int, two_way_handshake: bool, time_wait: float | None,
            syn_cookies: bool, no_rfc1337: bool, no_reuseaddr: bool, reuseaddr_new_only: bool,
            four_segment: bool, plot: str | None, variant: str | None, on: str, profile: str,
            sysctls: tuple[str, ...],
            drops: tuple[str, ...], delays: tuple[str, ...], dups: tuple[str, ...],
            json_out: bool, lang: str, absolute: bool,
            width: str | None, svg: str | None, html: str | None, pcap: str | None) -> None:
    """Run one scenario: a sequence diagram with explanations (or --json).

    \b
    Examples:
      tcplab scenario run close
      tcplab scenario run close --time-wait 0          # remove TIME-WAIT: what breaks?
      tcplab scenario run syn-flood --profile linux    # Linux: SYN cookies are on
      tcplab scenario run close --drop fin:2 --lang zh
      sudo tcplab scenario run lost-final-ack --on linux
    """
    _cfg, faults = parse_environment(profile, sysctls, drops, delays, dups)
    sc = _get(name, lang)
    if variant is not None and variant not in sc.variants:
        known = ", ".join(sc.variants) or "none"
        raise OptionError(f"--variant {variant}: scenario {name} has no such case "
                          f"(its variants: {known})")
    ctx = click.get_current_context()
    for option, only in _ONLY_FOR.items():
        reject_unless(ctx, name == only, [option], f"to scenario {name} (only to {only})")
    reject_unless(ctx, name in _PLOTTED, ["plot"], f"to scenario {name}: it has no time series "
                  f"to plot ({', '.join(_PLOTTED)} has)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    if no_reuseaddr and reuseaddr_new_only:
        raise OptionError(tr("err.reuse", lang))
    sw = Switches(two_way_handshake=two_way_handshake, time_wait=time_wait,
                  syn_cookies=syn_cookies, rfc1337=False if no_rfc1337 else None,
                  reuseaddr="none" if no_reuseaddr else
                  "new-only" if reuseaddr_new_only else "both",
                  four_segment=four_segment, variant=variant, profile=profile,
                  sysctls=tuple(sysctls),
                  faults=faults)
    if on == "linux":  # two Linux kernels in namespaces (tcplab.cli.onlinux)
        import importlib

        importlib.import_module("tcplab.cli.onlinux").scenario_on_linux(
            ctx, name=name, switches=sw, sysctls=tuple(sysctls), faults=faults,
            json_out=json_out, lang=lang, absolute=absolute, width=width, svg=svg, html=html,
            pcap=pcap)
        return
    result = execute(sc, seed, sw)
    cols = None if json_out else resolve_width(width, lang)
    if json_out:
        fault_texts = [f.text() for f in result.switches.faults]
        result.meta["findings"] = {"timeline": findings.timeline(result.events),
                                   "faults": findings.faults(result.events, fault_texts),
                                   "outcome": findings.outcome(result.events)}
        result.net.trace.dump_json(sys.stdout, result.meta)
    else:
        print_result(result, lang=lang, relative=not absolute, width=cols)
    info = run_info(result)
    cf = without_mechanism(result)
    sections = [(ui("watch.cf" if cf else "watch", lang), watch_text(result, lang))]
    if cf:
        sections.append((ui("watch", lang), scenario_text(name, "watch", lang) or ""))
    sections.append((ui("demonstrates.cf" if cf else "demonstrates", lang),
                     scenario_text(name, "demonstrates", lang) or ""))
    flags = " ".join(result.switches.flags())
    facts = run_facts(info, lang, seed=seed, extra=[
        (tr("html.fact.switches", lang), flags or tr("ui.switches.none", lang))])
    if mentions_source(name):
        sections.append((tr("source.heading", lang), source_credit(lang)))
    emit_outputs(result.net.trace.events, result.meta, svg=svg, html=html, pcap=pcap,
                 title=scenario_title(result, lang),
                 subtitle=scenario_text(name, "summary", lang) or "" if cf else "",
                 relative=not absolute, lang=lang, info=info, sections=sections, facts=facts,
                 outcome=outcome_rows(result.outcome, lang))
    if plot:
        _write_plot(name, result, plot, lang)


def run_info(result: Result) -> RunInfo:
    """What the narrator needs to know about a scenario run."""
    return RunInfo(msl=MSL, delay=DELAY, time_wait=result.switches.time_wait,
                   switches=result.switches.flags(), scenario=result.scenario.name,
                   counterfactual=result.switches.counterfactual)


def case_of(result: Result) -> str | None:
    """The variant a run shows when it is a case of its own (``--variant late-accept``),
    not the scenario's counterfactual and with no other switch: such a run has its
    own "what to watch" text (``scenario.NAME.variant.CASE``), not "without ..."."""
    sw = result.switches
    case = sw.variant
    cf = result.scenario.counterfactual
    if case is None or (cf is not None and cf.variant == case) \
            or replace(sw, variant=None).counterfactual:
        return None
    return case


def without_mechanism(result: Result) -> bool:
    """Does this run remove the scenario's mechanism (its texts say "without ...")?"""
    return result.switches.counterfactual and case_of(result) is None


def watch_text(result: Result, lang: str) -> str:
    """What to watch in this run: the case's text, the counterfactual's, or the scenario's."""
    name = result.scenario.name
    case = case_of(result)
    if case is not None:
        found = scenario_text(name, f"variant.{case}", lang)
        if found:
            return found
    return scenario_text(name, "counterfactual" if without_mechanism(result) else "watch",
                         lang) or ""


def scenario_title(result: Result, lang: str) -> str:
    """"tcplab scenario NAME: summary", or for a run with a switch, "... without the mechanism"."""
    name = result.scenario.name
    if without_mechanism(result):
        return ui("title.cf", lang, name=name, flags=" ".join(result.switches.flags()))
    if case_of(result) is not None:
        return ui("title.case", lang, name=name, flags=" ".join(result.switches.flags()),
                  summary=scenario_text(name, "summary", lang) or "")
    return ui("title", lang, name=name, summary=scenario_text(name, "summary", lang) or "")


def _write_plot(name: str, result: Result, path: str, lang: str) -> None:
    """TIME-WAIT entries over time, from the outcome's table, as an SVG chart."""
    table = result.outcome.get("table")
    if not isinstance(table, list) or not table:
        raise OptionError(tr("err.plot", lang, name=name))
    from tcplab.render.chart import panels_svg

    modes = [k for k in table[0] if k != "t" and not k.endswith("(client)")]
    panels = [(ui("storm.server", lang),
               {m: [(float(r["t"]), float(r[m])) for r in table] for m in modes}),
              (ui("storm.client", lang),
               {m: [(float(r["t"]), float(r[f"{m} (client)"])) for r in table] for m in modes})]
    try:
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(panels_svg(panels, title=ui("storm.chart", lang, name=name),
                                xlabel=ui("storm.x", lang), ylabel=ui("storm.y", lang),
                                lang=lang))
    except OSError as exc:
        raise click.ClickException(tr("err.write", lang, err=str(exc))) from None
    click.echo(tr("cli.wrote", lang, path=path), err=True)


# ---------------------------------------------------------------- printing


def _para(text: str, width: int) -> list[str]:
    return ["  " + line for line in wrap(text, max(width - 2, 40))]


def print_result(result: Result, *, lang: str, relative: bool, width: int | None) -> None:
    cols = resolve_width(width, lang)
    sc = result.scenario
    name = sc.name
    cf = without_mechanism(result)
    for line in wrap(scenario_title(result, lang), cols):
        click.echo(line)
    if cf:
        for line in wrap(scenario_text(name, "summary", lang) or "", cols):
            click.echo(line)
    click.echo("")
    click.echo(ui("watch.cf" if cf else "watch", lang) + colon(lang).rstrip())
    for line in _para(watch_text(result, lang), cols):
        click.echo(line)
    click.echo("")
    if sc.diagram:
        nar = Narrator(result.events, lang, run_info(result))
        for line in render(result.events, width=cols, relative=relative, lang=lang,
                           narrator=nar):
            click.echo(line)
        click.echo("")
        click.echo(footer(result.events, lang, finals=False))
        click.echo("")
    if sc.report is not None:
        for line in sc.report(result.events, result.outcome, lang):
            if width_of(line) <= cols:
                click.echo(line)
                continue
            for k, part in enumerate(wrap(line.strip(), cols - 4)):
                click.echo(("  " if k == 0 else "    ") + part)
        click.echo("")
    if sc.diagram:
        found = findings.lines(result.events, lang, DELAY,
                               [f.text() for f in result.switches.faults])
        for line in found:
            echo_line(line, cols)
        if found:
            click.echo("")
    click.echo(ui("outcome", lang) + colon(lang).rstrip())
    rows = outcome_rows(result.outcome, lang)
    w_label = min(max((width_of(k) for k, _v in rows), default=10), cols // 2)
    for label, value in rows:
        lines = wrap(value, max(cols - w_label - 6, 20))
        if width_of(label) > w_label:  # a long label: its value on the next line
            click.echo(f"  {label}")
            click.echo(" " * (w_label + 4) + lines[0])
        else:
            click.echo(f"  {pad(label, w_label)}  {lines[0]}")
        for more in lines[1:]:
            click.echo(" " * (w_label + 4) + more)
    click.echo("")
    click.echo(ui("demonstrates.cf" if cf else "demonstrates", lang) + colon(lang).rstrip())
    for line in _para(scenario_text(name, "demonstrates", lang) or "", cols):
        click.echo(line)
    if sc.counterfactual is not None and not cf:
        click.echo("")
        for line in wrap(f"{ui('try', lang)}{colon(lang)}tcplab scenario run {name} "
                         + " ".join(sc.counterfactual.flags()), cols):
            click.echo(line)
    if mentions_source(name):
        click.echo("")
        for line in wrap(source_credit(lang), cols):
            click.echo(line)
    click.echo("")
    for line in wrap(ui("virtual", lang, virtual=result.net.now, wall=result.wall * 1000), cols):
        click.echo(line)


def mentions_source(name: str) -> bool:
    """Whether a scenario's texts refer to the source article (then it is credited)."""
    texts = [scenario_text(name, f, lang) or "" for f in ("summary", "watch", "demonstrates",
                                                           "counterfactual") for lang in ("en", "zh")]
    return any("article" in t or "原文" in t for t in texts)


def source_credit(lang: str) -> str:
    return tr("source.line", lang, title=tr("source.title", lang),
              credit=tr("source.credit", lang))


# ---------------------------------------------------------------- the catalogue


def _headline(sc: Scenario, outcome: dict[str, Any], lang: str) -> str:
    rows = {k: describe_outcome_value(outcome[k], lang) for k in sc.headline if k in outcome}
    sep = "；" if lang == "zh" else "; "
    return sep.join(f"{tr('outcome.' + k, lang)}{colon(lang)}{v}" for k, v in rows.items())


def catalogue_results(seed: int) -> list[Result]:
    """Every scenario with its mechanism, then (if it has one) with its switch."""
    out: list[Result] = []
    for sc in CATALOGUE.values():
        out.append(execute(sc, seed, DEFAULT))
        if sc.counterfactual is not None:
            out.append(execute(sc, seed, sc.counterfactual))
    return out


def run_catalogue(seed: int, lang: str, json_out: bool, width: int | str | None) -> None:
    """Run the whole catalogue and print a compact table (``tcplab demo --all``)."""
    results = catalogue_results(seed)
    if json_out:
        doc = [{"scenario": r.scenario.name, "switches": r.switches.flags(),
                "virtual_seconds": r.meta["virtual_seconds"], "outcome": r.outcome}
               for r in results]
        json.dump({"schema": "tcplab-catalogue/1", "seed": seed, "runs": doc}, sys.stdout,
                  ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    cols = resolve_width(width, lang)
    for line in wrap(ui("catalogue", lang, seed=seed), cols):
        click.echo(line)
    click.echo("")
    w_name = max(max(len(n) for n in CATALOGUE), width_of(ui("col_scenario", lang)))
    w_sw = max(max(len(" ".join(r.switches.flags())) for r in results),
               width_of(ui("col_switches", lang)))
    head = (f"{pad(ui('col_scenario', lang), w_name)}  {pad(ui('col_switches', lang), w_sw)}  "
            f"{pad(ui('col_ms', lang), 4, '>')}  {ui('col_outcome', lang)}")
    click.echo(head)
    click.echo("-" * min(cols, max(width_of(head), 60)))
    indent = w_name + w_sw + 10
    room = max(cols - indent, 24)
    total = 0.0
    for r in results:
        total += r.wall
        lines = wrap(_headline(r.scenario, r.outcome, lang), room) or [""]
        click.echo(f"{r.scenario.name:<{w_name}}  {' '.join(r.switches.flags()):<{w_sw}}  "
                   f"{r.wall * 1000:4.0f}  {lines[0]}")
        for more in lines[1:]:
            click.echo(" " * indent + more)
    click.echo("")
    click.echo(ui("catalogue.done", lang, n=len(results), ms=f"{total * 1000:.0f}"))
