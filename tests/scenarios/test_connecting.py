"""Scenarios of making a connection (isn-clock, mss, no-listen, calls-return,
syn-in-established, refused-vs-timeout), read as packet exchanges from the JSON trace."""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.i18n import catalogue, phrase
from tcplab.render.narrate import cause_key
from tcplab.scenarios import get
from tcplab.scenarios.base import DEFAULT, Switches, execute
from tcplab.trace import load_json

LINUX = Switches(profile="linux")
MASK = 0xFFFFFFFF


def trace(name: str, switches: Switches = DEFAULT, seed: int = 1) -> list[dict[str, Any]]:
    """The run's events, as ``--json`` prints them, loaded back."""
    result = execute(get(name), seed, switches)
    buf = io.StringIO()
    result.net.trace.dump_json(buf, result.meta)
    buf.seek(0)
    return load_json(buf)


def wire(events: list[dict[str, Any]], host: str | None = None) -> list[dict[str, Any]]:
    """The segments put on the wire, in order (``host:flags`` reads like a ladder)."""
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and (host is None or e["host"] == host)]


def notes(events: list[dict[str, Any]], fact: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "note" and e.get("fact") == fact]


# ---------------------------------------------------------------- isn-clock


def first_syns(events: list[dict[str, Any]]) -> list[tuple[float, str, int]]:
    """(time, 4-tuple, ISN) of each connection the client opened."""
    out: list[tuple[float, str, int]] = []
    last: dict[str, int] = {}
    for e in wire(events, "client"):
        pair = f"{e['src']}-{e['dst']}"
        if e["flags"] == "S" and last.get(pair) != e["seq"]:
            out.append((e["t"], pair, e["seq"]))
            last[pair] = e["seq"]
    return out


@pytest.mark.parametrize(("switches", "per_second"), [(Switches(), 250_000),
                                                      (LINUX, 15_625_000)])
def test_isn_clock_same_4_tuple_grows_with_the_clock_others_hash_apart(switches, per_second):
    """rfc: a 4 µs clock (RFC 9293 3.4.1); linux: ns >> 6, a 64 ns clock (secure_tcp_seq)."""
    syns = first_syns(trace("isn-clock", switches))
    by_tuple: dict[str, list[tuple[float, int]]] = {}
    for t, pair, isn in syns:
        by_tuple.setdefault(pair, []).append((t, isn))
    repeated = max(by_tuple.values(), key=len)
    assert len(repeated) >= 3
    for (t0, a), (t1, b) in itertools.pairwise(repeated):
        assert (b - a) & MASK == round((t1 - t0) * per_second)   # the clock, exactly
    # ISN minus the clock: one constant per 4-tuple (the keyed hash), different across them
    hashes = {pair: {(isn - round(t * per_second)) & MASK for t, isn in runs}
              for pair, runs in by_tuple.items()}
    assert all(len(h) == 1 for h in hashes.values())
    assert len({next(iter(h)) for h in hashes.values()}) == len(hashes) >= 3


def test_isn_clock_outcome_measures_the_tick(outcome):
    assert outcome("isn-clock")["isn_tick_ns"] == 4000.0
    assert outcome("isn-clock", LINUX)["isn_tick_ns"] == 64.0


def test_isn_clock_the_hash_key_comes_from_the_seed():
    one, two = first_syns(trace("isn-clock", seed=1)), first_syns(trace("isn-clock", seed=2))
    assert [p for _t, p, _i in one] == [p for _t, p, _i in two]
    assert [i for *_x, i in one] != [i for *_x, i in two]


def test_isn_clock_new_syn_beyond_the_old_one_reopens_the_servers_time_wait():
    events = trace("isn-clock")
    reopened = [e["reason"] for e in events if e["kind"] == "segment" and e["event"] == "accept"
                and e["host"] == "server" and "TIME-WAIT" in e.get("reason", "")]
    assert reopened and all("reopens (RFC 6191)" in r for r in reopened)


# ---------------------------------------------------------------- mss

NO_MSS = Switches(variant="no-mss")


def test_mss_every_segment_is_one_ip_packet_one_lost_packet_resent_alone():
    events = trace("mss")
    assert [o for e in wire(events) if "S" in e["flags"] for o in e["opts"]] == \
        ["mss 1460", "mss 1460"]
    data = [e for e in wire(events, "server") if e["len"]]
    assert max(e["len"] for e in data) == 1460
    assert not notes(events, "fragments")                      # nothing was cut
    lost = [e for e in data if e["fate"] == "dropped"]
    assert len(lost) == 1 and lost[0]["reason"] == "fault: path: IP packet lost"
    resent = [e for e in data[5:]]
    assert [(e["seq"], e["len"]) for e in resent] == [(lost[0]["seq"], 1460)]


