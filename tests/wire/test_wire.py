"""Wire codec: round trips, an independent decoder (dpkt), and every malformed case."""

from __future__ import annotations

import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.wire import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    SYN,
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpSegment,
    Timestamps,
    UnknownOption,
    WindowScale,
    WireError,
    emit_ip_tcp,
    emit_tcp,
    flags_str,
    internet_checksum,
    parse_flags,
    parse_ip,
    parse_ip_tcp,
    parse_tcp,
    seq_add,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
    seq_sub,
)

A, B = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def syn_segment() -> TcpSegment:
    return TcpSegment(40000, 80, 1000, 0, SYN | ECE | CWR, 65535, 0,
                      (Mss(1460), SackPermitted(), Timestamps(7, 0), Nop(), WindowScale(7)))


def test_round_trip_all_options_and_flags() -> None:
    seg = TcpSegment(1, 2, 0xFFFFFFFF, 5, FIN | SYN | PSH | ACK | ECE | CWR | 0x20, 1234, 77,
                     (Mss(536), Nop(), WindowScale(14), SackPermitted(),
                      Sack(((1, 2),)), Timestamps(1, 2), UnknownOption(30, b"ab"), Eol()),
                     b"hello")
    raw = emit_tcp(seg, A, B)
    back = parse_tcp(raw, A, B)
    assert back == seg
    assert back.flag_letters == "SFPUECA"


def test_dpkt_decodes_what_we_emit_ipv4() -> None:
    pkt = emit_ip_tcp(A, B, TcpSegment(40000, 80, 1000, 2000, ACK | PSH, 501, 0, (), b"GET /"))
    ip = dpkt.ip.IP(pkt)
    assert ip.p == 6 and ip.len == len(pkt)
    tcp = ip.data
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.win) == (40000, 80, 1000, 2000, 501)
    assert tcp.data == b"GET /"
    # Recompute both checksums independently: dpkt fills them in when zeroed.
    ip2 = dpkt.ip.IP(pkt)
    ip2.sum = 0
    ip2.data.sum = 0
    assert bytes(ip2) == pkt


def test_dpkt_decodes_what_we_emit_ipv6_and_options() -> None:
    pkt = emit_ip_tcp(A6, B6, syn_segment())
    ip = dpkt.ip6.IP6(pkt)
    tcp = ip.data
    opts = dpkt.tcp.parse_opts(tcp.opts)
    assert opts[0] == (dpkt.tcp.TCP_OPT_MSS, struct.pack("!H", 1460))
    assert (dpkt.tcp.TCP_OPT_WSCALE, b"\x07") in opts
    assert tcp.flags & dpkt.tcp.TH_ECE and tcp.flags & dpkt.tcp.TH_CWR
    _ip, seg = parse_ip_tcp(pkt)
    assert seg == syn_segment()


