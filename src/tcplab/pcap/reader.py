"""Read a pcap or pcapng capture into trace events.

The file formats are read with dpkt (``dpkt.pcap.Reader``,
``dpkt.pcapng.Reader``); the link layer, IP and TCP headers are decoded here,
leniently: checksums are not verified (captures taken on the sending host
carry checksums the NIC or the loopback device never filled in), and the
payload length comes from the IP header, so a capture cut short by its
snapshot length still gives the right ``len``.

Link types: Ethernet (1, with 802.1Q/802.1ad tags), raw IP (101, and 12 and
14 as some systems number it), IPv4 (228), IPv6 (229), Linux cooked capture
SLL (113) and SLL2 (276), BSD loopback (0 and 108).  Non-TCP packets are
skipped; IP fragments too.

A bad packet inside an intact file (a TCP header cut short, a bad IP
header) is skipped with a ``note`` event naming the packet number.  A damaged
file (a record cut short, a block that cannot be unpacked, junk after the
last packet) stops the reading: :class:`CaptureError` is raised, naming the
packet number, and carries in ``.events`` everything decoded before it, so
the connections seen so far can still be drawn.

The events follow the trace schema (``docs/trace.md``): ``segment`` events
with ``event == "send"``, ``host`` the sending endpoint "addr:port", ``id``
and ``frame`` the packet number in the file (from 1), ``raw`` the IP packet;
``state`` and ``timer`` events inferred by :mod:`tcplab.pcap.follow`.  Times
are seconds since the first packet; the absolute time of the first packet is
in the opening ``note`` event (``epoch``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import IO, Any

import dpkt

from tcplab.wire.errors import WireError
from tcplab.wire.tcp import Eol, Nop, WindowScale, flags_str, option_text, parse_options

Event = dict[str, Any]

LINK_NAMES = {0: "BSD loopback", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP",
              108: "OpenBSD loopback", 113: "Linux cooked (SLL)", 228: "IPv4", 229: "IPv6",
              276: "Linux cooked (SLL2)"}


class CaptureError(Exception):
    """The capture could not be read to the end; ``events`` holds what was decoded."""

    def __init__(self, message: str, events: list[Event] | None = None,
                 packet: int | None = None) -> None:
        super().__init__(message)
        self.events: list[Event] = events or []
        self.packet = packet


class BadPacket(Exception):
    """One packet that cannot be decoded (skipped with a note)."""


@dataclass
class Packet:
    """One TCP segment as seen in the capture."""

    number: int
    t: float
    src: str
    dst: str
    flags: str
    seq: int
    ack: int
    win: int
    length: int
    opts: list[str] = field(default_factory=list)
    wscale: int | None = None
    raw: bytes = b""


class _Tracked:
    """A file wrapper that notices short reads (how a truncated file shows itself).

    Both dpkt readers read a record as two calls, header then body; a header
    read that returns nothing is the clean end of the file, any other short
    read means the file was cut.
    """

    def __init__(self, fp: IO[bytes]) -> None:
        self.fp = fp
        self.counting = False
        self.reads = 0
        self.short: tuple[int, int] | None = None

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        if self.counting:
            self.reads += 1
            header = self.reads % 2 == 1
            if n > 0 and len(data) < n and not (header and not data) and self.short is None:
                self.short = (n, len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)


def _ip_offset(linktype: int, buf: bytes) -> int | None:
    """Where the IP header starts in a frame, or None if the frame is not IP."""
    if linktype in (12, 14, 101, 228, 229):
        return 0
    if linktype == 1:
        off, etype = 14, struct.unpack_from("!H", buf, 12)[0] if len(buf) >= 14 else 0
        while etype in (0x8100, 0x88A8, 0x9100) and len(buf) >= off + 4:
            etype = struct.unpack_from("!H", buf, off + 2)[0]
            off += 4
        return off if etype in (0x0800, 0x86DD) else None
    if linktype == 113:
        if len(buf) < 16:
            return None
        return 16 if struct.unpack_from("!H", buf, 14)[0] in (0x0800, 0x86DD) else None
    if linktype == 276:
        if len(buf) < 20:
            return None
        return 20 if struct.unpack_from("!H", buf, 0)[0] in (0x0800, 0x86DD) else None
    if linktype in (0, 108):
        return 4
    raise CaptureError(f"unsupported link type {linktype}")


def _addr(raw: bytes) -> str:
    import ipaddress
    return str(ipaddress.ip_address(raw))


def decode_ip_tcp(number: int, t: float, ip: bytes) -> Packet | None:
    """A TCP segment from an IP packet; None if not TCP; BadPacket if malformed."""
    if not ip:
        raise BadPacket("empty IP packet")
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20:
            raise BadPacket("IPv4 header cut short")
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0] or len(ip)  # 0 with TSO: trust the capture
        frag = struct.unpack_from("!H", ip, 6)[0]
        if ihl < 20 or total < ihl or len(ip) < ihl:
            raise BadPacket(f"bad IPv4 header length {ihl}")
        if ip[9] != 6 or frag & 0x3FFF:
            return None
        src, dst = _addr(ip[12:16]), _addr(ip[16:20])
        off, tcp_total = ihl, total - ihl
    elif version == 6:
        if len(ip) < 40:
            raise BadPacket("IPv6 header cut short")
        plen = struct.unpack_from("!H", ip, 4)[0] or len(ip) - 40
        nxt, off = ip[6], 40
        while nxt in (0, 43, 60) and len(ip) >= off + 8:
            nxt, off = ip[off], off + (ip[off + 1] + 1) * 8
        if nxt != 6:
            return None
        src, dst = _addr(ip[8:24]), _addr(ip[24:40])
        tcp_total = 40 + plen - off
    else:
        raise BadPacket(f"not an IP packet (version {version})")
    tcp = ip[off:]
    if len(tcp) < 20:
        raise BadPacket("TCP header cut short")
    sport, dport, seq, ack, doff_byte, fl, win = struct.unpack_from("!HHIIBBH", tcp, 0)
    doff = (doff_byte >> 4) * 4
    if doff < 20 or doff > tcp_total:
        raise BadPacket(f"bad TCP data offset {doff}")
    flags = flags_str(fl)
    opts: list[str] = []
    wscale: int | None = None
    if doff > 20 and len(tcp) >= doff:
        try:
            for o in parse_options(bytes(tcp[20:doff])):
                if isinstance(o, WindowScale):
                    wscale = o.shift
                text = "" if isinstance(o, (Nop, Eol)) else option_text(o)
                if text:
                    opts.append(text)
        except (WireError, ValueError):
            opts = ["(malformed options)"]
    sfx = f"[{src}]" if version == 6 else src
    dfx = f"[{dst}]" if version == 6 else dst
    return Packet(number, t, f"{sfx}:{sport}", f"{dfx}:{dport}", flags, seq, ack, win,
                  max(tcp_total - doff, 0), opts, wscale, bytes(ip))


def read_packets(path: str | os.PathLike[str]) -> tuple[list[Packet], list[Event],
                                                          CaptureError | None]:
    """The TCP packets of a capture, notes about skipped packets, and the error, if any."""
    packets: list[Packet] = []
    notes: list[Event] = []
    try:
        fp = open(path, "rb")  # noqa: SIM115 (closed in finally)
    except OSError as exc:
        return packets, notes, CaptureError(f"cannot open: {exc.strerror}")
    try:
        tracked = _Tracked(fp)
        magic = fp.read(4)
        fp.seek(0)
        reader: Any
        try:
            if magic == b"\x0a\x0d\x0d\x0a":
                reader = dpkt.pcapng.Reader(tracked)
            elif magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                           b"\xa1\xb2\x3c\x4d"):
                reader = dpkt.pcap.Reader(tracked)
            else:
                return packets, notes, CaptureError(
                    f"not a pcap or pcapng file (starts with {magic.hex() or 'nothing'})")
        except (ValueError, dpkt.UnpackError, struct.error) as exc:
            return packets, notes, CaptureError(f"bad file header: {exc}")
        linktype = int(reader.datalink())
        tracked.counting = True
        number = 0
        it = iter(reader)
        while True:
            try:
                ts, buf = next(it)
            except StopIteration:
                break
            except (ValueError, dpkt.UnpackError, struct.error) as exc:
                return packets, notes, CaptureError(
                    f"packet {number + 1}: cannot unpack the record ({exc or type(exc).__name__});"
                    f" the capture is damaged or truncated", packet=number + 1)
            number += 1
            if tracked.short is not None:
                want, got = tracked.short
                return packets, notes, CaptureError(
                    f"packet {number}: capture truncated ({got} of {want} bytes of the record)",
                    packet=number)
            try:
                off = _ip_offset(linktype, buf)
                if off is None:
                    continue
                pkt = decode_ip_tcp(number, float(ts), bytes(buf[off:]))
            except BadPacket as exc:
                notes.append({"t": float(ts), "kind": "note", "frame": number,
                              "text": f"packet {number} skipped: {exc}"})
                continue
            except (IndexError, struct.error) as exc:
                notes.append({"t": float(ts), "kind": "note", "frame": number,
                              "text": f"packet {number} skipped: {exc}"})
                continue
            if pkt is not None:
                packets.append(pkt)
        if tracked.short is not None:
            want, got = tracked.short
            return packets, notes, CaptureError(
                f"packet {number + 1}: capture truncated ({got} of {want} bytes of the record)",
                packet=number + 1)
        return packets, notes, None
    except CaptureError as exc:
        return packets, notes, exc
    finally:
        fp.close()


def read_capture(path: str | os.PathLike[str]) -> list[Event]:
    """Trace events of every TCP connection in a capture (see the module docstring).

    Raises :class:`CaptureError` (with the partial ``events``) when the file
    cannot be read to the end.
    """
    from tcplab.pcap.follow import follow

    packets, notes, error = read_packets(path)
    t0 = packets[0].t if packets else (notes[0]["t"] if notes else 0.0)
    for n in notes:
        n["t"] = n["t"] - t0
    events = follow(packets, t0)
    head: Event = {"t": 0.0, "kind": "note", "epoch": t0,
                   "text": f"capture {os.path.basename(os.fspath(path))}: {len(packets)} TCP "
                           f"packets"}
    events = [head, *sorted([*events, *notes], key=lambda e: float(e["t"]))]
    if error is not None:
        error.events = events if packets else []
        raise error
    return events
