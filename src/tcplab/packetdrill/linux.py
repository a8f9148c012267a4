"""The ``linux`` profile: Linux's packetdrill dialect mapped onto the engine.

Linux's own scripts (google/packetdrill gtests/net/tcp) start with
``../common/defaults.sh`` (Linux's production sysctls) and change more with
``sysctl -q``, ``set_sysctls.py /proc/sys/...=V`` or ``echo V > /proc/sys/...``.
Every one of these goes through :data:`SYSCTLS`, one table keyed by the
Linux sysctl name, which says what the setting means for the engine:

* ``field``: a :class:`~tcplab.engine.TcpConfig` field receives the value
  (``tcp_syn_retries`` -> ``syn_retries``);
* ``feature``: a mechanism the engine may not have yet (timestamps, SACK, Fast
  Open, ...), named in :data:`FEATURES`.  When :class:`TcpConfig` has the
  feature's field, the value is applied.  When it does not, a value that
  matches what the engine does anyway (``tcp_timestamps=0``) is accepted; a
  value that turns the mechanism on is remembered if it came from
  ``defaults.sh`` (the script is skipped only if it observes the mechanism,
  see :func:`needs`), and skips the script with ``needs engine: ...`` if the
  script set it itself.  When the lead adds the field to the engine, the row
  starts applying: nothing else changes;
* ``accept``: no effect on what the engine does (with the reason);
* ``skip``: the script is skipped with the reason.

:func:`needs` looks through a parsed script for what it observes that the
engine (or this runner) does not have: options in the packets it expects,
socket calls and options, ICMP packets, TCP_INFO fields.  A script that
needs one is skipped with every reason named, so the report can group the
Linux suite by missing feature.

Linux constants that are not sysctls (TCP_RTO_MIN 200 ms, TCP_RTO_MAX 120 s,
TCP_DELACK_MIN 40 ms, TIME-WAIT 60 s) come from :func:`linux_config`; when
the engine grows its own Linux profile (``TcpConfig.linux()``), that is used.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.engine import Connection, Host, TcpConfig
from tcplab.packetdrill.profile import Skip
from tcplab.packetdrill.script import (
    BitOr,
    CallArg,
    CodeSpec,
    IcmpSpec,
    Ident,
    ListArg,
    PacketSpec,
    Script,
    StructArg,
    SyscallSpec,
)

NEEDS = "needs engine: "
NEEDS_RUNNER = "needs runner: "
MAX_SHELL_FILE = 1 << 16        #: defaults.sh is 2 KB; a larger file is refused
MAX_INCLUDE_DEPTH = 4           #: defaults.sh reached through "symlink" files


# ------------------------------------------------------------------ engine features

@dataclass(frozen=True, slots=True)
class Feature:
    """A mechanism a Linux script can need, and how to tell that the engine has it."""

    name: str                                  #: as the report prints it
    config_field: str | None = None            #: a TcpConfig field that switches it on
    available: Callable[[], bool] | None = None  #: or another test of the engine's API

    def present(self) -> bool:
        if self.config_field is not None and self.config_field in _CONFIG_FIELDS:
            return True
        return self.available is not None and self.available()

    @property
    def reason(self) -> str:
        return NEEDS + self.name


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(TcpConfig))


def _has(obj: object, attr: str) -> Callable[[], bool]:
    return lambda: hasattr(obj, attr)


def _send_takes(param: str) -> Callable[[], bool]:
    return lambda: param in inspect.signature(Connection.send).parameters


FEATURES: dict[str, Feature] = {
    "timestamps": Feature("TCP timestamps (RFC 7323)", "timestamps"),
    "sack": Feature("SACK (RFC 2018)", "sack"),
    "dsack": Feature("D-SACK (RFC 2883)", "dsack"),
    "fastopen": Feature("TCP Fast Open (RFC 7413)", available=_has(Host, "fastopen")),
    "ecn": Feature("ECN (RFC 3168)", "ecn"),
    "md5": Feature("TCP MD5 signatures (RFC 2385)", "md5"),
    "frto": Feature("F-RTO (RFC 5682)", "frto"),
    "rack": Feature("RACK loss detection (RFC 8985)", "rack"),
    "tlp": Feature("tail loss probes (RACK-TLP, RFC 8985)", "tlp"),
    "cubic": Feature("CUBIC congestion control (RFC 9438)", "congestion_control"),
    "idle_restart": Feature("slow start after idle (RFC 5681 4.1)", "slow_start_after_idle"),
    "dupthresh": Feature("a configurable duplicate-ACK threshold (tcp_reordering)",
                         "dupthresh"),
    "mtu_probing": Feature("packetization-layer path MTU discovery (RFC 4821)",
                           "mtu_probing"),
    "icmp": Feature("ICMP errors and path MTU (RFC 5927, RFC 1191)",
                    available=_has(Host, "receive_icmp")),
    "user_timeout": Feature("TCP_USER_TIMEOUT (RFC 5482)",
                            available=_has(Connection, "set_user_timeout")),
    "keepalive": Feature("keep-alive (RFC 9293 3.8.4)",
                         available=_has(Connection, "set_keepalive")),
    "cork": Feature("TCP_CORK / MSG_MORE (holding a partial segment)",
                    available=_has(Connection, "set_cork")),
    "eor": Feature("MSG_EOR (no coalescing across a record boundary)",
                   available=_send_takes("eor")),
    "notsent_lowat": Feature("TCP_NOTSENT_LOWAT (unsent-byte limit)",
                             available=_has(Connection, "unsent_bytes")),
    "tcp_info": Feature("TCP_INFO counters", available=_has(Connection, "tcp_info")),
    "pacing": Feature("pacing (fq qdisc, SO_MAX_PACING_RATE)", "pacing"),
    "congestion_choice": Feature("a choice of congestion control (TCP_CONGESTION)",
                                 "congestion_control"),
    "tso_sizing": Feature("Linux TSO sizing (tcp_min_tso_segs, tcp_tso_win_divisor)",
                          "min_tso_segs"),
    "local_drop": Feature("local send failures (a qdisc that drops every packet)",
                          available=_has(Host, "local_drop")),
    "syn_count": Feature("per-socket SYN retries (TCP_SYNCNT)",
                         available=_has(Connection, "syn_retries")),
    "snmp": Feature("SNMP counters (nstat)", available=_has(Host, "snmp")),
}


def feature_reason(key: str) -> str | None:
    """``needs engine: ...`` when the engine lacks feature ``key``, else None."""
    f = FEATURES[key]
    return None if f.present() else f.reason


# ------------------------------------------------------------------ the sysctl table

Value = int | str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Sysctl:
    """One row of :data:`SYSCTLS`: what a Linux sysctl means for the engine."""

    kind: str                        #: field | feature | accept | skip
    field: str | None = None         #: TcpConfig field (kind field / feature)
    convert: Callable[[Value], object] | None = None
    feature: str | None = None       #: FEATURES key (kind feature)
    off: Callable[[Value], bool] | None = None  #: the value leaves the mechanism off
    why: str = ""                    #: accept / skip: the reason


def _int_value(v: Value) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, tuple) and len(v) == 1:
        return v[0]
    raise ValueError(f"expected a number, got {v!r}")


def _middle(v: Value) -> int:
    """``tcp_rmem``/``tcp_wmem`` "min default max": the default buffer."""
    if isinstance(v, tuple) and len(v) == 3:
        return v[1]
    raise ValueError(f"expected three numbers (min default max), got {v!r}")


def _zero(v: Value) -> bool:
    return v == 0 or v == (0,)


SYSCTLS: dict[str, Sysctl] = {
    # Buffers: the default (middle) value is the socket's buffer.  Linux picks
    # its window-scale shift from tcp_rmem[2] (see WSCALE_FROM_MAX below).
    "net.ipv4.tcp_rmem": Sysctl("field", "rcv_buf", _middle),
    "net.ipv4.tcp_wmem": Sysctl("field", "snd_buf", _middle),
    "net.ipv4.tcp_syn_retries": Sysctl("field", "syn_retries", _int_value),
    "net.ipv4.tcp_synack_retries": Sysctl("field", "synack_retries", _int_value),
    "net.ipv4.tcp_retries2": Sysctl("field", "data_retries", _int_value),
    "net.ipv4.tcp_fin_timeout": Sysctl("field", "fin_wait_2_timeout",
                                       lambda v: float(_int_value(v))),
    "net.ipv4.tcp_syncookies": Sysctl(
        "field", "syn_cookies",
        lambda v: {0: "never", 1: "auto", 2: "always"}.get(_int_value(v), "auto")),
    "net.ipv4.tcp_rfc1337": Sysctl("field", "rfc1337", lambda v: bool(_int_value(v))),
    # Mechanisms the engine may not have (FEATURES).
    "net.ipv4.tcp_timestamps": Sysctl("feature", "timestamps", _int_value, "timestamps",
                                      _zero),
    "net.ipv4.tcp_sack": Sysctl("feature", "sack", _int_value, "sack", _zero),
    "net.ipv4.tcp_dsack": Sysctl("feature", "dsack", _int_value, "dsack", _zero),
    "net.ipv4.tcp_frto": Sysctl("feature", "frto", _int_value, "frto", _zero),
    "net.ipv4.tcp_ecn": Sysctl("feature", "ecn", _int_value, "ecn", _zero),
    "net.ipv4.tcp_fastopen": Sysctl("feature", "fastopen", _int_value, "fastopen", _zero),
    "net.ipv4.tcp_recovery": Sysctl("feature", "rack", _int_value, "rack", _zero),
    "net.ipv4.tcp_early_retrans": Sysctl("feature", "tlp", _int_value, "tlp", _zero),
    "net.ipv4.tcp_mtu_probing": Sysctl("feature", "mtu_probing", _int_value, "mtu_probing",
                                       _zero),
    "net.ipv4.tcp_slow_start_after_idle": Sysctl("feature", "slow_start_after_idle",
                                                 _int_value, "idle_restart", _zero),
    "net.ipv4.tcp_reordering": Sysctl("feature", "dupthresh", _int_value, "dupthresh",
                                      lambda v: v == 3),   # the engine's fixed threshold
    "net.ipv4.tcp_congestion_control": Sysctl("feature", "congestion_control", str, "cubic",
                                              lambda v: v == "reno"),
    "net.ipv4.tcp_min_tso_segs": Sysctl("feature", "min_tso_segs", _int_value, "tso_sizing",
                                        lambda v: False),
    "net.ipv4.tcp_tso_win_divisor": Sysctl("feature", "tso_win_divisor", _int_value,
                                           "tso_sizing", lambda v: False),
    # No effect on what the engine does.
    "net.ipv4.tcp_fack": Sysctl("accept", why="FACK was removed from Linux in 4.15"),
    "net.ipv4.tcp_ecn_option": Sysctl("accept", why="AccECN options: only with tcp_ecn=3"),
    "net.ipv4.tcp_pacing_ss_ratio": Sysctl("accept", why="pacing ratios: no pacing without "
                                           "fq or a congestion control that asks for it"),
    "net.ipv4.tcp_pacing_ca_ratio": Sysctl("accept", why="pacing ratios: no pacing without "
                                           "fq or a congestion control that asks for it"),
    "net.ipv4.tcp_notsent_lowat": Sysctl("accept", why="read by the runner's poll/epoll "
                                         "(TCP_NOTSENT_LOWAT)"),
    "net.ipv4.tcp_fastopen_key": Sysctl("accept", why="only used with Fast Open"),
    "net.ipv4.tcp_fastopen_blackhole_timeout_sec": Sysctl("accept",
                                                          why="only used with Fast Open"),
    "net.ipv4.tcp_fastopen_cookies": Sysctl("accept", why="only used with Fast Open"),
    "net.ipv4.tcp_base_mss": Sysctl("accept", why="only used with MTU probing"),
}

#: Linux's window-scale shift comes from tcp_rmem[2]: ilog2(max buffer) - 15.
#: The engine derives it from its buffer until TcpConfig has this field.
WSCALE_FROM_MAX = "rcv_buf_max"


def _parse_value(text: str) -> Value:
    words = text.split()
    if len(words) == 1:
        try:
            return int(words[0], 0)
        except ValueError:
            return words[0]
    try:
        return tuple(int(w, 0) for w in words)
    except ValueError:
        return text


@dataclass(slots=True)
class LinuxSettings:
    """What the script's shell lines set, for the interpreter and :func:`needs`."""

    config: TcpConfig
    wanted: set[str] = field(default_factory=set)      #: features defaults.sh turns on
    notes: list[str] = field(default_factory=list)
    #: set_sysctls.py: (name, value before, TcpConfig field value before) for the restore
    restore: list[tuple[str, Value | None, object]] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    tso: bool = True                  #: the tun device does TSO (ethtool ... tso off clears)
    wscale_adapted: bool = True       #: the engine cannot take Linux's wscale rule

    def remember(self, name: str) -> None:
        """Before set_sysctls.py changes ``name``: what its restore script puts back."""
        row = SYSCTLS.get(name)
        fld = row.field if row is not None else None
        before = getattr(self.config, fld) if fld is not None and fld in _CONFIG_FIELDS \
            else None
        self.restore.append((name, self.values.get(name), before))

    def undo(self) -> None:
        """``/tmp/sysctl_restore_${PPID}.sh``: put back what set_sysctls.py changed."""
        for name, value, before in reversed(self.restore):
            row = SYSCTLS.get(name)
            if value is not None:
                self.apply(name, value, True)
            elif row is not None and row.field in _CONFIG_FIELDS and before is not None:
                setattr(self.config, row.field, before)
                self.values.pop(name, None)
            elif row is not None and row.feature is not None:
                self.wanted.discard(row.feature)
        self.restore.clear()

    def apply(self, name: str, value: Value, from_defaults: bool) -> None:
        """Apply one Linux sysctl, or raise Skip."""
        name = name.replace("/", ".")
        row = SYSCTLS.get(name)
        if row is None:
            raise Skip(f"sysctl {name} has no row in the Linux table")
        self.values[name] = value
        if name == "net.ipv4.tcp_rmem" and isinstance(value, tuple) and len(value) == 3 \
                and WSCALE_FROM_MAX in _CONFIG_FIELDS:
            setattr(self.config, WSCALE_FROM_MAX, value[2])
            self.wscale_adapted = False
        if row.kind == "accept":
            return
        if row.kind == "skip":
            raise Skip(row.why)
        assert row.field is not None
        try:
            converted = row.convert(value) if row.convert is not None else value
        except ValueError as exc:
            raise Skip(f"sysctl {name}: {exc}") from None
        if row.field in _CONFIG_FIELDS:
            if isinstance(getattr(self.config, row.field), bool):
                converted = bool(converted)  # a flag given as 0/1 (compiled classes check)
            setattr(self.config, row.field, converted)
            return
        assert row.kind == "feature" and row.feature is not None
        if row.off is not None and row.off(value):
            self.wanted.discard(row.feature)
            return
        if from_defaults:
            self.wanted.add(row.feature)
            return
        raise Skip(FEATURES[row.feature].reason + f" ({name.removeprefix('net.ipv4.')}="
                   f"{_value_text(value)})")


