"""``tcplab pcap``: draw the TCP connections of a capture file.

``tcplab pcap diagram CAPTURE`` reads a pcap or pcapng file, follows each TCP
connection, infers both endpoints' states from the segments, and prints the
exchange as text, or writes the SVG sequence diagram (``--svg F``) or the
self-contained HTML report (``--html F``).  A damaged capture is reported in
one line naming the packet, and what was decoded before it is still drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from tcplab.cli.params import OutputFile, reject_unless
from tcplab.pcap.reader import CaptureError, read_capture
from tcplab.render.model import flag_words, ordered

Event = dict[str, Any]


@click.group("pcap")
def pcap() -> None:
    """Read capture files (pcap, pcapng) and draw their TCP connections."""


def connections(events: list[Event]) -> list[str]:
    """Connection names ("a:p-b:p", initiator first) in order of first appearance."""
    seen: list[str] = []
    for e in events:
        if e.get("kind") == "segment":
            a, b = str(e["src"]), str(e["dst"])
            name = str(e.get("conn") or f"{a}-{b}")
            rev = "-".join(reversed(name.split("-", 1)))
            if name not in seen and rev not in seen:
                seen.append(name)
    return seen


def select_connection(events: list[Event], name: str) -> list[Event]:
    """The events of one connection (either direction's name)."""
    a, _, b = name.partition("-")
    ends = {a, b}
    return [e for e in events
            if (e.get("kind") == "segment" and {e.get("src"), e.get("dst")} == ends)
            or (e.get("kind") in ("state", "timer") and e.get("host") in ends
                and set(str(e.get("conn", "")).split("-", 1)) == ends)]


def text_lines(events: list[Event]) -> list[str]:
    """A plain listing: one line per segment, state changes indented under it."""
    out: list[str] = []
    for e in ordered(events):
        kind = e.get("kind")
        t = float(e.get("t", 0.0))
        if kind == "segment" and e.get("event") in ("send", "recv"):
            ack = f" ack={e['ack']}" if "A" in str(e.get("flags", "")) else ""
            extra = " (retransmission)" if e.get("retrans") else ""
            out.append(f"{t:12.6f}  {e['src']:>24} -> {e['dst']:<24} "
                       f"{flag_words(str(e.get('flags', ''))):<10} seq={e['seq']}{ack} "
                       f"len={e['len']} win={e['win']}{extra}")
        elif kind == "state":
            out.append(f"{t:12.6f}      {e['host']}: {e['from']} -> {e['to']}"
                       f"  ({e.get('cause', '')})")
        elif kind == "note":
            out.append(f"{t:12.6f}  # {e.get('text', '')}")
    return out


@pcap.command("diagram")
@click.argument("capture", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--svg", "svg_path", type=OutputFile(path_type=Path),
              help="Write the SVG sequence diagram to this file.")
@click.option("--html", "html_path", type=OutputFile(path_type=Path),
              help="Write the self-contained HTML report to this file.")
@click.option("--text", "as_text", is_flag=True,
              help="Print the exchange as text (the default without --svg/--html).")
@click.option("--conn", "conn_index", type=click.IntRange(min=1), default=None,
              help="Draw only the N-th connection (from 1; see the text listing).")
@click.option("--relative/--absolute", default=False,
              help="Sequence numbers relative to each side's ISN (default: absolute).")
@click.option("--theme", type=click.Choice(["light", "dark"]), default="light")
def diagram(capture: Path, svg_path: Path | None, html_path: Path | None, as_text: bool,
            conn_index: int | None, relative: bool, theme: str) -> None:
    """Draw the TCP connections of CAPTURE with both endpoints' inferred states."""
    reject_unless(click.get_current_context(), svg_path is not None or html_path is not None,
                  ["relative", "theme"], "without --svg or --html (the text lists raw numbers)")
    events, problem = load(capture)
    conns = connections(events)
    if conn_index is not None:
        if not 1 <= conn_index <= len(conns):
            raise click.ClickException(
                f"--conn {conn_index}: the capture has {len(conns)} TCP connection(s)")
        events = select_connection(events, conns[conn_index - 1])
    title = f"{os.path.basename(capture)}"
    if conn_index is not None:
        title += f" — {conns[conn_index - 1]}"
    wrote = False
    if svg_path is not None:
        from tcplab.render.svg import sequence_svg
        _write(svg_path, sequence_svg(events, theme=theme, title=title, relative=relative))
        wrote = True
    if html_path is not None:
        from tcplab.render.html import report_html
        expl = ("Read from a capture file. States are inferred from the segments on the "
                "wire (tcplab.pcap.follow); the end of TIME-WAIT is not visible on the wire.")
        if problem:
            expl += "\n\n" + problem
        _write(html_path, report_html(events, title=title, explanation=expl, theme=theme,
                                      meta={"capture": str(capture),
                                            "connections": len(conns)},
                                      relative=relative))
        wrote = True
    if as_text or not wrote:
        click.echo(f"{len(conns)} TCP connection(s):")
        for k, name in enumerate(conns, 1):
            click.echo(f"  {k}. {name}")
        for line in text_lines(events):
            click.echo(line)
    if problem:
        raise click.ClickException(problem + " (connections decoded before it were drawn)")


def load(capture: Path) -> tuple[list[Event], str | None]:
    """Events of a capture, and the one-line error if it could not be read to the end."""
    if not capture.exists():
        raise click.ClickException(f"{capture}: no such file")
    try:
        return read_capture(capture), None
    except CaptureError as exc:
        if not exc.events:
            raise click.ClickException(f"{capture}: {exc}") from None
        return exc.events, f"{capture}: {exc}"


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
