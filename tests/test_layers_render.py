"""The layers: Rich (and Typer) only in gancli.cli; the library returns data that the CLI draws."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import gancli

SRC = Path(gancli.__file__).parent
UI = ("rich", "typer")  # the terminal's libraries: the CLI's alone


def library_modules(path: Path = SRC, prefix: str = "gancli.") -> list[str]:
    """Every module of src/gancli but gancli.cli's, found without importing any (importing a package to walk it,
    as pkgutil.walk_packages does, would import gancli.cli and Rich with it)."""
    names = []
    for m in pkgutil.iter_modules([str(path)], prefix):
        if m.name == "gancli.cli":
            continue
        names.append(m.name)
        if m.ispkg:
            names += library_modules(path / m.name.rsplit(".", 1)[-1], m.name + ".")
    return names


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """code in a new interpreter importing this checkout's gancli."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_the_walk_finds_the_library_and_not_the_cli():
    names = library_modules()
    assert {"gancli.report", "gancli.inspection", "gancli.images", "gancli.train", "gancli.data.api"} <= set(names)
    assert not [n for n in names if n.startswith("gancli.cli")]


def test_no_library_module_imports_rich_or_typer():
    # flax imports Rich itself, so "rich" is in sys.modules whatever gancli does: the check is on who imports it.
    # Every import statement a library module runs while loading goes through the hook...
    code = f"""
import builtins, importlib
real = builtins.__import__
seen = []
def watch(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {{}}).get("__name__") or ""
    if level == 0 and name.split(".")[0] in {UI!r} and importer.startswith("gancli"):
        seen.append(f"{{importer}} imports {{name}}")
    return real(name, globals, locals, fromlist, level)
builtins.__import__ = watch
for name in {library_modules()!r}:
    importlib.import_module(name)
import sys
assert "gancli.cli" not in sys.modules, "a library module imported gancli.cli"
assert not seen, seen
"""
    result = run_fresh(code)
    assert result.returncode == 0, result.stderr[-3000:]
    # ... and one inside a function, which loading does not run, is found in the source.
    found = []
    for name in library_modules():
        module = SRC.joinpath(*name.split(".")[1:])
        path = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.name}:{node.lineno} {i}" for i in imported if i.split(".")[0] in UI]
    assert not found, found
