"""The linux profile and the mechanisms it needs, as packet exchanges in the peer's voice.

Figures for Linux come from its sources (named in tcplab.engine.profiles) and from
measurements on this machine's kernel (6.18): with every SYN lost, connect() sends 11
SYNs and fails after 131 s; with tcp_syn_retries=2, 6 SYNs and 7 s.
"""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.engine import State, TcpConfig, TcpError
from tcplab.engine.profiles import ConfigError, apply_sysctl, configured, profile, table
from tcplab.engine.retries import model_timeout
from tcplab.wire import ACK, RST, SYN, Mss, Nop, TcpSegment, Timestamps, WindowScale

from .harness import (
    KEY,
    LOCAL,
    LOCAL_ISS,
    LOCAL_PORT,
    REMOTE,
    REMOTE_ISS,
    REMOTE_PORT,
    Peer,
    incoming,
)

L, R = LOCAL_ISS, REMOTE_ISS


def linux(*sysctls: str, **fields: object) -> TcpConfig:
    cfg = configured("linux", sysctls)
    return cfg.copy(**fields) if fields else cfg


def ts_of(seg: TcpSegment) -> Timestamps:
    tso = seg.timestamps
    assert tso is not None, f"no timestamps on {seg.summary()}"
    return tso


# ---------------------------------------------------------------- profiles and sysctls


def test_profiles_hold_linux_and_rfc_values() -> None:
    lx, rfc = profile("linux"), profile("rfc")
    assert (lx.syn_retries, lx.syn_linear_timeouts, lx.synack_retries) == (6, 4, 5)
    assert (lx.rto_min, lx.rto_max, lx.data_retries, lx.orphan_retries) == (0.2, 120.0, 15, 0)
    assert (lx.fin_wait_2_timeout, lx.time_wait, lx.tw_reuse, lx.rfc1337) == (60, 60.0, 2, False)
    assert (lx.keepalive_time, lx.keepalive_intvl, lx.keepalive_probes) == (7200, 75, 9)
    assert (lx.somaxconn, lx.syn_cookies, lx.abort_on_overflow) == (4096, "auto", False)
    assert lx.timestamps and lx.window_scale and (lx.ephemeral_low, lx.ephemeral_high) == (
        32768, 60999)
    assert lx.initial_window(1460) == 14600 and lx.initial_window(65483) == 654830
    assert rfc.initial_window(65483) == 130966  # RFC 6928: min(10*MSS, max(2*MSS, 14600))
    assert not rfc.timestamps and rfc.rfc1337 and rfc.time_wait is None
    assert dict(table(lx))["net.ipv4.tcp_rto_min_us"] == "200000"


def test_sysctls_by_their_linux_names() -> None:
    cfg = profile("linux")
    apply_sysctl(cfg, "net.ipv4.tcp_syn_retries=2")
    apply_sysctl(cfg, "tcp_rto_min_us=50000")
    apply_sysctl(cfg, "net.ipv4.ip_local_port_range=40000 40009")
    apply_sysctl(cfg, "net.ipv4.tcp_syncookies=0")
    assert (cfg.syn_retries, cfg.rto_min) == (2, 0.05)
    assert (cfg.ephemeral_low, cfg.ephemeral_high, cfg.syn_cookies) == (40000, 40009, "never")


