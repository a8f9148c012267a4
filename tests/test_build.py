"""The two builds of the hot modules: compiled with mypyc, or pure Python.

`tcplab --version` must name the build that really runs, TCPLAB_PURE_PYTHON=1
must really load the .py files (from the same install), and the two builds are
never mixed.  Each case runs in a fresh interpreter, because the build is
chosen once, when tcplab is first imported.

CI sets TCPLAB_EXPECT_BUILD (``compiled`` or ``pure``) so that a compile that
silently fell back to pure Python fails the compiled pass instead of passing
it in pure Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from tcplab import buildinfo

PROBE = """
import importlib, json, sys
import tcplab
from tcplab import buildinfo
files = {m: importlib.import_module(m).__file__ for m in buildinfo.COMPILED}
print(json.dumps({"build": buildinfo.build(), "files": files}))
"""


def run(args: list[str], pure: bool | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(buildinfo.ENV, None)
    if pure:
        env[buildinfo.ENV] = "1"
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=True)


def loaded(pure: bool | None) -> tuple[str, dict[str, str]]:
    doc = json.loads(run(["-c", PROBE], pure).stdout)
    return doc["build"], doc["files"]


def is_extension(path: str) -> bool:
    return path.endswith(tuple(EXTENSION_SUFFIXES))


@pytest.mark.parametrize("pure", [None, True], ids=["default", "TCPLAB_PURE_PYTHON=1"])
def test_version_names_the_build_that_is_loaded(pure: bool | None) -> None:
    line = run(["-m", "tcplab", "--version"], pure).stdout.strip()
    _build, files = loaded(pure)
    compiled = is_extension(files["tcplab.engine.connection"])
    assert line.startswith("tcplab ")
    if compiled:
        assert "compiled (mypyc)" in line and "pure Python" not in line, line
    else:
        assert "pure Python: " in line and "compiled (mypyc)" not in line, line


def test_the_builds_are_never_mixed() -> None:
    build, files = loaded(None)
    kinds = {m: is_extension(f) for m, f in files.items()}
    assert len(set(kinds.values())) == 1, kinds
    assert (build == "compiled") == all(kinds.values())


def test_pure_python_switch_loads_the_py_files() -> None:
    build, files = loaded(True)
    assert build == "pure"
    for module, path in files.items():
        assert path.endswith(".py"), (module, path)


def test_the_build_ci_expects_is_the_one_that_runs() -> None:
    expected = os.environ.get("TCPLAB_EXPECT_BUILD")
    if not expected:
        pytest.skip("TCPLAB_EXPECT_BUILD is not set (CI sets it for each pass)")
    assert expected in ("compiled", "pure")
    build, _files = loaded(buildinfo.pure_requested())
    assert build == expected, run(["-m", "tcplab", "--version"], None).stdout


# ---------------------------------------------------------------- the choice, on a fake install


@pytest.fixture
def fake_install(tmp_path: Path) -> Path:
    """A package directory with every compiled module's source, an (empty) extension
    beside each, the shared library, and the build record of a compile."""
    root = tmp_path / "tcplab"
    suffix = EXTENSION_SUFFIXES[0]
    for module in (*buildinfo.COMPILED, buildinfo.SHARED_LIB):
        base = root.joinpath(*module.split(".")[1:])
        base.parent.mkdir(parents=True, exist_ok=True)
        Path(str(base) + suffix).write_bytes(b"")
        if module != buildinfo.SHARED_LIB:
            Path(str(base) + ".py").write_text(f"NAME = {module!r}\n")
    (root / buildinfo.RECORD).write_text(
        buildinfo.record_text(True, "compiled at install time (test)", str(root), in_place=True))
    return root


def test_a_fresh_compiled_install_runs_compiled(fake_install: Path) -> None:
    assert buildinfo.decide({}, str(fake_install)) == ("compiled",
                                                       "compiled at install time (test)")


def test_the_environment_variable_selects_pure_python(fake_install: Path) -> None:
    build, why = buildinfo.decide({"TCPLAB_PURE_PYTHON": "1"}, str(fake_install))
    assert (build, why) == ("pure", "TCPLAB_PURE_PYTHON=1 is set")
    assert buildinfo.decide({"TCPLAB_PURE_PYTHON": "0"}, str(fake_install))[0] == "compiled"


def test_an_edited_source_makes_the_extensions_stale(fake_install: Path) -> None:
    source = fake_install / "engine" / "connection.py"
    source.write_text(source.read_text() + "# edited\n")
    build, why = buildinfo.decide({}, str(fake_install))
    assert build == "pure"
    assert "out of date (tcplab.engine.connection changed" in why


def test_a_touched_but_unchanged_source_is_not_stale(fake_install: Path) -> None:
    source = fake_install / "wire" / "seq.py"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert buildinfo.decide({}, str(fake_install))[0] == "compiled"
    source.write_text(source.read_text().replace("seq", "SEQ"))  # same size, other bytes
    assert buildinfo.decide({}, str(fake_install))[0] == "pure"


def test_a_wheel_install_does_not_check_its_sources(fake_install: Path) -> None:
    (fake_install / buildinfo.RECORD).write_text(
        buildinfo.record_text(True, "compiled at install time (test)", str(fake_install)))
    (fake_install / "engine" / "host.py").write_text("# not what was compiled\n")
    assert buildinfo.decide({}, str(fake_install))[0] == "compiled"


def test_a_missing_extension_means_pure_python(fake_install: Path) -> None:
    os.remove(buildinfo.extension_path("tcplab.wire.seq", str(fake_install)) or "")
    build, why = buildinfo.decide({}, str(fake_install))
    assert build == "pure"
    assert f"only {len(buildinfo.COMPILED) - 1} of {len(buildinfo.COMPILED)}" in why


def test_an_install_without_extensions_says_why_from_its_record(tmp_path: Path) -> None:
    root = tmp_path / "tcplab"
    root.mkdir()
    (root / buildinfo.RECORD).write_text(
        buildinfo.record_text(False, "no C compiler (gcc not found)", str(root)))
    assert buildinfo.decide({}, str(root)) == ("pure", "no C compiler (gcc not found)")


def test_the_finder_returns_the_source_not_the_extension(fake_install: Path) -> None:
    finder = buildinfo.PurePythonFinder(str(fake_install))
    spec = finder.find_spec("tcplab.engine.connection")
    assert spec is not None and spec.origin == str(fake_install / "engine" / "connection.py")
    assert finder.find_spec("tcplab.cli") is None  # not a compiled module: not its business