def test_mss_counterfactual_one_lost_fragment_costs_the_whole_segment():
    events = trace("mss", NO_MSS)
    data = [e for e in wire(events, "server") if e["len"]]
    assert [(e["len"], e["fate"]) for e in data] == [(7300, "dropped"), (7300, "delivered")]
    assert data[0]["reason"] == "fault: path: one fragment lost, the packet cannot be reassembled"
    assert data[1]["seq"] == data[0]["seq"]                     # all of it, from the start
    cuts = notes(events, "fragments")
    assert [c["args"]["sizes"] for c in cuts] == [[1500, 1500, 1500, 1500, 1420]] * 2
    assert [c["args"]["lost"] for c in cuts] == [[3], []]      # fragment 3 of 5, then none


def test_mss_outcome_compares_the_cost(outcome):
    with_mss, without = outcome("mss"), outcome("mss", NO_MSS)
    assert (with_mss["bytes_resent"], without["bytes_resent"]) == (1460, 7300)
    assert with_mss["client_received"] == without["client_received"] == 7300


def test_mss_linux_segments_fit_the_mtu_with_timestamps():
    events = trace("mss", LINUX)
    assert not notes(events, "fragments")
    assert max(e["len"] for e in wire(events, "server")) == 1448


# ---------------------------------------------------------------- no-listen


def test_no_listen_syn_answered_by_rst_connect_refused():
    events = trace("no-listen")
    ladder = [(e["host"], e["flags"]) for e in wire(events)]
    assert ladder == [("client", "S"), ("server", "RA")]
    syn, rst = wire(events)
    assert rst["seq"] == 0 and rst["ack"] == (syn["seq"] + 1) & MASK   # RFC 9293 3.10.7.1
    (connect,) = notes(events, "connect")
    assert connect["result"] == "ECONNREFUSED"
    assert connect["t"] == rst["t_arrive"] == 0.1                      # one round trip


def test_no_listen_self_connect_is_a_simultaneous_open_with_itself(outcome):
    o = outcome("no-listen", Switches(variant="self-connect"))
    assert not o["listen_called"]
    assert o["client_path"] == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert o["connect_result"] == "ok" and o["self_read"] == "hello, me"


# ---------------------------------------------------------------- calls-return


def test_calls_return_connect_after_the_second_segment_accept_after_the_third(outcome):
    o = outcome("calls-return")
    assert o["segments_before_connect"] == 0 and o["listen_returned_at"] == 0.0
    assert o["connect_returned_at"] == o["synack_arrived_at"] == o["third_segment_sent_at"]
    assert o["accept_returned_at"] == o["third_segment_arrived_at"] > o["connect_returned_at"]
    assert o["accept_called_at"] == 0.0 < o["syn_sent_at"] + 0.1


def test_calls_return_late_accept_returns_at_once_with_a_waiting_connection(outcome):
    o = outcome("calls-return", Switches(variant="late-accept"))
    assert o["accept_called_at"] == o["accept_returned_at"] == 1.0
    assert o["connection_waited_in_queue"] == pytest.approx(1.0 - o["third_segment_arrived_at"])
    assert not o["accept_returns_on_third_segment"]


def test_calls_return_variant_has_its_own_title_and_text():
    res = CliRunner().invoke(cli, ["scenario", "run", "calls-return", "--variant",
                                   "late-accept", "--width", "100"])
    assert res.exit_code == 0
    assert "without the mechanism" not in res.output
    assert "--variant late-accept: the server calls accept() only later" in res.output


# ---------------------------------------------------------------- syn-in-established


def test_syn_in_established_restarted_client_challenge_ack_rst_then_new_connection():
    events = trace("syn-in-established")
    reboot = notes(events, "reboot")[0]["t"]
    after = [e for e in wire(events) if e["t"] > reboot]
    ladder = [(e["host"], e["flags"]) for e in after][:5]
    # SYN (new ISN) -> challenge ACK -> RST -> the SYN again -> SYN-ACK of a new connection
    assert ladder == [("client", "S"), ("server", "A"), ("client", "R"), ("client", "S"),
                      ("server", "SA")]
    syn, challenge, rst = after[0], after[1], after[2]
    assert challenge["ack"] != (syn["seq"] + 1) & MASK   # it does not acknowledge the SYN
    assert rst["seq"] == challenge["ack"]                 # RFC 9293 3.10.7.3: RST seq = SEG.ACK
    handled = [e["reason"] for e in events if e["kind"] == "segment" and e["event"] == "drop"
               and e["host"] == "server" and e["flags"] == "S"]
    assert handled[0].endswith(": challenge ACK")


def test_syn_in_established_outcome(outcome):
    o = outcome("syn-in-established")
    assert o["first_connection_path"] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSED"]
    assert o["old_connection_ended_by"] == "RST in ESTABLISHED"
    assert o["server_app_saw"] == "ECONNRESET"
    assert o["new_connection_path"] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert o["new_connection_after"] == 1.1            # one SYN timeout, then a round trip


def test_syn_in_established_linux_same_exchange(outcome):
    o = outcome("syn-in-established", LINUX)
    assert o["server_sent_back"] == ["A"] and o["client_answer_to_challenge"] == ["R"]
    assert o["old_connection_ended_by"] == "RST in ESTABLISHED"