def _value_text(v: Value) -> str:
    return " ".join(str(x) for x in v) if isinstance(v, tuple) else str(v)


def linux_config() -> TcpConfig:
    """The engine's settings for a Linux host before any sysctl.

    Linux constants that no sysctl changes: TCP_RTO_MIN 200 ms, TCP_RTO_MAX
    120 s, TCP_TIMEOUT_INIT 1 s, TCP_DELACK_MIN 40 ms, TCP_TIMEWAIT_LEN 60 s;
    and the kernel's sysctl defaults: tcp_syn_retries 6, tcp_synack_retries 5,
    tcp_retries2 15, tcp_rmem 4096 131072 6291456, tcp_wmem 4096 16384 4194304,
    ip_local_port_range 32768-60999.
    """
    make = getattr(TcpConfig, "linux", None)
    if callable(make):
        cfg = make()
        if isinstance(cfg, TcpConfig):
            return cfg
    # Buffers: the kernel's own tcp_rmem[1] and tcp_wmem[1] (defaults.sh changes them).
    return TcpConfig(rto_min=0.2, rto_max=120.0, rto_initial=1.0, delayed_ack=0.04, msl=30.0,
                     syn_retries=6, synack_retries=5, data_retries=15, rcv_buf=131072,
                     snd_buf=16384)


