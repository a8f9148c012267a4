"""A host whose backend segments (TSO, ``EngineContext.gso_max``): runs of full segments
leave as one super-segment, and they are exactly the segments the engine would have
sent one by one; slow start under stretch ACKs (``abc_limit``).

The host under test (192.0.2.2, port 80) is driven in the peer's voice: the peer
connects from 49152 with window scaling, acknowledges what it likes, and each test
reads what the host hands its backend (:class:`~tcplab.engine.context.Outgoing`, with
``gso``), cut the way the device cuts it (Linux ``tcp_gso_segment``: sequence numbers
advanced, PSH and FIN on the last piece only).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.engine import Connection, Host, Outgoing, TcpConfig
from tcplab.trace import Trace
from tcplab.wire import (
    ACK,
    FIN,
    PSH,
    SYN,
    Mss,
    TcpSegment,
    WindowScale,
    emit_ip_tcp,
)

LOCAL, REMOTE = "192.0.2.2", "192.0.2.1"
LPORT, RPORT = 80, 49152
MSS = 1460
RISS = 5_000_000
MASK = 0xFFFFFFFF
GSO_MAX = 65535 - 100  #: what the TUN backend offers (room for the headers)


class Side:
    """One host under test and the peer's view of it."""

    def __init__(self, config: TcpConfig, gso_max: int, nodelay: bool = False) -> None:
        self.host = Host("local", LOCAL, config=config, rng=random.Random(3),
                         trace=Trace(enabled=False))
        self.host.cx.gso_max = gso_max
        self.now = 0.0
        self.outs: list[Outgoing] = []
        listener = self.host.listen(self.host.bind("0.0.0.0", LPORT), 8, self.now)
        self.inject(TcpSegment(RPORT, LPORT, RISS, 0, SYN, 65535,
                               options=(Mss(MSS), WindowScale(7))))
        (synack,) = self.take()
        self.iss = synack.seq
        self.inject(self.ack(self.iss + 1))
        conn = listener.accept()
        assert conn is not None
        self.conn: Connection = conn
        self.conn.set_nodelay(nodelay)

    def ack(self, ack: int, window: int = 65535) -> TcpSegment:
        """The peer's ACK (its window field scaled by 2**7: 8 MB)."""
        return TcpSegment(RPORT, LPORT, RISS + 1, ack & MASK, ACK, window)

    def inject(self, seg: TcpSegment) -> None:
        self.host.receive(emit_ip_tcp(REMOTE, LOCAL, seg), self.now)

    def take(self) -> list[TcpSegment]:
        """What the host sent since the last call, cut into wire segments."""
        outs = self.host.transmit()
        self.outs += outs
        return [piece for o in outs for piece in cut(o)]

    @property
    def sent_end(self) -> int:
        return self.conn.snd_max


def cut(o: Outgoing) -> list[TcpSegment]:
    """The wire segments of one output, as the device makes them."""
    seg = o.seg
    if not o.gso:
        return [seg]
    data = seg.payload
    pieces = []
    for off in range(0, len(data), o.gso):
        last = off + o.gso >= len(data)
        pieces.append(seg.replace(seq=(seg.seq + off) & MASK,
                                  flags=seg.flags if last else seg.flags & ~(PSH | FIN),
                                  payload=data[off:off + o.gso]))
    return pieces


def bulk(abc_limit: int = 0, snd_buf: int = 1 << 20) -> TcpConfig:
    return TcpConfig(mss=MSS, snd_buf=snd_buf, rcv_buf=1 << 20, abc_limit=abc_limit)


def test_established_tso_a_write_leaves_as_one_super_segment_of_the_initial_window() -> None:
    s = Side(bulk(), GSO_MAX)
    s.conn.send(bytes(100_000), s.now)
    # cwnd is 10 segments (RFC 6928): ten full segments, handed over as one.
    (o,) = s.host.transmit()
    assert o.gso == MSS and len(o.seg.payload) == 10 * MSS
    assert o.seg.seq == s.iss + 1 and o.seg.flags == ACK
    assert s.host.counters.out_segs == 3 + 10 - 2   # SYN-ACK, then 10 (the ACK was theirs)