@pytest.mark.parametrize(("assignment", "says"), [
    ("net.ipv4.tcp_no_such=1", "unknown sysctl"),
    ("net.ipv4.tcp_syn_retries=0", "out of range"),
    ("net.ipv4.tcp_syn_retries=many", "not an integer"),
    ("tcp_syn_retries", "NAME=VALUE"),
    ("net.ipv4.ip_local_port_range=5 4", "must not be above"),
])
def test_bad_sysctls_are_rejected_with_a_reason(assignment: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        apply_sysctl(profile("linux"), assignment)
    if "unknown" in says:
        assert "net.ipv4.tcp_syn_retries" in str(info.value)  # the list of known names


# ---------------------------------------------------------------- SYN retransmission


def syn_times(cfg: TcpConfig) -> tuple[list[float], float, str | None]:
    """Connect to a peer that never answers: when each SYN left, when connect() failed."""
    p = Peer(cfg)
    conn = p.host.connect(REMOTE, REMOTE_PORT, 0.0)
    times: list[float] = []
    for _ in range(100):
        for seg in p.take():
            assert seg.flags == SYN
            times.append(p.now)
        if conn.state is State.CLOSED:
            return times, p.now, conn.error
        p.fire_next_timer()
    raise AssertionError("connect() never gave up")


def test_linux_syn_retries_6_with_linear_timeouts_sends_11_syns_for_131_s() -> None:
    times, failed, error = syn_times(linux())
    assert times == [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
    assert (failed, error) == (131, "timed out")


def test_linux_syn_retries_2_sends_6_syns_and_fails_after_7_s() -> None:
    """tcp_syn_retries=2 is also a time budget: tcp_model_timeout(2, 1 s) = 7 s."""
    times, failed, error = syn_times(linux("net.ipv4.tcp_syn_retries=2"))
    assert times == [0, 1, 2, 3, 4, 5]
    assert (failed, error) == (7, "timed out")


def test_without_linear_timeouts_the_classic_7_syns_and_127_s() -> None:
    """Kernels before 6.5 (tcp_syn_linear_timeouts=0): 1+2+4+...+64 = 127 s, 7 SYNs;
    tcp_syn_retries=2 gives 3 SYNs."""
    times, failed, _ = syn_times(linux("net.ipv4.tcp_syn_linear_timeouts=0"))
    assert times == [0, 1, 3, 7, 15, 31, 63] and failed == 127
    times, failed, _ = syn_times(linux("net.ipv4.tcp_syn_linear_timeouts=0",
                                       "net.ipv4.tcp_syn_retries=2"))
    assert times == [0, 1, 3] and failed == 7


def test_rfc_profile_counts_syn_retries() -> None:
    times, failed, _ = syn_times(TcpConfig())
    assert times == [0, 1, 3, 7, 15, 31, 63] and failed == 123  # the 7th backs off to 60


# ---------------------------------------------------------------- data retransmission


def established_linux(cfg: TcpConfig | None = None) -> Peer:
    """A linux-profile server connection, handshake without timestamps (peer offers none)."""
    p = Peer(cfg or linux())
    p.listener = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), 8)
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.001)
    p.conn = p.listener.accept()
    assert p.conn is not None
    return p


def run_until_closed(p: Peer, limit: int = 200) -> list[float]:
    """Fire timers until the connection closes; when each data segment left."""
    assert p.conn is not None
    sends = []
    for _ in range(limit):
        sends += [p.now for s in p.take() if s.payload or s.flags & 1]
        if p.conn.state is State.CLOSED:
            return sends
        p.fire_next_timer()
    raise AssertionError("never closed")


def test_linux_tcp_retries2_is_924_6_seconds() -> None:
    """The cable is cut with data in flight: tcp_model_timeout(15, 200 ms) = 924.6 s."""
    assert model_timeout(15, 0.2) == pytest.approx(924.6)
    p = established_linux()
    assert p.conn is not None
    p.advance(1.0)
    p.conn.send(b"x" * 100, 1.0)
    sends = run_until_closed(p)
    assert p.conn.error == "timed out"
    assert sends[0] == 1.0 and 924.6 <= p.now - sends[0] < 924.6 + 120
    assert len(sends) == 1 + 15  # the first send and 15 retransmissions


def test_user_timeout_replaces_the_retransmission_budget() -> None:
    p = established_linux()
    assert p.conn is not None
    p.conn.user_timeout = 5.0  # TCP_USER_TIMEOUT 5000 ms
    p.advance(1.0)
    p.conn.send(b"x" * 100, 1.0)
    run_until_closed(p)
    assert p.conn.error == "timed out" and p.now == pytest.approx(6.0)


def test_linux_orphan_retries_0_means_8() -> None:
    """After close() the FIN is retried for tcp_model_timeout(8, 200 ms) = 102.2 s."""
    p = established_linux()
    assert p.conn is not None
    p.advance(1.0)
    p.conn.close(1.0)
    sends = run_until_closed(p)
    assert 102.2 <= p.now - sends[0] < 102.2 + 60


