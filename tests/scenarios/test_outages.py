"""A host crash, a process crash, a reboot, a pulled cable: what each side sends and when,
read from the JSON trace."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest

from tcplab.scenarios.base import DEFAULT, Switches
from tcplab.trace import load_json

LINUX = Switches(profile="linux")


def events_of(trace_json: Any, name: str, sw: Switches = DEFAULT) -> list[dict[str, Any]]:
    return load_json(io.StringIO(trace_json(name, sw)))


def sends(events: list[dict[str, Any]], host: str | None = None,
          since: float = 0.0) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and (host is None or e["host"] == host) and e["t"] >= since]


def note(events: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(e for e in events if e["kind"] == "note" and e.get("key") == key)


# ---------------------------------------------------------------- host-crash


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_keepalive_finds_a_dead_host_after_2h11m15s(outcome, trace_json, sw):
    o = outcome("host-crash", sw)
    assert (o["keepalive_idle"], o["keepalive_interval"], o["keepalive_probes"]) == (7200, 75, 9)
    assert o["probes_sent"] == 9
    assert o["first_probe_after_idle"] == pytest.approx(7200.0)
    assert o["probe_gaps"] == [75.0] * 8
    assert o["detected_after"] == pytest.approx(2 * 3600 + 11 * 60 + 15)
    assert o["server_error"] == "ETIMEDOUT"
    ev = events_of(trace_json, "host-crash", sw)
    off = note(ev, "crash.power-off")["t"]
    assert not sends(ev, "client", since=off)          # a dead host sends nothing
    probes = [e for e in sends(ev, "server", since=off) if e["flags"] == "A"]
    last_ack_from_client = [e for e in sends(ev, "client") if e["t"] < off][-1]["ack"]
    # a probe: no data, SEG.SEQ one below what the peer expects
    assert {(e["len"], (e["seq"] + 1) & 0xFFFFFFFF) for e in probes} == \
        {(0, last_ack_from_client)}
    assert all(e["fate"] == "dropped" for e in sends(ev, "server", since=off))


def test_keepalive_timing_follows_the_sysctls(outcome):
    o = outcome("host-crash", Switches(profile="linux", sysctls=(
        "net.ipv4.tcp_keepalive_time=600", "net.ipv4.tcp_keepalive_intvl=10",
        "net.ipv4.tcp_keepalive_probes=3")))
    assert o["probes_sent"] == 3 and o["probe_gaps"] == [10.0, 10.0]
    assert o["detected_after"] == pytest.approx(630.0)


def test_without_keepalive_a_crashed_peer_leaves_a_half_open_connection(outcome, trace_json):
    sw = Switches(profile="linux", variant="no-keepalive")
    o = outcome("host-crash", sw)
    assert o["probes_sent"] == 0
    assert o["still_established_after_a_day"] == "ESTABLISHED"
    ev = events_of(trace_json, "host-crash", sw)
    off = note(ev, "crash.power-off")["t"]
    writes = note(ev, "crash.server-writes")["t"]
    assert writes - off >= 86400.0
    assert sends(ev, since=off + 0.001)[0]["t"] >= writes  # silence until the server writes
    # then it retransmits until tcp_retries2's budget (924.6 s on Linux) is spent; with
    # SACK on, one tail loss probe (RFC 8985) goes first, outside that count
    assert o["data_transmissions"] == 16 and o["loss_probes"] == 1
    assert o["server_error"] == "ETIMEDOUT"
    assert o["server_closed_cause"].endswith("(tcp_retries2 15: 924.6 s)")


# ---------------------------------------------------------------- process-crash


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_process_crash_fin_where_everything_was_read_rst_where_not(outcome, trace_json, sw):
    o = outcome("process-crash", sw)
    # RFC 9293 3.10.4 ABORT sends <SEQ=SND.NXT><CTL=RST>; Linux's tcp_send_active_reset
    # sets ACK too
    rst = "RA" if sw.profile == "linux" else "R"
    assert o["a_server_sent"] == "FA" and o["a_client_read"] == "eof"
    assert o["b_server_sent"] == rst and o["b_client_read"] == "ECONNRESET"
    assert o["a_after_writing_again"] == "ECONNRESET"   # the orphan answers new data with RST
    assert o["new_connect"] == "ECONNREFUSED"           # the listener went with the process
    ev = events_of(trace_json, "process-crash", sw)
    crash = note(ev, "pcrash.crash")["t"]
    assert sorted(e["flags"] for e in sends(ev, "server") if e["t"] == crash) == ["FA", rst]


# ---------------------------------------------------------------- peer-reboot


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_a_rebooted_peer_answers_the_old_connection_with_rst(outcome, trace_json, sw):
    o = outcome("peer-reboot", sw)
    assert o["rebooted_server_answered"] == "R"
    assert o["client_error"] == "ECONNRESET"
    assert o["client_closed_cause"] == "RST in ESTABLISHED"
    assert o["reconnect"] == "ok"
    ev = events_of(trace_json, "peer-reboot", sw)
    down, up = note(ev, "reboot.down")["t"], note(ev, "reboot.up")["t"]
    assert not [e for e in sends(ev) if down <= e["t"] < up]   # nothing while it is down
    write = note(ev, "reboot.write")["t"]
    old = [e for e in sends(ev, since=write)][:2]
    assert [(e["host"], e["flags"]) for e in old] == [("client", "PA"), ("server", "R")]
    assert old[1]["seq"] == old[0]["ack"]


# ---------------------------------------------------------------- cable-pull


def test_cable_pulled_with_data_in_flight_linux_gives_up_after_the_retries2_budget(outcome):
    o = outcome("cable-pull", LINUX)
    assert o["transmissions"] == 16 and o["retransmissions"] == 15 and o["loss_probes"] == 1
    gaps = o["gaps"]
    # the probe went out inside the first gap and re-armed the timer with the RTO (not
    # backed off): so the first gap is the probe's wait plus one RTO, the second one
    # RTO doubled, and from there each doubles up to TCP_RTO_MAX
    assert gaps[0] == pytest.approx(gaps[1])
    assert all(b == pytest.approx(2 * a) or b == 120.0 for a, b in itertools.pairwise(gaps[1:]))
    assert max(gaps) == 120.0                          # TCP_RTO_MAX
    assert 924.6 <= o["gave_up_after"] < 924.6 + 120.0
    assert o["client_result"] == "ETIMEDOUT"
    assert o["server_state"] == "ESTABLISHED"          # the idle side never noticed


def test_cable_pulled_rfc_counts_fifteen_retransmissions(outcome):
    o = outcome("cable-pull")
    assert o["retransmissions"] == 15
    assert o["gaps"][:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] and max(o["gaps"]) == 60.0
    assert o["client_closed_cause"] == "retransmission limit (15, tcp_retries2) reached"
    assert o["client_result"] == "ETIMEDOUT"


def test_an_idle_connection_survives_a_pulled_cable(outcome, trace_json):
    sw = Switches(profile="linux", variant="idle")
    o = outcome("cable-pull", sw)
    assert o["client_while_unplugged"] == o["server_while_unplugged"] == "ESTABLISHED"
    ev = events_of(trace_json, "cable-pull", sw)
    pulled, plugged = note(ev, "cable.unplug")["t"], note(ev, "cable.plug")["t"]
    assert plugged - pulled >= 3600.0
    assert not [e for e in sends(ev) if pulled <= e["t"] < plugged]   # nothing at all
    assert o["retransmissions"] == 0 and o["client_result"] == "data"


def test_a_replugged_cable_is_used_at_the_next_retransmission(outcome):
    o = outcome("cable-pull", Switches(profile="linux", variant="replug"))
    assert o["plugged_back_at"] == pytest.approx(61.0)
    # the first copy that gets through is the first retransmission after the plug
    assert o["delivered_after_replug"] > o["plugged_back_at"]
    assert o["delivered_after_replug"] - o["plugged_back_at"] < o["gaps"][-1] * 2
    assert o["client_result"] == "data" and o["gave_up_after"] is None
