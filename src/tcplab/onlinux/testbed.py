"""Two namespaces, one TUN device each, the sysctls asked for: the machines of a lesson.

Each end of the lesson is a network namespace of its own (``tcplab-<pid>-<n>``, made
and removed by :class:`tcplab.tun.netns.Namespace`, so Ctrl+C at any moment and a
later run after SIGKILL leave nothing behind). In it:

* a TUN device ``tcplab0`` with the end's address (``192.0.2.1/24`` for the client,
  ``192.0.2.2/24`` for the server): the connected route to the other end and nothing
  else, no route out. IPv6 is off in the namespace, so no router solicitation or
  MLD report travels. A TUN device has no offloads: every packet the kernel hands it
  is one whole IP packet with its checksum computed, as on a real wire;
* the sysctls (``--sysctl net.ipv4.tcp_syn_retries=2``), written to the namespace's
  own ``/proc/sys`` (TCP's settings are per namespace), checked by the engine's table
  (:mod:`tcplab.engine.profiles`) first;
* a sock_diag netlink socket (the namespace's sockets, timewait mini-sockets and
  their timers) and a packet capture on ``tcplab0`` (:class:`tcplab.kernel.capture.Capture`):
  the packets the end sends (outgoing) and those tcplab delivers to it (incoming),
  with the kernel's timestamps.

The two TUN file descriptors are the wire's ends (:mod:`tcplab.onlinux.middlebox`).
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket
from dataclasses import dataclass, field

from tcplab.engine.profiles import SYSCTLS, ConfigError, sysctl_name
from tcplab.kernel import sockdiag
from tcplab.kernel.capture import Capture
from tcplab.signals import deferred
from tcplab.tun.device import open_tun
from tcplab.tun.netns import Namespace, TunUnavailable

__all__ = ["CLIENT_ADDR", "COUNTERS", "DEVICE", "SERVER_ADDR", "End", "LinuxUnavailable",
           "Testbed", "read_counters", "sysctl_writes"]

CLIENT_ADDR = "192.0.2.1"
SERVER_ADDR = "192.0.2.2"
PREFIX_LEN = 24
DEVICE = "tcplab0"
MTU = 1500


#: the kernel's TCP counters (``nstat`` names) a lesson reports when they moved
COUNTERS = (
    "TcpActiveOpens", "TcpPassiveOpens", "TcpAttemptFails", "TcpEstabResets", "TcpRetransSegs",
    "TcpOutRsts", "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
    "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDoCookies",
    "TcpExtTCPReqQFullDrop", "TcpExtTCPTimeouts", "TcpExtTCPSynRetrans",
    "TcpExtTCPLossProbes", "TcpExtTCPChallengeACK", "TcpExtTCPSYNChallenge", "TcpExtTWKilled",
    "TcpExtPAWSEstab", "TcpExtTCPTimeWaitOverflow", "TcpExtTCPAbortOnData",
    "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnTimeout", "TcpExtTCPACKSkippedTimeWait",
)


def read_counters() -> dict[str, int]:
    """The calling thread's namespace's TCP counters, named as ``nstat`` names them."""
    out: dict[str, int] = {}
    for name in ("snmp", "netstat"):
        try:
            with open(f"/proc/thread-self/net/{name}", encoding="ascii") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            prefix, _, names = head.partition(":")
            if prefix not in ("Tcp", "TcpExt"):
                continue
            for key, value in zip(names.split(), values.partition(":")[2].split(),
                                  strict=False):
                if value.lstrip("-").isdigit():
                    out[prefix + key] = int(value)
    return out


class LinuxUnavailable(Exception):
    """A lesson cannot run on Linux here; the message (one line) says why."""


def sysctl_writes(assignments: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """``net.ipv4.NAME=VALUE`` as (path under /proc/sys, text to write), checked by the
    engine's table (the same names and ranges as the simulator's ``--sysctl``)."""
    out: list[tuple[str, str]] = []
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"{assignment!r}: expected NAME=VALUE, e.g. "
                              "net.ipv4.tcp_syn_retries=2")
        name, _, text = assignment.partition("=")
        full = sysctl_name(name)
        try:
            value = SYSCTLS[full].parse(text)
        except ConfigError as exc:
            raise ConfigError(f"{full}: {exc}") from None
        shown = "\t".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        out.append(("/proc/sys/" + full.replace(".", "/"), shown))
    return out


@dataclass
class End:
    """One end of the lesson: its namespace and what tcplab holds open in it."""

    name: str
    addr: str
    ns: Namespace
    fd: int = -1
    netlink: _socket.socket | None = None
    capture: Capture | None = None
    netns_inode: int = 0
    sysctls: dict[str, str] = field(default_factory=dict)  #: path -> value as read back

    def sockets(self) -> list[sockdiag.RawRecord]:
        """Every TCP socket of the namespace now (timewait mini-sockets included)."""
        if self.netlink is None:
            return []
        return sockdiag.dump(4, sock=self.netlink)

    def counters(self) -> dict[str, int]:
        """The namespace's TCP counters now (:data:`COUNTERS` and the rest)."""
        return self.ns.call(read_counters) if self.fd >= 0 else {}

    def lookup(self, key: tuple[str, int, str, int]) -> tuple[str, int] | None:
        """(state, milliseconds left on its timer) of one 4-tuple (local end first)."""
        want = (socket.inet_aton(key[0]), key[1].to_bytes(2, "big"),
                socket.inet_aton(key[2]), key[3].to_bytes(2, "big"))
        for r in self.sockets():
            if (r[6][:4], r[4], r[7][:4], r[5]) == want:
                return sockdiag.STATES.get(r[1], str(r[1])), r[8]
        return None


