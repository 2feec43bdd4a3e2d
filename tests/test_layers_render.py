"""The layers: Rich (and Typer) only in gancli.cli, the library returning data that the CLI draws; matplotlib only
through Figure objects, never pyplot (the training loop draws pictures on a worker thread; pyplot is not thread-safe)."""

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
            found += [f"{path.name}:{node.lineno} {i}" for i in imported if i.split(".")[0] in UI or i == "matplotlib.pyplot"]
            if isinstance(node, ast.ImportFrom) and node.module == "matplotlib" and any(a.name == "pyplot" for a in node.names):
                found.append(f"{path.name}:{node.lineno} matplotlib.pyplot")
            if isinstance(node, ast.Attribute) and node.attr == "use" and getattr(node.value, "id", None) == "matplotlib":
                found.append(f"{path.name}:{node.lineno} matplotlib.use")
    assert not found, found


def test_pictures_are_drawn_without_pyplot(tmp_path):
    code = f"""
import importlib, json, sys
import numpy as np
for name in {library_modules()!r}:
    importlib.import_module(name)
from gancli import images, inspection
from pathlib import Path
out = Path({str(tmp_path)!r})
images.save_grid(np.random.default_rng(0).random((12, 8, 8, 1)), out / "grid.png")
images.save_samples(np.random.default_rng(0).normal(size=(200, 2)), out / "scatter.png", "t", np.zeros((50, 2)))
history = [{{"epoch": e, "step": 10 * e, "d_loss": 0.6, "g_loss": 0.9, "d_real": 0.55, "d_fake": 0.45}} for e in (1, 2, 3)]
inspection.plot_curves(history, out / "curves.png", "run")
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    result = run_fresh(code)
    assert result.returncode == 0, result.stderr[-3000:]
    from PIL import Image

    from gancli.images import MIN_WIDTH

    width, height = 4 * 9 + 1, 3 * 9 + 1  # 12 tiles of 8 px, 4 by 3, 1 px apart
    scale = MIN_WIDTH // width  # small grids are enlarged by whole pixels
    assert Image.open(tmp_path / "grid.png").size == (width * scale, height * scale)
    assert Image.open(tmp_path / "curves.png").size == (1000, 380)  # 10 x 3.8 inches at 100 dpi
    assert Image.open(tmp_path / "scatter.png").size[0] > 100


def test_python_m_gancli_cli_runs_the_commands():
    result = subprocess.run([sys.executable, "-m", "gancli.cli", "presets"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC.parent), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("Presets (gancli train DATASET --preset NAME")
