"""What a run shows, read back from its trace: retransmissions, faults, exam answers.

Everything here takes the JSON form of a trace (a list of events) and returns
plain facts; :func:`lines` says them in English or Chinese.  Nothing reads
the engine: a trace from the simulator, a pcap or the kernel gives the same
answers.

* :func:`timeline`: every segment sent again, named by its role in the life
  (:mod:`tcplab.faults`), with the retransmission timer that sent it;
* :func:`faults`: which ``--drop/--delay/--dup`` took effect, and which never
  found its segment;
* :func:`outcome`: how the life ended for each side, and why (the cause the
  engine recorded);
* :func:`answers`: the numbers an exam question asks for (ISNs, the SYN-ACK's
  acknowledgment number, bytes sent, when each side reaches CLOSED after the
  first FIN, round trips until the first answer).
"""

from __future__ import annotations

from typing import Any

from tcplab.faults import LifeRoles
from tcplab.i18n import colon, phrase, seconds
from tcplab.i18n import text as tr
from tcplab.trace import Event


def _endpoint(text: str) -> tuple[str, int]:
    addr, _, port = text.rpartition(":")
    return addr, int(port)


def _sends(events: list[Event]) -> list[Event]:
    return [e for e in events if e["kind"] == "segment" and e["event"] in ("send", "recv")
            and "src" in e and "copy_of" not in e and not e.get("injected")]


def roles_of(events: list[Event]) -> list[tuple[Event, list[str]]]:
    """Each segment put on the wire, with its roles in the life, in order."""
    return [(e, roles) for e, roles, _life in lives_of(events)]


def lives_of(events: list[Event]) -> list[tuple[Event, list[str], int]]:
    """Each segment put on the wire, with its roles and which life of its 4-tuple it
    belongs to (a new SYN on a 4-tuple used before starts the next life)."""
    from tcplab.wire.tcp import TcpSegment, parse_flags

    life = LifeRoles()
    out = []
    for e in _sends(events):
        src, dst = _endpoint(e["src"]), _endpoint(e["dst"])
        seg = TcpSegment(src[1], dst[1], e["seq"], e["ack"],
                         parse_flags(e["flags"]), e.get("win", 0), payload=bytes(e["len"]))
        roles = life.roles(src, dst, seg)
        out.append((e, [r for r, _side in roles], life.life(src, dst)))
    return out


def timeline(events: list[Event]) -> list[dict[str, Any]]:
    """Every copy of a segment after the first: time, host, role, which copy, and the
    retransmission timeout that had run (the timer armed before it)."""
    copies: dict[tuple[str, str, str, str, int], int] = {}
    out: list[dict[str, Any]] = []
    # per (host, connection): when its retransmission timer was last armed, when it
    # last fired, and how long it had run then
    armed: dict[tuple[str, str], float] = {}
    fired: dict[tuple[str, str], float] = {}
    ran: dict[tuple[str, str], float] = {}
    sends = {id(e): (roles, n) for e, roles, n in lives_of(events)}
    probed: dict[tuple[str, str], float] = {}   # when a tail loss probe last fired
    for e in events:
        if e["kind"] == "timer" and e["timer"] in ("retransmit", "loss-probe"):
            at = (e["host"], str(e.get("conn")))
            if e["action"] == "armed":
                armed[at] = e["t"]
            elif e["action"] == "fired" and e["timer"] == "loss-probe":
                probed[at] = e["t"]
                ran[at] = e["t"] - armed.get(at, e["t"])
            elif e["action"] == "fired" and at in armed:
                fired[at] = e["t"]
                ran[at] = e["t"] - armed[at]
        found = sends.get(id(e))
        if not found or not found[0]:
            continue
        role = found[0][0]
        key = (e["host"], e["src"], e["dst"], role, found[1])  # copies of one life's segment
        copies[key] = copies.get(key, 0) + 1
        if copies[key] > 1:
            # Sent by the retransmission timer only if that timer fired just then; an
            # ACK sent again answers a segment that came again.
            at = (e["host"], f"{e['src']}-{e['dst']}")
            by_timer = fired.get(at) == e["t"]
            probe = probed.get(at) == e["t"]
            row = {"t": e["t"], "host": e["host"], "role": role, "copy": copies[key],
                   "rto": round(ran[at], 6) if by_timer else None,
                   "fate": e.get("fate", "delivered")}
            if probe:
                row["probe"] = round(ran[at], 6)   # sent by a tail loss probe (RFC 8985)
            out.append(row)
    return out


