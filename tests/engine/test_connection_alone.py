"""A Connection driven with no Host: segments in, what it did comes out of its context.

The test plays the network and the peer.  It reads what the connection sent
from ``cx.outbox``, what it asks the host to do from ``cx.requests``, its
timers from ``cx.timers`` and its application events from ``next_event()``.
"""

from __future__ import annotations

from tcplab.engine import Connection, EngineContext, State, TcpConfig
from tcplab.engine.context import REQ_CLOSED, REQ_TIME_WAIT
from tcplab.wire import ACK, FIN, PSH, SYN, Mss, TcpSegment

US, PEER = ("192.0.2.1", 40000), ("192.0.2.2", 80)
ISS, PEER_ISS = 1000, 5000


def make() -> tuple[EngineContext, Connection]:
    cx = EngineContext("client", TcpConfig(delayed_ack=0.0))
    conn = Connection(cx, US[0], US[1], PEER[0], PEER[1], ISS)
    conn.want_events = True
    return cx, conn


def sent(cx: EngineContext) -> list[TcpSegment]:
    out = [o.seg for o in cx.outbox]
    cx.outbox.clear()
    return out


def peer(flags: int, seq: int, ack: int, payload: bytes = b"", **kw: object) -> TcpSegment:
    return TcpSegment(PEER[1], US[1], seq, ack, flags, 65535, payload=payload, **kw)  # type: ignore[arg-type]


def events(conn: Connection) -> list[str]:
    out = []
    while (ev := conn.next_event()) is not None:
        out.append(ev)
    return out


def test_a_whole_life_with_no_host() -> None:
    cx, c = make()
    # Active OPEN: SYN, SYN-SENT, the retransmission timer armed in the context's heap.
    c.open_active(0.0)
    [syn] = sent(cx)
    assert syn.flags == SYN and syn.seq == ISS and syn.mss == 1460
    assert c.state is State.SYN_SENT
    assert cx.timers and cx.timers[0][2] is c and cx.timers[0][0] == c.rtx_at == 1.0

    # SYN-ACK: ESTABLISHED, the third segment, "connected".
    c.on_segment(peer(SYN | ACK, PEER_ISS, ISS + 1, options=(Mss(1460),)), 0.1)
    assert c.state is State.ESTABLISHED
    [third] = sent(cx)
    assert third.flags == ACK and (third.seq, third.ack) == (ISS + 1, PEER_ISS + 1)
    assert events(c) == ["connected"]

    # Data both ways.
    assert c.send(b"hello", 0.2) == 5
    [data] = sent(cx)
    assert data.flags == ACK | PSH and data.payload == b"hello" and data.seq == ISS + 1
    c.on_segment(peer(ACK | PSH, PEER_ISS + 1, ISS + 6, b"world"), 0.3)
    [ack] = sent(cx)  # delayed ACK is off: at once
    assert ack.flags == ACK and ack.ack == PEER_ISS + 6
    assert c.recv(100, 0.3) == b"world"
    assert "data" in events(c)

    # CLOSE: FIN-WAIT-1, the peer ACKs the FIN: FIN-WAIT-2.
    c.close(0.4)
    [fin] = sent(cx)
    assert fin.flags == FIN | ACK and fin.seq == ISS + 6
    assert c.state is State.FIN_WAIT_1
    c.on_segment(peer(ACK, PEER_ISS + 6, ISS + 7), 0.5)
    assert c.state is State.FIN_WAIT_2 and sent(cx) == []

    # The peer's FIN: ACK it, TIME-WAIT, and ask the host to keep a TIME-WAIT entry.
    assert cx.requests == []
    c.on_segment(peer(FIN | ACK, PEER_ISS + 6, ISS + 7), 0.6)
    [last] = sent(cx)
    assert last.flags == ACK and last.ack == PEER_ISS + 7
    assert c.state is State.TIME_WAIT
    assert [(kind, who, now) for kind, who, _cause, now in cx.requests] == [(REQ_TIME_WAIT, c, 0.6)]
    assert c.next_deadline() is None  # every timer of the connection stopped
    assert "closed" in events(c)


def test_the_trace_holds_every_state_change() -> None:
    cx, c = make()
    c.open_active(0.0)
    c.on_segment(peer(SYN | ACK, PEER_ISS, ISS + 1), 0.1)
    c.abort(0.2)
    assert [(e["from"], e["to"]) for e in cx.trace.of_kind("state")] == [
        ("CLOSED", "SYN-SENT"), ("SYN-SENT", "ESTABLISHED"), ("ESTABLISHED", "CLOSED")]
    assert [kind for kind, *_ in cx.requests] == [REQ_CLOSED]
    assert sent(cx)[-1].flags & 0x04  # the abort's RST


def test_events_are_queued_only_for_a_reader() -> None:
    cx, c = make()
    c.want_events = False
    c.open_active(0.0)
    c.on_segment(peer(SYN | ACK, PEER_ISS, ISS + 1), 0.1)
    assert c.next_event() is None and cx.ready == []
