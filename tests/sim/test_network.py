"""The simulator: integrity under faults, exact TIME-WAIT, determinism, fault rules."""

from __future__ import annotations

import io
import json

import pytest

from tcplab.engine.config import TcpConfig
from tcplab.sim import Fault, LinkSpec, Network, SimSocket, connected, listening, pair
from tcplab.sim.workloads import bidirectional_transfer

FAULTY = LinkSpec(delay=0.01, jitter=0.005, loss=0.10, reorder=0.10, duplicate=0.05,
                  corrupt=0.02)
MIB = 1 << 20


@pytest.mark.parametrize("seed", range(100))
def test_one_mib_each_way_arrives_byte_exact_under_faults(seed: int) -> None:
    # 10% loss, 10% reordering, 5% duplication, 2% corruption, both directions at once.
    r = bidirectional_transfer(seed, MIB, FAULTY, time_limit=3600.0)
    assert r.intact, (len(r.got_c2s), len(r.got_s2c))
    assert (r.client_state, r.server_state) == ("CLOSED", "CLOSED")
    assert r.client_error is None and r.server_error is None
    assert r.virtual_time < 3600.0  # bounded: no hang, ever


def test_corrupted_segments_fail_the_checksum_and_are_traced() -> None:
    net, _c, s = pair(seed=7, delay=0.01, corrupt=0.3)
    cli, peer = connected(net, listening(net, s))
    cli.sendall(b"x" * 20000)
    got = b""
    while len(got) < 20000:
        got += peer.recv(65536)
    assert got == b"x" * 20000
    corrupted = [e for e in net.trace.segments() if e["fate"] == "corrupted"]
    drops = [e for e in net.trace.of_kind("segment")
             if e["event"] == "drop" and e.get("reason") == "bad checksum"]
    assert corrupted, "the link corrupted nothing"
    # Every corrupted packet that reached the host failed its checksum there, and nothing else did.
    assert {d["id"] for d in drops} == {e["id"] for e in corrupted}


def _close_run(drop_last_ack: bool) -> Network:
    net, _c, s = pair(seed=3, delay=0.05)
    if drop_last_ack:
        # Lose the client's ACK of the server's FIN: the last segment of the close.
        net.add_fault(Fault("drop", lambda p: p.src_host == "client" and p.flags == "A"
                            and p.seg.ack != 0 and _acks_fin(net, p.seg.ack), name="last ACK"))
    cli, peer = connected(net, listening(net, s))
    cli.close()
    assert peer.recv(10) == b""
    peer.close()
    net.run()
    return net


def _acks_fin(net: Network, ack: int) -> bool:
    fins = [e for e in net.trace.segments() if e["host"] == "server" and "F" in e["flags"]]
    return any((f["seq"] + 1) & 0xFFFFFFFF == ack for f in fins)


def test_time_wait_lasts_exactly_two_msl_after_the_last_ack() -> None:
    net = _close_run(drop_last_ack=False)
    tr = net.trace
    last_ack = [e for e in tr.segments() if e["host"] == "client" and e["flags"] == "A"][-1]
    tw_in = next(e for e in tr.of_kind("state") if e["host"] == "client" and e["to"] == "TIME-WAIT")
    tw_out = next(e for e in tr.of_kind("state") if e["host"] == "client"
                  and e["from"] == "TIME-WAIT")
    assert tw_in["t"] == last_ack["t"]
    assert tw_out["to"] == "CLOSED"
    assert tw_out["t"] - last_ack["t"] == pytest.approx(2 * 30.0, abs=1e-9)


def test_retransmitted_fin_restarts_time_wait() -> None:
    net = _close_run(drop_last_ack=True)
    tr = net.trace
    client_acks = [e for e in tr.segments() if e["host"] == "client" and e["flags"] == "A"
                   and _acks_fin(net, e["ack"])]
    assert client_acks[0]["fate"] == "dropped"
    server_fins = [e for e in tr.segments() if e["host"] == "server" and "F" in e["flags"]]
    assert len(server_fins) == 2  # LAST-ACK retransmitted its FIN
    second_ack = client_acks[1]
    assert second_ack["fate"] == "delivered"
    tw_out = next(e for e in tr.of_kind("state") if e["host"] == "client"
                  and e["from"] == "TIME-WAIT")
    # 2MSL counted again from the ACK of the retransmitted FIN, not from the first ACK.
    assert tw_out["t"] - second_ack["t"] == pytest.approx(60.0, abs=1e-9)
    assert tw_out["t"] - client_acks[0]["t"] > 60.0
    assert tr.states("server")[-1] == "CLOSED"


