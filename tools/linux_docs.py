#!/usr/bin/env python3
"""Write docs/linux.md: every value of the ``linux`` profile with its source, and where
the engine still differs from Linux.

The tables come from the engine itself (``tcplab.engine.profiles``: the sysctls and the
constants the profile sets) and from the packetdrill runner's list of mechanisms
(``tcplab.packetdrill.linux.FEATURES``: those the engine lacks are listed as such), so
the page cannot drift from the code: tests/test_linux_docs.py checks it is current.

    .venv/bin/python tools/linux_docs.py          # rewrite docs/linux.md
    .venv/bin/python tools/linux_docs.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from tcplab.engine.profiles import LINUX_CONSTANTS, SYSCTLS, profile
from tcplab.packetdrill.linux import FEATURES

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "docs" / "linux.md"

HEAD = """# The `linux` profile: what Linux really does, and where tcplab differs

Every command that runs the simulator takes `--profile linux` (the hosts behave as a Linux
6.x kernel does out of the box) and `--sysctl NAME=VALUE` (any of the sysctls below, by
its Linux name, applied on top, in order). Without `--profile linux` the hosts follow
RFC 9293 and its companions (the `rfc` column).

    tcplab demo --drop syn:all --profile linux
    tcplab demo --drop syn:all --profile linux --sysctl net.ipv4.tcp_syn_retries=2
    tcplab scenario run accept-overflow --profile linux --sysctl net.ipv4.tcp_abort_on_overflow=1

The defaults were read from /proc/sys of a 6.18 kernel and checked against the kernel
sources named in the last column. Where popular notes are out of date, the value here is
the current one (somaxconn 4096 since 5.4, not 128; tcp_syn_retries 6 since 3.7, not 5;
tcp_tw_reuse 2 since 4.19).

This page is generated from `tcplab.engine.profiles` by `tools/linux_docs.py`.
"""

MEASURED = """
## Measured on this machine (Linux 6.18), and reproduced by the engine

| What | Linux 6.18 | `--profile linux` | How |
|---|---|---|---|
| every SYN lost | 11 SYNs, ETIMEDOUT after 131 s | 11 SYNs, ETIMEDOUT at 131 s | tcp_syn_retries 6 + tcp_syn_linear_timeouts 4: five timeouts of 1 s, then 2, 4, ... 32 s |
| every SYN lost, `tcp_syn_retries=2` | 6 SYNs, ETIMEDOUT after 7 s | 6 SYNs, ETIMEDOUT at 7 s | each linear timeout adds a retry (since 6.5) |
| every SYN lost, `tcp_syn_retries=2`, `tcp_syn_linear_timeouts=0` | 3 SYNs, ETIMEDOUT after 7 s | 3 SYNs, ETIMEDOUT at 7 s | the behaviour before 6.5: 1 + 2 + 4 s |
| a SYN on the 4-tuple of a CLOSE-WAIT socket | challenge ACK; the client's RST ends the CLOSE-WAIT; SYN again 8 ms later; connected | see below | tcp_rcv_synsent_state_process() re-arms the SYN timer at TCP_TIMEOUT_MIN |

Many notes say a lost SYN is retried 5 times (7 SYNs before 6.5 with tcp_syn_retries 6):
since Linux 6.5 `tcp_syn_linear_timeouts` (4) makes the first four timeouts 1 s each and
adds as many retries, so a connect() to a silent host sends 11 SYNs and gives up after
about 131 s. tests/engine/test_linux_profile.py checks the engine's counts; tests/kernel
check the kernel's where namespaces are available.
"""

DIFFER = """
## Where the engine still differs from Linux

Modelled differently:

- **The SYN sent again after a challenge ACK.** When a SYN-SENT socket answers an
  unacceptable ACK with a RST, Linux re-arms its SYN timer at TCP_TIMEOUT_MIN (2 jiffies,
  8 ms measured) so the next SYN follows at once; the engine waits for its retransmission
  timeout (1 s).
- **The ISN clock.** Linux adds `ktime_get_real_ns() >> 6` (a 64 ns tick) to the keyed hash
  (secure_tcp_seq); the engine uses RFC 9293's 4 µs tick in both profiles.
- **Congestion control.** Linux uses CUBIC with HyStart, pacing and TSO autosizing; the
  engine uses NewReno (RFC 5681, 6582) with RFC 6928's initial window (10 segments on
  Linux). Lifecycle timings do not depend on it; bulk-transfer timings do.
- **Loss detection.** Linux detects losses with RACK-TLP and F-RTO; the engine with three
  duplicate ACKs and the retransmission timer.
- **Memory.** Linux bounds buffers by tcp_rmem/tcp_wmem and autotunes them, and counts
  TIME-WAIT memory in slab objects; the engine has fixed per-socket buffers.

Mechanisms the engine does not have yet (the packetdrill runner skips Linux's scripts
that need them, with the reason; see docs/packetdrill.md):

"""


def _plain(value: str) -> str:
    """A value as /proc/sys prints it: "60.0" -> "60", tabs as spaces."""
    value = value.replace("\t", " ")
    return value[:-2] if value.endswith(".0") else value


def _rows() -> list[str]:
    rfc, linux = profile("rfc"), profile("linux")
    out = ["\n## Sysctls\n",
           "| sysctl | Linux default | `rfc` profile | what it does | source |",
           "|---|---|---|---|---|"]
    for s in SYSCTLS.values():
        lin = _plain(s.linux)
        assert _plain(s.show(linux)) == lin, s.name  # the profile holds what it says
        out.append(f"| `{s.name}` | {lin} | {_plain(s.show(rfc))} | {s.doc} | {s.source} |")
    out += ["\n## Constants Linux does not let you set\n",
            "| engine field | Linux | Linux name | source |", "|---|---|---|---|"]
    for fld, (value, name, source) in LINUX_CONSTANTS.items():
        out.append(f"| `{fld}` | {value} | {name} | {source} |")
    return out


def render() -> str:
    missing = [f"- {f.name}" for f in FEATURES.values() if not f.present()]
    return (HEAD + "\n".join(_rows()) + "\n" + MEASURED + DIFFER
            + "\n".join(missing or ["- none"]) + "\n")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != text:
            print("stale: docs/linux.md; run tools/linux_docs.py", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
