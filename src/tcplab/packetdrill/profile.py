"""Profiles: how FreeBSD-specific script lines meet the engine.

A script from the FreeBSD test suite mixes three kinds of expectation:

* RFC requirements (an RST in the window is answered by a challenge ACK, a
  SYN-ACK carries no option the SYN did not offer, ...): checked by every
  profile, never relaxed;
* FreeBSD policy (the exact receive buffer and so the exact window, which
  optional extensions a SYN offers and in which order, buffer sizes read back
  with getsockopt): the ``portable`` profile adapts these and records each
  adaptation in the result; the ``freebsd`` profile checks them as written;
* the test machine's set-up (``sysctl -w``, ``sockstat``, ``tcpdrop``):
  mapped onto :class:`~tcplab.engine.TcpConfig` and engine state where the
  engine has an equivalent, else the script is skipped with the reason.

``#ifdef`` branches: ``portable`` defines ``STANDARD`` (the RFC behaviour the
suite's authors wrote down next to FreeBSD's), ``freebsd`` defines ``FreeBSD``.

The ``linux`` profile speaks Linux's dialect instead (its shell lines, its
constants, TSO-sized packets): see :mod:`tcplab.packetdrill.linux`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcplab.engine.config import TcpConfig

PROFILES = ("portable", "freebsd", "linux", "linux-explore")


class Skip(Exception):
    """The script needs something the engine or the runner does not have."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    adapt: bool          #: adapt FreeBSD policy expectations (portable)
    define: str          #: the ``#ifdef`` name this profile defines
    dialect: str = "freebsd"   #: whose scripts: "freebsd" or "linux"
    o_nonblock: int = 0x0004   #: O_NONBLOCK as the scripts print it (FreeBSD 4, Linux 0x800)
    explore: bool = False      #: run scripts that need missing features anyway (diagnosis)

    @property
    def linux(self) -> bool:
        return self.dialect == "linux"

    @classmethod
    def get(cls, name: str) -> Profile:
        if name == "portable":
            return cls("portable", True, "STANDARD")
        if name == "freebsd":
            return cls("freebsd", False, "FreeBSD")
        if name == "linux":
            return cls("linux", False, "Linux", "linux", 0x0800)
        if name == "linux-explore":
            # A diagnosis, not a measure: scripts that need timestamps, SACK or Fast
            # Open options run with those expectations dropped, to find what else
            # differs from Linux.
            return cls("linux-explore", False, "Linux", "linux", 0x0800, explore=True)
        raise ValueError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")


# FreeBSD defaults that the scripts set "to be sure".  Setting one of them to
# this value changes nothing the engine would do differently: accepted.
_FREEBSD_DEFAULTS: dict[str, int] = {
    "net.inet.tcp.rfc1323": 1,            # offers window scale and timestamps (policy)
    "net.inet.tcp.sack.enable": 1,        # offers SACK (policy: an optional extension)
    "net.inet.tcp.ecn.enable": 2,         # ECN only when the peer asks: the engine never does
    "net.inet.tcp.blackhole": 0,          # RST for closed ports, as RFC 9293 3.10.7.1
    "net.inet.tcp.rexmit_slop": 200,
    "net.inet.tcp.rexmit_drop_options": 0,
    "kern.ipc.maxsockbuf": 2097152,
    "net.inet.tcp.hostcache.purgenow": 1,  # an action: the engine keeps no host cache
    "net.inet.tcp.keepinit": 75000,
    "net.inet.tcp.syncookies": 1,
    "net.inet.tcp.syncookies_only": 0,
    "net.inet.tcp.tolerate_missing_ts": 1,
}

# Settings that are pure buffer-size policy.
_BUFFERS = {"net.inet.tcp.recvspace": "rcv_buf", "net.inet.tcp.sendspace": "snd_buf"}

_SYSCTL_RE = re.compile(r"^sysctl\s+(?:-w\s+)?([\w.]+)=(-?\d+)\s*$")
_SOCKSTAT_RE = re.compile(
    r"^sockstat\s+(?P<args>[^|]*)\|\s*(?:grep\s+packetdril\s*\|\s*)?grep\s+-c\s+(?P<state>\w+)"
    r"\s*\|\s*grep\s+(?P<count>\d+)\s*$")
