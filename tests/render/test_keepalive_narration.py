"""A keep-alive probe is narrated as one (SEG.SEQ = SND.NXT - 1), not as a plain ACK."""

from __future__ import annotations

from itertools import pairwise

from tcplab.i18n import text
from tcplab.render.conns import Connections
from tcplab.render.narrate import Narrator, RunInfo
from tcplab.scenarios import get
from tcplab.scenarios.base import Switches, execute


def test_the_nine_probes_of_a_crashed_peer_are_called_keep_alive_probes() -> None:
    events = execute(get("host-crash"), 1, Switches(profile="linux")).events
    conns = Connections(events)
    probes = [e for e in events if e["kind"] == "segment" and e["event"] == "send"
              and (info := conns.info(e)) is not None and info.keepalive]
    assert len(probes) == 9
    assert all(e["flags"] == "A" and e["len"] == 0 and e["host"] == "server" for e in probes)
    gaps = {round(b["t"] - a["t"], 6) for a, b in pairwise(probes)}
    assert gaps == {75.0}                       # tcp_keepalive_intvl
    for lang in ("en", "zh"):
        nar = Narrator(events, lang, RunInfo())
        said = [nar.why(e) for e in probes]
        assert all(s and s.startswith(text("seg.keepalive", lang)) for s in said), said[:1]


def test_an_ordinary_ack_is_not_a_probe() -> None:
    events = execute(get("close"), 1).events
    conns = Connections(events)
    assert not any((info := conns.info(e)) is not None and info.keepalive for e in events
                   if e["kind"] == "segment")
