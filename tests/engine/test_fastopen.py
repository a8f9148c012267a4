"""TCP Fast Open (RFC 7413) in the peer's voice, as Linux does it.

The figures come from Linux's own packetdrill scripts (tcp/fastopen in the corpus):
the cookie of ``server/simple1.pkt``, the SYN data sized as ``client/`` expects it.
Timestamps are off in these tests (as in most of those scripts) so every option
list is short enough to write out.
"""

from __future__ import annotations

import errno

import pytest

from tcplab.engine import State, TcpConfig, TcpError
from tcplab.engine.fastopen import key_from_text, key_text, make_cookie, peer_cookie
from tcplab.engine.profiles import configured
from tcplab.wire import ACK, PSH, SYN, Mss, Nop, SackPermitted
from tcplab.wire.tcp import FastOpen, emit_options, option_text, parse_options

from .harness import (
    LOCAL,
    LOCAL_ISS,
    LOCAL_PORT,
    REMOTE,
    REMOTE_ISS,
    REMOTE_PORT,
    Peer,
    incoming,
    listen,
    outgoing,
)

L, R = LOCAL_ISS, REMOTE_ISS
KEY = "a0bf63f7-ed803d81-cd641d30-cebc4a90"


def linux(fastopen: int) -> TcpConfig:
    return configured("linux", [f"net.ipv4.tcp_fastopen={fastopen:#x}",
                                "net.ipv4.tcp_timestamps=0",
                                f"net.ipv4.tcp_fastopen_key={KEY}"])


#: a Linux SYN without timestamps, window scale or Fast Open (the engine offers no
#: window scale with a 64 KiB buffer)
SYN_OPTS = (Mss(1460), Nop(), Nop(), SackPermitted())


# ---------------------------------------------------------------- the option and the cookie


@pytest.mark.parametrize(("opt", "raw", "text"), [
    (FastOpen(), b"\x22\x02", "FO"),
    (FastOpen(bytes.fromhex("00abaaabe8e954c2")), b"\x22\x0a" + bytes.fromhex(
        "00abaaabe8e954c2"), "FO 00abaaabe8e954c2"),
    (FastOpen(b"", exp=True), b"\xfe\x04\xf9\x89", "FOEXP"),
    (FastOpen(b"\x11\x22\x33\x44", exp=True), b"\xfe\x08\xf9\x89\x11\x22\x33\x44",
     "FOEXP 11223344"),
])
def test_fast_open_option_both_kinds_round_trip(opt: FastOpen, raw: bytes, text: str) -> None:
    padded = raw + b"\x01" * (-len(raw) % 4)
    assert emit_options((opt,)).startswith(raw)
    assert parse_options(padded)[0] == opt
    assert option_text(opt) == text


def test_cookie_is_linux_siphash_of_both_addresses() -> None:
    """server/simple1.pkt: key a0bf63f7-..., client 10.248.0.2, server 192.168.0.2."""
    key = key_from_text(KEY)
    assert key_text(key) == KEY
    assert make_cookie(key, "10.248.0.2", "192.168.0.2").hex() == "00abaaabe8e954c2"
    assert make_cookie(key, "192.168.0.2", "10.248.0.2") != make_cookie(
        key, "10.248.0.2", "192.168.0.2")


@pytest.mark.parametrize(("raw", "means"), [
    (None, None), (b"", b""), (b"\x11\x22", None), (b"\x11\x22\x33", None),
    (b"1234", b"1234"), (b"0123456789abcdef", b"0123456789abcdef"), (b"x" * 18, None),
])
def test_what_a_cookie_option_means(raw: bytes | None, means: bytes | None) -> None:
    assert peer_cookie(raw) == means  # even length, 4 to 16 bytes; empty asks for one


# ---------------------------------------------------------------- the server


def tfo_listen(fastopen: int = 0x2, qlen: int = 10) -> tuple[Peer, bytes]:
    p = listen(linux(fastopen))
    assert p.listener is not None
    p.listener.fastopen_qlen = qlen  # setsockopt(TCP_FASTOPEN, qlen)
    return p, make_cookie(p.host.fastopen_key(), REMOTE, LOCAL)


