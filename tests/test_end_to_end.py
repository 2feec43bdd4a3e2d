"""One real run: the paper's MNIST model trained for an epoch on the real data, then sampled, evaluated and
inspected through the CLI, as a user would."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from gancli.cli import app


def run(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_paper_model_on_real_mnist(tmp_path, mnist_data_dir):
    ckpt = tmp_path / "ckpt"
    out = run("train", "mnist", "--epochs", 1, "--ckpt", ckpt, "--data-dir", mnist_data_dir)
    assert "done: epoch 1, step 500" in out
    record = json.loads((ckpt / "metrics.jsonl").read_text())
    # One epoch of the paper's recipe: D has learnt to tell real from generated, G is not collapsed to 0.
    assert record["epoch"] == 1 and record["step"] == 500
    assert record["d_real"] > 0.55 and record["d_fake"] < 0.45 and np.isfinite(record["g_loss"])

    info = json.loads(run("inspect", ckpt, "--json"))
    assert info["epoch"] == 1 and info["params"] == {"generator": 2_503_984, "discriminator": 1_231_441}
    assert info["dataset"] == "mnist" and info["provenance"]["splits"]["train"] == 50_000

    samples = tmp_path / "s.npz"
    run("sample", ckpt, "--n", 16, "--nearest", "--out", samples, "--data-dir", mnist_data_dir)
    with np.load(samples) as f:
        assert f["samples"].shape == (16, 28, 28, 1) and f["nearest_index"].max() < 50_000
