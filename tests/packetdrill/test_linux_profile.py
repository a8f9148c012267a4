"""The ``linux`` profile: Linux's shell lines, socket calls and packets against the engine.

Each test is a small script in Linux's dialect, run in virtual time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcplab.engine import TcpConfig
from tcplab.packetdrill.interpreter import Runner, run_script
from tcplab.packetdrill.linux import FEATURES, SYSCTLS, LinuxSettings, linux_config
from tcplab.packetdrill.profile import Profile, Skip
from tcplab.packetdrill.report import FAIL, PASS, SKIP, Reference, Report, Result, Totals
from tcplab.packetdrill.runner import run_paths
from tcplab.packetdrill.script import parse_script

# A passive open as Linux's scripts write it (the engine's wscale differs: adapted).
SERVER = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
  +.1 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
"""


def run(tmp_path: Path, text: str, name: str = "t.pkt") -> Result:
    p = tmp_path / name
    p.write_text(text)
    return run_script(p, "linux")


# ---------------------------------------------------------------- sysctls and shell lines


def test_defaults_sh_is_read_next_to_the_script(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text(
        "#!/bin/bash\n# comment\nip tcp_metrics flush all > /dev/null 2>&1\n"
        'sysctl -q net.ipv4.tcp_rmem="4096 540000 $((15*1024*1024))"\n'
        "sysctl -q net.ipv4.tcp_timestamps=1\nsysctl -q net.ipv4.tcp_syn_retries=2\n"
        "tc qdisc add dev tun0 root pfifo\n")
    (tmp_path / "t").mkdir()
    # tcp_syn_retries=2 with Linux 6.x's 4 linear timeouts: SYNs at 0, 1, 2, 3, 4 and
    # 5 s, then ETIMEDOUT at 7 s (tcp_model_timeout(2) = 7 s, as this kernel measures).
    syn = "> S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>"
    r = run(tmp_path / "t", f"""`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 {syn}
   +1 {syn}
   +1 {syn}
   +1 {syn}
   +1 {syn}
   +1 {syn}
 +1.9 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
  +.1 getsockopt(3, SOL_SOCKET, SO_ERROR, [ETIMEDOUT], [4]) = 0
""")
    assert r.status == PASS, r.one_line()
    assert "Linux defaults applied from defaults.sh" in r.adaptations


def test_defaults_sh_missing_is_a_named_skip(tmp_path: Path) -> None:
    r = run(tmp_path, "`../common/defaults.sh`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert r.status == SKIP and r.reason == "../common/defaults.sh not found next to the script"


@pytest.mark.parametrize("line,field,value", [
    ("sysctl -q net.ipv4.tcp_synack_retries=1", "synack_retries", 1),
    ("../common/set_sysctls.py /proc/sys/net/ipv4/tcp_wmem=\"4096 50000 4194304\"",
     "snd_buf", 50000),
    ("echo 0 > /proc/sys/net/ipv4/tcp_rfc1337", "rfc1337", False),
    ("sysctl -q net/ipv4/tcp_syncookies=2", "syn_cookies", "always"),
])
def test_linux_sysctl_forms_reach_tcpconfig(line: str, field: str, value: object) -> None:
    script = parse_script(f"0 `{line}`\n", "/nonexistent/t.pkt")
    runner = Runner(script, Profile.get("linux"))
    runner.run()
    assert getattr(runner.host.config, field) == value


def test_restore_script_undoes_set_sysctls(tmp_path: Path) -> None:
    script = parse_script("""`../common/set_sysctls.py /proc/sys/net/ipv4/tcp_syn_retries=1 \\
  /proc/sys/net/ipv4/tcp_synack_retries=2`
0 `sysctl -q net.ipv4.tcp_syn_retries=4`
+0 `/tmp/sysctl_restore_${PPID}.sh`
""")
    runner = Runner(script, Profile.get("linux"))
    cfg = runner.host.config
    base = (cfg.syn_retries, cfg.synack_retries)
    runner.run()
    # The restore script writes back what set_sysctls.py read before its change,
    # whatever was set in between.
    assert (cfg.syn_retries, cfg.synack_retries) == base


@pytest.mark.parametrize("line,reason", [
    ("sysctl -q net.ipv4.tcp_frto=1", "needs engine: F-RTO (RFC 5682) (tcp_frto=1)"),
    ("sysctl -q net.ipv4.tcp_congestion_control=cubic",
     "needs engine: CUBIC congestion control (RFC 9438) (tcp_congestion_control=cubic)"),
    ("sysctl -q net.ipv4.tcp_no_such_thing=1",
     "sysctl net.ipv4.tcp_no_such_thing has no row in the Linux table"),
    ("tc qdisc replace dev tun0 root fq", "needs engine: pacing (fq qdisc, SO_MAX_PACING_RATE)"),
    ("nstat -n | grep TcpExtNoSuchCounter", "counter TcpExtNoSuchCounter is not one the "
     "engine keeps"),
    ("ifconfig tun0 mtu 1500", "shell command `ifconfig` has no engine equivalent"),
])
def test_unmapped_settings_skip_with_a_named_reason(tmp_path: Path, line: str,
                                                    reason: str) -> None:
    r = run(tmp_path, f"0 `{line}`\n")
    assert (r.status, r.reason) == (SKIP, reason)


def test_a_sysctl_linux_does_not_have_fails_and_the_alternative_runs(tmp_path: Path) -> None:
    """``tcp_fastopen_cookies`` is not a mainline sysctl: ``sysctl`` fails, so the
    ``|| ip tcp_metrics flush all`` after it runs, and alone it fails the script."""
    alone = run(tmp_path, "0 `sysctl -q net.ipv4.tcp_fastopen_cookies=0`\n")
    assert alone.status == FAIL and "cannot stat" in alone.one_line()
    fallback = run(tmp_path, "0 `sysctl -q net.ipv4.tcp_fastopen_cookies=0 || "
                             "ip tcp_metrics flush all`\n")
    assert fallback.status == PASS, fallback.one_line()


def test_a_setting_the_engine_already_has_is_accepted(tmp_path: Path) -> None:
    r = run(tmp_path, "0 `sysctl -q net.ipv4.tcp_timestamps=0 net.ipv4.tcp_sack=0 "
                      "net.ipv4.tcp_fack=0 net.ipv4.tcp_reordering=3`\n")
    assert r.status == PASS, r.one_line()


def test_a_feature_row_applies_once_tcpconfig_has_the_field(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # The seam for the lead: when TcpConfig grows a field, the row starts applying.
    settings = LinuxSettings(TcpConfig())
    with pytest.raises(Skip):
        settings.apply("net.ipv4.tcp_frto", 2, from_defaults=False)
    settings.apply("net.ipv4.tcp_frto", 2, from_defaults=True)
    assert "frto" in settings.wanted
    import tcplab.packetdrill.linux as linux_mod
    monkeypatch.setattr(linux_mod, "_CONFIG_FIELDS", linux_mod._CONFIG_FIELDS | {"frto"})

    class Cfg:   # a TcpConfig with the new field
        frto = 0
    cfg = Cfg()
    LinuxSettings(cfg).apply("net.ipv4.tcp_frto", 2, from_defaults=False)  # type: ignore[arg-type]
    assert cfg.frto == 2


def test_every_sysctl_row_names_what_it_does() -> None:
    for name, row in SYSCTLS.items():
        assert name.startswith("net.ipv4.")
        assert row.kind in ("field", "feature", "accept", "skip", "absent"), name
        if row.kind in ("accept", "skip", "absent"):
            assert row.why, name
        else:
            assert row.field, name
        if row.kind == "feature":
            assert row.feature in FEATURES, name
    cfg = linux_config()
    assert (cfg.rto_min, cfg.rto_max, cfg.delayed_ack, cfg.time_wait_length) == (
        0.2, 120.0, 0.04, 60.0)


# ---------------------------------------------------------------- what the engine lacks


@pytest.mark.parametrize("line,reason", [
    ("+0 < . 1:1(0) ack 1 win 257 <md5 000102030405060708090a0b0c0d0e0f>",
     "needs engine: TCP MD5 signatures (RFC 2385)"),
    ("+0 setsockopt(4, SOL_TCP, TCP_NOTSENT_LOWAT, [3000], 4) = 0",
     "needs engine: TCP_NOTSENT_LOWAT (unsent-byte limit)"),
    ("+0 < [ect0] . 1:1001(1000) ack 1 win 257",
     "IP-level fields in packets (ttl, tos, ECN codepoints, UDP encapsulation)"),
    ("+0 < S 0:10(10) win 32792 <mss 1460,FO TFO_COOKIE,nop,nop>",
     "Fast Open cookie TFO_COOKIE: packetdrill defines it on its command line (-D), "
     "the script does not"),
    ("+0 > icmp unreachable frag_needed mtu 1400",
     "needs runner: ICMP packets sent by the host"),
    ("+0 setsockopt(4, SOL_TCP, TCP_CONGESTION, \"cubic\", 5) = 0",
     "needs engine: a choice of congestion control (TCP_CONGESTION)"),
    ("+0 %{ assert tcpi_busy_time == 0 }%", "needs engine: TCP_INFO field tcpi_busy_time"),
    ("+0 sendfile(4, 5, ..., 5) = 5", "needs runner: files (sendfile, splice)"),
])
def test_scripts_needing_missing_features_skip_before_running(tmp_path: Path, line: str,
                                                              reason: str) -> None:
    r = run(tmp_path, SERVER + line + "\n")
    assert (r.status, r.reason) == (SKIP, reason)


def test_explore_runs_them_with_the_missing_options_dropped(tmp_path: Path) -> None:
    text = SERVER.replace("<mss 1460,nop,wscale 8>", "<mss 1460,nop,wscale 8,md5 0011>")
    p = tmp_path / "t.pkt"
    p.write_text(text)
    assert run_script(p, "linux").reason == "needs engine: TCP MD5 signatures (RFC 2385)"
    r = run_script(p, "linux-explore")
    assert r.status == PASS, r.one_line()
    assert "explore: expected md5 dropped (the engine lacks them)" in r.adaptations


# ---------------------------------------------------------------- packets


def test_tso_sized_packet_matches_a_run_of_segments(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + "+.1 write(4, ..., 3000) = 3000\n+0 > P. 1:3001(3000) ack 1\n")
    assert r.status == PASS, r.one_line()
    assert any(a.startswith("a TSO-sized packet was matched") for a in r.adaptations)
    # A size that is not a run of the engine's segments still fails.
    r = run(tmp_path, SERVER + "+.1 write(4, ..., 3000) = 3000\n+0 > P. 1:2501(2500) ack 1\n")
    assert (r.status, r.reason) == (FAIL, "length differs")
    # tso off: segments are matched one by one.
    r = run(tmp_path, "`ethtool -K tun0 tso off gso off`\n" + SERVER +
            "+.1 write(4, ..., 3000) = 3000\n+0 > P. 1:3001(3000) ack 1\n")
    assert (r.status, r.reason) == (FAIL, "length differs")


def test_local_isn_named_by_the_script(tmp_path: Path) -> None:
    # packetdrill (socket.h): the SYN-ACK names our ISN; after it, our numbers count
    # from that ISN, as tcpdump prints them (1 is the first octet after the SYN).
    text = SERVER.replace("> S. 0:0(0) ack 1", "> S. 1234:1234(0) ack 1")
    r = run(tmp_path, text + "+.1 write(4, ..., 100) = 100\n+0 > P. 1:101(100) ack 1\n")
    assert r.status == PASS, r.one_line()
    r = run(tmp_path, text + "+.1 write(4, ..., 100) = 100\n+0 > P. 1235:1335(100) ack 1\n")
    assert (r.status, r.reason) == (FAIL, "sequence number differs")


def test_window_scale_is_the_receivers_choice_but_recorded(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER)
    assert r.status == PASS, r.one_line()
    assert any(a.startswith("window scale ") and "tcp_rmem[2]" in a for a in r.adaptations)


# ---------------------------------------------------------------- system calls


def test_blocking_accept_with_a_duration(tmp_path: Path) -> None:
    text = SERVER.replace("   +0 accept(3, ..., ...) = 4\n", "") \
        .replace("   +0 listen(3, 1) = 0\n",
                 "   +0 listen(3, 1) = 0\n   +0...0.200 accept(3, ..., ...) = 4\n")
    r = run(tmp_path, text + "+.1 write(4, ..., 100) = 100\n+0 > P. 1:101(100) ack 1\n")
    assert r.status == PASS, r.one_line()
    # Returning at 0.2 s while the script says 0.3 s fails, naming both.
    r = run(tmp_path, text.replace("0...0.200 accept", "0...0.300 accept"))
    assert r.status == FAIL and r.reason == "accept() returned at 0.200, expected at 0.300"
    assert r.line == 5


def test_blocking_read_returns_when_data_arrives(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + "+0...0.100 read(4, ..., 500) = 500\n"
                      "+.1 < P. 1:501(500) ack 1 win 257\n"
                      "+0 > . 1:1(0) ack 501\n")
    assert r.status == PASS, r.one_line()


def test_socket_buffers_maxseg_and_queues(tmp_path: Path) -> None:
    r = run(tmp_path, """    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_SNDBUF, [10000], 4) = 0
   +0 getsockopt(3, SOL_SOCKET, SO_SNDBUF, [20000], [4]) = 0
   +0 getsockopt(3, SOL_TCP, TCP_MAXSEG, [536], [4]) = 0
   +0 setsockopt(3, SOL_TCP, TCP_MAXSEG, [1100], 4) = 0
   +0 getsockopt(3, SOL_TCP, TCP_MAXSEG, [1100], [4]) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1300>
   +0 > S. 0:0(0) ack 1 <mss 1100>
   +0 < . 1:1(0) ack 1 win 30000
   +0 accept(3, ..., ...) = 4
   +0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1100], [4]) = 0
   +0 %{ assert tcpi_advmss == 1100, tcpi_advmss; assert tcpi_snd_mss == 1100 }%
   +0 < P. 1:701(700) ack 1 win 30000
   +0 > . 1:1(0) ack 701
   +0 ioctl(4, SIOCINQ, [700]) = 0
   +0 ioctl(3, SIOCINQ, [0]) = -1 EINVAL (Invalid argument)
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 write(4, ..., 30000) = 20000
   +0 > . 1:11001(11000) ack 701
   +0 ioctl(4, SIOCOUTQ, [20000]) = 0
""")
    assert r.status == PASS, r.one_line()


def test_efault_and_socket_arguments(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + """   +0 write(4, NULL, 1000) = -1 EFAULT (Bad address)
   +0 send(4, NULL, 1000, 0) = -1 EFAULT (Bad address)
   +0 read(4, NULL, 1000) = -1 EAGAIN (Resource temporarily unavailable)
   +0 socket(..., SOCK_STREAM, IPPROTO_UDP) = -1 EPROTONOSUPPORT (Protocol not supported)
   +0 socket(AF_UNIX, SOCK_STREAM, IPPROTO_TCP) = -1 EAFNOSUPPORT (Address family not supported)
   +0 socket(..., SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 5
   +0 fcntl(5, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
   +0 send(5, ..., 10, 0) = -1 EPIPE (Broken pipe)
""".replace("read(4, NULL", "fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n   +0 read(4, NULL"))
    assert r.status == PASS, r.one_line()
    r = run(tmp_path, SERVER + "+0 < P. 1:101(100) ack 1 win 257\n"
                      "+0 recv(4, NULL, 100, 0) = -1 EFAULT (Bad address)\n")
    assert r.status == PASS, r.one_line()


def test_recvmsg_reports_tcp_cm_inq(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + """   +0 setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0
   +0 < P. 1:3001(3000) ack 1 win 257
   +0 > . 1:1(0) ack 3001
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=2000}]}, 0) = 1000
   +0 < F. 3001:3001(0) ack 1 win 257
   +.04 > . 1:1(0) ack 3002
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 5000}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=1}]}, 0) = 2000
""")
    assert r.status == PASS, r.one_line()


def test_poll_and_epoll_over_the_engines_readiness(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + """\
   +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
   +0 epoll_create(1) = 5
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN|EPOLLET, fd=4}) = 0
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 0
   +0...0.1 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 500) = 1
  +.1 < P. 1:101(100) ack 1 win 257
   +0 > . 1:1(0) ack 101
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 0
   +0...0.5 poll([{fd=4, events=POLLPRI, revents=0}], 1, 500) = 0
""")
    assert r.status == PASS, r.one_line()


def test_poll_revents_are_checked(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + "+0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLIN}], 1, 0)"
                      " = 1\n")
    assert (r.status, r.reason, r.actual) == (FAIL, "poll revents differ",
                                              "fd 4 revents = POLLOUT")


def test_tcpi_checks_fail_with_the_values(tmp_path: Path) -> None:
    r = run(tmp_path, SERVER + "+0 %{ assert tcpi_snd_mss == 1460, tcpi_snd_mss }%\n")
    assert r.status == FAIL
    assert r.actual == "assert tcpi_snd_mss == 1460 failed (tcpi_snd_mss = 1000)"
    r = run(tmp_path, SERVER + "+0 %{ import os }%\n")
    assert (r.status, r.reason) == (SKIP, "inline code: Python other than assert statements")
    r = run(tmp_path, SERVER + "+0 %{ assert tcpi_state == TCP_ESTABLISHED and "
                      "tcpi_options & TCPI_OPT_WSCALE }%\n")
    assert r.status == PASS, r.one_line()


# ---------------------------------------------------------------- the report


def test_no_script_run_has_no_pass_rate(tmp_path: Path) -> None:
    (tmp_path / "a.pkt").write_text(SERVER + "+0 %{ assert tcpi_busy_time == 0 }%\n")
    report = run_paths([tmp_path], "linux")
    assert report.totals.pass_rate is None
    assert report.to_json()["totals"]["pass_rate"] is None
    assert "no script ran" in report.text()
    assert Totals(passed=1, failed=1).pass_rate == 0.5


def test_report_beside_the_real_results(tmp_path: Path) -> None:
    tcp = tmp_path / "tcp"
    for folder, name, body in [("close", "a.pkt", SERVER), ("close", "b.pkt", "0 nonsense\n"),
                               ("mss", "c.pkt", SERVER + "+0 %{ assert tcpi_busy_time == 0 }%\n")]:
        (tcp / folder).mkdir(parents=True, exist_ok=True)
        (tcp / folder / name).write_text(body)
    (tmp_path / "linux-9.9-real-results.txt").write_text(
        "tcp/close/a.pkt 1\ntcp/close/b.pkt 0\ntcp/mss/c.pkt 0\nfinished\n")
    report = run_paths([tcp], "linux")
    assert report.reference is not None
    assert report.compare() == {
        "close": {"tcplab_passed": 1, "tcplab_run": 2, "tcplab_skipped": 0,
                  "real_passed": 1, "real_total": 2},
        "mss": {"tcplab_passed": 0, "tcplab_run": 0, "tcplab_skipped": 1,
                "real_passed": 1, "real_total": 1}}
    text = report.text()
    assert "beside the real stack (linux-9.9-real-results.txt: 2 of 3 passed there)" in text
    assert "the real stack passes, tcplab does not (2):" in text
    assert "tcplab passes, the real stack does not (1):" in text
    data = json.loads(json.dumps(report.to_json()))
    assert [Path(p).name for p in data["reference"]["real_passes_tcplab_does_not"]] == [
        "b.pkt", "c.pkt"]
    assert Reference.load(tmp_path / "missing.txt") is None
    assert Report("linux").compare() == {}
