"""Linux's packetdrill dialect: the parser, and scripts as hostile input (issue 15, issue 19).

The corpus test reads ../shared/corpus/linux-packetdrill in place (never copied).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tcplab.packetdrill.interpreter import run_script
from tcplab.packetdrill.report import ERROR, PASS, SKIP
from tcplab.packetdrill.runner import run_paths
from tcplab.packetdrill.script import (
    ELLIPSIS,
    MAX_NESTING,
    CallArg,
    CodeSpec,
    IcmpSpec,
    Ident,
    ListArg,
    PacketSpec,
    ScriptError,
    ShellSpec,
    StructArg,
    SyscallSpec,
    load_script,
    parse_script,
)

LINUX = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "linux-packetdrill"


def one(text: str) -> object:
    events = parse_script(text, "t.pkt").events
    assert len(events) == 1, events
    return events[0].action


# ---------------------------------------------------------------- the Linux dialect


def test_sendmsg_over_several_lines_with_msg_name_fields() -> None:
    call = one("""   +0 sendmsg(4, {msg_name(...)=...,
                  msg_iov(4)=[{..., 0}, {..., 40}, {..., 0}, {..., 20}],
                  msg_flags=0}, MSG_ZEROCOPY) = 60
""")
    assert isinstance(call, SyscallSpec) and call.name == "sendmsg" and call.result == 60
    msg = call.args[1]
    assert isinstance(msg, StructArg)
    assert msg.get("msg_name") is ELLIPSIS and msg.get("msg_flags") == 0
    iov = msg.get("msg_iov")
    assert isinstance(iov, ListArg)
    assert [f.fields[1][1] for f in iov.items if isinstance(f, StructArg)] == [0, 40, 0, 20]
    assert call.args[2] == Ident("MSG_ZEROCOPY")


def test_poll_over_several_lines_with_a_duration() -> None:
    s = parse_script("""   +0...0.010 poll([{fd=3,
                     events=POLLIN|POLLOUT|POLLERR,
                     revents=POLLOUT}], 1, 100) = 1
 +.01 close(3) = 0
""")
    poll, close = s.events
    assert poll.line == 1 and close.line == 4
    assert poll.time.block_end == 0.010
    assert isinstance(poll.action, SyscallSpec) and poll.action.args[1:] == (1, 100)


@pytest.mark.parametrize("text", ["+0 ...0.2 accept(3, ..., ...) = 4",
                                  "+0 ... .2 accept(3, ..., ...) = 4",
                                  "+0...0.200 accept(3, ..., ...) = 4"])
def test_dots_with_spaces_around_them(text: str) -> None:
    ev = parse_script(text).events[0]
    assert ev.time.kind == "relative" and ev.time.block_end == pytest.approx(0.2)


def test_icmp_packets() -> None:
    icmp = one("+.01 < icmp unreachable frag_needed mtu 840 [0:1000(1000)]\n")
    assert icmp == IcmpSpec("<", "unreachable", "frag_needed", 840, (0, 1000, 1000))
    bare = one("+0 < icmp unreachable [5000:6000(1000)]\n")
    assert isinstance(bare, IcmpSpec) and bare.code is None and bare.echoed == (5000, 6000, 1000)
    v6 = one("+0 > icmp packet_too_big mtu 1400\n")
    assert isinstance(v6, IcmpSpec) and not v6.inbound and v6.mtu == 1400


def test_packet_with_no_flags_and_named_option_values() -> None:
    noflags = one("+.01 < - 1:1001(1000) win 20000\n")
    assert isinstance(noflags, PacketSpec) and noflags.flags == 0 and noflags.length == 1000
    syn = one("+0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop, FOEXP TFO_COOKIE>\n")
    assert isinstance(syn, PacketSpec) and syn.options is not None
    assert syn.options[-1].name == "FOEXP TFO_COOKIE"


def test_local_isn_and_calls_as_values() -> None:
    synack = one("+0 > S. 1234:1234(0) ack 999001 <mss 1460>\n")
    assert isinstance(synack, PacketSpec) and synack.seq_start == 1234
    call = one('+0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), '
               'sin_addr=inet_addr("192.0.2.1")}, 16) = 0\n')
    assert isinstance(call, SyscallSpec) and isinstance(call.args[1], StructArg)
    assert call.args[1].get("sin_port") == CallArg("htons", (8080,))


def test_code_and_shell_keep_their_lines() -> None:
    s = parse_script("""`../common/defaults.sh
 ../common/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0`
