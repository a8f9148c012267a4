"""TCP Fast Open (RFC 7413): a cookie from one connection lets the next carry data in its SYN.

The client connects twice with ``sendto(request, MSG_FASTOPEN)``.  The first SYN carries
an empty Fast Open option (a cookie request); the server's SYN-ACK carries a cookie made
from the client's address with its secret key (Linux: SipHash with tcp_fastopen_key).
The second SYN carries that cookie and the request: the server checks the cookie, hands
the data to its application at once, and accept() returns while the connection is still
SYN-RECEIVED.  The answer can leave with the SYN-ACK, so it arrives one round trip after
the client's call instead of two.

On Linux ``net.ipv4.tcp_fastopen`` is a bit mask: 1 (the default) lets clients use it,
2 lets servers accept it (and a listener must also set TCP_FASTOPEN, the length of its
queue of Fast Open children).  The scenario sets 3 on the server, as a Fast Open server
must, unless the run's ``--sysctl`` names tcp_fastopen itself.

``--variant off``: the client's tcp_fastopen is 0, so every SYN is bare and every
request waits for the handshake.

Every outcome is computed from the trace alone; facts above TCP (what a call returned,
and when) are ``note`` events with a ``fact`` field.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from tcplab.api.sockets import MSG_FASTOPEN, TCP_FASTOPEN, TcpSocket
from tcplab.i18n import text
from tcplab.scenarios.base import (
    DELAY,
    REQUEST,
    RESPONSE,
    SERVER,
    Scenario,
    Switches,
    facts,
    note,
    recv_exactly,
    sent,
    text_of,
    two_hosts,
    with_switch,
)
from tcplab.scenarios.connecting import Poller
from tcplab.sim.network import Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event

PORT = 80
QLEN = 16           #: the listener's TCP_FASTOPEN: at most this many Fast Open children
CONNECTIONS = 2     #: the first gets the cookie, the second uses it
PAUSE = 1.0         #: between the two connections (s)
CLIENT_BIT, SERVER_BIT = 1, 2   #: net.ipv4.tcp_fastopen bits


def _given(sw: Switches) -> bool:
    return any(s.split("=", 1)[0].strip().endswith("tcp_fastopen") for s in sw.sysctls)


def run_fastopen(seed: int, sw: Switches) -> Network:
    net, c, s = two_hosts(seed, sw)
    if not _given(sw):
        c.config.fastopen |= CLIENT_BIT
        s.config.fastopen |= CLIENT_BIT | SERVER_BIT
    if sw.variant == "off":
        c.config.fastopen = 0
    note(net, f"client: net.ipv4.tcp_fastopen = {c.config.fastopen}; server: "
              f"net.ipv4.tcp_fastopen = {s.config.fastopen} and TCP_FASTOPEN = {QLEN} "
              "on its listener", key="tfo.setup", client=c.config.fastopen,
         server=s.config.fastopen, qlen=QLEN)
    srv = SimSocket(net, s)
    srv.bind(("0.0.0.0", PORT))
    srv.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, QLEN)
    srv.listen(8)
    srv.setblocking(False)
    _serve(net, srv)
    for n in range(1, CONNECTIONS + 1):
        cli = SimSocket(net, c)
        t0 = net.now
        note(net, f"client, connection {n}: sendto(request, MSG_FASTOPEN)", fact="call",
             host="client", n=n, key="tfo.sendto")
        # Blocking, as on Linux: the call returns when the connection is established
        # (inet_wait_for_connect); with a cookie the request has left in the SYN.
        try:
            cli.sendto(REQUEST, MSG_FASTOPEN, (SERVER, PORT))
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            # Linux: EOPNOTSUPP when tcp_fastopen lacks the client bit; a program falls
            # back to the ordinary calls
            note(net, "client: sendto(MSG_FASTOPEN) fails with EOPNOTSUPP; the program "
                      "falls back to connect() and send()", key="tfo.fallback",
                 err="EOPNOTSUPP")
            cli.connect((SERVER, PORT))
            cli.sendall(REQUEST)
        answer = recv_exactly(cli, len(RESPONSE))
        after = round(net.now - t0, 6)
        note(net, f"client, connection {n}: the answer arrives {after:g} s after sendto()",
             fact="answer", host="client", n=n, after=after, data=text_of(answer),
             key="tfo.answer")
        cli.close()
        net.run_for(PAUSE)
    return net


def _serve(net: Network, srv: SimSocket) -> None:
    """The server's program, run the moment each of its calls can return (as a program
    blocked in accept() or recv() would): accept, read the request, answer, and close
    when the client has closed."""
    children: list[tuple[int, TcpSocket, bytearray]] = []
    done: set[int] = set()

    def step() -> bool:
        lst = srv.listener
        while lst is not None and lst.accept_queue:
            child, _ = srv.accept()
            child.setblocking(False)
            n = len(children) + 1
            children.append((n, child, bytearray()))
            note(net, f"server, connection {n}: accept() returns in {child.state}",
                 fact="accept", host="server", n=n, state=child.state, key="tfo.accept")
        for n, child, got in children:
            if n in done:
                continue
            try:
                chunk = child.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:                      # the client closed: so does the server
                child.close()
                done.add(n)
                continue
            got += chunk
            if len(got) >= len(REQUEST) and len(got) - len(chunk) < len(REQUEST):
                note(net, f"server, connection {n}: read the request in {child.state}",
                     fact="server-read", host="server", n=n, state=child.state,
                     data=text_of(bytes(got)), key="tfo.read")
                child.send(RESPONSE)
        return False

    Poller(net).add(step)


def outcome_fastopen(events: list[Event]) -> dict[str, Any]:
    syns = [e for e in sent(events, "client") if e["flags"] == "S"]
    synacks = [e for e in sent(events, "server") if e["flags"] == "SA"]

    def fo(e: Event) -> str | None:
        return next((o for o in e.get("opts", []) if o == "FO" or o.startswith("FO ")), None)

    answers = {e["args"]["n"]: e["args"]["after"] for e in facts(events, "answer", "client")}
    reads = {e["args"]["n"]: e["args"]["state"] for e in facts(events, "server-read", "server")}
    rtt = 2 * DELAY
    out: dict[str, Any] = {
        "syns": len(syns),
        "first_syn_asks_for_cookie": bool(syns) and fo(syns[0]) == "FO",
        "cookie_from_server": next((o.split(" ", 1)[1] for e in synacks
                                    if (o := fo(e)) and " " in o), None),
        "second_syn_carries_cookie": len(syns) > 1 and (fo(syns[1]) or "").startswith("FO "),
        "rtt_s": rtt,
    }
    for n, word in enumerate(("first", "second"), 1):
        out[f"{word}_syn_data"] = syns[n - 1]["len"] if len(syns) >= n else None
        out[f"{word}_read_in"] = reads.get(n)
        out[f"{word}_answer_after_s"] = answers.get(n)
        out[f"{word}_answer_rtts"] = round(answers[n] / rtt, 2) if n in answers else None
    return out


def report_fastopen(events: list[Event], outcome: dict[str, Any], lang: str) -> list[str]:
    lines = []
    for n, word in enumerate(("first", "second"), 1):
        after = outcome[f"{word}_answer_after_s"]
        if after is None:
            continue
        lines.append("  " + text("ui.tfo.line", lang, n=n, after=f"{after:g}",
                                 rtts=f"{outcome[f'{word}_answer_rtts']:g}",
                                 bytes=outcome[f"{word}_syn_data"]))
    return lines


SCENARIOS = [
    Scenario("fastopen", run_fastopen, outcome_fastopen, group="handshake",
             report=report_fastopen, counterfactual=with_switch(None, variant="off"),
             variants=("off",),
             headline=("second_syn_data", "second_read_in", "first_answer_rtts",
                       "second_answer_rtts")),
]
