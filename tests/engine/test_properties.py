"""Property tests: whatever a peer sends, the engine never raises and keeps its invariants.

Each example starts a connection in one of the 11 states (the harness
builders, with ISNs that may sit next to the 2**32 wrap), then plays a random
script of peer segments (flags, sequence and acknowledgment numbers near the
window edges, payloads, windows, options), timer expiries and application
calls.  After every step:

* no exception escaped (the engine answers a peer's misbehaviour, never raises);
* every connection is in one of the 11 states;
* SND.UNA <= SND.NXT <= SND.MAX (mod 2**32) and what is in flight is still buffered;
* windows are within their bounds, buffers within their sizes;
* RCV.NXT never moves backwards once synchronized;
* a RST is never answered with a RST.

Budgets are fixed (``max_examples``) and ``deadline=None``, so the run time
is predictable: a few seconds for the whole file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.engine import ALL_STATES, Connection, TcpConfig, TcpError
from tcplab.wire import (
    RST,
    SYN,
    Mss,
    TcpSegment,
    WindowScale,
    emit_ip_tcp,
    emit_ipv4,
    seq_le,
    seq_sub,
)

from . import harness
from .harness import LOCAL, REMOTE, Peer

MAX_WSCALED = 0xFFFF << 14

EDGES = [-(2**31), -70_000, -65_536, -65_535, -1461, -2, -1, 0, 1, 2, 3, 1460, 65_534,
         65_535, 65_536, 2**31 - 1]
offsets = st.one_of(st.sampled_from(EDGES), st.integers(-(2**32), 2**32))
flag_sets = st.one_of(
    st.sampled_from([0x10, 0x18, 0x11, 0x19, 0x02, 0x12, 0x04, 0x14, 0x01, 0x03, 0x06, 0x16]),
    st.integers(0, 255),
)
options = st.one_of(
    st.just(()),
    st.builds(lambda m: (Mss(m),), st.integers(0, 0xFFFF)),
    st.builds(lambda m, w: (Mss(m), WindowScale(w)), st.integers(0, 0xFFFF), st.integers(0, 20)),
)
segments = st.fixed_dictionaries({
    "kind": st.just("seg"),
    "flags": flag_sets,
    "seq_base": st.sampled_from(["start", "rcv_nxt", "rcv_edge"]),
    "seq_off": offsets,
    "ack_base": st.sampled_from(["start", "snd_una", "snd_nxt", "snd_max"]),
    "ack_off": offsets,
    "len": st.sampled_from([0, 0, 0, 1, 3, 100, 1460, 1461, 3000]),
    "window": st.sampled_from([0, 1, 100, 1000, 65_535]),
    "options": options,
    "dt": st.sampled_from([0.0, 0.001, 0.04, 0.5, 1.0, 3.0]),
})
app_calls = st.fixed_dictionaries({
    "kind": st.sampled_from(["send", "recv", "close", "shutdown", "abort", "nodelay"]),
    "n": st.sampled_from([1, 100, 1460, 5000]),
})
timers = st.fixed_dictionaries({"kind": st.just("timer")})
actions = st.lists(st.one_of(segments, segments, segments, timers, app_calls),
                   min_size=1, max_size=25)
configs = st.sampled_from([
    TcpConfig(),
    TcpConfig(rcv_buf=1000, snd_buf=3000),
    TcpConfig(rfc5961=False, rfc1337=False, challenge_ack_limit=1),
    TcpConfig(delayed_ack=0, nagle=False, mss=536, data_retries=2, syn_retries=1),
])
isns = st.sampled_from([(harness.LOCAL_ISS, harness.REMOTE_ISS), (2**32 - 1, 2**32 - 2),
                        (2**31 - 1, 2**31), (0, 2**32 - 3)])

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _segment(p: Peer, a: dict[str, Any]) -> TcpSegment:
    conn = p.host.conns.get(harness.KEY)
    start_seq, start_ack = p.seq, p.nxt
    if conn is not None:
        seq_base = {"start": start_seq, "rcv_nxt": int(conn.rcv_nxt),
                    "rcv_edge": int(conn.rcv_nxt) + conn.rcv_wnd}[a["seq_base"]]
        ack_base = {"start": start_ack, "snd_una": int(conn.snd_una),
                    "snd_nxt": int(conn.snd_nxt), "snd_max": int(conn.snd_max)}[a["ack_base"]]
    else:
        seq_base, ack_base = start_seq, start_ack
    return harness.PEER_TEMPLATE.replace(
        flags=a["flags"], seq=(seq_base + a["seq_off"]) & 0xFFFFFFFF,
        ack=(ack_base + a["ack_off"]) & 0xFFFFFFFF, window=a["window"],
        options=a["options"], payload=bytes(a["len"]))


def _app(p: Peer, a: dict[str, Any]) -> None:
    conn = p.conn
    if conn is None:
        return
    kind, now = a["kind"], p.now
    try:
        if kind == "send":
            conn.send(b"d" * a["n"], now)
        elif kind == "recv":
            conn.recv(a["n"], now)
        elif kind == "close":
            conn.close(now)
        elif kind == "shutdown":
            conn.shutdown(now)
        elif kind == "abort":
            conn.abort(now)
        else:
            conn.set_nodelay(True)
    except TcpError:
        pass  # misuse of the API (send after close, ...) is allowed to raise TcpError


def _check(p: Peer, rcv_seen: dict[int, int]) -> None:
    for conn in p.host.conns.values():
        _check_conn(conn, rcv_seen)
    deadline = p.host.next_deadline()
    assert deadline is None or deadline >= 0


def _check_conn(c: Connection, rcv_seen: dict[int, int]) -> None:
    assert c.state in ALL_STATES
    assert seq_le(c.snd_una, c.snd_nxt) and seq_le(c.snd_nxt, c.snd_max), c.tcb()
    in_flight = seq_sub(c.snd_max, c.snd_una)
    assert 0 <= in_flight <= len(c.sndbuf) + 2, c.tcb()  # + SYN + FIN
    assert (0 <= c.snd_wnd <= MAX_WSCALED and c.snd_wnd <= c.max_snd_wnd) or c.snd_wnd == 0
    assert 0 <= c.rcv_wnd <= c.rcv_buf
    assert len(c.rcvbuf) <= c.rcv_buf, (len(c.rcvbuf), c.rcv_buf)
    assert len(c.sndbuf) <= c.config.snd_buf
    assert 64 <= c.snd_mss <= c.config.mss
    assert 0 <= c.snd_wscale <= 14 and 0 <= c.rcv_wscale <= 14
    if c.state.synchronized:
        prev = rcv_seen.get(id(c))
        if prev is not None:
            assert (int(c.rcv_nxt) - prev) & 0xFFFFFFFF < 2**31, "RCV.NXT moved backwards"
        rcv_seen[id(c)] = int(c.rcv_nxt)


def _run(p: Peer, script: list[dict[str, Any]]) -> None:
    rcv_seen: dict[int, int] = {}
    _check(p, rcv_seen)
    for a in script:
        kind = a["kind"]
        if kind == "seg":
            seg = _segment(p, a)
            p.inject(seg, at=p.now + a["dt"])
            out = p.take()
            if seg.flags & RST:
                assert not any(o.flags & RST for o in out), "a RST answered with a RST"
        elif kind == "timer":
            deadline = p.host.next_deadline()
            if deadline is not None:
                p.advance(max(deadline, p.now))
            p.take()
        else:
            _app(p, a)
            p.take()
        _check(p, rcv_seen)


@pytest.mark.parametrize("state", list(harness.BUILDERS))
@SETTINGS
@given(script=actions, config=configs, isn=isns)
def test_any_segments_keep_invariants(state: str, script: list[dict[str, Any]],
                                      config: TcpConfig, isn: tuple[int, int]) -> None:
    p = harness.BUILDERS[state](dataclasses.replace(config), iss=isn[0], riss=isn[1])
    assert p.state == state
    _run(p, script)


# ---------------------------------------------------------------- raw bytes


raw_fields = st.fixed_dictionaries({
    "sport": st.sampled_from([harness.REMOTE_PORT, 1, 65535]),
    "dport": st.sampled_from([harness.LOCAL_PORT, 81]),
    "seq": st.integers(0, 2**32 - 1),
    "ack": st.integers(0, 2**32 - 1),
    "flags": st.integers(0, 255),
    "window": st.integers(0, 0xFFFF),
    "payload": st.binary(max_size=64),
})


@SETTINGS
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_into_receive_never_raise(data: bytes) -> None:
    p = harness.established()
    p.host.receive(data, 1.0)
    p.take()


@SETTINGS
@given(f=raw_fields, cut=st.integers(0, 80), flip=st.integers(0, 79), bit=st.integers(0, 7))
def test_mangled_packets_never_raise(f: dict[str, Any], cut: int, flip: int, bit: int) -> None:
    """Well-formed packets with random fields, then truncated or with one bit flipped."""
    p = harness.established()
    seg = TcpSegment(f["sport"], f["dport"], f["seq"], f["ack"], f["flags"], f["window"],
                     0, (), f["payload"])
    good = emit_ip_tcp(REMOTE, LOCAL, seg)
    p.host.receive(good, 1.0)
    p.host.receive(good[:cut], 1.0)
    bad = bytearray(good)
    if flip < len(bad):
        bad[flip] ^= 1 << bit
    p.host.receive(bytes(bad), 1.0)
    # An IPv4 packet carrying a protocol that is not TCP, and a raw TCP header with bad options.
    p.host.receive(emit_ipv4(REMOTE, LOCAL, good[20:], proto=17), 1.0)
    p.take()
    _check(p, {})


def test_syn_flood_of_random_segments_leaves_listener_bounded() -> None:
    """A burst of SYNs from many ports: the SYN queue never exceeds the backlog."""
    p = harness.listen(TcpConfig(syn_cookies="never"), backlog=4)
    for port in range(1000, 1200):
        p.inject(harness.incoming("S", port * 7).replace(src_port=port,
                                     flags=SYN))
    assert p.listener is not None and len(p.listener.syn_queue) == 4
    assert len(p.take()) == 4
