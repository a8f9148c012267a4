"""The parts of a Linux lesson that need no root: the wire's rules and timing, each
segment's fate, which tracepoint records are the lesson's, the sysctl table, and the
comparison of two traces.

The wire is tested in the peers' voice: its two ends are datagram socket pairs standing
in for TUN devices (one packet per read and write, as TUN gives), the test plays both
kernels, writes a life's segments in order and reads what arrives on the other side,
and when.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tcplab.engine.profiles import ConfigError, configured
from tcplab.faults import parse
from tcplab.kernel.tracefs import TraceRecord
from tcplab.onlinux.compare import differences
from tcplab.onlinux.lessons import LessonError, lesson_for, linux_sysctls, syn_budget
from tcplab.onlinux.middlebox import Middlebox, Passage, Rule, rule_of
from tcplab.onlinux.run import Owners, _fates, kernel_filters
from tcplab.onlinux.testbed import CLIENT_ADDR, SERVER_ADDR, End, sysctl_writes
from tcplab.scenarios.base import Switches
from tcplab.scenarios.demo import run_demo
from tcplab.trace import Event
from tcplab.tun.netns import Namespace
from tcplab.wire.ip import emit_ip_tcp, parse_ip_tcp
from tcplab.wire.tcp import ACK, FIN, SYN, TcpSegment

C, S = CLIENT_ADDR, SERVER_ADDR
CP, SP = 40000, 80


def seg(src: str, flags: int, seq: int, ack: int = 0, data: bytes = b"") -> bytes:
    """A packet of the life: client 192.0.2.1:40000, server 192.0.2.2:80."""
    if src == "client":
        return emit_ip_tcp(C, S, TcpSegment(CP, SP, seq, ack, flags, 65535, payload=data))
    return emit_ip_tcp(S, C, TcpSegment(SP, CP, seq, ack, flags, 65535, payload=data))


# The client closes first: SYN, SYN-ACK, ACK, FIN, its ACK, the second FIN, the last ACK.
LIFE = [
    ("client", SYN, 100, 0), ("server", SYN | ACK, 500, 101), ("client", ACK, 101, 501),
    ("client", FIN | ACK, 101, 501), ("server", ACK, 501, 102),
    ("server", FIN | ACK, 501, 102), ("client", ACK, 102, 502),
]


class Wire:
    """A middlebox between two socket pairs; the test holds the kernels' ends."""

    def __init__(self, rules: list[Rule], delay: float = 0.05) -> None:
        self.kernel: dict[str, socket.socket] = {}
        ends: dict[str, int] = {}
        self._mine: list[socket.socket] = []
        for name in ("client", "server"):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            a.setblocking(False)
            self.kernel[name], ends[name] = b, a.fileno()
            self._mine.append(a)
        addrs = {C: "client", S: "server"}
        self.box = Middlebox(ends, delay, rules, time.monotonic_ns, addrs.get)
        self.box.start()
        self.t0 = time.monotonic()

    def send(self, name: str, packet: bytes) -> None:
        """``name``'s kernel sends ``packet``; returns once the wire has read it, so that
        the segments of a life are read in the order they were sent (as between real
        kernels, where a segment answers one that has arrived)."""
        seen = len(self.box.log)
        self.kernel[name].send(packet)
        deadline = time.monotonic() + 5.0
        while len(self.box.log) == seen and time.monotonic() < deadline:
            time.sleep(0.0005)

    def arrivals(self, name: str, within: float) -> list[tuple[float, bytes]]:
        """What reaches ``name`` within ``within`` s, with the time since the start."""
        sock = self.kernel[name]
        out = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                packet = sock.recv(65536)
            except TimeoutError:
                break
            out.append((time.monotonic() - self.t0, packet))
        return out

    def close(self) -> None:
        self.box.stop()
        for s in [*self._mine, *self.kernel.values()]:
            s.close()


@pytest.fixture
def wire_factory() -> Iterator[list[Wire]]:
    made: list[Wire] = []
    yield made
    for w in made:
        w.close()


def test_wire_delivers_each_segment_after_the_one_way_delay(wire_factory: list[Wire]) -> None:
    w = Wire([], delay=0.1)
    wire_factory.append(w)
    w.send("client", seg("client", SYN, 100))
    got = w.arrivals("server", 0.3)
    assert len(got) == 1
    t, packet = got[0]
    assert 0.1 <= t <= 0.35  # never early; late only by scheduling (a loaded machine)
    assert parse_ip_tcp(packet)[1].flags == SYN
    assert w.box.log[0].roles == [("syn", "client")] and w.box.log[0].action == "pass"


