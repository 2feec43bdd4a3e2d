"""The package's layers flow one way (docs/architecture.md): every import of a gancli module, at the top of a file
or inside a function, goes to the same layer or one below, and no set of modules imports itself round in a cycle.
A function-level import hides a cycle from Python but not from this test."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gancli"

# Lowest first. A module belongs to the first entry that is it or a package above it.
LAYERS = (
    ("base", ("gancli.errors", "gancli.files", "gancli.images", "gancli.knn", "gancli.pixels", "gancli.events",
              "gancli.stops")),
    ("config", ("gancli.config",)),
    ("data", ("gancli.data",)),
    ("objectives", ("gancli.objectives",)),
    ("models", ("gancli.models",)),
    ("training", ("gancli.optim", "gancli.streams", "gancli.penalties", "gancli.augment", "gancli.spectral", "gancli.steps", "gancli.parallel", "gancli.checkpoint",
                  "gancli.rundir", "gancli.conditional", "gancli.streaming", "gancli.train")),
    ("sampling", ("gancli.sampling",)),
    ("evaluation", ("gancli.parzen", "gancli.feature_nets", "gancli.metrics", "gancli.judge", "gancli.semi_supervised",
                    "gancli.per_epoch")),
    ("reports", ("gancli.report", "gancli.html_report")),
    ("runners", ("gancli.evaluate", "gancli.inspection", "gancli.compare")),
    ("cli", ("gancli.cli",)),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def imports(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every gancli module that path imports, anywhere in the file; `from gancli import x` names
    module gancli.x when x is one, and `from gancli.a import f` names gancli.a."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("gancli")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("gancli"):
                continue
            for a in node.names:
                found.append((node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base))
    return [(line, m) for line, m in found if m != me and m != "gancli"]


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {target for _, target in imports(p, set(mods))} for m, p in mods.items()}


def upward() -> list[str]:
    mods = modules()
    out = []
    for m, p in mods.items():
        for line, target in imports(p, set(mods)):
            if layer_of(target) is not None and layer_of(m) is not None and layer_of(target) > layer_of(m):
                out.append(f"{p.relative_to(SRC.parent)}:{line} {m} ({LAYERS[layer_of(m)][0]}) imports {target} "
                           f"({LAYERS[layer_of(target)][0]}), a layer above")
    return out


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    g = graph()
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    assert [m for m in modules() if m != "gancli" and layer_of(m) is None] == []


def test_no_import_goes_up_a_layer():
    assert upward() == []


def test_no_import_cycle():
    assert cycles() == []


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path, monkeypatch):
    """The checks themselves: a function-level import up a layer and a two-module cycle are both found."""
    pkg = tmp_path / "gancli"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("def f():\n    from gancli import data\n")
    (pkg / "data" / "__init__.py").write_text("from gancli.config import f\n")
    monkeypatch.setattr(__import__(__name__), "SRC", pkg)
    assert upward() == ["gancli/config.py:2 gancli.config (config) imports gancli.data (data), a layer above"]
    assert cycles() == [["gancli.config", "gancli.data"]]
