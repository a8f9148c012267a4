"""The package layering: imports go downward only, and no module imports itself back.

Layers, bottom to top (STYLE.md): wire -> engine -> backends -> applications -> CLI.
Every ``import`` and ``from ... import`` in src/tcplab is read with ``ast``,
including those under ``if TYPE_CHECKING:`` and inside functions: a cycle or
an upward import hidden there still couples the modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "tcplab"

#: package (or top-level module) -> layer; a module may import its own layer or below.
LAYERS: dict[str, int] = {
    "wire": 0,
    "trace": 1,           # the typed trace vocabulary: used by the engine, built on wire
    "engine": 2,
    "sim": 3, "api": 3, "tun": 3, "kernel": 3,                      # backends
    "http": 4, "lab": 4, "packetdrill": 4, "scenarios": 4, "render": 4, "pcap": 4,  # applications
    "i18n": 4,            # the text catalogues the applications speak in
    "faults": 4,          # --drop/--delay/--dup: segments named by their role in a life
    "onlinux": 4,         # lessons on two Linux kernels in namespaces (--on linux, compare)
    "cli": 5, "__main__": 5,
    "__init__": 0,        # tcplab/__init__.py: the version, and the build choice
    "buildinfo": 0,       # which build runs (compiled or pure Python): standard library only
    "signals": 0,         # holding SIGINT for a few lines of set-up: a leaf utility
}
LAYER_NAMES = {0: "wire", 1: "trace", 2: "engine", 3: "backends", 4: "applications", 5: "CLI"}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts == ["tcplab"]:
        return LAYERS["__init__"]
    top = parts[1]
    if top not in LAYERS:
        raise AssertionError(f"{module}: no layer assigned to tcplab.{top} in tests/test_layers.py")
    return LAYERS[top]


def imports_of(path: Path, module: str) -> set[str]:
    """Every tcplab module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tcplab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("tcplab"):
                continue
            found.add(target)
            for a in node.names:  # "from tcplab.engine import host" imports a module
                if (SRC.parent / (target.replace(".", "/") + "/" + a.name + ".py")).exists():
                    found.add(f"{target}.{a.name}")
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps = set()
        for target in imports_of(path, mod):
            if target in modules:
                deps.add(target)
            elif target.rpartition(".")[0] in modules:  # "from pkg.mod import name"
                deps.add(target.rpartition(".")[0])
        # A package's __init__ is imported by every module below it; that is
        # Python's mechanics, not a dependency the code chose.
        graph[mod] = {d for d in deps if not mod.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == GREY:
                return [*stack[stack.index(nxt):], nxt]
            if colour[nxt] == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "tcplab.engine.host" in graph["tcplab.sim.network"]
    assert "tcplab.wire.seq" in graph["tcplab.engine.connection"]
    assert len(graph) > 60


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_go_downward_only() -> None:
    graph = import_graph()
    upward = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(mod):
                upward.append(f"{mod} ({LAYER_NAMES[layer_of(mod)]}) imports {dep} "
                              f"({LAYER_NAMES[layer_of(dep)]})")
    assert not upward, "imports that climb the layers:\n" + "\n".join(upward)


def test_connection_never_refers_to_a_host() -> None:
    """engine/connection.py holds no Host: outputs go out through its context."""
    text = (SRC / "engine" / "connection.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "Host" not in names and "host" not in attrs
    assert "tcplab.engine.host" not in imports_of(SRC / "engine" / "connection.py",
                                                   "tcplab.engine.connection")


@pytest.mark.parametrize("mod", ["tcplab.engine.connection", "tcplab.engine.host",
                                 "tcplab.engine.timewait", "tcplab.wire.seq"])
def test_engine_modules_import_no_backend(mod: str) -> None:
    graph = import_graph()
    assert all(layer_of(d) <= 2 for d in graph[mod]), graph[mod]
