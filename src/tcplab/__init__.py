"""tcplab: see, run and break the TCP connection lifecycle.

Layers import downward only:

    wire -> engine -> backends (sim, tun) -> applications (http, scenarios, lab,
    packetdrill, render) -> cli

The hot modules (wire, engine, the simulator's network, the trace) may be
compiled with mypyc; :mod:`tcplab.buildinfo` chooses, before any of them is
imported, whether the compiled or the pure-Python build runs.
"""

from tcplab import buildinfo as _buildinfo

__version__ = "0.1.0"

_buildinfo.select()