def test_parse_what_dpkt_builds() -> None:
    tcp = dpkt.tcp.TCP(sport=5, dport=6, seq=7, ack=8, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK,
                       win=100, off=7, opts=b"\x02\x04\x05\xb4\x01\x01\x04\x02", data=b"")
    ip = dpkt.ip.IP(src=bytes([192, 0, 2, 1]), dst=bytes([192, 0, 2, 2]), p=6, data=tcp)
    _ip, seg = parse_ip_tcp(bytes(ip))
    assert seg.flag_letters == "SA" and seg.mss == 1460 and seg.sack_permitted


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00" * 19, "truncated header"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 4 << 4, 0, 0, 0, 0), "data offset < 5"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 6 << 4, 0, 0, 0, 0), "data offset past the end"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 6 << 4, 0, 0, 0, 0) + b"\x02\x00\x00\x00",
         "option length 0"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 6 << 4, 0, 0, 0, 0) + b"\x02\x01\x00\x00",
         "option length 1"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 6 << 4, 0, 0, 0, 0) + b"\x01\x01\x02\x08",
         "option runs past the header"),
        (struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 6 << 4, 0, 0, 0, 0) + b"\x01\x01\x01\x02",
         "option length missing"),
    ],
)
def test_malformed_header_raises_wire_error(raw: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        parse_tcp(raw)
    assert info.value.reason == reason


def test_bad_checksum_is_detected_for_every_single_bit_flip() -> None:
    raw = emit_tcp(TcpSegment(1, 2, 3, 4, ACK, 5, 0, (), b"data!"), A, B)
    assert parse_tcp(raw, A, B).payload == b"data!"
    for i in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[i // 8] ^= 1 << (i % 8)
        # Flips in the data offset may fail earlier, with their own reason.
        with pytest.raises(WireError):
            parse_tcp(bytes(flipped), A, B)


def test_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0x0000


def test_ipv4_bad_header_checksum_and_fragments() -> None:
    pkt = bytearray(emit_ip_tcp(A, B, TcpSegment(1, 2, 3, 4, ACK)))
    pkt[8] ^= 1  # TTL
    with pytest.raises(WireError, match="IPv4 header checksum"):
        parse_ip(bytes(pkt))
    with pytest.raises(WireError):
        parse_ip(b"")
    with pytest.raises(WireError):
        parse_ip(b"\x70" + b"\x00" * 40)


def test_flag_letters_in_schema_order() -> None:
    assert flags_str(SYN | ACK) == "SA"
    assert flags_str(FIN | ACK) == "FA"
    assert flags_str(PSH | ACK) == "PA"
    assert parse_flags("SA") == SYN | ACK
    assert parse_flags(".") == ACK


class TestSeq:
    """Sequence numbers are plain ints compared modulo 2**32 (RFC 9293 3.4, RFC 1982)."""

    def test_comparisons_wrap(self) -> None:
        a = 0xFFFFFFF0
        b = seq_add(a, 0x20)
        assert b == 0x10
        assert seq_lt(a, b) and seq_gt(b, a) and seq_le(a, b) and seq_ge(b, a)
        assert not seq_lt(b, a) and not seq_gt(a, b)
        assert seq_sub(b, a) == 0x20 and seq_sub(a, b) == -0x20
        assert seq_add(a, 0x10) == 0
        assert seq_max(a, b) == b and seq_min(a, b) == a
        assert seq_le(a, a) and seq_ge(a, a) and not seq_lt(a, a) and not seq_gt(a, a)

    def test_in_window_wraps(self) -> None:
        assert seq_in_window(5, 0xFFFFFFF0, 100)
        assert not seq_in_window(0xFFFFFFEF, 0xFFFFFFF0, 100)
        assert not seq_in_window(0, 0, 0)

    @given(st.integers(0, 2**32 - 1), st.integers(1, 2**31 - 1))
    def test_adding_a_positive_distance_is_greater(self, base: int, d: int) -> None:
        assert seq_gt(seq_add(base, d), base)
        assert seq_sub(seq_add(base, d), base) == d
        assert not seq_le(seq_add(base, d), base)

    @settings(max_examples=2000, deadline=None)
    @given(st.integers(-4096, 4096), st.integers(-(2**31) + 1, 2**31 - 1),
           st.integers(-(2**30), 2**30), st.sampled_from([0, 2**31, 2**32 - 1, 2**32 - 4096]))
    def test_functions_match_unwrapped_reference(self, near: int, x: int, y_off: int,
                                                 pivot: int) -> None:
        """Two numbers less than 2**31 apart, placed near the wrap point: every
        function must agree with plain integer arithmetic on the unwrapped values."""
        base = pivot + near  # an unwrapped origin around the wrap (or half-way) point
        ux = base + x
        uy = ux + y_off       # |ux - uy| <= 2**30 < 2**31: the order is well defined
        a, b = ux % 2**32, uy % 2**32
        assert seq_lt(a, b) == (ux < uy)
        assert seq_le(a, b) == (ux <= uy)
        assert seq_gt(a, b) == (ux > uy)
        assert seq_ge(a, b) == (ux >= uy)
        assert seq_sub(a, b) == ux - uy
        assert seq_add(a, uy - ux) == b
        assert seq_max(a, b) == max(ux, uy) % 2**32
        assert seq_min(a, b) == min(ux, uy) % 2**32
        size = abs(y_off) + 1
        assert seq_in_window(b, a, size) == (ux <= uy < ux + size)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    for call in (lambda: parse_tcp(data), lambda: parse_tcp(data, A, B), lambda: parse_ip(data),
                 lambda: parse_ip_tcp(data)):
        try:
            call()
        except WireError:
            pass


option_st = st.one_of(
    st.builds(Mss, st.integers(0, 0xFFFF)),
    st.just(Nop()),
    st.builds(WindowScale, st.integers(0, 14)),
    st.just(SackPermitted()),
    st.builds(Timestamps, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Sack, st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                             min_size=1, max_size=3).map(tuple)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 0xFFFF),
    st.lists(option_st, max_size=4), st.binary(max_size=64),
)
def test_emit_parse_round_trip(sp: int, dp: int, seq: int, ack: int, flags: int, win: int,
                               opts: list[object], payload: bytes) -> None:
    options = tuple(opts)
    try:
        raw = emit_tcp(TcpSegment(sp, dp, seq, ack, flags, win, 0, options, payload),  # type: ignore[arg-type]
                       A6, B6)
    except ValueError:
        return  # more than 40 bytes of options
    seg = parse_tcp(raw, A6, B6)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window) == (
        sp, dp, seq, ack, flags, win)
    assert seg.payload == payload
    parsed = seg.options
    while parsed and isinstance(parsed[-1], Eol):  # emit pads with EOL bytes
        parsed = parsed[:-1]
    assert parsed == options
