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
        import signal

        from tcplab.signals import interrupt_handler, raise_if_interrupted

        # Ctrl+C raises KeyboardInterrupt as usual, and is remembered: one that lands
        # where Python swallows it (an import releasing its module lock) is acted on
        # below, or by the long-running loops (tcplab.signals).
        signal.signal(signal.SIGINT, interrupt_handler)
        from tcplab.cli import main as cli_main

        raise_if_interrupted()
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()
