"""``tcplab lab``: practice labs on the kernel's TCP, measured live on loopback."""

from __future__ import annotations

import json
import threading

import click
from rich.console import Console
from rich.table import Table

from tcplab.cli.params import OutputFile
from tcplab.kernel.inspect import COLUMNS, owners_for, row_cells
from tcplab.kernel.sockets import KernelSocket
from tcplab.lab.closestorm import MAX_REQUESTS, MODES, run_close_storm
from tcplab.lab.timewait import LabError, free_port, run_timewait_lab, wait_for_expiry
from tcplab.trace import Event


@click.group("lab")
def lab() -> None:
    """Practice labs on kernel sockets (loopback only, bounded in time)."""


def _socket_table(rows: list[KernelSocket]) -> Table:
    """The columns that matter for the lab: state, both ends, timer, owner."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    keep = ("State", "Local", "Peer", "Timer", "Process")
    for name in keep:
        table.add_column(name, no_wrap=True)
    owners = owners_for(rows)
    index = [COLUMNS.index(name) for name in keep]
    for s in rows:
        cells = row_cells(s, owners)
        table.add_row(*(cells[i] for i in index),
                      style="bold cyan" if s.state == "TIME-WAIT" else None)
    return table


class _KernelWatcher:
    """``tcplab watch`` on the lab's ports in a thread: state changes as lines, live."""

    def __init__(self, ports: tuple[int, ...], quiet: bool) -> None:
        import sys

        from tcplab.cli.watch import LiveLines
        from tcplab.kernel.session import WatchSession
        from tcplab.kernel.watch import WatchFilter

        lines = LiveLines(sys.stdout, None, kinds=("state", "note"), prefix="  kernel │ ")
        self.session = WatchSession(WatchFilter(ports=ports),
                                    on_event=None if quiet else lines,
                                    notice=lambda text: click.echo(f"notice: {text}",
                                                                   err=True))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.session.run,
                                       kwargs={"stop": self.stop_event}, daemon=True)

    def start(self) -> None:
        try:
            self.session.open()
        except OSError as exc:
            raise click.ClickException(f"cannot watch the kernel: {exc.strerror or exc}"
                                       ) from None
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(5.0)
        self.session.close()

    def events(self) -> list[Event]:
        return self.session.watch.events if self.session.watch is not None else []


@lab.command("timewait")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port of the first server (the article's 8080).")
@click.option("--second-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the second round (default: a free port the kernel picks).")
@click.option("--wait", "wait_expiry", is_flag=True,
              help="Then watch TIME-WAIT expire (up to 75 s) and bind without SO_REUSEADDR.")
@click.option("--json", "as_json", is_flag=True, help="Print the measured matrix as JSON.")
@click.option("--watch", "watch_kernel", is_flag=True,
              help="Also show the kernel's own TCP live (tracepoints, needs root): the "
                   "Ctrl+C'd server's connections entering TIME-WAIT as it happens.")
def timewait(port: int, second_port: int | None, wait_expiry: bool, as_json: bool,
             watch_kernel: bool) -> None:
    """Ctrl+C an HTTP server with a client connected, see TIME-WAIT, try SO_REUSEADDR.

    The source article's practice, each outcome measured on this kernel over loopback.
    """
    console = Console(highlight=False)
    step = 0
    if watch_kernel:
        from tcplab.cli.watch import needs_root_message, privileged

        if not privileged():
            raise click.ClickException(needs_root_message("lab timewait --watch"))
        if second_port is None:
            second_port = free_port("127.0.0.1")
    watcher = _KernelWatcher((port, second_port) if second_port else (port,), as_json) \
        if watch_kernel else None

    def narrate(title: str, text: str, rows: list[KernelSocket] | None) -> None:
        nonlocal step
        if as_json:
            return
        step += 1
        console.print(f"\n[bold]Step {step}. {title}[/bold]")
        console.print(text)
        if rows:
            console.print(_socket_table(rows))

    try:
        if watcher is not None:
            watcher.start()
        result = run_timewait_lab("127.0.0.1", port, second_port, narrate)
        if not as_json:
            table = Table(title="Restart matrix (measured)", header_style="bold")
            for name in ("port", "old SO_REUSEADDR", "new SO_REUSEADDR", "TIME-WAIT", "result"):
                table.add_column(name)
            for a in result.attempts:
                outcome = ("[green]bound[/green]" if a.ok
                           else f"[red]{a.error}[/red] at {a.failed_at}()")
                table.add_row(str(a.port), "on" if a.old_reuseaddr else "off",
                              "on" if a.new_reuseaddr else "off", str(a.time_wait_sockets),
                              outcome)
            console.print()
            console.print(table)
            console.print("On Linux SO_REUSEADDR helps only when the old socket had it too; "
                          "the article's fix works because its server sets it on every run.")
        if wait_expiry:
            def tick(rows: list[KernelSocket]) -> None:
                if not as_json and rows:
                    left = max(s.expires_ms for s in rows) / 1000
                    console.print(f"  TIME-WAIT on port {port}: {len(rows)} socket(s), "
                                  f"{left:.1f} s left")

            result.expiry = wait_for_expiry("127.0.0.1", port, narrate, tick, interval=5.0)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if watcher is not None:
            watcher.stop()
    if as_json:
        doc = result.to_json()
        if watcher is not None:
            from tcplab.trace import to_json_event

            doc["kernel_trace"] = [to_json_event(e) for e in watcher.events()]
        click.echo(json.dumps(doc, indent=1))


@lab.command("close-storm")
@click.option("-n", "--requests", "n", type=click.IntRange(1, MAX_REQUESTS), default=500,
              show_default=True, help="Requests per mode.")
@click.option("--samples", type=click.IntRange(1, 50), default=10, show_default=True)
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES),
              help="Run only this mode (repeatable; default: all three).")
