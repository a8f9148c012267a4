"""Simulator benchmarks, measured side by side in one run.

    .venv/bin/python benchmarks/bench_sim.py [--quick]
    .venv/bin/python benchmarks/bench_sim.py --compare 201ea60   # an older commit beside this tree

Prints, each as the median of several rounds:
  * full connection lives per second in the simulator (handshake, 100-byte
    request, 100-byte response, four-way close, TIME-WAIT expiry);
  * connect/accept/close cycles per second of this machine's kernel on
    loopback (127.0.0.1), driven by Python sockets, for comparison;
  * in-order bulk transfer in the simulator, MB of payload per wall second,
    at MSS 1460 and at a loopback-sized MSS (65483).
Goals (issue 3): simulator lives/s >= kernel loopback cycles/s; bulk >= 100 MB/s.

``--compare REF`` measures the simulator figures of commit REF (its ``src``,
taken with ``git archive`` into a temporary directory) and of this working
tree in alternating child processes, in one run, and prints both medians and
their ratio: how much faster (or slower) this tree is than REF.

``--builds`` measures the installed tcplab twice per round, in alternating
child processes: compiled with mypyc, and pure Python (the same install with
``TCPLAB_PURE_PYTHON=1``), with the kernel's loopback rate measured in between.
It prints both medians, their ratio and the goals of issue 13 for the compiled
build: lives/s >= 1.2x the kernel's loopback cycles/s, bulk at MSS 1460 >= 150
MB/s.  It needs a compiled install (``pip install .`` or ``pip install -e .``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tcplab.engine.config import TcpConfig
from tcplab.engine.state import State
from tcplab.sim.network import LinkSpec, Network

REQ = b"q" * 100
RESP = b"r" * 100


def sim_lives(n: int) -> float:
    """Connection lives per wall second, each run to the end of TIME-WAIT."""
    net = Network(1)
    net.trace.enabled = False
    cfg = TcpConfig()
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", cfg)
    net.link(c, s, LinkSpec(delay=0.001))
    lst = s.listen(s.bind("0.0.0.0", 80))
    t0 = time.perf_counter()
    for _ in range(n):
        cc = c.connect("192.0.2.2", 80, net.now)
        cc.send(REQ, net.now)
        net.run_until(lambda: bool(lst.accept_queue), what="accept")
        sc = lst.accept()
        assert sc is not None
        net.run_until(lambda sc=sc: sc.readable_bytes >= 100, what="request")  # type: ignore[misc]
        sc.recv(1000, net.now)
        sc.send(RESP, net.now)
        net.run_until(lambda cc=cc: cc.readable_bytes >= 100, what="response")  # type: ignore[misc]
        cc.recv(1000, net.now)
        cc.close(net.now)
        net.run_until(lambda sc=sc: sc.at_eof, what="FIN")  # type: ignore[misc]
        sc.close(net.now)
        net.run()  # through TIME-WAIT expiry
        assert cc.current_state() is State.CLOSED and sc.current_state() is State.CLOSED
    return n / (time.perf_counter() - t0)


def sim_lives_concurrent(n: int, width: int = 100) -> float:
    """Connection lives per wall second with ``width`` lives in flight at once."""
    net = Network(3)
    net.trace.enabled = False
    cfg = TcpConfig()
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", cfg)
    net.link(c, s, LinkSpec(delay=0.001))
    lst = s.listen(s.bind("0.0.0.0", 80), backlog=4096)
    started = 0
    live: list[tuple[object, object]] = []
    done = 0
    servers: list[object] = []

    def pump() -> None:
        nonlocal started, done
        now = net.now
        while started < n and len(live) < width:
            cc = c.connect("192.0.2.2", 80, now)
            cc.send(REQ, now)
            live.append((cc, None))
            started += 1
        while True:
            sc = lst.accept()
            if sc is None:
                break
            servers.append(sc)
        for sc in list(servers):
            if sc.readable_bytes >= 100:  # type: ignore[attr-defined]
                sc.recv(1000, now)  # type: ignore[attr-defined]
                sc.send(RESP, now)  # type: ignore[attr-defined]
            if sc.at_eof:  # type: ignore[attr-defined]
                sc.close(now)  # type: ignore[attr-defined]
                servers.remove(sc)
        keep = []
        for cc, _ in live:
            if cc.readable_bytes >= 100:  # type: ignore[attr-defined]
                cc.recv(1000, now)  # type: ignore[attr-defined]
                cc.close(now)  # type: ignore[attr-defined]
                done += 1
            else:
                keep.append((cc, None))
        live[:] = keep

    net.on_step.append(pump)
    t0 = time.perf_counter()
    pump()
    net.run()  # every life, through TIME-WAIT expiry
    assert done == n and len(c.time_wait) == 0
    return n / (time.perf_counter() - t0)


def kernel_loopback_cycles(n: int) -> float:
    """connect/accept/close cycles per second on 127.0.0.1 (Python sockets)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    addr = srv.getsockname()
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            cli = socket.create_connection(addr)
            conn, _ = srv.accept()
            cli.sendall(REQ)
            conn.recv(1000)
            conn.sendall(RESP)
            cli.recv(1000)
            cli.close()
            conn.close()
    finally:
        srv.close()
    return n / (time.perf_counter() - t0)


