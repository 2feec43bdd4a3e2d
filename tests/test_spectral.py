"""Spectral normalisation (gancli.spectral): the estimate, which kernels it takes, one power iteration per update,
the normalised weights at test time, checkpoints and exact resume, and the config's one-line error."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from typer.testing import CliRunner

from gancli import checkpoint, sampling, spectral, steps, train
from gancli.cli import app
from gancli.config import RunConfig
from gancli.errors import GancliError
from helpers import leaves_equal, tiny


def largest_singular_value(w) -> float:
    return float(np.linalg.svd(np.asarray(w, np.float64).reshape(-1, w.shape[-1]), compute_uv=False)[0])


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (3, 3, 4, 6)])
def test_estimate_converges_to_the_largest_singular_value(shape):
    w = jax.random.normal(jax.random.PRNGKey(1), shape)
    params = {"layer": {"kernel": w, "bias": jnp.ones(shape[-1])}}
    vectors = spectral.start(RunConfig(spectral_norm="d"), jax.random.PRNGKey(2), {}, params)["d_spectral"]
    vectors = jax.jit(lambda v: jax.lax.fori_loop(0, 300, lambda i, v: spectral.iterate(params, v), v))(vectors)
    u = vectors["layer"]["kernel"]
    assert u.shape == (shape[-1],) and float(jnp.linalg.norm(u)) == pytest.approx(1.0, rel=1e-5)
    assert float(spectral.sigma(w, u)) == pytest.approx(largest_singular_value(w), rel=1e-4)
    normalised = spectral.normalise(params, vectors)
    assert largest_singular_value(normalised["layer"]["kernel"]) == pytest.approx(1.0, rel=1e-4)
    assert normalised["layer"]["bias"] is params["layer"]["bias"]  # biases are not normalised


def test_gradient_goes_through_w_only():
    """d(W/sigma)/dW with u, v constant: for f = sum(c * W/sigma), df/dW = c/sigma - (sum(c * W)/sigma^2) v u^T."""
    w = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
    u = spectral._unit(jax.random.normal(jax.random.PRNGKey(1), (4,)))
    c = jax.random.normal(jax.random.PRNGKey(2), (6, 4))
    grad = jax.grad(lambda w: jnp.sum(c * spectral.normalise({"kernel": w}, {"kernel": u})["kernel"]))(w)
    v = spectral._unit(w @ u)
    s = v @ w @ u
    expected = c / s - (jnp.sum(c * w) / s**2) * jnp.outer(v, u)
    assert np.allclose(grad, expected, rtol=1e-5, atol=1e-6)


def spectral_paths(config: RunConfig, shape) -> dict:
    state = steps.abstract_state(steps.Game(config, shape, 200))
    return {key: sorted("/".join(p) for p in traverse_util.flatten_dict(state[key])) for key in ("d_spectral", "g_spectral") if key in state}


def test_which_kernels_every_family_normalises():
    # Dense kernels; minibatch discrimination's T is not one
    assert spectral_paths(tiny(spectral_norm="both", **{"discriminator.minibatch": (3, 2)}), (4, 4, 1)) == {
        "d_spectral": ["Dense_0/kernel", "Dense_1/kernel"], "g_spectral": ["Dense_0/kernel", "out/kernel"]}
    # conv kernels (HWIO, G's transposed ones too); the label embeddings of a conditional run are not kernels
    dcgan = tiny(model="dcgan", spectral_norm="both", conditional=True, n_classes=3, **{
        "generator.hidden": (8, 4), "discriminator.units": (4, 8), "generator.output_bias_from_data": False})
    paths = spectral_paths(dcgan, (8, 8, 1))
    assert paths == {"d_spectral": ["Conv_0/kernel", "Conv_1/kernel", "Dense_0/kernel"],
                     "g_spectral": ["ConvTranspose_0/kernel", "Dense_0/kernel", "to_image/kernel"]}
    # a state without spectral normalisation has the tree it had before it existed
    assert spectral_paths(tiny(), (4, 4, 1)) == {}
    assert spectral_paths(tiny(spectral_norm="d"), (4, 4, 1)).keys() == {"d_spectral"}


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_one_power_iteration_per_update(monkeypatch, update):
    config = tiny(spectral_norm="both", k=2, update=update)
    game = steps.Game(config, (4, 4, 1), 200)
    calls = []
    real = spectral.iterate

    def counted(params, vectors):
        if vectors is not None:
            calls.append("g" if "out" in params else "d")
        return real(params, vectors)

    monkeypatch.setattr(spectral, "iterate", counted)
    jax.eval_shape(partial(steps.iteration, game), steps.abstract_state(game), steps.iteration_spec(game))
    assert sorted(calls) == ["d", "d", "g"]  # k D updates, one G update, one iteration each


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_vectors_move_by_one_iteration_with_the_weights_before_the_update(update):
    config = tiny(spectral_norm="both", update=update)
    game = steps.Game(config, (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    batches = jax.tree.map(lambda s: jnp.full(s.shape, 0.5, s.dtype), steps.iteration_spec(game))
    new, _ = steps.iteration(game, state, batches)
    for network in ("d", "g"):
        key = spectral.STATE_KEYS[network]
        expected = spectral.iterate(state[network], state[key])
        assert jax.tree.all(jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-6), new[key], expected))
        assert not leaves_equal(new[key], state[key])


def test_sampling_and_d_at_test_time_use_the_normalised_weights():
    config = tiny(spectral_norm="both", ema=0.9)
    game = steps.Game(config, (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    z = game.noise(jax.random.PRNGKey(3), 5)
    normalised = spectral.normalise(state["g_ema"], state["g_spectral"])  # the raw weights' average, normalised
    expected = steps.run_generator(game, normalised, None, z, train=False)[0]
    raw = steps.run_generator(game, state["g_ema"], None, z, train=False)[0]
    assert np.allclose(steps.sample(game, state, z), expected) and not np.allclose(expected, raw)
    x = jnp.full((5, 4, 4, 1), 0.5)
    d_normalised = spectral.normalise(state["d"], state["d_spectral"])
    assert np.allclose(steps.discriminate(game, state, x)["logit"],
                       steps.run_discriminator(game, d_normalised, None, x, None, train=False)[0]["logit"])


def test_training_checkpoints_the_vectors_and_resumes_bit_exactly(tmp_path, fake_data):
    config = tiny(epochs=2, spectral_norm="both", update="alternating", k=2)
    whole = train.train(config, tmp_path / "whole")
    train.train(tiny(epochs=1, spectral_norm="both", update="alternating", k=2), tmp_path / "parts")
    resumed, resuming = train.resolve_config(tmp_path / "parts", None, None, {"epochs": 2}, resume=False)
    assert resuming and resumed.spectral_norm == "both"
    parts = train.train(resumed, tmp_path / "parts", resume=True)
    game = steps.Game(config, (4, 4, 1), 200)
    a = checkpoint.load_run(tmp_path / "whole", lambda c, m: steps.abstract_state(game)).state
    b = checkpoint.load_run(tmp_path / "parts", lambda c, m: steps.abstract_state(game)).state
    assert {"d_spectral", "g_spectral"} <= set(a) and whole.step == parts.step
    assert leaves_equal(a, b)
    assert [r["d_loss"] for r in whole.history] == [r["d_loss"] for r in parts.history]
    fresh = steps.init_state(game, config.seed)
    assert not leaves_equal(a["d_spectral"], fresh["d_spectral"])  # the vectors moved and were saved
    samples = sampling.decode(sampling.restore(tmp_path / "whole"), np.zeros((3, 4), np.float32))
    assert samples.shape == (3, 4, 4, 1) and np.isfinite(samples).all()


def test_a_bad_value_is_one_line(tmp_path):
    with pytest.raises(GancliError, match="--spectral-norm must be one of none, d, both"):
        RunConfig(spectral_norm="g").validate()
    result = CliRunner().invoke(app, ["train", "tiny", "--spectral-norm", "D", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output == "error: --spectral-norm must be one of none, d, both (got 'D')\n"
