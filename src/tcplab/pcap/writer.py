"""Write the segments of a trace as a classic pcap file.

Format: libpcap "classic" (magic 0xa1b2c3d4, microsecond timestamps, version
2.4), link type LINKTYPE_RAW (101): every record is a bare IPv4 or IPv6
packet, so one file holds both.  The packet bytes are the in-memory ``raw``
key of ``segment`` events; they already carry correct IP and TCP checksums
(they are what the engine emitted).

Which events become packets: every segment with ``event == "send"`` (a
trace host put it on the wire) and every ``event == "recv"`` (a segment from
outside the trace's hosts, e.g. the kernel on a TUN device), at the event's
time ``t``.  The file is what a capture *at the sender* would show, so:

* a segment whose fate is ``dropped`` is still written: it was on the wire
  when it left the sender; the network lost it later;
* a ``duplicated`` segment is written once (the copy is the network's doing),
  and a ``corrupted`` one is written as sent (the damage happened in flight).

Events without ``raw`` (a trace loaded back from JSON) are rebuilt from their
fields: addresses, ports, flags, seq, ack, window, the MSS / window-scale /
SACK-permitted options, and a payload of ``len`` zero bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Any

from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import Mss, SackPermitted, TcpOption, TcpSegment, WindowScale, parse_flags

LINKTYPE_RAW = 101
SNAPLEN = 262144
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def _split(endpoint: str) -> tuple[str, int]:
    addr, _, port = str(endpoint).rpartition(":")
    return addr.strip("[]"), int(port)


def _options(opts: Iterable[Any]) -> tuple[TcpOption, ...]:
    out: list[TcpOption] = []
    for text in opts or ():
        words = str(text).split()
        try:
            if words[0] == "mss":
                out.append(Mss(int(words[1])))
            elif words[0] in ("wscale", "ws"):
                out.append(WindowScale(int(words[1])))
            elif words[0] in ("sackOK", "sack_perm", "sackok"):
                out.append(SackPermitted())
        except (IndexError, ValueError):
            continue
    return tuple(out)


def packet_bytes(e: dict[str, Any]) -> bytes:
    """The IP packet of a segment event: ``raw``, or rebuilt from the fields."""
    raw = e.get("raw")
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    src, sport = _split(e["src"])
    dst, dport = _split(e["dst"])
    seg = TcpSegment(sport, dport, int(e.get("seq", 0)), int(e.get("ack", 0)),
                     parse_flags(str(e.get("flags", ""))), int(e.get("win", 0)), 0,
                     _options(e.get("opts", ())), bytes(int(e.get("len", 0))))
    return emit_ip_tcp(src, dst, seg)


def wire_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segment events that were on the wire, in time order (stable)."""
    out = [e for e in events
           if e.get("kind") == "segment" and e.get("event") in ("send", "recv")
           and "src" in e and "dst" in e]
    out.sort(key=lambda e: float(e.get("t", 0.0)))
    return out


def pcap_bytes(events: Iterable[dict[str, Any]], epoch: float = 0.0) -> bytes:
    """The whole pcap file as bytes; timestamps are ``epoch + t``."""
    parts = [_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)]
    for e in wire_events(events):
        data = packet_bytes(e)
        ts = epoch + float(e.get("t", 0.0))
        usec_total = round(ts * 1_000_000)
        sec, usec = divmod(max(usec_total, 0), 1_000_000)
        caplen = min(len(data), SNAPLEN)
        parts.append(_RECORD.pack(sec, usec, caplen, len(data)))
        parts.append(data[:caplen])
    return b"".join(parts)


def write_pcap(events: Iterable[dict[str, Any]], path: str | os.PathLike[str],
               *, epoch: float = 0.0) -> int:
    """Write the trace's wire segments to ``path``; returns the number of packets."""
    evs = list(events)
    data = pcap_bytes(evs, epoch)
    with open(path, "wb") as fp:
        fp.write(data)
    return len(wire_events(evs))
