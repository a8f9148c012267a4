"""The quick path of ``tcplab sockets``: one listing, printed without click.

:func:`tcplab.cli.main` hands a ``tcplab sockets`` command line here before it imports
click. :func:`quick_listing` understands only the options of a plain listing
(``--state``, ``--port``, ``-4``, ``-6``, ``--processes/--no-processes``,
``--source``), each with a valid value; for anything else (``--json``, ``--watch``,
``--help``, an unknown option, a bad value, an error while reading) it returns False
and the click command (:mod:`tcplab.cli.sockets`) runs instead, with its messages.

What this module imports is the point: sock_diag (:mod:`tcplab.kernel.sockdiag`) and
the table (:mod:`tcplab.kernel.table`), which import only the cheapest standard
modules (not even ``socket`` or ``typing``). The sockets stay columns from the netlink
records to the text. rich (and the row types) are imported only for a terminal showing
at most :data:`RICH_ROW_LIMIT` rows; json, dataclasses and click never. ``--source
proc`` and a refused netlink socket go to the click command (the /proc reader lives with
the row types). The click command prints its listings with :func:`print_listing`, so
both paths print the same table.
"""

from __future__ import annotations

import os
import sys

from tcplab.kernel import sockdiag
from tcplab.kernel.table import count_states, format_columns, format_counts

TYPE_CHECKING = False  # typing costs start-up time; mypy reads this name as True
if TYPE_CHECKING:
    from rich.table import Table

    from tcplab.kernel.sockdiag import Columns
    from tcplab.kernel.sockets import KernelSocket, Snapshot

__all__ = ["RICH_ROW_LIMIT", "print_listing", "quick_listing", "rich_table"]

# Above this many rows a terminal gets the plain table too: rich is slow for huge tables.
RICH_ROW_LIMIT = 2000

FAMILIES = {"all": (4, 6), "4": (4,), "6": (6,)}
SOURCES = ("auto", "netlink", "proc")


def _parse(args: list[str]) -> tuple[list[str], int | None, str, bool, str] | None:
    """(states, port, family, processes, source), or None if click should handle it."""
    states: list[str] = []
    port: int | None = None
    family = "all"
    processes = True
    source = "auto"
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        name, eq, value = arg.partition("=")
        if name in ("--state", "--port", "--source"):
            if not eq:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            if name == "--state":
                try:
                    sockdiag.parse_state(value)
                except ValueError:
                    return None
                states.append(value)
            elif name == "--port":
                if not value.isdigit() or int(value) > 65535:
                    return None
                port = int(value)
            else:
                if value not in SOURCES:
                    return None
                source = value
        elif eq:
            return None
        elif arg in ("-4", "-6"):
            if family not in ("all", arg[1]):
                return None  # both: click says they exclude each other
            family = arg[1]
        elif arg in ("--processes", "--no-processes"):
            processes = arg == "--processes"
        else:
            return None  # --json, --watch, --help, anything else: click decides
    return states, port, family, processes, source


def quick_listing(args: list[str]) -> bool:
    """Print the listing for ``tcplab sockets ARGS`` if it is a plain one; False if not."""
    parsed = _parse(args)
    if parsed is None:
        return False
    states, port, family, processes, source = parsed
    if source == "proc":
        return False
    # A short-lived process that builds many objects and no cycles: the cyclic collector
    # would only walk them again and again.
    import gc

    gc.disable()
    parts: list[Columns] = []
    try:
        mask = sockdiag.states_mask(states or None)
        nl = sockdiag.open_netlink()
        try:
            for fam in FAMILIES[family]:
                records = sockdiag.dump(fam, mask, nl)
                if port is not None:
                    records = sockdiag.keep_port(records, port)
                parts.append(sockdiag.to_columns(fam, records))
        finally:
            nl.close()
    except OSError:
        return False  # click's command reads again (or from /proc) and explains
    cols: Columns = parts[0] if len(parts) == 1 else tuple(  # type: ignore[assignment]
        (*a, *b) for a, b in zip(*parts, strict=True))
    try:
        if sys.stdout.isatty() and len(cols[1]) <= RICH_ROW_LIMIT:
            from tcplab.kernel.sockets import Snapshot, rows_from_columns

            print_listing(Snapshot(rows_from_columns(cols), "netlink", 0.0), processes)
        else:
            _print_plain(cols, processes, "netlink")
        sys.stdout.flush()
    except BrokenPipeError:
        # `tcplab sockets | head`: the reader left; say nothing more (Python's advice:
        # point stdout at /dev/null so that the final flush cannot fail again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    return True


def _print_plain(cols: Columns, processes: bool, source: str) -> None:
    owners = sockdiag.scan_owners(cols[12]) if processes else {}
    sys.stdout.write(format_columns(cols, owners)
                     + format_counts(count_states(cols[1])) + f"  (via {source})\n")


def print_listing(snap: Snapshot, processes: bool) -> None:
    """The table and the counts line: rich on a terminal (few rows), plain otherwise."""
    if sys.stdout.isatty() and len(snap.sockets) <= RICH_ROW_LIMIT:
        from rich.console import Console

        from tcplab.kernel.sockets import count_by_state

        console = Console()
        console.print(rich_table(snap.sockets, processes))
        console.print(format_counts(count_by_state(snap.sockets))
                      + f"  [dim](via {snap.source})[/dim]")
        return
    from tcplab.kernel.inspect import columns_of

    _print_plain(columns_of(snap.sockets), processes, snap.source)


def rich_table(sockets: list[KernelSocket], owners_enabled: bool,
               new: set[object] | None = None, changed: set[object] | None = None,
               title: str | None = None) -> Table:
    """The listing as a rich table; ``new`` and ``changed`` rows (for --watch) stand out."""
    from rich.table import Table

    from tcplab.kernel.inspect import COLUMNS, owners_for, row_cells, row_key

    owners = owners_for(sockets, owners_enabled)
    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for name in COLUMNS:
        table.add_column(name, justify="right" if name in ("Recv-Q", "Send-Q", "Uid", "Inode")
                         else "left", no_wrap=True)
    for s in sockets:
        key = row_key(s)
        style = None
        if new is not None and key in new:
            style = "bold green"
        elif changed is not None and key in changed:
            style = "bold yellow"
        elif s.state == "TIME-WAIT":
            style = "cyan"
        table.add_row(*row_cells(s, owners), style=style)
    return table
