"""Hostile input and damaged checkpoints (issue 35): each case makes its own bad file, and must end in one line,
a non-zero exit and nothing already written lost, or be set aside like other damage."""

from __future__ import annotations

import io
import logging
import os
import shutil
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import checkpoint, data, steps, train
from gancli.cli import app
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


@pytest.fixture
def warnings_logged():
    lines = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("gancli").addHandler(handler)
    yield lines
    logging.getLogger("gancli").removeHandler(handler)


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