+.005 %{
assert tcpi_ca_state == TCP_CA_Disorder, tcpi_ca_state
assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd  # no cwnd moderation
}%
""")
    shell, code = s.events
    assert isinstance(shell.action, ShellSpec)
    assert shell.action.command.splitlines() == [
        "../common/defaults.sh", "../common/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0"]
    assert isinstance(code.action, CodeSpec) and code.line == 3
    assert [ln.split(",")[0] for ln in code.action.code.splitlines()] == [
        "assert tcpi_ca_state == TCP_CA_Disorder", "assert tcpi_snd_cwnd == 10"]


def test_linux_option_lines() -> None:
    s = parse_script("--local_ip=192.168.0.2\n--remote_ip=10.248.0.3\n--tcp_ts_tick_usecs=1000\n"
                     "--strict_segments\n--mss=1000\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert s.options == {"local_ip": "192.168.0.2", "remote_ip": "10.248.0.3",
                         "tcp_ts_tick_usecs": "1000", "strict_segments": "", "mss": "1000"}


@pytest.mark.skipif(not LINUX.is_dir(), reason="the Linux corpus is not in ../shared")
def test_every_linux_script_parses() -> None:
    scripts = sorted(LINUX.rglob("*.pkt"))
    assert len(scripts) == 162
    for p in scripts:
        assert load_script(p).events, p


# ---------------------------------------------------------------- hostile scripts (issue 19)


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{", "}"), ("htons(", ")")])
def test_500_nested_brackets_give_one_line_error(opener: str, closer: str) -> None:
    text = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" \
           f"+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {opener * 500}1{closer * 500}, 8) = 0\n"
    with pytest.raises(ScriptError) as info:
        parse_script(text, "deep.pkt")
    assert str(info.value) == f"deep.pkt:2: brackets nested deeper than {MAX_NESTING}"
    assert "\n" not in str(info.value)


def test_500_nested_parentheses_in_inline_code_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "code.pkt"
    p.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                 f"+0 %{{ assert {'(' * 500}tcpi_state{')' * 500} == 1 }}%\n")
    r = run_script(p, "linux")
    assert r.status == SKIP and "nested deeper than" in r.reason


@pytest.mark.parametrize("line,reason", [
    ("+0 < . 1:4294967296(4294967295) ack 1 win 257", "out of range"),
    ("+0 < . 1:70001(70000) ack 1 win 257", "TCP payload length 70000 out of range"),
    ("+0 < . 1:1(0) ack 4294967296 win 257", "ack 4294967296 out of range"),
    ("+0 < . 1:1(0) ack 1 win 65536", "win 65536 out of range"),
    ("+0 > S 0:0(0) <mss 70000>", "mss 70000 out of range"),
    ("+99999999 close(3) = 0", "beyond 86400 s"),
])
def test_numbers_outside_packetdrill_ranges_are_refused(line: str, reason: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_script(line + "\n", "big.pkt")
    assert info.value.line == 1 and reason in info.value.reason


def test_huge_write_is_refused_without_allocating(tmp_path: Path) -> None:
    p = tmp_path / "w.pkt"
    p.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                 "+0 write(3, ..., 10000000000) = 10000000000\n")
    tracemalloc.start()
    try:
        r = run_script(p, "linux")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status == ERROR and r.line == 2
    assert "length 10000000000 beyond the runner's bound" in r.reason
    assert peak < 50 << 20


def test_a_write_never_allocates_more_than_the_send_buffer(tmp_path: Path) -> None:
    # 16 MiB is within the bound, but only what fits in the engine's buffer is built.
    p = tmp_path / "w.pkt"
    p.write_text("""0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
+0 write(3, ..., 16777216) = 16384
+0 > . 1:14601(14600) ack 1
""")
    tracemalloc.start()
    try:
        r = run_script(p, "linux")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status == PASS, r.one_line()
    assert peak < 8 << 20


def test_oversized_script_and_event_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="script longer than"):
        parse_script("// x\n" * 300_000, "huge.pkt")
    with pytest.raises(ScriptError) as info:
        parse_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3,\n" + "3,\n" * 500)
    assert info.value.line == 2 and "unclosed bracket" in info.value.reason


def test_one_bad_script_never_stops_the_folder(tmp_path: Path) -> None:
    good = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"
    (tmp_path / "a-deep.pkt").write_text(f"0 close({'[' * 500}3{']' * 500}) = 0\n")
    (tmp_path / "b-huge-seq.pkt").write_text("0 < . 1:4294967296(4294967295) ack 1\n")
    (tmp_path / "c-huge-write.pkt").write_text(good.replace("close(3) = 0",
                                                            "write(3, ..., 10000000000) = 1"))
    (tmp_path / "d-code.pkt").write_text(good + f"+0 %{{ assert {'not ' * 3000}1 }}%\n")
    (tmp_path / "e-good.pkt").write_text(good)
    for profile in ("portable", "linux"):
        report = run_paths([tmp_path], profile)
        by_name = {Path(r.path).name: r for r in report.results}
        assert sorted(by_name) == ["a-deep.pkt", "b-huge-seq.pkt", "c-huge-write.pkt",
                                   "d-code.pkt", "e-good.pkt"]
        assert by_name["e-good.pkt"].status == PASS
        for name in ("a-deep.pkt", "b-huge-seq.pkt", "c-huge-write.pkt"):
            assert by_name[name].status == ERROR and by_name[name].line == 1 + (
                name == "c-huge-write.pkt"), by_name[name].one_line()
        assert by_name["d-code.pkt"].status != PASS