def _json(net: Network) -> str:
    buf = io.StringIO()
    net.trace.dump_json(buf)
    return buf.getvalue()


def test_same_seed_same_trace_byte_for_byte() -> None:
    def run(seed: int) -> str:
        net = Network(seed)
        c = net.add_host("client", "192.0.2.1")
        s = net.add_host("server", "192.0.2.2")
        net.link(c, s, LinkSpec(delay=0.02, jitter=0.01, loss=0.2, duplicate=0.1, reorder=0.1))
        cli, peer = connected(net, listening(net, s))
        cli.sendall(b"abc" * 3000)
        cli.close()
        got = b""
        while True:
            d = peer.recv(4096)
            if not d:
                break
            got += d
        peer.close()
        net.run()
        return _json(net)

    a, b, other = run(11), run(11), run(12)
    assert a == b
    assert a != other
    assert json.loads(a)["events"]


def test_fault_rules_target_single_segments() -> None:
    net, c, s = pair(seed=1, delay=0.01)
    delay = net.add_fault(Fault("delay", lambda p: p.src_host == "client" and p.flags == "S",
                                delay=2.5, name="hold the first SYN"))
    dup = net.add_fault(Fault("duplicate", lambda p: p.src_host == "client" and p.seg.payload != b"",
                              nth=3))
    srv = SimSocket(net, s)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, c)
    cli.connect(("192.0.2.2", 80))
    syns = [e for e in net.trace.segments() if e["flags"] == "S"]
    assert syns[0]["t_arrive"] - syns[0]["t"] == pytest.approx(2.51)
    assert len(syns) == 2  # the RTO (1 s) fired before the held SYN arrived
    assert delay.applied == 1
    peer, _ = srv.accept()
    cli.setsockopt(6, 1, 1)  # TCP_NODELAY: one segment per send
    for i in range(5):
        cli.send(bytes([65 + i]) * 10)
        net.run_for(0.1)
    data = [e for e in net.trace.segments() if e["host"] == "client" and e["len"]]
    assert [e["fate"] for e in data[:5]].count("duplicated") == 1
    assert data[2]["fate"] == "duplicated"
    assert dup.applied == 1
    got = b""
    while len(got) < 50:
        got += peer.recv(100)
    assert got == b"A" * 10 + b"B" * 10 + b"C" * 10 + b"D" * 10 + b"E" * 10


def test_segments_older_than_msl_die_in_the_network() -> None:
    net, c, s = pair(seed=2, delay=0.01, msl=5.0)
    net.add_fault(Fault("delay", lambda p: p.flags == "S", delay=6.0, count=10))
    srv = SimSocket(net, s)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = SimSocket(net, c)
    cli.settimeout(4.0)
    with pytest.raises(TimeoutError):
        cli.connect(("192.0.2.2", 80))
    net.run_for(10)
    dead = [e for e in net.trace.segments() if e.get("reason") == "exceeded MSL in the network"]
    assert dead and all(e["flags"] == "S" for e in dead)


def test_sixty_second_time_wait_costs_milliseconds() -> None:
    import time

    t0 = time.perf_counter()
    net = _close_run(drop_last_ack=False)
    assert net.now > 60.0
    assert time.perf_counter() - t0 < 1.0


def test_host_config_msl_drives_time_wait_length() -> None:
    cfg = TcpConfig(msl=2.0)
    net, _c, s = pair(seed=5, delay=0.01, client_config=cfg, server_config=TcpConfig(msl=2.0))
    cli, peer = connected(net, listening(net, s))
    cli.close()
    peer.recv(1)
    peer.close()
    net.run()
    tw = [e for e in net.trace.of_kind("timer") if e["timer"] == "time-wait"]
    assert tw[0]["action"] == "armed" and tw[-1]["action"] == "fired"
    assert tw[-1]["t"] - tw[0]["t"] == pytest.approx(4.0)
