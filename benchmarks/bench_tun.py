"""Bulk throughput of tcplab's TCP against the kernel's, over a TUN device, in one run.

For each TUN MTU (1500 by default; 65535 on request), side by side, with tracing off:

- ``offload``: the device with a virtio-net header, checksum and TSO offloads
  (64 KB super-segments each way, checksums left to the kernel);
- ``fallback``: the device without them (one IP packet per read and per write, every
  checksum computed in Python), the path used where the kernel refuses offloads;
- ``kernel -> kernel (lo)``: the same helper to itself over ``lo`` inside the namespace
  (two processes, lo's MTU set to the TUN's), the physical limit of this machine.

Directions: ``kernel -> tcplab`` (a kernel socket, ``python -m tcplab.tun.peer send`` in
the namespace, sends N bytes to tcplab, which listens, asyncio layer, ``bulk_config``) and
``tcplab -> kernel`` (tcplab connects to a kernel socket and sends N bytes).  Every
receiver, tcplab and the kernel's alike, hashes what it got with SHA-256, and each
transfer is checked byte-exact against the sender's digest.  The time is the kernel
socket's (from connect to the peer's FIN when sending, from accept to EOF when
receiving).

The runs are interleaved (baseline, offload, fallback, again and again), so that a
busy moment of this shared machine falls on all of them alike; each figure is the
median of ``--runs`` (the spread, min-max, beside it).  Traffic stays inside the
namespaces (192.0.2.0/24, no route out, and their ``lo``).

Run: .venv/bin/python benchmarks/bench_tun.py [--mib 64] [--runs 5] [--mtu 1500]
     [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from tcplab.trace import Trace
from tcplab.tun import TunBackend, TunUnavailable, bulk_config
from tcplab.tun.bulk import BulkResult, kernel_to_tcplab, tcplab_to_kernel
from tcplab.tun.peer import payload, payload_sha256

K2T, T2K, KK = "kernel -> tcplab", "tcplab -> kernel", "kernel -> kernel (lo)"


async def kernel_to_kernel(backend: TunBackend, nbytes: int, digest: str) -> float:
    argv = backend.ns.exec_argv([sys.executable, "-m", "tcplab.tun.peer", "pair", "--bytes",
                                 str(nbytes), "--timeout", "60", "--hash"])
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    lines = [json.loads(ln) for ln in out.decode().splitlines() if ln.startswith("{")]
    sender, receiver = lines[0], lines[1]
    if receiver["bytes"] != nbytes or receiver["sha256"] != digest:
        raise RuntimeError(f"kernel -> kernel: {receiver['bytes']} bytes, sha256 "
                           f"{receiver['sha256'][:12]}... (not byte-exact)")
    return float(sender["seconds"])


def mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6


def exact(r: BulkResult, nbytes: int, digest: str, what: str) -> float:
    """The transfer's rate, after checking it byte-exact."""
    if r.nbytes != nbytes or r.sha256 != digest:
        raise RuntimeError(f"{what}: {r.nbytes} of {nbytes} bytes, sha256 {r.sha256[:12]}... "
                           f"(not byte-exact)")
    return r.mbit_s


