"""The toy games: D approaches D* against a fixed G, the 1-D game ends at D = 1/2, ring8's mode coverage."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gancli import data, objectives, sampling, steps, train
from gancli.config import preset, with_overrides
from gancli.data import toy


def test_toy_sets_load_by_name_with_known_shapes():
    x, y = data.load("toy1d", "train")
    assert x.shape == (50_000, 1) and x.dtype == np.float32
    assert abs(x.mean() - toy.TOY1D_MEAN) < 0.01 and abs(x.std() - toy.TOY1D_STD) < 0.01
    r, modes = data.load("ring8", "validation")
    assert r.shape == (10_000, 2) and set(np.unique(modes)) == set(range(8))
    np.testing.assert_array_equal(data.load("ring8", "validation")[0], r)  # fixed seed: the same points each time
    assert preset(None, "ring8").preset == "toy" and preset(None, "mnist").preset == "paper"


def test_discriminator_against_a_fixed_generator_approaches_d_star():
    """Train D alone: D(x) should approach p_data(x) / (p_data(x) + p_g(x)) (Proposition 1)."""
    x_train, _ = data.load("toy1d", "train")
    config = with_overrides(preset(None, "toy1d"), batch_size=500)
    game = steps.Game(config, (1,), len(x_train))
    state = steps.init_state(game, 0)
    g, real = state["g"], jnp.asarray(x_train)

    @jax.jit
    def train_d(d, opt):
        def body(carry, i):
            d, opt = carry
            k_idx, k_step = jax.random.split(jax.random.PRNGKey(i))
            batch = {"image": real[jax.random.randint(k_idx, (500,), 0, real.shape[0])], "label": jnp.zeros(500, jnp.int32)}
            ctx = objectives.Context(config, 0)
            grads, *_ = steps._d_step_grads(game, ctx, g, None, d, None, batch, k_step)
            updates, opt = game.d_tx.update(grads, opt, d)
            return (jax.tree.map(jnp.add, d, updates), opt), None

        return jax.lax.scan(body, (d, opt), jnp.arange(1000))[0]

    d, _ = train_d(state["d"], state["d_opt"])
    fake = np.asarray(steps.sample(game, state, game.noise(jax.random.PRNGKey(9), 400_000)))[:, 0]
    xs = np.linspace(-1.0, 5.0, 121)
    hist, edges = np.histogram(fake, bins=300, range=(-1.0, 5.0), density=True)
    p_g = np.interp(xs, (edges[:-1] + edges[1:]) / 2, hist)
    p_data = toy.toy1d_density(xs)
    d_star = p_data / (p_data + p_g + 1e-12)
    d_x = np.asarray(jax.nn.sigmoid(steps.discriminate(game, {"d": d}, jnp.asarray(xs[:, None], jnp.float32))["logit"]))
    where = (p_data + p_g) > 0.05  # where either density has mass; elsewhere D* is unconstrained by data
    assert where.sum() > 30
    assert np.abs(d_x - d_star)[where].mean() < 0.03
    # and D really discriminates: it is confident somewhere on both sides
    assert d_x[where].max() > 0.95 and d_x[where].min() < 0.05


def test_one_dimensional_game_ends_with_d_one_half_where_the_data_lie(tmp_path):
    out = train.train(with_overrides(preset(None, "toy1d"), epochs=8), tmp_path / "toy1d")
    run = sampling.restore(tmp_path / "toy1d")
    x_test, _ = data.load("toy1d", "test")
    d_x = sampling.discriminate(run, x_test)
    assert out.status == "done" and abs(float(d_x.mean()) - 0.5) < 0.05
    samples = sampling.draw(run, 10_000, 0)["samples"]
    assert abs(samples.mean() - toy.TOY1D_MEAN) < 0.2 and abs(samples.std() - toy.TOY1D_STD) < 0.15


def test_mode_coverage_counts_modes_and_quality():
    centres = toy.ring8_centres()
    rng = np.random.default_rng(0)
    all_modes = centres[rng.integers(0, 8, 1000)] + rng.normal(0, 0.01, (1000, 2))
    full = toy.mode_coverage(all_modes)
    assert full["modes_covered"] == 8 and full["high_quality_share"] == pytest.approx(1.0)
    collapsed = np.concatenate([centres[[2]] + rng.normal(0, 0.01, (900, 2)), rng.normal(0, 0.3, (100, 2))])
    one = toy.mode_coverage(collapsed)
    assert one["modes_covered"] == 1 and one["covered"][2] and 0.85 < one["high_quality_share"] < 0.95


def test_evaluate_reports_mode_coverage_for_ring8(tmp_path):
    from typer.testing import CliRunner

    from gancli.cli import app

    centres = toy.ring8_centres()
    rng = np.random.default_rng(1)
    collapsed = (centres[rng.integers(0, 3, 2000)] + rng.normal(0, 0.02, (2000, 2))).astype(np.float32)
    np.save(tmp_path / "three_modes.npy", collapsed)
    result = CliRunner().invoke(app, ["evaluate", "--samples", str(tmp_path / "three_modes.npy"), "--dataset", "ring8",
                                      "--no-calibration", "--n-valid", "200"])
    assert result.exit_code == 0, result.output
    assert "Mode coverage on ring8" in result.output and "3 / 8" in result.output
    report = json.loads((tmp_path / "parzen.json").read_text())
    assert report["models"][0]["mode_coverage"]["modes_covered"] == 3
