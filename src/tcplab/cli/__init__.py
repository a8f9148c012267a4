"""The ``tcplab`` command.

The click application is in :mod:`tcplab.cli.app`: each sub-command lives in its own
module of this package and is imported only when its command runs.

:func:`main` (the console script) looks at the command line before importing click:
a plain ``tcplab sockets`` listing (no ``--json``, no ``--watch``, no ``--help``) goes
to :mod:`tcplab.cli.sockets_quick`, which imports only the socket reader and prints the
same table. Click alone costs more than reading and formatting 10,000 sockets, and
``tcplab sockets`` is the command people run in a loop or beside ``ss``. Anything the
quick path does not recognise, including every mistake, goes to click, which
explains it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs start-up time; mypy reads this name as True
if TYPE_CHECKING:
    from tcplab.cli.app import COMMANDS, LazyGroup, cli

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        argv = sys.argv[1:]
        if argv[:1] == ["sockets"]:
            from tcplab.cli.sockets_quick import quick_listing

            if quick_listing(argv[1:]):
                return
        from tcplab.cli.app import main as click_main
    except KeyboardInterrupt:  # Ctrl+C while the command is still being imported
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    click_main()


def __getattr__(name: str) -> object:
    # `from tcplab.cli import cli` keeps working without importing click for main().
    if name in ("COMMANDS", "LazyGroup", "cli"):
        from tcplab.cli import app

        return getattr(app, name)
    raise AttributeError(f"module 'tcplab.cli' has no attribute {name!r}")