def sim_bulk(total: int, mss: int) -> float:
    """In-order payload MB per wall second, one direction, no loss."""
    net = Network(2)
    net.trace.enabled = False
    cfg = TcpConfig(mss=mss, rcv_buf=4 << 20, snd_buf=4 << 20, delayed_ack=0.0,
                    initial_cwnd_segments=64)
    c = net.add_host("client", "192.0.2.1", cfg)
    s = net.add_host("server", "192.0.2.2", cfg)
    net.link(c, s, LinkSpec(delay=0.0005))
    lst = s.listen(s.bind("0.0.0.0", 80))
    cc = c.connect("192.0.2.2", 80, net.now)
    net.run_until(lambda: bool(lst.accept_queue))
    sc = lst.accept()
    assert sc is not None
    chunk = bytes(1 << 20)
    sent = got = 0
    t0 = time.perf_counter()
    while got < total:
        if sent < total:
            sent += cc.send(chunk[: min(len(chunk), total - sent)], net.now)
        net.step()
        if sc.rcvbuf:
            got += len(sc.recv(1 << 22, net.now))
    return total / (time.perf_counter() - t0) / 1e6


SIM_FIGURES = ("sim lives/s", "sim lives/s (100 in flight)", "sim bulk MB/s (MSS 1460)",
               "sim bulk MB/s (MSS 65483)")


