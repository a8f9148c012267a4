"""``tcplab scenario``: the catalogue of runnable "why" experiments.

``list`` shows the scenarios; ``run NAME`` runs one as a sequence diagram
with explanations, or as JSON; the switches remove the mechanism the
scenario demonstrates.  :func:`run_catalogue` runs them all (``tcplab demo
--all``).
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

import click

from tcplab.cli.common import emit_outputs, trace_options
from tcplab.cli.params import SEED, FiniteFloat, OutputFile, reject_unless
from tcplab.scenarios import CATALOGUE, UnknownScenario, get
from tcplab.scenarios.base import DEFAULT, Result, Scenario, Switches, execute
from tcplab.scenarios.texts import causes, scenario_text, ui
from tcplab.termdiagram import explain, load_steps, render, summarize
from tcplab.trace import Event


@click.group()
def scenario() -> None:
    """Run the classic "why" questions of TCP: with the mechanism, and without it.

    Why three segments to open, four to close, why TIME-WAIT and 2MSL, why
    a restarted server cannot bind its port.  Start with `tcplab scenario list`.
    """


@scenario.command("list")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
def list_cmd(lang: str) -> None:
    """The scenarios, one line each, with the switch that removes their mechanism."""
    width = max(len(n) for n in CATALOGUE)
    for name, sc in CATALOGUE.items():
        flags = " ".join(sc.counterfactual.flags()) if sc.counterfactual else ""
        click.echo(f"{name:<{width}}  {scenario_text(name, 'summary', lang)}"
                   + (f"  [{flags}]" if flags else ""))


def _get(name: str) -> Scenario:
    try:
        return get(name)
    except UnknownScenario as exc:
        raise click.ClickException(str(exc)) from None


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
@trace_options
def run_cmd(name: str, seed: int, two_way_handshake: bool, time_wait: float | None,
            syn_cookies: bool, no_rfc1337: bool, no_reuseaddr: bool, reuseaddr_new_only: bool,
            four_segment: bool, plot: str | None, json_out: bool, lang: str, absolute: bool,
            width: int, svg: str | None, html: str | None, pcap: str | None) -> None:
    """Run one scenario: a sequence diagram with explanations (or --json)."""
    sc = _get(name)
    ctx = click.get_current_context()
    for option, only in _ONLY_FOR.items():
        reject_unless(ctx, name == only, [option], f"to scenario {name} (only to {only})")
    reject_unless(ctx, name in _PLOTTED, ["plot"], f"to scenario {name}: it has no time series "
                  f"to plot ({', '.join(_PLOTTED)} has)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    if no_reuseaddr and reuseaddr_new_only:
        raise click.ClickException("--no-reuseaddr and --reuseaddr-new-only exclude each other")
    sw = Switches(two_way_handshake=two_way_handshake, time_wait=time_wait,
                  syn_cookies=syn_cookies, rfc1337=not no_rfc1337,
                  reuseaddr="none" if no_reuseaddr else
                  "new-only" if reuseaddr_new_only else "both",
                  four_segment=four_segment)
    result = execute(sc, seed, sw)
    if json_out:
        result.net.trace.dump_json(sys.stdout, result.meta)
    else:
        print_result(result, lang=lang, relative=not absolute, width=width)
    emit_outputs(result.net.trace.events, result.meta, svg=svg, html=html, pcap=pcap,
                 title=f"tcplab scenario {name}",
                 explanation=scenario_text(name, "demonstrates", lang) or "",
                 relative=not absolute)
    if plot:
        _write_plot(name, result, plot)


def _write_plot(name: str, result: Result, path: str) -> None:
    """TIME-WAIT entries over time, from the outcome's table, as an SVG chart."""
    table = result.outcome.get("table")
    if not isinstance(table, list) or not table:
        raise click.ClickException(f"--plot: scenario {name} has no time series to plot")
    from tcplab.render.chart import line_chart_svg

    keys = [k for k in table[0] if k != "t"]
    series = {k: [(float(row["t"]), float(row[k])) for row in table] for k in keys}
    try:
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(line_chart_svg(series, title=f"TIME-WAIT entries over time ({name})",
                                    xlabel="virtual time (s)", ylabel="TIME-WAIT entries"))
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None
    click.echo(f"wrote {path}", err=True)


# ---------------------------------------------------------------- printing


def _para(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(width - 2, 40), initial_indent="  ",
                         subsequent_indent="  ")


