"""Build tcplab: the pure-Python package, plus its hot modules compiled with mypyc.

Everything else about the package is in pyproject.toml; this file only adds the
compiled build (see src/tcplab/buildinfo.py for the modules and how the build
that runs is chosen):

    pip install .                          compiles, when a C compiler and Python's
                                           headers are present
    TCPLAB_PURE_PYTHON=1 pip install .     pure Python only

The ``.py`` files are installed either way, so ``TCPLAB_PURE_PYTHON=1`` at run
time selects pure Python from a compiled install.  A compile that cannot run or
that fails prints one line (``pip install -v`` shows it) and the install goes
on in pure Python; ``tcplab --version`` says which build runs and why.

All the modules are one mypyc group, compiled into one C file (so the C
compiler can inline the small sequence-number functions into their callers);
on a 2-core machine that takes one to two minutes.  An editable install
(``pip install -e .``) builds the extensions in place, beside their sources; a
reinstall skips the compile when no compiled source changed since.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import sys
import sysconfig
from types import ModuleType
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "src", "tcplab")


def _load_buildinfo() -> ModuleType:
    """tcplab.buildinfo, read from the source tree (it uses the standard library only)."""
    spec = importlib.util.spec_from_file_location("_tcplab_buildinfo",
                                                  os.path.join(PACKAGE_DIR, "buildinfo.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BI = _load_buildinfo()


def say(message: str) -> None:
    print(f"tcplab: {message}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    """What went wrong, in a few words (a failed command is named, not quoted whole)."""
    lines = str(exc).strip().splitlines()
    text = lines[-1] if lines else type(exc).__name__
    failed = re.match(r"Command '\[?'?([^',\]]+).*returned non-zero exit status (\d+)", text)
    if failed:
        return f"{os.path.basename(failed.group(1))} exited with status {failed.group(2)}"
    return text if len(text) <= 160 else text[:157] + "..."


def reason_not_to_compile() -> str | None:
    """Why the compiled build cannot be made here, or None when it can."""
    if BI.pure_requested(os.environ):
        return f"{BI.ENV}=1 was set at install time"
    if sys.implementation.name != "cpython":
        return f"mypyc needs CPython, not {sys.implementation.name}"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    if not words or shutil.which(words[0]) is None:
        return f"no C compiler ({words[0] if words else 'cc'} not found)"
    include = sysconfig.get_paths().get("include", "")
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h is missing; Debian: python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed in the build environment"
    return None


def mypyc_version() -> str:
    try:
        import mypy.version

        return f"mypyc {mypy.version.__version__}"
    except ImportError:  # pragma: no cover
        return "mypyc"


def up_to_date_in_place() -> bool:
    """An earlier in-place build of exactly these sources is still there."""
    record = BI.read_record(PACKAGE_DIR)
    return (record is not None and record.in_place
            and record.why.endswith(f"({mypyc_version()})")
            and BI.decide({}, PACKAGE_DIR)[0] == "compiled")


def mypyc_extensions() -> list[Any]:
    """Translate the modules to C (mypyc type-checks them first); raises on failure."""
    from mypyc.build import mypycify

    # Paths relative to the project directory, where setuptools runs: mypyc names
    # its C files (under ./build) after them.
    paths = [os.path.relpath(BI.source_path(m, PACKAGE_DIR)) for m in BI.COMPILED]
    try:
        return list(mypycify(paths, opt_level="3",
                             group_name=BI.SHARED_LIB.rsplit("__", 1)[0]))
    except SystemExit as exc:  # mypyc exits on a type error, after printing it
        raise RuntimeError(f"mypyc could not translate the modules (exit {exc.code})") from None


# What setup.py was asked to do: mypyc runs only for a command that builds
# extensions, not for the metadata and manifest steps that pip runs first.
COMMANDS = set(sys.argv[1:])
BUILDING = bool(COMMANDS & {"build", "build_ext", "bdist_wheel", "editable_wheel", "install",
                            "develop"})
IN_PLACE = bool(COMMANDS & {"editable_wheel", "develop"}) or (
    "build_ext" in COMMANDS and bool(COMMANDS & {"--inplace", "-i"}))

NOT_COMPILED = reason_not_to_compile()  # the compile cannot run here
FAILURE: str | None = None              # the compile ran and failed
UP_TO_DATE = False                      # an in-place build of these very sources is there
EXTENSIONS: list[Extension] = []
if NOT_COMPILED is not None:
    if BUILDING:
        say(f"installing pure Python: {NOT_COMPILED}")
elif BUILDING:
    if IN_PLACE and up_to_date_in_place():
        UP_TO_DATE = True
        say("the compiled modules are up to date")
    else:
        try:
            EXTENSIONS = mypyc_extensions()
        except Exception as exc:
            FAILURE = f"mypyc failed at install time ({first_line(exc)})"
            say(f"installing pure Python: {FAILURE}")


def _package_target(cmd: Any, in_place: bool) -> str:
    return PACKAGE_DIR if in_place else os.path.join(cmd.build_lib, "tcplab")


def _remove_in_place_extensions() -> None:
    """Delete extensions an earlier editable install left beside the sources."""
    for module in (*BI.COMPILED, BI.SHARED_LIB):
        while (path := BI.extension_path(module, PACKAGE_DIR)) is not None:
            os.remove(path)


def _write_record(target: str, compiled: bool, why: str) -> None:
    os.makedirs(target, exist_ok=True)
    in_place = target == PACKAGE_DIR
    with open(os.path.join(target, BI.RECORD), "w", encoding="utf-8") as f:
        f.write(BI.record_text(compiled, why, PACKAGE_DIR, in_place))


class BuildPy(build_py):  # type: ignore[misc]
    """Copies the package, and writes the build record when nothing is compiled."""

    def run(self) -> None:
        super().run()
        in_place = bool(getattr(self, "editable_mode", False))
        why = NOT_COMPILED or FAILURE
        if why is not None:
            if in_place:
                _remove_in_place_extensions()
            _write_record(_package_target(self, in_place), False, why)


class BuildExt(build_ext):  # type: ignore[misc]
    """Compiles mypyc's C; a failure leaves a pure-Python install, with one line said."""

    def run(self) -> None:
        in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        target = _package_target(self, in_place)
        try:
            super().run()
        except Exception as exc:  # a compiler error, a missing linker, anything
            why = f"the C compile failed at install time ({first_line(exc)})"
            say(f"installing pure Python: {why}")
            self._discard(in_place)
            _write_record(target, False, why)
            return
        _write_record(target, True, f"compiled at install time ({mypyc_version()})")

    def _discard(self, in_place: bool) -> None:
        """Remove what was built, so that the install is pure Python throughout."""
        if in_place:
            _remove_in_place_extensions()
        else:
            for ext in self.extensions:
                path = os.path.join(self.build_lib, self.get_ext_filename(ext.name))
                if os.path.exists(path):
                    os.remove(path)
        self.extensions = []
        self.distribution.ext_modules = []


setup(ext_modules=EXTENSIONS, cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
