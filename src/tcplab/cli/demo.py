"""``tcplab demo``."""

from __future__ import annotations

import importlib
import sys
import time

import click

from tcplab.cli.common import (
    OptionError,
    echo_line,
    emit_outputs,
    environment_options,
    parse_environment,
    print_diagram,
    resolve_width,
    trace_options,
)
from tcplab.cli.onlinux import on_option
from tcplab.cli.params import SEED, FiniteFloat, reject_unless
from tcplab.i18n import seconds, wrap
from tcplab.i18n import text as tr
from tcplab.render.html import run_facts
from tcplab.render.narrate import Narrator, RunInfo
from tcplab.scenarios import findings
from tcplab.scenarios.demo import run_demo


def _isn(ctx: click.Context, param: click.Parameter, value: str | None
         ) -> tuple[int | None, int | None]:
    """--isn CLIENT[,SERVER]: sequence numbers 0..2**32-1."""
    if value is None:
        return (None, None)
    parts = value.split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter("CLIENT or CLIENT,SERVER: whole numbers") from None
    if len(nums) > 2 or any(not 0 <= n < 1 << 32 for n in nums):
        raise click.BadParameter("one or two sequence numbers, each 0 to 4294967295")
    return (nums[0], nums[1] if len(nums) == 2 else None)


def _sizes(ctx: click.Context, param: click.Parameter, value: str | None
           ) -> tuple[int | None, int | None]:
    """--bytes N[,M]: the request's size and the answer's (default: the same)."""
    if value is None:
        return (None, None)
    parts = value.split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter("N or N,M: whole numbers of bytes") from None
    if len(nums) > 2 or any(not 1 <= n <= 16 << 20 for n in nums):
        raise click.BadParameter("one or two sizes, each 1 byte to 16 MiB")
    return (nums[0], nums[-1])


@click.command()
@click.option("--seed", type=SEED, default=1, show_default=True, help="Seed for ISNs and ports.")
@click.option("--rtt", default=None, type=FiniteFloat(0.0, 120.0),
              help="Round-trip time of the link (s); default 0.1 (50 ms each way).")
@click.option("--msl", default=30.0, show_default=True,
              type=FiniteFloat(0.0, 3600.0, min_open=True),
              help="Maximum segment lifetime (s); TIME-WAIT lasts 2*MSL (Linux: a fixed 60 s).")
@click.option("--isn", callback=_isn, default=None, metavar="CLIENT[,SERVER]",
              help="The initial sequence numbers, as an exam question gives them.")
@click.option("--bytes", "sizes", callback=_sizes, default=None, metavar="N[,M]",
              help="Bytes the client sends, and the server answers (default: a small "
                   "HTTP exchange).")
@click.option("--think", default=None, type=FiniteFloat(0.0, 3600.0), metavar="SECONDS",
              help="How long the server's application takes to close after the client's FIN "
                   "(default 0.2; 0 with exam numbers).")
@click.option("--all", "run_all", is_flag=True,
              help="Run the whole catalogue of scenarios (tcplab scenario list) instead.")