# ---------------------------------------------------------------- timestamps and PAWS


def ts_handshake() -> tuple[Peer, int]:
    """A linux-profile server; the peer's SYN carries TSval 1000.  Returns our TSval offset."""
    p = Peer(linux())
    p.listener = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), 8)
    p.inject(incoming("S", R, options=(Mss(1460), Nop(), Nop(), Timestamps(1000, 0))))
    [synack] = p.take()
    tso = ts_of(synack)
    assert tso.tsecr == 1000  # TSecr echoes the SYN's TSval
    assert synack.options == (Mss(1460), Nop(), Nop(), Timestamps(tso.tsval, 1000))
    offset = tso.tsval  # at t = 0 TSval is the offset (a millisecond clock)
    p.inject(incoming("A", R + 1, L + 1, options=(Nop(), Nop(), Timestamps(1001, tso.tsval))),
             at=0.05)
    p.conn = p.listener.accept()
    assert p.conn is not None and p.conn.ts.ok
    return p, offset


def test_timestamps_on_every_segment_and_rtt_from_them() -> None:
    p, offset = ts_handshake()
    assert p.conn is not None
    p.conn.send(b"hello", 1.0)
    [data] = p.take()
    tso = ts_of(data)
    assert tso.tsval == offset + 1000 and tso.tsecr == 1001  # ms clock; TS.Recent echoed
    p.inject(incoming("A", R + 1, L + 6, options=(Nop(), Nop(), Timestamps(1002, tso.tsval))),
             at=1.25)
    # The handshake's 50 ms (the SYN-ACK's TSval echoed), then this ACK's 250 ms:
    # SRTT = 7/8 * 0.05 + 1/8 * 0.25 (RFC 6298 with RFC 7323 4.1 samples).
    assert p.conn.srtt == pytest.approx(0.875 * 0.05 + 0.125 * 0.25)


def test_paws_drops_an_old_timestamp_and_acks() -> None:
    p, offset = ts_handshake()
    assert p.conn is not None
    p.inject(incoming("PA", R + 1, L + 1, payload=b"new", options=(
        Nop(), Nop(), Timestamps(5000, offset))), at=1.0)
    p.take()
    assert p.conn.recv(10, p.now) == b"new"
    # A duplicate from long ago: its sequence numbers are fine, its TSval is older.
    p.inject(incoming("PA", R + 4, L + 1, payload=b"old", options=(
        Nop(), Nop(), Timestamps(4000, offset))), at=2.0)
    [ack] = p.take()
    assert ack.flags == ACK and ack.ack == R + 4  # an ACK, the data not taken
    assert p.conn.readable_bytes == 0
    assert p.host.counters["TcpExtPAWSEstab"] == 1
    assert any("PAWS" in r for r in p.drop_reasons())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 3)), min_size=1,
                max_size=30))
def test_paws_never_accepts_an_old_segment(tsvals: list[tuple[int, int]]) -> None:
    """Random TSvals on in-order data: a segment is taken only if its TSval is not older
    (by more than Linux's one-tick window) than the newest TSval taken before it."""
    p, offset = ts_handshake()
    assert p.conn is not None
    seq = R + 1
    newest: int | None = 1001
    t = 1.0
    for value, gap in tsvals:
        t += gap
        before = p.conn.readable_bytes
        p.inject(incoming("PA", seq, L + 1, payload=b"z", options=(
            Nop(), Nop(), Timestamps(value, offset))), at=t)
        p.take()
        taken = p.conn.readable_bytes > before
        if taken:
            assert newest is None or (newest - value) & 0xFFFFFFFF <= 1 or \
                ((value - newest) & 0xFFFFFFFF) < 2**31, (newest, value)
            seq += 1
            if newest is None or ((value - newest) & 0xFFFFFFFF) < 2**31:
                newest = value


