"""``tcplab demo``."""

from __future__ import annotations

import importlib
import sys
import time

import click

from tcplab.cli.common import OptionError, emit_outputs, print_diagram, resolve_width, trace_options
from tcplab.cli.params import SEED, FiniteFloat, reject_unless
from tcplab.i18n import seconds, wrap
from tcplab.i18n import text as tr
from tcplab.render.html import run_facts
from tcplab.render.narrate import Narrator, RunInfo
from tcplab.scenarios.demo import run_demo


@click.command()
@click.option("--seed", type=SEED, default=1, show_default=True, help="Seed for ISNs and ports.")
@click.option("--delay", default=0.05, show_default=True, type=FiniteFloat(0.0, 60.0),
              help="One-way delay of the link (s).")
@click.option("--msl", default=30.0, show_default=True,
              type=FiniteFloat(0.0, 3600.0, min_open=True),
              help="Maximum segment lifetime (s); TIME-WAIT lasts 2*MSL.")
@click.option("--all", "run_all", is_flag=True,
              help="Run the whole catalogue of scenarios (tcplab scenario list) instead.")
@trace_options
def demo(seed: int, delay: float, msl: float, run_all: bool, json_out: bool, lang: str,
         absolute: bool, width: str | None, svg: str | None, html: str | None,
         pcap: str | None) -> None:
    """One whole TCP connection life, on a simulated network.

    The three-way handshake, an HTTP request and response, the four-way close
    and TIME-WAIT until CLOSED, each step explained.  Virtual time: the 60 s
    of TIME-WAIT take no time.  No network and no root needed.
    """
    ctx = click.get_current_context()
    reject_unless(ctx, not run_all, ["delay", "msl", "absolute", "svg", "html", "pcap"],
                  "to --all (the catalogue prints a table)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    if run_all:
        # The catalogue lives with the scenarios (tcplab.cli.scenario).
        scenario_cli = importlib.import_module("tcplab.cli.scenario")
        scenario_cli.run_catalogue(seed=seed, lang=lang, json_out=json_out, width=width)
        return
    if msl <= delay:
        raise OptionError(tr("err.msl", lang, delay=seconds(delay, lang)))
    cols = None if json_out else resolve_width(width, lang)
    t0 = time.perf_counter()
    try:
        net = run_demo(seed=seed, delay=delay, msl=msl)
    except OSError as exc:
        raise click.ClickException(tr("err.demo", lang, err=str(exc))) from None
    wall = time.perf_counter() - t0
    events = net.trace.events
    meta = {"command": "demo", "seed": seed, "delay": delay, "msl": msl,
            "virtual_seconds": net.now, "wall_seconds": round(wall, 4)}
    info = RunInfo(msl=msl, delay=delay, source="sim")
    title = tr("demo.title", lang, delay=seconds(delay, lang), msl=seconds(msl, lang))
    if json_out:
        net.trace.dump_json(sys.stdout, meta)
    else:
        narrator = Narrator(events, lang, info)
        print_diagram(events, lang=lang, relative=not absolute, width=cols, title=title,
                      narrator=narrator)
        click.echo("")
        for line in wrap(tr("demo.virtual", lang, virtual=seconds(net.now, lang),
                            wall=f"{wall * 1000:.0f}"), resolve_width(cols, lang)):
            click.echo(line)
    tw = seconds(2 * msl, lang)
    source = tr("demo.source", lang, title=tr("source.title", lang),
                credit=tr("source.credit", lang))
    emit_outputs(events, meta, svg=svg, html=html, pcap=pcap, title=title,
                 subtitle=tr("demo.subtitle", lang, tw=tw), explanation=source,
                 relative=not absolute, lang=lang, info=info,
                 facts=run_facts(info, lang, seed=seed))
