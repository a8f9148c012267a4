"""What every scenario is made of: switches, a registry entry, a result, helpers.

Theory of operation
-------------------
A scenario is a function ``run(seed, switches) -> Network`` that builds a
small simulated network, lets a story happen in virtual time and returns the
network; its trace holds everything.  A second function ``outcome(events)``
computes the facts the scenario demonstrates *from the trace alone* (the
JSON form, as ``tcplab scenario run NAME --json`` prints it), so the tests
and the printed report can never disagree with what happened on the wire.

Facts that live above TCP (what an application read, whether ``bind()``
failed) are written into the trace as ``note`` events with a ``fact`` field
(``app-recv``, ``accepted``, ``connect``, ...), or come from the socket
layer's own ``app`` events.

Switches are the experiment knobs of :class:`~tcplab.engine.TcpConfig`
(``two_way_handshake``, ``time_wait``, ``syn_cookies``, ``rfc1337``) plus a
few that belong to one scenario (``reuseaddr``, ``four_segment``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tcplab.api.sockets import SO_REUSEADDR, SOL_SOCKET, TcpSocket
from tcplab.engine.config import TcpConfig
from tcplab.engine.host import Host
from tcplab.engine.isn import ChosenIsn, IsnGenerator
from tcplab.engine.profiles import configured
from tcplab.faults import FaultSpec, install
from tcplab.sim.network import LinkSpec, Network
from tcplab.sim.socket import SimSocket, listening
from tcplab.trace import Event

MSL = 30.0              #: Linux's TIME-WAIT is a fixed 60 s; here 2 * MSL = 60 s as well
DELAY = 0.05            #: one-way delay of the scenario links (s)
CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
REQUEST = b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, TCP!\r\n"

REUSE_MODES = ("both", "new-only", "none")


#: the Switches fields that set the scene rather than remove a mechanism
ENVIRONMENT = ("profile", "sysctls", "faults")


@dataclass(frozen=True)
class Switches:
    """The experiment switches of one run (defaults: the mechanism is in place), and the
    environment it runs in: the TCP profile, Linux sysctls, and faults on the wire."""

    two_way_handshake: bool = False  #: passive side ESTABLISHED as soon as it sends SYN-ACK
    time_wait: float | None = None   #: TIME-WAIT length; None = the profile's (2 * MSL, Linux 60 s)
    syn_cookies: bool = False        #: listener answers with SYN cookies when its queue is full
    rfc1337: bool | None = None      #: TIME-WAIT ignores RST (RFC 1337); None: the profile's
    reuseaddr: str = "both"          #: port-reuse: SO_REUSEADDR on "both" sockets, "new-only", "none"
    four_segment: bool = False       #: isn-sync: the server sends its SYN and its ACK separately
    variant: str | None = None       #: a case the scenario names itself (Scenario.variants)
    profile: str = "rfc"             #: the hosts' TCP: "rfc" or "linux" (tcplab.engine.profiles)
    sysctls: tuple[str, ...] = ()    #: Linux sysctls applied on top, "net.ipv4.NAME=VALUE"
    faults: tuple[FaultSpec, ...] = ()  #: --drop/--delay/--dup (tcplab.faults)

    def __post_init__(self) -> None:
        if self.reuseaddr not in REUSE_MODES:
            raise ValueError(f"reuseaddr must be one of {', '.join(REUSE_MODES)}")

    @property
    def counterfactual(self) -> bool:
        """Does this run remove a mechanism (title and texts say "without ...")?"""
        return replace(self, profile="rfc", sysctls=(), faults=()) != DEFAULT

    def config(self, **kw: Any) -> TcpConfig:
        """The host configuration these switches ask for: the profile, the sysctls, then
        the switches, then what the scenario itself needs (``kw``)."""
        cfg = configured(self.profile, self.sysctls)
        cfg.msl = MSL
        cfg.two_way_handshake = self.two_way_handshake
        if self.time_wait is not None:
            cfg.time_wait = self.time_wait
        if self.rfc1337 is not None:
            cfg.rfc1337 = self.rfc1337
        if self.syn_cookies:
            cfg.syn_cookies = "auto"
        elif self.profile == "rfc" and not any("tcp_syncookies" in s for s in self.sysctls):
            cfg.syn_cookies = "never"  # the rfc catalogue shows the flood without them
        for key, value in kw.items():
            setattr(cfg, key, value)
        return cfg

    def flags(self) -> list[str]:
        """The command-line switches that differ from the defaults."""
        out: list[str] = []
        if self.two_way_handshake:
            out.append("--two-way-handshake")
        if self.time_wait is not None:
            out.append(f"--time-wait {self.time_wait:g}")
        if self.syn_cookies:
            out.append("--syn-cookies")
        if self.rfc1337 is False:
            out.append("--no-rfc1337")
        if self.reuseaddr == "none":
            out.append("--no-reuseaddr")
        elif self.reuseaddr == "new-only":
            out.append("--reuseaddr-new-only")
        if self.four_segment:
            out.append("--four-segment")
        if self.variant is not None:
            out.append(f"--variant {self.variant}")
        if self.profile != "rfc":
            out.append(f"--profile {self.profile}")
        out += [f"--sysctl {s}" for s in self.sysctls]
        out += [f.text() for f in self.faults]
        return out

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sysctls"] = list(self.sysctls)
        out["faults"] = [f.text() for f in self.faults]
        return out


DEFAULT = Switches()

RunFn = Callable[[int, Switches], Network]
OutcomeFn = Callable[[list[Event]], dict[str, Any]]
ReportFn = Callable[[list[Event], dict[str, Any], str], list[str]]


#: the groups of the catalogue, in the order ``tcplab scenario list`` shows them
GROUPS = ("handshake", "close", "time-wait", "queues", "failures", "exam")


@dataclass(frozen=True)
class Scenario:
    """One entry of the catalogue.  Its texts live in the catalogues
    (``data/texts.*.json``, keys ``scenario.<name>.*``)."""

    name: str
    run: RunFn
    outcome: OutcomeFn
    group: str = "handshake"
    #: the switch that removes the mechanism (the catalogue runs with and without it)
    counterfactual: Switches | None = None
    #: extra lines after the diagram (tables, bytes side by side), from the trace
    report: ReportFn | None = None
    #: False: the trace is too long to draw; the report is the picture
    diagram: bool = True
    #: outcome keys shown in the catalogue's compact table
    headline: tuple[str, ...] = ()
    #: cases this scenario can also show, chosen with ``--variant NAME``; each name has its
    #: texts under ``scenario.<name>.variant.<variant>``
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"scenario {self.name}: unknown group {self.group!r}")


@dataclass
class Result:
    scenario: Scenario
    seed: int
    switches: Switches
    net: Network
    events: list[Event]
    outcome: dict[str, Any]
    wall: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def execute(scenario: Scenario, seed: int = 1, switches: Switches = DEFAULT) -> Result:
    """Run a scenario; its outcome is computed from the JSON form of the trace."""
    t0 = time.perf_counter()
    net = scenario.run(seed, switches)
    events = net.trace.to_json_list()
    outcome = scenario.outcome(events)
    wall = time.perf_counter() - t0
    meta = {"command": "scenario", "scenario": scenario.name, "seed": seed,
            "switches": switches.to_json(), "flags": switches.flags(), "msl": MSL,
            "profile": switches.profile,
            "virtual_seconds": round(net.now, 6),
            "outcome": outcome,
            "counters": {name: h.counters.as_dict() for name, h in net.hosts.items()}}
    return Result(scenario, seed, switches, net, events, outcome, wall, meta)


def with_switch(base: Switches | None, **kw: Any) -> Switches:
    return replace(base or DEFAULT, **kw)


# ---------------------------------------------------------------- building networks


def chosen_isns(net: Network, host: str, values: list[int] | None) -> ChosenIsn | None:
    """ISNs chosen by a scenario for ``host``, then the RFC 6528 generator the host
    would have had anyway (its key comes from the same seeded generator).

    Scenarios use them where an overlap of sequence numbers must really happen
    (and say so in their text); real stacks pick ISNs from a clock plus a keyed
    hash, which makes such overlaps rare, not impossible."""
    if values is None:
        return None
    return ChosenIsn(values, IsnGenerator.from_rng(net.host_rng(host)))


def two_hosts(seed: int, sw: Switches, *, delay: float = DELAY,
              client_isns: list[int] | None = None, server_isns: list[int] | None = None,
              **cfg: Any) -> tuple[Network, Host, Host]:
    """"client" 192.0.2.1 and "server" 192.0.2.2, one link, MSL enforced by the network;
    ``client_isns``/``server_isns``: ISNs the scenario chooses (:func:`chosen_isns`)."""
    net = Network(seed, msl=MSL)
    c = net.add_host("client", CLIENT, sw.config(**cfg),
                     isn=chosen_isns(net, "client", client_isns))
    s = net.add_host("server", SERVER, sw.config(**cfg),
                     isn=chosen_isns(net, "server", server_isns))
    net.link(c, s, LinkSpec(delay=delay))
    install_faults(net, sw)
    return net, c, s


def install_faults(net: Network, sw: Switches) -> None:
    """Put the run's --drop/--delay/--dup on the network (scenarios that build their own)."""
    if sw.faults:
        install(net, list(sw.faults))