def faults(events: list[Event], texts: list[str]) -> list[dict[str, Any]]:
    """For each fault (as written, ``--drop syn:all``): how many segments it hit."""
    out = []
    for text in texts:
        name = text.removeprefix("--")
        hits = sum(1 for e in events if e["kind"] == "segment"
                   and e.get("reason") == f"fault: {name}")
        out.append({"fault": text, "hits": hits})
    return out


def outcome(events: list[Event]) -> dict[str, Any]:
    """How the life ended: failed calls (from the story's notes), each host's last state
    and the cause the engine gave."""
    failed = [{"host": e.get("host"), "call": e.get("label"), "error": e.get("result"),
               "t": e["t"], "after": (e.get("args") or {}).get("after")}
              for e in events if e["kind"] == "note" and e.get("fact") == "call-failed"]
    waited = [{"host": e.get("host"), "call": e.get("label"), "t": e["t"],
               "after": (e.get("args") or {}).get("after")}
              for e in events if e["kind"] == "note" and e.get("fact") == "call-waited"]
    last: dict[str, Event] = {}
    for e in events:
        if e["kind"] == "state" and not str(e["conn"]).endswith("-*:*"):
            last[e["host"]] = e
    ends = {h: {"state": e["to"], "cause": e["cause"], "t": e["t"]} for h, e in last.items()}
    return {"failed": failed, "waited": waited, "ends": ends}


def answers(events: list[Event], delay: float) -> dict[str, Any]:
    """The numbers exam questions ask for, from the trace (None where the run had none)."""
    segs = roles_of(events)

    def first(role: str) -> Event | None:
        return next((e for e, roles in segs if role in roles), None)

    syn, synack, ack = first("syn"), first("syn-ack"), first("ack")
    fin, fin2 = first("fin"), first("fin2")
    out: dict[str, Any] = {
        "client_isn": syn["seq"] if syn else None,
        "synack_seq": synack["seq"] if synack else None,
        "synack_ack": synack["ack"] if synack else None,
        "third_seq": ack["seq"] if ack else None,
        "third_ack": ack["ack"] if ack else None,
    }
    if syn and fin and fin["host"] == syn["host"]:
        out["client_fin_seq"] = (fin["seq"] + fin["len"]) & 0xFFFFFFFF
        out["client_bytes"] = (fin["seq"] + fin["len"] - syn["seq"] - 1) & 0xFFFFFFFF
    if synack and fin2 and fin2["host"] == synack["host"]:
        out["server_bytes"] = (fin2["seq"] + fin2["len"] - synack["seq"] - 1) & 0xFFFFFFFF
    if fin is not None:
        t0 = fin["t"]
        closed: dict[str, float] = {}
        for e in events:
            if e["kind"] == "state" and e["to"] == "CLOSED" and e["t"] >= t0 \
                    and not str(e["conn"]).endswith("-*:*") and e["host"] not in closed:
                closed[e["host"]] = e["t"]
        out["closer"] = fin["host"]
        out["closed_after_first_fin"] = {h: round(t - t0, 6) for h, t in closed.items()}
    rtt = 2 * delay
    if syn and rtt > 0:
        first_answer = next((e for e, roles in segs if e["host"] != syn["host"]
                             and e["len"] > 0), None)
        if first_answer is not None:
            # the answer's first byte reaches the client one one-way delay after it left
            out["rtts_until_answer"] = round((first_answer["t"] + delay - syn["t"]) / rtt, 3)
        if fin is not None and "closed_after_first_fin" in out:
            passive = [h for h in out["closed_after_first_fin"] if h != fin["host"]]
            if passive:
                out["release_rtts"] = round(out["closed_after_first_fin"][passive[0]] / rtt, 3)
    return out


