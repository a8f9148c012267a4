"""Named presets of the engine's configuration: ``rfc`` and ``linux``, and Linux's sysctls.

``rfc`` is RFC 9293 with its companions (RFC 6298, 5681, 6928, 7323, 1337,
5961), the engine's defaults.  ``linux`` is what a Linux 6.x kernel does out
of the box (read from this kernel's /proc/sys on 6.18 and from the kernel
sources named below).

Knobs that Linux exposes as sysctls are set by their Linux names:
``--sysctl net.ipv4.tcp_syn_retries=2`` (:func:`apply_sysctl`).  Each entry of
:data:`SYSCTLS` says which configuration field it sets, how its text is read,
and what the ``rfc`` and ``linux`` profiles hold.  Values Linux hard-codes
(TCP_TIMEWAIT_LEN, TCP_DELACK_MIN, TCP_INIT_CWND) are in :data:`LINUX_CONSTANTS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcplab.engine.config import TcpConfig

PROFILES = ("rfc", "linux")


class ConfigError(ValueError):
    """A profile, a sysctl name or a value the engine cannot take."""


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 0)
        except ValueError:
            raise ConfigError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{value} is out of range {lo}..{hi}")
        return value
    return parse


def _port_range(text: str) -> tuple[int, int]:
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        raise ConfigError(f"{text!r}: two ports, like '32768 60999'")
    lo, hi = (_int_range(1, 65535)(p) for p in parts)
    if lo > hi:
        raise ConfigError(f"{text!r}: the first port must not be above the second")
    return lo, hi


@dataclass(frozen=True)
class Sysctl:
    """One Linux sysctl the engine knows."""

    name: str                              #: full name: net.ipv4.tcp_syn_retries
    doc: str                               #: what it does, in one line
    parse: Callable[[str], Any]            #: text -> the sysctl's own value
    apply: Callable[[TcpConfig, Any], None]  #: sets the configuration fields
    show: Callable[[TcpConfig], str]       #: the configuration's value, in the sysctl's units
    linux: str                             #: Linux 6.x default, as /proc/sys shows it
    source: str                            #: where that default comes from


def _field(name: str, scale: float = 1.0) -> tuple[Callable[[TcpConfig, Any], None],
                                                  Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        setattr(cfg, name, value / scale if scale != 1.0 else value)

    def show(cfg: TcpConfig) -> str:
        v = getattr(cfg, name)
        if isinstance(v, bool):
            return str(int(v))
        if v is None:
            return "unlimited"
        if scale != 1.0:
            return str(round(v * scale))
        return str(v)
    return apply, show


def _syncookies() -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    modes = {0: "never", 1: "auto", 2: "always"}

    def apply(cfg: TcpConfig, value: Any) -> None:
        cfg.syn_cookies = modes[value]

    def show(cfg: TcpConfig) -> str:
        return str({v: k for k, v in modes.items()}[cfg.syn_cookies])
    return apply, show


def _ports() -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        cfg.ephemeral_low, cfg.ephemeral_high = value

    def show(cfg: TcpConfig) -> str:
        return f"{cfg.ephemeral_low}\t{cfg.ephemeral_high}"
    return apply, show


def _bool(name: str) -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        setattr(cfg, name, bool(value))

    def show(cfg: TcpConfig) -> str:
        return str(int(bool(getattr(cfg, name))))
    return apply, show


def _fastopen_key_text(text: str) -> str:
    """Linux's tcp_fastopen_key: four 32-bit hex words joined by '-' (a backup key
    after a ',' is accepted and ignored)."""
    primary = text.strip().split(",")[0]
    words = primary.split("-")
    if len(words) != 4 or not all(re.fullmatch(r"[0-9a-fA-F]{1,8}", w) for w in words):
        raise ConfigError(f"{text!r}: four hex words, like a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4")
    return "-".join(f"{int(w, 16):08x}" for w in words)


def _fastopen_key() -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        cfg.fastopen_key = str(value)

    def show(cfg: TcpConfig) -> str:
        return cfg.fastopen_key or "(random)"   # unset: the host draws its own
    return apply, show


def _rack() -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        cfg.rack = bool(value & 1)

    def show(cfg: TcpConfig) -> str:
        return str(int(cfg.rack))
    return apply, show


def _tlp() -> tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]]:
    def apply(cfg: TcpConfig, value: Any) -> None:
        cfg.tlp = value in (3, 4)

    def show(cfg: TcpConfig) -> str:
        return "3" if cfg.tlp else "0"
    return apply, show


def _sysctl(name: str, doc: str, parse: Callable[[str], Any],
            io: tuple[Callable[[TcpConfig, Any], None], Callable[[TcpConfig], str]],
            linux: str, source: str) -> Sysctl:
    return Sysctl(name, doc, parse, io[0], io[1], linux, source)


_TCP_C = "net/ipv4/tcp_ipv4.c tcp_sk_init()"
SYSCTLS: dict[str, Sysctl] = {s.name: s for s in [
    _sysctl("net.ipv4.tcp_syn_retries", "SYN retransmissions before connect() fails",
            _int_range(1, 127), _field("syn_retries"), "6", "include/net/tcp.h TCP_SYN_RETRIES"),
    _sysctl("net.ipv4.tcp_syn_linear_timeouts",
            "first SYN timeouts that do not back off (each also adds one retransmission)",
            _int_range(0, 10), _field("syn_linear_timeouts"), "4", _TCP_C + " (since 6.5)"),
    _sysctl("net.ipv4.tcp_synack_retries", "SYN-ACK retransmissions of a half-open connection",
            _int_range(1, 255), _field("synack_retries"), "5",
            "include/net/tcp.h TCP_SYNACK_RETRIES"),
    _sysctl("net.ipv4.tcp_retries2", "data retransmissions before the connection is dropped "
            "(on Linux a time budget: 15 is about 924.6 s)", _int_range(0, 255),
            _field("data_retries"), "15", "include/net/tcp.h TCP_RETR2"),
    _sysctl("net.ipv4.tcp_orphan_retries", "retransmissions after close() (0 means 8)",
            _int_range(0, 255), _field("orphan_retries"), "0", _TCP_C),
    _sysctl("net.ipv4.tcp_rto_min_us", "the smallest RTO (microseconds)",
            _int_range(1000, 1_000_000), _field("rto_min", 1e6), "200000",
            "include/net/tcp.h TCP_RTO_MIN (sysctl since 6.15)"),
    _sysctl("net.ipv4.tcp_rto_max_ms", "the largest RTO (milliseconds)",
            _int_range(1000, 120_000), _field("rto_max", 1e3), "120000",
            "include/net/tcp.h TCP_RTO_MAX (sysctl since 6.15)"),
    _sysctl("net.ipv4.tcp_fin_timeout", "FIN-WAIT-2 of a closed (orphaned) socket (seconds)",
            _int_range(1, 86400), _field("fin_wait_2_timeout"), "60",
            "include/net/tcp.h TCP_FIN_TIMEOUT"),
    _sysctl("net.ipv4.tcp_tw_reuse", "connect() may take a TIME-WAIT 4-tuple with timestamps: "
            "0 never, 1 always, 2 loopback only", _int_range(0, 2), _field("tw_reuse"), "2",
            _TCP_C + " (2 since 4.19)"),
    _sysctl("net.ipv4.tcp_tw_reuse_delay", "the TIME-WAIT entry's last timestamp must be this "
            "old before reuse (milliseconds)", _int_range(1, 2_000_000),
            _field("tw_reuse_delay", 1e3), "1000", _TCP_C + " (since 6.13)"),
    _sysctl("net.ipv4.tcp_max_tw_buckets", "TIME-WAIT entries at most; beyond, TIME-WAIT is "
            "skipped (TCPTimeWaitOverflow)", _int_range(0, 1 << 30), _field("max_tw_buckets"),
            "131072", "net/ipv4/tcp_ipv4.c: half the established hash size (memory-dependent)"),
    _sysctl("net.ipv4.tcp_rfc1337", "TIME-WAIT ignores RST (RFC 1337)", _int_range(0, 1),
            _bool("rfc1337"), "0", _TCP_C),
    _sysctl("net.ipv4.tcp_keepalive_time", "idle seconds before the first keep-alive probe",
            _int_range(1, 32767), _field("keepalive_time"), "7200",
            "include/net/tcp.h TCP_KEEPALIVE_TIME"),
    _sysctl("net.ipv4.tcp_keepalive_intvl", "seconds between keep-alive probes",
            _int_range(1, 32767), _field("keepalive_intvl"), "75",
            "include/net/tcp.h TCP_KEEPALIVE_INTVL"),
    _sysctl("net.ipv4.tcp_keepalive_probes", "unanswered probes before ETIMEDOUT",
            _int_range(1, 127), _field("keepalive_probes"), "9",
            "include/net/tcp.h TCP_KEEPALIVE_PROBES"),
    _sysctl("net.core.somaxconn", "listen() backlog at most (accept queue)",
            _int_range(0, 1 << 30), _field("somaxconn"), "4096",
            "include/linux/socket.h SOMAXCONN (4096 since 5.4; 128 before)"),
    _sysctl("net.ipv4.tcp_max_syn_backlog", "half-open connections at most without SYN cookies",
            _int_range(1, 1 << 30), _field("max_syn_backlog"), "2048",
            _TCP_C + " (128 at least, more with memory)"),
    _sysctl("net.ipv4.tcp_syncookies", "SYN cookies: 0 never, 1 when the SYN queue is full, "
            "2 always", _int_range(0, 2), _syncookies(), "1", _TCP_C),
    _sysctl("net.ipv4.tcp_abort_on_overflow", "RST the ACK that finds the accept queue full",
            _int_range(0, 1), _bool("abort_on_overflow"), "0", _TCP_C),
    _sysctl("net.ipv4.tcp_timestamps", "RFC 7323 timestamps (PAWS, RTT)", _int_range(0, 2),
            _bool("timestamps"), "1", _TCP_C),
    _sysctl("net.ipv4.tcp_sack", "SACK-permitted in SYNs and SACK blocks in ACKs (RFC 2018)",
            _int_range(0, 1), _bool("sack"), "1", _TCP_C),
    _sysctl("net.ipv4.tcp_dsack", "D-SACK: report data received twice (RFC 2883)",
            _int_range(0, 1), _bool("dsack"), "1", _TCP_C),
    _sysctl("net.ipv4.tcp_ecn", "ECN setup in the handshake (RFC 3168 6.1.1): 0 off, 1 ask "
            "for it and accept it, 2 accept it when asked", _int_range(0, 2), _field("ecn"),
            "2", _TCP_C + " (TCP_ECN_DEFAULT)"),
    _sysctl("net.ipv4.tcp_recovery", "RACK loss detection (RFC 8985): bit 1",
            _int_range(0, 7), _rack(), "1", _TCP_C + " (TCP_RACK_LOSS_DETECTION)"),
    _sysctl("net.ipv4.tcp_early_retrans", "tail loss probes (RFC 8985 7): 3 or 4",
            _int_range(0, 4), _tlp(), "3", _TCP_C),
    _sysctl("net.ipv4.tcp_window_scaling", "RFC 7323 window scaling", _int_range(0, 1),
            _bool("window_scale"), "1", _TCP_C),
    _sysctl("net.ipv4.ip_local_port_range", "ephemeral ports for connect()", _port_range,
            _ports(), "32768\t60999", "net/ipv4/af_inet.c inet_init_net()"),
    _sysctl("net.ipv4.tcp_fastopen", "TCP Fast Open: 1 client, 2 server, 0x200 server "
            "without cookie", _int_range(0, 0xFFFF), _field("fastopen"), "1",
            "include/net/tcp.h TFO_CLIENT_ENABLE"),
    _sysctl("net.ipv4.tcp_fastopen_key", "the server's Fast Open cookie key (siphash), four "
            "32-bit hex words", _fastopen_key_text, _fastopen_key(), "(random)",
            "net/ipv4/tcp_fastopen.c tcp_fastopen_init_key_once(): random at boot"),
    _sysctl("net.ipv4.tcp_challenge_ack_limit", "challenge ACKs per second (RFC 5961)",
            _int_range(0, 2**31 - 1), _field("challenge_ack_limit"), "2147483647",
            _TCP_C + " (INT_MAX since 6.0; 1000 before)"),
    _sysctl("net.ipv4.tcp_invalid_ratelimit", "least gap between ACKs answering invalid "
            "segments (milliseconds)", _int_range(0, 60_000), _field("oow_ack_interval", 1e3),
            "500", _TCP_C),
]}

#: Values Linux hard-codes, with where they come from (not settable by sysctl).
LINUX_CONSTANTS: dict[str, tuple[str, str, str]] = {
    # field: (value as shown, Linux name, source)
    "time_wait": ("60 s", "TCP_TIMEWAIT_LEN", "include/net/tcp.h: fixed, not derived from MSL"),
    "delayed_ack": ("40 ms", "TCP_DELACK_MIN / TCP_ATO_MIN", "include/net/tcp.h"),
    "rto_initial": ("1 s", "TCP_TIMEOUT_INIT", "include/net/tcp.h (RFC 6298)"),
    "initial_cwnd_segments": ("10", "TCP_INIT_CWND", "include/net/tcp.h (RFC 6928)"),
    "quickack": ("on", "quick-ACK and ping-pong modes", "net/ipv4/tcp_input.c "
                 "tcp_in_quickack_mode(), tcp_incr_quickack()"),
    "linux_rto": ("SRTT + max(4*RTTVAR, rto_min)", "tcp_rtt_estimator()",
                  "net/ipv4/tcp_input.c"),
    "retries_by_time": ("on", "tcp_model_timeout()", "net/ipv4/tcp_timer.c"),
    "accept_backlog_plus_one": ("on", "sk_acceptq_is_full(): len > backlog",
                                "include/net/sock.h"),
    "iw_rfc6928": ("off: 10 segments whatever the MSS", "tcp_init_cwnd()",
                   "net/ipv4/tcp_output.c"),
    "active_rst_ack": ("on", "tcp_send_active_reset(): RST,ACK with timestamps",
                       "net/ipv4/tcp_output.c"),
    "linux_window": ("on: the window offered starts at 64 KB and grows by two segments "
                     "per data segment received, up to the buffer",
                     "__tcp_select_window(), tcp_grow_window() (rcv_ssthresh)",
                     "net/ipv4/tcp_output.c, tcp_input.c"),
    "syn_data_queued": ("off: data in a SYN without a valid Fast Open cookie is dropped",
                        "tcp_conn_request()", "net/ipv4/tcp_input.c"),
    "linux_sender": ("on: cwnd in packets, RACK (RFC 8985), PRR (RFC 6937), Reno",
                     "tcp_cong_avoid(), tcp_rack_mark_lost(), tcp_cwnd_reduction()",
                     "net/ipv4/tcp_input.c, tcp_recovery.c, tcp_cong.c"),
}


def _linux() -> TcpConfig:
    cfg = TcpConfig()
    for s in SYSCTLS.values():
        if not s.linux.startswith("("):   # "(random)": nothing fixed to apply
            s.apply(cfg, s.parse(s.linux))
    cfg.time_wait = 60.0
    cfg.delayed_ack = 0.04
    cfg.rto_initial = 1.0
    cfg.initial_cwnd_segments = 10
    cfg.quickack = True
    cfg.linux_rto = True
    cfg.retries_by_time = True
    cfg.accept_backlog_plus_one = True
    cfg.iw_rfc6928 = False
    cfg.active_rst_ack = True
    cfg.synsent_rst_rearm = 0.002   # TCP_TIMEOUT_MIN, 2 jiffies at HZ=1000 (8 ms at HZ=250)
    cfg.paws_syn_challenge = True
    cfg.isn_tick_ns = 64            # secure_tcp_seq: ktime_get_real_ns() >> 6
    cfg.tw_reopen_isn = True        # tcp_timewait_state_process: tw_snd_nxt + 65535 + 2
    cfg.linux_sender = True
    cfg.syn_data_queued = False
    cfg.linux_window = True
    cfg.profile = "linux"
    return cfg


def profile(name: str) -> TcpConfig:
    """A fresh configuration of the named profile (``rfc`` or ``linux``)."""
    if name == "rfc":
        return TcpConfig()
    if name == "linux":
        return _linux()
    raise ConfigError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")


def sysctl_name(name: str) -> str:
    """The full name of a sysctl given in short form (``tcp_syn_retries``) or as a path."""
    name = name.strip().replace("/", ".")
    if name.startswith("proc.sys."):
        name = name[len("proc.sys."):]
    if name in SYSCTLS:
        return name
    for prefix in ("net.ipv4.", "net.core."):
        if prefix + name in SYSCTLS:
            return prefix + name
    raise ConfigError(f"unknown sysctl {name!r}; tcplab knows: "
                      + ", ".join(sorted(SYSCTLS)))


def apply_sysctl(config: TcpConfig, assignment: str) -> None:
    """Set one ``net.ipv4.NAME=VALUE`` on ``config`` (ConfigError, naming the knob, if bad)."""
    if "=" not in assignment:
        raise ConfigError(f"{assignment!r}: expected NAME=VALUE, e.g. "
                          "net.ipv4.tcp_syn_retries=2")
    name, _, text = assignment.partition("=")
    full = sysctl_name(name)
    s = SYSCTLS[full]
    try:
        value = s.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{full}: {exc}") from None
    s.apply(config, value)


def configured(name: str = "rfc", sysctls: list[str] | tuple[str, ...] = ()) -> TcpConfig:
    """A profile with sysctls applied on top, in order."""
    cfg = profile(name)
    for assignment in sysctls:
        apply_sysctl(cfg, assignment)
    return cfg


def table(config: TcpConfig) -> list[tuple[str, str]]:
    """Every sysctl with the value ``config`` holds, in the sysctl's own units."""
    return [(s.name, s.show(config)) for s in SYSCTLS.values()]
