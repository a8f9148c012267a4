"""A TUN device inside a namespace: IP packets in and out of one file descriptor.

The device is created by opening ``/dev/net/tun`` and ``TUNSETIFF`` with
``IFF_TUN | IFF_NO_PI`` (no packet-information header: every read is one IP
packet, every write must be one) from a thread that entered the namespace, so
the device is born there and never exists outside it.  It is not persistent:
closing the last descriptor removes it, so even a ``kill -9`` leaves no device.

Offloads: with ``offload=True`` (the default) the device is opened with
``IFF_VNET_HDR`` and ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)``, so
every packet carries a virtio-net header and the kernel may hand over 64 KB TCP
super-segments with the checksum left undone (:mod:`tcplab.tun.vnet`).  Where the
kernel refuses either, the device is opened again without them and
:attr:`TunDevice.notice` says so in one line.

Configuration is the minimum: the kernel's addresses on the device (192.0.2.1/24 and
2001:db8::1/64, documentation ranges, which give the connected routes to tcplab's
192.0.2.2 and 2001:db8::2 and nothing else), the MTU, a transmit queue long enough
for a whole window, the link up, ``lo`` up.  IPv6 is set up so that nothing but TCP
reaches the wire: no link-local address (``addr_gen_mode`` none), no router
solicitations, no duplicate address detection; a TUN device is ``IFF_NOARP``, so the
kernel joins no solicited-node groups and sends no MLD reports or neighbour
solicitations for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcplab.tun.netns import Namespace, TunUnavailable

__all__ = ["KERNEL_ADDR", "KERNEL_ADDR6", "STACK_ADDR", "STACK_ADDR6", "TunDevice", "open_tun"]

KERNEL_ADDR = "192.0.2.1"  # the kernel's side of the device (TEST-NET-1, RFC 5737)
STACK_ADDR = "192.0.2.2"   # tcplab's stack
PREFIX_LEN = 24
KERNEL_ADDR6 = "2001:db8::1"  # the same for IPv6 (documentation prefix, RFC 3849)
STACK_ADDR6 = "2001:db8::2"
PREFIX_LEN6 = 64
DEVICE = "tcplab0"

TUNSETIFF = 0x400454CA
# Packets the kernel may queue for tcplab to read.  TUN's default (500) is less than
# a 4 MiB window of 1460-byte segments: a slow moment in Python would then drop
# segments at the device (tx_dropped), which tcplab would have to recover from
# without SACK.  With 10,000 the window, not the queue, is the limit.
TXQUEUELEN = 10_000
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6


def _write_sysctl(path: str, value: str) -> None:
    with contextlib.suppress(OSError), open(path, "w", encoding="ascii") as fh:
        fh.write(value)


def _ipv6_sysctls() -> None:
    """IPv6 on, and quiet: devices made from now on get no link-local address, send no
    router solicitations and run no duplicate address detection."""
    for conf in ("all", "default"):
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "0")
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/accept_ra", "0")
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/router_solicitations", "0")
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad", "0")
    _write_sysctl("/proc/sys/net/ipv6/conf/default/addr_gen_mode", "1")


Ioctl = Callable[[int, int, Any], Any]


def _tunsetiff(name: str, flags: int, ioctl: Ioctl) -> int:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TunUnavailable(f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
    except OSError:
        os.close(fd)
        raise
    return fd


def open_tun(name: str = DEVICE, offload: bool = True,
             ioctl: Ioctl = fcntl.ioctl) -> tuple[int, bool, str]:
    """Create TUN device ``name`` in the calling thread's namespace.

    Returns its descriptor (non-blocking), whether it has a virtio-net header with
    checksum and TSO offloads, and a one-line notice when offloads were asked for but
    refused (empty otherwise).  ``ioctl`` is the system call (a test passes one that
    refuses, as an old kernel would)."""
    # Per-namespace sysctls are resolved against the opening thread's namespace.
    _ipv6_sysctls()
    notice = ""
    if offload:
        try:
            fd = _tunsetiff(name, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, ioctl)
        except OSError as exc:
            notice = (f"TUN offloads unavailable (IFF_VNET_HDR: {exc.strerror}); "
                      "one packet per write")
        else:
            try:
                ioctl(fd, TUNSETOFFLOAD, OFFLOADS)
            except OSError as exc:
                os.close(fd)  # not persistent: the device goes with its descriptor
                notice = (f"TUN offloads unavailable (TUNSETOFFLOAD: {exc.strerror}); "
                          "one packet per write")
            else:
                return fd, True, ""
    try:
        fd = _tunsetiff(name, IFF_TUN | IFF_NO_PI, ioctl)
    except OSError as exc:
        raise TunUnavailable(f"TUNSETIFF {name}: {exc.strerror}") from None
    return fd, False, notice


@dataclass
class TunDevice:
    """An open TUN device in a namespace, configured with the kernel's address."""

    ns: Namespace
    fd: int
    name: str
    mtu: int
    vnet: bool = False  #: packets carry a virtio-net header (checksum and TSO offloads)
    notice: str = ""  #: why offloads were asked for and not given (one line)

    @classmethod
    def create(cls, ns: Namespace, mtu: int = 1500, name: str = DEVICE,
               offload: bool = True) -> TunDevice:
        fd, vnet, notice = ns.call(lambda: open_tun(name, offload))
        dev = cls(ns, fd, name, mtu, vnet, notice)
        try:
            ns.ip("addr", "add", f"{KERNEL_ADDR}/{PREFIX_LEN}", "dev", name)
            ns.ip("-6", "addr", "add", f"{KERNEL_ADDR6}/{PREFIX_LEN6}", "dev", name, "nodad")
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