def _setup_inside(sysctls: list[tuple[str, str]]) -> tuple[int, dict[str, str], int]:
    """In the new namespace's thread: sysctls, the TUN device; (fd, sysctls read, inode)."""
    done: dict[str, str] = {}
    for path, value in sysctls:
        try:
            with open(path, "w", encoding="ascii") as fh:
                fh.write(value)
            with open(path, encoding="ascii") as fh:
                done[path] = fh.read().strip()
        except FileNotFoundError:
            name = path.removeprefix("/proc/sys/").replace("/", ".")
            raise LinuxUnavailable(f"this kernel ({os.uname().release}) has no {name} in a "
                                   "network namespace") from None
        except OSError as exc:
            name = path.removeprefix("/proc/sys/").replace("/", ".")
            raise LinuxUnavailable(f"cannot set {name}={value}: {exc.strerror}") from None
    # the wire reads and writes whole packets, one per system call: no virtio-net header
    fd, _vnet, _notice = open_tun(DEVICE, offload=False)
    return fd, done, os.stat("/proc/thread-self/ns/net").st_ino


class Testbed:
    """The lesson's two ends (see the module doc). ``open()``, then ``close()`` (idempotent)."""

    def __init__(self, sysctls: tuple[str, ...] = (),
                 ends: tuple[tuple[str, str], ...] = (("client", CLIENT_ADDR),
                                                      ("server", SERVER_ADDR)),
                 capture: bool = True, routes: dict[str, list[str]] | None = None) -> None:
        self.sysctl_paths = sysctl_writes(sysctls)
        self.routes = routes or {}
        self.want = ends
        self.want_capture = capture
        self.ends: list[End] = []

    def open(self) -> None:
        try:
            for name, addr in self.want:
                self._open_end(name, addr)
        except BaseException:
            self.close()
            raise

    def _open_end(self, name: str, addr: str) -> None:
        ns = Namespace()
        end = End(name, addr, ns)
        with deferred():
            self.ends.append(end)  # known before it exists: close() removes it
        try:
            ns.create()
        except TunUnavailable as exc:
            raise LinuxUnavailable(str(exc)) from None
        fd, done, inode = ns.call(lambda: _setup_inside(self.sysctl_paths))
        end.fd, end.sysctls, end.netns_inode = fd, done, inode
        try:
            ns.ip("addr", "add", f"{addr}/{PREFIX_LEN}", "dev", DEVICE)
            ns.ip("link", "set", "dev", DEVICE, "mtu", str(MTU), "up")
            ns.ip("link", "set", "dev", "lo", "up")
            for prefix in self.routes.get(name, []):
                ns.ip("route", "add", prefix, "dev", DEVICE)
        except TunUnavailable as exc:
            raise LinuxUnavailable(str(exc)) from None
        end.netlink = ns.call(sockdiag.open_netlink)
        if self.want_capture:
            cap = Capture()
            ns.call(cap.open)
            end.capture = cap

    def end(self, name: str) -> End:
        for e in self.ends:
            if e.name == name:
                return e
        raise KeyError(name)

    def host_of(self, addr: str) -> str | None:
        for e in self.ends:
            if e.addr == addr:
                return e.name
        return None

    def close(self) -> None:
        with deferred():
            for end in reversed(self.ends):
                if end.capture is not None:
                    end.capture.close()
                    end.capture = None
                if end.netlink is not None:
                    with contextlib.suppress(OSError):
                        end.netlink.close()
                    end.netlink = None
                if end.fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(end.fd)
                    end.fd = -1
                end.ns.remove()

    def __enter__(self) -> Testbed:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
