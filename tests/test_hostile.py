"""Hostile input and damaged checkpoints (issue 35): each case makes its own bad file, and must end in one line,
a non-zero exit and nothing already written lost, or be set aside like other damage."""

from __future__ import annotations

import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import checkpoint, data, steps, train
from gancli.cli import app
from gancli.config import preset, with_overrides
from gancli.errors import GancliError
import helpers

TINY = {**helpers.TINY, "ckpt_every": 1}
GAME = steps.Game(helpers.tiny(**TINY), (4, 4, 1), 200)
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("fake_data_for_module")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-epoch run (checkpoints at steps 20 and 40), trained once; copy it before changing it."""
    path = tmp_path_factory.mktemp("trained") / "run"
    train.train(helpers.tiny(**TINY, epochs=2), path)
    return path


@pytest.fixture
def copy_of(trained, tmp_path):
    return lambda name="run": Path(shutil.copytree(trained, tmp_path / name))


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


# --- 1. a state stored in another dtype is damage, never cast ---


def rewrite_as(run: Path, step: int, dtype) -> None:
    """Step `step` saved again with the same tree, its floating arrays in dtype (a tool that "converted" it)."""
    restored = checkpoint.load_run(run, lambda c, m: steps.abstract_state(GAME))
    assert restored.metadata["step"] == step
    cast = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, restored.state)
    shutil.rmtree(run / "checkpoints" / str(step))
    with checkpoint.Writer(run, keep=3) as writer:
        writer.save(step, cast, restored.config, restored.metadata)
        writer.wait()


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_a_state_stored_in_another_dtype_is_skipped_naming_the_array(copy_of, warnings_logged, dtype):
    run = copy_of()
    rewrite_as(run, 40, dtype)
    restored = checkpoint.load_run(run, lambda c, m: steps.abstract_state(GAME))
    assert restored.metadata["step"] == 20
    assert warnings_logged == [
        f"skipped step 40 of {run}: its state files are damaged (d.Dense_0.bias is stored as {dtype}, gancli keeps "
        "float32; 17 more)"
    ]


def test_training_falls_back_past_a_float16_state_and_sets_it_aside(copy_of):
    run = copy_of()
    rewrite_as(run, 40, "float16")
    result = invoke("train", "--ckpt", run, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"warning: skipped step 40 of {run}: its state files are damaged (d.Dense_0.bias "
                                    "is stored as float16, gancli keeps float32"), result.stderr
    assert (run / "checkpoints" / "40.skipped").is_dir()
    assert sorted(checkpoint.checkpoint_steps(run)) == [20, 40, 60]


def test_a_float16_state_that_is_the_only_one_is_one_line(copy_of):
    run = copy_of()
    shutil.rmtree(run / "checkpoints" / "20")
    rewrite_as(run, 40, "float16")
    one_line_error(invoke("sample", run), f"error: cannot restore {run}/checkpoints/40: its state files are damaged "
                                          "(d.Dense_0.bias is stored as float16, gancli keeps float32; 17 more)")


# --- 4. a samples file whose header declares a negative or absurd dimension ---


def npy_claiming(shape) -> bytes:
    """A .npy header declaring shape, over 64 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(64)


@pytest.mark.parametrize("shape, says", [
    ((-5, 784), "with a negative dimension"),  # an OverflowError traceback from numpy's memory map once
    ((4, -16), "with a negative dimension"),
    ((0, 2**62, 2**62), "larger than any array can be"),
])
@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_a_samples_header_with_a_negative_or_absurd_dimension_is_one_line(tmp_path, shape, says, kind):
    path = tmp_path / f"samples.{kind}"
    if kind == "npy":
        path.write_bytes(npy_claiming(shape))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("samples.npy", npy_claiming(shape))
    before = files_of(tmp_path)
    result = invoke("evaluate", "--samples", path, "--dataset", "mnist")
    one_line_error(result, f"its header declares the shape {shape}, {says}")
    assert files_of(tmp_path) == before


# --- 5. a --ckpt name longer than the file system takes ---


@pytest.mark.parametrize("command", ["train", "sample", "inspect"])
def test_a_ckpt_name_past_the_file_systems_limit_is_one_line_naming_the_limit(tmp_path, monkeypatch, command):
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data was loaded before the checks"))
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    (tmp_path / "kept").write_text("precious")
    name = "r" * (limit + 45)  # an OSError traceback (File name too long) once
    args = ["train", "tiny", "--ckpt", tmp_path / name / "run"] if command == "train" else [command, tmp_path / name]
    one_line_error(invoke(*args), f"error: {tmp_path}: the name 'rrrrrrrrrrrrrrrrrrrr...rrrrrrrr' is {limit + 45} bytes "
                                  f"long, more than the {limit} its file system takes for one name")
    assert files_of(tmp_path) == {tmp_path / "kept": b"precious"} and len(list(tmp_path.iterdir())) == 1


