"""Scenarios about a peer or a path that fails: a host crash, a process crash, a reboot, a cable.

TCP learns of a failure only from what arrives, or from what stops arriving
while it waits for an answer:

* ``host-crash``: the client's host loses power, silently.  An idle server
  learns nothing until it sends: keep-alive (RFC 9293 3.8.4; Linux
  ``tcp_keepalive_timer()``: ``tcp_keepalive_time`` 7200 s, then
  ``tcp_keepalive_probes`` 9 probes ``tcp_keepalive_intvl`` 75 s apart) does
  the sending; without it the connection stays half-open until the server
  writes, and then it is the retransmission limit that ends it.
* ``process-crash``: the process dies, the host does not: the kernel closes the
  process's sockets (FIN; RST where received data was never read, RFC 2525
  2.17), and the listener with them.
* ``peer-reboot``: the rebooted host has no record of the connection: the next
  segment of it is answered with a RST (RFC 9293 3.10.7.1 / 3.10.7.2).
* ``cable-pull``: every packet is lost while both hosts run.  With data in
  flight the sender retransmits with back-off until ``tcp_retries2`` (on Linux
  a time budget, ``tcp_model_timeout()``: about 924.6 s for 15); idle, nothing
  happens at all.

Hosts fail through :mod:`tcplab.sim.failures`; the long waits cost nothing
(the virtual clock jumps to the next timer).
"""

from __future__ import annotations

import errno
import itertools
from typing import Any

from tcplab.api.sockets import SO_KEEPALIVE, SOL_SOCKET, TcpSocket
from tcplab.i18n import seconds
from tcplab.i18n import text as tr
from tcplab.scenarios.base import (
    REQUEST,
    RESPONSE,
    SERVER,
    Scenario,
    Switches,
    conn_paths,
    connected,
    drops,
    exchange,
    facts,
    listen,
    loss_probe_times,
    note,
    recv_exactly,
    sent,
    two_hosts,
)
from tcplab.scenarios.teardown import arg
from tcplab.sim.failures import crash_process, plug, power_off, power_on, unplug
from tcplab.sim.network import Network
from tcplab.sim.socket import SimSocket
from tcplab.trace import Event

DAY = 86400.0


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "?")


def _read_until_error(net: Network, sock: TcpSocket, who: str, key: str) -> None:
    """The application blocks in recv(); note what it finally gets."""
    t0 = net.now
    try:
        data = sock.recv(4096)
    except OSError as exc:
        note(net, f"{who}: recv() raises {_errname(exc)}", fact="recv", host=who,
             result=_errname(exc), after=round(net.now - t0, 6), key=key + "-error",
             err=_errname(exc), d=hms(net.now - t0))
    else:
        note(net, f"{who}: recv() returns {'end of stream' if not data else 'data'}",
             fact="recv", host=who, result="eof" if not data else "data",
             after=round(net.now - t0, 6), key=key + ("-eof" if not data else "-data"),
             d=hms(net.now - t0))


def hms(value: float) -> str:
    """A duration as h/min/s, language-neutral (``2:11:15``) for notes' fields."""
    total = round(value, 3)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:06.3f}".rstrip("0").rstrip(".")


def duration(value: float, lang: str) -> str:
    """A long duration said the way people say it, zero parts left out: "2 h 11 min 15 s",
    "2 h" / "2 小时 11 分 15 秒"."""
    if value < 60:
        return seconds(value, lang)
    h, rest = divmod(round(value, 1), 3600)
    m, s = divmod(rest, 60)
    parts = ([tr("ui.dur.h", lang, n=int(h))] if h else []) + \
        ([tr("ui.dur.min", lang, n=int(m))] if m else []) + ([seconds(s, lang)] if s else [])
    return " ".join(parts)


# ---------------------------------------------------------------- host-crash