def test_wire_drops_exactly_the_last_ack_of_the_life(wire_factory: list[Wire]) -> None:
    w = Wire([rule_of(parse("drop", "last-ack"))], delay=0.01)
    wire_factory.append(w)
    for src, flags, sq, ack in LIFE:
        w.send(src, seg(src, flags, sq, ack))
    to_server = w.arrivals("server", 0.2)
    # SYN, ACK, FIN, but not the client's last ACK (a bare ACK like the third segment)
    assert [parse_ip_tcp(p)[1].flags for _t, p in to_server] == [SYN, ACK, FIN | ACK]
    dropped = [p for p in w.box.log if p.action == "drop"]
    assert len(dropped) == 1 and dropped[0].roles == [("last-ack", "client")]
    assert dropped[0].rule == "drop last-ack"
    # The FIN sent again, and its ACK sent again: :all was not asked, so it passes.
    w.send("server", seg("server", FIN | ACK, 501, 102))
    w.send("client", seg("client", ACK, 102, 502))
    assert len(w.arrivals("server", 0.1)) == 1


def test_wire_delays_the_first_two_syns_and_duplicates_the_fin(
        wire_factory: list[Wire]) -> None:
    w = Wire([rule_of(parse("delay", "syn:2=0.3")), rule_of(parse("dup", "fin"))], delay=0.02)
    wire_factory.append(w)
    for _ in range(3):  # the SYN and two copies of it
        w.send("client", seg("client", SYN, 100))
    got = w.arrivals("server", 0.8)
    times = sorted(t for t, _p in got)
    assert len(times) == 3
    # the third copy on time, the first two 0.3 s later (never early; late only by the
    # scheduling of a loaded machine)
    assert 0.02 <= times[0] < 0.25 and all(0.32 <= t < 0.6 for t in times[1:])
    for src, flags, sq, ack in LIFE[1:4]:  # SYN-ACK, ACK, FIN
        w.send(src, seg(src, flags, sq, ack))
    fins = [p for _t, p in w.arrivals("server", 0.2) if parse_ip_tcp(p)[1].flags & FIN]
    assert len(fins) == 2  # delivered twice
    assert [p.action for p in w.box.log][-1] == "dup"


def test_wire_does_not_deliver_to_an_address_that_is_not_the_other_end(
        wire_factory: list[Wire]) -> None:
    w = Wire([], delay=0.01)
    wire_factory.append(w)
    spoofed = emit_ip_tcp(S, "198.51.100.10", TcpSegment(SP, 20000, 7, 1, SYN | ACK, 65535))
    w.send("server", spoofed)
    assert w.arrivals("client", 0.1) == []
    assert w.box.log[-1].action == "sink"


def test_wire_injects_a_packet_the_lesson_made(wire_factory: list[Wire]) -> None:
    w = Wire([], delay=0.05)
    wire_factory.append(w)
    old = seg("client", SYN, 7, data=b"old")
    w.box.inject("client", "server", old)
    got = w.arrivals("server", 0.2)
    assert [p for _t, p in got] == [old] and 0.05 <= got[0][0] <= 0.3
    assert w.box.log[-1].action == "inject"


def test_a_rule_applies_to_its_first_copies_only() -> None:
    rule = Rule("drop", lambda s: True, "x", copies=2)
    seen = [rule.check(None) for _ in range(4)]  # type: ignore[arg-type]
    assert seen == [True, True, False, False] and rule.applied == 2 and rule.seen == 4


# ---------------------------------------------------------------- fates


def _send(i: int, raw: bytes, t: float) -> Event:
    return {"t": t, "kind": "segment", "event": "send", "id": i, "host": "client", "len": 0,
            "fate": "delivered", "raw": raw, "flags": "S"}