def test_established_tso_stretch_ack_grows_slow_start_by_every_segment_it_covers() -> None:
    # A GRO receiver acknowledges the whole initial window with one ACK.
    grown = Side(bulk(abc_limit=0), GSO_MAX)
    rfc = Side(bulk(abc_limit=1), GSO_MAX)
    for s in (grown, rfc):
        s.conn.send(bytes(500_000), s.now)
        assert len(s.take()) == 10
        s.now = 0.2
        s.inject(s.ack(s.iss + 1 + 10 * MSS))
    # abc_limit 0 (Linux): +10 segments, 20 go out; RFC 5681's min(N, SMSS): 11.
    assert [len(p.payload) for p in grown.take()] == [MSS] * 20
    assert [len(p.payload) for p in rfc.take()] == [MSS] * 11
    assert grown.conn.cwnd == 20 * MSS and rfc.conn.cwnd == 11 * MSS


def test_established_tso_several_super_segments_per_write_and_nagle_holds_the_tail() -> None:
    cfg = bulk()
    cfg.initial_cwnd_segments = 200
    cfg.iw_rfc6928 = False
    s = Side(cfg, GSO_MAX)
    n = 100 * MSS + 700
    s.conn.send(bytes(n), s.now)
    outs = s.host.transmit()
    # 100 full segments in runs of at most 64 KB (44 segments), then nothing: the
    # 700-byte tail waits, as Nagle holds a small segment while data is unacknowledged.
    assert [(o.gso, len(o.seg.payload)) for o in outs] == [
        (MSS, 44 * MSS), (MSS, 44 * MSS), (MSS, 12 * MSS)]
    assert all(not o.seg.flags & PSH for o in outs)
    s.inject(s.ack(s.iss + 1 + 100 * MSS))
    (tail,) = s.host.transmit()
    assert tail.gso == 0 and len(tail.seg.payload) == 700 and tail.seg.flags == ACK | PSH


def test_established_tso_off_while_tracing_every_segment_is_built_and_traced() -> None:
    s = Side(bulk(), GSO_MAX)
    s.host.cx.trace.enabled = True
    s.conn.send(bytes(100_000), s.now)
    outs = s.host.transmit()
    assert [(o.gso, len(o.seg.payload)) for o in outs] == [(0, MSS)] * 10
    assert all(o.event is not None and o.event["len"] == MSS for o in outs)


STEPS = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(1, 150_000)),
    st.tuples(st.just("send"), st.integers(1, 100).map(lambda k: k * MSS)),  # whole segments
    st.tuples(st.just("ack"), st.floats(0.0, 1.0)),      # that share of what is out
    st.tuples(st.just("wait"), st.floats(0.001, 3.0)),   # timers: RTO, persist
    st.tuples(st.just("close"), st.just(0)),
), min_size=1, max_size=14)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(STEPS, st.booleans(), st.sampled_from([0, 1]), st.sampled_from([64 << 10, 1 << 20]))
def test_established_tso_super_segments_cut_are_the_segments_sent_one_by_one(
        steps: list[tuple[str, float]], nodelay: bool, abc_limit: int, snd_buf: int) -> None:
    """Whatever the writes, acknowledgments and timers: the host that hands over
    super-segments puts on the wire exactly the segments of the host that does not,
    so the windows, Nagle and SWS avoidance decided in real segments."""
    one = Side(bulk(abc_limit, snd_buf), 0, nodelay)
    tso = Side(bulk(abc_limit, snd_buf), GSO_MAX, nodelay)
    for kind, arg in steps:
        for s in (one, tso):
            if kind == "send":
                try:
                    s.conn.send(bytes(int(arg)), s.now)
                except Exception:
                    pass  # closed already: both refuse alike
            elif kind == "ack":
                out = (s.sent_end - s.conn.snd_una) & MASK
                s.inject(s.ack(s.conn.snd_una + int(out * arg)))
            elif kind == "wait":
                s.now += arg
                s.host.handle_timers(s.now)
            else:
                s.conn.close(s.now)
        assert tso.take() == one.take()
    assert all(o.gso == 0 for o in one.outs)
    assert one.host.counters.out_segs == tso.host.counters.out_segs