def run_host_crash(seed: int, sw: Switches) -> Network:
    keepalive = sw.variant != "no-keepalive"
    net, _c, s = two_hosts(seed, sw)
    _srv, _cli, conn = connected(net)
    if keepalive:
        conn.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        cfg = s.config
        note(net, "server: SO_KEEPALIVE on this connection", fact="keepalive", host="server",
             idle=cfg.keepalive_time, intvl=cfg.keepalive_intvl, probes=cfg.keepalive_probes,
             key="crash.keepalive")
    else:
        note(net, "server: no SO_KEEPALIVE (the default)", fact="keepalive", host="server",
             idle=0.0, intvl=0.0, probes=0, key="crash.no-keepalive")
    net.run_for(1.0)
    note(net, "the client's host loses power: it sends nothing, not even a RST",
         fact="power-off", host="client", key="crash.power-off")
    power_off(net, "client")
    if keepalive:
        _read_until_error(net, conn, "server", "crash.server")
    else:
        net.run(until=net.now + DAY)
        state = conn.state
        note(net, f"a day later: the server's connection is still {state}: half-open",
             fact="half-open", host="server", state=state, key="crash.half-open", d=DAY / 3600)
        note(net, "server: now it writes to the client", key="crash.server-writes")
        conn.sendall(b"server push: are you there?\n")
        _read_until_error(net, conn, "server", "crash.server")
    net.run()
    return net


def _keepalive_probes(events: list[Event], host: str) -> list[Event]:
    """Keep-alive probes: no data, SEG.SEQ = SND.UNA - 1 (one below what the peer expects)."""
    out = []
    acked: dict[str, int] = {}
    for e in sent(events, host):
        if e["len"] == 0 and e["flags"] == "A":
            conn = str(e.get("conn"))
            prev = acked.get(conn)
            if prev is not None and (e["seq"] + 1) & 0xFFFFFFFF == prev:
                out.append(e)
                continue
            acked[conn] = e["seq"]
        elif e["len"]:
            acked[str(e.get("conn"))] = (e["seq"] + e["len"]) & 0xFFFFFFFF
    return out


def outcome_host_crash(events: list[Event]) -> dict[str, Any]:
    ka = facts(events, "keepalive", "server")[0]
    off = facts(events, "power-off", "client")[0]
    # the server's idle time counts from the last segment that reached it
    last_rcv = max(e["t_arrive"] for e in sent(events, "client") if "t_arrive" in e
                   and e.get("fate") != "dropped")
    probes = _keepalive_probes(events, "server")
    recv = facts(events, "recv", "server")
    end = [e for e in events if e["kind"] == "state" and e["host"] == "server"
           and e["to"] == "CLOSED" and not e["conn"].endswith("-*:*")]
    half = facts(events, "half-open", "server")
    probed = loss_probe_times(events, "server")
    sent_data = [e for e in sent(events, "server") if e["len"] and e["t"] > off["t"]]
    data = [e for e in sent_data if e["t"] not in probed]
    return {
        "keepalive": bool(arg(ka, "probes")),
        "keepalive_idle": arg(ka, "idle"),
        "keepalive_interval": arg(ka, "intvl"),
        "keepalive_probes": arg(ka, "probes"),
        "probes_sent": len(probes),
        "first_probe_after_idle": None if not probes else round(probes[0]["t"] - last_rcv, 6),
        "probe_gaps": [round(b["t"] - a["t"], 6) for a, b in itertools.pairwise(probes)],
        "still_established_after_a_day": None if not half else arg(half[0], "state"),
        "data_transmissions": len(data),
        "loss_probes": len(sent_data) - len(data),
        "server_error": recv[0]["result"] if recv else None,
        "detected_after": None if not end else round(end[0]["t"] - last_rcv, 6),
        "server_closed_cause": None if not end else end[0]["cause"],
        "rst_to_dead_host": any("R" in e["flags"] for e in sent(events, "server")),
    }