def _value(v: Any) -> str:
    if isinstance(v, list) and all(isinstance(x, str) for x in v) and len(v) > 1 \
            and all(x.isupper() or "-" in x for x in v):
        return " > ".join(v)
    if isinstance(v, str):
        return repr(v) if ("\r" in v or "\n" in v) else v
    return json.dumps(v, ensure_ascii=False)


def print_result(result: Result, *, lang: str, relative: bool, width: int) -> None:
    sc = result.scenario
    name = sc.name
    flags = " ".join(result.switches.flags())
    click.echo(f"tcplab scenario {name}" + (f"  {flags}" if flags else ""))
    click.echo(scenario_text(name, "summary", lang) or "")
    click.echo("")
    click.echo(ui("watch", lang) + ":")
    for line in _para(scenario_text(name, "watch", lang) or "", width):
        click.echo(line)
    click.echo("")
    if sc.diagram:
        steps = load_steps(lang)
        by_cause = causes(lang)

        def why(e: Event) -> str | None:
            if e["kind"] == "state" and e.get("cause") in by_cause:
                return by_cause[e["cause"]]
            return explain(e, steps)

        for line in render(result.events, width=width, relative=relative, explain_fn=why):
            click.echo(line)
        s = summarize(result.events)
        segs = ", ".join(f"{n} {fate}" for fate, n in s["segments"].items())
        click.echo(f"\nsegments: {segs}.")
        click.echo("")
    if sc.report is not None:
        for line in sc.report(result.events, result.outcome, lang):
            click.echo(line)
        click.echo("")
    click.echo(ui("outcome", lang) + ":")
    for key, value in result.outcome.items():
        if key == "table":
            continue
        click.echo(f"  {key}: {_value(value)}")
    click.echo("")
    click.echo(ui("demonstrates", lang) + ":")
    for line in _para(scenario_text(name, "demonstrates", lang) or "", width):
        click.echo(line)
    cf = scenario_text(name, "counterfactual", lang)
    if cf and sc.counterfactual is not None:
        click.echo("")
        if result.switches != DEFAULT:
            click.echo(ui("counterfactual", lang) + ":")
            for line in _para(cf, width):
                click.echo(line)
        else:
            click.echo(f"{ui('try', lang)}: tcplab scenario run {name} "
                       + " ".join(sc.counterfactual.flags()))
    click.echo("")
    click.echo(ui("virtual", lang, virtual=result.net.now, wall=result.wall * 1000))


# ---------------------------------------------------------------- the catalogue


def _compact(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return ",".join(f"{k}:{_compact(x)}" for k, x in v.items())
    if isinstance(v, list):
        return _value(v) if len(v) > 1 and all(isinstance(x, str) and x.isupper()
                                               for x in v) else ",".join(map(_compact, v))
    return _value(v)


def _headline(sc: Scenario, outcome: dict[str, Any]) -> str:
    return "; ".join(f"{k}={_compact(outcome[k])}" for k in sc.headline if k in outcome)


def catalogue_results(seed: int) -> list[Result]:
    """Every scenario with its mechanism, then (if it has one) with its switch."""
    out: list[Result] = []
    for sc in CATALOGUE.values():
        out.append(execute(sc, seed, DEFAULT))
        if sc.counterfactual is not None:
            out.append(execute(sc, seed, sc.counterfactual))
    return out


def run_catalogue(seed: int, lang: str, json_out: bool, width: int) -> None:
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
    click.echo(ui("catalogue", lang, seed=seed))
    click.echo("")
    w_name = max(len(n) for n in CATALOGUE)
    w_sw = max(len(" ".join(r.switches.flags())) for r in results)
    head = (f"{ui('col_scenario', lang):<{w_name}}  {ui('col_switches', lang):<{w_sw}}  "
            f"{ui('col_ms', lang):>4}  {ui('col_outcome', lang)}")
    click.echo(head)
    click.echo("-" * min(width, max(len(head), 60)))
    room = max(width - w_name - w_sw - 10, 30)
    total = 0.0
    for r in results:
        total += r.wall
        lines = textwrap.wrap(_headline(r.scenario, r.outcome), width=room) or [""]
        click.echo(f"{r.scenario.name:<{w_name}}  {' '.join(r.switches.flags()):<{w_sw}}  "
                   f"{r.wall * 1000:4.0f}  {lines[0]}")
        for more in lines[1:]:
            click.echo(" " * (w_name + w_sw + 10) + more)
    click.echo("")
    click.echo(f"{len(results)} runs in {total * 1000:.0f} ms. "
               "tcplab scenario run NAME [--lang zh] explains each one.")
