"""The real network: tcplab's engine on a TUN device, talking to the Linux kernel's TCP.

:mod:`tcplab.tun.netns` makes and removes private namespaces, :mod:`tcplab.tun.device`
the TUN device inside one, :mod:`tcplab.tun.backend` drives the engine from asyncio,
and :mod:`tcplab.tun.kernelstate` reads the kernel's states through sock_diag.
"""

from tcplab.tun.backend import KERNEL_ADDR, STACK_ADDR, TunBackend, bulk_config
from tcplab.tun.netns import Namespace, TunUnavailable, check_requirements

__all__ = ["KERNEL_ADDR", "STACK_ADDR", "Namespace", "TunBackend", "TunUnavailable",
           "bulk_config", "check_requirements"]