# The scenarios' listen() is the simulator's listening().
listen = listening


def note(net: Network, text: str, **fact: Any) -> None:
    """A free-text line in the diagram, with structured fields for the outcome."""
    net.trace.note(net.now, text, **fact)


def text_of(data: bytes) -> str:
    """Bytes as a JSON-safe string (latin-1 keeps every byte)."""
    return data.decode("latin-1")


def recv_exactly(sock: TcpSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(cli: TcpSocket, conn: TcpSocket, request: bytes = REQUEST) -> None:
    """The client sends ``request``, the server reads it and answers :data:`RESPONSE`,
    the client reads the answer."""
    cli.sendall(request)
    recv_exactly(conn, len(request))
    conn.sendall(RESPONSE)
    recv_exactly(cli, len(RESPONSE))


def connected(net: Network, *, client_port: int | None = None, server_port: int = 80,
              request: bytes = REQUEST, reuse: bool = False
              ) -> tuple[SimSocket, SimSocket, TcpSocket]:
    """"server" listens on ``server_port``; "client" connects from ``client_port`` (None:
    an ephemeral port; ``reuse``: with SO_REUSEADDR, so a later connect() may take the
    same 4-tuple); request and response exchanged.  (listener, client, server's
    connection)."""
    srv = listen(net, net.hosts["server"], server_port)
    cli = SimSocket(net, net.hosts["client"])
    if reuse:
        cli.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    if client_port is not None:
        cli.bind(("0.0.0.0", client_port))
    cli.connect((SERVER, server_port))
    conn, _ = srv.accept()
    exchange(cli, conn, request)
    return srv, cli, conn


# ---------------------------------------------------------------- reading the trace


def conn_paths(events: list[Event], host: str) -> dict[str, list[str]]:
    """Per connection of ``host``: the states it went through, first ``from`` included
    (listening sockets, named ``addr:port-*:*``, are not connections and are left out)."""
    paths: dict[str, list[str]] = {}
    for e in events:
        if e["kind"] == "state" and e["host"] == host and not e["conn"].endswith("-*:*"):
            path = paths.setdefault(e["conn"], [e["from"]])
            if path[-1] != e["from"]:
                path.append(e["from"])
            path.append(e["to"])
    return paths


def sent(events: list[Event], host: str | None = None, *, wire_only: bool = True) -> list[Event]:
    """Segments put on the wire (in order), optionally by one host."""
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and (host is None or e["host"] == host)
            and (not wire_only or "copy_of" not in e)]