def test_each_segment_gets_its_fate_from_the_log_and_the_receiver_capture() -> None:
    a, b, c, d = (seg("client", SYN, n) for n in (1, 2, 3, 4))
    t0 = 1_000_000_000
    events = [_send(1, a, 0.0), _send(2, b, 0.1), _send(3, c, 0.2), _send(4, d, 0.3)]
    log = [Passage(0, "client", "server", a, action="drop", rule="drop syn", copies=0),
           Passage(0, "client", "server", b, action="dup", rule="dup syn", copies=2),
           Passage(0, "client", "server", c, action="delay", rule="delay syn=1",
                   delayed=1.0),
           Passage(0, "client", "server", d, action="inject")]
    arrivals = {b: [t0 + 150_000_000, t0 + 162_000_000], c: [t0 + 1_250_000_000],
                d: [t0 + 350_000_000]}
    _fates(events, log, arrivals, t0)
    lost, dup, copy, late, injected = events
    assert lost["fate"] == "dropped" and lost["reason"] == "fault: drop syn"
    assert "t_arrive" not in lost
    assert dup["fate"] == "duplicated" and dup["t_arrive"] == pytest.approx(0.15)
    assert copy["copy_of"] == 2 and copy["t_arrive"] == pytest.approx(0.162)
    assert "raw" not in copy and copy["id"] == 5
    assert late["delayed"] == 1.0 and late["t_arrive"] == pytest.approx(1.25)
    assert injected["injected"] is True and injected["fate"] == "delivered"


# ---------------------------------------------------------------- whose records


def _rec(event: str, pid: int, in_irq: bool, **values: int | bytes) -> TraceRecord:
    return TraceRecord(0, 0, event, pid, in_irq, dict(values))


def _state(sk: int, old: int, new: int, saddr: str, sport: int, daddr: str, dport: int,
           pid: int = 1, in_irq: bool = True) -> TraceRecord:
    return _rec("inet_sock_set_state", pid, in_irq, skaddr=sk, oldstate=old, newstate=new,
                family=2, protocol=6, sport=sport, dport=dport,
                saddr=socket.inet_aton(saddr), daddr=socket.inet_aton(daddr))


def test_records_are_the_lessons_by_thread_listener_and_socket() -> None:
    ends = [End("client", C, Namespace("tcplab-test-x")),
            End("server", S, Namespace("tcplab-test-y"))]
    ends[1].lookup = lambda key: ("ESTABLISHED", 0)  # type: ignore[method-assign]
    owners = Owners({4242: "server"}, ends, alone=lambda: False)
    # listen() by a program thread: ours, and a listener
    assert owners.keep(_state(0xA, 7, 10, "0.0.0.0", 80, "0.0.0.0", 0, pid=4242,
                              in_irq=False))
    # the same change by another process's thread: not ours
    assert not owners.keep(_state(0xB, 7, 10, "0.0.0.0", 80, "0.0.0.0", 0, pid=99,
                                  in_irq=False))
    # a connection born from our listener (in a softirq), found in our namespace: ours
    assert owners.keep(_state(0xC, 10, 3, S, 80, C, 40000))
    assert owners.keep(_state(0xC, 3, 1, S, 80, C, 40000))  # known by its address now
    # a retransmission of our socket: ours; of a stranger: not
    assert owners.keep(_rec("tcp_retransmit_skb", 0, True, skaddr=0xC))
    assert not owners.keep(_rec("tcp_retransmit_skb", 0, True, skaddr=0xD))
    # a RST about no socket between our addresses: ours only when we are alone
    rst = _rec("tcp_send_reset", 0, True, skaddr=0, family=2, sport=80, dport=40000,
               saddr=socket.inet_aton(S), daddr=socket.inet_aton(C))
    assert not owners.keep(rst)
    assert Owners({}, ends, alone=lambda: True).keep(rst)


def test_the_kernel_filters_name_both_addresses_and_wildcard_listeners() -> None:
    f = kernel_filters([C, S])
    c = int.from_bytes(socket.inet_aton(C), "little")
    assert f"saddr == {c}" in f["sock/inet_sock_set_state"]
    assert "saddr == 0" in f["sock/inet_sock_set_state"]
    assert "rx_sk != 0" in f["skb/kfree_skb"]


# ---------------------------------------------------------------- settings


def test_sysctls_are_checked_by_the_engines_table_and_written_as_proc_sys() -> None:
    assert sysctl_writes(("net.ipv4.tcp_syn_retries=2", "ip_local_port_range=40000 40010")) \
        == [("/proc/sys/net/ipv4/tcp_syn_retries", "2"),
            ("/proc/sys/net/ipv4/ip_local_port_range", "40000\t40010")]
    with pytest.raises(ConfigError, match="out of range"):
        sysctl_writes(("net.ipv4.tcp_syn_retries=0",))
    with pytest.raises(ConfigError, match="unknown sysctl"):
        sysctl_writes(("net.ipv4.tcp_nope=1",))


