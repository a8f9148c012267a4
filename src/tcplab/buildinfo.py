"""Which build of tcplab's hot modules runs: compiled with mypyc, or pure Python.

The modules in :data:`COMPILED` (the wire codec, the engine, the simulator's
network, the trace) are ordinary typed Python that mypyc can compile to C
extensions.  ``pip install .`` compiles them when it can (``setup.py``) and
installs the ``.py`` files beside the extensions, so one install holds both
builds.  Which one runs is decided once, when ``tcplab`` is imported, before
any of those modules loads, and for all of them together (compiled modules
call each other directly, so the two builds are never mixed):

* ``TCPLAB_PURE_PYTHON=1`` in the environment selects pure Python (at install
  time it also skips the compile);
* an install without the compiled extensions runs pure Python, and its build
  record says why (no C compiler, no Python headers, the compile failed);
* when the source of a compiled module has changed since it was compiled (an
  editable install being edited), pure Python runs, so that an old extension
  never hides the code being edited;
* otherwise the compiled modules run.

Pure Python is selected by a meta path finder that loads those modules from
their ``.py`` files.  :func:`describe` says which build runs and why (``tcplab
--version`` prints it).  This module uses the standard library only: setup.py
reads it before tcplab is installed.
"""

# Imported by every ``import tcplab``: built-in modules only, not even typing or
# __future__ (``tcplab sockets`` starts in a few tens of milliseconds).
import _imp
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy reads it too
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from importlib.machinery import ModuleSpec

#: The modules compiled with mypyc, all in one group (one shared library).
#: The package ``__init__`` modules only re-export names and stay pure Python.
COMPILED: tuple[str, ...] = (
    "tcplab.wire.errors",
    "tcplab.wire.checksum",
    "tcplab.wire.seq",
    "tcplab.wire.tcp",
    "tcplab.wire.ip",
    "tcplab.trace",
    "tcplab.engine.errors",
    "tcplab.engine.state",
    "tcplab.engine.config",
    "tcplab.engine.profiles",
    "tcplab.engine.counters",
    "tcplab.engine.isn",
    "tcplab.engine.options",
    "tcplab.engine.rtt",
    "tcplab.engine.acks",
    "tcplab.engine.timestamps",
    "tcplab.engine.retries",
    "tcplab.engine.congestion",
    "tcplab.engine.reassembly",
    "tcplab.engine.sendbuffer",
    "tcplab.engine.recvbuffer",
    "tcplab.engine.sack",
    "tcplab.engine.fastopen",
    "tcplab.engine.context",
    "tcplab.engine.ports",
    "tcplab.engine.connection",
    "tcplab.engine.listener",
    "tcplab.engine.timewait",
    "tcplab.engine.host",
    "tcplab.sim.network",
)

#: The group's shared library (mypyc's runtime and every module's code).
SHARED_LIB = "tcplab._native__mypyc"

#: The environment variable that selects pure Python (install time and run time).
ENV = "TCPLAB_PURE_PYTHON"

#: The build record setup.py writes into the package.
RECORD = "_build.txt"

_HERE = os.path.dirname(os.path.abspath(__file__))

_build = "pure"
_why = "not decided yet"


def pure_requested(environ: "Mapping[str, str]" = os.environ) -> bool:
    """Does the environment ask for pure Python (``TCPLAB_PURE_PYTHON`` set, not 0)?"""
    return environ.get(ENV, "").strip().lower() not in ("", "0", "no", "false")


def source_path(module: str, root: str = _HERE) -> str:
    """The ``.py`` file of a tcplab module under the package directory ``root``."""
    return os.path.join(root, *module.split(".")[1:]) + ".py"


def extension_path(module: str, root: str = _HERE) -> str | None:
    """The compiled extension of a tcplab module under ``root``, if there is one."""
    base = os.path.join(root, *module.split(".")[1:])
    for suffix in _imp.extension_suffixes():
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def _extensions_present(root: str) -> tuple[int, bool]:
    """(how many of COMPILED have an extension, is the shared library there), from
    one directory listing per package."""
    suffixes = _imp.extension_suffixes()
    listings: dict[str, set[str]] = {}

    def present(module: str) -> bool:
        parts = module.split(".")[1:]
        directory = os.path.join(root, *parts[:-1])
        names = listings.get(directory)
        if names is None:
            try:
                names = set(os.listdir(directory))
            except OSError:
                names = set()
            listings[directory] = names
        return any(parts[-1] + suffix in names for suffix in suffixes)

    return sum(present(m) for m in COMPILED), present(SHARED_LIB)


def stamp(path: str) -> tuple[int, int, int]:
    """What the build record keeps of a source file: size, modification time (ns) and
    CRC-32.  The time is a shortcut: only a file whose time changed is read again."""
    import zlib

    with open(path, "rb") as f:
        data = f.read()
        mtime = os.fstat(f.fileno()).st_mtime_ns
    return len(data), mtime, zlib.crc32(data)