def drops(events: list[Event], host: str | None = None) -> list[Event]:
    """Segments a host discarded (or acted on) on arrival: ``event`` drop/accept."""
    return [e for e in events if e["kind"] == "segment" and e["event"] in ("drop", "accept")
            and (host is None or e["host"] == host)]


def facts(events: list[Event], fact: str, host: str | None = None) -> list[Event]:
    return [e for e in events if e["kind"] == "note" and e.get("fact") == fact
            and (host is None or e.get("host") == host)]


def loss_probe_times(events: list[Event], host: str) -> set[float]:
    """When ``host``'s tail loss probes (RFC 8985; Linux with SACK) fired: a segment sent
    then is a probe, not a retransmission timeout (no back-off, no retry counted)."""
    return {e["t"] for e in events if e["kind"] == "timer" and e["host"] == host
            and e["timer"] == "loss-probe" and e["action"] == "fired"}


def app_calls(events: list[Event], call: str, host: str | None = None) -> list[Event]:
    return [e for e in events if e["kind"] == "app" and e["call"] == call
            and (host is None or e["host"] == host)]


def time_wait_spans(events: list[Event], host: str) -> list[dict[str, Any]]:
    """Each TIME-WAIT of ``host``: entered, left (None: still there), cause, timer arms."""
    spans: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for e in events:
        if e.get("host") != host:
            continue
        if e["kind"] == "state" and e["to"] == "TIME-WAIT":
            span = {"conn": e["conn"], "entered": e["t"], "left": None, "cause": None,
                    "arms": []}
            spans[e["conn"]] = span
            out.append(span)
        elif e["kind"] == "state" and e["from"] == "TIME-WAIT" and e["conn"] in spans:
            span = spans.pop(e["conn"])
            span["left"] = e["t"]
            span["cause"] = e["cause"]
        elif (e["kind"] == "timer" and e["timer"] == "time-wait" and e["action"] == "armed"
              and e["conn"] in spans):
            spans[e["conn"]]["arms"].append({"t": e["t"], "deadline": e["deadline"]})
    return out


def count_at(spans: list[dict[str, Any]], t: float) -> int:
    """How many TIME-WAIT spans cover time ``t``."""
    return sum(1 for s in spans
               if s["entered"] <= t and (s["left"] is None or s["left"] > t))
