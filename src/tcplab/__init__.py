"""tcplab: see, run and break the TCP connection lifecycle.

Layers import downward only:

    wire -> engine -> backends (sim, tun) -> applications (http, scenarios, lab,
    packetdrill, render) -> cli

The hot modules (wire, engine, the simulator's network, the trace) may be
compiled with mypyc; :mod:`tcplab.buildinfo` chooses, before any of them is
imported, whether the compiled or the pure-Python build runs.
"""

__version__ = "0.1.0"

import sys as _sys

#: this process is the ``tcplab`` command (the console script, or ``python -m tcplab``),
#: not a program that imports tcplab
_AS_COMMAND = (_sys.argv[0].rsplit("/", 1)[-1] in ("tcplab", "__main__.py")
               if _sys.argv else False) or _sys.orig_argv[1:3] == ["-m", "tcplab"]

try:
    if _AS_COMMAND:
        # From here on, a Ctrl+C that Python swallows (raised in a weakref callback
        # while an import releases its module lock) is remembered (tcplab.signals).
        from tcplab.signals import remember_swallowed_interrupts

        remember_swallowed_interrupts()
    from tcplab import buildinfo as _buildinfo

    _buildinfo.select()
except KeyboardInterrupt:
    # Ctrl+C while the ``tcplab`` command is still starting (this runs before
    # tcplab.__main__ can catch it): one line, as at any later moment.  A program
    # that imports tcplab gets its KeyboardInterrupt as usual.
    if _AS_COMMAND:
        _sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    raise
