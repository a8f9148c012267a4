"""TIME-WAIT scenarios, each with and without its switch; outcomes from the JSON trace."""

from __future__ import annotations

from tcplab.scenarios.base import Switches


def test_stale_segment_absorbed_by_time_wait(outcome):
    o = outcome("stale-segment")
    assert o["reconnect_attempts"] == ["EADDRNOTAVAIL", "ok"]
    assert "TIME-WAIT" in o["stale_handled_by_client"]
    assert o["client_received"] == o["server_sent"]
    assert o["corrupted_bytes"] == 0


def test_stale_segment_without_time_wait_corrupts_the_new_connection(outcome):
    o = outcome("stale-segment", Switches(time_wait=0.0))
    assert o["reconnect_attempts"] == ["ok"]
    assert o["stale_handled_by_client"] == "accepted by the new connection"
    assert o["client_received"].startswith("STALE BYTES OF THE OLD CONNECTION!")
    assert len(o["client_received"]) == len(o["server_sent"])
    assert o["corrupted_bytes"] > 0


def test_rst_in_time_wait_ignored_rfc1337(outcome):
    o = outcome("rst-in-time-wait")
    assert o["server_sent_rst"]
    assert o["rst_in_time_wait"] == ["RST in TIME-WAIT ignored (RFC 1337)"]
    assert o["time_wait_seconds"] == 60.0
    assert not o["assassinated"]


def test_rst_in_time_wait_assassinated_without_rfc1337(outcome):
    o = outcome("rst-in-time-wait", Switches(rfc1337=False))
    assert o["assassinated"]
    assert o["time_wait_seconds"] < 10.0


def test_port_reuse_with_reuseaddr_on_both_sockets(outcome):
    o = outcome("port-reuse")
    assert o["server_time_wait"]
    assert o["live_listener_bind"] == "EADDRINUSE"
    assert o["restart_bind"] == "ok"
    assert o["restart_after_time_wait"] is None


def test_port_reuse_new_socket_only_is_not_enough(outcome):
    o = outcome("port-reuse", Switches(reuseaddr="new-only"))
    assert o["live_listener_bind"] == "EADDRINUSE"
    assert o["restart_reuseaddr"]
    assert o["restart_bind"] == "EADDRINUSE"
    assert "both" in o["restart_refused_because"]
    assert o["restart_after_time_wait"] == "ok"


def test_port_reuse_without_reuseaddr(outcome):
    o = outcome("port-reuse", Switches(reuseaddr="none"))
    assert o["restart_bind"] == "EADDRINUSE"
    assert o["restart_after_time_wait"] == "ok"


def test_server_close_storm_time_wait_lands_on_the_closer(outcome):
    o = outcome("server-close-storm")
    n = o["requests_per_mode"]
    assert o["peak_server_time_wait"] == {"server-close": n, "client-close": 0, "keep-alive": 0}
    assert o["peak_client_time_wait"] == {"server-close": 0, "client-close": n, "keep-alive": 1}
    last = o["table"][-1]
    assert last["server-close"] == 0  # every entry expires after 60 s


def test_server_close_storm_without_time_wait(outcome):
    o = outcome("server-close-storm", Switches(time_wait=0.0))
    assert set(o["peak_server_time_wait"].values()) == {0}
