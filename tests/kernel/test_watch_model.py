"""The watch's parts without root: ring-buffer pages, format files, and the merging model.

The model tests feed :class:`KernelWatch` what the kernel reports (tracepoint state
changes, captured segments, sock_diag answers) as a timeline, and check the trace it
makes: the timewait mini-socket hand-over, the port a connect() learns late, roles.
"""

from __future__ import annotations

import socket
import struct

from tcplab.kernel.capture import tcp_filter
from tcplab.kernel.tracefs import endpoints, parse_format, parse_page
from tcplab.kernel.watch import (
    CLOSED_KEEP,
    RECENT_KEEP,
    KernelWatch,
    StateChange,
    WatchFilter,
)
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import ACK, FIN, SYN, TcpSegment

FORMAT = """name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: "family=%s", __print_symbolic(REC->family, { 2, "AF_INET" }, { 10, "AF_INET6" }), \
__print_symbolic(REC->newstate, { 1, "TCP_ESTABLISHED" }, { 2, "TCP_SYN_SENT" })
"""


def test_format_file_gives_offsets_arrays_and_symbols() -> None:
    fmt = parse_format("sock", "inet_sock_set_state", FORMAT)
    assert fmt.id == 2287
    assert fmt.fields["sport"].offset == 24 and fmt.fields["sport"].size == 2
    assert fmt.fields["saddr_v6"].is_array and fmt.fields["saddr_v6"].size == 16
    assert fmt.fields["oldstate"].signed
    assert fmt.symbols["family"] == {2: "AF_INET", 10: "AF_INET6"}
    assert fmt.symbols["newstate"][2] == "TCP_SYN_SENT"


def _event(type_len_words: int, delta: int, payload: bytes) -> bytes:
    return struct.pack("<I", (delta << 5) | type_len_words) + payload


def test_ring_buffer_page_with_extends_padding_and_long_events() -> None:
    small = b"A" * 8  # type_len 2: 8 bytes of data
    long = b"B" * 120  # type_len 0: length in the next word (data + 4)
    body = b"".join([
        _event(2, 5, small),                                   # ts = base + 5
        struct.pack("<II", (3 << 5) | 30, 1),                  # time extend: + (1 << 27) + 3
        struct.pack("<I", (7 << 5) | 0) + struct.pack("<I", len(long) + 4) + long,  # + 7
        # A discarded event: its first word after the header says 8 bytes follow it.
        struct.pack("<II", (9 << 5) | 29, 8) + b"\0" * 4,      # + 9
        _event(1, 11, b"C" * 4),                               # + 11
    ])
    base = 1_000_000_000
    page = struct.pack("<QQ", base, len(body)) + body + b"\0" * 64
    events = [(ts, bytes(data)) for ts, data in parse_page(page)]
    t1 = base + 5
    t2 = t1 + (1 << 27) + 3 + 7
    t3 = t2 + 9 + 11
    assert events == [(t1, small), (t2, long), (t3, b"C" * 4)]


def test_absolute_time_stamp_keeps_the_high_bits_of_the_page_time() -> None:
    base = (1 << 60) + 12345  # TAI nanoseconds have bits above the 59 a stamp holds
    stamp = 777 << 27
    body = struct.pack("<II", (0 << 5) | 31, 777) + _event(1, 2, b"D" * 4)
    page = struct.pack("<QQ", base, len(body)) + body
    ((ts, _data),) = list(parse_page(page))
    assert ts == ((base & ~((1 << 59) - 1)) | stamp) + 2


def test_endpoints_of_both_address_layouts() -> None:
    v4 = {"family": socket.AF_INET, "sport": 80, "dport": 5000,
          "saddr": socket.inet_aton("192.0.2.1"), "daddr": socket.inet_aton("192.0.2.2")}
    assert endpoints(v4) == (4, "192.0.2.1", 80, "192.0.2.2", 5000)
    sin6 = struct.pack("<H", socket.AF_INET6) + struct.pack("!H", 443) + bytes(4) + \
        socket.inet_pton(socket.AF_INET6, "2001:db8::1") + bytes(4)
    sin6d = struct.pack("<H", socket.AF_INET6) + struct.pack("!H", 6000) + bytes(4) + \
        socket.inet_pton(socket.AF_INET6, "2001:db8::2") + bytes(4)
    assert endpoints({"saddr": sin6, "daddr": sin6d}) == (
        6, "2001:db8::1", 443, "2001:db8::2", 6000)


