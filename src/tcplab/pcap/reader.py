"""Read a pcap or pcapng capture into trace events, within fixed bounds.

Classic pcap is read here, record by record, in 1 MiB blocks; pcapng with dpkt
(``dpkt.pcapng.Reader``) through a file wrapper that checks every block length before
dpkt reads it. Either way no record can ask for more than it may: a capture length over
262,144 bytes (libpcap's ``MAXIMUM_SNAPLEN``, Wireshark's standard maximum) or a pcapng
block over 16 MiB (Wireshark's ``MAX_BLOCK_SIZE``) or shorter than its own header means a
damaged record header, and a record longer than what is left of the file means a cut
file; neither is read. The link layer, IP and TCP headers are decoded with
:func:`tcplab.pcap.packet.decode_ip_tcp` (leniently: checksums are not verified).

Link types: Ethernet (1, with 802.1Q/802.1ad tags), raw IP (101, and 12 and
14 as some systems number it), IPv4 (228), IPv6 (229), Linux cooked capture
SLL (113) and SLL2 (276), BSD loopback (0 and 108).  Non-TCP packets are
skipped; IP fragments too.

A bad packet inside an intact file (a TCP header cut short, a bad IP header, an empty
record) is skipped: the first 20 get a ``note`` event naming the packet number, the
others are only counted, in one closing note (so a file of millions of bad records costs
counters, not memory). A damaged file (a record cut short, a record header with an
impossible length, a block that cannot be unpacked) stops the reading:
:class:`CaptureError` is raised with a one-line message naming the packet number and the
byte offset of its record, and carries in ``.events`` everything decoded before it, so
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
from collections.abc import Iterator
from typing import IO, Any

import dpkt

from tcplab.pcap.follow import follow
from tcplab.pcap.packet import BadPacket, Packet, decode_ip_tcp

__all__ = ["MAX_BLOCK", "MAX_CAPLEN", "MAX_NOTES", "CaptureError", "Packet", "read_capture",
           "read_packets"]

Event = dict[str, Any]

LINK_NAMES = {0: "BSD loopback", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP",
              108: "OpenBSD loopback", 113: "Linux cooked (SLL)", 228: "IPv4", 229: "IPv6",
              276: "Linux cooked (SLL2)"}

MAX_CAPLEN = 262_144  #: the longest pcap record accepted (libpcap's MAXIMUM_SNAPLEN)
MAX_BLOCK = 16 * 1024 * 1024  #: the longest pcapng block accepted (Wireshark's)
MAX_NOTES = 20  #: skipped packets noted one by one; the rest are counted
_MAX_REASONS = 20  # distinct reasons counted by name; the rest as "other"
_CHUNK = 1 << 20

# magic -> (byte order, fraction of a second of the timestamps' second field)
_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\xa1\xb2\xc3\xd4": (">", 1e6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e9), b"\xa1\xb2\x3c\x4d": (">", 1e9)}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class CaptureError(Exception):
    """The capture could not be read to the end; ``events`` holds what was decoded."""

    def __init__(self, message: str, events: list[Event] | None = None,
                 packet: int | None = None) -> None:
        super().__init__(message)
        self.events: list[Event] = events or []
        self.packet = packet


class _Damaged(Exception):
    """A record that cannot be read, at a byte offset of the file."""

    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what


def _pcap_records(fp: IO[bytes], header: bytes) -> Iterator[tuple[float, bytes]]:
    """(time, frame) of each record of a classic pcap file; _Damaged where it is."""
    endian, divisor = _PCAP_MAGIC[header[:4]]
    record = struct.Struct(endian + "IIII")
    buf, pos, offset = b"", 0, len(header)
    while True:
        if len(buf) - pos < 16:
            buf, pos = buf[pos:] + fp.read(_CHUNK), 0
            if not buf:
                return
            if len(buf) < 16:
                raise _Damaged(offset, f"capture truncated ({len(buf)} of the 16 bytes of "
                                       "the record header)")
        sec, frac, caplen, _wirelen = record.unpack_from(buf, pos)
        if caplen > MAX_CAPLEN:
            raise _Damaged(offset, f"capture length {caplen} is over the maximum of "
                                   f"{MAX_CAPLEN} bytes (a damaged record header)")
        end = pos + 16 + caplen
        if end > len(buf):
            buf, pos = buf[pos:] + fp.read(max(_CHUNK, 16 + caplen)), 0
            end = 16 + caplen
            if end > len(buf):
                raise _Damaged(offset, f"capture truncated ({len(buf) - 16} of {caplen} "
                                       "bytes of the record)")
        yield sec + frac / divisor, buf[pos + 16:end]
        offset += end - pos
        pos = end


class _CheckedBlocks:
    """A file wrapper for dpkt's pcapng reader: every block length is checked first.

    dpkt reads a block as ``read(8)`` (type and length) then ``read(length - 8)``; a
    length under 8 would be a negative read (the whole file), a huge one a huge read.
    """

    def __init__(self, fp: IO[bytes], size: int) -> None:
        self.fp = fp
        self.size = size
        self.block = 0  # offset of the block being read

    def read(self, n: int = -1) -> bytes:
        at = self.fp.tell()
        if n == 8:
            self.block = at
        left = self.size - at
        if n < 0:
            raise _Damaged(self.block, f"block length {n + 8} is shorter than a block header")
        if n > MAX_BLOCK:
            raise _Damaged(self.block, f"block length {n + 8} is over the maximum of "
                                       f"{MAX_BLOCK} bytes (a damaged block header)")
        if n > left and not (n == 8 and left == 0):
            raise _Damaged(self.block, f"capture truncated ({left} of {n} bytes of the "
                                       "block)")
        return self.fp.read(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)


class _Skipped:
    """Packets skipped inside an intact file: the first few as notes, then counts."""

    def __init__(self) -> None:
        self.notes: list[Event] = []
        self.counts: dict[str, int] = {}
        self.more = 0
        self.last_t = 0.0

    def add(self, number: int, t: float, reason: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append({"t": t, "kind": "note", "frame": number,
                               "text": f"packet {number} skipped: {reason}"})
            return
        self.more += 1
        self.last_t = t
        if reason not in self.counts and len(self.counts) >= _MAX_REASONS:
            reason = "other"
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def events(self) -> list[Event]:
        if not self.more:
            return self.notes
        why = ", ".join(f"{reason} ({n})" for reason, n in
                        sorted(self.counts.items(), key=lambda kv: -kv[1]))
        return [*self.notes, {"t": self.last_t, "kind": "note", "skipped": self.more,
                              "text": f"{self.more} more packets skipped: {why}"}]


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


def _records(fp: IO[bytes], size: int) -> tuple[int, Iterator[tuple[float, bytes]]]:
    """The link type and the records of a capture; CaptureError if it is not one."""
    head = fp.read(24)
    if head[:4] in _PCAP_MAGIC:
        if len(head) < 24:
            raise CaptureError(f"bad file header: {len(head)} of its 24 bytes")
        endian = _PCAP_MAGIC[head[:4]][0]
        linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0xFFFF
        return linktype, _pcap_records(fp, head)
    if head[:4] == _PCAPNG_MAGIC:
        fp.seek(0)
        checked = _CheckedBlocks(fp, size)
        try:
            reader = dpkt.pcapng.Reader(checked)
        except _Damaged as exc:
            raise CaptureError(f"bad file header: {exc.what} (at byte {exc.offset})") from None
        except (ValueError, dpkt.UnpackError, struct.error) as exc:
            raise CaptureError(f"bad file header: {exc}") from None

        def blocks() -> Iterator[tuple[float, bytes]]:
            for ts, buf in reader:
                yield float(ts), bytes(buf)

        return int(reader.datalink()), blocks()
    raise CaptureError(f"not a pcap or pcapng file (starts with {head[:4].hex() or 'nothing'})")


def read_packets(path: str | os.PathLike[str]) -> tuple[list[Packet], list[Event],
                                                          CaptureError | None]:
    """The TCP packets of a capture, notes about skipped packets, and the error, if any."""
    packets: list[Packet] = []
    skipped = _Skipped()
    try:
        fp = open(path, "rb")  # noqa: SIM115 (closed in finally)
    except OSError as exc:
        return packets, [], CaptureError(f"cannot open: {exc.strerror}")
    number = 0
    try:
        size = os.fstat(fp.fileno()).st_size
        linktype, records = _records(fp, size)
        if linktype not in LINK_NAMES:
            return packets, [], CaptureError(f"unsupported link type {linktype}")
        while True:
            try:
                ts, buf = next(records)
            except StopIteration:
                break
            except _Damaged as exc:
                return packets, skipped.events(), CaptureError(
                    f"packet {number + 1} (record at byte {exc.offset}): {exc.what}",
                    packet=number + 1)
            except (ValueError, dpkt.UnpackError, struct.error) as exc:
                return packets, skipped.events(), CaptureError(
                    f"packet {number + 1}: cannot unpack the record "
                    f"({exc or type(exc).__name__}); the capture is damaged or truncated",
                    packet=number + 1)
            number += 1
            if not buf:
                skipped.add(number, ts, "empty record")
                continue
            try:
                off = _ip_offset(linktype, buf)
                if off is None:
                    continue
                pkt = decode_ip_tcp(number, ts, buf[off:])
            except (BadPacket, IndexError, struct.error) as exc:
                skipped.add(number, ts, str(exc) or type(exc).__name__)
                continue
            if pkt is not None:
                packets.append(pkt)
        return packets, skipped.events(), None
    except CaptureError as exc:
        return packets, skipped.events(), exc
    except OSError as exc:
        return packets, skipped.events(), CaptureError(f"cannot read: {exc.strerror}")
    finally:
        fp.close()


def read_capture(path: str | os.PathLike[str]) -> list[Event]:
    """Trace events of every TCP connection in a capture (see the module docstring).

    Raises :class:`CaptureError` (with the partial ``events``) when the file
    cannot be read to the end.
    """
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
