"""Workloads run on the simulator: used by tests, benchmarks and scenarios.

They drive engine connections directly (no socket layer), so both directions
can move at once in one thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.state import State
from tcplab.sim.network import LinkSpec, Network


@dataclass
class TransferResult:
    """What a bidirectional transfer delivered, and how it ended."""

    sent_c2s: bytes
    sent_s2c: bytes
    got_c2s: bytearray = field(default_factory=bytearray)
    got_s2c: bytearray = field(default_factory=bytearray)
    client_state: str = ""
    server_state: str = ""
    client_error: str | None = None
    server_error: str | None = None
    virtual_time: float = 0.0
    events: int = 0

    @property
    def intact(self) -> bool:
        return (hashlib.sha256(self.got_c2s).digest() == hashlib.sha256(self.sent_c2s).digest()
                and hashlib.sha256(self.got_s2c).digest()
                == hashlib.sha256(self.sent_s2c).digest())


def payload(n: int, seed: int) -> bytes:
    """``n`` pseudo-random bytes (cheap, deterministic)."""
    block = hashlib.sha256(f"tcplab-{seed}".encode()).digest() * 128  # 4 KiB
    reps = n // len(block) + 1
    data = bytearray(block * reps)[:n]
    # make every 4 KiB block distinct so a misplaced block is caught
    for i in range(0, n, 4096):
        data[i:i + 4] = (i // 4096).to_bytes(4, "big")
    return bytes(data)


def bidirectional_transfer(seed: int, size: int, link: LinkSpec, *,
                           config: TcpConfig | None = None, trace: bool = False,
                           time_limit: float = 3600.0) -> TransferResult:
    """Send ``size`` bytes each way at once, then both sides close.

    Returns when both connections are CLOSED (TIME-WAIT included) or the
    virtual ``time_limit`` passes.
    """
    net = Network(seed)
    net.trace.enabled = trace
    cfg = config or TcpConfig()
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", cfg)
    net.link(c, s, link)
    lst = s.listen(s.bind("0.0.0.0", 80))
    res = TransferResult(payload(size, seed), payload(size, seed + 10_000))
    cc = c.connect("192.0.2.2", 80, net.now)
    sc: list[Connection] = []
    offs = {"c": 0, "s": 0}
    closed = {"c": False, "s": False}

    def pump() -> None:
        if not sc:
            acc = lst.accept()
            if acc is not None:
                sc.append(acc)
        now = net.now
        for tag, conn, data, got in (("c", cc, res.sent_c2s, res.got_s2c),
                                     ("s", sc[0] if sc else None, res.sent_s2c, res.got_c2s)):
            if conn is None or conn.error is not None:
                continue
            if conn.rcvbuf:
                got += conn.recv(1 << 20, now)
            st = conn.state
            if offs[tag] < len(data) and st in (State.ESTABLISHED, State.CLOSE_WAIT):
                offs[tag] += conn.send(data[offs[tag]:offs[tag] + (1 << 18)], now)
            # Close once everything is sent and everything expected has arrived.
            if offs[tag] >= len(data) and not closed[tag] and (conn.at_eof or len(got) >= size):
                closed[tag] = True
                conn.close(now)

    net.on_step.append(pump)
    pump()
    deadline = net.now + time_limit
    while net.step(deadline):
        if sc and cc.current_state() is State.CLOSED and sc[0].current_state() is State.CLOSED:
            break
    res.client_state = cc.current_state().value
    res.server_state = sc[0].current_state().value if sc else "LISTEN"
    res.client_error = cc.error
    res.server_error = sc[0].error if sc else None
    res.virtual_time = net.now
    res.events = net.events_processed
    return res
