"""User calls per state: OPEN, SEND, RECEIVE, CLOSE, ABORT, STATUS (RFC 9293 3.10.1-3.10.6)."""

from __future__ import annotations

import errno

import pytest

from tcplab.engine import TcpError

from . import harness
from .harness import LOCAL_ISS, LOCAL_PORT, NAME, REMOTE, REMOTE_ISS, Peer, incoming, outgoing

L, R = LOCAL_ISS, REMOTE_ISS


def _conn(p: Peer):  # type: ignore[no-untyped-def]
    assert p.conn is not None
    return p.conn


def test_open_twice_is_an_error(socket_syn_sent: Peer) -> None:
    """3.10.1: OPEN on an existing connection: "error: connection already exists"."""
    with pytest.raises(TcpError) as exc:
        _conn(socket_syn_sent).open_active(0.0)
    assert exc.value.errno == errno.EISCONN


def test_connect_same_tuple_twice_is_an_error(socket_syn_sent: Peer) -> None:
    p = socket_syn_sent
    with pytest.raises(TcpError):
        p.host.connect(REMOTE, harness.REMOTE_PORT, 0.0,
                       binding=p.host.bind(harness.LOCAL, harness.LOCAL_PORT, reuse=True))


@pytest.mark.parametrize("state", ["FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK",
                                   "TIME-WAIT"])
def test_send_after_close_is_an_error(state: str) -> None:
    """3.10.2: SEND after CLOSE: "error: connection closing"."""
    p = harness.BUILDERS[state]()
    with pytest.raises(TcpError) as exc:
        _conn(p).send(b"x", p.now)
    assert exc.value.errno == errno.EPIPE
    p.expect_nothing()


def test_send_after_reset_is_an_error(socket_established: Peer) -> None:
    p = socket_established
    p.inject(incoming("R", R + 1), at=1.0)
    with pytest.raises(TcpError):
        _conn(p).send(b"x", 1.1)


def test_send_in_syn_received_is_queued_until_established() -> None:
    """3.10.2: in SYN-RECEIVED, data is queued for transmission after ESTABLISHED."""
    p = harness.syn_sent()
    p.inject(incoming("S", R))  # simultaneous open: an active SYN-RECEIVED
    p.take()
    conn = _conn(p)
    assert conn.send(b"queued", 0.01) == 6
    p.expect_nothing()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.expect([outgoing("PA", L + 1, R + 1, payload=b"queued")])


def test_send_limited_by_buffer(socket_established: Peer) -> None:
    conn = _conn(socket_established)
    conn.config.snd_buf = 100  # (the fixture's own config object)
    assert conn.send(b"x" * 150, 1.0) == 100
    assert conn.send(b"y", 1.0) == 0


def test_receive_in_close_wait_returns_remaining_data_then_eof(socket_established: Peer) -> None:
    """3.10.3: in CLOSE-WAIT, RECEIVE returns what is left, then "connection closing" (EOF)."""
    p = socket_established
    p.inject(incoming("FPA", R + 1, L + 1, payload=b"last"), at=1.0)
    assert p.state == "CLOSE-WAIT"
    conn = _conn(p)
    assert not conn.at_eof
    assert conn.recv(100, 1.1) == b"last"
    assert conn.at_eof and conn.recv(100, 1.1) == b""


def test_close_in_syn_sent_deletes_tcb(socket_syn_sent: Peer) -> None:
    """3.10.4: CLOSE in SYN-SENT: delete the TCB, nothing is sent."""
    p = socket_syn_sent
    _conn(p).close(0.5)
    p.expect_nothing()
    assert p.state == "CLOSED" and p.next_timer() is None


def test_close_in_syn_received_sends_fin_after_established() -> None:
    """3.10.4: CLOSE in SYN-RECEIVED queues the FIN until ESTABLISHED, then FIN-WAIT-1."""
    p = harness.syn_sent()
    p.inject(incoming("S", R))
    p.take()
    _conn(p).close(0.05)
    p.expect_nothing()
    p.inject(incoming("A", R + 1, L + 1), at=0.1)
    p.expect([outgoing("FA", L + 1, R + 1)])
    assert p.state == "FIN-WAIT-1"


@pytest.mark.parametrize("state", ["FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK"])
def test_close_again_is_harmless(state: str) -> None:
    p = harness.BUILDERS[state]()
    _conn(p).close(p.now)
    p.expect_nothing()
    assert p.state == state


@pytest.mark.parametrize(("state", "rst"), [
    ("SYN-SENT", False),      # 3.10.5: no RST before the peer knows us
    ("SYN-RECEIVED", True),
    ("ESTABLISHED", True),
    ("FIN-WAIT-1", True),
    ("FIN-WAIT-2", True),
    ("CLOSE-WAIT", True),
    ("CLOSING", False),       # 3.10.5: "respond with ok and delete the TCB"
    ("LAST-ACK", False),
])
def test_abort_in_each_state(state: str, rst: bool) -> None:
    p = harness.BUILDERS[state]()
    _conn(p).abort(p.now)
    p.expect([outgoing("R", p.nxt)] if rst else [])
    assert p.state in ("CLOSED", "LISTEN")
    assert harness.KEY not in p.host.conns


def test_status_reports_tcb(socket_established: Peer) -> None:
    """3.10.6: STATUS: the state and the TCB variables, with RFC names."""
    tcb = _conn(socket_established).tcb()
    assert tcb["state"] == "ESTABLISHED"
    assert tcb["snd_una"] == tcb["snd_nxt"] == L + 1 and tcb["rcv_nxt"] == R + 1
    assert tcb["iss"] == L and tcb["irs"] == R


def test_trace_records_state_changes_with_cause(socket_closing: Peer) -> None:
    """The listening socket enters LISTEN, and its connection starts from LISTEN
    (LISTEN -> SYN-RECEIVED, as RFC 9293 Figure 5 draws it, not CLOSED -> SYN-RECEIVED)."""
    changes = [(e["conn"], e["from"], e["to"]) for e in socket_closing.trace.of_kind("state")]
    listener = f"0.0.0.0:{LOCAL_PORT}-*:*"
    assert changes == [(listener, "CLOSED", "LISTEN"), (NAME, "LISTEN", "SYN-RECEIVED"),
                       (NAME, "SYN-RECEIVED", "ESTABLISHED"), (NAME, "ESTABLISHED", "FIN-WAIT-1"),
                       (NAME, "FIN-WAIT-1", "CLOSING")]
    assert all(e["cause"] for e in socket_closing.trace.of_kind("state"))