_TCPDROP_RE = re.compile(r"^tcpdrop\s+-s\s+(\w+)\s*$")


@dataclass(slots=True)
class SysctlState:
    """FreeBSD knobs that map onto one engine switch together."""

    insecure_rst: bool = False
    insecure_syn: bool = False


def apply_sysctl(name: str, value: int, config: TcpConfig, state: SysctlState,
                 profile: Profile, notes: list[str]) -> None:
    """Map one ``sysctl -w name=value`` onto the engine's settings, or raise Skip."""
    if name in ("net.inet.tcp.insecure_rst", "net.inet.tcp.insecure_syn"):
        # RFC 5961 (challenge ACKs) vs RFC 793 handling of RST and SYN.  The
        # engine has one switch for both; a script turns on at most the one it tests.
        if name.endswith("rst"):
            state.insecure_rst = bool(value)
        else:
            state.insecure_syn = bool(value)
        config.rfc5961 = not (state.insecure_rst or state.insecure_syn)
        return
    if name == "net.inet.tcp.drop_synfin":
        config.drop_synfin = bool(value)
        return
    if name == "net.inet.tcp.rexmit_initial":
        config.rto_initial = value / 1000.0
        return
    if name == "net.inet.tcp.delacktime":
        config.delayed_ack = value / 1000.0
        return
    if name in _BUFFERS:
        if profile.adapt:
            return  # buffer sizes are FreeBSD policy: the engine keeps its own
        setattr(config, _BUFFERS[name], value)
        return
    default = _FREEBSD_DEFAULTS.get(name)
    if default is not None and default == value:
        return
    if name in ("net.inet.tcp.syncookies", "net.inet.tcp.syncookies_only"):
        config.syn_cookies = "always" if name.endswith("only") and value else (
            "auto" if value else "never")
        return
    if name.startswith("net.inet.tcp.keep"):
        raise Skip("keep-alive settings (the engine has no keep-alive timer)")
    if name.startswith("net.inet.tcp.ecn"):
        raise Skip("ECN (RFC 3168) is not implemented by the engine")
    raise Skip(f"sysctl {name}={value} has no engine equivalent")


def parse_sysctl(command: str) -> tuple[str, int] | None:
    m = _SYSCTL_RE.match(command.strip())
    if m is None:
        return None
    return m.group(1), int(m.group(2))


@dataclass(frozen=True, slots=True)
class StateCheck:
    """``sockstat ... | grep -c STATE | grep N``: N sockets in STATE."""

    state: str        #: FreeBSD spelling: TIME_WAIT, SYN_RCVD, CLOSED, ...
    count: int
    port: int | None


def parse_sockstat(command: str) -> StateCheck | None:
    m = _SOCKSTAT_RE.match(command.strip())
    if m is None:
        return None
    port_m = re.search(r"-p\s+(\d+)", m.group("args"))
    return StateCheck(m.group("state"), int(m.group("count")),
                      int(port_m.group(1)) if port_m else None)


def parse_tcpdrop(command: str) -> str | None:
    m = _TCPDROP_RE.match(command.strip())
    return m.group(1) if m else None


# FreeBSD's state names (sockstat, tcpi_state) -> RFC spellings.
FREEBSD_STATES = {
    "CLOSED": "CLOSED", "LISTEN": "LISTEN", "SYN_SENT": "SYN-SENT", "SYN_RCVD": "SYN-RECEIVED",
    "SYN_RECEIVED": "SYN-RECEIVED", "ESTABLISHED": "ESTABLISHED", "CLOSE_WAIT": "CLOSE-WAIT",
    "FIN_WAIT_1": "FIN-WAIT-1", "CLOSING": "CLOSING", "LAST_ACK": "LAST-ACK",
    "FIN_WAIT_2": "FIN-WAIT-2", "TIME_WAIT": "TIME-WAIT",
}
