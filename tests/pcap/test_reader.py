"""pcap in: link types, pcapng, damaged files, and the passive state follower."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import dpkt
import pytest
from click.testing import CliRunner

from tcplab.cli.pcap import pcap as pcap_cli
from tcplab.pcap.reader import CaptureError, read_capture
from tcplab.pcap.writer import pcap_bytes, wire_events, write_pcap
from tcplab.render.sample import engine_trace, lose_first_fin


def _states(events: list[dict[str, Any]], host: str) -> list[str]:
    return [e["to"] for e in events if e["kind"] == "state" and e["host"] == host]


CLIENT, SERVER = "192.0.2.1:49002", "192.0.2.2:80"


def _write_linktype(path: Path, linktype: int, wrap: Any, ng: bool = False) -> None:
    events = engine_trace()
    with path.open("wb") as fp:
        writer = (dpkt.pcapng.Writer(fp, linktype=linktype) if ng
                  else dpkt.pcap.Writer(fp, linktype=linktype))
        for e in wire_events(events):
            writer.writepkt(wrap(e["raw"]), ts=e["t"] + 1_700_000_000)


def _eth(ip: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x05\x08\x00" + ip  # with a VLAN tag


def _sll(ip: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip


def _sll2(ip: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ip


@pytest.mark.parametrize(("linktype", "wrap", "ng"), [
    (101, lambda b: b, False), (1, _eth, False), (113, _sll, False), (276, _sll2, False),
    (1, _eth, True), (101, lambda b: b, True)],
    ids=["raw", "ethernet-vlan", "sll", "sll2", "pcapng-ethernet", "pcapng-raw"])
def test_read_link_types_and_infer_both_sides(tmp_path: Path, linktype: int, wrap: Any,
                                              ng: bool) -> None:
    path = tmp_path / "c.pcap"
    _write_linktype(path, linktype, wrap, ng)
    events = read_capture(path)
    segs = [e for e in events if e["kind"] == "segment"]
    assert len(segs) == 7  # S, SA, PA, PA, FA, FA (the server's ACK rides on its FIN), A
    assert segs[0]["flags"] == "S" and segs[0]["host"] == CLIENT
    assert _states(events, CLIENT) == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                                       "TIME-WAIT"]
    assert _states(events, SERVER) == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT",
                                       "LAST-ACK", "CLOSED"]
    tw = [e for e in events if e["kind"] == "timer" and e["host"] == CLIENT]
    assert tw and tw[0]["timer"] == "time-wait" and tw[0]["action"] == "armed"
    assert events[0]["kind"] == "note" and events[0]["epoch"] >= 1_700_000_000


def test_lost_fin_retransmission_is_flagged(tmp_path: Path) -> None:
    # A capture at the server sees the lost FIN too (it left the server).
    path = tmp_path / "lossy.pcap"
    write_pcap(engine_trace(drop=lose_first_fin("server")), path)
    events = read_capture(path)
    fins = [e for e in events if e["kind"] == "segment" and e["src"] == SERVER
            and "F" in e["flags"]]
    assert len(fins) == 2 and fins[1].get("retrans") is True
    assert _states(events, SERVER)[-1] == "CLOSED"
    assert _states(events, CLIENT)[-1] == "TIME-WAIT"


def test_truncated_capture_names_the_packet_and_keeps_what_was_decoded(
        tmp_path: Path) -> None:
    data = pcap_bytes(engine_trace())
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])  # the last record is cut short
    with pytest.raises(CaptureError, match="packet 7") as info:
        read_capture(path)
    assert info.value.packet == 7
    segs = [e for e in info.value.events if e["kind"] == "segment"]
    assert len(segs) == 6
    assert "CLOSE-WAIT" in _states(info.value.events, SERVER)


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "junk.pcap"
    path.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureError, match="not a pcap or pcapng") as info:
        read_capture(path)
    assert info.value.events == []


def test_cli_text_svg_html_and_damaged_capture(tmp_path: Path) -> None:
    data = pcap_bytes(engine_trace())
    good, cut = tmp_path / "good.pcap", tmp_path / "cut.pcap"
    good.write_bytes(data)
    cut.write_bytes(data[:-10])
    runner = CliRunner()
    res = runner.invoke(pcap_cli, ["diagram", str(good)])
    assert res.exit_code == 0, res.output
    assert "1 TCP connection(s)" in res.output and "FIN-WAIT-2 -> TIME-WAIT" in res.output
    svg, html = tmp_path / "d.svg", tmp_path / "d.html"
    res = runner.invoke(pcap_cli, ["diagram", str(good), "--svg", str(svg), "--html",
                                   str(html), "--relative", "--conn", "1"])
    assert res.exit_code == 0, res.output
    assert "TIME-WAIT" in svg.read_text() and "<script" in html.read_text()
    res = runner.invoke(pcap_cli, ["diagram", str(cut), "--svg", str(svg)])
    assert res.exit_code == 1
    assert "packet 7" in res.output and "Traceback" not in res.output
    assert "CLOSE-WAIT" in svg.read_text()  # drawn up to the damage
    res = runner.invoke(pcap_cli, ["diagram", str(tmp_path / "missing.pcap")])
    assert res.exit_code == 1 and "no such file" in res.output
