"""``tcplab watch``: the kernel's own TCP, live, for any program on the machine.

States come from the kernel's tracepoints (a private tracefs instance, filtered in the
kernel), segments from a packet capture, timewait mini-sockets from sock_diag; one line
per event as it happens, then ``--json``, ``--svg``, ``--html`` and ``--pcap`` from the
same trace (:mod:`tcplab.kernel.session`, :mod:`tcplab.kernel.watch`; docs/kernel.md).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import signal
import sys
from typing import Any, TextIO

import click

from tcplab.cli.common import emit_outputs
from tcplab.kernel.session import WatchSession
from tcplab.kernel.watch import WatchFilter, texts
from tcplab.signals import interrupt_handled, interrupt_handler, raise_if_interrupted
from tcplab.trace import Event, to_json_event
from tcplab.wire.tcp import parse_flags

_CAP_DAC_OVERRIDE = 1
_CAP_NET_ADMIN = 12
_CAP_NET_RAW = 13


def _capabilities() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def privileged() -> bool:
    """Root with its capabilities: CAP_NET_ADMIN and CAP_NET_RAW (the capture), and the
    files of tracefs, which belong to root (uid 0, or CAP_DAC_OVERRIDE)."""
    caps = _capabilities()
    if not (caps & (1 << _CAP_NET_ADMIN) and caps & (1 << _CAP_NET_RAW)):
        return False
    return os.geteuid() == 0 or bool(caps & (1 << _CAP_DAC_OVERRIDE))


def needs_root_message(command: str) -> str:
    """One line: what is missing and the command line that works."""
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) or command
    return (f"tcplab {command} needs root: it reads the kernel's tracepoints (tracefs) and "
            f"captures packets (CAP_NET_RAW). Run: sudo tcplab {argv}")


class LiveLines:
    """One line per trace event, sequence numbers relative to each side's ISN."""

    def __init__(self, out: TextIO, width: int | None, kinds: tuple[str, ...] = (),
                 prefix: str = "") -> None:
        self.out = out
        self.width = width
        self.kinds = kinds  # only these kinds of event (default: all)
        self.prefix = prefix
        self.isn: dict[str, int] = {}

    def __call__(self, ev: Event) -> None:
        line = self.format(ev)
        if line is None or (self.kinds and ev["kind"] not in self.kinds):
            return
        line = self.prefix + line
        if self.width is not None and len(line) > self.width // 2:
            from rich.cells import cell_len, set_cell_size  # CJK characters are 2 columns

            if cell_len(line) > self.width:
                line = set_cell_size(line, self.width - 1) + "…"
        self.out.write(line + "\n")
        self.out.flush()

    def _rel(self, endpoint: str, value: int) -> int:
        base = self.isn.get(endpoint)
        return value if base is None else (value - base) & 0xFFFFFFFF

    def format(self, ev: Event) -> str | None:
        t = f"{ev['t']:+10.6f}"
        kind = ev["kind"]
        if kind == "state":
            return f"{t}  {ev['host']:<6}  {ev['from']} -> {ev['to']}  ({ev['conn']}; {ev['cause']})"
        if kind == "segment" and ev.get("event") == "send":
            flags = str(ev["flags"])
            src, dst = str(ev["src"]), str(ev["dst"])
            if parse_flags(flags) & 0x02:  # SYN: this side's ISN
                self.isn.setdefault(src, int(ev["seq"]))
            words = "+".join(w for letter, w in (("S", "SYN"), ("F", "FIN"), ("R", "RST"),
                                                  ("P", "PSH"), ("A", "ACK"))
                             if letter in flags) or "-"
            parts = [f"seq={self._rel(src, int(ev['seq']))}"]
            if "A" in flags:
                parts.append(f"ack={self._rel(dst, int(ev['ack']))}")
            parts.append(f"len={ev['len']}")
            parts.append(f"win={ev['win']}")
            if "S" in flags and ev.get("opts"):
                parts.append("<" + ", ".join(str(o) for o in ev["opts"]) + ">")
            other = "server" if ev["host"] == "client" else "client"
            return (f"{t}  {ev['host']:<6} -> {other:<6}  {words:<9} {' '.join(parts)}"
                    f"  {src} > {dst}")
        if kind == "segment" and ev.get("event") == "drop":
            return f"{t}  {ev['host']:<6}  drops segment #{ev['id']}: {ev['reason']}"
        if kind == "note":
            return f"{t}  note    {ev['text']}"
        return None


def _validate_host(ctx: click.Context, param: click.Parameter, value: str | None
                   ) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IPv4 or IPv6 address") from None


@click.command("watch")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Only connections with this port at either end (filtered in the kernel).")
@click.option("--host", "host_addr", default=None, callback=_validate_host,
              help="Only connections with this address at either end.")