# ------------------------------------------------------------------ shell lines

_REDIRECT = re.compile(r"\s*(?:&>|\d?>>?)\s*/dev/null|\s*\d?>&\d")
_ARITH = re.compile(r"\$\(\(([^()]*)\)\)")
_ARITH_OK = re.compile(r"^[0-9+\-*/ ]{1,64}$")


def _arith(m: re.Match[str]) -> str:
    """``$((15*1024*1024))``: integer arithmetic with + - * / only."""
    expr = m.group(1)
    if not _ARITH_OK.match(expr):
        raise Skip(f"shell arithmetic {expr[:30]!r} is not understood")
    total = 0
    for term in re.findall(r"[+-]?[^+-]+", expr.replace(" ", "")):
        sign = -1 if term.startswith("-") else 1
        factors = re.split(r"([*/])", term.lstrip("+-"))
        value = int(factors[0])
        for op, num in zip(factors[1::2], factors[2::2], strict=True):
            n = int(num)
            if op == "*":
                value *= n
            elif n:
                value //= n
            if value.bit_length() > 64:
                raise Skip("shell arithmetic beyond 64 bits")
        total += sign * value
    return str(total)


def shell_commands(command: str) -> Iterator[list[list[str]]]:
    """Each command of a shell line as alternatives (``a || b``), each a word list."""
    text = re.sub(r"\\\n", " ", command)
    text = re.sub(r"\\\s*$", "", text)       # a continuation into nothing
    for line in text.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        line = _ARITH.sub(_arith, line)
        for part in re.split(r";|&&", line):
            alts: list[list[str]] = []
            for alt in part.split("||"):
                alt = _REDIRECT.sub("", alt).strip()
                if not alt:
                    continue
                try:
                    alts.append(shlex.split(alt))
                except ValueError:
                    raise Skip(f"shell command {alt[:30]!r} does not parse") from None
            if alts:
                yield alts