def test_packet_filter_jumps_land_inside_the_program() -> None:
    for ports in ((), (8080,), (8080, 9090)):
        prog = tcp_filter(ports)
        for i, (code, jt, jf, k) in enumerate(prog):
            if code == 0x05:  # unconditional jump
                assert 0 <= i + 1 + k < len(prog)
            elif code & 0x07 == 0x05:  # conditional jumps
                assert 0 <= i + 1 + jt < len(prog) and 0 <= i + 1 + jf < len(prog)
        assert prog[-1] == (0x06, 0, 0, 1 << 18) and prog[-2] == (0x06, 0, 0, 0)


# --------------------------------------------------------------------------- the model

C = ("127.0.0.1", 40000, "127.0.0.1", 8080)  # the client's socket
S = ("127.0.0.1", 8080, "127.0.0.1", 40000)  # the server's child socket
L = ("127.0.0.1", 8080, "0.0.0.0", 0)  # the listener


class Timeline:
    """Feeds a KernelWatch; ``sock_diag`` answers what the test says the kernel holds."""

    def __init__(self) -> None:
        self.now = 0
        self.sock_diag: dict[tuple[str, int, str, int], str] = {}
        self.watch = KernelWatch(filt=WatchFilter(ports=(8080,)), now_ns=lambda: self.now,
                                 lookup=self.sock_diag.get)
        self.seq = {C: 1000, S: 5000}

    def state(self, t: int, sock: str, key: tuple[str, int, str, int], old: str, new: str,
              irq: bool = True) -> None:
        self.watch.feed_state(StateChange(t, sock, 4, key, old, new, pid=1, in_irq=irq))

    def segment(self, t: int, key: tuple[str, int, str, int], flags: int) -> None:
        seg = TcpSegment(key[1], key[3], self.seq.get(key, 0), 1, flags, 65000)
        self.watch.feed_packet(t, emit_ip_tcp(key[0], key[2], seg))

    def run(self, until: int) -> list[str]:
        self.now = until
        self.watch.finish()
        out = []
        for e in self.watch.events:
            if e["kind"] == "state":
                out.append(f"{e['host']}:{e['to']}")
            elif e["kind"] == "segment":
                out.append(f"{e['host']}>{e['flags']}")
            else:
                out.append("note")
        return out


def _handshake(tl: Timeline) -> None:
    tl.state(100, "l", L, "CLOSED", "LISTEN", irq=False)
    # connect(): SYN-SENT is reported before the kernel picked the local port.
    tl.state(200, "c", ("127.0.0.1", 0, "127.0.0.1", 8080), "CLOSED", "SYN-SENT", irq=False)
    tl.segment(210, C, SYN)
    tl.segment(220, S, SYN | ACK)
    tl.state(230, "c", C, "SYN-SENT", "ESTABLISHED")
    tl.segment(240, C, ACK)
    tl.state(250, "s", S, "LISTEN", "SYN-RECEIVED")
    tl.state(260, "s", S, "SYN-RECEIVED", "ESTABLISHED")


