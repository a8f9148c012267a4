"""Running a drilled question's documented command and reading its answer from JSON (the tests of
this folder import it as ``from .harness import answer, run``).

``answer(n)`` runs the first command of question ``n`` (as docs/questions.md
prints it) with ``--json`` through the CLI itself and returns the parsed
document: ``meta`` (outcome, findings, counters) and ``events`` (the trace).
``run(command)`` does the same for any other command a question lists.  The
tests assert on these documents only, never on printed text.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.scenarios.questions import question


def run(command: str) -> dict[str, Any]:
    argv = shlex.split(command)
    assert argv[0] == "tcplab", command
    result = CliRunner().invoke(cli, [*argv[1:], "--json"], catch_exceptions=False)
    assert result.exit_code == 0, f"{command}: {result.output}"
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def answer(n: int, which: int = 0) -> dict[str, Any]:
    """The JSON document of question ``n``'s ``which``-th command (0: the documented one)."""
    return run(question(n).commands[which])


def segments(doc: dict[str, Any], host: str | None = None, flags: str | None = None,
             event: str = "send") -> list[dict[str, Any]]:
    """The segments a host sent (``event="send"``) or received, optionally by exact flags."""
    return [e for e in doc["events"] if e["kind"] == "segment" and e["event"] == event
            and (host is None or e["host"] == host)
            and (flags is None or e["flags"] == flags)]


def states(doc: dict[str, Any], host: str) -> list[str]:
    """The states a host's connections went through, in order (listeners left out)."""
    return [e["to"] for e in doc["events"] if e["kind"] == "state" and e["host"] == host
            and not str(e["conn"]).endswith("-*:*")]