async def one_mtu(mtu: int, nbytes: int, runs: int, profile: Path | None
                  ) -> tuple[dict[str, list[float]], dict[str, str]]:
    data = payload(nbytes)
    digest = payload_sha256(nbytes)
    figures: dict[str, list[float]] = {}
    facts: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        backends = {}
        for mode in ("offload", "fallback"):
            b = TunBackend(mtu=mtu, config=bulk_config(mtu), trace=Trace(enabled=False),
                           kernel_states=False, offload=mode == "offload")
            await stack.enter_async_context(b)
            backends[mode] = b
        off = backends["offload"]
        if not off.vnet:
            facts["offload"] = f"NOT AVAILABLE: {off.offload_notice}"
        # The baseline at the same MTU: lo in this private namespace gets the TUN's MTU.
        off.ns.ip("link", "set", "dev", "lo", "mtu", str(mtu))
        for i in range(runs):
            k = await kernel_to_kernel(off, nbytes, digest)
            figures.setdefault(KK, []).append(mbit(nbytes, k))
            for mode, b in backends.items():
                prof = cProfile.Profile() if profile is not None and i == 0 else None
                before = (b.packets_in, b.super_in, b.packets_out, b.super_out)
                if prof is not None:
                    prof.enable()
                r = await kernel_to_tcplab(b, nbytes, port=5001 + 10 * i)
                if prof is not None and profile is not None:
                    prof.disable()
                    prof.dump_stats(str(profile / f"{mode}-k2t-{mtu}.prof"))
                figures.setdefault(f"{mode}: {K2T}", []).append(
                    exact(r, nbytes, digest, f"{mode} {K2T}"))
                mid = (b.packets_in, b.super_in, b.packets_out, b.super_out)
                if prof is not None:
                    prof = cProfile.Profile()
                    prof.enable()
                s = await tcplab_to_kernel(b, data, port=5002 + 10 * i)
                if prof is not None and profile is not None:
                    prof.disable()
                    prof.dump_stats(str(profile / f"{mode}-t2k-{mtu}.prof"))
                figures.setdefault(f"{mode}: {T2K}", []).append(
                    exact(BulkResult(s.peer["bytes"], s.seconds, s.peer["sha256"], s.peer),
                          nbytes, digest, f"{mode} {T2K}"))
                after = (b.packets_in, b.super_in, b.packets_out, b.super_out)
                if i == 0:
                    facts[f"{mode}: {K2T}"] = (f"{mid[0] - before[0]} reads "
                                               f"({mid[1] - before[1]} super-segments)")
                    facts[f"{mode}: {T2K}"] = (f"{after[2] - mid[2]} writes "
                                               f"({after[3] - mid[3]} super-segments)")
    return figures, facts


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mib", type=int, default=64, help="MiB per transfer (at most 1024)")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure; the median is shown")
    ap.add_argument("--mtu", type=int, action="append", default=None,
                    help="TUN MTU (repeatable) [default: 1500]")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write cProfile stats of the first run to this directory")
    args = ap.parse_args()
    nbytes = min(max(args.mib, 1), 1024) << 20
    mtus = [min(max(m, 576), 65535) for m in (args.mtu or [1500])]
    runs = min(max(args.runs, 1), 15)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"bulk transfer of {nbytes >> 20} MiB, median of {runs} interleaved runs, every "
          f"transfer checked byte-exact (sha256 at every receiver);")
    print("tcplab 192.0.2.2 <-> kernel 192.0.2.1 over TUN; kernel -> kernel over lo in the "
          "same namespace, lo's MTU set to the TUN's")
    print(f"{'MTU':>6}  {'path: direction':<34} {'Mbit/s':>9} {'(min-max)':>19}  "
          f"{'ratio':>7}  first run")
    for mtu in mtus:
        try:
            figures, facts = asyncio.run(one_mtu(mtu, nbytes, runs, args.profile))
        except TunUnavailable as exc:
            sys.exit(f"bench_tun: {exc}")
        base = statistics.median(figures[KK])
        for name in (KK, f"offload: {K2T}", f"offload: {T2K}", f"fallback: {K2T}",
                     f"fallback: {T2K}"):
            values = figures[name]
            med = statistics.median(values)
            spread = f"({min(values):.0f}-{max(values):.0f})"
            ratio = med / base if base else 0.0
            print(f"{mtu:>6}  {name:<34} {med:>9.1f} {spread:>19}  {ratio:>6.3f}x  "
                  f"{facts.get(name, '')}")
        if "offload" in facts:
            print(f"        offload: {facts['offload']}")
    if args.profile is not None:
        for prof_file in sorted(args.profile.glob("*.prof")):
            print(f"\n== {prof_file.name}: top 12 by own time")
            pstats.Stats(str(prof_file)).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
