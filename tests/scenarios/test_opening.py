"""Opening scenarios, each with and without its switch; outcomes from the JSON trace."""

from __future__ import annotations

from tcplab.scenarios.base import Switches

TWO_WAY = Switches(two_way_handshake=True)


def test_handshake_three_segments_third_carries_data(outcome):
    o = outcome("handshake")
    assert o["first_segments"] == ["S", "SA", "PA"]
    assert o["synack_acks_client_isn"] and o["third_acks_server_isn"]
    assert o["third_segment_data"] > 0
    assert o["client_path"] == ["CLOSED", "SYN-SENT", "ESTABLISHED"]
    assert o["server_path"] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]  # RFC 9293 Figure 5
    assert not o["server_established_before_third_segment"]


def test_handshake_two_way_server_established_before_third_segment(outcome):
    assert outcome("handshake", TWO_WAY)["server_established_before_third_segment"]


def test_handshake_isns_depend_on_seed(outcome):
    assert outcome("handshake", seed=1)["client_isn"] != outcome("handshake", seed=2)["client_isn"]


def test_old_duplicate_syn_reset_and_back_to_listen(outcome):
    o = outcome("old-duplicate-syn")
    assert o["client_reset_old_synack"]
    assert o["server_path"][:3] == ["LISTEN", "SYN-RECEIVED", "LISTEN"]
    assert o["connections_accepted"] == 1
    assert o["server_app_read"] == ["GET /balance"]
    assert not o["old_data_committed"]
    assert o["client_established"]


def test_old_duplicate_syn_two_way_commits_old_data(outcome):
    o = outcome("old-duplicate-syn", TWO_WAY)
    assert not o["server_back_to_listen"]
    assert o["connections_accepted"] == 2
    assert o["old_data_committed"]
    assert o["server_app_read"][0] == "PAY 100 TO MALLORY"


def test_isn_sync_three_segments(outcome):
    o = outcome("isn-sync")
    assert o["client_isn_acked_by_segment"] == 2
    assert o["server_isn_acked_by_segment"] == 3
    assert o["segments_until_both_isns_acked"] == 3


def test_isn_sync_four_segment_variant_costs_one_more(outcome):
    o = outcome("isn-sync", Switches(four_segment=True))
    assert o["segments_until_both_isns_acked"] == 4
    assert o["flags"] == ["S", "S", "A", "SA"]
    assert o["client_path"] == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def test_syn_retransmit_three_way_only_short_half_open_entries(outcome):
    o = outcome("syn-retransmit")
    assert o["syns_reaching_server"] == 3
    assert o["server_half_open_peak"] == 1
    assert o["server_established"] == 1
    assert o["connections_accepted"] == 1


def test_syn_retransmit_two_way_one_connection_per_duplicate(outcome):
    o = outcome("syn-retransmit", TWO_WAY)
    assert o["server_established"] == o["syns_reaching_server"] == 3
    assert o["connections_accepted"] == 3


def test_syn_flood_locks_out_the_client(outcome):
    o = outcome("syn-flood")
    assert o["syn_cookies_sent"] == 0
    assert o["client_syn_fates"] and all("queue full" in r for r in o["client_syn_fates"])
    assert o["client_connect"] == "timeout"
    assert not o["server_app_read_request"]


def test_syn_flood_with_cookies_client_connects(outcome):
    o = outcome("syn-flood", Switches(syn_cookies=True))
    assert o["syn_cookies_sent"] > 0
    assert o["client_connect"] == "ok"
    assert o["server_app_read_request"]


def test_simultaneous_open_four_segments_no_listener(outcome):
    o = outcome("simultaneous-open")
    for side in ("A_path", "B_path"):
        assert o[side] == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert len(o["segments"]) == 4
    assert not o["listener_used"]
