"""Results of script runs: per script, totals, and a summary by folder.

In the FreeBSD suite a folder is one cell of the segment type x state
matrix (``state-event-engine/rcv-rst-established``), so the summary by
folder reads as that matrix.

A pass rate is computed over the scripts that ran (passed, failed or did not
parse); when none ran there is no rate (``None``), never 100 %.

When a corpus carries what the real stack got (``linux-6.18-real-results.txt``
next to Linux's scripts: ``PATH 0`` passed, ``PATH 1`` failed), the report
puts tcplab's results beside it, folder by folder, and lists the scripts on
which the two differ.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_REFERENCE_BYTES = 1 << 20
_REF_LINE = re.compile(r"^(\S+\.pkt)\s+([01])\s*$")

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
    def pass_rate(self) -> float | None:
        """Passed over the scripts that ran; None when none ran."""
        return self.passed / self.run if self.run else None

    @property
    def skip_rate(self) -> float:
        return self.skipped / self.total if self.total else 0.0

    def text(self) -> str:
        rate = self.pass_rate
        ran = "no script ran" if rate is None else f"{100 * rate:.1f}% of those run passed"
        return (f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
                + (f", {self.errors} errors" if self.errors else "")
                + f" of {self.total} ({ran}, {100 * self.skip_rate:.1f}% skipped)")


@dataclass(slots=True)
class Reference:
    """What the real stack got on the same scripts (``PATH 0|1`` lines)."""

    file: Path
    passed: dict[Path, bool] = field(default_factory=dict)   #: resolved script path

    @classmethod
    def find(cls, paths: list[str | Path]) -> Reference | None:
        """The ``*-real-results.txt`` in a given folder or one of its parents."""
        for p in paths:
            here = Path(p).resolve()
            for folder in [here, *here.parents][:4]:
                if not folder.is_dir():
                    continue
                for f in sorted(folder.glob("*-real-results.txt")):
                    ref = cls.load(f)
                    if ref is not None:
                        return ref
        return None

    @classmethod
    def load(cls, file: Path) -> Reference | None:
        try:
            with file.open("rb") as fh:
                data = fh.read(MAX_REFERENCE_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_REFERENCE_BYTES:
            return None
        ref = cls(file)
        for line in data.decode("utf-8", errors="replace").splitlines():
            m = _REF_LINE.match(line.strip())
            if m is not None:
                ref.passed[(file.parent / m.group(1)).resolve()] = m.group(2) == "0"
        return ref if ref.passed else None

    def lookup(self, script: str) -> bool | None:
        return self.passed.get(Path(script).resolve())


def group_of(folder: str) -> str:
    """The top folder below the run's root (``tcp/fastopen/client`` -> ``fastopen``)."""
    parts = folder.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


@dataclass(slots=True)
class Report:
    profile: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    reference: Reference | None = None

    def compare(self) -> dict[str, dict[str, int]]:
        """Per top folder: tcplab's passed/run/skipped beside the real stack's passed/total."""
        out: dict[str, dict[str, int]] = {}
        if self.reference is None:
            return out
        for r in self.results:
            row = out.setdefault(group_of(r.folder), {
                "tcplab_passed": 0, "tcplab_run": 0, "tcplab_skipped": 0,
                "real_passed": 0, "real_total": 0})
            if r.status == SKIP:
                row["tcplab_skipped"] += 1
            else:
                row["tcplab_run"] += 1
                row["tcplab_passed"] += r.status == PASS
            real = self.reference.lookup(r.path)
            if real is not None:
                row["real_total"] += 1
                row["real_passed"] += real
        return dict(sorted(out.items()))

    def differences(self) -> tuple[list[Result], list[Result]]:
        """(scripts the real stack passes and tcplab does not, the other way round)."""
        if self.reference is None:
            return [], []
        real_only = [r for r in self.results
                     if self.reference.lookup(r.path) and r.status != PASS]
        ours_only = [r for r in self.results
                     if self.reference.lookup(r.path) is False and r.status == PASS]
        return real_only, ours_only

    def skip_features(self) -> dict[str, int]:
        """Skips counted per single reason (a script may need several)."""
        out: dict[str, int] = {}
        for r in self.results:
            if r.status == SKIP:
                for part in r.reason.split("; "):
                    out[part] = out.get(part, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

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
        rate = t.pass_rate
        out: dict[str, Any] = {
            "profile": self.profile,
            "seconds": round(self.seconds, 3),
            "totals": {"passed": t.passed, "failed": t.failed, "skipped": t.skipped,
                       "errors": t.errors, "total": t.total, "run": t.run,
                       "pass_rate": None if rate is None else round(rate, 4),
                       "skip_rate": round(t.skip_rate, 4)},
            "folders": {k: {"passed": v.passed, "failed": v.failed, "skipped": v.skipped,
                            "errors": v.errors,
                            "pass_rate": None if v.pass_rate is None else round(v.pass_rate, 4)}
                        for k, v in self.by_folder().items()},
            "skip_reasons": self.skip_reasons(),
            "skip_features": self.skip_features(),
            "adaptations": self.adaptations(),
            "results": [r.to_json() for r in self.results],
        }
        if self.reference is not None:
            real_only, ours_only = self.differences()
            out["reference"] = {
                "file": str(self.reference.file), "folders": self.compare(),
                "real_passes_tcplab_does_not": [r.path for r in real_only],
                "tcplab_passes_real_does_not": [r.path for r in ours_only],
            }
        return out

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
        features = self.skip_features()
        if len(features) != len(reasons):
            lines.append("")
            lines.append("skipped scripts by single reason (a script may need several):")
            for reason, n in features.items():
                lines.append(f"  {n:4d}  {reason}")
        adaptations = self.adaptations()
        if adaptations:
            lines.append("")
            lines.append(f"adaptations made by the {self.profile} profile (scripts):")
            for text, n in adaptations.items():
                lines.append(f"  {n:4d}  {text}")
        lines += self._reference_text()
        lines.append("")
        lines.append(f"{self.profile}: {self.totals.text()} in {self.seconds:.1f} s")
        return "\n".join(lines)

    def _reference_text(self) -> list[str]:
        if self.reference is None:
            return []
        rows = self.compare()
        real_pass = sum(r["real_passed"] for r in rows.values())
        real_total = sum(r["real_total"] for r in rows.values())
        lines = ["", f"beside the real stack ({self.reference.file.name}: "
                 f"{real_pass} of {real_total} passed there):"]
        width = max([len(k) for k in rows] + [6])
        lines.append(f"  {'folder':<{width}}  tcplab passed/run (skipped)   real passed/total")
        for name, row in rows.items():
            ours = f"{row['tcplab_passed']}/{row['tcplab_run']} ({row['tcplab_skipped']})"
            lines.append(f"  {name:<{width}}  {ours:<28} "
                         f"{row['real_passed']}/{row['real_total']}")
        real_only, ours_only = self.differences()
        if real_only:
            lines.append("")
            lines.append(f"the real stack passes, tcplab does not ({len(real_only)}):")
            for r in real_only:
                lines.append(f"  {r.status.upper()} {r.path}: {r.reason}")
        if ours_only:
            lines.append("")
            lines.append(f"tcplab passes, the real stack does not ({len(ours_only)}):")
            for r in ours_only:
                lines.append(f"  PASS {r.path}")
        return lines
