"""Bulk throughput of tcplab's TCP against the kernel's, over a TUN device, in one run.

For each TUN MTU (1500, and 65535 where the kernel sends 64 KiB segments), in one
private namespace with tracing off:

- kernel -> tcplab: a kernel socket (``python -m tcplab.tun.peer send`` in the
  namespace) sends N bytes to tcplab, which listens (asyncio layer, ``bulk_config``);
- tcplab -> kernel: tcplab connects to a kernel socket in the namespace and sends N bytes;
- kernel -> kernel: the same helper to itself over ``lo`` inside the same namespace
  (two processes, lo's MTU set to the TUN's), the physical limit of this machine.

Each figure is the best of ``--runs``; the time is the kernel socket's (from
connect to the peer's FIN when sending, from accept to EOF when receiving).
Traffic stays inside the namespace (192.0.2.0/24, no route out, and its ``lo``).

Run: .venv/bin/python benchmarks/bench_tun.py [--mib 64] [--runs 2] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
from pathlib import Path

from tcplab.trace import Trace
from tcplab.tun import TunBackend, TunUnavailable, bulk_config
from tcplab.tun.bulk import kernel_to_tcplab, tcplab_to_kernel
from tcplab.tun.peer import payload


async def kernel_to_kernel(backend: TunBackend, nbytes: int) -> float:
    argv = backend.ns.exec_argv([sys.executable, "-m", "tcplab.tun.peer", "pair", "--bytes",
                                 str(nbytes), "--timeout", "60"])
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    sender = json.loads(lines[0])
    return float(sender["seconds"])


def mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6


async def one_mtu(mtu: int, nbytes: int, runs: int, profile: Path | None
                  ) -> dict[str, float]:
    data = payload(nbytes)
    best = {"kernel -> tcplab": 0.0, "tcplab -> kernel": 0.0, "kernel -> kernel (lo)": 0.0}
    async with TunBackend(mtu=mtu, config=bulk_config(mtu), trace=Trace(enabled=False),
                          kernel_states=False) as b:
        # The baseline at the same MTU: lo in this private namespace gets the TUN's MTU.
        b.ns.ip("link", "set", "dev", "lo", "mtu", str(mtu))
        for i in range(runs):
            prof = cProfile.Profile() if profile is not None and i == 0 else None
            if prof is not None:
                prof.enable()
            r = await kernel_to_tcplab(b, nbytes, port=5001 + 10 * i, hash_data=False)
            if prof is not None and profile is not None:
                prof.disable()
                prof.dump_stats(str(profile / f"k2t-{mtu}.prof"))
                prof = cProfile.Profile()
                prof.enable()
            assert r.nbytes == nbytes, f"tcplab received {r.nbytes} of {nbytes} bytes"
            best["kernel -> tcplab"] = max(best["kernel -> tcplab"], r.mbit_s)
            s = await tcplab_to_kernel(b, data, port=5002 + 10 * i, hash_data=False)
            if prof is not None and profile is not None:
                prof.disable()
                prof.dump_stats(str(profile / f"t2k-{mtu}.prof"))
            assert s.peer["bytes"] == nbytes, f"kernel received {s.peer['bytes']} bytes"
            best["tcplab -> kernel"] = max(best["tcplab -> kernel"], s.mbit_s)
            k = await kernel_to_kernel(b, nbytes)
            best["kernel -> kernel (lo)"] = max(best["kernel -> kernel (lo)"],
                                                mbit(nbytes, k))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64, help="MiB per transfer (at most 1024)")
    ap.add_argument("--runs", type=int, default=2, help="runs per figure; the best is shown")
    ap.add_argument("--mtu", type=int, action="append", default=None,
                    help="TUN MTU (repeatable) [default: 1500 and 65535]")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write cProfile stats of the first run to this directory")
    args = ap.parse_args()
    nbytes = min(max(args.mib, 1), 1024) << 20
    mtus = args.mtu or [1500, 65535]
    runs = min(max(args.runs, 1), 5)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"bulk transfer of {nbytes >> 20} MiB, best of {runs}; "
          f"tcplab 192.0.2.2 <-> kernel 192.0.2.1 over TUN; kernel -> kernel over lo "
          f"in the same namespace, lo's MTU set to the TUN's")
    print(f"{'MTU':>6}  {'direction':<24} {'Mbit/s':>9}  {'ratio to kernel->kernel':>24}")
    for mtu in mtus:
        try:
            best = asyncio.run(one_mtu(mtu, nbytes, runs, args.profile))
        except TunUnavailable as exc:
            sys.exit(f"bench_tun: {exc}")
        base = best["kernel -> kernel (lo)"]
        for name, value in best.items():
            ratio = value / base if base else 0.0
            print(f"{mtu:>6}  {name:<24} {value:>9.1f}  {ratio:>23.3f}x")
    if args.profile is not None:
        for prof_file in sorted(args.profile.glob("*.prof")):
            print(f"\n== {prof_file.name}: top 12 by own time")
            pstats.Stats(str(prof_file)).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