@click.option("--pid", type=click.IntRange(1, None), default=None,
              help="Only the connections of this process (its sockets, connects, listeners).")
@click.option("--duration", type=click.FloatRange(0, 86400), default=None,
              help="Stop after this many seconds (default: until Ctrl+C).")
@click.option("--json", "json_out", is_flag=True,
              help="At the end, print the whole trace as JSON (live lines go to stderr).")
@click.option("--svg", type=click.Path(dir_okay=False), default=None,
              help="At the end, write the sequence diagram as SVG.")
@click.option("--html", type=click.Path(dir_okay=False), default=None,
              help="At the end, write a self-contained HTML report.")
@click.option("--pcap", type=click.Path(dir_okay=False), default=None,
              help="At the end, write the captured segments to a pcap file.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Language of the explanations.")
@click.option("--poll", "force_poll", is_flag=True, hidden=True,
              help="Use the sock_diag polling fallback even where tracefs works.")
def watch(port: int | None, host_addr: str | None, pid: int | None, duration: float | None,
          json_out: bool, svg: str | None, html: str | None, pcap: str | None, lang: str,
          force_poll: bool) -> None:
    """The kernel's own TCP, live: every state change, segment, retransmission and reset.

    \b
    Examples:
      sudo tcplab watch --port 8080                   # then use port 8080 from anything
      sudo tcplab watch --pid 1234 --duration 10 --html run.html
      sudo tcplab watch --port 8080 --json > trace.json

    States come from the tracepoint sock:inet_sock_set_state (a private tracefs
    instance, events filtered in the kernel and removed afterwards), segments from a
    packet capture, TIME-WAIT from sock_diag (the kernel hands a closing socket to a
    timewait mini-socket that the tracepoint does not follow). Needs root.
    """
    if not privileged():
        raise click.ClickException(needs_root_message("watch"))
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        raise click.ClickException(f"no process {pid}")

    # SIGTERM: the same orderly stop as Ctrl+C; both remembered, so that one raised where
    # Python swallows it (during an import) still stops the watch (signals.py)
    signal.signal(signal.SIGTERM, interrupt_handler)
    signal.signal(signal.SIGINT, interrupt_handler)
    live_out = sys.stderr if json_out else sys.stdout
    width = shutil.get_terminal_size().columns if live_out.isatty() else None
    lines = LiveLines(live_out, width)

    def notice(text: str) -> None:
        click.echo(f"notice: {text}", err=True)

    filt = WatchFilter(ports=(port,) if port else (), host=host_addr, pid=pid)
    session = WatchSession(filt, lang=lang, on_event=lines, notice=notice,
                           use_tracefs=not force_poll)
    what = " ".join(x for x in (f"port {port}" if port else "",
                                f"host {host_addr}" if host_addr else "",
                                f"pid {pid}" if pid else "") if x) or texts(
        "every_connection", lang)
    source: dict[str, Any] = {}
    try:
        try:
            session.open()
        except OSError as exc:
            raise click.ClickException(f"cannot watch: {exc.strerror or exc}") from None
        source = session.meta()
        until = (texts("for_seconds", lang, s=f"{duration:g}") if duration is not None
                 else texts("until_ctrl_c", lang))
        click.echo(texts("watching", lang, what=what, source=session.source,
                         capture=texts("capture_on", lang) if session.capture else "",
                         until=until), err=True)
        raise_if_interrupted()
        why = session.run(duration)
    except KeyboardInterrupt:
        interrupt_handled()
        why = "interrupted"
    finally:
        session.close()
    assert session.watch is not None or why == "interrupted"
    if session.watch is None:
        click.echo("stopped.", err=True)
        return
    events = session.watch.events
    nconn = len({e["conn"] for e in events if e["kind"] == "state"})
    nseg = sum(1 for e in events if e["kind"] == "segment" and e.get("event") == "send")
    click.echo(texts("finished", lang, how=texts("done" if why == "duration" else "stopped",
                                                 lang),
                     conns=nconn, segs=nseg,
                     cleanup=texts("instance_removed" if source.get("tracepoints")
                                   else "nothing_left", lang)), err=True)
    options = {"port": port, "host": host_addr, "pid": pid, "duration": duration}
    meta: dict[str, Any] = {"command": "watch",
                            **{k: v for k, v in options.items() if v is not None}, **source}
    meta["segments_seen"] = session.watch.segments_seen
    meta["segments_not_kept"] = session.watch.dropped_events  # beyond the trace's bound
    if json_out:
        doc = {"schema": "tcplab-trace/1", "meta": meta,
               "events": [to_json_event(e) for e in events]}
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    title = f"tcplab watch {what}"
    emit_outputs(events, meta, svg=svg, html=html, pcap=pcap, title=title)


__all__ = ["LiveLines", "needs_root_message", "privileged", "watch"]
