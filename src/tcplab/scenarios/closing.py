"""Scenarios about closing: four segments, three, half-close, CLOSING, the lost last ACK.

RFC 9293 3.6 (closing a connection, simultaneous close, TIME-WAIT and its
2MSL timer, restarted by a retransmitted FIN: 3.10.7.4, eighth step).
"""

from __future__ import annotations

from typing import Any

from tcplab.api.sockets import IPPROTO_TCP, TCP_QUICKACK
from tcplab.scenarios.base import (
    SERVER,
    Scenario,
    Switches,
    conn_paths,
    connected,
    facts,
    listen,
    note,
    sent,
    text_of,
    time_wait_spans,
    two_hosts,
    with_switch,
)
from tcplab.sim.network import Fault, Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event


def _path(events: list[Event], host: str) -> list[str]:
    return next(iter(conn_paths(events, host).values()), [])


def _close_segments(events: list[Event]) -> list[Event]:
    """The segments from the first FIN on."""
    segs = sent(events)
    first = next(i for i, e in enumerate(segs) if "F" in e["flags"])
    return segs[first:]


def _tw(events: list[Event], host: str = "client") -> dict[str, Any]:
    spans = time_wait_spans(events, host)
    if not spans:
        return {"time_wait_seconds": None, "time_wait_timer_arms": 0}
    span = spans[0]
    left = span["left"]
    return {"time_wait_seconds": None if left is None else round(left - span["entered"], 6),
            "time_wait_timer_arms": len(span["arms"])}


# ---------------------------------------------------------------- close


