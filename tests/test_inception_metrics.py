"""The inception metric through the one runner: Fréchet distance, kernel distance and PRDC on Inception-v3 pool3
features of any image dataset, with the protocol recorded beside the numbers and the reference split's features
computed once per (weights, dataset) and kept. Real network, real MNIST, cut small so that each call takes
seconds on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import data, metrics
from gancli.cli import app

# One size for the test split, the samples and the calibration rows, so that Inception compiles once.
CUT = {"train": 20, "test": 20}


@pytest.fixture(scope="module")
def tiny_mnist(mnist_data_dir, inception_wheel, tmp_path_factory):
    """The real MNIST cut to CUT, in a data dir of this module's own that holds the cached Inception wheel: the
    shared one's kept references are written by tests running beside these (pytest -n)."""
    root = tmp_path_factory.mktemp("data")
    for entry in ("downloads", "gancli_mnist"):
        (root / entry).symlink_to(mnist_data_dir / entry)
    load = data.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "load", lambda name, split, data_dir=None: tuple(a[: CUT.get(split)] for a in load(name, split, data_dir)))
        yield root


def ours(cache) -> list:
    """The kept reference files of the cut test split (a full-size one may sit beside them)."""
    def rows(path):
        try:
            with np.load(path) as f:
                return len(f["features"])
        except (OSError, ValueError, KeyError):
            return None
    return [p for p in cache.glob("mnist-test-inception-*.npz") if rows(p) == CUT["test"]] if cache.is_dir() else []


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_inception_metrics_of_a_samples_file_with_their_protocol_and_a_kept_reference(tiny_mnist, tmp_path):
    images = data.load("mnist", "validation", tiny_mnist)[0][:20]
    np.save(tmp_path / "valid.npy", images)
    cache = tiny_mnist / "gancli-stats"
    for old in ours(cache):  # a previous run's: this call must compute it
        old.unlink()
    first = invoke("evaluate", "--samples", tmp_path / "valid.npy", "--metrics", "inception", "--json",
                   "--data-dir", tiny_mnist)
    assert first.exit_code == 0, first.output
    rep = json.loads(first.stdout)
    assert rep["metrics"] == ["inception"]
    inc = rep["reference"]["inception"]
    assert inc["sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34" and "299" in inc["resize"]
    assert rep["reference"]["split"] == "test" and rep["reference"]["n"] == CUT["test"] and rep["sampling"]["n_samples"] == 20
    real, train, noise = rep["models"][0], rep["calibration"]["train"], rep["calibration"]["noise"]
    flat = {name: metrics.scalars(row) for name, row in (("real", real), ("train", train), ("noise", noise))}
    assert flat["real"]["inception_fid"] < flat["noise"]["inception_fid"] / 3
    assert flat["train"]["inception_fid"] < flat["noise"]["inception_fid"] / 3
    assert flat["real"]["inception_kid"] < flat["noise"]["inception_kid"]
    (kept,) = ours(cache)

    # The second call reads the kept features and gives the same figures; a damaged file is computed again.
    second = invoke("evaluate", "--samples", tmp_path / "valid.npy", "--metrics", "inception", "--json", "--force",
                    "--no-calibration", "--data-dir", tiny_mnist)
    assert second.exit_code == 0, second.output
    assert "cached in" in second.stderr
    assert metrics.scalars(json.loads(second.stdout)["models"][0]) == pytest.approx(flat["real"], rel=1e-6)
    kept.write_bytes(b"not an npz")
    third = invoke("evaluate", "--samples", tmp_path / "valid.npy", "--metrics", "inception", "--json", "--force",
                   "--no-calibration", "--data-dir", tiny_mnist)
    assert third.exit_code == 0, third.output
    assert "damaged or stale" in third.stderr
    assert metrics.scalars(json.loads(third.stdout)["models"][0]) == pytest.approx(flat["real"], rel=1e-4)


def test_the_inception_metrics_refuse_what_is_not_images(tmp_path):
    np.save(tmp_path / "points.npy", np.zeros((20, 2), np.float32))
    result = invoke("evaluate", "--samples", tmp_path / "points.npy", "--dataset", "ring8", "--metrics", "inception")
    assert result.exit_code == 1 and "need images" in result.output and "Traceback" not in result.output
    result = invoke("evaluate", "--samples", tmp_path / "points.npy", "--dataset", "ring8", "--metrics", "all")
    assert result.exit_code == 1 and "no sample-quality metric applies to ring8" in result.output
