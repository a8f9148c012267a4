"""Closing scenarios, each with and without its switch; outcomes from the JSON trace."""

from __future__ import annotations

import pytest

from tcplab.scenarios.base import Switches

NO_TW = Switches(time_wait=0.0)


def test_close_four_segments_and_two_msl(outcome):
    o = outcome("close")
    assert o["client_path"][-4:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    assert o["server_path"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert o["close_segments"] == ["client:FA", "server:A", "server:FA", "client:A"]
    assert o["time_wait_seconds"] == 60.0


def test_close_without_time_wait(outcome):
    o = outcome("close", NO_TW)
    assert o["time_wait_seconds"] == 0.0
    assert o["time_wait_timer_arms"] == 0


def test_half_close_server_keeps_sending_in_close_wait(outcome):
    o = outcome("half-close")
    assert o["server_data_segments_in_close_wait"] == 3
    assert o["client_bytes_after_its_fin"] == o["server_bytes_in_close_wait"] > 0
    assert o["ack_and_fin_separate"]
    assert o["server_fin_at"] - o["ack_of_fin_at"] > 0.5


def test_close_combined_three_segments(outcome):
    o = outcome("close-combined")
    assert o["close_segments"] == ["client:FA", "server:FA", "client:A"]
    assert o["server_path"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


@pytest.mark.parametrize("profile", ["rfc", "linux"])
def test_close_combined_three_segments_then_four_with_quickack(outcome, profile):
    delayed = outcome("close-combined", Switches(profile=profile))
    assert delayed["close_segments"] == ["client:FA", "server:FA", "client:A"]
    quick = outcome("close-combined", Switches(profile=profile, variant="quickack"))
    # TCP_QUICKACK sends the pending ACK of the FIN before close(): it cannot ride on the FIN
    assert quick["close_segments"] == ["client:FA", "server:A", "server:FA", "client:A"]
    assert quick["server_path"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_simultaneous_close_closing_on_both_sides(outcome):
    o = outcome("simultaneous-close")
    for side in ("client_path", "server_path"):
        assert o[side][-4:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT", "CLOSED"]
    assert o["both_time_wait"]


def test_lost_final_ack_fin_retransmitted_and_2msl_restarted(outcome):
    o = outcome("lost-final-ack")
    assert o["last_ack_lost"]
    assert o["server_fin_transmissions"] == 2
    assert o["time_wait_timer_arms"] == 2
    assert o["time_wait_restarted_for"] == 60.0
    assert o["time_wait_seconds"] > 60.0
    assert o["server_clean_close"]
    assert o["client_answered_rst"] == 0


def test_lost_final_ack_without_time_wait_ends_in_reset(outcome):
    o = outcome("lost-final-ack", NO_TW)
    assert o["server_fin_transmissions"] == 2
    assert o["client_answered_rst"] == 1
    assert not o["server_clean_close"]
    assert o["server_closed_cause"] == "RST in LAST-ACK"