def test_time_wait_keeps_ts_recent_and_a_newer_syn_reopens() -> None:
    """RFC 6191: with timestamps, a SYN whose sequence number is below RCV.NXT still
    opens a new connection when its TSval is newer; an older TSval gets the ACK."""
    p, offset = ts_handshake()
    assert p.conn is not None
    p.conn.close(1.0)
    p.take()
    p.inject(incoming("FA", R + 1, L + 2, options=(Nop(), Nop(), Timestamps(3000, offset))),
             at=1.1)
    p.take()
    assert p.host.in_time_wait(KEY)
    entry = p.host.time_wait.get(KEY)
    assert entry is not None and entry.ts_recent == 3000
    # An old SYN (older TSval, lower sequence number): answered with an ACK, entry kept.
    p.inject(incoming("S", R - 500, options=(Nop(), Nop(), Timestamps(2000, 0))), at=2.0)
    [ack] = p.take()
    assert ack.flags == ACK and ts_of(ack).tsecr == 3000 and p.host.in_time_wait(KEY)
    # A new SYN with a lower sequence number but a newer TSval: accepted.
    p.inject(incoming("S", R - 500, options=(Mss(1460), Nop(), Nop(), Timestamps(9000, 0))),
             at=3.0)
    [synack] = p.take()
    assert synack.flags == SYN | ACK and synack.ack == R - 499
    assert not p.host.in_time_wait(KEY)


# ---------------------------------------------------------------- tcp_tw_reuse


def client_in_time_wait(cfg: TcpConfig, local: str = LOCAL, remote: str = REMOTE) -> Peer:
    """Our host connects out (with timestamps both ways), closes first, reaches TIME-WAIT."""
    p = Peer(cfg)
    if local != LOCAL:
        p.host.addrs.insert(0, local)  # the source address connect() picks
    b = p.host.bind(local, LOCAL_PORT, reuse=True)
    p.conn = p.host.connect(remote, REMOTE_PORT, 0.0, binding=b, reuse=True)
    [syn] = p.take()
    ts = syn.timestamps
    off = ts.tsval if ts is not None else 0
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460), Nop(), Nop(), Timestamps(100, off))),
             at=0.05, src=remote, dst=local)
    p.take()
    p.conn.close(0.1)
    p.take()
    p.inject(incoming("FA", R + 1, L + 2, options=(Nop(), Nop(), Timestamps(200, off))),
             at=0.15, src=remote, dst=local)
    p.take()
    assert p.host.in_time_wait((local, LOCAL_PORT, remote, REMOTE_PORT))
    return p


def test_tw_reuse_for_a_bound_socket_with_timestamps() -> None:
    """Linux tcp_twsk_unique(): a socket bound to the port may take a TIME-WAIT 4-tuple
    whose connection used timestamps; the new ISN is beyond the old SND.NXT."""
    p = client_in_time_wait(linux())
    old = p.host.time_wait.get(KEY)
    assert old is not None
    b = p.host.bind(LOCAL, LOCAL_PORT, reuse=True)
    conn = p.host.connect(REMOTE, REMOTE_PORT, 1.0, binding=b, reuse=True)
    assert conn.iss == (old.snd_nxt + 65537) & 0xFFFFFFFF
    assert conn.ts.recent == 200 and not p.host.in_time_wait(KEY)
    assert p.host.counters["TcpExtTWRecycled"] == 1


def test_no_reuse_without_timestamps() -> None:
    p = client_in_time_wait(TcpConfig(timestamps=False))
    b = p.host.bind(LOCAL, LOCAL_PORT, reuse=True)
    with pytest.raises(TcpError) as info:
        p.host.connect(REMOTE, REMOTE_PORT, 1.0, binding=b, reuse=True)
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_tw_reuse_2_is_for_loopback_only_for_ephemeral_ports() -> None:
    cfg = linux(ephemeral_low=LOCAL_PORT, ephemeral_high=LOCAL_PORT)  # one port only
    p = client_in_time_wait(cfg)
    with pytest.raises(TcpError) as info:  # 192.0.2.x is not loopback
        p.host.connect(REMOTE, REMOTE_PORT, 5.0)
    assert info.value.errno == errno.EADDRNOTAVAIL
    q = client_in_time_wait(cfg, local="127.0.0.1", remote="127.0.0.2")
    with pytest.raises(TcpError):  # within tcp_tw_reuse_delay (1 s) of the last timestamp
        q.host.connect("127.0.0.2", REMOTE_PORT, 0.5)
    conn = q.host.connect("127.0.0.2", REMOTE_PORT, 5.0)
    assert conn.lport == LOCAL_PORT and q.host.counters["TcpExtTWRecycled"] == 1


