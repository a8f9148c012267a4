"""Inline ``%{ assert tcpi_... }%`` checks, evaluated without running Python.

packetdrill runs the code between ``%{`` and ``}%`` in a Python interpreter
with the fields of ``getsockopt(TCP_INFO)`` as variables.  A script is
untrusted input, so here the code is parsed with :mod:`ast` (which runs
nothing) and only a small language is evaluated: ``assert EXPR[, message]``
statements (and ``print(...)``, ignored), where EXPR is made of numbers,
``tcpi_*`` fields, Linux's named constants (``TCP_CA_Open``,
``TCPI_OPT_WSCALE``, ``TCP_ESTABLISHED``), arithmetic, bit operations,
comparisons and ``and``/``or``/``not``.  Anything else is refused with a
reason.  The code is capped in size and nesting before it is parsed.

:data:`TCPI_FIELDS` names the fields the engine's own TCP_INFO view answers
(``Connection.info``); another field is skipped with its name.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from tcplab.engine import Connection, State

MAX_CODE_CHARS = 4096
MAX_CODE_NESTING = 16

# Linux include/uapi/linux/tcp.h
LINUX_STATES = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11,
}
CONSTANTS: dict[str, int] = {
    "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64,
    "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
}
#: tcpi_* fields the engine answers: its own TCP_INFO view (``Connection.info``,
#: Linux's struct tcp_info: times in microseconds, windows in packets).
TCPI_FIELDS: frozenset[str] = frozenset({
    "tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes", "tcpi_backoff",
    "tcpi_options", "tcpi_snd_wscale", "tcpi_rcv_wscale", "tcpi_rto", "tcpi_ato",
    "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_unacked", "tcpi_sacked", "tcpi_lost",
    "tcpi_retrans", "tcpi_last_data_recv", "tcpi_rtt", "tcpi_rttvar", "tcpi_snd_ssthresh",
    "tcpi_snd_cwnd", "tcpi_advmss", "tcpi_reordering", "tcpi_rcv_space",
    "tcpi_notsent_bytes", "tcpi_min_rtt", "tcpi_delivered",
    "tcpi_bytes_acked", "tcpi_bytes_received",
})


class CodeError(Exception):
    """Code outside the small language (a named reason, for a skip)."""


class AssertFailed(Exception):
    def __init__(self, text: str, values: dict[str, int]) -> None:
        shown = ", ".join(f"{k} = {v}" for k, v in sorted(values.items()))
        super().__init__(f"assert {text} failed ({shown})")
        self.values = values


_BIN: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_CMP: dict[type[ast.cmpop], Callable[[int, int], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def _nesting(code: str) -> int:
    depth = best = 0
    for ch in code:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth -= 1
    return best


def parse_code(code: str) -> list[ast.Assert]:
    """The asserts of an inline code block; raises CodeError for anything else."""
    if len(code) > MAX_CODE_CHARS:
        raise CodeError(f"longer than {MAX_CODE_CHARS} characters")
    if _nesting(code) > MAX_CODE_NESTING:
        raise CodeError(f"nested deeper than {MAX_CODE_NESTING}")
    # packetdrill joins lines ending in a backslash; Python does too.
    try:
        tree = ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CodeError("not Python") from None
    out: list[ast.Assert] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assert):
            out.append(stmt)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and \
                isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print":
            continue
        else:
            raise CodeError("Python other than assert statements")
    return out


def names_in(code: str) -> set[str]:
    """The tcpi_* names an inline block reads (for the check before a run)."""
    try:
        asserts = parse_code(code)
    except CodeError:
        return set()
    return {n.id for a in asserts for n in ast.walk(a.test)
            if isinstance(n, ast.Name) and n.id.startswith("tcpi_")}


def evaluate(code: str, conn: Connection | None, now: float = 0.0) -> None:
    """Run the asserts against ``conn`` at ``now``; raises AssertFailed or CodeError."""
    info = conn.info(now) if conn is not None else None
    for a in parse_code(code):
        seen: dict[str, int] = {}
        try:
            ok = _eval(a.test, info, seen)
        except RecursionError:
            raise CodeError(f"nested deeper than {MAX_CODE_NESTING}") from None
        if not ok:
            raise AssertFailed(ast.unparse(a.test), seen)


def _eval(node: ast.AST, conn: dict[str, int] | None, seen: dict[str, int]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | bool):
        return int(node.value)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id not in TCPI_FIELDS:
            raise CodeError(f"TCP_INFO field {node.id}")
        if conn is None:
            raise CodeError("TCP_INFO of a socket without a connection")
        seen[node.id] = conn.get(node.id, 0)
        return seen[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left, conn, seen), _eval(node.right, conn, seen)
        if isinstance(node.op, ast.LShift | ast.RShift) and not 0 <= right <= 64:
            raise CodeError("shift out of range")
        if isinstance(node.op, ast.FloorDiv | ast.Mod) and right == 0:
            raise CodeError("division by zero")
        return _BIN[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, conn, seen)
        if isinstance(node.op, ast.Not):
            return int(not v)
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.Invert):
            return ~v
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, conn, seen) for v in node.values]
        return int(all(vals)) if isinstance(node.op, ast.And) else int(any(vals))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, conn, seen)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            fn = _CMP.get(type(op))
            if fn is None:
                raise CodeError(f"comparison {type(op).__name__}")
            right = _eval(comp, conn, seen)
            if not fn(left, right):
                return 0
            left = right
        return 1
    raise CodeError(f"the Python construct {type(node).__name__}")