def report_host_crash(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    out = []
    if o["keepalive"]:
        out.append("  " + tr("ui.crash.keepalive", lang,
                             idle=duration(o["keepalive_idle"], lang),
                             n=o["keepalive_probes"], intvl=seconds(o["keepalive_interval"],
                                                                    lang)))
        out.append("  " + tr("ui.crash.probes", lang, n=o["probes_sent"],
                             first=duration(o["first_probe_after_idle"] or 0.0, lang)))
    elif o["still_established_after_a_day"]:
        out.append("  " + tr("ui.crash.half-open", lang,
                             state=o["still_established_after_a_day"]))
        out.append("  " + tr("ui.crash.writes", lang, n=o["data_transmissions"]))
        if o["loss_probes"]:
            out.append("  " + tr("ui.loss-probes", lang, n=o["loss_probes"]))
    if o["detected_after"] is not None:
        out.append("  " + tr("ui.crash.detected", lang, t=duration(o["detected_after"], lang),
                             err=o["server_error"] or "-"))
    return out


# ---------------------------------------------------------------- process-crash


def run_process_crash(seed: int, sw: Switches) -> Network:
    net, _c, s = two_hosts(seed, sw)
    srv = listen(net, s, 80)
    a = SimSocket(net, net.hosts["client"])
    a.connect((SERVER, 80))
    conn_a, _ = srv.accept()
    exchange(a, conn_a)
    note(net, "connection A: request answered; the server has read everything",
         fact="conn", host="client", label="A", conn=a.conn.name if a.conn else "",
         key="pcrash.a")
    b = SimSocket(net, net.hosts["client"])
    b.connect((SERVER, 80))
    conn_b, _ = srv.accept()
    b.sendall(REQUEST)
    net.run_for(0.2)
    note(net, "connection B: the client's request has arrived, the server has not read it",
         fact="conn", host="client", label="B", conn=b.conn.name if b.conn else "",
         key="pcrash.b")
    note(net, "server: the process crashes (SIGKILL, a segfault): the kernel closes its "
              "sockets: the listener, A and B", key="pcrash.crash")
    crash_process([srv, conn_a, conn_b])
    net.run_for(0.2)
    for label, sock in (("A", a), ("B", b)):
        try:
            data = sock.recv(4096)
        except OSError as exc:
            note(net, f"client, connection {label}: recv() raises {_errname(exc)}",
                 fact="client-recv", host="client", label=label, result=_errname(exc),
                 key="pcrash.recv-error", err=_errname(exc))
        else:
            note(net, f"client, connection {label}: recv() returns end of stream",
                 fact="client-recv", host="client", label=label,
                 result="eof" if not data else "data", key="pcrash.recv-eof")
    note(net, "client, connection A: not knowing why the server closed, it sends another "
              "request", key="pcrash.a-again")
    try:
        a.sendall(REQUEST)
        net.run_for(0.2)
        a.recv(4096)
    except OSError as exc:
        note(net, f"client, connection A: recv() raises {_errname(exc)}", fact="client-recv",
             host="client", label="A-again", result=_errname(exc), key="pcrash.recv-error",
             err=_errname(exc))
    again = SimSocket(net, net.hosts["client"])
    try:
        again.connect((SERVER, 80))
    except OSError as exc:
        note(net, f"client: a new connect() fails: {_errname(exc)}", fact="connect",
             host="client", result=_errname(exc), key="pcrash.connect-fails",
             err=_errname(exc))
    else:
        note(net, "client: a new connect() works", fact="connect", host="client",
             result="ok", key="pcrash.connect-ok")
    net.run()
    return net


def outcome_process_crash(events: list[Event]) -> dict[str, Any]:
    crash = next(i for i, e in enumerate(events) if e["kind"] == "note"
                 and e.get("key") == "pcrash.crash")
    conns = {e["label"]: str(e["conn"]) for e in facts(events, "conn", "client")}

    def reverse(name: str) -> str:
        left, right = name.split("-")
        return f"{right}-{left}"

    first_from_server = {}
    for e in events[crash:]:
        if e["kind"] == "segment" and e["event"] == "send" and e["host"] == "server":
            for label, name in conns.items():
                if e.get("conn") == reverse(name) and label not in first_from_server:
                    first_from_server[label] = e["flags"]
    recvs = {e["label"]: e["result"] for e in facts(events, "client-recv", "client")}
    connect = facts(events, "connect", "client")
    return {
        "a_server_sent": first_from_server.get("A"),
        "b_server_sent": first_from_server.get("B"),
        "a_client_read": recvs.get("A"),
        "b_client_read": recvs.get("B"),
        "a_after_writing_again": recvs.get("A-again"),
        "new_connect": connect[0]["result"] if connect else None,
    }


# ---------------------------------------------------------------- peer-reboot

REBOOT_AT = 1.0
BOOT_TIME = 30.0
WRITE_AT = 60.0


def run_peer_reboot(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    _srv, cli, _conn = connected(net)
    net.run(until=REBOOT_AT)
    note(net, "the server's host reboots: everything TCP knew is gone", fact="reboot",
         host="server", key="reboot.down")
    off = power_off(net, "server")
    net.run(until=REBOOT_AT + BOOT_TIME)
    s2 = power_on(net, off)
    listen(net, s2, 80)
    note(net, f"the server is up again after {BOOT_TIME:g} s; its application listens on "
              "port 80 again", fact="boot", host="server", key="reboot.up", d=BOOT_TIME)
    net.run(until=WRITE_AT)
    note(net, "client: sends a new request on its old connection", key="reboot.write")
    cli.sendall(REQUEST)
    try:
        data = cli.recv(4096)
    except OSError as exc:
        note(net, f"client: recv() raises {_errname(exc)}", fact="client-recv", host="client",
             result=_errname(exc), key="reboot.recv-error", err=_errname(exc))
    else:
        note(net, f"client: recv() returns {len(data)} bytes", fact="client-recv",
             host="client", result="data" if data else "eof", key="reboot.recv")
    again = SimSocket(net, net.hosts["client"])
    again.connect((SERVER, 80))
    note(net, "client: connects again: a new connection works", fact="connect",
         host="client", result="ok", key="reboot.reconnect")
    net.run()
    return net


def outcome_peer_reboot(events: list[Event]) -> dict[str, Any]:
    boot = facts(events, "boot", "server")[0]
    old = next(iter(conn_paths(events, "client")))
    answer = next((e for e in sent(events, "server") if e["t"] >= boot["t"]), None)
    why = [e["reason"] for e in drops(events, "server") if e["t"] >= boot["t"]]
    client_end = next((e for e in events if e["kind"] == "state" and e["host"] == "client"
                       and e["conn"] == old and e["to"] == "CLOSED"), None)
    recv = facts(events, "client-recv", "client")
    return {
        "rebooted_server_answered": None if answer is None else answer["flags"],
        "why": why[0] if why else None,
        "client_closed_cause": None if client_end is None else client_end["cause"],
        "client_error": recv[0]["result"] if recv else None,
        "reconnect": facts(events, "connect", "client")[0]["result"],
    }


# ---------------------------------------------------------------- cable-pull

UNPLUG_AT = 1.0
REPLUG_AFTER = 60.0
IDLE_FOR = 3600.0


def run_cable_pull(seed: int, sw: Switches) -> Network:
    net, _c, _s = two_hosts(seed, sw)
    _srv, cli, conn = connected(net)
    net.run(until=UNPLUG_AT)
    note(net, "the cable between client and server is unplugged", fact="unplug",
         key="cable.unplug")
    cable = unplug(net, "client", "server")
    if sw.variant == "idle":
        net.run(until=net.now + IDLE_FOR)
        note(net, f"{IDLE_FOR / 3600:g} h later, nobody has sent anything: both sides are "
                  f"still {cli.state} / {conn.state}", fact="idle", host="client",
             state=cli.state, peer=conn.state, key="cable.idle", d=IDLE_FOR / 3600)
        plug(net, cable)
        note(net, "the cable is plugged back in; the client sends a request", fact="plug",
             key="cable.plug")
        exchange(cli, conn)
        note(net, "client: the answer arrives: the connection never noticed",
             fact="client-recv", host="client", result="data", key="cable.answered")
        net.run()
        return net
    note(net, "client: sends a request into the unplugged cable", key="cable.send")
    cli.sendall(REQUEST)
    t0 = net.now
    if sw.variant == "replug":
        net.run(until=UNPLUG_AT + REPLUG_AFTER)
        plug(net, cable)
        note(net, f"the cable is plugged back in, {REPLUG_AFTER:g} s after it was pulled",
             fact="plug", key="cable.replug", d=REPLUG_AFTER)
        recv_exactly(conn, len(REQUEST))
        conn.sendall(RESPONSE)
        recv_exactly(cli, len(RESPONSE))
        note(net, f"client: the answer arrives {net.now - t0:g} s after the request",
             fact="client-recv", host="client", result="data", after=round(net.now - t0, 6),
             key="cable.late-answer", d=round(net.now - t0, 3))
        net.run()
        return net
    try:
        cli.recv(4096)
    except OSError as exc:
        note(net, f"client: recv() raises {_errname(exc)} after {net.now - t0:g} s",
             fact="client-recv", host="client", result=_errname(exc),
             after=round(net.now - t0, 6), key="cable.timeout", err=_errname(exc),
             d=round(net.now - t0, 3))
    net.run(until=net.now + 1.0)
    note(net, f"the server's side is still {conn.state}: it was idle and never noticed",
         fact="server-state", host="server", state=conn.state, key="cable.server-state")
    return net


def outcome_cable_pull(events: list[Event]) -> dict[str, Any]:
    unplugged = facts(events, "unplug")[0]["t"]
    data = [e for e in sent(events, "client") if e["len"] and e["t"] >= unplugged]
    first = data[0] if data else None
    probed = loss_probe_times(events, "client")
    sent_copies = [e for e in data if first is not None and e["seq"] == first["seq"]]
    copies = [e for e in sent_copies if e["t"] not in probed]
    gaps = [round(b["t"] - a["t"], 6) for a, b in itertools.pairwise(copies)]
    end = next((e for e in events if e["kind"] == "state" and e["host"] == "client"
                and e["to"] == "CLOSED" and e["t"] >= unplugged), None)
    recv = facts(events, "client-recv", "client")
    plugged = facts(events, "plug")
    server_state = facts(events, "server-state", "server")
    idle = facts(events, "idle", "client")
    return {
        "transmissions": len(copies),
        "retransmissions": max(len(copies) - 1, 0),
        "loss_probes": len(sent_copies) - len(copies),
        "gaps": gaps,
        "gave_up_after": None if end is None or first is None
        else round(end["t"] - first["t"], 6),
        "client_closed_cause": None if end is None else end["cause"],
        "client_result": recv[-1]["result"] if recv else None,
        "plugged_back_at": plugged[0]["t"] if plugged else None,
        "delivered_after_replug": next((e["t"] for e in copies if e.get("fate") == "delivered"),
                                       None),
        "client_while_unplugged": None if not idle else arg(idle[0], "state"),
        "server_while_unplugged": None if not idle else arg(idle[0], "peer"),
        "server_state": None if not server_state else arg(server_state[0], "state"),
    }


def report_cable_pull(events: list[Event], o: dict[str, Any], lang: str) -> list[str]:
    if o["client_while_unplugged"] is not None:
        return ["  " + tr("ui.cable.idle", lang, a=o["client_while_unplugged"],
                          b=o["server_while_unplugged"])]
    out = ["  " + tr("ui.cable.copies", lang, n=o["transmissions"],
                     gaps=", ".join(seconds(g, lang) for g in o["gaps"]) or "-")]
    if o["loss_probes"]:
        out.append("  " + tr("ui.loss-probes", lang, n=o["loss_probes"]))
    if o["gave_up_after"] is not None:
        out.append("  " + tr("ui.cable.gave-up", lang, t=seconds(o["gave_up_after"], lang),
                             err=o["client_result"] or "-"))
    if o["delivered_after_replug"] is not None and o["plugged_back_at"] is not None:
        out.append("  " + tr("ui.cable.replugged", lang,
                             t=seconds(o["delivered_after_replug"] - o["plugged_back_at"],
                                       lang)))
    return out


SCENARIOS = [
    Scenario("host-crash", run_host_crash, outcome_host_crash, group="failures",
             report=report_host_crash, variants=("no-keepalive",),
             headline=("probes_sent", "detected_after", "server_error")),
    Scenario("process-crash", run_process_crash, outcome_process_crash, group="failures",
             headline=("a_server_sent", "b_server_sent", "b_client_read")),
    Scenario("peer-reboot", run_peer_reboot, outcome_peer_reboot, group="failures",
             headline=("rebooted_server_answered", "client_error")),
    Scenario("cable-pull", run_cable_pull, outcome_cable_pull, group="failures",
             report=report_cable_pull, variants=("idle", "replug"),
             headline=("retransmissions", "gave_up_after", "client_result")),
]