# ---------------------------------------------------------------- ports


def test_ephemeral_ports_run_out_per_destination() -> None:
    cfg = TcpConfig(ephemeral_low=50000, ephemeral_high=50003)
    p = Peer(cfg)
    for _ in range(4):
        p.host.connect(REMOTE, 80, 0.0)
    with pytest.raises(TcpError) as info:
        p.host.connect(REMOTE, 80, 0.0)
    assert info.value.errno == errno.EADDRNOTAVAIL and "towards 192.0.2.1:80" in str(info.value)
    other = p.host.connect(REMOTE, 443, 0.0)  # another destination: ports are shared
    assert 50000 <= other.lport <= 50003


# ---------------------------------------------------------------- keep-alive


def test_keepalive_7200_75_9_finds_a_dead_peer_after_2h11m15s() -> None:
    p = established_linux()
    assert p.conn is not None
    start = p.now
    p.conn.set_keepalive(True, p.now)
    probes: list[float] = []
    rst_at = None
    for _ in range(50):
        p.fire_next_timer()
        for seg in p.take():
            if seg.flags & RST:
                rst_at = p.now
            else:
                assert seg.flags == ACK and seg.seq == L  # SND.UNA - 1, no data
                probes.append(p.now - start)
        if p.conn.state is State.CLOSED:
            break
    assert probes == [7200 + 75 * k for k in range(9)]
    assert rst_at is not None and rst_at - start == 7875  # 2 h 11 min 15 s
    assert p.conn.error == "timed out" and p.host.counters["TcpExtTCPKeepAlive"] == 9


def test_an_answered_keepalive_probe_keeps_the_connection() -> None:
    p = established_linux()
    assert p.conn is not None
    p.conn.set_keepalive(True, p.now, idle=60, intvl=10, cnt=3)
    p.fire_next_timer()
    [probe] = p.take()
    assert probe.seq == L and p.now == pytest.approx(60.001)
    p.inject(incoming("A", R + 1, L + 1), at=p.now + 0.05)  # the peer answers
    p.advance(p.now + 59)
    assert p.take() == [] and p.conn.state is State.ESTABLISHED


def test_keepalive_switched_on_late_counts_from_then_a_new_keepidle_from_the_last_segment() -> (
        None):
    # The last segment arrived at 0.001; SO_KEEPALIVE is set 100 s later. Linux's
    # tcp_set_keepalive arms the timer one idle period from the call, not from the
    # last segment: the first probe goes at 100 + 60 s.
    p = established_linux()
    assert p.conn is not None
    p.advance(100.0)
    p.conn.set_keepalive(True, p.now, idle=60, intvl=10, cnt=3)
    p.fire_next_timer()
    [probe] = p.take()
    assert probe.seq == L and p.now == pytest.approx(160.0)
    # The peer answers at 160.05; then TCP_KEEPIDLE 30 on the socket that has keep-alive
    # on: tcp_sock_set_keepidle_locked counts from the last segment received.
    p.inject(incoming("A", R + 1, L + 1), at=160.05)
    p.advance(170.0)
    p.conn.set_keepalive(True, p.now, idle=30)
    p.fire_next_timer()
    [probe] = p.take()
    assert probe.seq == L and p.now == pytest.approx(190.05)


# ---------------------------------------------------------------- ACKs


