"""``python -m tcplab`` and the ``tcplab`` command.

The command-line package is imported inside :func:`main`, so that Ctrl+C while Python is
still importing it (click, rich, asyncio: a few hundred milliseconds on a busy machine)
prints one line, like Ctrl+C at any later moment, instead of a KeyboardInterrupt
traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from tcplab.signals import raise_if_interrupted, remember_swallowed_interrupts

        # A Ctrl+C that Python swallows during the imports (tcplab.signals) is acted on
        # below, or later by the long-running loops.
        remember_swallowed_interrupts()
        from tcplab.cli import main as cli_main

        raise_if_interrupted()
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()
