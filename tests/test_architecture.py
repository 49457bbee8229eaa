"""The layers point one way, and nobody reaches past a module's public face.

The import graph is read with ``ast`` from every module of the project, imports inside
functions included, so that a cycle cannot hide behind a local import:

* no import cycle among the project's modules;
* ``ingest/`` imports nothing from ``assistant/`` (it is the lower layer);
* outside ``tests/``, no access to another object's private attribute: ``x._name``
  where ``x`` is not ``self`` or ``cls`` (a module's own names, dunders and the
  namedtuple API ``_replace``/``_asdict``/``_fields`` are fine);
* no module of ``assistant/``, ``ingest/`` or ``benchmarks/`` over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "ingest")
CHECKED = PACKAGES + ("benchmarks",)  # benchmarks call only public methods too
MAX_LINES = 500  # a module longer than this holds more than one job: split it
ALLOWED_PRIVATE = {"_replace", "_asdict", "_fields", "_make", "_exit", "_getframe"}
# reaching into a third-party library, on purpose and documented where it happens
THIRD_PARTY_PRIVATE = {
    # chromadb==1.5.9 has no public way to close the PersistentClient of one path
    ("ingest/index.py", "SharedSystemClient._identifier_to_system"),
    ("ingest/index.py", "SharedSystemClient._identifier_to_refcount"),
}
# cycles owned by work in progress elsewhere: each entry names who removes it. Any other cycle fails.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for the packages and benchmarks (as top-level scripts)."""
    out = {}
    for top in CHECKED:
        for f in sorted((REPO / top).rglob("*.py")):
            rel = f.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if top == "benchmarks":
                parts = parts[1:]  # run as scripts: `_common` is imported as a top-level module
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (top level or in a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(target: str) -> None:
        # the longest known module that `target` is or lies in
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name, path)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if f"{mod}.{node.names[0].name}" in known:  # `from . import x`: the submodule x
                for alias in node.names:
                    add(f"{mod}.{alias.name}")
            else:
                add(mod)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private_accesses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or (attr.startswith("__") and attr.endswith("__")) or attr in ALLOWED_PRIVATE:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        rel = path.relative_to(REPO).as_posix()
        if (rel, ast.unparse(node)) in THIRD_PARTY_PRIVATE:
            continue
        bad.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return bad


# --- the checks ----------------------------------------------------------------------------------

def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "assistant.models" in graph["assistant.query"]  # `from .models import load_llm` inside a property
    assert "ingest.pipeline" in graph["assistant.indexing"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    found = [c for c in cycles(import_graph()) if tuple(c) not in KNOWN_CYCLES]
    assert not found, "import cycles (imports inside functions count): " + "; ".join(" <-> ".join(c) for c in found)


def test_ingest_imports_nothing_from_assistant():
    graph = import_graph()
    bad = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith("ingest")
                 for d in deps if d.startswith("assistant"))
    assert not bad, "ingest/ must not import assistant/: " + ", ".join(bad)


def test_no_access_to_another_modules_private_attributes():
    bad = [hit for path in _modules().values() for hit in private_accesses(path)]
    assert not bad, "private attributes reached from outside:\n" + "\n".join(bad)


def test_no_module_is_over_max_lines():
    sizes = {path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in _modules().values()}
    long = sorted(f"{rel} ({n} lines)" for rel, n in sizes.items() if n > MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(long)


def test_ruff_is_clean():
    """The lint rules of pyproject.toml ([tool.ruff]) hold on the whole tree (ruff is in the test extra)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", str(REPO)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
