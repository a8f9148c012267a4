"""FIN-WAIT-2, a FIN out of order, a CLOSE-WAIT leak: packet exchanges and timelines read
back from the JSON trace (the outcome is computed from that trace too)."""

from __future__ import annotations

import io
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


def wire(segs: list[dict[str, Any]]) -> list[str]:
    """Segments as "host:flags", the way a capture reads."""
    return [f"{e['host']}:{e['flags']}" for e in segs]


def entered(events: list[dict[str, Any]], host: str, state: str) -> list[float]:
    return [e["t"] for e in events if e["kind"] == "state" and e["host"] == host
            and e["to"] == state and not e["conn"].endswith("-*:*")]


# ---------------------------------------------------------------- fin-wait-2


@pytest.mark.parametrize("profile", ["linux", "rfc"])
def test_fin_wait_2_after_close_ends_silently_after_tcp_fin_timeout(outcome, trace_json,
                                                                   profile):
    sw = Switches(profile=profile)
    o = outcome("fin-wait-2", sw)
    assert o["client_path"][-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]
    assert o["fin_wait_2_timer"] == 60.0 == o["fin_wait_2_seconds"]
    assert o["fin_wait_2_ended_by"] == "FIN-WAIT-2 timeout (orphaned connection)"
    ev = events_of(trace_json, "fin-wait-2", sw)
    fw2 = entered(ev, "client", "FIN-WAIT-2")[0]
    gone = next(e["t"] for e in ev if e["kind"] == "state" and e["host"] == "client"
                and e["from"] == "FIN-WAIT-2")
    # the timeout sends nothing: no client segment between FIN-WAIT-2 and the server's late FIN
    late_fin = next(e for e in sends(ev, "server") if "F" in e["flags"])
    assert not [e for e in sends(ev, "client") if fw2 <= e["t"] < late_fin["t"]]
    assert gone == pytest.approx(fw2 + 60.0)
    # the late FIN finds nothing: RST, and the server ends in error
    assert wire(sends(ev, since=late_fin["t"])) == ["server:FA", "client:R"]
    assert o["server_closed_cause"] == "RST in LAST-ACK"


def test_fin_wait_2_timeout_is_tcp_fin_timeout(outcome):
    o = outcome("fin-wait-2", Switches(profile="linux",
                                       sysctls=("net.ipv4.tcp_fin_timeout=20",)))
    assert o["fin_wait_2_timer"] == 20.0 == o["fin_wait_2_seconds"]
    assert o["server_fin_answered_with"] == "R"