def sim_round(n: int, bulk: int) -> dict[str, float]:
    """One round of the simulator figures."""
    return {"sim lives/s": sim_lives(n), "sim lives/s (100 in flight)": sim_lives_concurrent(n * 2),
            "sim bulk MB/s (MSS 1460)": sim_bulk(bulk // 4, 1460),
            "sim bulk MB/s (MSS 65483)": sim_bulk(bulk, 65483)}


def run_child(env: dict[str, str], n: int, bulk: int) -> dict[str, object]:
    """One round of the simulator figures in a fresh interpreter with ``env``."""
    proc = subprocess.run([sys.executable, __file__, "--child", "--n", str(n), "--bulk",
                           str(bulk)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"a benchmark child failed:\n{proc.stderr.strip()}")
    doc: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def child_round(src: Path, n: int, bulk: int) -> dict[str, float]:
    """One round in a fresh interpreter whose ``tcplab`` comes from ``src``."""
    doc = run_child(dict(os.environ, PYTHONPATH=str(src)), n, bulk)
    if not str(doc.pop("source")).startswith(str(src)):
        raise RuntimeError(f"the child did not import tcplab from {src}")
    doc.pop("build")
    return {k: float(v) for k, v in doc.items()}  # type: ignore[arg-type]


def build_round(pure: bool, n: int, bulk: int) -> tuple[str, dict[str, float]]:
    """One round of the installed tcplab, compiled or (``pure``) pure Python."""
    env = {k: v for k, v in os.environ.items() if k != "TCPLAB_PURE_PYTHON"}
    if pure:
        env["TCPLAB_PURE_PYTHON"] = "1"
    doc = run_child(env, n, bulk)
    source = str(doc.pop("source"))
    build = str(doc.pop("build"))
    if build.startswith("compiled") == pure:
        raise SystemExit(f"asked for {'pure Python' if pure else 'the compiled build'}, "
                         f"the child ran {build} (tcplab from {source})")
    return build, {k: float(v) for k, v in doc.items()}  # type: ignore[arg-type]


def compare_builds(rounds: int, n: int, bulk: int) -> None:
    """The compiled and the pure-Python build of one install, side by side."""
    rows: dict[str, dict[str, list[float]]] = {"compiled": {}, "pure": {}}
    kernel: list[float] = []
    build = ""
    for r in range(rounds):
        for label in ("compiled", "pure"):
            what, figures = build_round(label == "pure", n, bulk)
            if label == "compiled":
                build = what
            for k, v in figures.items():
                rows[label].setdefault(k, []).append(v)
        kernel.append(kernel_loopback_cycles(n))
        print(f"round {r + 1}/{rounds} done", flush=True)
    kmed = statistics.median(kernel)
    print(f"\ncompiled: {build}")
    print(f"\n{'figure':32} {'compiled':>12} {'pure Python':>12} {'ratio':>7}   "
          f"(medians of {rounds}, interleaved)")
    for k in SIM_FIGURES:
        a = statistics.median(rows["compiled"][k])
        b = statistics.median(rows["pure"][k])
        print(f"{k:32} {a:12.1f} {b:12.1f} {a / b:6.2f}x")
    print(f"{'kernel loopback cycles/s':32} {kmed:12.1f}")
    lives = {k: statistics.median(v["sim lives/s"]) for k, v in rows.items()}
    bulk1460 = statistics.median(rows["compiled"]["sim bulk MB/s (MSS 1460)"])
    print(f"\nsim lives/s / kernel loopback cycles/s: compiled {lives['compiled'] / kmed:.2f}, "
          f"pure Python {lives['pure'] / kmed:.2f}  (goal for compiled >= 1.2)")
    print(f"compiled bulk at MSS 1460: {bulk1460:.1f} MB/s  (goal >= 150 MB/s)")


def compare(ref: str, rounds: int, n: int, bulk: int) -> None:
    repo = Path(__file__).resolve().parent.parent
    here = repo / "src"
    with tempfile.TemporaryDirectory(prefix="tcplab-bench-") as tmp:
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        old_src = Path(tmp) / "src"
        rows: dict[str, dict[str, list[float]]] = {"ref": {}, "now": {}}
        kernel: list[float] = []
        for r in range(rounds):
            for label, src in (("ref", old_src), ("now", here)):
                for k, v in child_round(src, n, bulk).items():
                    rows[label].setdefault(k, []).append(v)
            kernel.append(kernel_loopback_cycles(n))
            print(f"round {r + 1}/{rounds} done", flush=True)
    kmed = statistics.median(kernel)
    print(f"\n{'figure':32} {ref[:12]:>12} {'this tree':>12} {'ratio':>7}   (medians of {rounds})")
    for k in SIM_FIGURES:
        a = statistics.median(rows["ref"][k])
        b = statistics.median(rows["now"][k])
        print(f"{k:32} {a:12.1f} {b:12.1f} {b / a:6.2f}x")
    print(f"{'kernel loopback cycles/s':32} {kmed:12.1f}")
    for label, name in (("ref", ref[:12]), ("now", "this tree")):
        lives = statistics.median(rows[label]["sim lives/s"])
        print(f"{name}: sim lives/s / kernel loopback = {lives / kmed:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", metavar="REF", help="an older commit to measure beside this tree")
    ap.add_argument("--builds", action="store_true",
                    help="the installed tcplab compiled and pure Python, side by side")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--bulk", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import tcplab
        try:
            from tcplab import buildinfo
            build = buildinfo.describe()
        except ImportError:  # an older tree (--compare): always pure Python
            build = "pure Python"
        doc: dict[str, object] = {"source": tcplab.__file__, "build": build,
                                  **sim_round(args.n, args.bulk)}
        print(json.dumps(doc))
        return
    n = 300 if args.quick else 2000
    bulk = (16 << 20) if args.quick else (64 << 20)
    rounds = 3 if args.quick else args.rounds
    if args.compare:
        compare(args.compare, rounds, n, bulk)
        return
    if args.builds:
        compare_builds(rounds, n, bulk)
        return
    rows: dict[str, list[float]] = {
            "sim lives/s": [], "sim lives/s (100 in flight)": [], "kernel loopback cycles/s": [], "sim bulk MB/s (MSS 1460)": [],
            "sim bulk MB/s (MSS 65483)": []}
    for r in range(rounds):
        # interleaved, so noise on this shared machine hits every figure alike
        rows["sim lives/s"].append(sim_lives(n))
        rows["sim lives/s (100 in flight)"].append(sim_lives_concurrent(n * 2))
        rows["kernel loopback cycles/s"].append(kernel_loopback_cycles(n))
        rows["sim bulk MB/s (MSS 1460)"].append(sim_bulk(bulk // 4, 1460))
        rows["sim bulk MB/s (MSS 65483)"].append(sim_bulk(bulk, 65483))
        print(f"round {r + 1}/{rounds} done", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\n{'figure':32} {'median':>12} {'min':>12} {'max':>12}")
    for k, v in rows.items():
        print(f"{k:32} {med[k]:12.1f} {min(v):12.1f} {max(v):12.1f}")
    ratio = med["sim lives/s"] / med["kernel loopback cycles/s"]
    ratio_c = med["sim lives/s (100 in flight)"] / med["kernel loopback cycles/s"]
    print(f"\nsim lives/s / kernel loopback cycles/s = {ratio:.2f} sequential, "
          f"{ratio_c:.2f} with 100 in flight  (goal >= 1.0)")
    print(f"bulk: {med['sim bulk MB/s (MSS 1460)']:.1f} MB/s at MSS 1460, "
          f"{med['sim bulk MB/s (MSS 65483)']:.1f} MB/s at MSS 65483  (goal >= 100 MB/s)")


if __name__ == "__main__":
    main()
