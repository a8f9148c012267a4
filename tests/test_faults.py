"""Faults named by the segment's role in the life: parsing, and what each name hits."""

from __future__ import annotations

import pytest

from tcplab.faults import ALL, FaultError, FaultSpec, LifeRoles, install, matches, parse
from tcplab.sim import SimSocket, pair
from tcplab.sim.network import Network
from tcplab.wire import ACK, FIN, PSH, SYN, TcpSegment

C, S = ("192.0.2.1", 40000), ("192.0.2.2", 80)


@pytest.mark.parametrize(("action", "text", "spec"), [
    ("drop", "syn", FaultSpec("drop", "syn")),
    ("drop", "syn:all", FaultSpec("drop", "syn", copies=ALL)),
    ("drop", "server:fin:2", FaultSpec("drop", "fin", "server", 2)),
    ("delay", "syn-ack=1.5", FaultSpec("delay", "syn-ack", seconds=1.5)),
    ("dup", "client:data", FaultSpec("dup", "data", "client")),
])
def test_parse(action: str, text: str, spec: FaultSpec) -> None:
    assert parse(action, text) == spec
    assert parse(action, spec.text().split(" ", 1)[1]) == spec  # text() round-trips


@pytest.mark.parametrize(("action", "text", "says"), [
    ("drop", "synack", "name a segment of the life"),
    ("drop", "syn:0", r":N \(1-1000\) or :all"),
    ("drop", "syn=2", "only --delay takes"),
    ("delay", "syn", "give the delay"),
    ("delay", "syn=nan", "more than 0"),
    ("delay", "syn=-1", "more than 0"),
    ("drop", "syn:all:2", "too many"),
])
def test_bad_faults_say_what_is_wrong(action: str, text: str, says: str) -> None:
    with pytest.raises(FaultError, match=says):
        parse(action, text)


def seg(flags: int, seq: int, ack: int = 0, data: bytes = b"", src: tuple[str, int] = C
        ) -> tuple[tuple[str, int], tuple[str, int], TcpSegment]:
    dst = S if src == C else C
    return src, dst, TcpSegment(src[1], dst[1], seq, ack, flags, 65535, payload=data)


def test_every_segment_of_a_life_gets_its_role() -> None:
    """S, SA, A, request, response (FIN on it: the server closes first), ACK+FIN, ACK."""
    life = LifeRoles()
    exchange = [
        (seg(SYN, 100), ["syn"]),
        (seg(SYN, 100), ["syn"]),  # retransmitted: still the SYN
        (seg(SYN | ACK, 500, 101, src=S), ["syn-ack"]),
        (seg(ACK, 101, 501), ["ack"]),
        (seg(ACK | PSH, 101, 501, b"GET"), ["data"]),
        (seg(ACK | PSH | FIN, 501, 104, b"OK", src=S), ["fin"]),
        (seg(ACK, 104, 504), ["fin-ack"]),
        (seg(ACK | FIN, 104, 504), ["fin2"]),
        (seg(ACK, 504, 105, src=S), ["last-ack"]),
        (seg(ACK | FIN, 104, 504), ["fin2"]),   # the FIN again (its ACK was lost)
        (seg(ACK, 504, 105, src=S), ["last-ack"]),  # and its ACK again, from TIME-WAIT
    ]
    for (src, dst, s), want in exchange:
        assert [r for r, _side in life.roles(src, dst, s)] == want, s.summary()


def test_a_new_syn_on_the_same_4_tuple_starts_the_next_life() -> None:
    """The 4-tuple is used again (the server closed first, or the client rebooted): a SYN
    with another ISN is the first SYN of a new life, not a copy of the old one."""
    life = LifeRoles()
    first = [(seg(SYN, 100), ["syn"]), (seg(SYN | ACK, 500, 101, src=S), ["syn-ack"]),
             (seg(ACK, 101, 501), ["ack"]), (seg(ACK | PSH, 101, 501, b"GET"), ["data"])]
    for (src, dst, s), want in first:
        assert [r for r, _side in life.roles(src, dst, s)] == want, s.summary()
        assert life.life(src, dst) == 0
    again = [(seg(SYN, 250_100), ["syn"]), (seg(SYN, 250_100), ["syn"]),
             (seg(SYN | ACK, 900, 250_101, src=S), ["syn-ack"]),
             (seg(ACK, 250_101, 901), ["ack"]), (seg(ACK | PSH, 250_101, 901, b"GET"), ["data"])]
    for (src, dst, s), want in again:
        assert [r for r, _side in life.roles(src, dst, s)] == want, s.summary()
        assert life.life(src, dst) == 1


def test_a_side_prefix_picks_that_side_s_fin() -> None:
    assert matches(FaultSpec("drop", "fin", "server"), [("fin2", "server")])
    assert not matches(FaultSpec("drop", "fin", "client"), [("fin2", "server")])
    assert not matches(FaultSpec("drop", "fin"), [("fin2", "server")])


def life_on(net: Network) -> None:
    client, server = net.hosts["client"], net.hosts["server"]
    srv = SimSocket(net, server)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, client)
    cli.connect(("192.0.2.2", 80))
    conn, _ = srv.accept()
    cli.sendall(b"GET")
    assert conn.recv(10) == b"GET"
    cli.close()
    assert conn.recv(10) == b""
    conn.close()
    net.run()


def sends(net: Network, host: str, flags: str) -> list[float]:
    return [e["t"] for e in net.trace.segments() if e["host"] == host and e["flags"] == flags]


def test_drop_last_ack_resends_the_fin_and_restarts_time_wait() -> None:
    net, _c, _s = pair(1, delay=0.05)
    done = install(net, [parse("drop", "last-ack")])
    life_on(net)
    assert len(sends(net, "server", "FA")) == 2 and done.applied == [1]
    arms = [e for e in net.trace.of_kind("timer")
            if e["host"] == "client" and e["timer"] == "time-wait" and e["action"] == "armed"]
    assert len(arms) == 2  # TIME-WAIT restarted by the FIN that came again


def test_drop_syn_all_times_out() -> None:
    net, _c, _s = pair(1, delay=0.05)
    install(net, [parse("drop", "syn:all")])
    srv = SimSocket(net, net.hosts["server"])
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, net.hosts["client"])
    with pytest.raises(TimeoutError):
        cli.connect(("192.0.2.2", 80))
    assert len(sends(net, "client", "S")) == 7


def test_a_fault_that_never_matched_is_reported() -> None:
    net, _c, _s = pair(1, delay=0.05)
    done = install(net, [parse("drop", "server:data")])
    life_on(net)  # the server never sends data
    assert done.never_matched() == [FaultSpec("drop", "data", "server")]