def test_fin_wait_2_after_shutdown_waits_for_the_peer(outcome, trace_json):
    sw = Switches(profile="linux", variant="shutdown")
    o = outcome("fin-wait-2", sw)
    assert o["fin_wait_2_timer"] is None            # no timer: the socket is not orphaned
    assert o["fin_wait_2_seconds"] > 60.0           # longer than tcp_fin_timeout
    assert o["fin_wait_2_ended_by"] == "FIN received in FIN-WAIT-2"
    ev = events_of(trace_json, "fin-wait-2", sw)
    late_fin = next(e for e in sends(ev, "server") if "F" in e["flags"])
    assert wire(sends(ev, since=late_fin["t"])) == ["server:FA", "client:A"]
    assert o["client_path"][-3:] == ["FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    assert o["server_closed_cause"] == "our FIN acknowledged in LAST-ACK"


# ---------------------------------------------------------------- fin-out-of-order


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_fin_out_of_order_waits_for_the_hole(outcome, trace_json, sw):
    o = outcome("fin-out-of-order", sw)
    assert o["fin_before_missing_data"]
    ev = events_of(trace_json, "fin-out-of-order", sw)
    # the timeline at the client: FIN arrives, still FIN-WAIT-2; hole filled; TIME-WAIT
    assert o["fin_arrived_at"] < o["missing_data_arrived_at"] == o["fin_processed_at"]
    assert entered(ev, "client", "TIME-WAIT") == [o["missing_data_arrived_at"]]
    assert o["fin_waited"] == pytest.approx(o["missing_data_arrived_at"] - o["fin_arrived_at"])
    # while it waits, every ACK points at the first missing byte
    assert o["acks_while_waiting"] >= 1 and o["acks_stay_at_the_hole"]
    # the FIN is acknowledged only once the hole is filled, and the bytes come out in order
    assert o["fin_acked_at"] == o["missing_data_arrived_at"]
    assert o["client_read_in_order"]
    # the FIN alone beyond the hole gets its duplicate ACK at once (RFC 5681 4.2), as the
    # out-of-order data before it did; the hole filled, one ACK covers the data and the FIN
    acks = [e for e in sends(ev, "client") if e["flags"] == "A"]
    ooo = [e for e in ev if e["kind"] == "segment" and e["event"] == "send"
           and e["host"] == "server" and e.get("t_arrive") == o["fin_arrived_at"]]
    assert [e["flags"] for e in ooo] == ["PA", "FA"]   # the second data segment, the FIN
    assert len([e for e in acks if e["t"] == o["fin_arrived_at"]]) == 2
    assert len([e for e in acks if e["t"] == o["missing_data_arrived_at"]]) == 1
    assert o["client_path"][-4:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]


# ---------------------------------------------------------------- close-wait-leak


@pytest.mark.parametrize("sw", [Switches(), LINUX], ids=["rfc", "linux"])
def test_close_wait_leak_new_syn_gets_an_ack_then_the_clients_rst_clears_it(
        outcome, trace_json, sw):
    o = outcome("close-wait-leak", sw)
    assert o["client_fin_wait_2_ended_by"] == "FIN-WAIT-2 timeout (orphaned connection)"
    ev = events_of(trace_json, "close-wait-leak", sw)
    again = next(e for e in events_of(trace_json, "close-wait-leak", sw)
                 if e["kind"] == "note" and e.get("key") == "leak.reconnect")
    # SYN -> challenge ACK (old numbers) -> RST at exactly RCV.NXT -> SYN again -> SYN-ACK
    after = sends(ev, since=again["t"])
    assert wire(after)[:5] == ["client:S", "server:A", "client:R", "client:S", "server:SA"]
    syn, ack, rst = after[0], after[1], after[2]
    assert ack["ack"] != (syn["seq"] + 1) & 0xFFFFFFFF  # not an answer to this SYN
    assert rst["seq"] == ack["ack"]
    assert o["first_syn_handled_as"] == "SYN outside window (RFC 5961 4.2): challenge ACK"
    assert o["close_wait_answered_syn_with"] == "A" and o["close_wait_answers"] == 1
    assert o["leak_ended_by"] == "RST in CLOSE-WAIT"
    assert o["server_path"][-2:] == ["CLOSE-WAIT", "CLOSED"]
    # connected one retransmission timeout later; on Linux the SYN timer is re-armed at
    # TCP_TIMEOUT_MIN after that RST (measured: the SYN again 8 ms later on 6.18 at HZ=250)
    assert o["reconnect"] == "ok"
    if sw.profile == "linux":
        assert o["reconnect_seconds"] == pytest.approx(2 * 0.1 + 0.002)
    else:
        assert 1.0 <= o["reconnect_seconds"] < 2.0


def test_close_wait_leak_without_challenge_acks_the_syns_are_ignored(outcome, trace_json):
    sw = Switches(profile="linux", variant="no-challenge-ack")
    o = outcome("close-wait-leak", sw)
    assert o["close_wait_answered_syn_with"] is None and o["close_wait_answers"] == 0
    assert o["syns_ignored"] == o["reconnect_syns"] > 1
    assert o["reconnect"] == "ETIMEDOUT"
    assert o["server_state_at_end"] == "CLOSE-WAIT"
    ev = events_of(trace_json, "close-wait-leak", sw)
    again = next(e for e in ev if e["kind"] == "note" and e.get("key") == "leak.reconnect")
    assert set(wire(sends(ev, since=again["t"]))) == {"client:S"}
