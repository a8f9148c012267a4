"""The 51 questions learners are drilled on (../shared/questions.md), and where each is shown.

Every question has a group (as ``tcplab scenario list`` groups the catalogue),
the commands that show its answer (the first is the one the documentation
leads with and the tests run with ``--json``), and the catalogue scenario that
answers it, if one does (``tcplab scenario list --question N`` finds it).  Its
texts are in the catalogues: ``q.N.ask`` (the question), ``q.N.answer`` (what
the command shows) and ``q.N.linux`` (what Linux really does, with the version
where it changed).  ``docs/questions.md`` and ``docs/questions.zh.md`` are
written from here by ``tools/questions_docs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    n: int
    group: str
    commands: tuple[str, ...]
    scenario: str | None = None


def _q(n: int, group: str, *commands: str, scenario: str | None = None) -> Question:
    return Question(n, group, tuple(commands), scenario)


QUESTIONS: tuple[Question, ...] = (
    _q(1, "handshake", "tcplab scenario run handshake", scenario="handshake"),
    _q(2, "handshake", "tcplab sockets --json", "tcplab watch --port 8080",
       "tcplab demo --json"),
    _q(3, "handshake", "tcplab scenario run old-duplicate-syn --two-way-handshake",
       "tcplab scenario run syn-retransmit --two-way-handshake", scenario="old-duplicate-syn"),
    _q(4, "handshake", "tcplab scenario run isn-sync --four-segment", scenario="isn-sync"),
    _q(5, "handshake", "tcplab scenario run isn-clock", scenario="isn-clock"),
    _q(6, "handshake", "tcplab scenario run mss", "tcplab scenario run mss --variant no-mss",
       scenario="mss"),
    _q(7, "handshake", "tcplab demo --drop syn", "tcplab demo --drop syn:all --profile linux"),
    _q(8, "handshake", "tcplab demo --drop syn-ack"),
    _q(9, "handshake", "tcplab demo --drop ack"),
    _q(10, "handshake", "tcplab scenario run handshake", scenario="handshake"),
    _q(11, "queues", "tcplab scenario run syn-flood --syn-cookies",
       "tcplab scenario run syn-flood", scenario="syn-flood"),
    _q(12, "queues", "tcplab scenario run backlog --profile linux", scenario="backlog"),
    _q(13, "queues", "tcplab scenario run accept-overflow --profile linux",
       "tcplab scenario run accept-overflow --profile linux "
       "--sysctl net.ipv4.tcp_abort_on_overflow=1", scenario="accept-overflow"),
    _q(14, "queues", "tcplab scenario run no-accept", scenario="no-accept"),
    _q(15, "handshake", "tcplab scenario run no-listen",
       "tcplab scenario run simultaneous-open", scenario="no-listen"),
    _q(16, "handshake", "tcplab scenario run calls-return", scenario="calls-return"),
    _q(17, "queues", "tcplab scenario run accept-overflow --profile linux",
       "tcplab scenario run syn-flood", scenario="accept-overflow"),
    _q(18, "handshake", "tcplab scenario run fastopen --profile linux",
       "tcplab scenario run fastopen --profile linux --variant off", scenario="fastopen"),
    _q(19, "handshake", "tcplab scenario run syn-in-established", scenario="syn-in-established"),
    _q(20, "close", "tcplab scenario run close", scenario="close"),
    _q(21, "close", "tcplab scenario run half-close", scenario="half-close"),
    _q(22, "close", "tcplab scenario run close-combined",
       "tcplab scenario run close-combined --variant quickack", scenario="close-combined"),
    _q(23, "close", "tcplab demo --drop fin", "tcplab demo --drop fin:all --profile linux"),
    _q(24, "close", "tcplab demo --drop fin-ack --think 5"),
    _q(25, "close", "tcplab scenario run fin-wait-2 --profile linux",
       "tcplab scenario run fin-wait-2 --profile linux --variant shutdown",
       scenario="fin-wait-2"),
    _q(26, "close", "tcplab demo --drop fin2"),
    _q(27, "close", "tcplab demo --drop last-ack", "tcplab scenario run lost-final-ack",
       scenario="lost-final-ack"),
    _q(28, "time-wait", "tcplab demo --profile linux --msl 5", "tcplab demo --msl 5"),
    _q(29, "time-wait", "tcplab scenario run stale-segment --time-wait 0",
       "tcplab scenario run lost-final-ack --time-wait 0", scenario="stale-segment"),
    _q(30, "close", "tcplab scenario run fin-out-of-order", scenario="fin-out-of-order"),
    _q(31, "close", "tcplab scenario run simultaneous-close", scenario="simultaneous-close"),
    _q(32, "close", "tcplab scenario run close-combined", scenario="close-combined"),
    _q(33, "time-wait", "tcplab scenario run port-exhaustion --profile linux",
       scenario="port-exhaustion"),
    _q(34, "time-wait", "tcplab scenario run tw-reuse --profile linux",
       "tcplab scenario run tw-buckets --profile linux",
       "tcplab scenario run linger0", scenario="tw-reuse"),
    _q(35, "time-wait", "tcplab scenario run tw-reuse --profile linux "
       "--sysctl net.ipv4.tcp_timestamps=0", scenario="tw-reuse"),
    _q(36, "time-wait", "tcplab scenario run port-reuse",
       "tcplab scenario run port-reuse --reuseaddr-new-only", scenario="port-reuse"),
    _q(37, "time-wait", "tcplab scenario run server-close-storm", scenario="server-close-storm"),
    _q(38, "failures", "tcplab scenario run close-wait-leak", scenario="close-wait-leak"),
    _q(39, "time-wait", "tcplab scenario run syn-in-time-wait",
       "tcplab scenario run syn-in-time-wait --profile linux", scenario="syn-in-time-wait"),
    _q(40, "time-wait", "tcplab scenario run rst-in-time-wait --profile linux",
       "tcplab scenario run rst-in-time-wait", scenario="rst-in-time-wait"),
    _q(41, "failures", "tcplab scenario run host-crash --profile linux",
       "tcplab scenario run host-crash --profile linux --variant no-keepalive",
       scenario="host-crash"),
    _q(42, "failures", "tcplab scenario run process-crash", scenario="process-crash"),
    _q(43, "failures", "tcplab scenario run peer-reboot", scenario="peer-reboot"),
    _q(44, "failures", "tcplab scenario run cable-pull --profile linux",
       "tcplab scenario run cable-pull --profile linux --variant idle", scenario="cable-pull"),
    _q(45, "failures", "tcplab scenario run host-crash --profile linux --variant no-keepalive",
       "tcplab scenario run half-close", scenario="host-crash"),
    _q(46, "failures", "tcplab scenario run host-crash --profile linux",
       "tcplab scenario run server-close-storm", scenario="host-crash"),
    _q(47, "failures", "tcplab scenario run refused-vs-timeout", scenario="refused-vs-timeout"),
    _q(48, "exam", "tcplab demo --isn 11220"),
    _q(49, "exam", "tcplab demo --isn 1000 --bytes 4000"),
    _q(50, "exam", "tcplab demo --rtt 0.05 --msl 0.8"),
    _q(51, "exam", "tcplab demo --rtt 0.1"),
)

BY_NUMBER = {q.n: q for q in QUESTIONS}


def question(n: int) -> Question:
    try:
        return BY_NUMBER[n]
    except KeyError:
        raise KeyError(f"there is no question {n}: the questions are 1-{len(QUESTIONS)}") from None
