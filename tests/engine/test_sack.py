"""SACK (RFC 2018, D-SACK RFC 2883) in the peer's voice, as Linux does it.

The linux profile offers SACK (``net.ipv4.tcp_sack=1``); the rfc profile does not,
so the traces of the scenarios stay as they were.
"""

from __future__ import annotations

from tcplab.engine import TcpConfig
from tcplab.engine.profiles import configured
from tcplab.wire import ACK, Mss, Nop, Sack, SackPermitted, TcpSegment, Timestamps, WindowScale

from .harness import LOCAL_ISS, REMOTE, REMOTE_ISS, REMOTE_PORT, Peer, incoming, listen, outgoing

L, R = LOCAL_ISS, REMOTE_ISS


def linux(*sysctls: str, **fields: object) -> TcpConfig:
    cfg = configured("linux", sysctls)
    return cfg.copy(**fields) if fields else cfg


def syn_of(cfg: TcpConfig) -> TcpSegment:
    p = Peer(cfg)
    p.host.connect(REMOTE, REMOTE_PORT, 0.0)
    [syn] = p.take()
    return syn


# ---------------------------------------------------------------- negotiation


def test_linux_syn_option_order_with_timestamps() -> None:
    syn = syn_of(linux(rcv_buf=1 << 20))
    assert [type(o) for o in syn.options] == [Mss, SackPermitted, Timestamps, Nop, WindowScale]


def test_linux_syn_option_order_without_timestamps() -> None:
    syn = syn_of(linux("net.ipv4.tcp_timestamps=0", rcv_buf=1 << 20))
    assert syn.options == (Mss(1460), Nop(), Nop(), SackPermitted(), Nop(), WindowScale(5))


def test_rfc_profile_and_tcp_sack_0_offer_no_sack() -> None:
    assert not syn_of(TcpConfig()).sack_permitted
    assert not syn_of(linux("net.ipv4.tcp_sack=0")).sack_permitted


def test_syn_ack_echoes_sack_permitted_only_when_offered() -> None:
    cfg = linux("net.ipv4.tcp_timestamps=0")
    p = listen(cfg)
    p.inject(incoming("S", R, options=(Mss(1460), Nop(), Nop(), SackPermitted())))
    p.expect([outgoing("SA", L, R + 1, options=(Mss(1460), Nop(), Nop(), SackPermitted()))])
    q = listen(cfg)
    q.inject(incoming("S", R, options=(Mss(1460),)))
    q.expect([outgoing("SA", L, R + 1, options=(Mss(1460),))])


def test_an_rfc_host_ignores_sack_permitted() -> None:
    p = listen(TcpConfig())
    p.inject(incoming("S", R, options=(Mss(1460), Nop(), Nop(), SackPermitted())))
    p.expect([outgoing("SA", L, R + 1, options=(Mss(1460),))])


# ---------------------------------------------------------------- the receiver


#: the TSval of our SYN-ACK, per peer (what the peer's ACKs echo)
OUR_TSVAL: dict[int, int] = {}


def sack_established(cfg: TcpConfig, mss: int = 1460) -> Peer:
    p = listen(cfg)
    ts = cfg.timestamps
    syn_opts = ((Mss(mss), SackPermitted(), Timestamps(1, 0)) if ts
                else (Mss(mss), Nop(), Nop(), SackPermitted()))
    p.inject(incoming("S", R, options=syn_opts))
    [synack] = p.take()
    OUR_TSVAL[id(p)] = synack.timestamps.tsval if synack.timestamps else 0
    p.inject(incoming("A", R + 1, L + 1, options=ack_ts(p, 2)), at=0.1)
    assert p.listener is not None
    p.conn = p.listener.accept()
    assert p.conn is not None and p.conn.sack_ok
    return p


def ack_ts(p: Peer, tsval: int) -> tuple[Nop | Timestamps, ...]:
    if not p.config.timestamps:
        return ()
    return (Nop(), Nop(), Timestamps(tsval, OUR_TSVAL[id(p)]))


def blocks_of(seg: TcpSegment) -> list[tuple[int, int]]:
    return list(seg.sack_blocks)


def out_of_order(p: Peer, offsets: list[int], size: int = 100) -> list[list[tuple[int, int]]]:
    """The peer's data at R+1+offset for each offset (the first bytes missing): the SACK
    blocks of each ACK the host answers with (Linux ACKs out-of-order data at once)."""
    out = []
    for i, off in enumerate(offsets):
        p.inject(incoming("A", R + 1 + off, L + 1, payload=b"d" * size,
                          options=ack_ts(p, 10 + i)), at=p.now + 0.001)
        [ack] = p.take()
        assert ack.flags == ACK and ack.ack == R + 1
        out.append(blocks_of(ack))
    return out


def block(off: int, size: int = 100) -> tuple[int, int]:
    return (R + 1 + off, R + 1 + off + size)


def test_blocks_most_recent_first_at_most_four_without_timestamps() -> None:
    p = sack_established(linux("net.ipv4.tcp_timestamps=0"))
    acks = out_of_order(p, [100, 300, 500, 700, 900])
    assert acks[0] == [block(100)]
    assert acks[1] == [block(300), block(100)]
    assert acks[3] == [block(700), block(500), block(300), block(100)]
    assert acks[4] == [block(900), block(700), block(500), block(300)]  # 4 fit in 40 bytes


def test_at_most_three_blocks_beside_timestamps() -> None:
    p = sack_established(linux())
    acks = out_of_order(p, [100, 300, 500, 700])
    assert acks[3] == [block(700), block(500), block(300)]  # 10 + 3 * 8 + 2 of 40 bytes