# --- 2. config values of the right name but the wrong kind, or of a size no device holds ---


@pytest.mark.parametrize("toml, says", [
    ("[generator]\nhidden = [1.5, 2.5]\n", "generator.hidden must be a list of whole numbers (got [1.5, 2.5]: 1.5 is not one)"),
    ('[generator]\nhidden = ["a"]\n', "generator.hidden must be a list of whole numbers (got ['a']: 'a' is not one)"),
    ("[generator]\nhidden = [[16, 16], [8]]\n", "generator.hidden must be a list of whole numbers (got [[16, 16], [8]]: [16, 16] is not one)"),
    ("[discriminator]\nunits = [8, true]\n", "discriminator.units must be a list of whole numbers (got [8, True]: True is not one)"),
])
def test_a_config_file_value_of_the_wrong_kind_is_one_line(tmp_path, toml, says):
    path = tmp_path / "run.toml"
    path.write_text(toml)  # a TypeError traceback once, from deep inside the model or the schema
    one_line_error(invoke("train", "tiny", "--config", path, "--ckpt", tmp_path / "run"), f"error: --config {path}: {says}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, says", [
    ({"generator.hidden": (1.5, 2.5)}, "generator.hidden must be a list of whole numbers (got [1.5, 2.5]: 1.5 is not one)"),
    ({"generator.hidden": 16}, "generator.hidden must be a list of whole numbers (got 16)"),
    ({"epochs": 2.5}, "epochs must be a whole number (got 2.5)"),
    ({"optimizer.lr": "fast"}, "optimizer.lr must be a number (got 'fast')"),
    ({"conditional": 1}, "conditional must be true or false (got 1)"),
])
def test_every_field_is_checked_against_its_declared_type(override, says):
    with pytest.raises(GancliError) as e:
        with_overrides(preset("paper", "mnist"), **override)
    assert str(e.value) == says


@pytest.mark.parametrize("how", ["set-hidden", "set-z_dim", "toml-hidden"])
def test_a_config_no_device_could_hold_is_refused_in_seconds_before_anything_is_built(tmp_path, monkeypatch, how):
    for where, name in ((steps, "compiled_chunk"), (checkpoint, "Writer")):
        monkeypatch.setattr(where, name, lambda *a, **k: pytest.fail(f"{name} was called before the check"))
    (tmp_path / "kept").write_text("precious")
    if how.startswith("set"):
        args = ["--set", f"generator.{how[4:]}=1000000000"]
    else:
        (tmp_path / "big.toml").write_text("[generator]\nhidden = [1000000000]\n")
        args = ["--config", tmp_path / "big.toml"]
    started = time.perf_counter()
    result = invoke("train", "tiny", "--ckpt", tmp_path / "run", "--epochs", 1, *args)
    one_line_error(result, "error: this config's training state needs at least ", "parameters in G",
                   "make the networks smaller")
    assert re.search(r"needs at least [\d.]+ [TPE]B .*, but the machine has [\d.]+ [kMGT]B available", result.stderr)
    assert time.perf_counter() - started < 30
    assert (tmp_path / "kept").read_text() == "precious"
    assert not any(p.name != ".gancli.lock" for p in (tmp_path / "run").rglob("*"))


# --- 3. a symlink loop or a file where Orbax keeps a step's folder ---


def test_strays_under_step_names_are_set_aside_before_training_not_met_at_the_first_save(copy_of):
    run = copy_of()
    root = run / "checkpoints"
    (root / "60").symlink_to("60")  # the next save's step: a NotADirectoryError traceback at its rename once
    (root / "60.orbax-checkpoint-tmp").write_text("mine")  # where that save writes first
    (root / "80.orbax-checkpoint-tmp").symlink_to("80.orbax-checkpoint-tmp")
    before = files_of(run)
    result = invoke("train", "--ckpt", run, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"warning: set aside {root}/60 as 60.skipped: a symlink loop where Orbax keeps a checkpoint folder",
        f"warning: set aside {root}/60.orbax-checkpoint-tmp as 60.tmp.skipped: a file where Orbax keeps a checkpoint folder",
        f"warning: set aside {root}/80.orbax-checkpoint-tmp as 80.tmp.skipped: a symlink loop where Orbax keeps a checkpoint folder",
    ]
    assert checkpoint.checkpoint_steps(run) == [20, 40, 60] and (root / "60").is_dir() and not (root / "60").is_symlink()
    assert (root / "60.tmp.skipped").read_text() == "mine"
    assert os.readlink(root / "60.skipped") == "60" and os.readlink(root / "80.tmp.skipped") == "80.orbax-checkpoint-tmp"
    kept = lambda files: {p: c for p, c in files.items() if p.is_relative_to(root / "20") or p.is_relative_to(root / "40")}
    assert kept(files_of(run)) == kept(before) != {}
