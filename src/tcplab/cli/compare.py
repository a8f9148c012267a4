"""``tcplab compare NAME``: the engine and Linux, the same lesson, side by side.

The engine runs the lesson in the simulator (with the ``linux`` profile unless
``--profile rfc``), Linux runs it on two kernels in namespaces
(:mod:`tcplab.onlinux`), each with the same ``--sysctl`` and the same
``--drop/--delay/--dup``. Both diagrams are drawn (beside each other when the terminal
is wide enough, else one after the other), then every aspect of the two traces with
a mark, = alike or ≠ different (:func:`tcplab.onlinux.compare.differences`). Needs
root, for the Linux half.
"""

from __future__ import annotations

import json
import os
import sys

import click

from tcplab.cli.common import OptionError, parse_environment, resolve_width
from tcplab.cli.onlinux import run_linux
from tcplab.cli.params import SEED, FiniteFloat, reject_unless
from tcplab.i18n import colon, pad, truncate, wrap
from tcplab.i18n import text as tr
from tcplab.i18n import width as width_of
from tcplab.onlinux.compare import CompareError, Row, run_both
from tcplab.render.narrate import Narrator, RunInfo
from tcplab.render.terminal import MIN_WIDTH, footer, render
from tcplab.scenarios.base import Switches
from tcplab.trace import Event

__all__ = ["compare"]


@click.command("compare")
@click.argument("name")
@click.option("--profile", type=click.Choice(["linux", "rfc"]), default="linux",
              show_default=True, help="The engine's TCP: Linux 6.x's defaults, or RFC 9293's.")
@click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
              help="A Linux setting, for the engine and both kernels alike, e.g. "
                   "net.ipv4.tcp_syn_retries=2 (repeatable).")
@click.option("--drop", "drops", multiple=True, metavar="WHAT",
              help="Lose a segment of the life on both sides: syn, syn-ack, ack, data, fin, "
                   "fin-ack, fin2, last-ack; client:/server: before, :N or :all after.")
@click.option("--delay", "delays", multiple=True, metavar="WHAT=SECONDS",
              help="Hold a segment of the life in the network, e.g. syn-ack=3.")
@click.option("--dup", "dups", multiple=True, metavar="WHAT",
              help="Deliver a segment of the life twice, e.g. fin.")
@click.option("--rtt", default=None, type=FiniteFloat(0.0, 10.0),
              help="demo: round-trip time of the link (s); default 0.1.")
@click.option("--syn-cookies", is_flag=True, help="syn-flood: SYN cookies when the queue is full.")
@click.option("--no-rfc1337", is_flag=True, help="Let a RST end TIME-WAIT (Linux's default).")
@click.option("--no-reuseaddr", is_flag=True, help="port-reuse: SO_REUSEADDR on no socket.")
@click.option("--reuseaddr-new-only", is_flag=True,
              help="port-reuse: SO_REUSEADDR on the restarted socket only.")
@click.option("--seed", type=SEED, default=1, show_default=True,
              help="Seed of the engine's run (Linux picks its own ISNs and ports).")
@click.option("--json", "json_out", is_flag=True,
              help="Print both traces and the differences as JSON (tcplab-compare/1).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--absolute", is_flag=True, help="Absolute sequence numbers.")
@click.option("--width", default=None, metavar="COLUMNS",
              help="Width in columns (the diagrams go beside each other from "
                   f"{2 * MIN_WIDTH + 3} columns on).")
