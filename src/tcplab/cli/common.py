"""Options and output helpers shared by the commands that run a trace."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tcplab.cli.params import WIDTH, OutputFile
from tcplab.termdiagram import explain, load_steps, render, summarize
from tcplab.trace import Event

F = TypeVar("F", bound=Callable[..., Any])


def trace_options(func: F) -> F:
    """--json, --lang, --absolute, --width, --svg, --html, --pcap."""
    opts = [
        click.option("--json", "json_out", is_flag=True,
                     help="Print the whole trace as JSON (schema: docs/trace.md)."),
        click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
                     help="Language of the explanations."),
        click.option("--absolute", is_flag=True,
                     help="Absolute sequence numbers (default: relative to each ISN)."),
        click.option("--width", type=WIDTH, default=100, show_default=True,
                     help="Diagram width (columns)."),
        click.option("--svg", type=OutputFile(), default=None,
                     help="Also write the sequence diagram as SVG to this file."),
        click.option("--html", type=OutputFile(), default=None,
                     help="Also write a self-contained HTML report to this file."),
        click.option("--pcap", type=OutputFile(), default=None,
                     help="Also write the packets to a pcap file (opens in Wireshark)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def print_diagram(events: list[Event], *, lang: str, relative: bool, width: int,
                  title: str | None = None) -> None:
    steps = load_steps(lang)
    if title:
        click.echo(title)
        click.echo("")
    for line in render(events, width=width, relative=relative,
                       explain_fn=lambda e: explain(e, steps)):
        click.echo(line)
    s = summarize(events)
    finals = ", ".join(f"{h}: {st}" for h, st in s["final_states"].items())
    segs = ", ".join(f"{n} {fate}" for fate, n in s["segments"].items())
    click.echo(f"\nsegments: {segs}.  final states: {finals}.")


def _optional(module: str, attr: str, what: str) -> Callable[..., Any]:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise click.ClickException(f"{what} is not available in this build ({exc})") from None
    fn = getattr(mod, attr, None)
    if fn is None:
        raise click.ClickException(f"{what} is not available in this build")
    return fn  # type: ignore[no-any-return]


def emit_outputs(events: list[Event], meta: dict[str, Any], *, svg: str | None,
                 html: str | None, pcap: str | None, title: str,
                 explanation: str = "", relative: bool = True) -> None:
    """Write the SVG, HTML and pcap files asked for."""
    try:
        if svg:
            sequence_svg = _optional("tcplab.render.svg", "sequence_svg", "SVG output")
            with open(svg, "w", encoding="utf-8") as fp:
                fp.write(sequence_svg(events, title=title, relative=relative))
            click.echo(f"wrote {svg}", err=True)
        if html:
            report_html = _optional("tcplab.render.html", "report_html", "HTML output")
            with open(html, "w", encoding="utf-8") as fp:
                fp.write(report_html(events, title=title, explanation=explanation, meta=meta,
                                     relative=relative))
            click.echo(f"wrote {html}", err=True)
        if pcap:
            write_pcap = _optional("tcplab.pcap.writer", "write_pcap", "pcap output")
            write_pcap(events, pcap)
            click.echo(f"wrote {pcap}", err=True)
    except OSError as exc:
        raise click.ClickException(f"cannot write output: {exc}") from None
