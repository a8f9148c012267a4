"""Results of script runs: per script, totals, and a summary by folder.

In the FreeBSD suite a folder is one cell of the segment type x state
matrix (``state-event-engine/rcv-rst-established``), so the summary by
folder reads as that matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP, ERROR = "pass", "fail", "skip", "error"


@dataclass(slots=True)
class Result:
    path: str
    folder: str
    status: str                      #: pass | fail | skip | error (does not parse)
    reason: str = ""                 #: why it failed or was skipped
    line: int = 0                    #: the script line of the first mismatch
    expected: str = ""               #: that line
    actual: str = ""                 #: what happened instead
    adaptations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        if self.status == PASS:
            return f"PASS {self.path}"
        where = f":{self.line}" if self.line else ""
        text = f"{self.status.upper()} {self.path}{where}: {self.reason}"
        if self.expected:
            text += f"\n    expected: {self.expected}"
        if self.actual:
            text += f"\n    actual:   {self.actual}"
        return text


@dataclass(slots=True)
class Totals:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0

    def add(self, r: Result) -> None:
        if r.status == PASS:
            self.passed += 1
        elif r.status == FAIL:
            self.failed += 1
        elif r.status == SKIP:
            self.skipped += 1
        else:
            self.errors += 1

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors

    @property
    def run(self) -> int:
        return self.passed + self.failed + self.errors

    @property
    def pass_rate(self) -> float:
        return self.passed / self.run if self.run else 1.0

    @property
    def skip_rate(self) -> float:
        return self.skipped / self.total if self.total else 0.0

    def text(self) -> str:
        return (f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
                + (f", {self.errors} errors" if self.errors else "")
                + f" of {self.total} ({100 * self.pass_rate:.1f}% of those run passed,"
                f" {100 * self.skip_rate:.1f}% skipped)")


@dataclass(slots=True)
class Report:
    profile: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def totals(self) -> Totals:
        t = Totals()
        for r in self.results:
            t.add(r)
        return t

    def by_folder(self) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for r in self.results:
            out.setdefault(r.folder, Totals()).add(r)
        return dict(sorted(out.items()))

    def skip_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            if r.status == SKIP:
                out[r.reason] = out.get(r.reason, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def adaptations(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            for a in set(r.adaptations):
                out[a] = out.get(a, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_json(self) -> dict[str, Any]:
        t = self.totals
        return {
            "profile": self.profile,
            "seconds": round(self.seconds, 3),
            "totals": {"passed": t.passed, "failed": t.failed, "skipped": t.skipped,
                       "errors": t.errors, "total": t.total,
                       "pass_rate": round(t.pass_rate, 4), "skip_rate": round(t.skip_rate, 4)},
            "folders": {k: {"passed": v.passed, "failed": v.failed, "skipped": v.skipped,
                            "errors": v.errors} for k, v in self.by_folder().items()},
            "skip_reasons": self.skip_reasons(),
            "adaptations": self.adaptations(),
            "results": [r.to_json() for r in self.results],
        }

    def text(self, verbose: bool = False) -> str:
        lines: list[str] = []
        for r in self.results:
            if r.status != PASS or verbose:
                lines.append(r.one_line())
        folders = self.by_folder()
        if len(folders) > 1:
            lines.append("")
            lines.append("by folder (segment type x state):")
            width = max(len(k) for k in folders)
            for name, t in folders.items():
                lines.append(f"  {name:<{width}}  {t.passed:4d} pass {t.failed:4d} fail "
                             f"{t.skipped:4d} skip" + (f" {t.errors:4d} error" if t.errors
                                                        else ""))
        reasons = self.skip_reasons()
        if reasons:
            lines.append("")
            lines.append("skipped because:")
            for reason, n in reasons.items():
                lines.append(f"  {n:4d}  {reason}")
        adaptations = self.adaptations()
        if adaptations:
            lines.append("")
            lines.append(f"adaptations made by the {self.profile} profile (scripts):")
            for text, n in adaptations.items():
                lines.append(f"  {n:4d}  {text}")
        lines.append("")
        lines.append(f"{self.profile}: {self.totals.text()} in {self.seconds:.1f} s")
        return "\n".join(lines)
