"""``tcplab demo``."""

from __future__ import annotations

import importlib
import sys
import time

import click

from tcplab.cli.common import emit_outputs, print_diagram, trace_options
from tcplab.cli.params import SEED, FiniteFloat, reject_unless
from tcplab.demo import run_demo


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
         absolute: bool, width: int, svg: str | None, html: str | None,
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
        raise click.BadParameter(f"must be longer than the one-way delay ({delay:g} s): "
                                 "every segment would die in the network", param_hint="--msl")
    t0 = time.perf_counter()
    try:
        net = run_demo(seed=seed, delay=delay, msl=msl)
    except OSError as exc:
        raise click.ClickException(f"the demo connection failed: {exc}") from None
    wall = time.perf_counter() - t0
    events = net.trace.events
    meta = {"command": "demo", "seed": seed, "delay": delay, "msl": msl,
            "virtual_seconds": net.now, "wall_seconds": round(wall, 4)}
    if json_out:
        net.trace.dump_json(sys.stdout, meta)
    else:
        print_diagram(events, lang=lang, relative=not absolute, width=width,
                      title="tcplab demo: one connection's whole life (simulated, virtual time)")
        click.echo(f"\n{net.now:.2f} s of virtual time in {wall * 1000:.0f} ms of wall time. "
                   "Try: tcplab demo --json | tcplab scenario list")
    emit_outputs(events, meta, svg=svg, html=html, pcap=pcap,
                 title="tcplab demo: one connection life (simulated, 50 ms one-way delay)",
                 explanation=(run_demo.__doc__ or ""), relative=not absolute)
