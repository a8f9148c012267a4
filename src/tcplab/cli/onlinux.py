"""``--on linux``: ``tcplab demo`` and ``tcplab scenario run`` on two Linux kernels.

The option lives on both commands (:func:`on_option`); when it says ``linux`` they hand
over here. The lesson runs in two network namespaces joined by tcplab itself
(:mod:`tcplab.onlinux`), in real time, and is drawn and explained like a simulator run:
the same diagram, notes and findings, from the kernel's own trace. Root is needed; a
run without it prints one line saying so and how to run it. Ctrl+C at any moment
removes everything the run made and exits.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tcplab.cli.common import OptionError, echo_line, emit_outputs, print_diagram, resolve_width
from tcplab.i18n import seconds, wrap
from tcplab.i18n import text as tr

if TYPE_CHECKING:  # the lesson machinery is imported only when --on linux is used
    from tcplab.faults import FaultSpec
    from tcplab.onlinux.run import Lesson, LinuxResult
    from tcplab.scenarios.base import Switches
    from tcplab.trace import Event

__all__ = ["demo_on_linux", "on_option", "run_linux", "scenario_on_linux"]

F = Callable[..., Any]


def on_option(func: F) -> F:
    """``--on sim|linux``."""
    return click.option(
        "--on", "on", type=click.Choice(["sim", "linux"]), default="sim", show_default=True,
        help="Where the life runs: the simulator (virtual time), or two Linux kernels in "
             "network namespaces joined by tcplab (real time, needs root; docs/kernel.md)."
    )(func)


def _check_sysctls(sysctls: tuple[str, ...]) -> None:
    from tcplab.engine.profiles import ConfigError
    from tcplab.onlinux.testbed import sysctl_writes

    try:
        sysctl_writes(sysctls)
    except ConfigError as exc:
        raise OptionError(str(exc)) from None


def run_linux(lesson: Lesson, *, sysctls: tuple[str, ...], faults: tuple[FaultSpec, ...],
              lang: str, command: str, quiet: bool = False) -> LinuxResult:
    """Run a lesson with Ctrl+C and SIGTERM as an orderly stop, errors as one line."""
    from tcplab.onlinux.run import needs_root, run_lesson
    from tcplab.onlinux.testbed import LinuxUnavailable

    why_not = needs_root(command)
    if why_not is not None:
        raise click.ClickException(why_not)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the same orderly stop as Ctrl+C

    signal.signal(signal.SIGTERM, on_sigterm)

    def notice(line: str) -> None:
        click.echo(f"notice: {line}", err=True)

    if not quiet:
        click.echo(tr("onlinux.starting", lang, kernel=os.uname().release,
                      limit=seconds(lesson.limit, lang)), err=True)
    try:
        return run_lesson(lesson, sysctls=sysctls, faults=faults, lang=lang, notice=notice,
                          command=command)
    except LinuxUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _finish_line(res: LinuxResult, lang: str) -> str:
    key = "onlinux.done.limit" if res.why == "limit" else "onlinux.done"
    return tr(key, lang, wall=seconds(round(res.wall, 1), lang),
              kernel=str(res.meta.get("kernel", "")))


def _print(res: LinuxResult, events: list[Event], *, title: str, lang: str, absolute: bool,
           width: str | None, delay: float, faults: tuple[FaultSpec, ...]) -> None:
    from tcplab.render.narrate import Narrator, RunInfo
    from tcplab.scenarios import findings

    cols = resolve_width(width, lang)
    info = RunInfo(delay=delay, time_wait=60.0, source="linux")
    print_diagram(res.events, lang=lang, relative=not absolute, width=cols, title=title,
                  narrator=Narrator(res.events, lang, info))
    click.echo("")
    for line in findings.lines(events, lang, delay, [f.text() for f in faults]):
        echo_line(line, cols)
    for line in wrap(_finish_line(res, lang), cols):
        click.echo(line)


def _meta(res: LinuxResult, command: str, **more: Any) -> dict[str, Any]:
    return {"command": command, "on": "linux", **more, **res.meta,
            "why_ended": res.why, "wall_seconds": round(res.wall, 3)}


def _dump(events: list[Event], meta: dict[str, Any]) -> None:
    import json

    doc = {"schema": "tcplab-trace/1", "meta": meta, "events": events}
    sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def demo_on_linux(ctx: click.Context, *, delay: float, think: float | None,
                  sizes: tuple[int | None, int | None], exam: bool, sysctls: tuple[str, ...],
                  faults: tuple[FaultSpec, ...], json_out: bool, lang: str, absolute: bool,
                  width: str | None, svg: str | None, html: str | None,
                  pcap: str | None) -> None:
    """``tcplab demo --on linux``."""
    from tcplab.cli.params import reject_unless
    from tcplab.onlinux.lessons import demo_lesson
    from tcplab.render.narrate import RunInfo
    from tcplab.scenarios import findings
    from tcplab.trace import to_json_event

    reject_unless(ctx, False, ["seed", "isn", "msl", "profile", "run_all"],
                  "with --on linux (a kernel picks its own ISNs and ports, keeps TIME-WAIT a "
                  "fixed 60 s and is its own profile: change it with --sysctl)")
    _check_sysctls(sysctls)
    lesson = demo_lesson(delay, sysctls, request=sizes[0], response=sizes[1], think=think,
                         exam=exam)
    res = run_linux(lesson, sysctls=sysctls, faults=faults, lang=lang,
                    command="demo --on linux")
    events = [to_json_event(e) for e in res.events]
    fault_texts = [f.text() for f in faults]
    meta = _meta(res, "demo", delay=delay, rtt=2 * delay, think=think, bytes=list(sizes),
                 findings={"timeline": findings.timeline(events),
                           "faults": findings.faults(events, fault_texts),
                           "outcome": findings.outcome(events)})
    title = tr("onlinux.title.demo", lang, kernel=os.uname().release,
               delay=seconds(delay, lang))
    if json_out:
        _dump(events, meta)
    else:
        _print(res, events, title=title, lang=lang, absolute=absolute, width=width,
               delay=delay, faults=faults)
    emit_outputs(res.events, meta, svg=svg, html=html, pcap=pcap, title=title,
                 relative=not absolute, lang=lang,
                 info=RunInfo(delay=delay, time_wait=60.0, source="linux"))


def scenario_on_linux(ctx: click.Context, *, name: str, switches: Switches,
                      sysctls: tuple[str, ...], faults: tuple[FaultSpec, ...], json_out: bool,
                      lang: str, absolute: bool, width: str | None, svg: str | None,
                      html: str | None, pcap: str | None) -> None:
    """``tcplab scenario run NAME --on linux``."""
    from tcplab.cli.params import reject_unless
    from tcplab.onlinux.lessons import LessonError, lesson_for, linux_sysctls
    from tcplab.render.narrate import RunInfo
    from tcplab.scenarios import findings
    from tcplab.scenarios.texts import scenario_text
    from tcplab.trace import to_json_event

    reject_unless(ctx, False, ["seed", "profile", "variant", "plot"],
                  "with --on linux (a kernel picks its own ISNs and ports and is its own "
                  "profile: change it with --sysctl)")
    all_sysctls = (*linux_sysctls(switches), *sysctls)
    _check_sysctls(all_sysctls)
    try:
        lesson = lesson_for(name, switches, all_sysctls)
    except LessonError as exc:
        raise OptionError(str(exc)) from None
    res = run_linux(lesson, sysctls=all_sysctls, faults=faults, lang=lang,
                    command=f"scenario run {name} --on linux")
    events = [to_json_event(e) for e in res.events]
    fault_texts = [f.text() for f in faults]
    meta = _meta(res, "scenario", scenario=name, flags=switches.flags(),
                 findings={"timeline": findings.timeline(events),
                           "faults": findings.faults(events, fault_texts),
                           "outcome": findings.outcome(events)})
    title = tr("onlinux.title.scenario", lang, name=name, kernel=os.uname().release,
               summary=scenario_text(name, "summary", lang) or "")
    if json_out:
        _dump(events, meta)
    else:
        _print(res, events, title=title, lang=lang, absolute=absolute, width=width,
               delay=lesson.delay, faults=faults)
        cols = resolve_width(width, lang)
        for line in wrap(tr("onlinux.compare.hint", lang, name=name), cols):
            click.echo(line)
    emit_outputs(res.events, meta, svg=svg, html=html, pcap=pcap, title=title,
                 relative=not absolute, lang=lang,
                 info=RunInfo(delay=lesson.delay, time_wait=60.0, scenario=name,
                              source="linux"))
