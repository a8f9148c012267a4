"""tcplab: see, run and break the TCP connection lifecycle.

Layers import downward only:

    wire -> engine -> backends (sim, tun) -> applications (http, scenarios, lab,
    packetdrill, render) -> cli

The hot modules (wire, engine, the simulator's network, the trace) may be
compiled with mypyc; :mod:`tcplab.buildinfo` chooses, before any of them is
imported, whether the compiled or the pure-Python build runs.
"""

__version__ = "0.1.0"

try:
    from tcplab import buildinfo as _buildinfo

    _buildinfo.select()
except KeyboardInterrupt:
    # Ctrl+C while the ``tcplab`` command is still starting (this runs before
    # tcplab.__main__ can catch it): one line, as at any later moment.  A program
    # that imports tcplab gets its KeyboardInterrupt as usual.
    import os as _os
    import sys as _sys

    if _os.path.basename(_sys.argv[0] if _sys.argv else "") in ("tcplab", "__main__.py"):
        _sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    raise
