"""What TIME-WAIT costs and the remedies, as packet exchanges and timelines from the JSON
trace: port exhaustion, tcp_tw_reuse, tcp_max_tw_buckets, SO_LINGER 0, a SYN in TIME-WAIT."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tcplab.scenarios.base import DEFAULT, Switches
from tcplab.trace import load_json

LINUX = Switches(profile="linux")
NO_TS = ("net.ipv4.tcp_timestamps=0",)


def events_of(trace_json: Any, name: str, sw: Switches = DEFAULT) -> list[dict[str, Any]]:
    return load_json(io.StringIO(trace_json(name, sw)))


def sends(events: list[dict[str, Any]], host: str | None = None,
          since: float = 0.0) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and (host is None or e["host"] == host) and e["t"] >= since]


def wire(segs: list[dict[str, Any]]) -> list[str]:
    return [f"{e['host']}:{e['flags']}" for e in segs]


def note(events: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "note" and e.get("key") == key]


# ---------------------------------------------------------------- port-exhaustion


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_time_wait_entries_use_up_the_ports_towards_one_destination(outcome, trace_json, sw):
    o = outcome("port-exhaustion", sw)
    assert o["ephemeral_ports"] == 8
    assert o["connections_before_failure"] == 8 == o["time_wait_at_failure"]
    assert o["connect_failed_with"] == "EADDRNOTAVAIL"
    ev = events_of(trace_json, "port-exhaustion", sw)
    failed = note(ev, "exh.fails")[0]
    # connect() fails in the kernel: no SYN to port 80 goes out when it fails
    assert not [e for e in sends(ev, "client") if e["t"] == failed["t"] and "S" in e["flags"]
                and e["dst"].endswith(":80")]
    # another destination still gets a port, even one whose 4-tuple to :80 is in TIME-WAIT
    assert o["other_destination"] == "ok" and o["other_destination_shares_a_port"]
    # when the oldest TIME-WAIT entry ends (60 s), port 80 can be reached again
    again = note(ev, "exh.again")[0]
    assert again["t"] > 60.0 and o["after_time_wait"] == "ok"


def test_port_range_follows_the_sysctl(outcome):
    o = outcome("port-exhaustion", Switches(
        profile="linux", sysctls=("net.ipv4.ip_local_port_range=40000 40003",)))
    assert o["ephemeral_ports"] == 4 == o["connections_before_failure"]
    assert o["connect_failed_with"] == "EADDRNOTAVAIL"


# ---------------------------------------------------------------- tw-reuse


def test_tw_reuse_on_loopback_takes_the_time_wait_4_tuple_after_the_delay(outcome,
                                                                         trace_json):
    o = outcome("tw-reuse", LINUX)
    assert (o["tcp_tw_reuse"], o["timestamps"], o["loopback"]) == (2, True, True)
    # 0.5 s: the entry's timestamp is younger than tcp_tw_reuse_delay (1 s): refused
    assert o["attempts_after"] == [0.5, 1.5]
    assert o["attempt_results"] == ["EADDRNOTAVAIL", "ok"]
    assert o["reused_time_wait"]
    assert o["time_wait_ended_by"] == "4-tuple reused by connect() (timestamps protect it)"
    assert o["new_isn_beyond_old"]
    ev = events_of(trace_json, "tw-reuse", LINUX)
    syns = [e for e in sends(ev, "client") if e["flags"] == "S"]
    assert len(syns) == 2 and syns[0]["src"] == syns[1]["src"]  # the same 4-tuple
    assert any(o.startswith("TS val") for o in syns[1]["opts"])  # timestamps protect it


@pytest.mark.parametrize("sw", [Switches(profile="linux", sysctls=NO_TS), Switches()],
                         ids=["linux-no-timestamps", "rfc"])
def test_without_timestamps_the_4_tuple_waits_out_time_wait(outcome, sw):
    o = outcome("tw-reuse", sw)
    assert not o["timestamps"] and not o["reused_time_wait"]
    assert o["attempt_results"] == ["EADDRNOTAVAIL", "EADDRNOTAVAIL", "ok"]
    assert o["time_wait_ended_by"] == "2MSL timer expired"
    assert o["connected_after"] >= 59.9


def test_tw_reuse_2_is_loopback_only_1_is_everywhere(outcome):
    remote = outcome("tw-reuse", Switches(profile="linux", variant="remote"))
    assert not remote["loopback"] and not remote["reused_time_wait"]
    assert remote["connected_after"] >= 59.9
    one = outcome("tw-reuse", Switches(profile="linux", variant="remote",
                                       sysctls=("net.ipv4.tcp_tw_reuse=1",)))
    assert one["tcp_tw_reuse"] == 1 and one["reused_time_wait"]
    assert one["connected_after"] == 1.5


# ---------------------------------------------------------------- tw-buckets


def test_beyond_tcp_max_tw_buckets_time_wait_is_skipped_and_a_lost_ack_becomes_a_rst(
        outcome, trace_json):
    o = outcome("tw-buckets", LINUX)
    assert o["tcp_max_tw_buckets"] == 1
    assert (o["time_wait_entered"], o["time_wait_skipped"]) == (1, 1)
    # no TIME-WAIT at all for the second: FIN-WAIT-2 -> CLOSED (tcp_time_wait: tcp_done)
    assert o["skipped_paths"] == [["FIN-WAIT-2", "CLOSED"]]
    assert o["overflow_counted"]
    ev = events_of(trace_json, "tw-buckets", LINUX)
    lost = next(e for e in sends(ev, "client") if e.get("fate") == "dropped")
    # the client's last ACK is lost; the server's FIN comes again and meets no connection
    assert wire(sends(ev, since=lost["t"] + 0.001)) == ["server:FA", "client:R"]
    assert o["last_server_closed_cause"] == "RST in LAST-ACK"


def test_without_a_bucket_limit_time_wait_acks_the_retransmitted_fin(outcome, trace_json):
    o = outcome("tw-buckets")
    assert o["tcp_max_tw_buckets"] is None
    assert (o["time_wait_entered"], o["time_wait_skipped"]) == (2, 0)
    ev = events_of(trace_json, "tw-buckets")
    lost = next(e for e in sends(ev, "client") if e.get("fate") == "dropped")
    assert wire(sends(ev, since=lost["t"] + 0.001)) == ["server:FA", "client:A"]
    assert o["client_answered_rst"] == 0
    assert o["last_server_closed_cause"] == "our FIN acknowledged in LAST-ACK"


# ---------------------------------------------------------------- linger0


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_linger_zero_closes_with_a_rst_and_no_time_wait(outcome, trace_json, sw):
    o = outcome("linger0", sw)
    # no FIN; Linux's tcp_send_active_reset sets ACK on the RST, RFC 9293's ABORT does not
    assert o["client_sent"] == ("RA" if sw.profile == "linux" else "R")
    assert o["client_path"][-2:] == ["ESTABLISHED", "CLOSED"]
    assert not o["client_time_wait"]
    assert o["server_recv"] == "ECONNRESET"
    assert o["same_port_again"] == "ok"                  # nothing holds the 4-tuple
    ev = events_of(trace_json, "linger0", sw)
    first = [e for e in sends(ev, "client")
             if e["conn"] == sends(ev, "client")[0]["conn"] and e["t"] < 0.4]
    assert "F" not in "".join(e["flags"] for e in first)


# ---------------------------------------------------------------- syn-in-time-wait


def test_syn_below_rcv_nxt_without_timestamps_waits_out_time_wait_rfc1337(outcome, trace_json):
    o = outcome("syn-in-time-wait")
    assert not o["isn_beyond_rcv_nxt"] and not o["timestamps"]
    assert o["first_syn_handled_as"] == "SYN in TIME-WAIT: challenge ACK"
    ev = events_of(trace_json, "syn-in-time-wait")
    start = note(ev, "stw.reconnect")[0]["t"]
    # SYN -> ACK of the old connection -> RST (ignored: RFC 1337), and again, and again
    assert wire(sends(ev, since=start))[:6] == ["client:S", "server:A", "client:R"] * 2
    assert o["time_wait_answered_with"] == "A" and o["time_wait_answers"] == o["syns_sent"] - 1
    assert o["time_wait_ended_by"] == "2MSL timer expired"
    assert o["connect"] == "ok" and o["connect_seconds"] > 59.0


def test_syn_in_time_wait_with_timestamps_is_taken_at_once(outcome):
    o = outcome("syn-in-time-wait", LINUX)
    assert not o["isn_beyond_rcv_nxt"] and o["timestamps"]
    assert o["first_syn_handled_as"].startswith("SYN with a newer timestamp in TIME-WAIT")
    assert o["time_wait_answered_with"] is None and o["time_wait_answers"] == 0
    assert o["syns_sent"] == 1 and o["client_rsts"] == 0
    assert o["connect"] == "ok" and o["connect_seconds"] == pytest.approx(2 * 0.05)


def test_linux_without_timestamps_the_clients_rst_ends_time_wait(outcome, trace_json):
    sw = Switches(profile="linux", sysctls=NO_TS)
    o = outcome("syn-in-time-wait", sw)
    assert o["first_syn_handled_as"] == "SYN in TIME-WAIT: challenge ACK"
    assert o["client_rsts"] == 1
    assert o["time_wait_ended_by"] == "RST in TIME-WAIT (no RFC 1337 protection)"
    assert o["syns_sent"] == 2 and o["connect_seconds"] < 2.0
    ev = events_of(trace_json, "syn-in-time-wait", sw)
    start = note(ev, "stw.reconnect")[0]["t"]
    assert wire(sends(ev, since=start))[:5] == ["client:S", "server:A", "client:R",
                                                "client:S", "server:SA"]


@pytest.mark.parametrize("sw", [Switches(variant="higher-isn"),
                                Switches(profile="linux", variant="higher-isn",
                                         sysctls=NO_TS)], ids=["rfc", "linux-no-timestamps"])
def test_syn_beyond_rcv_nxt_reopens_time_wait(outcome, sw):
    o = outcome("syn-in-time-wait", sw)
    assert o["isn_beyond_rcv_nxt"]
    assert o["first_syn_handled_as"].startswith("SYN with a higher sequence number")
    assert o["time_wait_ended_by"] == "new SYN with a higher sequence number"
    assert o["syns_sent"] == 1 and o["connect"] == "ok"
    # the server's new ISN: Linux's tcp_timewait_state_process takes the old SND.NXT +
    # 65535 + 2; RFC 6191 asks only for a fresh one from the ISN clock
    if sw.profile == "linux":
        assert o["server_isn_after_old_snd_nxt"] == 65537
    else:
        assert o["server_isn_after_old_snd_nxt"] != 65537
