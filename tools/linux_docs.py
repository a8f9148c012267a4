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
| a SYN on the 4-tuple of a CLOSE-WAIT socket | challenge ACK; the client's RST ends the CLOSE-WAIT; SYN again 8 ms later; connected | the same, the SYN again 2 ms later (TCP_TIMEOUT_MIN at HZ=1000; this kernel runs HZ=250) | tcp_rcv_synsent_state_process() re-arms the SYN timer at TCP_TIMEOUT_MIN when no SYN was resent yet |

Many notes say a lost SYN is retried 5 times (7 SYNs before 6.5 with tcp_syn_retries 6):
since Linux 6.5 `tcp_syn_linear_timeouts` (4) makes the first four timeouts 1 s each and
adds as many retries, so a connect() to a silent host sends 11 SYNs and gives up after
about 131 s. tests/engine/test_linux_profile.py checks the engine's counts; tests/kernel
check the kernel's where namespaces are available.
"""

FASTOPEN = """
## TCP Fast Open (RFC 7413), as Linux does it

`net.ipv4.tcp_fastopen` is a set of bits: 1 lets clients use Fast Open, 2 lets servers
accept it (a listener still needs `setsockopt(TCP_FASTOPEN, qlen)`, or the bit 0x400 for
every listener), 4 sends data without a cookie, 0x200 accepts data without one. Linux's
default is 1, a client only.

- **The cookie.** A server's cookie is 8 bytes: SipHash-2-4 of the client's and the
  server's addresses under a 128-bit key (`__tcp_fastopen_cookie_gen_cipher`). The key is
  `net.ipv4.tcp_fastopen_key`, four 32-bit hex words each stored little-endian (key
  `a0bf63f7-ed803d81-cd641d30-cebc4a90` gives `00abaaabe8e954c2` for 10.248.0.2 to
  192.168.0.2, as Linux's own test expects), or a listener's `TCP_FASTOPEN_KEY`; unset,
  each host draws its own. A cookie is valid with an even length from 4 to 16 bytes; an
  empty option asks for one. The option is kind 34, or kind 254 with ExID 0xF989 (the
  experimental format, which a client falls back to when a server answers only that).
- **The client** (`sendto(MSG_FASTOPEN)`, or `TCP_FASTOPEN_CONNECT` and a first
  `write()`): with no cookie cached for the server's address, the SYN asks for one and
  carries no data; a SYN that asked is retransmitted without the option. With a cookie,
  the SYN carries as much data as the server's MSS (cached with the cookie, as Linux's
  tcp_metrics does) allows less 40 bytes kept free for options. When the SYN-ACK
  acknowledges only the ISN, the data is sent again at once (TcpExtTCPFastOpenActiveFail);
  when it acknowledges the data, `tcpi_options` has TCPI_OPT_SYN_DATA (32).
- **The server**: a SYN with a valid cookie (or any, with 0x200) and room in the
  listener's Fast Open queue creates a child at once: its data is acknowledged in the
  SYN-ACK and readable, and the child is in the accept queue, before the handshake ends
  (TcpExtTCPFastOpenPassive). A wrong cookie, or none, is a normal handshake whose
  SYN-ACK carries the right cookie (TcpExtTCPFastOpenPassiveFail); the data waits for
  the client's retransmission.

## SACK (RFC 2018, RFC 2883) and loss recovery

- **Negotiation.** The linux profile offers SACK (`net.ipv4.tcp_sack=1`) in Linux's
  option order: MSS, SACK-permitted, timestamps, NOP, window scale; without timestamps
  MSS, NOP, NOP, SACK-permitted, NOP, window scale. A SYN-ACK carries SACK-permitted only
  if the SYN did. The rfc profile offers none (its traces are unchanged).
- **The receiver** keeps up to 4 blocks, the most recent first (Linux's
  tcp_sack_new_ofo_skb: a block that grows moves to the front), and sends at most 3
  beside timestamps, 4 without. Data received twice is reported first in a D-SACK block
  (`tcp_dsack=1`; TcpExtTCPDSACKOldSent, TcpExtTCPDSACKOfoSent).
- **The sender** keeps a scoreboard per segment (SACKed, lost, retransmitted), never
  resends SACKed data, and finds losses with RACK (RFC 8985, `tcp_recovery=1`): a segment
  sent before one the peer has is lost after one round trip plus a reordering window of a
  quarter of the minimum RTT, no window at all until reordering is seen once as many
  segments as the duplicate-ACK threshold are SACKed (Linux's DupThresh rule).
  Reordering is measured as Linux does (`tcpi_reordering`). With `tcp_recovery=0`,
  RFC 6675's IsLost rule marks losses. A tail loss probe (`tcp_early_retrans=3`) follows
  two round trips after the last send. In recovery, PRR (RFC 6937) paces what is sent.
- **Not done**: Linux's undo of a spurious reduction (D-SACK or timestamps), F-RTO,
  RACK's reordering window growing with D-SACKs, SACK reneging.
"""

DIFFER = """
## Where the engine still differs from Linux

Modelled differently:

- **Congestion control.** Linux uses CUBIC with HyStart, pacing and TSO autosizing. The
  linux profile's sender counts its window in packets as Linux does, grows it as Linux's
  Reno (tcp_reno_cong_avoid) and shrinks it with PRR (RFC 6937) in recovery; the rfc
  profile uses NewReno (RFC 5681, 6582). Lifecycle timings do not depend on it;
  bulk-transfer timings do.
- **Loss detection.** Both Linux and the linux profile use SACK, RACK and tail loss
  probes (below); Linux also has F-RTO and undoes a reduction that D-SACKs or timestamps
  prove spurious, the engine does not. The rfc profile recovers with three duplicate ACKs
  and the retransmission timer.
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
    return (HEAD + "\n".join(_rows()) + "\n" + MEASURED + FASTOPEN + DIFFER
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