@click.option("--json", "as_json", is_flag=True, help="Print the samples as JSON.")
@click.option("--plot", type=OutputFile(), default=None,
              help="Also write TIME_WAIT sockets at the server over the run as an SVG chart.")
def close_storm(n: int, samples: int, modes: tuple[str, ...], as_json: bool,
                plot: str | None) -> None:
    """N short requests: server closes vs client closes vs keep-alive; who gets TIME-WAIT?"""
    try:
        results = run_close_storm(n, modes or MODES, samples)
    except OSError as exc:
        raise click.ClickException(f"close storm failed: {exc}") from None
    if plot:
        from tcplab.render.chart import line_chart_svg

        series = {f"{r.mode} (server)": [(float(s.requests), float(s.server_time_wait))
                                         for s in r.samples] for r in results}
        try:
            with open(plot, "w", encoding="utf-8") as fp:
                fp.write(line_chart_svg(series, title="TIME-WAIT sockets at the server",
                                        xlabel="requests done", ylabel="TIME_WAIT sockets"))
        except OSError as exc:
            raise click.ClickException(f"cannot write {plot}: {exc}") from None
        click.echo(f"wrote {plot}", err=True)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=1))
        return
    console = Console(highlight=False)
    table = Table(title=f"TIME-WAIT sockets while {n} requests run (server / client side)",
                  header_style="bold")
    table.add_column("requests", justify="right")
    for r in results:
        table.add_column(f"{r.mode}\nserver / client", justify="right")
    length = max(len(r.samples) for r in results)
    for i in range(length):
        cells = []
        first = None
        for r in results:
            s = r.samples[min(i, len(r.samples) - 1)]
            first = first if first is not None else s.requests
            cells.append(f"{s.server_time_wait} / {s.client_time_wait}")
        label = "after" if i == length - 1 else str(first)
        table.add_row(label, *cells)
    console.print(table)
    for r in results:
        last = r.samples[-1]
        console.print(f"{r.mode}: {r.requests} requests in {r.elapsed_s:.2f} s on port {r.port}; "
                      f"TIME-WAIT at the server {last.server_time_wait}, "
                      f"at the client {last.client_time_wait}.")
    console.print("Whoever closes first keeps TIME-WAIT (60 s on Linux): a server that closes "
                  "every connection piles them up; keep-alive avoids almost all of them.")