def test_adjacent_data_grows_its_block_and_moves_it_first() -> None:
    p = sack_established(linux("net.ipv4.tcp_timestamps=0"))
    out_of_order(p, [100, 300])
    [acks] = out_of_order(p, [200])  # fills between the two: one block now
    assert acks == [(R + 101, R + 401)]


def test_filling_the_hole_drops_the_blocks_it_covers() -> None:
    p = sack_established(linux("net.ipv4.tcp_timestamps=0"))
    out_of_order(p, [100, 300])
    p.inject(incoming("A", R + 1, L + 1, payload=b"d" * 100), at=p.now + 0.001)
    [ack] = p.take()
    assert ack.ack == R + 201 and blocks_of(ack) == [block(300)]


def test_dsack_reports_data_received_twice() -> None:
    p = sack_established(linux("net.ipv4.tcp_timestamps=0"))
    out_of_order(p, [100, 300])
    # The block at 300 again: D-SACK first (RFC 2883 4), then the SACK blocks (Linux moves
    # the block that holds it to the front).
    p.inject(incoming("A", R + 301, L + 1, payload=b"d" * 100), at=p.now + 0.001)
    [ack] = p.take()
    assert blocks_of(ack) == [block(300), block(300), block(100)]
    assert p.host.counters["TcpExtTCPDSACKOfoSent"] == 1
    # Below RCV.NXT: the hole filled, then filled again.
    p.inject(incoming("A", R + 1, L + 1, payload=b"d" * 100), at=p.now + 0.001)
    p.take()
    p.inject(incoming("A", R + 1, L + 1, payload=b"d" * 100), at=p.now + 0.001)
    [ack] = p.take()
    assert ack.ack == R + 201 and blocks_of(ack) == [block(0), block(300)]
    assert p.host.counters["TcpExtTCPDSACKOldSent"] == 1


def test_no_blocks_without_sack_permitted() -> None:
    p = listen(linux("net.ipv4.tcp_timestamps=0"))
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.inject(incoming("A", R + 101, L + 1, payload=b"d" * 100), at=0.2)
    [ack] = p.take()
    assert ack.ack == R + 1 and not ack.sack_blocks


# ---------------------------------------------------------------- the sender


def test_retransmissions_skip_what_the_peer_holds() -> None:
    """RFC 6675 without RACK (tcp_recovery=0), with Linux's counts: the third duplicate
    ACK starts recovery; segments below more than ``reordering`` (3) SACKed ones are
    lost (tcp_mark_head_lost); PRR sends as many as were newly delivered.  Only holes
    are resent, never a SACKed segment."""
    p = sack_established(linux("net.ipv4.tcp_timestamps=0", "net.ipv4.tcp_recovery=0"),
                         mss=1000)
    assert p.conn is not None
    s = L + 1
    p.conn.send(b"d" * 8000, 0.2)
    assert len(p.take()) == 8

    def sack(ack: int, *blocks: tuple[int, int]) -> list[int]:
        p.inject(incoming("A", R + 1, ack, options=(Nop(), Nop(), Sack(blocks))),
                 at=p.now + 0.001)
        return [seg.seq - s for seg in p.take()]

    assert sack(s, (s + 2000, s + 3000)) == []
    assert sack(s, (s + 2000, s + 4000)) == []
    # The third: four SACKed, the two holes below them are lost and both go.
    assert sack(s, (s + 2000, s + 4000), (s + 5000, s + 7000)) == [0, 1000]
    # One more SACKed (7000-8000): 4000-5000 is now below more than three.
    assert sack(s, (s + 2000, s + 4000), (s + 5000, s + 8000)) == [4000]
    info = p.conn.info(p.now)
    assert (info["tcpi_sacked"], info["tcpi_lost"], info["tcpi_retrans"]) == (5, 3, 3)
    assert p.host.counters["TcpExtTCPFastRetrans"] >= 1


def test_rto_after_sack_resends_only_the_holes() -> None:
    p = sack_established(linux("net.ipv4.tcp_timestamps=0"), mss=1000)
    assert p.conn is not None
    s = L + 1
    p.conn.send(b"d" * 4000, 0.2)
    p.take()
    p.inject(incoming("A", R + 1, s, options=(Nop(), Nop(), Sack(((s + 1000, s + 2000),)))),
             at=0.21)
    sent: list[TcpSegment] = []
    while p.now < 5.0:
        p.fire_next_timer()
        sent += p.take()
        if len(sent) >= 6:
            break
    assert sent and all(not (s + 1000 <= seg.seq < s + 2000) for seg in sent)


def test_an_rfc_connection_keeps_no_scoreboard_and_no_blocks() -> None:
    """Without a Linux sender and SACK a connection allocates neither (memory): it reads
    one shared empty scoreboard, which a lossy transfer leaves empty."""
    from tcplab.engine.connection import _NO_SCORE

    p = listen(TcpConfig())
    p.inject(incoming("S", R, options=(Mss(1000), Nop(), Nop(), SackPermitted())))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None and conn.score is _NO_SCORE and conn.sacks is None
    conn.send(b"d" * 4000, 0.2)
    p.take()
    for t in (0.3, 0.31, 0.32):   # three duplicate ACKs, then the timer
        p.inject(incoming("A", R + 1, L + 1), at=t)
    p.advance(3.0)
    p.inject(incoming("A", R + 1, L + 4001), at=3.1)
    assert conn.snd_una == L + 4001
    assert not _NO_SCORE.segs and _NO_SCORE.rack_time < 0