def test_orphan_in_fin_wait_2_lives_on_as_a_mini_socket_until_the_peer_fin() -> None:
    tl = Timeline()
    _handshake(tl)
    tl.state(300, "c", C, "ESTABLISHED", "FIN-WAIT-1", irq=False)
    tl.segment(310, C, FIN | ACK)
    tl.state(320, "s", S, "ESTABLISHED", "CLOSE-WAIT")
    tl.segment(330, S, ACK)
    tl.state(340, "c", C, "FIN-WAIT-1", "FIN-WAIT-2")
    # The program had closed the socket: the full socket goes to CLOSE ...
    tl.state(341, "c", C, "FIN-WAIT-2", "CLOSED")
    # ... while sock_diag shows its mini-socket, here already past the peer's FIN.
    tl.sock_diag[C] = "TIME-WAIT"
    tl.state(400, "s", S, "CLOSE-WAIT", "LAST-ACK", irq=False)
    tl.segment(410, S, FIN | ACK)
    tl.segment(420, C, ACK)
    tl.state(430, "s", S, "LAST-ACK", "CLOSED")
    flow = tl.run(500)
    assert flow == [
        "server:LISTEN",
        "client:SYN-SENT", "client>S", "note",  # the request socket's note
        "server>SA", "client:ESTABLISHED", "client>A", "server:SYN-RECEIVED",
        "server:ESTABLISHED",
        "client:FIN-WAIT-1", "client>FA", "server:CLOSE-WAIT", "server>A",
        "client:FIN-WAIT-2", "note",  # the hand-over to the mini-socket, explained
        "server:LAST-ACK", "server>FA", "client:TIME-WAIT", "client>A", "server:CLOSED",
    ]
    tw = next(e for e in tl.watch.events if e["kind"] == "state" and e["to"] == "TIME-WAIT")
    assert tw["t_ns"] == 410  # when the server's FIN reached it
    assert tw["conn"] == "127.0.0.1:40000-127.0.0.1:8080"


def test_mini_socket_that_expires_goes_to_closed_when_sock_diag_loses_it() -> None:
    tl = Timeline()
    _handshake(tl)
    tl.segment(300, S, FIN | ACK)
    tl.state(301, "c", C, "ESTABLISHED", "CLOSE-WAIT")
    tl.state(302, "c", C, "CLOSE-WAIT", "LAST-ACK", irq=False)
    tl.segment(303, C, FIN | ACK)
    # FIN and ACK of the server's FIN arrive before the server's socket closes:
    # the full socket hands over to a mini-socket that starts in TIME-WAIT.
    tl.state(290, "s", S, "ESTABLISHED", "FIN-WAIT-1", irq=False)
    tl.state(304, "s", S, "FIN-WAIT-1", "CLOSED")
    tl.sock_diag[S] = "TIME-WAIT"
    tl.segment(305, S, ACK)
    tl.state(306, "c", C, "LAST-ACK", "CLOSED")
    tl.now = 1_000_000_000  # one second on: all of the above is past the holdback
    tl.watch.advance()
    del tl.sock_diag[S]  # 60 s later
    flow = tl.run(60_000_000_000)
    assert [f for f in flow if f.startswith("server:")][-2:] == [
        "server:TIME-WAIT", "server:CLOSED"]
    closed = [e for e in tl.watch.events if e["kind"] == "state" and e["host"] == "server"
              and e["to"] == "CLOSED"]
    assert "expired" in closed[-1]["cause"]


def test_full_socket_gone_without_a_mini_socket_is_plain_closed() -> None:
    tl = Timeline()
    _handshake(tl)
    tl.state(300, "c", C, "ESTABLISHED", "FIN-WAIT-1", irq=False)
    tl.state(340, "c", C, "FIN-WAIT-1", "FIN-WAIT-2")
    tl.state(350, "c", C, "FIN-WAIT-2", "CLOSED")  # e.g. a RST, or tcp_fin_timeout 0
    flow = tl.run(400)
    assert [f for f in flow if f.startswith("client:")][-1] == "client:CLOSED"
    assert "note" not in flow[flow.index("client:FIN-WAIT-2"):]


def test_filters_drop_other_ports_and_other_hosts() -> None:
    watch = KernelWatch(filt=WatchFilter(ports=(8080,), host="127.0.0.9"), now_ns=lambda: 10**9,
                        lookup=lambda key: None)
    watch.feed_state(StateChange(1, "a", 4, C, "CLOSED", "SYN-SENT"))
    watch.feed_state(StateChange(2, "b", 4, ("127.0.0.9", 1, "127.0.0.1", 8080), "CLOSED",
                                 "SYN-SENT"))
    watch.feed_state(StateChange(3, "c", 4, ("127.0.0.9", 1, "127.0.0.1", 9090), "CLOSED",
                                 "SYN-SENT"))
    watch.finish()
    assert [e["conn"] for e in watch.events] == ["127.0.0.9:1-127.0.0.1:8080"]


