"""tcplab: see, run and break the TCP connection lifecycle.

Layers import downward only:

    wire -> engine -> backends (sim, tun) -> applications (http, scenarios, lab,
    packetdrill, render) -> cli
"""

__version__ = "0.1.0"