def record_text(compiled: bool, why: str, root: str, in_place: bool = False) -> str:
    """The build record: whether the modules were compiled and why; for an in-place
    (editable) build, a stamp of each source as it was compiled, to notice edits."""
    lines = ["# tcplab build record, written by setup.py; read by tcplab.buildinfo",
             f"compiled {int(compiled)}", f"why {why}", f"in-place {int(in_place)}"]
    if compiled and in_place:
        for module in COMPILED:
            size, mtime, crc = stamp(source_path(module, root))
            lines.append(f"source {module} {size} {mtime} {crc}")
    return "\n".join(lines) + "\n"


class Record:
    """A build record as read back."""

    __slots__ = ("compiled", "in_place", "stamps", "why")

    def __init__(self) -> None:
        self.compiled = False
        self.why = ""
        self.in_place = False
        self.stamps: dict[str, tuple[int, int, int]] = {}


def read_record(root: str = _HERE) -> Record | None:
    """The build record under ``root``, or None when there is none."""
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    record = Record()
    for line in lines:
        key, _, rest = line.partition(" ")
        if key == "compiled":
            record.compiled = rest.strip() == "1"
        elif key == "why":
            record.why = rest.strip()
        elif key == "in-place":
            record.in_place = rest.strip() == "1"
        elif key == "source":
            parts = rest.split()
            if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
                record.stamps[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
    return record


def _changed_sources(stamps: "Mapping[str, tuple[int, int, int]]", root: str) -> list[str]:
    changed = []
    for module in COMPILED:
        path = source_path(module, root)
        try:
            st = os.stat(path)
        except OSError:
            continue  # an install without sources: nothing can be stale
        then = stamps.get(module)
        if then is not None and (st.st_size, st.st_mtime_ns) == then[:2]:
            continue  # untouched since the build
        if then is None or st.st_size != then[0] or stamp(path)[2] != then[2]:
            changed.append(module)
    return changed


def decide(environ: "Mapping[str, str]" = os.environ, root: str = _HERE) -> tuple[str, str]:
    """``("compiled" | "pure", why)`` for the install under ``root``."""
    if pure_requested(environ):
        return "pure", f"{ENV}={environ.get(ENV, '').strip()} is set"
    present, shared = _extensions_present(root)
    record = read_record(root)
    if not present and not shared:
        if record is not None and not record.compiled and record.why:
            return "pure", record.why
        return "pure", "this install has no compiled modules"
    if present < len(COMPILED) or not shared:
        return "pure", (f"only {present} of {len(COMPILED)} compiled modules are "
                        "installed; reinstall to compile them all")
    if record is None or not record.compiled:
        return "pure", "the compiled modules have no build record; reinstall to rebuild them"
    if record.in_place:
        # An editable install: its sources may have been edited since the build.
        changed = _changed_sources(record.stamps, root)
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            return "pure", (f"the compiled modules are out of date ({changed[0]}{more} "
                            "changed since the build); reinstall to recompile")
    return "compiled", record.why or "compiled with mypyc"


class PurePythonFinder:
    """A meta path finder that loads the compiled modules from their ``.py`` files."""

    def __init__(self, root: str = _HERE) -> None:
        self.root = root
        self.modules = frozenset(COMPILED)

    def find_spec(self, fullname: str, path: "Sequence[str] | None" = None,
                  target: object = None) -> "ModuleSpec | None":
        if fullname not in self.modules:
            return None
        source = source_path(fullname, self.root)
        if not os.path.isfile(source):
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source)


def select() -> None:
    """Decide which build runs (once, before any compiled module is imported)."""
    global _build, _why
    _build, _why = decide()
    if _build == "pure" and any(_extensions_present(_HERE)):
        # The extensions would win over the .py files: put a finder in front.
        if not any(isinstance(f, PurePythonFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, PurePythonFinder())


def build() -> str:
    """``"compiled"`` or ``"pure"``: what :func:`select` decided."""
    return _build


def loaded_build(module: str = "tcplab.engine.connection") -> str:
    """What really runs: ``"compiled"`` when ``module`` was loaded from an extension."""
    import importlib

    origin = getattr(importlib.import_module(module), "__file__", None) or ""
    return "compiled" if origin.endswith(tuple(_imp.extension_suffixes())) else "pure"


def describe() -> str:
    """One line for ``tcplab --version``: which build runs, and why."""
    real = loaded_build()
    if real != _build:  # cannot happen unless something imported the modules early
        return (f"{'compiled (mypyc)' if real == 'compiled' else 'pure Python'}, although "
                f"{_build} was selected ({_why})")
    if real == "compiled":
        return f"compiled (mypyc): {len(COMPILED)} modules; {_why}"
    return f"pure Python: {_why}"
