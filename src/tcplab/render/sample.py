"""Sample traces for tests, benchmarks and the docs' figures.

:func:`engine_trace` runs one whole connection life between two engine
``Host`` objects over a minimal, deterministic link of its own (fixed
one-way delay, optional loss of chosen segments): handshake, a request and a
response, the four-way close with the client closing first, TIME-WAIT to
CLOSED.  It is *not* the simulator (``tcplab.sim``); it only needs to give
the pictures real engine events, with ``t_arrive`` and ``fate`` set as a
backend would.

:func:`synthetic_trace` writes events in the trace schema directly, as many
segments as asked, for the rendering benchmark.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


def engine_trace(*, delay: float = 0.01, drop: Callable[[Event, int], bool] | None = None,
                 request: bytes = b"GET / HTTP/1.0\r\n\r\n",
                 response: bytes = b"HTTP/1.0 200 OK\r\n\r\nhello",
                 seed: int = 1, limit: float = 400.0) -> list[Event]:
    """Events of one connection life; ``drop(event, n)`` loses the n-th segment (from 1)."""
    from tcplab.engine import Host
    from tcplab.trace import Trace

    tr = Trace()
    client = Host("client", "192.0.2.1", rng=random.Random(seed), trace=tr)
    server = Host("server", "192.0.2.2", rng=random.Random(seed + 1), trace=tr)
    peer = {id(client): server, id(server): client}
    listener = server.listen(server.bind("0.0.0.0", 80))
    flight: list[tuple[float, int, Host, bytes]] = []
    counter = 0

    def flush(now: float) -> None:
        nonlocal counter
        for host in (client, server):
            for out in host.transmit():
                counter += 1
                ev = out.event
                if ev is not None:
                    ev["t_arrive"] = now + delay
                    if drop is not None and drop(ev, counter):
                        ev["fate"] = "dropped"
                        continue
                heapq.heappush(flight, (now + delay, counter, peer[id(host)], out.data))

    now = 0.0
    conn = client.connect("192.0.2.2", 80, now)
    conn.send(request, now)
    flush(now)
    accepted: Any = None
    answered = closed_client = closed_server = False
    while now <= limit:
        deadlines = [d for d in (client.next_deadline(), server.next_deadline()) if d is not None]
        t_next = min([*deadlines, *([flight[0][0]] if flight else [])], default=None)
        if t_next is None:
            break
        now = max(now, t_next)
        while flight and flight[0][0] <= now:
            _, _, host, data = heapq.heappop(flight)
            host.receive(data, now)
        client.handle_timers(now)
        server.handle_timers(now)
        if accepted is None:
            accepted = listener.accept()
        if accepted is not None and not answered and accepted.recv(65536, now):
            accepted.send(response, now)
            answered = True
        if answered and not closed_client and conn.recv(65536, now):
            conn.close(now)
            closed_client = True
        if (accepted is not None and not closed_server
                and accepted.state.value == "CLOSE-WAIT"):
            accepted.close(now)
            closed_server = True
        flush(now)
    return tr.events


def synthetic_trace(n_segments: int, *, rtt: float = 0.002) -> list[Event]:
    """A long bulk transfer written straight in the trace schema (for benchmarks).

    Handshake, ``n_segments - 7`` alternating data and ACK segments, every
    100th data segment lost and sent again, the four-way close, TIME-WAIT.
    """
    a, b = "10.0.0.1:40000", "10.0.0.2:80"
    ca, cb = f"{a}-{b}", f"{b}-{a}"
    ev: list[Event] = []
    t = 0.0
    seq = {a: 1000, b: 5000}
    acked = {a: 1000, b: 5000}
    n = 0

    def tcb(src: str, dst: str, state: str) -> dict[str, Any]:
        return {"state": state, "snd_una": acked[src], "snd_nxt": seq[src], "snd_wnd": 65535,
                "rcv_nxt": seq[dst], "rcv_wnd": 65535}

    def seg(src: str, dst: str, flags: str, length: int, state: str,
            fate: str = "delivered") -> None:
        nonlocal n, t
        n += 1
        host = "client" if src == a else "server"
        e: Event = {"t": t, "kind": "segment", "event": "send", "id": n, "host": host,
                    "src": src, "dst": dst, "flags": flags, "seq": seq[src],
                    "ack": seq[dst] if "A" in flags else 0, "len": length, "win": 65535,
                    "opts": [], "fate": fate, "t_arrive": t + rtt / 2,
                    "conn": ca if src == a else cb}
        seq[src] += length + ("S" in flags) + ("F" in flags)
        e["tcb"] = tcb(src, dst, state)
        ev.append(e)
        t += rtt / 4

    def state(host: str, frm: str, to: str) -> None:
        ev.append({"t": t, "kind": "state", "host": host, "conn": ca if host == "client" else cb,
                   "from": frm, "to": to, "cause": "synthetic"})

    state("client", "CLOSED", "SYN-SENT")
    seg(a, b, "S", 0, "SYN-SENT")
    state("server", "LISTEN", "SYN-RECEIVED")
    seg(b, a, "SA", 0, "SYN-RECEIVED")
    state("client", "SYN-SENT", "ESTABLISHED")
    seg(a, b, "A", 0, "ESTABLISHED")
    state("server", "SYN-RECEIVED", "ESTABLISHED")
    k = 0
    while n < n_segments - 4:
        k += 1
        if k % 100 == 0:
            seg(a, b, "PA", 1000, "ESTABLISHED", fate="dropped")
            seq[a] -= 1000
            ev.append({"t": t, "kind": "timer", "host": "client", "conn": ca,
                       "timer": "retransmit", "action": "armed", "deadline": t + 0.2})
            t += 0.2
            ev.append({"t": t, "kind": "timer", "host": "client", "conn": ca,
                       "timer": "retransmit", "action": "fired", "deadline": None})
        seg(a, b, "PA", 1000, "ESTABLISHED")
        if n < n_segments - 4:
            acked[a] = seq[a]
            seg(b, a, "A", 0, "ESTABLISHED")
    state("client", "ESTABLISHED", "FIN-WAIT-1")
    seg(a, b, "FA", 0, "FIN-WAIT-1")
    state("server", "ESTABLISHED", "CLOSE-WAIT")
    seg(b, a, "A", 0, "CLOSE-WAIT")
    state("client", "FIN-WAIT-1", "FIN-WAIT-2")
    state("server", "CLOSE-WAIT", "LAST-ACK")
    seg(b, a, "FA", 0, "LAST-ACK")
    state("client", "FIN-WAIT-2", "TIME-WAIT")
    ev.append({"t": t, "kind": "timer", "host": "client", "conn": ca, "timer": "time-wait",
               "action": "armed", "deadline": t + 60})
    seg(a, b, "A", 0, "TIME-WAIT")
    state("server", "LAST-ACK", "CLOSED")
    t += 60
    ev.append({"t": t, "kind": "timer", "host": "client", "conn": ca, "timer": "time-wait",
               "action": "fired", "deadline": None})
    state("client", "TIME-WAIT", "CLOSED")
    return ev


def lose_first_fin(host: str = "server") -> Callable[[Event, int], bool]:
    """A ``drop`` predicate for :func:`engine_trace`: lose ``host``'s first FIN, once."""
    lost = {"done": False}

    def drop(e: Event, n: int) -> bool:
        if not lost["done"] and "F" in str(e.get("flags", "")) and e.get("host") == host:
            lost["done"] = True
            return True
        return False
    return drop