def test_server_issues_a_cookie_on_request_and_handshakes_normally() -> None:
    p, cookie = tfo_listen()
    p.inject(incoming("S", R, options=(*SYN_OPTS, FastOpen())))
    p.expect([outgoing("SA", L, R + 1, options=(*SYN_OPTS, FastOpen(cookie), Nop(), Nop()))])
    assert p.host.counters["TcpExtTCPFastOpenCookieReqd"] == 1
    assert p.listener is not None and p.listener.accept() is None  # no data, no early child
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.expect_nothing()
    conn = p.listener.accept()
    assert conn is not None and conn.state is State.ESTABLISHED


def test_syn_data_with_a_valid_cookie_reaches_accept_before_the_handshake_ends() -> None:
    p, cookie = tfo_listen()
    p.inject(incoming("S", R, options=(*SYN_OPTS, FastOpen(cookie)), payload=b"hello"))
    # The SYN-ACK acknowledges the data too; no cookie in it (the client has one).
    p.expect([outgoing("SA", L, R + 6, window=65535 - 5, options=SYN_OPTS)])
    assert p.listener is not None
    conn = p.listener.accept()
    assert conn is not None and conn.state is State.SYN_RECEIVED  # RFC 7413 4.2.2
    assert conn.recv(100, p.now) == b"hello"
    assert p.host.counters["TcpExtTCPFastOpenPassive"] == 1
    # The child may answer at once, still in SYN-RECEIVED.
    conn.send(b"world", 0.01)
    p.expect([outgoing("PA", L + 1, R + 6, payload=b"world")])
    p.inject(incoming("A", R + 6, L + 6), at=0.1)
    p.expect_nothing()
    assert conn.state is State.ESTABLISHED


def test_a_bad_cookie_falls_back_to_a_normal_handshake_with_the_right_cookie() -> None:
    p, cookie = tfo_listen()
    p.inject(incoming("S", R, options=(*SYN_OPTS, FastOpen(b"\x01" * 8)), payload=b"hello"))
    # Only the SYN is acknowledged; the data waits for the client's retransmission.
    p.expect([outgoing("SA", L, R + 1, options=(*SYN_OPTS, FastOpen(cookie), Nop(), Nop()))])
    assert p.host.counters["TcpExtTCPFastOpenPassiveFail"] == 1
    assert p.listener is not None and p.listener.accept() is None
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    conn = p.listener.accept()
    assert conn is not None and conn.readable_bytes == 0


def test_a_listener_without_tcp_fastopen_ignores_the_option() -> None:
    p, _ = tfo_listen(qlen=0)
    p.inject(incoming("S", R, options=(*SYN_OPTS, FastOpen()), payload=b"hello"))
    p.expect([outgoing("SA", L, R + 1, options=SYN_OPTS)])


def test_cookie_not_required_accepts_data_without_one() -> None:
    p, _ = tfo_listen(fastopen=0x202)
    p.inject(incoming("S", R, options=SYN_OPTS, payload=b"hello"))
    p.expect([outgoing("SA", L, R + 6, window=65535 - 5, options=SYN_OPTS)])
    assert p.listener is not None and p.listener.accept() is not None


def test_a_full_fast_open_queue_falls_back() -> None:
    p, cookie = tfo_listen(qlen=1)
    p.inject(incoming("S", R, options=(*SYN_OPTS, FastOpen(cookie)), payload=b"a"))
    p.take()
    second = incoming("S", R, options=(*SYN_OPTS, FastOpen(cookie)), payload=b"b")
    p.inject(second.replace(src_port=REMOTE_PORT + 1))
    [synack] = p.take()
    assert synack.ack == R + 1  # the data is not taken
    assert p.host.counters["TcpExtTCPFastOpenListenOverflow"] == 1


# ---------------------------------------------------------------- the client


def client(cached: bytes | None = None, mss: int = 0) -> Peer:
    p = Peer(linux(0x1))
    if cached is not None or mss:
        p.host.fastopen.set(REMOTE, mss, cached, False, False, 0, 0.0)
    return p


