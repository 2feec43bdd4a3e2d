"""The paper and toy presets compute what they computed before the training core was redesigned.

The figures are the per-epoch means gancli logged for the first two epochs (seed 0, CPU, jax 0.10.2), measured
on commit a17631b (MNIST at k/255, the core of the first wave) with
`gancli train {mnist,ring8,toy1d} --epochs 2 --seed 0`. Any change to what an iteration computes (an init, a
random stream, a loss, an optimiser step) moves them far beyond the tolerance.
"""

from __future__ import annotations

import json

import pytest

from gancli import train
from gancli.config import preset, with_overrides

KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
PINNED = {
    "mnist": [(0.353092, 1.964546, 0.755639, 0.2775), (0.128106, 3.496274, 0.925709, 0.07512)],
    "ring8": [(0.601615, 0.892162, 0.566579, 0.436827), (0.554621, 0.990208, 0.58539, 0.410209)],
    "toy1d": [(0.696368, 0.701531, 0.501709, 0.500009), (0.69621, 0.698109, 0.499788, 0.500234)],
}


def logged(dataset: str, tmp_path, data_dir=None) -> list[tuple[float, ...]]:
    config = with_overrides(preset(None, dataset), epochs=2, seed=0)
    train.train(config, tmp_path / dataset, data_dir)
    lines = (tmp_path / dataset / "metrics.jsonl").read_text().splitlines()
    return [tuple(json.loads(line)[k] for k in KEYS) for line in lines]


@pytest.mark.parametrize("dataset", ["ring8", "toy1d"])
def test_toy_preset_first_two_epochs_are_unchanged(dataset, tmp_path):
    for got, want in zip(logged(dataset, tmp_path), PINNED[dataset], strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_paper_preset_first_two_epochs_on_real_mnist_are_unchanged(tmp_path, mnist_data_dir):
    for got, want in zip(logged("mnist", tmp_path, mnist_data_dir), PINNED["mnist"], strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
