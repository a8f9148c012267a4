"""Questions answered by the demo and by the first catalogue scenarios, run as documented.

Each test runs the command docs/questions.md gives for the question, with ``--json``,
and reads the answer back from the trace and the findings computed from it.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .harness import answer, run, segments, states


def _timeline(doc: dict[str, Any]) -> list[tuple[float, str, str, int, float | None]]:
    return [(r["t"], r["host"], r["role"], r["copy"], r["rto"])
            for r in doc["meta"]["findings"]["timeline"]]


def _ends(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ends: dict[str, dict[str, Any]] = doc["meta"]["findings"]["outcome"]["ends"]
    return ends


def _outcome(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = doc["meta"]["outcome"]
    return out


def _timer_arms(doc: dict[str, Any], host: str, timer: str) -> list[float]:
    return [e["t"] for e in doc["events"] if e["kind"] == "timer" and e["host"] == host
            and e["timer"] == timer and e["action"] == "armed"]


# ------------------------------------------------------------------ opening


def test_q1_three_segments_and_each_sides_states() -> None:
    out = _outcome(answer(1))
    assert out["first_segments"] == ["S", "SA", "PA"]
    assert out["client_path"] == ["CLOSED", "SYN-SENT", "ESTABLISHED"]
    assert out["server_path"] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert out["synack_acks_client_isn"] and out["third_acks_server_isn"]


def test_q2_the_kernels_own_table_shows_listen_and_established() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as cli:
            acc, _ = srv.accept()
            with acc:
                doc = answer(2)
                mine = {(s["local_port"], s["remote_port"]): s["state"]
                        for s in doc["sockets"]}
                assert mine[(port, 0)] == "LISTEN"
                assert mine[(cli.getsockname()[1], port)] == "ESTABLISHED"
                assert mine[(port, cli.getsockname()[1])] == "ESTABLISHED"
    # and the simulator's trace says the same of its own connection
    demo = run("tcplab demo")
    assert states(demo, "client")[:2] == ["SYN-SENT", "ESTABLISHED"]


def test_q3_two_way_handshake_commits_an_old_duplicates_data() -> None:
    out = _outcome(answer(3))
    assert out["old_data_committed"] and out["connections_accepted"] == 2
    assert "PAY 100 TO MALLORY" in out["server_app_read"]
    three_way = _outcome(run("tcplab scenario run old-duplicate-syn"))
    assert not three_way["old_data_committed"] and three_way["server_back_to_listen"]
    # a delayed SYN repeated: one connection per copy without the third segment
    retry = _outcome(answer(3, 1))
    assert retry["client_connections"] == 1 and retry["server_established"] == 3


def test_q4_four_segments_work_but_one_is_redundant() -> None:
    out = _outcome(answer(4))
    assert out["segments_until_both_isns_acked"] == 4
    three = _outcome(run("tcplab scenario run isn-sync"))
    assert three["segments_until_both_isns_acked"] == 3


def test_q7_a_lost_syn_is_sent_again_after_one_second() -> None:
    doc = answer(7)
    assert _timeline(doc)[0] == (1.0, "client", "syn", 2, 1.0)
    assert _ends(doc)["client"]["cause"] == "2MSL timer expired"  # the life completes


def test_q7_every_syn_lost_on_linux_11_syns_then_etimedout() -> None:
    doc = answer(7, 1)
    rows = _timeline(doc)
    assert len(rows) == 10  # tcp_syn_retries 6 + tcp_syn_linear_timeouts 4
    assert [r[4] for r in rows] == [1.0] * 5 + [2.0, 4.0, 8.0, 16.0, 32.0]
    failed = doc["meta"]["findings"]["outcome"]["failed"]
    assert [(f["call"], f["error"], f["after"]) for f in failed] == \
        [("connect", "ETIMEDOUT", 131.0)]
    assert doc["meta"]["findings"]["faults"] == [{"fault": "--drop syn:all", "hits": 11}]


def test_q8_a_lost_syn_ack_both_sides_send_again() -> None:
    rows = _timeline(answer(8))
    assert (1.0, "client", "syn", 2, 1.0) in rows          # the client's timer
    assert (1.05, "server", "syn-ack", 3, 1.0) in rows     # the server's own timer
    assert any(r[:3] == (1.05, "server", "syn-ack") and r[4] is None for r in rows)


def test_q9_a_lost_third_ack_the_data_segment_completes_the_handshake() -> None:
    doc = answer(9)
    assert any(e["fate"] == "dropped" for e in segments(doc, "client", "A"))
    data = segments(doc, "client", "PA")[0]
    est = next(e for e in doc["events"] if e["kind"] == "state" and e["host"] == "server"
               and e["to"] == "ESTABLISHED")
    # the server becomes ESTABLISHED when the request (it carries the ACK) arrives
    assert est["t"] == pytest.approx(data["t"] + 0.05)
    assert not [r for r in _timeline(doc) if r[2] == "ack"]  # ACKs are never retransmitted


def test_q10_the_third_segment_carries_data() -> None:
    out = _outcome(answer(10))
    assert out["first_segments"][2] == "PA" and out["third_segment_data"] > 0
    assert not out["server_established_before_third_segment"]


def test_q11_syn_cookies_let_the_real_client_in_during_a_flood() -> None:
    cookies = _outcome(answer(11))
    assert cookies["client_connect"] == "ok" and cookies["syn_cookies_sent"] > 0
    flood = _outcome(answer(11, 1))
    assert flood["client_connect"] == "timeout" and flood["syns_dropped_queue_full"] > 0


def test_q18_fast_open_cookie_then_data_in_the_syn_one_round_trip_sooner() -> None:
    doc = answer(18)
    syns = segments(doc, "client", "S")
    synacks = segments(doc, "server", "SA")
    # connection 1: an empty Fast Open option asks for a cookie; the SYN-ACK brings one
    assert "FO" in syns[0]["opts"] and syns[0]["len"] == 0
    cookie = next(o for o in synacks[0]["opts"] if o.startswith("FO "))
    # connection 2: that cookie, and the request, in the SYN; the SYN-ACK acknowledges both
    assert cookie in syns[1]["opts"] and syns[1]["len"] > 0
    assert synacks[1]["ack"] == (syns[1]["seq"] + 1 + syns[1]["len"]) % 2**32
    # the server's answer leaves with its SYN-ACK, before the client's third segment
    answer2 = next(e for e in segments(doc, "server") if e["t"] >= synacks[1]["t"]
                   and e["len"] > 0)
    third = next(e for e in segments(doc, "client") if e["t"] > syns[1]["t"]
                 and "S" not in e["flags"])
    assert answer2["t"] == synacks[1]["t"] < third["t_arrive"]
    out = _outcome(doc)
    assert out["second_read_in"] == "SYN-RECEIVED" and out["first_read_in"] == "ESTABLISHED"
    assert (out["first_answer_rtts"], out["second_answer_rtts"]) == (2, 1)
    # without Fast Open on the client: no option, no data in a SYN, two round trips each
    off = answer(18, 1)
    assert all("FO" not in " ".join(s["opts"]) and s["len"] == 0
               for s in segments(off, "client", "S"))
    assert (_outcome(off)["first_answer_rtts"], _outcome(off)["second_answer_rtts"]) == (2, 2)


# ------------------------------------------------------------------ closing


def test_q20_four_segments_and_the_states_of_both_sides() -> None:
    out = _outcome(answer(20))
    assert out["close_segments"] == ["client:FA", "server:A", "server:FA", "client:A"]
    assert out["client_path"][-4:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    assert out["server_path"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_q21_the_passive_side_sends_data_between_ack_and_fin() -> None:
    out = _outcome(answer(21))
    assert out["ack_and_fin_separate"] and out["client_bytes_after_its_fin"] > 0
    assert out["ack_of_fin_at"] < out["server_fin_at"]


def test_q23_a_lost_fin_is_sent_again_by_the_retransmission_timer() -> None:
    doc = answer(23)
    assert [r[2:] for r in _timeline(doc)] == [("fin", 2, 1.0)]
    assert _ends(doc)["client"]["cause"] == "2MSL timer expired"


def test_q23_every_fin_lost_on_linux_the_orphan_gives_up() -> None:
    doc = answer(23, 1)
    rows = doc["meta"]["findings"]["timeline"]
    # the first copy is a tail loss probe (RFC 8985, two round trips after the FIN, no
    # back-off); then the retransmission timer sends it 8 times: tcp_orphan_retries 0
    # means 8
    assert [r["copy"] for r in rows if "probe" in r] == [2]
    fins = [r for r in _timeline(doc) if r[2] == "fin" and r[4] is not None]
    assert len(fins) == 8
    assert "tcp_orphan_retries" in _ends(doc)["client"]["cause"]
    # the server never hears of it: still waiting, half-open
    waited = doc["meta"]["findings"]["outcome"]["waited"]
    assert [w["host"] for w in waited] == ["server"]


def test_q24_a_lost_ack_of_the_fin_the_fin_comes_again() -> None:
    rows = _timeline(answer(24))
    assert rows[0][1:] == ("client", "fin", 2, 1.0)
    assert rows[1][1:4] == ("server", "fin-ack", 2) and rows[1][4] is None


def test_q26_a_lost_second_fin_last_ack_sends_it_again() -> None:
    doc = answer(26)
    assert [r[1:] for r in _timeline(doc)] == [("server", "fin2", 2, 1.0)]
    assert _ends(doc)["server"]["cause"] == "our FIN acknowledged in LAST-ACK"


def test_q27_a_lost_last_ack_time_wait_acks_again_and_restarts() -> None:
    doc = answer(27)
    rows = _timeline(doc)
    assert rows[0][1:] == ("server", "fin2", 2, 1.0)
    assert rows[1][1:4] == ("client", "last-ack", 2)
    arms = _timer_arms(doc, "client", "time-wait")
    assert len(arms) == 2 and arms[1] - arms[0] == pytest.approx(1.0)  # 2MSL started again
    assert _ends(doc)["client"]["t"] == pytest.approx(arms[1] + 60.0)


def test_q28_linux_time_wait_is_60_s_whatever_the_msl() -> None:
    linux = answer(28)
    assert linux["meta"]["findings"]["answers"]["closed_after_first_fin"]["client"] == 60.3
    model = answer(28, 1)  # the model: 2 * MSL = 10 s
    assert model["meta"]["findings"]["answers"]["closed_after_first_fin"]["client"] == 10.3


def test_q29_without_time_wait_an_old_segment_corrupts_a_new_connection() -> None:
    out = _outcome(answer(29))
    assert out["stale_handled_by_client"] == "accepted by the new connection"
    assert out["corrupted_bytes"] > 0
    lost_ack = _outcome(answer(29, 1))
    assert lost_ack["server_closed_cause"] == "RST in LAST-ACK"
    assert not lost_ack["server_clean_close"]


def test_q31_simultaneous_close_both_sides_through_closing_to_time_wait() -> None:
    out = _outcome(answer(31))
    assert "CLOSING" in out["client_path"] and "CLOSING" in out["server_path"]
    assert out["both_time_wait"]


def test_q36_so_reuseaddr_on_both_sockets_lets_the_server_restart() -> None:
    both = _outcome(answer(36))
    assert both["restart_bind"] == "ok" and both["live_listener_bind"] == "EADDRINUSE"
    new_only = _outcome(answer(36, 1))
    assert new_only["restart_bind"] == "EADDRINUSE"
    assert new_only["restart_after_time_wait"] == "ok"


def test_q37_the_side_that_closes_first_holds_the_time_waits() -> None:
    out = _outcome(answer(37))
    n = out["requests_per_mode"]
    assert out["peak_server_time_wait"]["server-close"] == n
    assert out["peak_server_time_wait"]["client-close"] == 0
    assert out["peak_client_time_wait"]["keep-alive"] <= 1


def test_q40_linux_lets_a_rst_end_time_wait_rfc_1337_does_not() -> None:
    linux = _outcome(answer(40))
    assert linux["assassinated"] and linux["time_wait_seconds"] < 60
    rfc = _outcome(answer(40, 1))
    assert not rfc["assassinated"] and rfc["time_wait_seconds"] == 60.0


# ------------------------------------------------------------------ exam numbers


def _answers(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = doc["meta"]["findings"]["answers"]
    return out


def test_q48_a_syn_with_seq_11220_is_acknowledged_with_11221() -> None:
    a = _answers(answer(48))
    assert a["client_isn"] == 11220 and a["synack_ack"] == 11221


def test_q49_syn_1000_and_fin_5001_mean_4000_bytes() -> None:
    a = _answers(answer(49))
    assert (a["client_isn"], a["client_fin_seq"], a["client_bytes"]) == (1000, 5001, 4000)


def test_q50_rtt_50_ms_msl_800_ms_server_after_75_ms_client_after_1650_ms() -> None:
    a = _answers(answer(50))
    assert a["closed_after_first_fin"] == {"server": 0.075, "client": 1.65}


def test_q51_two_rtts_for_a_request_and_one_and_a_half_to_release() -> None:
    a = _answers(answer(51))
    assert a["rtts_until_answer"] == 2.0 and a["release_rtts"] == 1.5
