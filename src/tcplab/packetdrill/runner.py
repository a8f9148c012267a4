"""Find scripts under paths and run them all, with optional progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tcplab.packetdrill.interpreter import run_script
from tcplab.packetdrill.profile import Profile
from tcplab.packetdrill.report import Reference, Report, Result


def find_scripts(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(script, root) pairs: a file is its own root's child, a folder is searched recursively.

    Raises FileNotFoundError for a path that does not exist.
    """
    out: list[tuple[Path, Path]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += [(f, path) for f in sorted(path.rglob("*.pkt")) if f.is_file()]
        elif path.is_file():
            out.append((path, path.parent))
        else:
            raise FileNotFoundError(str(path))
    return out


def folder_of(script: Path, root: Path) -> str:
    try:
        rel = script.parent.relative_to(root)
    except ValueError:
        return script.parent.name
    name = rel.as_posix()
    return root.name if name == "." else f"{root.name}/{name}"


def run_paths(paths: Iterable[str | Path], profile: str = "portable",
              defines: dict[str, str] | None = None,
              progress: Callable[[int, int, Result], None] | None = None) -> Report:
    prof = Profile.get(profile)
    paths = list(paths)
    scripts = find_scripts(paths)
    report = Report(prof.name, reference=Reference.find(paths))
    started = time.perf_counter()
    for i, (script, root) in enumerate(scripts, 1):
        res = run_script(script, prof, defines, folder_of(script, root))
        report.results.append(res)
        if progress is not None:
            progress(i, len(scripts), res)
    report.seconds = time.perf_counter() - started
    return report