@environment_options
@trace_options
@on_option
def demo(seed: int, rtt: float | None, msl: float, isn: tuple[int | None, int | None],
         sizes: tuple[int | None, int | None], think: float | None, run_all: bool,
         on: str, profile: str,
         sysctls: tuple[str, ...], drops: tuple[str, ...], delays: tuple[str, ...],
         dups: tuple[str, ...], json_out: bool, lang: str,
         absolute: bool, width: str | None, svg: str | None, html: str | None,
         pcap: str | None) -> None:
    """One whole TCP connection life, on a simulated network.

    The three-way handshake, an HTTP request and response, the four-way close
    and TIME-WAIT until CLOSED, each step explained.  Virtual time: the 60 s
    of TIME-WAIT take no time.  No network and no root needed.

    \b
    Examples:
      tcplab demo --lang zh
      tcplab demo --drop syn:all --profile linux   # connect() gives up: when, and why
      tcplab demo --drop last-ack                  # the FIN comes again; TIME-WAIT restarts
      tcplab demo --isn 1000 --bytes 4000          # 408 exam numbers, answers printed
      tcplab demo --rtt 0.05 --msl 0.8             # when does each side reach CLOSED?
      sudo tcplab demo --on linux --drop last-ack  # the same on two Linux kernels
    """
    ctx = click.get_current_context()
    # --delay SECONDS (a plain number) is the one-way delay, as it always was; a fault
    # is WHAT=SECONDS.
    link_delays = [d for d in delays if "=" not in d]
    delays = tuple(d for d in delays if "=" in d)
    if len(link_delays) > 1 or (link_delays and rtt is not None):
        raise OptionError("give the link's delay once: --rtt SECONDS (or --delay SECONDS)")
    delay = 0.05
    if rtt is not None:
        delay = rtt / 2
    elif link_delays:
        param = next(p for p in ctx.command.params if p.name == "delays")
        delay = FiniteFloat(0.0, 60.0).convert(link_delays[0], param, ctx)
    config, faults = parse_environment(profile, sysctls, drops, delays, dups)
    if on == "linux":  # two Linux kernels in namespaces (tcplab.cli.onlinux)
        importlib.import_module("tcplab.cli.onlinux").demo_on_linux(
            ctx, delay=delay, think=think, sizes=sizes,
            exam=sizes != (None, None) or rtt is not None, sysctls=sysctls, faults=faults,
            json_out=json_out, lang=lang, absolute=absolute, width=width, svg=svg, html=html,
            pcap=pcap)
        return
    reject_unless(ctx, not run_all, ["rtt", "msl", "absolute", "svg", "html", "pcap", "isn",
                                     "think",
                                     "sizes", "profile", "sysctls", "drops", "delays", "dups"],
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
        exam = isn != (None, None) or sizes != (None, None) or rtt is not None
        net = run_demo(seed=seed, delay=delay, msl=msl, config=config, faults=faults, isn=isn,
                       request=sizes[0], response=sizes[1], exam=exam, think=think)
    except OSError as exc:
        raise click.ClickException(tr("err.demo", lang, err=str(exc))) from None
    wall = time.perf_counter() - t0
    events = net.trace.events
    json_events = net.trace.to_json_list()
    fault_texts = [f.text() for f in faults]
    meta = {"command": "demo", "seed": seed, "delay": delay, "rtt": 2 * delay, "msl": msl,
            "think": think,
            "profile": profile, "sysctls": list(sysctls), "faults": fault_texts,
            "isn": list(isn), "bytes": list(sizes),
            "virtual_seconds": net.now, "wall_seconds": round(wall, 4),
            "findings": {"timeline": findings.timeline(json_events),
                         "faults": findings.faults(json_events, fault_texts),
                         "outcome": findings.outcome(json_events),
                         "answers": findings.answers(json_events, delay)},
            "counters": {name: h.counters.as_dict() for name, h in net.hosts.items()}}
    info = RunInfo(msl=msl, delay=delay, source="sim")
    title = tr("demo.title", lang, delay=seconds(delay, lang), msl=seconds(msl, lang))
    if json_out:
        net.trace.dump_json(sys.stdout, meta)
    else:
        narrator = Narrator(events, lang, info)
        print_diagram(events, lang=lang, relative=not absolute, width=cols, title=title,
                      narrator=narrator)
        click.echo("")
        for line in findings.lines(json_events, lang, delay, fault_texts):
            echo_line(line, cols or 100)
        if exam:
            for line in findings.answer_lines(json_events, lang, delay):
                echo_line(line, cols or 100)
            click.echo("")
        for line in wrap(tr("demo.virtual", lang, virtual=seconds(net.now, lang),
                            wall=f"{wall * 1000:.0f}"), resolve_width(cols, lang)):
            click.echo(line)
        for line in wrap(tr("demo.next", lang), resolve_width(cols, lang)):
            click.echo(line)
    tw = seconds(2 * msl, lang)
    source = tr("demo.source", lang, title=tr("source.title", lang),
                credit=tr("source.credit", lang))
    emit_outputs(events, meta, svg=svg, html=html, pcap=pcap, title=title,
                 subtitle=tr("demo.subtitle", lang, tw=tw), explanation=source,
                 relative=not absolute, lang=lang, info=info,
                 facts=run_facts(info, lang, seed=seed))
