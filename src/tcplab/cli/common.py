"""Options and output helpers shared by the commands that run a trace.

Everything printed here comes from the text catalogues (:mod:`tcplab.i18n`)
in the language of ``--lang``; the diagram follows the terminal's width
unless ``--width`` says otherwise.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tcplab.cli.params import OutputFile
from tcplab.engine.config import TcpConfig
from tcplab.faults import FaultSpec
from tcplab.i18n import text as tr
from tcplab.i18n import wrap
from tcplab.render.narrate import Narrator, RunInfo
from tcplab.render.terminal import MAX_WIDTH, MIN_WIDTH, footer, render
from tcplab.trace import Event

F = TypeVar("F", bound=Callable[..., Any])


class OptionError(click.ClickException):
    """A bad option value: one line on stderr, exit status 2 (as click's own usage errors)."""

    exit_code = 2


def trace_options(func: F) -> F:
    """--json, --lang, --absolute, --width, --svg, --html, --pcap."""
    opts = [
        click.option("--json", "json_out", is_flag=True,
                     help="Print the whole trace as JSON (schema: docs/trace.md)."),
        click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
                     help="Language of the diagram, the explanations and the pictures."),
        click.option("--absolute", is_flag=True,
                     help="Absolute sequence numbers (default: relative to each ISN)."),
        click.option("--width", default=None, metavar="COLUMNS",
                     help=f"Diagram width in columns ({MIN_WIDTH}-{MAX_WIDTH}; "
                          "default: the terminal's)."),
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


def environment_options(func: F) -> F:
    """--profile, --sysctl and the faults --drop, --delay, --dup (see tcplab.faults)."""
    opts = [
        click.option("--profile", type=click.Choice(["rfc", "linux"]), default="rfc",
                     show_default=True,
                     help="The TCP the hosts run: RFC 9293 defaults, or Linux 6.x's "
                          "(docs/linux.md)."),
        click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
                     help="A Linux setting by its sysctl name, e.g. "
                          "net.ipv4.tcp_syn_retries=2 (repeatable)."),
        click.option("--drop", "drops", multiple=True, metavar="WHAT",
                     help="Lose a segment of the life: syn, syn-ack, ack, data, fin, fin-ack, "
                          "fin2, last-ack; client:/server: before, :N or :all after "
                          "(e.g. syn:all). Repeatable."),
        click.option("--delay", "delays", multiple=True, metavar="WHAT=SECONDS",
                     help="Hold a segment of the life in the network, e.g. syn-ack=3."),
        click.option("--dup", "dups", multiple=True, metavar="WHAT",
                     help="Deliver a segment of the life twice, e.g. fin."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def parse_environment(profile: str, sysctls: tuple[str, ...], drops: tuple[str, ...],
                      delays: tuple[str, ...], dups: tuple[str, ...]
                      ) -> tuple[TcpConfig, tuple[FaultSpec, ...]]:
    """The configuration and the faults the options ask for (one clear error if not)."""
    from tcplab.engine.profiles import ConfigError, configured
    from tcplab.faults import FaultError, parse

    try:
        cfg = configured(profile, sysctls)
        faults = tuple([parse("drop", d) for d in drops] + [parse("delay", d) for d in delays]
                       + [parse("dup", d) for d in dups])
    except (ConfigError, FaultError) as exc:
        raise OptionError(str(exc)) from None
    return cfg, faults


def resolve_width(value: int | str | None, lang: str = "en") -> int:
    """``--width`` checked (a whole number of columns in range), or the terminal's width."""
    if value is None or value == "":
        cols = shutil.get_terminal_size((100, 24)).columns
        return max(min(cols, MAX_WIDTH), MIN_WIDTH)
    try:
        n = int(str(value).strip())
    except ValueError:
        n = -1
    if not MIN_WIDTH <= n <= MAX_WIDTH:
        raise OptionError(tr("err.width", lang, value=str(value), lo=MIN_WIDTH, hi=MAX_WIDTH))
    return n


def echo_wrapped(text: str, width: int, indent: int = 2) -> None:
    """A paragraph wrapped by display cells (Chinese wraps between characters)."""
    for line in wrap(text, max(width - indent, 20)):
        click.echo(" " * indent + line)


def echo_line(line: str, width: int) -> None:
    """One line as it is if it fits; else wrapped, its continuation indented past
    the line's own indent."""
    from tcplab.i18n import width as cells
    if cells(line) <= width:
        click.echo(line)
        return
    lead = len(line) - len(line.lstrip(" "))
    for k, part in enumerate(wrap(line.strip(), max(width - lead - 2, 20))):
        click.echo(" " * (lead if k == 0 else lead + 2) + part)


def print_diagram(events: list[Event], *, lang: str, relative: bool, width: int | str | None,
                  title: str | None = None, narrator: Narrator | None = None,
                  finals: bool = True) -> None:
    cols = resolve_width(width, lang)
    nar = narrator or Narrator(events, lang)
    if title:
        for line in wrap(title, cols):
            click.echo(line)
        click.echo("")
    for line in render(events, width=cols, relative=relative, lang=lang, narrator=nar):
        click.echo(line)
    click.echo("")
    for line in wrap(footer(events, lang, finals=finals), cols):
        click.echo(line)


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
                 explanation: str = "", relative: bool = True, lang: str = "en",
                 info: RunInfo | None = None, subtitle: str = "",
                 sections: list[tuple[str, str]] | None = None,
                 facts: list[tuple[str, str]] | None = None,
                 outcome: list[tuple[str, str]] | None = None) -> None:
    """Write the SVG, HTML and pcap files asked for, in ``lang``."""
    info = info or RunInfo.of_meta(meta)
    narrator = Narrator(events, lang, info) if (svg or html) else None
    try:
        if svg:
            sequence_svg = _optional("tcplab.render.svg", "sequence_svg", "SVG output")
            with open(svg, "w", encoding="utf-8") as fp:
                fp.write(sequence_svg(events, title=title, relative=relative, lang=lang,
                                      narrator=narrator))
            click.echo(tr("cli.wrote", lang, path=svg), err=True)
        if html:
            report_html = _optional("tcplab.render.html", "report_html", "HTML output")
            with open(html, "w", encoding="utf-8") as fp:
                fp.write(report_html(events, title=title, explanation=explanation, meta=None,
                                     relative=relative, lang=lang, narrator=narrator,
                                     subtitle=subtitle, sections=sections or [],
                                     facts=facts or [], outcome=outcome or []))
            click.echo(tr("cli.wrote", lang, path=html), err=True)
        if pcap:
            write_pcap = _optional("tcplab.pcap.writer", "write_pcap", "pcap output")
            write_pcap(events, pcap)
            click.echo(tr("cli.wrote", lang, path=pcap), err=True)
    except OSError as exc:
        raise click.ClickException(tr("err.write", lang, err=str(exc))) from None
