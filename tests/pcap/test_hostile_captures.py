"""Damaged and hostile capture files (issue 19, point 5): bounded reads, counted bad records.

Each file here is what a broken tool or an attacker writes: a record header that claims
4 GB, a pcapng block shorter than its own header, millions of empty records. Reading one
must cost what the file holds, not what its headers claim, and say in one line which
record is unreadable.
"""

from __future__ import annotations

import ast
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dpkt
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.cli.pcap import pcap as pcap_cli
from tcplab.pcap.reader import MAX_CAPLEN, MAX_NOTES, CaptureError, read_capture, read_packets
from tcplab.pcap.writer import pcap_bytes, wire_events
from tcplab.render.sample import engine_trace

SRC = Path(__file__).resolve().parents[2] / "src" / "tcplab"


def _good_pcap() -> bytes:
    return pcap_bytes(engine_trace())  # 7 segments of one connection, raw IP


def _good_pcapng(path: Path) -> None:
    with path.open("wb") as fp:
        writer = dpkt.pcapng.Writer(fp, linktype=101)
        for e in wire_events(engine_trace()):
            writer.writepkt(e["raw"], ts=e["t"] + 1_700_000_000)


def _peak_bytes(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
    except CaptureError:
        pass
    finally:
        _size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _segments(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["kind"] == "segment")


def test_pcap_record_claiming_4_gb_is_refused_without_reading_it(tmp_path: Path) -> None:
    good = _good_pcap()
    path = tmp_path / "huge-caplen.pcap"
    path.write_bytes(good + struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"x" * 64)
    with pytest.raises(CaptureError) as info:
        read_capture(path)
    assert str(info.value) == (f"packet 8 (record at byte {len(good)}): capture length "
                               f"4294967280 is over the maximum of {MAX_CAPLEN} bytes "
                               "(a damaged record header)")
    assert info.value.packet == 8
    assert _segments(info.value.events) == 7  # what came before is still drawn
    assert _peak_bytes(lambda: read_capture(path)) < 8_000_000  # no 4 GB buffer


def test_pcap_record_longer_than_the_rest_of_the_file_is_truncation(tmp_path: Path) -> None:
    good = _good_pcap()
    path = tmp_path / "cut.pcap"
    path.write_bytes(good + struct.pack("<IIII", 1, 0, 200_000, 200_000) + b"x" * 100)
    with pytest.raises(CaptureError, match=r"packet 8 .*capture truncated \(100 of 200000 "):
        read_capture(path)


def test_pcap_cut_inside_a_record_header_names_it(tmp_path: Path) -> None:
    good = _good_pcap()
    path = tmp_path / "cut-header.pcap"
    path.write_bytes(good + b"\x01\x02\x03\x04\x05")
    with pytest.raises(CaptureError, match=rf"packet 8 \(record at byte {len(good)}\): "
                                           r"capture truncated \(5 of the 16 bytes"):
        read_capture(path)


def test_millions_of_empty_records_are_counted_not_stored(tmp_path: Path) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    count = 50_000  # 800 kB of 16-byte records with no packet in them
    path = tmp_path / "empty-records.pcap"
    path.write_bytes(header + struct.pack("<IIII", 1, 0, 0, 0) * count)
    got: list[list[dict[str, Any]]] = []
    assert _peak_bytes(lambda: got.append(read_capture(path))) < 4_000_000  # no dict each
    (events,) = got
    notes = [e for e in events if e["kind"] == "note"]
    assert len(notes) == 1 + MAX_NOTES + 1  # the capture's note, 20 named, one count
    assert notes[1]["text"] == "packet 1 skipped: empty record"
    assert notes[-1]["skipped"] == count - MAX_NOTES
    assert notes[-1]["text"] == (f"{count - MAX_NOTES} more packets skipped: "
                                 f"empty record ({count - MAX_NOTES})")


def test_pcapng_block_claiming_4_gb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge-block.pcapng"
    _good_pcapng(path)
    good_size = path.stat().st_size
    with path.open("ab") as fp:
        fp.write(struct.pack("<II", 6, 0xFFFFFFF0) + b"x" * 64)  # an EPB of "4 GB"
    with pytest.raises(CaptureError, match=rf"packet 8 \(record at byte {good_size}\): "
                                           r"block length 4294967280 is over the maximum"):
        read_capture(path)
    assert _peak_bytes(lambda: read_capture(path)) < 8_000_000


def test_pcapng_block_shorter_than_its_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short-block.pcapng"
    _good_pcapng(path)
    with path.open("ab") as fp:
        fp.write(struct.pack("<II", 6, 4) + b"x" * 64)  # a read of -4 bytes = the whole file
    with pytest.raises(CaptureError, match=r"packet 8 .*block length 4 is shorter than a "
                                           r"block header") as info:
        read_capture(path)
    assert _segments(info.value.events) == 7


def test_pcapng_block_longer_than_the_file_is_truncation(tmp_path: Path) -> None:
    path = tmp_path / "cut-block.pcapng"
    _good_pcapng(path)
    with path.open("ab") as fp:
        fp.write(struct.pack("<II", 6, 1000) + b"x" * 64)
    with pytest.raises(CaptureError, match=r"packet 8 .*capture truncated \(64 of 992 bytes"):
        read_capture(path)


@pytest.mark.parametrize("tail", [
    struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0),
    struct.pack("<IIII", 1, 0, 100, 100) + b"\x45" * 100,  # an IPv4 header that lies
    b"\x00\x01",
])
def test_cli_names_the_bad_record_in_one_line(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(_good_pcap() + tail)
    res = CliRunner().invoke(pcap_cli, ["diagram", str(path)])
    assert res.exception is None or isinstance(res.exception, SystemExit)  # no traceback
    assert "1 TCP connection(s)" in res.output  # drawn up to the damage
    if res.exit_code:
        (error,) = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert "packet 8" in error


def test_pcap_modules_import_no_cycle() -> None:
    """follow and reader share packet, not each other (TYPE_CHECKING imports count)."""
    imports: dict[str, set[str]] = {}
    for name in ("packet", "follow", "reader", "writer"):
        tree = ast.parse((SRC / "pcap" / f"{name}.py").read_text())
        imports[name] = {
            node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            and node.module.startswith("tcplab.pcap.")}
    assert imports["packet"] == set()
    assert imports["follow"] == {"packet"}
    assert "follow" in imports["reader"]
    for name, deps in imports.items():
        for dep in deps:
            assert name not in imports[dep], f"{name} <-> {dep}"


@given(st.binary(max_size=400), st.sampled_from(["pcap", "pcapng"]))
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_bytes_after_a_good_start_never_raise(tmp_path: Path, junk: bytes,
                                                  kind: str) -> None:
    path = tmp_path / f"fuzz.{kind}"
    if kind == "pcap":
        path.write_bytes(_good_pcap() + junk)
    else:
        _good_pcapng(path)
        with path.open("ab") as fp:
            fp.write(junk)
    packets, notes, error = read_packets(path)
    assert len(packets) >= 7 and len(notes) <= MAX_NOTES + 1
    assert error is None or str(error).startswith("packet ")