def lines(events: list[Event], lang: str, delay: float, fault_texts: list[str],
          most: int = 12) -> list[str]:
    """The findings of a run as lines to print, in ``lang``; at most ``most``
    retransmissions are listed one by one (``--json`` has them all)."""
    out: list[str] = []
    c = colon(lang)
    if fault_texts:
        out.append(tr("find.faults", lang) + c.rstrip())
        for f in faults(events, fault_texts):
            out.append("  " + (tr("find.fault.hit", lang, fault=f["fault"], n=f["hits"])
                               if f["hits"] else tr("find.fault.never", lang, fault=f["fault"])))
    retrans = timeline(events)
    if retrans:
        out.append(tr("find.retrans", lang) + c.rstrip())
        # the same copy sent by many connections at once (a SYN flood) is one row
        rows: list[tuple[dict[str, Any], int]] = []
        for r in retrans:
            same = ("t", "host", "role", "copy", "rto", "probe")
            if rows and all(rows[-1][0].get(k) == r.get(k) for k in same):
                rows[-1] = (rows[-1][0], rows[-1][1] + 1)
            else:
                rows.append((r, 1))
        shown = rows if len(rows) <= most else rows[:most - 1]
        w_t = max(len(f"{r['t']:.3f}") for r, _n in shown)
        for r, n in shown:
            rto = (tr("find.rto", lang, rto=seconds(r["rto"], lang)) if r["rto"] else
                   tr("find.probe", lang, pto=seconds(r["probe"], lang)) if "probe" in r
                   else "")
            many = tr("find.conns", lang, n=n) if n > 1 else ""
            out.append("  " + tr("find.retrans.row", lang, t=f"{r['t']:>{w_t}.3f}", host=r["host"],
                                 role=tr(f"role.{r['role']}", lang), copy=r["copy"],
                                 rto=rto) + many)
        if len(shown) < len(rows):
            out.append("  " + tr("find.retrans.more", lang,
                                 n=sum(n for _r, n in rows[len(shown):])))
    end = outcome(events)
    for f in end["waited"]:
        out.append(tr("find.waited", lang, host=f["host"], call=f["call"],
                      after=seconds(float(f["after"] or 0.0), lang)))
    for f in end["failed"]:
        out.append(tr("find.failed", lang, host=f["host"], call=f["call"], error=f["error"],
                      after=seconds(float(f["after"] or 0.0), lang)))
    if end["failed"] or end["waited"] or fault_texts:
        # how each side's connection ended, and the cause the engine gave
        for host, e in end["ends"].items():
            why = e["cause"] if lang == "en" else (phrase("causename", e["cause"], lang)
                                                   or e["cause"])
            out.append("  " + tr("find.end", lang, host=host, state=e["state"],
                                 t=f"{e['t']:.3f}", why=why))
    return out


def answer_lines(events: list[Event], lang: str, delay: float) -> list[str]:
    """The exam answers of a run (ISNs, bytes, times), as lines in ``lang``."""
    a = answers(events, delay)
    out = [tr("find.answers", lang) + colon(lang).rstrip()]
    if a["client_isn"] is not None:
        out.append("  " + tr("find.a.syn", lang, seq=a["client_isn"]))
    if a["synack_seq"] is not None:
        out.append("  " + tr("find.a.synack", lang, seq=a["synack_seq"], ack=a["synack_ack"]))
    if a["third_seq"] is not None:
        out.append("  " + tr("find.a.third", lang, seq=a["third_seq"], ack=a["third_ack"]))
    if "client_bytes" in a:
        out.append("  " + tr("find.a.bytes", lang, fin=a["client_fin_seq"],
                             n=a["client_bytes"], isn=a["client_isn"]))
    for host, dt in a.get("closed_after_first_fin", {}).items():
        out.append("  " + tr("find.a.closed", lang, host=host, t=seconds(dt, lang),
                             rtts=f"{dt / (2 * delay):g}" if delay else "-"))
    if "rtts_until_answer" in a:
        out.append("  " + tr("find.a.rtts", lang, n=f"{a['rtts_until_answer']:g}"))
    if "release_rtts" in a:
        out.append("  " + tr("find.a.release", lang, n=f"{a['release_rtts']:g}"))
    return out