@dataclass(slots=True)
class LinuxShell:
    """Runs the shell lines of a Linux script against :class:`LinuxSettings`."""

    settings: LinuxSettings
    script_dir: Path
    root: Path | None = None          #: where included files may be read from

    def run(self, command: str, from_defaults: bool = False, depth: int = 0) -> None:
        for alts in shell_commands(command):
            last: Skip | None = None
            for words in alts:
                try:
                    self._one(words, from_defaults, depth)
                    last = None
                    break
                except Skip as exc:
                    last = exc
            if last is not None:
                raise last

    def _one(self, words: list[str], from_defaults: bool, depth: int) -> None:
        cmd = words[0]
        base = cmd.rsplit("/", 1)[-1]
        if base == "defaults.sh":
            self._include(cmd, depth)
            return
        if base == "set_sysctls.py":
            for arg in words[1:]:
                self._proc(arg, from_defaults)
            return
        if cmd.startswith("/proc/sys/") and "=" in cmd:   # a continuation of set_sysctls.py
            for arg in words:
                self._proc(arg, from_defaults)
            return
        if re.fullmatch(r"/tmp/sysctl_restore_\$\{?PPID\}?\.sh", cmd):
            self.settings.undo()
            return
        if cmd == "sysctl":
            for arg in words[1:]:
                if arg.startswith("-"):
                    continue
                name, sep, value = arg.partition("=")
                if not sep:
                    raise Skip(f"sysctl {name} (a read) has no engine equivalent")
                self.settings.apply(name, _parse_value(value), from_defaults)
            return
        if cmd == "echo" and len(words) == 4 and words[2] == ">":
            target = words[3]
            if target.startswith("/proc/sys/"):
                self._proc(f"{target}={words[1]}", from_defaults)
                return
            if "tcp_cubic" in target:
                raise Skip(FEATURES["cubic"].reason + " (hystart)")
            raise Skip(f"writing {target} has no engine equivalent")
        if cmd == "ip" and words[1:3] == ["tcp_metrics", "flush"]:
            return   # the engine keeps no per-destination metrics (no cookie cache)
        if cmd == "ip" and "route" in words[1:3]:
            self._route(words)
            return
        if cmd == "tc" and "qdisc" in words:
            self._qdisc(words)
            return
        if cmd == "ethtool" and "-K" in words:
            pairs = dict(zip(words[3::2], words[4::2], strict=False))
            if pairs.get("tso") == "off" or pairs.get("gso") == "off":
                self.settings.tso = False
            return
        if cmd == "nstat":
            raise Skip(FEATURES["snmp"].reason)
        if cmd in ("grep", "cat") and any("/proc/net/" in w for w in words):
            raise Skip(NEEDS_RUNNER + "reading /proc/net/tcp")
        if base in ("dd", "rm"):
            raise Skip(NEEDS_RUNNER + "files (sendfile, splice)")
        raise Skip(f"shell command `{base}` has no engine equivalent")

    def _proc(self, arg: str, from_defaults: bool) -> None:
        path, sep, value = arg.partition("=")
        if not sep or not path.startswith("/proc/sys/"):
            raise Skip(f"set_sysctls.py argument {arg[:40]!r} is not /proc/sys/NAME=VALUE")
        name = path.removeprefix("/proc/sys/").replace("/", ".")
        self.settings.remember(name)
        self.settings.apply(name, _parse_value(value), from_defaults)

    def _include(self, cmd: str, depth: int) -> None:
        if depth >= MAX_INCLUDE_DEPTH:
            raise Skip("defaults.sh: too many levels of indirection")
        path = (self.script_dir / cmd).resolve()
        if self.root is not None and not path.is_relative_to(self.root):
            raise Skip(f"{cmd}: outside the scripts' tree")
        if not path.is_file():       # a FIFO or a device would block or never end
            raise Skip(f"{cmd} not found next to the script")
        try:
            with path.open("rb") as f:
                data = f.read(MAX_SHELL_FILE + 1)
        except OSError:
            raise Skip(f"{cmd} not found next to the script") from None
        if len(data) > MAX_SHELL_FILE:
            raise Skip(f"{cmd} is larger than {MAX_SHELL_FILE} bytes")
        text = data.decode("utf-8", errors="replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) == 1 and "\n" not in text.strip() and text.strip().endswith(".sh") \
                and not text.startswith("#"):
            # A symbolic link stored as a file holding its target (as git does
            # without symlink support): follow it.
            inner = LinuxShell(self.settings, path.parent, self.root)
            inner._include(text.strip(), depth + 1)
            return
        self.settings.notes.append(f"Linux defaults applied from {path.name}")
        inner = LinuxShell(self.settings, path.parent, self.root)
        for line in lines:
            if line.lstrip().startswith("#"):
                continue
            inner.run(line, from_defaults=True, depth=depth + 1)

    def _route(self, words: list[str]) -> None:
        """``ip route change ... advmss N mtu lock M initcwnd K``: route metrics."""
        opts = words[3:]
        cfg = self.settings.config
        for i, w in enumerate(opts[:-1]):
            nxt = opts[i + 1]
            if w == "advmss" and nxt.isdigit():
                cfg.mss = int(nxt)
            elif w == "initcwnd" and nxt.isdigit():
                cfg.initial_cwnd_segments = int(nxt)
            elif w == "mtu":
                mtu = opts[i + 2] if nxt == "lock" and i + 2 < len(opts) else nxt
                if mtu.isdigit():
                    cfg.mss = min(cfg.mss, int(mtu) - 40)

    def _qdisc(self, words: list[str]) -> None:
        if "fq" in words:
            raise Skip(FEATURES["pacing"].reason)
        if "limit" in words and words[words.index("limit") + 1:][:1] == ["0"]:
            raise Skip(FEATURES["local_drop"].reason)
        if "delete" in words or "pfifo" in words:
            return   # a FIFO without pacing: what the engine does anyway
        raise Skip(f"tc {' '.join(words[1:3])} has no engine equivalent")


# ------------------------------------------------------------------ what a script needs

#: Socket options and flags the runner or the engine cannot honour yet.
SOCKOPT_FEATURES = {
    "TCP_FASTOPEN": "fastopen", "TCP_FASTOPEN_CONNECT": "fastopen",
    "TCP_FASTOPEN_KEY": "fastopen", "TCP_FASTOPEN_NO_COOKIE": "fastopen",
    "TCP_USER_TIMEOUT": "user_timeout", "SO_KEEPALIVE": "keepalive",
    "TCP_KEEPIDLE": "keepalive", "TCP_KEEPINTVL": "keepalive", "TCP_KEEPCNT": "keepalive",
    "TCP_CORK": "cork", "TCP_NOTSENT_LOWAT": "notsent_lowat", "TCP_CONGESTION":
    "congestion_choice", "SO_MAX_PACING_RATE": "pacing", "TCP_MD5SIG": "md5",
    "TCP_SYNCNT": "syn_count",
}
_FLAG_FEATURES = {"MSG_FASTOPEN": "fastopen", "MSG_MORE": "cork", "MSG_EOR": "eor"}
RUNNER_OPTIONS = {
    "SO_TIMESTAMPING": "SO_TIMESTAMPING (transmit timestamps on the error queue)",
    "IP_TOS": "IP header fields (IP_TOS)", "IPV6_TCLASS": "IP header fields (IPV6_TCLASS)",
    "SO_MARK": "SO_MARK (routing marks)", "IP_MTU_DISCOVER": "IP_MTU_DISCOVER",
    "IP_FREEBIND": "IP_FREEBIND",
}
_RUNNER_CALLS = {
    "sendfile": "files (sendfile, splice)", "splice": "files (sendfile, splice)",
    "pipe": "files (sendfile, splice)", "open": "files (sendfile, splice)",
}


def _idents(v: object) -> Iterator[str]:
    if isinstance(v, Ident):
        yield v.name
    elif isinstance(v, BitOr | ListArg | CallArg):
        for p in (v.parts if isinstance(v, BitOr) else v.items if isinstance(v, ListArg)
                  else v.args):
            yield from _idents(p)
    elif isinstance(v, StructArg):
        for _n, p in v.fields:
            yield from _idents(p)


def needs(script: Script, tcpi_known: Callable[[str], bool]) -> list[str]:
    """Every reason the script cannot run on this engine yet (sorted, unique)."""
    out: set[str] = set()
    zerocopy = poll_err = False

    def want(key: str) -> None:
        r = feature_reason(key)
        if r is not None:
            out.add(r)

    for ev in script.events:
        act = ev.action
        if isinstance(act, IcmpSpec):
            want("icmp")
        elif isinstance(act, PacketSpec):
            names = {o.name.split()[0] for o in act.options or ()}
            if not act.inbound and "TS" in names:
                want("timestamps")
            if (not act.inbound and names & {"sackOK", "sack"}) or \
                    (act.inbound and "sack" in names):
                want("sack")
            if names & {"FO", "FOEXP"}:
                want("fastopen")
            if "md5" in names:
                want("md5")
            if set(act.flag_text) & {"E", "W", "C"} or any(
                    a.split()[:1] in (["ect0"], ["ect1"], ["ce"], ["ect01"])
                    for a in act.ip_annotations):
                want("ecn")
        elif isinstance(act, SyscallSpec):
            names = set()
            for a in act.args:
                names.update(_idents(a))
            if act.name in _RUNNER_CALLS:
                out.add(NEEDS_RUNNER + _RUNNER_CALLS[act.name])
            zerocopy = zerocopy or "MSG_ZEROCOPY" in names
            poll_err = poll_err or bool(names & {"EPOLLERR", "POLLERR"})
            for n in names:
                if n in _FLAG_FEATURES:
                    want(_FLAG_FEATURES[n])
                elif n in RUNNER_OPTIONS and act.name == "setsockopt":
                    out.add(NEEDS_RUNNER + RUNNER_OPTIONS[n])
                elif n == "MSG_ERRQUEUE":
                    out.add(NEEDS_RUNNER + "error-queue notifications (MSG_ERRQUEUE)")
            if act.name in ("setsockopt", "getsockopt") and len(act.args) > 2 and \
                    isinstance(act.args[2], Ident) and act.args[2].name in SOCKOPT_FEATURES:
                want(SOCKOPT_FEATURES[act.args[2].name])
        elif isinstance(act, CodeSpec):
            if "TCPI_OPT_SYN_DATA" in act.code:
                want("fastopen")
            for name in sorted(set(re.findall(r"\btcpi_\w+", act.code))):
                if not tcpi_known(name) and feature_reason("tcp_info") is not None:
                    out.add(NEEDS + f"TCP_INFO field {name}")
    if zerocopy and poll_err:
        out.add(NEEDS_RUNNER + "error-queue notifications (MSG_ERRQUEUE)")
    return sorted(out)