def test_linux_quick_acks_the_first_data_and_delays_in_ping_pong() -> None:
    p = established_linux()
    assert p.conn is not None
    p.inject(incoming("PA", R + 1, L + 1, payload=b"GET /"), at=1.0)
    assert [s.flags for s in p.take()] == [ACK]  # quick-ACK mode: at once
    p.conn.send(b"200 OK", 1.001)  # answered within 40 ms: ping-pong (interactive)
    p.take()
    p.inject(incoming("A", R + 6, L + 7), at=1.05)
    p.inject(incoming("PA", R + 6, L + 7, payload=b"GET /2"), at=2.0)
    assert p.take() == []  # delayed, to ride on the answer
    p.conn.quickack_now(2.001)  # TCP_QUICKACK
    [ack] = p.take()
    assert ack.ack == R + 12


def test_rfc_profile_delays_the_first_data_ack() -> None:
    p = Peer(TcpConfig())
    p.listener = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), 8)
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.take()
    p.inject(incoming("A", R + 1, L + 1), at=0.001)
    p.inject(incoming("PA", R + 1, L + 1, payload=b"GET /"), at=1.0)
    assert p.take() == []
    p.advance(1.04)
    assert len(p.take()) == 1


# ---------------------------------------------------------------- queues


def half_open(p: Peer, port: int) -> None:
    p.inject(incoming("S", R, options=(Mss(1460),)).replace(src_port=port))
    p.inject(incoming("A", R + 1, L + 1).replace(src_port=port), at=p.now + 0.01)


def test_somaxconn_caps_the_backlog_and_linux_holds_backlog_plus_one() -> None:
    p = Peer(linux("net.core.somaxconn=2"))
    lst = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), backlog=100)
    assert lst.backlog == 2
    for port in range(50000, 50005):
        half_open(p, port)
    assert len(lst.accept_queue) == 3  # backlog + 1, like Linux's sk_acceptq_is_full
    assert p.host.counters["TcpExtListenOverflows"] >= 1


def test_abort_on_overflow_answers_the_third_ack_with_rst() -> None:
    p = Peer(linux("net.ipv4.tcp_abort_on_overflow=1"))
    p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), backlog=0)  # holds one
    half_open(p, 50000)
    p.take()
    p.inject(incoming("S", R, options=(Mss(1460),)).replace(src_port=50001), at=1.0)
    p.take()
    p.inject(incoming("A", R + 1, L + 1).replace(src_port=50001), at=1.01)
    [rst] = p.take()
    assert rst.flags == RST and rst.seq == L + 1 and rst.dst_port == 50001


def test_max_tw_buckets_skips_time_wait_and_counts_it() -> None:
    cfg = TcpConfig(max_tw_buckets=0)
    p = Peer(cfg)
    p.listener = p.host.listen(p.host.bind("0.0.0.0", LOCAL_PORT), 8)
    p.inject(incoming("S", R, options=(Mss(1460),)))
    p.inject(incoming("A", R + 1, L + 1), at=0.01)
    conn = p.listener.accept()
    assert conn is not None
    conn.close(1.0)
    p.inject(incoming("A", R + 1, L + 2), at=1.01)
    p.inject(incoming("FA", R + 1, L + 2), at=1.02)
    assert conn.state is State.CLOSED and not p.host.in_time_wait(KEY)
    assert p.host.counters["TcpExtTCPTimeWaitOverflow"] == 1


# ---------------------------------------------------------------- TCP_INFO


def test_tcp_info_names_and_units_are_linux_s() -> None:
    p, _ = ts_handshake()
    assert p.conn is not None
    info = p.conn.info(1.0)
    assert info["tcpi_state"] == 1 and info["tcpi_options"] & 1  # ESTABLISHED, timestamps
    # With timestamps every segment carries 12 option bytes: Linux's mss_cache (and the
    # engine's SND.MSS, RFC 6691) is 1460 - 12.
    assert info["tcpi_snd_mss"] == 1448 and info["tcpi_snd_cwnd"] == 10
    assert info["tcpi_rtt"] == 50_000 and info["tcpi_rto"] >= 200_000  # microseconds


def test_window_scale_is_offered_with_the_right_shift() -> None:
    p = Peer(linux(rcv_buf=1 << 20))
    p.host.connect(REMOTE, REMOTE_PORT, 0.0)
    [syn] = p.take()
    assert syn.options[-2:] == (Nop(), WindowScale(5))
