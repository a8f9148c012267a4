"""Follow TCP connections passively and infer both endpoints' states (RFC 9293 3.3.2).

An observer on the wire sees segments, not states; this module replays the
RFC's state machine for *both* ends from what they send and, assuming that
what the capture saw was also received (true for a capture on either host or
on loopback), from what they receive:

* SYN from X: X is SYN-SENT; its peer Y is taken to be LISTEN (not emitted:
  a listener has no connection to draw until it answers).
* SYN,ACK from Y: Y LISTEN -> SYN-RECEIVED; X SYN-SENT -> ESTABLISHED.
* the ACK of Y's SYN: Y SYN-RECEIVED -> ESTABLISHED.
* the first FIN from X: X -> FIN-WAIT-1 (X is the *active closer*), and Y,
  receiving it, ESTABLISHED -> CLOSE-WAIT (or FIN-WAIT-1 -> CLOSING when both
  closed at once).  Y's FIN: CLOSE-WAIT -> LAST-ACK.
* an ACK covering X's FIN: FIN-WAIT-1 -> FIN-WAIT-2, CLOSING -> TIME-WAIT,
  LAST-ACK -> CLOSED.  A FIN reaching FIN-WAIT-2: -> TIME-WAIT.  Segments are
  processed as RFC 9293 3.10.7.4 does: the ACK field first, then FIN, so a
  FIN,ACK that also acknowledges our FIN goes FIN-WAIT-1 -> FIN-WAIT-2 ->
  TIME-WAIT.
* TIME-WAIT: the end of 2MSL cannot be seen on the wire; a ``time-wait``
  timer is armed with the deadline Linux uses (60 s, ``assumed`` says so) and
  is re-armed when a retransmitted FIN arrives.  The side stays in TIME-WAIT
  to the end of the capture unless a new SYN reuses the 4-tuple or a RST
  ends it.
* RST: the sender and the receiver go to CLOSED.
* a capture that starts in mid-connection (no SYN seen): both ends are
  taken to be ESTABLISHED from the first segment on (a note says so).

Besides states, each segment event carries the sender's inferred ``tcb``
(SND.UNA, SND.NXT, RCV.NXT, SND.WND and RCV.WND, scaled when both SYNs carried
the window-scale option) and ``retrans`` when it repeats sequence space
already sent.  Every inferred state event has ``inferred: True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.pcap.packet import Packet
from tcplab.wire.seq import seq_lt

Event = dict[str, Any]

TIME_WAIT_ASSUMED = 60.0  # Linux TCP_TIMEWAIT_LEN


@dataclass
class _Side:
    ep: str
    state: str | None = None
    iss: int | None = None
    irs: int | None = None
    fin_seq: int | None = None     # sequence number of this side's FIN
    snd_nxt: int | None = None
    snd_una: int | None = None
    rcv_nxt: int | None = None
    snd_wnd: int = 0
    rcv_wnd: int = 0
    wscale: int | None = None
    syn_seen: bool = False

    def tcb(self) -> dict[str, Any]:
        return {"state": self.state or "?", "snd_una": self.snd_una, "snd_nxt": self.snd_nxt,
                "snd_wnd": self.snd_wnd, "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd,
                "iss": self.iss, "irs": self.irs, "inferred": True}


class _Conn:
    def __init__(self, a: str, b: str) -> None:
        self.sides = {a: _Side(a), b: _Side(b)}
        self.a, self.b = a, b
        self.started = False

    def name_for(self, ep: str) -> str:
        return f"{ep}-{self.b if ep == self.a else self.a}"

    def scaled(self) -> bool:
        return all(s.wscale is not None for s in self.sides.values())


def follow(packets: Sequence[Packet], t0: float = 0.0) -> list[Event]:
    """Trace events (segments, inferred states and timers) for ``packets``."""
    conns: dict[tuple[str, str], _Conn] = {}
    out: list[Event] = []
    for p in packets:
        key = (min(p.src, p.dst), max(p.src, p.dst))
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = _Conn(p.src, p.dst)
        _step(conn, p, p.t - t0, out)
    return out


def _state(out: list[Event], conn: _Conn, side: _Side, to: str, t: float, cause: str) -> None:
    if side.state == to:
        return
    frm = side.state or "CLOSED"
    side.state = to
    out.append({"t": t, "kind": "state", "host": side.ep, "conn": conn.name_for(side.ep),
                "from": frm, "to": to, "cause": cause, "inferred": True, "tcb": side.tcb()})


def _time_wait(out: list[Event], conn: _Conn, side: _Side, t: float, cause: str) -> None:
    _state(out, conn, side, "TIME-WAIT", t, cause)
    out.append({"t": t, "kind": "timer", "host": side.ep, "conn": conn.name_for(side.ep),
                "timer": "time-wait", "action": "armed", "deadline": t + TIME_WAIT_ASSUMED,
                "assumed": "2MSL = 60 s as on Linux; its end is not visible on the wire"})


def _step(conn: _Conn, p: Packet, t: float, out: list[Event]) -> None:
    x, y = conn.sides[p.src], conn.sides[p.dst]
    flags = p.flags
    syn, fin, rst, has_ack = "S" in flags, "F" in flags, "R" in flags, "A" in flags
    seg_len = p.length + (1 if syn else 0) + (1 if fin else 0)
    before: list[Event] = []   # the sender's own change happens before it sends
    after: list[Event] = []    # the receiver's, when the segment arrives

    if not conn.started:
        conn.started = True
        if not syn:
            for s in (x, y):
                s.state = "ESTABLISHED"
            out.append({"t": t, "kind": "note", "text":
                        f"{p.src} <-> {p.dst}: capture starts in mid-connection; "
                        f"both ends taken to be ESTABLISHED"})

    # A new SYN on a 4-tuple whose last connection is over: a new incarnation.
    if syn and not has_ack and x.state not in (None, "CLOSED") and not (
            x.state == "SYN-SENT" and p.seq == x.iss):
        for s in (x, y):
            if s.state not in (None, "CLOSED", "LISTEN"):
                _state(before, conn, s, "CLOSED", t, "new SYN reuses the 4-tuple")
        for ep in (conn.a, conn.b):
            conn.sides[ep] = _Side(ep)
        conn.a, conn.b = p.src, p.dst
        x, y = conn.sides[p.src], conn.sides[p.dst]

    retrans = bool(seg_len and x.snd_nxt is not None and seq_lt(p.seq, x.snd_nxt))

    # ---- what the sender's own segment says about the sender
    if rst:
        if x.state not in (None, "CLOSED", "LISTEN"):
            _state(before, conn, x, "CLOSED", t, "sent RST")
    elif syn and not has_ack:
        x.syn_seen, x.iss, x.wscale = True, p.seq, p.wscale
        if x.state in (None, "CLOSED"):
            _state(before, conn, x, "SYN-SENT", t, "sent SYN (active open)")
        if y.state is None:
            y.state = "LISTEN"  # assumed: it answers with SYN,ACK (or RST)
    elif syn and has_ack:
        x.syn_seen, x.iss, x.irs, x.wscale = True, p.seq, (p.ack - 1) & 0xFFFFFFFF, p.wscale
        if x.state in (None, "LISTEN", "CLOSED", "SYN-SENT"):
            _state(before, conn, x, "SYN-RECEIVED", t, "sent SYN,ACK")
    if fin and x.fin_seq is None and not rst:
        x.fin_seq = (p.seq + p.length + (1 if syn else 0)) & 0xFFFFFFFF
        if x.state == "CLOSE-WAIT":
            _state(before, conn, x, "LAST-ACK", t, "sent FIN (passive close)")
        elif x.state in ("ESTABLISHED", "SYN-RECEIVED", None):
            _state(before, conn, x, "FIN-WAIT-1", t, "sent FIN (active close)")

    # ---- sequence-space bookkeeping for the inferred TCB
    end = (p.seq + seg_len) & 0xFFFFFFFF
    if x.snd_nxt is None or seq_lt(x.snd_nxt, end):
        x.snd_nxt = end
    if x.snd_una is None:
        x.snd_una = p.seq
    shift_x = (x.wscale or 0) if conn.scaled() and not syn else 0
    x.rcv_wnd = p.win << shift_x
    y.snd_wnd = x.rcv_wnd
    if has_ack:
        if x.rcv_nxt is None or seq_lt(x.rcv_nxt, p.ack):
            x.rcv_nxt = p.ack
        if y.snd_una is None or seq_lt(y.snd_una, p.ack):
            y.snd_una = p.ack
        if y.iss is not None and x.irs is None:
            x.irs = y.iss

    # ---- what the receiver does with it (ACK field first, then FIN: RFC 9293 3.10.7.4)
    if rst:
        if y.state not in (None, "CLOSED", "LISTEN"):
            why = "connection refused (RST)" if y.state == "SYN-SENT" else "received RST"
            _state(after, conn, y, "CLOSED", t, why)
    else:
        if syn and not has_ack and y.state == "SYN-SENT":
            _state(after, conn, y, "SYN-RECEIVED", t, "received SYN (simultaneous open)")
        if has_ack and y.iss is not None:
            acked_syn = seq_lt(y.iss, p.ack)
            if y.state == "SYN-SENT" and syn and acked_syn:
                _state(after, conn, y, "ESTABLISHED", t, "received SYN,ACK")
            elif y.state == "SYN-RECEIVED" and acked_syn and not syn:
                _state(after, conn, y, "ESTABLISHED", t, "received ACK of SYN,ACK")
        if has_ack and y.fin_seq is not None and seq_lt(y.fin_seq, p.ack):
            if y.state == "FIN-WAIT-1":
                _state(after, conn, y, "FIN-WAIT-2", t, "our FIN acknowledged")
            elif y.state == "CLOSING":
                _time_wait(after, conn, y, t, "our FIN acknowledged in CLOSING")
            elif y.state == "LAST-ACK":
                _state(after, conn, y, "CLOSED", t, "our FIN acknowledged in LAST-ACK")
        if fin:
            if y.state in ("ESTABLISHED", "SYN-RECEIVED"):
                _state(after, conn, y, "CLOSE-WAIT", t, "received FIN")
            elif y.state == "FIN-WAIT-1":
                _state(after, conn, y, "CLOSING", t, "received FIN (simultaneous close)")
            elif y.state == "FIN-WAIT-2":
                _time_wait(after, conn, y, t, "received FIN in FIN-WAIT-2")
            elif y.state == "TIME-WAIT":
                after.append({"t": t, "kind": "timer", "host": y.ep,
                              "conn": conn.name_for(y.ep), "timer": "time-wait",
                              "action": "armed", "deadline": t + TIME_WAIT_ASSUMED,
                              "cause": "retransmitted FIN restarts 2MSL"})

    seg: Event = {"t": t, "kind": "segment", "event": "send", "id": p.number,
                  "frame": p.number, "host": p.src, "src": p.src, "dst": p.dst,
                  "flags": flags, "seq": p.seq, "ack": p.ack if has_ack else 0,
                  "len": p.length, "win": p.win, "opts": list(p.opts), "fate": "delivered",
                  "conn": conn.name_for(p.src), "tcb": x.tcb(), "raw": p.raw}
    if retrans:
        seg["retrans"] = True
    out.extend(before)
    out.append(seg)
    out.extend(after)
