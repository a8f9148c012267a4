"""TUN offloads: the kernel's 64 KB super-segments in, tcplab's super-segments out.

The first tests take the virtio-net header apart byte by byte (no device needed);
the rest run against the kernel: what the trace and the pcap show of a
super-segment, tcplab's runs of segments leaving as one write, packets the kernel
did not checksum (a packet socket's) checked in full, and the fallback when the
kernel refuses offloads.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tun_helpers import check_output, run

from tcplab.api import transports as aio
from tcplab.engine import Outgoing
from tcplab.pcap.writer import write_pcap
from tcplab.trace import Trace, validate_event
from tcplab.tun import TunBackend, bulk_config
from tcplab.tun.bulk import kernel_to_tcplab, tcplab_to_kernel
from tcplab.tun.device import TUNSETOFFLOAD, open_tun
from tcplab.tun.netns import Namespace
from tcplab.tun.peer import payload
from tcplab.tun.vnet import (
    F_NEEDS_CSUM,
    GSO_TCPV4,
    GSO_TCPV6,
    VNET_HDR,
    can_follow,
    decode,
    fill_checksum,
    super_segment,
)
from tcplab.wire import ACK, PSH, SYN, TcpSegment, WireError, emit_ip_tcp, parse_ip_tcp

pytestmark = pytest.mark.timeout(60)

MSS = 1460


def _run_of(n: int, src_port: int = 40000, last: int = MSS) -> list[TcpSegment]:
    """``n`` consecutive segments of one connection, the last with PSH."""
    segs = []
    for i in range(n):
        size = MSS if i < n - 1 else last
        flags = ACK | (PSH if i == n - 1 else 0)
        segs.append(TcpSegment(src_port, 80, 1000 + i * MSS, 77, flags, 512,
                               payload=bytes([i % 251]) * size))
    return segs


# ------------------------------------------------------------------ the header, offline


@pytest.mark.parametrize(("src", "dst", "gso"), [("192.0.2.2", "192.0.2.1", GSO_TCPV4),
                                                 ("2001:db8::2", "2001:db8::1", GSO_TCPV6)])
def test_super_segment_reads_back_as_one_segment_of_the_whole_run(src: str, dst: str,
                                                                 gso: int) -> None:
    segs = _run_of(5, last=700)
    buf = b"".join(super_segment(src, dst, segs))
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(buf)
    ihl = 40 if gso == GSO_TCPV6 else 20
    assert (flags, gso_type, gso_size, csum_start, csum_offset) == (F_NEEDS_CSUM, gso, MSS,
                                                                    ihl, 16)
    assert hdr_len == ihl + 20
    d = decode(buf, vnet=True)
    assert (d.src, d.dst, d.gso_size) == (src, dst, MSS)
    assert d.seg.seq == 1000 and d.seg.flags == ACK | PSH  # PSH of the last piece
    assert d.seg.payload == b"".join(s.payload for s in segs)
    # The checksum was left to the device; completed, the packet is a correct one.
    ip, seg = parse_ip_tcp(fill_checksum(d))
    assert ip.src == src and seg.payload == d.seg.payload


def test_one_segment_goes_alone_with_the_checksum_left_to_the_kernel() -> None:
    (seg,) = _run_of(1, last=100)
    buf = b"".join(super_segment("192.0.2.2", "192.0.2.1", [seg]))
    assert VNET_HDR.unpack_from(buf)[:2] == (F_NEEDS_CSUM, 0)
    d = decode(buf, vnet=True)
    assert d.gso_size == 0 and d.seg == seg
    assert parse_ip_tcp(fill_checksum(d))[1] == seg


def test_only_full_segments_of_one_connection_in_sequence_make_a_run() -> None:
    a, b, c = _run_of(3)
    assert can_follow(a, b, MSS) and can_follow(b, c, MSS)
    assert not can_follow(b, a, MSS)  # out of order
    assert not can_follow(a, c, MSS)  # a gap
    assert not can_follow(c, c.replace(seq=c.seq + MSS), MSS)  # PSH only on the last
    assert not can_follow(a, b.replace(window=1), MSS)  # the header must be the same
    assert not can_follow(a, b.replace(ack=78), MSS)
    assert not can_follow(a, b.replace(src_port=40001), MSS)
    assert not can_follow(a, b.replace(flags=ACK | SYN), MSS)
    short = a.replace(payload=b"x" * 100)
    assert not can_follow(short, b.replace(seq=short.seq + 100), MSS)  # a short one ends it


def _hdr(flags: int = 0, gso_type: int = 0, gso_size: int = 0, csum_start: int = 0,
         csum_offset: int = 0) -> bytes:
    return VNET_HDR.pack(flags, gso_type, 40, gso_size, csum_start, csum_offset)


GOOD = emit_ip_tcp("192.0.2.1", "192.0.2.2", TcpSegment(5000, 80, 1, 0, SYN, 65535))


@pytest.mark.parametrize(("buf", "reason"), [
    (b"\x01\x02", "truncated virtio-net header"),
    (_hdr(), "empty packet"),
    (_hdr(gso_type=GSO_TCPV6, gso_size=MSS) + GOOD, "GSO type 4 does not match IPv4"),
    (_hdr(gso_type=GSO_TCPV4) + GOOD, "GSO packet with segment size 0"),
    (_hdr(F_NEEDS_CSUM, csum_start=20, csum_offset=6) + GOOD,
     "checksum offload not at the TCP checksum"),
    (_hdr() + GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF]), "bad checksum"),
    (_hdr() + GOOD[:30], "bad IPv4 total length"),
    (_hdr(gso_type=3, gso_size=MSS) + GOOD, "GSO type 3 does not match IPv4"),
])
def test_what_the_header_or_the_packet_gets_wrong_is_named(buf: bytes, reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode(buf, vnet=True)
    assert err.value.reason == reason


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_any_bytes_after_any_header_either_decode_or_raise_wire_error(
        body: bytes, flags: int, gso_type: int, gso_size: int, start: int,
        offset: int) -> None:
    for data in (body, GOOD[:20] + body, GOOD + body):
        try:
            d = decode(_hdr(flags, gso_type, gso_size, start, offset) + data, vnet=True)
        except WireError:
            continue
        fill_checksum(d)  # a packet that decodes can always be completed


# ------------------------------------------------------------------ against the kernel


def test_kernel_super_segments_reach_the_engine_whole_and_the_trace_marks_them(
        tmp_path: Path) -> None:
    n = 2 << 20

    async def scenario() -> TunBackend:
        async with TunBackend(config=bulk_config(1500), kernel_states=False) as b:
            assert b.vnet, b.offload_notice
            got = await kernel_to_tcplab(b, n, timeout=30)
            assert got.nbytes == n and got.sha256 == got.peer["sha256"]
            return b

    b = run(scenario())
    recv = [e for e in b.trace.segments("recv") if e["len"]]
    supers = [e for e in recv if "tso" in e]
    assert supers, "the kernel sent no super-segment"
    assert all(e["tso"] == MSS and e["len"] > MSS for e in supers)
    assert sum(e["len"] for e in recv) == n
    assert b.super_in == len(supers)
    for e in supers:
        assert not validate_event(e)
        ip, seg = parse_ip_tcp(e["raw"])  # the checksum was completed: it verifies
        assert len(seg.payload) == e["len"] and ip.dst == b.addr
    # In the pcap a super-segment is one large packet, as tcpdump shows it on the device.
    path = tmp_path / "k2t.pcap"
    write_pcap(b.trace.events, str(path))
    with path.open("rb") as fh:
        sizes = [len(dpkt.ip.IP(buf).data.data) for _ts, buf in dpkt.pcap.Reader(fh)]
    assert max(sizes) == max(e["len"] for e in supers) > MSS


def test_tcplab_writes_its_full_segments_as_super_segments() -> None:
    data = payload(2 << 20)

    async def scenario() -> tuple[TunBackend, Any]:
        async with TunBackend(config=bulk_config(1500), kernel_states=False) as b:
            sent = await tcplab_to_kernel(b, data, timeout=30)
            return b, sent

    b, sent = run(scenario())
    assert sent.peer["bytes"] == len(data)
    assert sent.peer["sha256"] == hashlib.sha256(data).hexdigest()
    assert b.super_out > 0
    out = [e for e in b.trace.segments("send") if e["len"]]
    # The engine's segments stay wire-sized in the trace; those that left in one write
    # say so, with the size the kernel cuts them at.
    assert max(e["len"] for e in out) == MSS
    marked = [e for e in out if "tso" in e]
    assert marked and all(e["tso"] == MSS for e in marked)
    assert len(marked) > b.super_out  # several segments per write


def test_without_a_trace_the_engine_hands_over_runs_of_segments_whole() -> None:
    """Tracing off (the benchmark's and a quiet server's case): the engine gives the
    backend each run of full segments as one super-segment (the trace, when on, shows
    every segment, so then it builds them one by one, as the test above)."""
    data = payload(4 << 20)
    handed: list[tuple[int, int]] = []

    async def scenario() -> tuple[TunBackend, Any]:
        async with TunBackend(config=bulk_config(1500), trace=Trace(enabled=False),
                              kernel_states=False) as b:
            write_vnet = b._write_vnet

            def spy(out: list[Outgoing]) -> None:
                handed.extend((o.gso, len(o.seg.payload)) for o in out)
                write_vnet(out)

            b._write_vnet = spy  # type: ignore[method-assign]
            sent = await tcplab_to_kernel(b, data, timeout=30)
            return b, sent

    b, sent = run(scenario())
    assert sent.peer["bytes"] == len(data)
    assert sent.peer["sha256"] == hashlib.sha256(data).hexdigest()
    runs = [n for gso, n in handed if gso]
    assert runs and all(gso == MSS for gso, _n in handed if gso)
    assert sum(runs) > len(data) * 3 // 4  # most of the data left in super-segments
    assert max(runs) == 44 * MSS  # as many full segments as 64 KB hold
    assert b.super_out >= len(runs)  # each one write
    # The engine counts the segments on the wire, not the writes.
    assert b.host.counters.out_segs >= len(data) // MSS > 10 * b.packets_out


def _packet_socket(b: TunBackend) -> socket.socket:
    """A packet socket on the device, inside the namespace: what it sends reaches tcplab
    exactly as built (no routing, any source address, no checksum help)."""
    return b.ns.call(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM))


def test_packets_the_kernel_did_not_checksum_are_verified_in_full() -> None:
    async def scenario() -> TunBackend:
        async with TunBackend(kernel_states=False) as b:
            await aio.start_server(b.host, asyncio.Protocol, port=80, kick=b.kick)
            good = emit_ip_tcp("192.0.2.1", b.addr, TcpSegment(5001, 80, 1, 0, SYN, 65535))
            bad = bytearray(good)
            bad[-1] ^= 0x55  # a flipped bit in the TCP header: the sum no longer verifies
            tiny = good[:20]  # an IPv4 header that says 40 bytes and brings 20
            ps = _packet_socket(b)
            try:
                for pkt in (bytes(bad), tiny, good):
                    ps.sendto(pkt, ("tcplab0", 0x0800))
            finally:
                ps.close()
            for _ in range(100):
                if b.packets_in >= 3:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            return b

    b = run(scenario())
    drops = [e.get("reason") for e in b.trace.segments("drop")]
    assert "bad checksum" in drops
    assert "bad IPv4 total length" in drops
    assert b.malformed == 2 and b.host.counters["TcpInErrs"] == 2
    synacks = [e for e in b.trace.segments("send") if e["flags"] == "SA"]
    assert len(synacks) == 1 and synacks[0]["dst"] == "192.0.2.1:5001"  # the good one


def test_a_kernel_that_refuses_offloads_gets_one_packet_per_write_and_one_line() -> None:
    def refusing(fd: int, request: int, arg: Any) -> Any:
        if request == TUNSETOFFLOAD:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        import fcntl
        return fcntl.ioctl(fd, request, arg)

    with Namespace() as ns:
        fd, vnet, notice = ns.call(lambda: open_tun("tcplab9", True, refusing))
        try:
            assert not vnet
            assert notice == ("TUN offloads unavailable (TUNSETOFFLOAD: Invalid argument); "
                              "one packet per write")
            # The device is there, without a virtio-net header.
            res = run(check_output(ns.exec_argv(["ip", "-d", "link", "show", "tcplab9"])))
            assert res[0] == 0 and "vnet_hdr off" in res[1]
        finally:
            os.close(fd)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "fallback"])
def test_curl_gets_its_page_either_way(offload: bool) -> None:
    async def scenario() -> None:
        async with TunBackend(offload=offload) as b:
            assert b.vnet is offload
            from tcplab.http.tun import start_http
            server, _state = await start_http(b, 80)
            rc, out, err = await check_output(b.ns.exec_argv(
                ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://{b.addr}/"]))
            assert rc == 0, err
            assert out == "200"
            server.close()

    run(scenario())

