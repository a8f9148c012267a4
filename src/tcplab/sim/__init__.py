"""The simulated network: a virtual clock, links with faults, sockets on top.

``Network`` runs engine hosts in virtual time; ``SimSocket`` gives them
Python's socket API; ``run_async`` runs asyncio code in the same virtual time.
"""

from tcplab.sim.network import Fault, LinkSpec, Network, Packet, SimulationStuck
from tcplab.sim.socket import SimDriver, SimSocket, connected, listening, pair

__all__ = ["Fault", "LinkSpec", "Network", "Packet", "SimDriver", "SimSocket",
           "SimulationStuck", "connected", "listening", "pair"]