def test_chinese_texts_come_from_the_run() -> None:
    tl = Timeline()
    tl.watch.lang = "zh"
    _handshake(tl)
    tl.run(1000)
    notes = [e["text"] for e in tl.watch.events if e["kind"] == "note"]
    assert notes and "请求套接字" in notes[0] and "127.0.0.1:8080-127.0.0.1:40000" in notes[0]


def test_a_server_that_runs_for_days_keeps_only_what_is_alive() -> None:
    """5,000 lives from ever new client ports, each: handshake, server closes first,
    client's full socket and then its mini-socket go.  The model forgets the closed ones
    beyond its bound, and still tells the last life exactly as a fresh model would."""
    tl = Timeline()
    tl.state(100, "l", L, "CLOSED", "LISTEN", irq=False)
    lives = 5000

    def life(tl: Timeline, i: int, t: int) -> None:
        c = ("127.0.0.1", 20000 + i, "127.0.0.1", 8080)
        s = ("127.0.0.1", 8080, "127.0.0.1", 20000 + i)
        tl.seq[c], tl.seq[s] = 1000, 5000
        tl.state(t, f"c{i}", c, "CLOSED", "SYN-SENT", irq=False)
        tl.segment(t + 10, c, SYN)
        tl.segment(t + 20, s, SYN | ACK)
        tl.state(t + 30, f"c{i}", c, "SYN-SENT", "ESTABLISHED")
        tl.segment(t + 40, c, ACK)
        tl.state(t + 50, f"s{i}", s, "LISTEN", "SYN-RECEIVED")
        tl.state(t + 60, f"s{i}", s, "SYN-RECEIVED", "ESTABLISHED")
        tl.state(t + 70, f"s{i}", s, "ESTABLISHED", "FIN-WAIT-1", irq=False)
        tl.segment(t + 80, s, FIN | ACK)
        tl.state(t + 90, f"c{i}", c, "ESTABLISHED", "CLOSE-WAIT")
        tl.state(t + 100, f"c{i}", c, "CLOSE-WAIT", "LAST-ACK", irq=False)
        tl.segment(t + 110, c, FIN | ACK)
        tl.segment(t + 120, s, ACK)
        tl.state(t + 130, f"c{i}", c, "LAST-ACK", "CLOSED")
        tl.state(t + 140, f"s{i}", s, "FIN-WAIT-1", "CLOSED")  # a mini-socket takes over

    for i in range(lives):
        life(tl, i, 1000 + i * 1000)
        if i % 500 == 0:  # the mini-sockets of earlier lives have expired
            tl.now = 1000 + i * 1000 + 1_000_000_000
            tl.watch.advance()
    tl.now = 10**12
    tl.watch.finish()
    sizes = tl.watch.remembered()
    assert sizes["connections"] <= CLOSED_KEEP + 2, sizes
    assert sizes["roles"] <= CLOSED_KEEP * 2 + 2, sizes
    assert sizes["sockets"] <= 1, sizes  # the listener's
    assert sizes["last segments"] <= RECENT_KEEP and sizes["requests told"] <= RECENT_KEEP
    # The last life, told as a model that saw only it would tell it.
    fresh = Timeline()
    fresh.state(100, "l", L, "CLOSED", "LISTEN", irq=False)
    life(fresh, lives - 1, 1000 + (lives - 1) * 1000)
    fresh.run(10**12)
    conn = f"127.0.0.1:{20000 + lives - 1}-127.0.0.1:8080"
    rconn = f"127.0.0.1:8080-127.0.0.1:{20000 + lives - 1}"

    def told(w: KernelWatch) -> list[tuple[object, object, object]]:
        return [(e["kind"], e.get("host", ""), e.get("to", e.get("flags", e.get("text", ""))))
                for e in w.events if e.get("conn") in (conn, rconn)]

    assert told(tl.watch) == told(fresh.watch)
    assert ("state", "server", "CLOSED") in told(tl.watch)
