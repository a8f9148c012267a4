"""Failures of hosts and cables in the simulator: power off, reboot, unplug, plug back in.

Theory of operation
-------------------
Everything here goes through the :class:`~tcplab.sim.network.Network`'s public
parts: its ``hosts`` table, :meth:`~tcplab.sim.network.Network.add` and fault
rules (:class:`~tcplab.sim.network.Fault`), so the network itself knows nothing
of failures and pays nothing for them.

* :func:`power_off`: the host leaves ``net.hosts``, so its timers never fire
  again and nothing it queued is sent; a fault rule drops every packet
  addressed to it (reason ``fault: <host> is powered off``).  A crash or a
  power cut sends nothing: no FIN, no RST.
* :func:`power_on`: a *new* :class:`~tcplab.engine.host.Host` of the same
  name and addresses joins the network: it remembers no connection, no
  TIME-WAIT entry, no listener, and its ISN and cookie secrets are new (a
  kernel picks them at boot).  The old host object is forgotten.
* :func:`crash_process`: a process dies (killed, segfault): the kernel closes
  every socket it had, in order, exactly as close() would (do_exit() ->
  exit_files()): a FIN, or a RST where received data was never read, and a
  listener that disappears.  The host itself is unharmed.
* :func:`unplug` and :func:`plug`: a fault rule drops every packet between two
  hosts, both ways (reason ``fault: the cable is unplugged``), while both
  hosts keep running, retransmitting and timing out as they would.

Packets that were already on the wire towards a host when it was powered off
are dropped on arrival (the network delivers only to the host object its table
holds now), so a reboot never lets the old host answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from tcplab.api.sockets import TcpSocket
from tcplab.engine.config import TcpConfig
from tcplab.engine.host import Host
from tcplab.sim.network import Fault, Network, Packet

CABLE = "the cable is unplugged"


def down_reason(host: str) -> str:
    """The fault name a powered-off host's packets are dropped with."""
    return f"{host} is powered off"


@dataclass
class PoweredOff:
    """A host that has been switched off: what :func:`power_on` needs to bring it back."""

    name: str
    addrs: list[str]
    config: TcpConfig
    fault: Fault
    boots: int = 1  #: how many times the host has started (1: the first boot)


def power_off(net: Network, name: str) -> PoweredOff:
    """Switch host ``name`` off at ``net.now``: it sends nothing more, and everything sent
    to it is lost.  Its state is gone with it."""
    host = net.hosts.pop(name)
    for out in host.transmit():  # queued, not yet on the wire: lost with the power
        if out.event is not None:
            out.event["fate"] = "dropped"
            out.event["reason"] = f"fault: {down_reason(name)}"
    fault = net.add_fault(Fault("drop", lambda p: _touches(p, name), count=1 << 62,
                                name=down_reason(name)))
    return PoweredOff(name, list(host.addrs), host.config, fault)


def power_on(net: Network, off: PoweredOff, config: TcpConfig | None = None) -> Host:
    """Boot host ``off.name`` again: a fresh TCP with no memory of its connections."""
    if off.fault in net.faults:
        net.faults.remove(off.fault)
    off.boots += 1
    rng = random.Random(f"{net.seed}:host:{off.name}:boot{off.boots}")
    host = Host(off.name, off.addrs, config=config or off.config.copy(), rng=rng,
                trace=net.trace)
    return net.add(host)


def reboot(net: Network, name: str, config: TcpConfig | None = None) -> Host:
    """Power ``name`` off and at once on again: it loses every connection."""
    return power_on(net, power_off(net, name), config)


def crash_process(sockets: Iterable[TcpSocket]) -> None:
    """The process that owns ``sockets`` dies: its kernel closes each of them."""
    for sock in sockets:
        sock.close()


def unplug(net: Network, a: str, b: str) -> Fault:
    """Pull the cable between hosts ``a`` and ``b``: every packet between them is lost,
    both ways, until :func:`plug`.  The hosts themselves keep running."""
    pair = {a, b}
    return net.add_fault(Fault("drop", lambda p: {p.src_host, p.dst_host} == pair,
                               count=1 << 62, name=CABLE))


def plug(net: Network, cable: Fault) -> None:
    """Plug the cable back in: packets between the two hosts flow again."""
    if cable in net.faults:
        net.faults.remove(cable)


def _touches(p: Packet, name: str) -> bool:
    return p.dst_host == name or p.src_host == name


__all__ = ["CABLE", "PoweredOff", "crash_process", "down_reason", "plug", "power_off",
           "power_on", "reboot", "unplug"]
