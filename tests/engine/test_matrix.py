"""The state x event matrix of RFC 9293 section 3.10 (and RFC 5961), as a table.

Every row says: in STATE, when the peer sends STIMULUS (or a timer fires),
the host answers with exactly REPLY and ends in NEXT, because RFC SECTION says
so.  The stimuli and replies are spelled out once, below the table, in terms
of what the peer has seen (``p.seq`` = our RCV.NXT, ``p.ack``/``p.una``/
``p.nxt``, see ``harness``).  "in window" and "outside" use offsets 100 and
100 000 from RCV.NXT against a 65 535-octet window.

Where the engine follows Linux instead of the RFC's letter the row says so in
its last column ("Linux: ...").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tcplab.wire import Mss, TcpSegment

from . import harness
from .harness import LOCAL_ISS, REMOTE_ISS, SYN_OPTIONS, WINDOW, Peer, incoming, outgoing

D = "delayed"  # marker: the reply comes when the delayed-ACK timer fires, not at once

# fmt: off
# state            stimulus                  reply                         next state      error      RFC 9293 section / note
MATRIX: list[tuple[str, str, tuple[str, ...], str, str | None, str]] = [
    # ---- CLOSED: no socket (3.10.7.1): RST for everything but a RST
    ("CLOSED",       "SYN",                    ("RST,ACK SEG.SEQ+LEN",),     "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "SYN-ACK",                ("RST SEQ=SEG.ACK",),         "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "ACK",                    ("RST SEQ=SEG.ACK",),         "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "ACK unacceptable",       ("RST SEQ=SEG.ACK",),         "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "data",                   ("RST SEQ=SEG.ACK",),         "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "data without ACK",       ("RST,ACK SEG.SEQ+LEN",),     "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "FIN",                    ("RST SEQ=SEG.ACK",),         "CLOSED",       None,      "3.10.7.1"),
    ("CLOSED",       "RST",                    (),                           "CLOSED",       None,      "3.10.7.1: never answer a RST"),
    # ---- LISTEN (3.10.7.2)
    ("LISTEN",       "SYN",                    ("SYN-ACK",),                 "SYN-RECEIVED", None,      "3.10.7.2 third"),
    ("LISTEN",       "SYN-ACK",                ("RST SEQ=SEG.ACK",),         "LISTEN",       None,      "3.10.7.2 second"),
    ("LISTEN",       "ACK",                    ("RST SEQ=SEG.ACK",),         "LISTEN",       None,      "3.10.7.2 second"),
    ("LISTEN",       "ACK unacceptable",       ("RST SEQ=SEG.ACK",),         "LISTEN",       None,      "3.10.7.2 second"),
    ("LISTEN",       "data",                   ("RST SEQ=SEG.ACK",),         "LISTEN",       None,      "3.10.7.2 second"),
    ("LISTEN",       "data without ACK",       (),                           "LISTEN",       None,      "3.10.7.2 fourth: drop"),
    ("LISTEN",       "FIN",                    ("RST SEQ=SEG.ACK",),         "LISTEN",       None,      "3.10.7.2 second"),
    ("LISTEN",       "RST",                    (),                           "LISTEN",       None,      "3.10.7.2 first: ignore"),
    # ---- SYN-SENT (3.10.7.3)
    ("SYN-SENT",     "SYN",                    ("SYN-ACK",),                 "SYN-RECEIVED", None,      "3.10.7.3 fourth: simultaneous open"),
    ("SYN-SENT",     "SYN-ACK",                ("ACK of SYN",),              "ESTABLISHED",  None,      "3.10.7.3 fourth"),
    ("SYN-SENT",     "SYN-ACK bad ACK",        ("RST SEQ=SEG.ACK",),         "SYN-SENT",     None,      "3.10.7.3 first"),
    ("SYN-SENT",     "ACK",                    (),                           "SYN-SENT",     None,      "3.10.7.3 fifth: neither SYN nor RST"),
    ("SYN-SENT",     "ACK unacceptable",       ("RST SEQ=SEG.ACK",),         "SYN-SENT",     None,      "3.10.7.3 first"),
    ("SYN-SENT",     "data",                   (),                           "SYN-SENT",     None,      "3.10.7.3 fifth"),
    ("SYN-SENT",     "FIN",                    (),                           "SYN-SENT",     None,      "3.10.7.3 fifth"),
    ("SYN-SENT",     "RST,ACK acceptable",     (),                           "CLOSED",       "refused", "3.10.7.3 second; RFC 5961 3.2"),
    ("SYN-SENT",     "RST without ACK",        (),                           "SYN-SENT",     None,      "3.10.7.3 second: drop"),
    ("SYN-SENT",     "RST,ACK unacceptable",   (),                           "SYN-SENT",     None,      "3.10.7.3 first: drop, no reply"),
    ("SYN-SENT",     "retransmit timer",       ("SYN",),                     "SYN-SENT",     None,      "3.10.8; RFC 6298 5.4"),
    # ---- SYN-RECEIVED, passive (3.10.7.4)
    ("SYN-RECEIVED", "SYN",                    (),                           "LISTEN",       None,      "3.10.7.4 fourth: passive, back to LISTEN"),
    ("SYN-RECEIVED", "duplicate SYN",          ("SYN-ACK",),                 "SYN-RECEIVED", None,      "Linux: SYN-ACK again (RFC: first check, ACK)"),
    ("SYN-RECEIVED", "SYN-ACK",                (),                           "LISTEN",       None,      "3.10.7.4 fourth"),
    ("SYN-RECEIVED", "ACK",                    (),                           "ESTABLISHED",  None,      "3.10.7.4 fifth"),
    ("SYN-RECEIVED", "ACK unacceptable",       ("RST SEQ=SEG.ACK",),         "SYN-RECEIVED", None,      "3.10.7.4 fifth"),
    ("SYN-RECEIVED", "data",                   (D, "ACK of data"),           "ESTABLISHED",  None,      "3.10.7.4 fifth+seventh; 3.8.6.3"),
    ("SYN-RECEIVED", "data outside window",    ("ACK",),                     "SYN-RECEIVED", None,      "3.10.7.4 first"),
    ("SYN-RECEIVED", "FIN",                    (D, "ACK of FIN"),            "CLOSE-WAIT",   None,      "3.10.7.4 eighth; Linux delays the ACK"),
    ("SYN-RECEIVED", "RST",                    (),                           "LISTEN",       None,      "3.10.7.4 second: passive, back to LISTEN"),
    ("SYN-RECEIVED", "RST in window",          ("ACK",),                     "SYN-RECEIVED", None,      "RFC 5961 3.2: challenge ACK"),
    ("SYN-RECEIVED", "RST outside window",     (),                           "SYN-RECEIVED", None,      "3.10.7.4 first: drop RST"),
    ("SYN-RECEIVED", "retransmit timer",       ("SYN-ACK",),                 "SYN-RECEIVED", None,      "3.10.8; RFC 6298 5.4"),
    # ---- ESTABLISHED
    ("ESTABLISHED",  "SYN",                    ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 fourth; RFC 5961 4.2 challenge ACK"),
    ("ESTABLISHED",  "SYN outside window",     ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 first; RFC 5961 4.2"),
    ("ESTABLISHED",  "SYN-ACK",                ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 fourth; RFC 5961 4.2"),
    ("ESTABLISHED",  "ACK",                    (),                           "ESTABLISHED",  None,      "3.10.7.4 fifth: duplicate ACK ignored"),
    ("ESTABLISHED",  "ACK unacceptable",       ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 fifth: ACK of unsent data"),
    ("ESTABLISHED",  "ACK too old",            ("ACK",),                     "ESTABLISHED",  None,      "RFC 5961 5.2: challenge ACK"),
    ("ESTABLISHED",  "data",                   (D, "ACK of data"),           "ESTABLISHED",  None,      "3.10.7.4 seventh; 3.8.6.3 delayed ACK"),
    ("ESTABLISHED",  "data outside window",    ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 first"),
    ("ESTABLISHED",  "old data",               ("ACK",),                     "ESTABLISHED",  None,      "3.10.7.4 first: duplicate"),
    ("ESTABLISHED",  "FIN",                    (D, "ACK of FIN"),            "CLOSE-WAIT",   None,      "3.10.7.4 eighth; Linux delays the ACK"),
    ("ESTABLISHED",  "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("ESTABLISHED",  "RST in window",          ("ACK",),                     "ESTABLISHED",  None,      "RFC 5961 3.2: challenge ACK"),
    ("ESTABLISHED",  "RST outside window",     (),                           "ESTABLISHED",  None,      "3.10.7.4 first: drop RST"),
    # ---- FIN-WAIT-1 (our FIN at ISS+1 unacknowledged)
    ("FIN-WAIT-1",   "SYN",                    ("ACK",),                     "FIN-WAIT-1",   None,      "RFC 5961 4.2"),
    ("FIN-WAIT-1",   "ACK",                    (),                           "FIN-WAIT-2",   None,      "3.10.7.4 fifth: our FIN acknowledged"),
    ("FIN-WAIT-1",   "ACK unacceptable",       ("ACK",),                     "FIN-WAIT-1",   None,      "3.10.7.4 fifth"),
    ("FIN-WAIT-1",   "data",                   (D, "ACK of data"),           "FIN-WAIT-1",   None,      "3.10.7.4 seventh: half-close, still receiving"),
    ("FIN-WAIT-1",   "data outside window",    ("ACK",),                     "FIN-WAIT-1",   None,      "3.10.7.4 first"),
    ("FIN-WAIT-1",   "FIN",                    ("ACK of FIN",),              "CLOSING",      None,      "3.10.7.4 eighth: simultaneous close"),
    ("FIN-WAIT-1",   "FIN acking our FIN",     ("ACK of FIN",),              "TIME-WAIT",    None,      "3.10.7.4 eighth"),
    ("FIN-WAIT-1",   "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("FIN-WAIT-1",   "RST in window",          ("ACK",),                     "FIN-WAIT-1",   None,      "RFC 5961 3.2"),
    ("FIN-WAIT-1",   "RST outside window",     (),                           "FIN-WAIT-1",   None,      "3.10.7.4 first"),
    ("FIN-WAIT-1",   "retransmit timer",       ("FIN",),                     "FIN-WAIT-1",   None,      "3.10.8; RFC 6298 5.4"),
    # ---- FIN-WAIT-2
    ("FIN-WAIT-2",   "SYN",                    ("ACK",),                     "FIN-WAIT-2",   None,      "RFC 5961 4.2"),
    ("FIN-WAIT-2",   "ACK",                    (),                           "FIN-WAIT-2",   None,      "3.10.7.4 fifth"),
    ("FIN-WAIT-2",   "ACK unacceptable",       ("ACK",),                     "FIN-WAIT-2",   None,      "3.10.7.4 fifth"),
    ("FIN-WAIT-2",   "data",                   (D, "ACK of data"),           "FIN-WAIT-2",   None,      "3.10.7.4 seventh"),
    ("FIN-WAIT-2",   "data outside window",    ("ACK",),                     "FIN-WAIT-2",   None,      "3.10.7.4 first"),
    ("FIN-WAIT-2",   "FIN",                    ("ACK of FIN",),              "TIME-WAIT",    None,      "3.10.7.4 eighth"),
    ("FIN-WAIT-2",   "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("FIN-WAIT-2",   "RST in window",          ("ACK",),                     "FIN-WAIT-2",   None,      "RFC 5961 3.2"),
    ("FIN-WAIT-2",   "RST outside window",     (),                           "FIN-WAIT-2",   None,      "3.10.7.4 first"),
    # ---- CLOSE-WAIT (the peer's FIN received and ACKed)
    ("CLOSE-WAIT",   "SYN",                    ("ACK",),                     "CLOSE-WAIT",   None,      "RFC 5961 4.2"),
    ("CLOSE-WAIT",   "ACK",                    (),                           "CLOSE-WAIT",   None,      "3.10.7.4 fifth"),
    ("CLOSE-WAIT",   "ACK unacceptable",       ("ACK",),                     "CLOSE-WAIT",   None,      "3.10.7.4 fifth"),
    ("CLOSE-WAIT",   "data",                   (),                           "CLOSE-WAIT",   None,      "3.10.7.4 seventh: ignore text after FIN"),
    ("CLOSE-WAIT",   "data outside window",    ("ACK",),                     "CLOSE-WAIT",   None,      "3.10.7.4 first"),
    ("CLOSE-WAIT",   "FIN",                    ("ACK",),                     "CLOSE-WAIT",   None,      "3.10.7.4 first: retransmitted FIN"),
    ("CLOSE-WAIT",   "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("CLOSE-WAIT",   "RST in window",          ("ACK",),                     "CLOSE-WAIT",   None,      "RFC 5961 3.2"),
    ("CLOSE-WAIT",   "RST outside window",     (),                           "CLOSE-WAIT",   None,      "3.10.7.4 first"),
    # ---- CLOSING (both FINs sent, ours unacknowledged)
    ("CLOSING",      "SYN",                    ("ACK",),                     "CLOSING",      None,      "RFC 5961 4.2"),
    ("CLOSING",      "ACK",                    (),                           "TIME-WAIT",    None,      "3.10.7.4 fifth: our FIN acknowledged"),
    ("CLOSING",      "ACK unacceptable",       ("ACK",),                     "CLOSING",      None,      "3.10.7.4 fifth"),
    ("CLOSING",      "data",                   (),                           "CLOSING",      None,      "3.10.7.4 seventh: ignore"),
    ("CLOSING",      "data outside window",    ("ACK",),                     "CLOSING",      None,      "3.10.7.4 first"),
    ("CLOSING",      "FIN",                    ("ACK",),                     "CLOSING",      None,      "3.10.7.4 first: retransmitted FIN"),
    ("CLOSING",      "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("CLOSING",      "RST in window",          ("ACK",),                     "CLOSING",      None,      "RFC 5961 3.2"),
    ("CLOSING",      "RST outside window",     (),                           "CLOSING",      None,      "3.10.7.4 first"),
    ("CLOSING",      "retransmit timer",       ("FIN",),                     "CLOSING",      None,      "3.10.8; RFC 6298 5.4"),
    # ---- LAST-ACK
    ("LAST-ACK",     "SYN",                    ("ACK",),                     "LAST-ACK",     None,      "RFC 5961 4.2"),
    ("LAST-ACK",     "ACK",                    (),                           "CLOSED",       None,      "3.10.7.4 fifth: our FIN acknowledged"),
    ("LAST-ACK",     "ACK unacceptable",       ("ACK",),                     "LAST-ACK",     None,      "RFC 5961 5.2"),
    ("LAST-ACK",     "data",                   (),                           "LAST-ACK",     None,      "3.10.7.4 seventh: ignore"),
    ("LAST-ACK",     "data outside window",    ("ACK",),                     "LAST-ACK",     None,      "3.10.7.4 first"),
    ("LAST-ACK",     "FIN",                    ("ACK",),                     "LAST-ACK",     None,      "3.10.7.4 first: retransmitted FIN"),
    ("LAST-ACK",     "RST",                    (),                           "CLOSED",       "reset",   "3.10.7.4 second"),
    ("LAST-ACK",     "RST in window",          ("ACK",),                     "LAST-ACK",     None,      "RFC 5961 3.2"),
    ("LAST-ACK",     "RST outside window",     (),                           "LAST-ACK",     None,      "3.10.7.4 first"),
    ("LAST-ACK",     "retransmit timer",       ("FIN",),                     "LAST-ACK",     None,      "3.10.8; RFC 6298 5.4"),
    # ---- TIME-WAIT (a compact entry in the host)
    ("TIME-WAIT",    "SYN",                    ("ACK",),                     "TIME-WAIT",    None,      "RFC 5961 4.2: SYN at RCV.NXT is not beyond it"),
    ("TIME-WAIT",    "SYN beyond RCV.NXT",     ("SYN-ACK",),                 "SYN-RECEIVED", None,      "RFC 1122 4.2.2.13, RFC 6191: new incarnation"),
    ("TIME-WAIT",    "SYN below RCV.NXT",      ("ACK",),                     "TIME-WAIT",    None,      "RFC 5961 4.2: challenge ACK"),
    ("TIME-WAIT",    "SYN-ACK",                ("ACK",),                     "TIME-WAIT",    None,      "3.10.7.4 fourth; RFC 5961 4.2"),
    ("TIME-WAIT",    "ACK",                    (),                           "TIME-WAIT",    None,      "3.10.7.4 fifth"),
    ("TIME-WAIT",    "ACK unacceptable",       ("ACK",),                     "TIME-WAIT",    None,      "FreeBSD/Linux: ACK (RFC 9293 fifth step: ignore)"),
    ("TIME-WAIT",    "data",                   ("ACK",),                     "TIME-WAIT",    None,      "FreeBSD/Linux: ACK (RFC 9293 seventh step: ignore)"),
    ("TIME-WAIT",    "data outside window",    ("ACK",),                     "TIME-WAIT",    None,      "3.10.7.4 first"),
    ("TIME-WAIT",    "FIN",                    ("ACK",),                     "TIME-WAIT",    None,      "3.10.7.4 eighth: ACK, restart 2MSL"),
    ("TIME-WAIT",    "RST",                    (),                           "TIME-WAIT",    None,      "RFC 1337 (RFC 9293 3.10.7.4 second allows it)"),
    ("TIME-WAIT",    "RST in window",          (),                           "TIME-WAIT",    None,      "RFC 1337"),
    ("TIME-WAIT",    "RST outside window",     (),                           "TIME-WAIT",    None,      "3.10.7.4 first"),
    ("TIME-WAIT",    "2MSL timer",             (),                           "CLOSED",       None,      "3.10.8 time-wait timeout"),
]
# fmt: on

FIXTURES = {
    "CLOSED": "closed", "LISTEN": "socket_listen", "SYN-SENT": "socket_syn_sent",
    "SYN-RECEIVED": "socket_syn_received", "ESTABLISHED": "socket_established",
    "FIN-WAIT-1": "socket_fin_wait_1", "FIN-WAIT-2": "socket_fin_wait_2",
    "CLOSE-WAIT": "socket_close_wait", "CLOSING": "socket_closing",
    "LAST-ACK": "socket_last_ack", "TIME-WAIT": "socket_time_wait",
}

DATA = b"abc"

# ---- stimuli: what the peer sends, from what it has seen (p.seq = our RCV.NXT)
STIMULI: dict[str, Callable[[Peer], TcpSegment]] = {
    "SYN": lambda p: incoming("S", p.seq, options=(Mss(1460),)),
    "duplicate SYN": lambda p: incoming("S", REMOTE_ISS, options=(Mss(1460),)),
    "SYN outside window": lambda p: incoming("S", p.seq + 100_000),
    "SYN beyond RCV.NXT": lambda p: incoming("S", p.seq + 100_000, options=(Mss(1460),)),
    "SYN below RCV.NXT": lambda p: incoming("S", p.seq - 100_000),
    "SYN-ACK": lambda p: incoming("SA", p.seq, p.nxt, options=(Mss(1460),)),
    "SYN-ACK bad ACK": lambda p: incoming("SA", p.seq, p.nxt + 1000),
    "ACK": lambda p: incoming("A", p.seq, p.nxt),
    "ACK unacceptable": lambda p: incoming("A", p.seq, p.nxt + 1000),
    "ACK too old": lambda p: incoming("A", p.seq, p.una - 100_000),
    "data": lambda p: incoming("PA", p.seq, p.ack, payload=DATA),
    "data without ACK": lambda p: incoming("P", p.seq, payload=DATA),
    "data outside window": lambda p: incoming("PA", p.seq + 100_000, p.ack, payload=DATA),
    "old data": lambda p: incoming("PA", p.seq - len(DATA), p.ack, payload=DATA),
    "FIN": lambda p: incoming("FA", p.fin if p.fin is not None else p.seq, p.ack),
    "FIN acking our FIN": lambda p: incoming("FA", p.seq, p.nxt),
    "RST": lambda p: incoming("R", p.seq),
    "RST in window": lambda p: incoming("R", p.seq + 100),
    "RST outside window": lambda p: incoming("R", p.seq + 100_000),
    "RST,ACK acceptable": lambda p: incoming("RA", 0, p.nxt),
    "RST without ACK": lambda p: incoming("R", p.seq),
    "RST,ACK unacceptable": lambda p: incoming("RA", 0, p.nxt + 1000),
}

# ---- timers: how long after the fixture's last step each one fires
TIMERS = {
    "retransmit timer": 1.0,  # RFC 6298 (2.1)/(2.4): initial RTO 1 s; rto_min 1 s
    "2MSL timer": 60.0,  # 2 x MSL, MSL = 30 s
}


# ---- replies: what the host must send, given the stimulus ``s``
def _reply(name: str, p: Peer, s: TcpSegment | None) -> TcpSegment:
    if name == "ACK":  # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, RCV.NXT unchanged
        return outgoing("A", p.nxt, p.seq)
    assert s is not None
    if name == "ACK of data":
        return outgoing("A", p.nxt, s.seq + len(s.payload), window=WINDOW - len(s.payload))
    if name == "ACK of FIN":
        return outgoing("A", p.nxt, s.seq + 1)
    if name == "ACK of SYN":
        return outgoing("A", LOCAL_ISS + 1, s.seq + 1)
    if name == "RST SEQ=SEG.ACK":  # <SEQ=SEG.ACK><CTL=RST>
        return outgoing("R", s.ack)
    if name == "RST,ACK SEG.SEQ+LEN":  # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        return outgoing("RA", 0, s.seq + s.seg_len)
    if name == "SYN-ACK":  # <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
        return outgoing("SA", LOCAL_ISS, s.seq + 1, options=SYN_OPTIONS)
    raise AssertionError(name)


def _timer_reply(name: str, p: Peer) -> TcpSegment:
    if name == "SYN":
        return outgoing("S", LOCAL_ISS, options=SYN_OPTIONS)
    if name == "SYN-ACK":
        return outgoing("SA", LOCAL_ISS, REMOTE_ISS + 1, options=SYN_OPTIONS)
    if name == "FIN":  # our FIN again, from SND.UNA
        return outgoing("FA", p.una, p.seq)
    raise AssertionError(name)


def _case_id(row: tuple[str, str, tuple[str, ...], str, str | None, str]) -> str:
    return f"{row[0]}|{row[1]}"


@pytest.mark.parametrize("row", MATRIX, ids=_case_id)
def test_state_event_matrix(request: pytest.FixtureRequest,
                            row: tuple[str, str, tuple[str, ...], str, str | None, str]) -> None:
    state, stimulus, reply, next_state, error, _rfc = row
    p: Peer = request.getfixturevalue(FIXTURES[state])
    assert p.state == state
    if stimulus in TIMERS:
        assert p.next_timer() == pytest.approx(p.now + TIMERS[stimulus])
        p.advance(p.now + TIMERS[stimulus] - 0.001)
        p.expect_nothing()
        p.fire_next_timer()
        p.expect([_timer_reply(r, p) for r in reply])
    else:
        seg = STIMULI[stimulus](p)
        p.inject(seg, at=p.now + 0.01)
        if reply and reply[0] == D:
            p.expect_nothing()
            p.advance(p.now + p.config.delayed_ack)
            reply = reply[1:]
        p.expect([_reply(r, p, seg) for r in reply])
    assert p.state == next_state
    # The host's tables agree with the trace.
    conn = p.host.conns.get(harness.KEY)
    if next_state in ("CLOSED", "LISTEN"):
        assert conn is None and harness.KEY not in p.host.time_wait
    elif next_state == "TIME-WAIT":
        assert conn is None and harness.KEY in p.host.time_wait
    else:
        assert conn is not None and conn.state.value == next_state
    if error is not None:
        assert p.conn is not None and p.conn.error == error
    elif p.conn is not None:
        assert p.conn.error is None
    p.expect_nothing()


def test_matrix_covers_every_state_and_event() -> None:
    """Each of the 11 states meets SYN, ACK, data, FIN and RST rows at least."""
    states = {row[0] for row in MATRIX}
    assert states == set(harness.BUILDERS)
    for state in states:
        stimuli = {row[1] for row in MATRIX if row[0] == state}
        for needed in ("SYN", "ACK", "FIN"):
            assert needed in stimuli, (state, needed)
        assert any(s.startswith("RST") for s in stimuli), state
        assert any(s.startswith("data") for s in stimuli), state