def test_syn_in_established_linux_counts_a_challenge_ack(outcome):
    # the rebooted client's SYN fails PAWS (its timestamp clock restarted): Linux's
    # tcp_validate_incoming sends it to syn_challenge, a challenge ACK (RFC 5961 4.2)
    assert outcome("syn-in-established", LINUX)["challenge_acks"] == 1


def test_syn_in_established_linux_reconnects_within_a_few_milliseconds(outcome):
    # after answering an unacceptable ACK in SYN-SENT with RST, Linux re-arms the SYN timer
    # to TCP_TIMEOUT_MIN (2 jiffies; measured 8 ms on 6.18 at HZ=250), not the full RTO:
    # SYN, challenge ACK, RST (two one-way trips), 2 ms, then a handshake (one round trip)
    rtt = 0.1
    assert outcome("syn-in-established", LINUX)["new_connection_after"] == \
        pytest.approx(2 * rtt + 0.002)


def test_syn_in_established_blind_attacker_gets_challenge_acks_connection_survives(outcome):
    o = outcome("syn-in-established", Switches(variant="blind"))
    assert o["syns_for_the_established_connection"] == 3
    assert o["server_sent_back"] == ["A", "A", "A"] and o["challenge_acks"] == 3
    assert o["connection_survived"] and o["server_read_after_attack"] == "GET /again"


def test_syn_in_established_challenge_ack_limit_holds_some_back(outcome):
    o = outcome("syn-in-established", Switches(
        variant="blind", profile="linux", sysctls=("net.ipv4.tcp_challenge_ack_limit=1",)))
    assert o["rate_limited"] >= 1 and o["challenge_acks"] + o["rate_limited"] == 3
    assert o["connection_survived"]


def test_syn_in_established_rfc793_one_spoofed_syn_resets_the_connection(outcome):
    o = outcome("syn-in-established", Switches(variant="rfc793"))
    assert o["server_sent_back"][0] == "R"
    assert o["first_connection_path"][-1] == "CLOSED"
    assert not o["connection_survived"] and o["server_read_after_attack"] is None


# ---------------------------------------------------------------- refused-vs-timeout


@pytest.mark.parametrize(("switches", "gaps", "after"), [
    # rfc: back-off from 1 s, the last wait capped by RTO's 60 s maximum (RFC 6298 2.5)
    (Switches(), [1, 2, 4, 8, 16, 32], 123.0),
    # Linux 6.5+: 4 linear timeouts added to tcp_syn_retries 6: 11 SYNs, about 131 s
    (LINUX, [1, 1, 1, 1, 1, 2, 4, 8, 16, 32], 131.0),
])
def test_refused_at_once_timed_out_after_every_syn(switches, gaps, after):
    events = trace("refused-vs-timeout", switches)
    closed = [e for e in wire(events, "client") if e["dst"].endswith(":81")]
    filtered = [e for e in wire(events, "client") if e["dst"].endswith(":8443")]
    assert [e["flags"] for e in closed] == ["S"]
    assert [e["flags"] for e in wire(events, "server")] == ["RA"]        # only port 81 answers
    assert all(e["fate"] == "dropped" for e in filtered)
    assert [round(b["t"] - a["t"], 6) for a, b in itertools.pairwise(filtered)] \
        == gaps
    ends = {e["args"]["port"]: (e["result"], e["args"]["after"]) for e in notes(events, "connect")}
    assert ends == {81: ("ECONNREFUSED", 0.1), 8443: ("ETIMEDOUT", after)}


def test_refused_vs_timeout_syn_retries_sysctl_shortens_the_wait(outcome):
    o = outcome("refused-vs-timeout", Switches(profile="linux",
                                               sysctls=("net.ipv4.tcp_syn_retries=2",)))
    # As Linux 6.18 does it (measured in a network namespace: SYNs at 0, 1, 2, 3, 4, 5 s,
    # ETIMEDOUT at 7 s): tcp_syn_retries 2 is also a time budget, which ends the
    # linear retransmissions early.
    assert o["filtered_syn_times"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert o["filtered_port_after"] == 7.0
    assert o["closed_port_after"] == 0.1


# ---------------------------------------------------------------- texts of every case

CASES = [("isn-clock", LINUX), ("mss", LINUX), ("no-listen", Switches(variant="self-connect")),
         ("calls-return", Switches(variant="late-accept")), ("syn-in-established", LINUX),
         ("syn-in-established", Switches(variant="blind")), ("refused-vs-timeout", LINUX)]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("name", "switches"), CASES,
                         ids=[f"{n}{''.join(s.flags())}" for n, s in CASES])
def test_every_case_is_narrated_in_chinese(name, switches):
    zh = catalogue("zh")
    for e in trace(name, switches):
        if e["kind"] == "note":
            assert f"note.{e['key']}" in zh, e["text"]
        if e["kind"] == "segment" and e.get("reason"):
            assert CJK.search(phrase("reason", e["reason"], "zh") or ""), e["reason"]
        if e["kind"] == "state":
            assert CJK.search(phrase("causename", cause_key(e["cause"]), "zh") or ""), e["cause"]