def run_close(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    _srv, cli, conn = connected(net, client_port=40000)
    note(net, "client: close() - the client closes first", key="app.client-closes-first")
    cli.close()
    assert conn.recv(4096) == b""
    net.run_for(0.5)
    note(net, "server: recv() returned b'' (end of stream); half a second later, close()",
         key="close.server", d=0.5)
    conn.close()
    net.run()
    return net


def outcome_close(events: list[Event]) -> dict[str, Any]:
    return {
        "client_path": _path(events, "client"),
        "server_path": _path(events, "server"),
        "close_segments": [f"{e['host']}:{e['flags']}" for e in _close_segments(events)],
        **_tw(events),
    }


# ---------------------------------------------------------------- half-close

CHUNKS = [b"part 1 of the answer, sent after the client's FIN\n",
          b"part 2: the server's direction is still open\n",
          b"part 3: now the server is done\n"]


def run_half_close(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    srv = listen(net, net.hosts["server"], 80)
    cli = SimSocket(net, net.hosts["client"])
    cli.connect((SERVER, 80))
    conn, _ = srv.accept()
    cli.sendall(b"SUM 1 2 3\n")
    note(net, "client: send the request, then shutdown(SHUT_WR): 'I have nothing more to send'",
         key="half.shutdown")
    cli.shutdown(1)  # SHUT_WR
    got = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        got += chunk
    note(net, "server: read the whole request up to end of stream; it keeps sending",
         fact="app-recv", host="server", data=text_of(got), key="half.read")
    for part in CHUNKS:
        net.run_for(0.3)
        conn.sendall(part)
    net.run_for(0.3)
    note(net, "server: done: close()", key="half.done")
    conn.close()
    answer = b""
    while True:
        chunk = cli.recv(4096)
        if not chunk:
            break
        answer += chunk
    note(net, f"client: read {len(answer)} bytes after its own FIN, then end of stream",
         fact="app-recv", host="client", data=text_of(answer), key="half.client-read",
         n=len(answer))
    cli.close()
    net.run()
    return net


def outcome_half_close(events: list[Event]) -> dict[str, Any]:
    states = [e for e in events if e["kind"] == "state" and e["host"] == "server"]
    cw = next(e["t"] for e in states if e["to"] == "CLOSE-WAIT")
    la = next(e["t"] for e in states if e["to"] == "LAST-ACK")
    in_cw = [e for e in sent(events, "server") if cw <= e["t"] <= la and e["len"] > 0]
    client_fin = next(e for e in sent(events, "client") if "F" in e["flags"])
    fin_ack = (client_fin["seq"] + client_fin["len"] + 1) & 0xFFFFFFFF
    ack_of_fin = next(e for e in sent(events, "server") if e["ack"] == fin_ack)
    server_fin = next(e for e in sent(events, "server") if "F" in e["flags"])
    got = facts(events, "app-recv", "client")
    return {
        "client_path": _path(events, "client"),
        "server_path": _path(events, "server"),
        "server_data_segments_in_close_wait": len(in_cw),
        "server_bytes_in_close_wait": sum(e["len"] for e in in_cw),
        "client_bytes_after_its_fin": len(got[0]["data"]) if got else 0,
        "ack_of_fin_at": ack_of_fin["t"],
        "server_fin_at": server_fin["t"],
        "ack_and_fin_separate": ack_of_fin["id"] != server_fin["id"],
    }


# ---------------------------------------------------------------- close-combined


def run_close_combined(seed: int, sw: Switches) -> Network:
    net, _c, s = two_hosts(seed, sw)
    _srv, cli, conn = connected(net, client_port=40000)
    note(net, "client: close()", key="app.client-close")
    cli.close()
    assert conn.recv(4096) == b""
    if sw.variant == "quickack":
        # TCP_QUICKACK (Linux do_tcp_setsockopt): leave ping-pong mode and send the
        # pending ACK now, so the FIN that follows cannot carry it.
        note(net, "server: end of stream; setsockopt(TCP_QUICKACK, 1): the pending ACK of "
                  "the FIN goes out now; then close()", key="cc.quickack")
        conn.setsockopt(IPPROTO_TCP, TCP_QUICKACK, 1)
    else:
        note(net, f"server: end of stream, close() at once (within the "
                  f"{s.config.delayed_ack * 1000:g} ms delayed-ACK time)",
             key="cc.server", d=round(s.config.delayed_ack * 1000, 3))
    conn.close()
    net.run()
    return net


def outcome_close_combined(events: list[Event]) -> dict[str, Any]:
    segs = _close_segments(events)
    return {
        "close_segments": [f"{e['host']}:{e['flags']}" for e in segs],
        "close_segment_count": len(segs),
        "server_path": _path(events, "server"),
        "client_path": _path(events, "client"),
    }


# ---------------------------------------------------------------- simultaneous close


def run_simultaneous_close(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    _srv, cli, conn = connected(net, client_port=40000)
    net.run_for(0.5)
    note(net, "client and server call close() at the same moment", key="simclose.both")
    cli.close()
    conn.close()
    net.run()
    return net


def outcome_simultaneous_close(events: list[Event]) -> dict[str, Any]:
    return {
        "client_path": _path(events, "client"),
        "server_path": _path(events, "server"),
        "close_segments": [f"{e['host']}:{e['flags']}" for e in _close_segments(events)],
        "both_time_wait": bool(time_wait_spans(events, "client")
                               and time_wait_spans(events, "server")),
    }


# ---------------------------------------------------------------- lost final ACK


def run_lost_final_ack(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    _srv, cli, conn = connected(net, client_port=40000)
    note(net, "client: close()", key="app.client-close")
    cli.close()
    assert conn.recv(4096) == b""
    net.run_for(0.2)
    # The client's next pure ACK is the ACK of the server's FIN: the network loses it.
    net.add_fault(Fault("drop", lambda p: p.src_host == "client" and p.flags == "A",
                        name="the last ACK is lost"))
    note(net, "server: close(); the client's ACK of this FIN will be lost", key="lfa.server-close")
    conn.close()
    net.run()
    return net


def outcome_lost_final_ack(events: list[Event]) -> dict[str, Any]:
    server_fins = [e for e in sent(events, "server") if "F" in e["flags"]]
    lost = [e for e in sent(events, "client") if e["fate"] == "dropped"]
    server_end = next(e for e in reversed(events) if e["kind"] == "state"
                      and e["host"] == "server" and e["to"] == "CLOSED")
    spans = time_wait_spans(events, "client")
    arms = spans[0]["arms"] if spans else []
    restart = None
    if len(arms) >= 2:
        restart = round(arms[1]["deadline"] - arms[1]["t"], 6)
    client_rst = [e for e in sent(events, "client") if "R" in e["flags"]]
    return {
        "last_ack_lost": bool(lost),
        "server_fin_transmissions": len(server_fins),
        "client_path": _path(events, "client"),
        "server_path": _path(events, "server"),
        "server_closed_cause": server_end["cause"],
        "server_clean_close": server_end["from"] == "LAST-ACK" and "acknowledged"
        in server_end["cause"],
        "client_answered_rst": len(client_rst),
        "time_wait_restarted_for": restart,
        **_tw(events),
    }


SCENARIOS = [
    Scenario("close", run_close, outcome_close, group="close",
             counterfactual=with_switch(None, time_wait=0.0),
             headline=("close_segments", "time_wait_seconds")),
    Scenario("half-close", run_half_close, outcome_half_close, group="close",
             headline=("server_data_segments_in_close_wait", "client_bytes_after_its_fin")),
    Scenario("close-combined", run_close_combined, outcome_close_combined, group="close",
             headline=("close_segments",), variants=("quickack",)),
    Scenario("simultaneous-close", run_simultaneous_close, outcome_simultaneous_close, group="close",
             headline=("client_path", "server_path")),
    Scenario("lost-final-ack", run_lost_final_ack, outcome_lost_final_ack, group="close",
             counterfactual=with_switch(None, time_wait=0.0),
             headline=("server_fin_transmissions", "time_wait_restarted_for",
                       "server_closed_cause")),
]
