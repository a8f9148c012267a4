"""The fastopen scenario (RFC 7413), read as packet exchanges: the cookie, data in the SYN,
and what the Linux bit mask net.ipv4.tcp_fastopen changes."""

from __future__ import annotations

from typing import Any

from tcplab.render.narrate import Narrator
from tcplab.scenarios import get
from tcplab.scenarios.base import Switches, execute

LINUX = Switches(profile="linux")


def run(sw: Switches) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    result = execute(get("fastopen"), 1, sw)
    return list(result.net.trace), result.outcome


def syns(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "segment" and e["event"] == "send"
            and e["flags"] == "S"]


def test_linux_default_bit_mask_1_makes_no_server_the_cookie_request_is_ignored() -> None:
    # tcp_fastopen=1 (Linux's default) on both hosts: clients may ask, no server answers.
    events, out = run(Switches(profile="linux", sysctls=("net.ipv4.tcp_fastopen=1",)))
    first, second = syns(events)
    # both ask; after a request went unanswered Linux asks in the experimental format
    # (option 254, magic 0xF989) in case a middlebox strips option 34
    assert "FO" in first["opts"] and "FOEXP" in second["opts"]
    assert out["cookie_from_server"] is None and second["len"] == 0
    assert (out["first_answer_rtts"], out["second_answer_rtts"]) == (2, 2)


def test_the_rfc_profile_runs_the_same_exchange() -> None:
    _, out = run(Switches())
    assert out["second_syn_carries_cookie"] and out["second_read_in"] == "SYN-RECEIVED"
    assert out["second_answer_rtts"] == 1


def test_the_data_syn_is_narrated_as_fast_open_not_as_a_stale_or_held_segment() -> None:
    narrator = Narrator(run(LINUX)[0], "en")
    events = narrator.events
    data_syn = syns(events)[1]
    line = narrator.why(data_syn) or ""
    assert "Fast Open cookie" in line and "before the handshake ends" in line
    assert "earlier connection" not in line and "held until" not in line
    synack = next(e for e in events if e["kind"] == "segment" and e["event"] == "send"
                  and e["flags"] == "SA" and e["t"] >= data_syn["t"])
    assert f"the {data_syn['len']} bytes of data the SYN carried" in \
        (narrator.why(synack) or "")
    first_synack = next(e for e in events if e["kind"] == "segment" and e["flags"] == "SA")
    assert "cookie" in (narrator.why(first_synack) or "")