def compare(name: str, profile: str, sysctls: tuple[str, ...], drops: tuple[str, ...],
            delays: tuple[str, ...], dups: tuple[str, ...], rtt: float | None,
            syn_cookies: bool, no_rfc1337: bool, no_reuseaddr: bool,
            reuseaddr_new_only: bool, seed: int, json_out: bool, lang: str, absolute: bool,
            width: str | None) -> None:
    """The engine and Linux, the same lesson: both diagrams, and where they differ.

    NAME is `demo` or a catalogue scenario (tcplab scenario list). Linux runs it on two
    kernels in network namespaces joined by tcplab, in real time (needs root).

    \b
    Examples:
      sudo tcplab compare demo --drop syn:all --sysctl net.ipv4.tcp_syn_retries=2
      sudo tcplab compare demo --drop syn:all --sysctl net.ipv4.tcp_syn_retries=2 --profile rfc
      sudo tcplab compare lost-final-ack
      sudo tcplab compare simultaneous-close --lang zh
    """
    ctx = click.get_current_context()
    reject_unless(ctx, name == "demo", ["rtt"], f"to {name} (only to demo)")
    reject_unless(ctx, name == "syn-flood", ["syn_cookies"], f"to {name} (only to syn-flood)")
    reject_unless(ctx, name == "port-reuse", ["no_reuseaddr", "reuseaddr_new_only"],
                  f"to {name} (only to port-reuse)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    if no_reuseaddr and reuseaddr_new_only:
        raise OptionError(tr("err.reuse", lang))
    _cfg, faults = parse_environment(profile, sysctls, drops, delays, dups)
    delay = rtt / 2 if rtt is not None else 0.05
    sw = Switches(syn_cookies=syn_cookies, rfc1337=False if no_rfc1337 else None,
                  reuseaddr="none" if no_reuseaddr else
                  "new-only" if reuseaddr_new_only else "both")
    cols = None if json_out else resolve_width(width, lang)
    try:
        both = run_both(name, switches=sw, sysctls=tuple(sysctls), faults=faults,
                        profile=profile, seed=seed, delay=delay, lang=lang,
                        on_linux=lambda lesson, linux_sysctls: run_linux(
                            lesson, sysctls=linux_sysctls, faults=faults, lang=lang,
                            command=f"compare {name}", quiet=json_out))
    except CompareError as exc:
        raise OptionError(str(exc)) from None
    res, rows = both.linux, both.rows
    eng_events, lin_events = both.engine, both.linux_events
    kernel = os.uname().release
    if json_out:
        doc = {"schema": "tcplab-compare/1", "name": name, "profile": profile,
               "sysctls": list(sysctls), "faults": [f.text() for f in faults],
               "engine": {"meta": both.engine_meta, "events": eng_events},
               "linux": {"meta": {**res.meta, "why_ended": res.why,
                                  "wall_seconds": round(res.wall, 3)},
                         "events": lin_events},
               "differences": [r.to_json() for r in rows],
               "alike": sum(r.same for r in rows), "aspects": len(rows)}
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return
    assert cols is not None
    for line in wrap(tr("compare.title", lang, name=name, profile=profile, kernel=kernel),
                     cols):
        click.echo(line)
    click.echo("")
    _diagrams(eng_events, lin_events, cols, lang, not absolute, profile, kernel, delay)
    click.echo("")
    for line in _table(rows, cols, lang):
        click.echo(line)
    click.echo("")
    same = sum(r.same for r in rows)
    for line in wrap(tr("compare.alike", lang, same=same, n=len(rows), diff=len(rows) - same,
                        eng=f"{both.engine_wall * 1000:.0f}", wall=f"{res.wall:.1f}"), cols):
        click.echo(line)


def _diagram(events: list[Event], width: int, lang: str, relative: bool,
             info: RunInfo) -> list[str]:
    nar = Narrator(events, lang, info)
    lines = render(events, width=width, relative=relative, lang=lang, narrator=nar,
                   explain=False)
    return [*lines, "", *wrap(footer(events, lang), width)]


def _diagrams(eng: list[Event], lin: list[Event], cols: int, lang: str, relative: bool,
              profile: str, kernel: str, delay: float) -> None:
    left_head = tr("compare.engine", lang, profile=profile)
    right_head = tr("compare.linux", lang, kernel=kernel)
    eng_info = RunInfo(delay=delay, source="sim")
    lin_info = RunInfo(delay=delay, time_wait=60.0, source="linux")
    if cols >= 2 * MIN_WIDTH + 3:
        half = (cols - 3) // 2
        left = [*wrap(left_head, half), "", *_diagram(eng, half, lang, relative, eng_info)]
        right = [*wrap(right_head, half), "", *_diagram(lin, half, lang, relative, lin_info)]
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ""
            b = right[i] if i < len(right) else ""
            click.echo((pad(truncate(a, half), half) + " │ " + b).rstrip())
        return
    for head, events, info in ((left_head, eng, eng_info), (right_head, lin, lin_info)):
        for line in wrap(head, cols):
            click.echo(line)
        click.echo("")
        for line in _diagram(events, cols, lang, relative, info):
            click.echo(line)
        click.echo("")


def _table(rows: list[Row], cols: int, lang: str) -> list[str]:
    """Each aspect: a mark (= alike, ≠ different), its name, then both values."""
    out = [tr("compare.heading", lang)]
    eng, lin = tr("compare.side.engine", lang), tr("compare.side.linux", lang)
    w = max(width_of(eng), width_of(lin))
    for r in rows:
        mark = "=" if r.same else "≠"
        label = tr(f"compare.aspect.{r.aspect}", lang) + (f" {r.subject}" if r.subject else "")
        if r.engine == r.linux:
            both = f"{label}{colon(lang)}{r.engine}" if r.engine else label
            out += _hang(f"  {mark} ", both, cols)
            if r.note:
                out += _hang("      ", r.note, cols)
            continue
        out += _hang(f"  {mark} ", label, cols)
        out += _hang(f"      {pad(eng, w)}  ", r.engine, cols)
        out += _hang(f"      {pad(lin, w)}  ", r.linux, cols)
        if r.note:
            out += _hang("      ", r.note, cols)
    return out


def _hang(prefix: str, body: str, cols: int) -> list[str]:
    room = max(cols - width_of(prefix), 20)
    parts = wrap(body, room) or [""]
    return [prefix + parts[0], *(" " * width_of(prefix) + p for p in parts[1:])]