def fo_connect(p: Peer, data: bytes, defer: bool = False) -> None:
    p.conn = p.host.connect(REMOTE, REMOTE_PORT, p.now, binding=p.host.bind(LOCAL, LOCAL_PORT),
                            fastopen=True, data=data, defer=defer)


def test_client_asks_for_a_cookie_and_caches_it_with_the_servers_mss() -> None:
    p = client()
    fo_connect(p, b"x" * 100)
    # No cookie yet: a cookie request, no data in the SYN.
    p.expect([outgoing("S", L, options=(*SYN_OPTS, FastOpen(), Nop(), Nop()))])
    assert p.conn is not None and p.conn.syn_data_len == 0
    p.inject(incoming("SA", R, L + 1, options=(Mss(1400), FastOpen(b"12345678"))), at=0.1)
    p.expect([outgoing("A", L + 1, R + 1)])
    entry = p.host.fastopen.get(REMOTE)
    assert entry is not None and (entry.cookie, entry.mss) == (b"12345678", 1400)


def test_with_a_cookie_the_syn_carries_mss_minus_40_bytes_of_data() -> None:
    p = client(b"12345678", mss=1400)
    fo_connect(p, b"z" * 2000)
    [syn] = p.take()
    assert syn.flags == SYN and syn.fastopen == FastOpen(b"12345678")
    assert len(syn.payload) == 1400 - 40  # Linux keeps 40 bytes of option space free
    assert p.conn is not None and p.conn.syn_data_len == 1360
    p.inject(incoming("SA", R, L + 1 + 1360, options=(Mss(1400),)), at=0.1)
    p.expect([outgoing("A", L + 1361, R + 1)])
    assert p.host.counters["TcpExtTCPFastOpenActive"] == 1
    assert p.conn.info(p.now)["tcpi_options"] & 32  # TCPI_OPT_SYN_DATA


def test_syn_data_the_server_did_not_take_is_sent_again_at_once() -> None:
    p = client(b"abcdefgh", mss=1000)
    fo_connect(p, b"x" * 2000)
    [syn] = p.take()
    assert len(syn.payload) == 960
    # The server acknowledges only the ISN: its cookie check failed or it had no room.
    p.inject(incoming("SA", R, L + 1, options=(Mss(1460),)), at=0.1)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"x" * 960).replace(flags=PSH | ACK)])
    assert p.host.counters["TcpExtTCPFastOpenActiveFail"] == 1
    assert p.conn is not None and p.conn.state is State.ESTABLISHED


def test_a_cookie_request_syn_is_retransmitted_without_the_option() -> None:
    p = client()
    fo_connect(p, b"x")
    p.expect([outgoing("S", L, options=(*SYN_OPTS, FastOpen(), Nop(), Nop()))])
    assert p.fire_next_timer() == pytest.approx(1.0)
    p.expect([outgoing("S", L, options=SYN_OPTS)])  # the server may drop unknown options


def test_tcp_fastopen_connect_defers_the_syn_until_the_first_write() -> None:
    p = client(b"abcdefgh", mss=1000)
    fo_connect(p, b"", defer=True)
    p.expect_nothing()
    assert p.conn is not None and p.conn.state is State.SYN_SENT and p.conn.deferred
    assert p.conn.send(b"q" * 10, 0.5) == 10
    p.expect([outgoing("S", L, options=(*SYN_OPTS, FastOpen(b"abcdefgh"), Nop(), Nop()),
                       payload=b"q" * 10)])
    p.inject(incoming("SA", R, L + 11, options=(Mss(1460),)), at=0.6)
    p.expect([outgoing("A", L + 11, R + 1)])
    assert p.conn.state is State.ESTABLISHED


def test_fast_open_needs_the_client_bit() -> None:
    p = Peer(configured("linux", ["net.ipv4.tcp_fastopen=2"]))
    with pytest.raises(TcpError, match="Fast Open") as err:
        p.host.connect(REMOTE, REMOTE_PORT, 0.0, fastopen=True, data=b"x")
    assert err.value.errno == errno.EOPNOTSUPP
