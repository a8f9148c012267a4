"""``tcplab sockets``: the kernel's TCP sockets, with their timers and owners."""

from __future__ import annotations

import json
import sys
import time

import click

from tcplab.cli.params import PORT, FiniteFloat, one_of, reject_unless
from tcplab.cli.sockets_quick import FAMILIES, print_listing, rich_table
from tcplab.kernel.inspect import changed_keys, format_counts, owners_for, row_key, socket_json
from tcplab.kernel.sockets import (
    KernelSocket,
    NetlinkUnavailable,
    Snapshot,
    count_by_state,
    list_sockets,
    parse_state,
)


def _validate_states(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
                     ) -> tuple[str, ...]:
    for v in value:
        try:
            parse_state(v)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _take(states: tuple[str, ...], port: int | None, source: str, family: str) -> Snapshot:
    try:
        return list_sockets(states or None, port, source, FAMILIES[family])
    except NetlinkUnavailable as exc:
        raise click.ClickException(
            f"{exc.strerror}; try --source proc (reads /proc/net/tcp instead)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the kernel's sockets: {exc}") from None


_FAMILY = one_of("family", {"ipv4": "4", "ipv6": "6"}, "all")


@click.command("sockets")
@click.option("--state", "states", multiple=True, callback=_validate_states,
              help="Only sockets in this state (repeatable), e.g. time-wait, listen, established.")
@click.option("--port", type=PORT, default=None,
              help="Only sockets with this port at either end.")
@click.option("-4", "ipv4", is_flag=True, expose_value=False, callback=_FAMILY, help="IPv4 only.")
@click.option("-6", "ipv6", is_flag=True, expose_value=False, callback=_FAMILY, help="IPv6 only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--watch", is_flag=True, help="Live view: refresh and highlight changed rows.")
@click.option("--interval", type=FiniteFloat(0.1, 60), default=1.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--duration", type=FiniteFloat(0, 86400), default=None,
              help="Stop --watch after this many seconds (default: until Ctrl+C).")
@click.option("--processes/--no-processes", default=True, show_default=True,
              help="Find the owning process of each socket (scans /proc/*/fd).")
@click.option("--source", type=click.Choice(["auto", "netlink", "proc"]), default="auto",
              show_default=True, help="sock_diag netlink, /proc/net/tcp, or netlink else /proc.")
def sockets(states: tuple[str, ...], port: int | None, family: str, as_json: bool, watch: bool,
            interval: float, duration: float | None, processes: bool, source: str) -> None:
    """Inspect the kernel's TCP sockets: state, queues, timers (TIME-WAIT countdown), owners.

    \b
    Examples:
      tcplab sockets --state time-wait --port 8080
      tcplab sockets --watch --port 8080
      tcplab sockets --json
    """
    ctx = click.get_current_context()
    reject_unless(ctx, watch, ["interval", "duration"], "without --watch")
    reject_unless(ctx, not watch, ["as_json"], "to --watch (a live table)")
    if watch:
        _watch(states, port, family, interval, duration, processes, source)
        return
    snap = _take(states, port, source, family)
    if as_json:
        counts = count_by_state(snap.sockets)
        owners = owners_for(snap.sockets, processes)
        doc = {
            "source": snap.source,
            "count": len(snap.sockets),
            "counts": counts,
            "sockets": [socket_json(s, owners) for s in snap.sockets],
        }
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    print_listing(snap, processes)


def _watch(states: tuple[str, ...], port: int | None, family: str, interval: float,
           duration: float | None, processes: bool, source: str) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    start = time.monotonic()
    previous: dict[tuple[int, str, int, str, int], KernelSocket] = {}
    first = True

    def render() -> Group:
        nonlocal previous, first
        snap = _take(states, port, source, family)
        new, changed = changed_keys(previous, snap.sockets)
        gone = len(set(previous) - {row_key(s) for s in snap.sockets})
        if first:
            new = set()
            first = False
        previous = {row_key(s): s for s in snap.sockets}
        table = rich_table(snap.sockets, processes, set(new), set(changed))
        summary = format_counts(count_by_state(snap.sockets))
        legend = (f"{summary}  |  new: {len(new)}  changed: {len(changed)}  gone: {gone}  "
                  f"|  every {interval:g}s via {snap.source}, Ctrl+C to stop")
        return Group(table, Text(legend, style="dim"))

    try:
        with Live(render(), auto_refresh=False, screen=False) as live:
            while duration is None or time.monotonic() - start < duration:
                time.sleep(interval)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass
