"""A TUN device inside a namespace: raw IPv4 packets in and out of one file descriptor.

The device is created by opening ``/dev/net/tun`` and ``TUNSETIFF`` with
``IFF_TUN | IFF_NO_PI`` (no packet-information header: every read is one IP
packet, every write must be one) from a thread that entered the namespace, so
the device is born there and never exists outside it.  It is not persistent:
closing the last descriptor removes it, so even a ``kill -9`` leaves no device.

Configuration is the minimum: the kernel's address on the device (192.0.2.1/24,
which gives the connected route to tcplab's 192.0.2.2 and nothing else), the
MTU, a transmit queue long enough for a whole window, the link up, ``lo`` up.  IPv6 is disabled in the namespace before the device
exists, so the kernel's router solicitations and MLD reports do not reach the
wire.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from dataclasses import dataclass

from tcplab.tun.netns import Namespace, TunUnavailable

__all__ = ["KERNEL_ADDR", "STACK_ADDR", "TunDevice", "open_tun"]

KERNEL_ADDR = "192.0.2.1"  # the kernel's side of the device (TEST-NET-1, RFC 5737)
STACK_ADDR = "192.0.2.2"   # tcplab's stack
PREFIX_LEN = 24
DEVICE = "tcplab0"

TUNSETIFF = 0x400454CA
# Packets the kernel may queue for tcplab to read.  TUN's default (500) is less than
# a 4 MiB window of 1460-byte segments: a slow moment in Python would then drop
# segments at the device (tx_dropped), which tcplab would have to recover from
# without SACK.  With 10,000 the window, not the queue, is the limit.
TXQUEUELEN = 10_000
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def _write_sysctl(path: str, value: str) -> None:
    with contextlib.suppress(OSError), open(path, "w", encoding="ascii") as fh:
        fh.write(value)


def open_tun(name: str = DEVICE) -> int:
    """Create TUN device ``name`` in the calling thread's namespace; its fd (non-blocking)."""
    # Per-namespace sysctls are resolved against the opening thread's namespace.
    for conf in ("all", "default"):
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "1")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TunUnavailable(f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as exc:
        os.close(fd)
        raise TunUnavailable(f"TUNSETIFF {name}: {exc.strerror}") from None
    return fd


@dataclass
class TunDevice:
    """An open TUN device in a namespace, configured with the kernel's address."""

    ns: Namespace
    fd: int
    name: str
    mtu: int

    @classmethod
    def create(cls, ns: Namespace, mtu: int = 1500, name: str = DEVICE) -> TunDevice:
        fd = ns.call(lambda: open_tun(name))
        dev = cls(ns, fd, name, mtu)
        try:
            ns.ip("addr", "add", f"{KERNEL_ADDR}/{PREFIX_LEN}", "dev", name)
            ns.ip("link", "set", "dev", name, "mtu", str(mtu), "txqueuelen", str(TXQUEUELEN),
                  "up")
            ns.ip("link", "set", "dev", "lo", "up")
        except BaseException:
            dev.close()
            raise
        return dev

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
