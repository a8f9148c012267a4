"""Scale benchmarks (issue 9): TIME-WAIT at a million, and 100,000 idle connections.

    .venv/bin/python benchmarks/bench_scale.py [--tw N] [--conns N]

1. N connections (default 1,000,000) enter TIME-WAIT on one host, are held,
   then expire.  Memory per entry is measured with tracemalloc (the bytes
   the TIME-WAIT table holds, divided by N); expiry cost is timed per entry
   at three table sizes, to show it does not grow with the table.
   Goal: at most 200 bytes per entry.
2. N connections (default 100,000) held ESTABLISHED and idle in the
   simulator: memory per connection (both ends are counted separately, per
   end).  Goal: under 2 KiB per idle established connection.
   Also connection lives per second (see bench_sim.py for the comparison with
   the kernel).

The TIME-WAIT entries are created the way the engine creates them
(Host.enter_time_wait from a real connection), in batches, so that the
full connection objects do not all exist at once.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.host import Host
from tcplab.engine.state import State
from tcplab.sim.network import LinkSpec, Network
from tcplab.trace import Trace


def make_time_wait(host: Host, n: int, now: float, first: int = 0,
                   timestamps: bool = True) -> None:
    """Put ``n`` connections of ``host`` into TIME-WAIT, as FIN-WAIT-2 + FIN would:
    the host keeps each as a compact entry (TimeWait.enter), the connection object goes.

    Connection ``i`` (from ``first``) has its own 4-tuple; with ``timestamps`` each entry
    keeps the peer's last timestamp (TS.Recent), as Linux's do (tcp_timestamps 1).
    """
    # One connection object plays every connection (only its 4-tuple and numbers change):
    # the table keeps none of it, and the measurement is the table's alone.
    conn = Connection(host.cx, "192.0.2.2", 80, "10.0.0.1", 1024, 0)
    conn.state = State.TIME_WAIT
    ts = conn.ts
    ts.ok = timestamps
    ts.recent_stamp = now
    for i in range(first, first + n):
        rport = 1024 + (i % 60000)
        raddr = f"10.{(i // 60000) >> 8 & 255}.{(i // 60000) & 255}.1"
        conn.raddr, conn.rport = raddr, rport
        conn.key = ("192.0.2.2", 80, raddr, rport)
        conn.snd_nxt = (i * 7919) & 0xFFFFFFFF
        conn.rcv_nxt = (i * 104729 + 1) & 0xFFFFFFFF
        ts.recent = (i * 2654435761) & 0xFFFFFFFF
        host.time_wait.enter(conn, now)


def bench_time_wait(n: int) -> None:
    host = Host("server", "192.0.2.2", config=TcpConfig(timestamps=True),
                trace=Trace(enabled=False))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    make_time_wait(host, n, 0.0)
    t_enter = time.perf_counter() - t0
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(host.time_wait) == n
    per = held / n
    print(f"TIME-WAIT entries held (with TS.Recent): {n:,}  memory {held / 2**20:.1f} MiB  "
          f"= {per:.0f} bytes/entry  (goal <= 200)   enter: {n / t_enter:,.0f}/s")
    # Expiry: one timer tick that expires k entries, at three table sizes.
    length = host.config.time_wait_length
    print("expiry cost per entry by table size (ticks expiring 10,000 entries each; median of 5):")
    for size in sorted({max(50_000, n // 100), max(50_000, n // 10), n}):
        h2 = Host("s", "192.0.2.2", config=TcpConfig(), trace=Trace(enabled=False))
        # five batches of 10,000 due at length + 0..4, the rest of the table later
        for k in range(5):
            make_time_wait(h2, 10_000, float(k), first=k * 10_000)
        make_time_wait(h2, max(size - 50_000, 0), 10.0, first=50_000)
        samples = []
        for k in range(5):
            t0 = time.perf_counter()
            h2.handle_timers(length + k)
            samples.append(time.perf_counter() - t0)
        print(f"  table {size:>9,}: {statistics.median(samples) / 10_000 * 1e9:7.0f} ns/entry"
              f"  (left after the ticks: {len(h2.time_wait):,})")
        del h2
        gc.collect()
    t0 = time.perf_counter()
    host.handle_timers(length + 1)
    t_exp = time.perf_counter() - t0
    assert len(host.time_wait) == 0
    print(f"all {n:,} expired in one tick: {t_exp:.2f} s = {t_exp / n * 1e9:.0f} ns/entry")


def bench_established(n: int) -> None:
    net = Network(5)
    net.trace.enabled = False
    cfg = TcpConfig()
    client_addrs = ["192.0.2.1", "192.0.2.3"]  # two addresses: more than 64K ports' worth
    c = net.add_host("client", client_addrs, cfg)
    s = net.add_host("server", "192.0.2.2", cfg)
    c.config.ephemeral_low, c.config.ephemeral_high = 1024, 65535
    net.link(c, s, LinkSpec(delay=0.001))
    lst = s.listen(s.bind("0.0.0.0", 80), backlog=n + 10)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    clients = []
    batch = 5000
    ports = iter([(a, p) for p in range(1024, 65536) for a in client_addrs])
    servers = []
    for start in range(0, n, batch):
        for _ in range(min(batch, n - start)):
            nxt = next(ports, None)
            if nxt is None:
                break
            b = c.bind(nxt[0], nxt[1])
            clients.append(c.connect("192.0.2.2", 80, net.now, binding=b))
        net.run_until(lambda: len(lst.accept_queue) + len(servers) >= len(clients),
                      what="handshakes")
        while lst.accept_queue:
            servers.append(lst.accept())
    net.run_for(5.0)  # let every delayed ACK and timer settle: idle
    elapsed = time.perf_counter() - t0
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    ends = len(clients) + len(servers)
    assert all(x.state is State.ESTABLISHED for x in clients)
    print(f"idle ESTABLISHED connections: {len(clients):,} (x2 ends)  memory "
          f"{held / 2**20:.1f} MiB = {held / ends:.0f} bytes per connection end "
          f"(goal < 2048)   set up in {elapsed:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tw", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=100_000,
                    help="established connections (two client addresses: at most 129,024)")
    args = ap.parse_args()
    bench_time_wait(args.tw)
    bench_established(args.conns)


if __name__ == "__main__":
    main()
