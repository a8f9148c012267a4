"""docs/linux.md is generated from the engine's profile tables and is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tcplab.engine.profiles import SYSCTLS

ROOT = Path(__file__).resolve().parents[1]


def test_docs_linux_md_is_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "linux_docs.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_sysctl_is_documented_with_its_default_and_source() -> None:
    text = (ROOT / "docs" / "linux.md").read_text(encoding="utf-8")
    for s in SYSCTLS.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{s.name}` |"))
        assert s.source in row and s.linux.replace("\t", " ") in row
    assert "## Where the engine still differs from Linux" in text