def test_the_syn_budget_bounds_this_kernels_connect() -> None:
    # 6 retries + 4 linear timeouts: connect() fails after 131 s; with tcp_syn_retries=2
    # after 7 s (measured on 6.18): the budget, how long a program waits, is not less.
    assert syn_budget() == pytest.approx(131.0)
    assert 7.0 <= syn_budget(("net.ipv4.tcp_syn_retries=2",)) <= 11.0


def test_what_a_kernel_cannot_run_says_why() -> None:
    with pytest.raises(LessonError, match="chosen ISNs"):
        lesson_for("stale-segment", Switches())
    with pytest.raises(LessonError, match="fixed 60 s"):
        lesson_for("close", Switches(time_wait=0.0))
    with pytest.raises(LessonError, match="script"):
        lesson_for("isn-sync", Switches(four_segment=True))
    assert linux_sysctls(Switches(rfc1337=False, syn_cookies=True)) == (
        "net.ipv4.tcp_syncookies=1", "net.ipv4.tcp_rfc1337=0")


# ---------------------------------------------------------------- comparing traces


def _demo(profile: str, *faults: str, sysctls: tuple[str, ...] = ()) -> list[Event]:
    specs = tuple(parse(f.split()[0], f.split()[1]) for f in faults)
    return run_demo(config=configured(profile, sysctls), faults=specs).trace.to_json_list()


def test_two_runs_of_the_same_life_are_alike_in_every_aspect() -> None:
    rows = differences(_demo("linux"), _demo("linux"))
    assert rows and all(r.same for r in rows), [r for r in rows if not r.same]
    assert {r.aspect for r in rows} >= {"segments", "exchange", "timing", "retransmissions",
                                        "states"}


def test_the_rfcs_syn_back_off_against_linuxs_linear_one() -> None:
    # Two SYNs lost: the RFC's timer doubles (1 s, then 2 s more), Linux's first four
    # timeouts stay at 1 s.
    rfc, linux = _demo("rfc", "drop syn:2"), _demo("linux", "drop syn:2")
    rows = {(r.aspect, r.subject): r for r in differences(rfc, linux)}
    syn = rows[("retransmissions", "syn (client)")]
    assert not syn.same
    assert syn.engine == "copies at 1.00 3.00 s" and syn.linux == "copies at 1.00 2.00 s"
    timing = [r for r in rows.values() if r.aspect == "timing" and not r.same]
    assert timing and timing[0].subject == "#3 client S"


def test_a_linux_run_that_ends_in_time_wait_is_not_a_difference() -> None:
    engine = _demo("linux")
    cut = [e for e in engine if not (e["kind"] == "state" and e["from"] == "TIME-WAIT")]
    cut.append({"t": 1.0, "kind": "note", "text": "...", "key": "onlinux.tw-end",
                "host": "client"})
    row = next(r for r in differences(engine, cut) if r.aspect == "states"
               and r.subject == "client")
    assert row.same and row.engine.endswith("TIME-WAIT → CLOSED")
    assert row.linux.endswith("(its 60 s not waited out)")
    # without the note, a run that stops in TIME-WAIT is a difference
    row = next(r for r in differences(engine, cut[:-1]) if r.aspect == "states"
               and r.subject == "client")
    assert not row.same


def test_a_bare_ack_before_the_request_is_explained() -> None:
    engine = _demo("linux")
    sent = [e for e in engine if e["kind"] == "segment" and e["event"] == "send"]
    third = sent[2]
    assert third["flags"] == "A" and not third["len"]
    # the engine's request on the third segment, as an exam's fastest life
    merged = [e for e in engine if e is not third]
    rows = [r for r in differences(merged, engine) if r.aspect == "exchange" and not r.same]
    assert len(rows) == 1 and rows[0].linux.startswith("client A at")
    assert "SYN-SENT" in rows[0].note


def test_failed_calls_compare_their_error_and_time() -> None:
    quick = _demo("linux", "drop syn:all", sysctls=("net.ipv4.tcp_syn_retries=2",))
    slow = _demo("linux", "drop syn:all", sysctls=("net.ipv4.tcp_syn_retries=3",))
    row = next(r for r in differences(quick, quick) if r.aspect == "failed")
    assert row.same and row.engine == "ETIMEDOUT after 7.00 s"
    row = next(r for r in differences(quick, slow) if r.aspect == "failed")
    assert not row.same and row.linux == "ETIMEDOUT after 19.00 s"
