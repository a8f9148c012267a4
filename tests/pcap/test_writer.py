"""pcap out: an engine trace written as pcap, decoded by dpkt and checked field by field."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import dpkt

from tcplab.pcap.writer import LINKTYPE_RAW, write_pcap
from tcplab.render.sample import engine_trace, lose_first_fin
from tcplab.trace import to_json_event


def _ones(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _lossy() -> list[dict[str, Any]]:
    return engine_trace(drop=lose_first_fin("server"))


def _check(events: list[dict[str, Any]], path: Path, verify_payload: bool) -> None:
    sent = sorted((e for e in events if e["kind"] == "segment" and e["event"] == "send"),
                  key=lambda e: e["t"])
    with path.open("rb") as fp:
        reader = dpkt.pcap.Reader(fp)
        assert reader.datalink() == LINKTYPE_RAW
        packets = list(reader)
    assert len(packets) == len(sent)
    flag_bits = {"S": dpkt.tcp.TH_SYN, "A": dpkt.tcp.TH_ACK, "F": dpkt.tcp.TH_FIN,
                 "R": dpkt.tcp.TH_RST, "P": dpkt.tcp.TH_PUSH}
    for (ts, buf), e in zip(packets, sent, strict=True):
        assert abs(ts - e["t"]) < 1e-6
        ip = dpkt.ip.IP(buf)
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        src, sport = e["src"].rsplit(":", 1)
        dst, dport = e["dst"].rsplit(":", 1)
        assert socket.inet_ntoa(ip.src) == src and socket.inet_ntoa(ip.dst) == dst
        assert (tcp.sport, tcp.dport) == (int(sport), int(dport))
        want = 0
        for letter in e["flags"]:
            want |= flag_bits[letter]
        assert tcp.flags == want
        assert (tcp.seq, tcp.ack, len(tcp.data)) == (e["seq"], e["ack"], e["len"])
        # independent checksum checks: IPv4 header and TCP over the pseudo-header
        hdr = bytes(buf[:ip.hl * 4])
        assert _ones(hdr) == 0xFFFF
        seg = bytes(buf[ip.hl * 4:ip.len])
        pseudo = ip.src + ip.dst + struct.pack("!BBH", 0, 6, len(seg))
        assert _ones(pseudo + seg) == 0xFFFF
        if verify_payload and "raw" in e:
            assert bytes(buf) == e["raw"]


def test_pcap_matches_the_trace_with_checksums(tmp_path: Path) -> None:
    events = _lossy()
    assert any(e.get("fate") == "dropped" for e in events)
    path = tmp_path / "run.pcap"
    n = write_pcap(events, path)
    assert n == sum(1 for e in events if e["kind"] == "segment" and e["event"] == "send")
    _check(events, path, verify_payload=True)


def test_trace_from_json_is_rebuilt_without_raw_bytes(tmp_path: Path) -> None:
    events = [to_json_event(e) for e in engine_trace()]
    assert all("raw" not in e for e in events)
    path = tmp_path / "json.pcap"
    write_pcap(events, path)
    _check(events, path, verify_payload=False)
