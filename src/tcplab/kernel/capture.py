"""TCP segments as the kernel sends and receives them: an AF_PACKET capture.

How it works
------------
One ``AF_PACKET``/``SOCK_DGRAM`` socket bound to every interface of the current network
namespace receives a copy of each IP packet, without the link header. A classic BPF
program attached to the socket (``SO_ATTACH_FILTER``) keeps only TCP (over IPv4 or
IPv6), and only one port at either end when a port is given, so the kernel copies
nothing else to this process. Each packet comes with the kernel's receive timestamp in
nanoseconds (``SO_TIMESTAMPNS``, CLOCK_REALTIME).

At most a few hundred ports fit (BPF jumps are 8 bits); the program is checked when it is
built.

On the loopback interface every packet passes the tap twice: once leaving (packet type
``PACKET_OUTGOING``) and once arriving (``PACKET_HOST``). Only the outgoing copy is
kept there, so each segment is seen once, at the moment it was sent; on other
interfaces both directions are distinct packets and both are kept.

Needs CAP_NET_RAW (root).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["Capture", "CapturedPacket", "tcp_filter"]

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD; its control message type is the same number
PACKET_HOST = 0
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL: skb->protocol
_BUFFER = 1 << 18
_TIMESPEC = struct.Struct("@qq")

# Classic BPF opcodes (linux/filter.h).
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ_K = 0x15
_JSET_K = 0x45
_JA = 0x05
_RET_K = 0x06

# code, jump-if-true, jump-if-false, k; jumps (and k of an unconditional jump) may be labels
Insn = tuple[int, str | int, str | int, str | int]


def tcp_filter(ports: tuple[int, ...] = ()) -> list[tuple[int, int, int, int]]:
    """A classic BPF program: TCP over IPv4/IPv6, with one of ``ports`` at either end.

    Written with labels, resolved to the relative jumps BPF wants. IPv4 fragments after
    the first are dropped (they have no TCP header); IPv6 packets with extension headers
    before TCP are not matched.
    """
    prog: list[tuple[str | None, Insn]] = [
        (None, (_LD_H_ABS, 0, 0, SKF_AD_PROTOCOL)),
        (None, (_JEQ_K, 0, "v6", ETH_P_IP)),
        (None, (_LD_B_ABS, 0, 0, 9)),            # IPv4 protocol
        (None, (_JEQ_K, 0, "drop", socket.IPPROTO_TCP)),
        (None, (_LD_H_ABS, 0, 0, 6)),            # flags and fragment offset
        (None, (_JSET_K, "drop", 0, 0x1FFF)),
        (None, (_LDX_B_MSH, 0, 0, 0)),           # X = IPv4 header length
    ]
    if not ports:
        prog.append((None, (_JA, 0, 0, "accept")))
    else:
        prog.append((None, (_LD_H_IND, 0, 0, 0)))  # source port
        prog += [(None, (_JEQ_K, "accept", 0, p)) for p in ports]
        prog.append((None, (_LD_H_IND, 0, 0, 2)))  # destination port
        prog += [(None, (_JEQ_K, "accept", 0, p)) for p in ports]
        prog.append((None, (_JA, 0, 0, "drop")))
    prog += [
        ("v6", (_JEQ_K, 0, "drop", ETH_P_IPV6)),
        (None, (_LD_B_ABS, 0, 0, 6)),            # IPv6 next header
        (None, (_JEQ_K, 0, "drop", socket.IPPROTO_TCP)),
    ]
    if not ports:
        prog.append((None, (_JA, 0, 0, "accept")))
    else:
        prog.append((None, (_LD_H_ABS, 0, 0, 40)))
        prog += [(None, (_JEQ_K, "accept", 0, p)) for p in ports]
        prog.append((None, (_LD_H_ABS, 0, 0, 42)))
        prog += [(None, (_JEQ_K, "accept", 0, p)) for p in ports]
        prog.append((None, (_JA, 0, 0, "drop")))
    prog += [
        ("drop", (_RET_K, 0, 0, 0)),
        ("accept", (_RET_K, 0, 0, _BUFFER)),
    ]
    if len(prog) > 250:
        raise ValueError(f"too many ports for one packet filter ({len(ports)})")
    labels = {label: i for i, (label, _) in enumerate(prog) if label}
    out: list[tuple[int, int, int, int]] = []
    for i, (_label, (code, jt, jf, k)) in enumerate(prog):

        def rel(target: str | int, i: int = i) -> int:
            return labels[target] - i - 1 if isinstance(target, str) else target

        if code == _JA:
            out.append((code, 0, 0, rel(k)))  # k holds the label for an unconditional jump
        else:
            assert isinstance(k, int)
            out.append((code, rel(jt), rel(jf), k))
    return out


class CapturedPacket(NamedTuple):
    ts_ns: int  # CLOCK_REALTIME
    ifname: str
    outgoing: bool
    data: bytes  # the IP packet


class Capture:
    """An AF_PACKET socket that yields TCP packets (see the module doc)."""

    def __init__(self, ports: tuple[int, ...] = ()) -> None:
        self.ports = ports
        self.sock: socket.socket | None = None
        self.truncated = 0

    def open(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            insns = tcp_filter(self.ports)
            raw = b"".join(struct.pack("=HBBI", c, jt, jf, k) for c, jt, jf, k in insns)
            buf = ctypes.create_string_buffer(raw, len(raw))
            fprog = struct.pack("@HP", len(insns), ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.setblocking(False)
            # Packets that arrived before the filter was attached may be queued: drain them.
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.recv(1)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Capture:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def read_available(self, limit: int = 4096) -> Iterator[CapturedPacket]:
        """The packets waiting now (at most ``limit``)."""
        sock = self.sock
        if sock is None:
            return
        cmsg_size = socket.CMSG_SPACE(_TIMESPEC.size)
        for _ in range(limit):
            try:
                data, anc, flags, addr = sock.recvmsg(_BUFFER, cmsg_size)
            except (BlockingIOError, InterruptedError):
                return
            ifname, _proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
            if hatype == ARPHRD_LOOPBACK and pkttype != PACKET_OUTGOING:
                continue  # the arriving copy of a loopback packet
            if flags & socket.MSG_TRUNC:
                self.truncated += 1
            ts = 0
            for level, ctype, cdata in anc:
                if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS \
                        and len(cdata) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    ts = sec * 1_000_000_000 + nsec
            yield CapturedPacket(ts, ifname, pkttype == PACKET_OUTGOING, data)
