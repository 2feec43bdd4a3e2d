"""Gradient penalties (R1, R2, wgan-gp's) against central finite differences of a small D in float64, lazy
regularisation's steps and scale, the penalties inside the training step, and their config's errors."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import penalties, steps
from gancli.cli import app
from gancli.config import PenaltyConfig, RunConfig, with_overrides
from gancli.errors import GancliError
from helpers import random_images, tiny

runner = CliRunner()


def config(d_loss="gan", **penalty):
    return RunConfig(d_loss=d_loss, g_loss="nonsaturating", penalty=PenaltyConfig(**penalty))


def small_d(x64):
    """A tiny MLP critic on 2x3 images, tanh hidden layer: (score(d, images, key) -> [B], params, x, fake)."""
    rng = np.random.default_rng(0)
    d = {"w1": jnp.asarray(rng.normal(size=(6, 5))), "b1": jnp.asarray(rng.normal(size=5)),
         "w2": jnp.asarray(rng.normal(size=5))}
    score = lambda d, images, key: jnp.tanh(images.reshape(len(images), -1) @ d["w1"] + d["b1"]) @ d["w2"]
    x, fake = jnp.asarray(rng.normal(size=(4, 2, 3))), jnp.asarray(rng.normal(size=(4, 2, 3)))
    return score, d, x, fake


def fd_grad_norms(score, d, images, h=1e-6):
    """||grad_x D(x)|| of each example by central differences, in numpy float64."""
    images = np.asarray(images, np.float64)
    out = np.zeros(images.shape)
    for idx in np.ndindex(images.shape):
        up, down = images.copy(), images.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (np.asarray(score(d, jnp.asarray(up), None))[idx[0]] - np.asarray(score(d, jnp.asarray(down), None))[idx[0]]) / (2 * h)
    return np.sqrt((out.reshape(len(out), -1) ** 2).sum(-1))


KEY = jax.random.PRNGKey(3)


@pytest.mark.parametrize("name", ["r1", "r2", "gp"])
def test_each_penalty_against_finite_differences(name):
    with jax.enable_x64(True):
        score, d, x, fake = small_d(True)
        c = config("wgan-gp", gp=7.0) if name == "gp" else config("gan", gp=7.0, **{name: 3.0})
        assert penalties.active(c) == (name,)
        total, terms = penalties.value(c, score, d, x, fake, KEY)
        if name == "gp":
            at = penalties._interpolates(x, fake, jax.random.fold_in(KEY, penalties.MIX))
            eps = np.asarray((at - fake) / (x - fake)).reshape(4, -1)  # one mixing weight per example, in [0, 1]
            assert np.allclose(eps, eps[:, :1]) and ((0 <= eps) & (eps <= 1)).all()
            expected = 7.0 * np.mean((fd_grad_norms(score, d, at) - 1.0) ** 2)
        else:
            expected = 0.5 * 3.0 * np.mean(fd_grad_norms(score, d, x if name == "r1" else fake) ** 2)
        assert float(total) == float(terms[name]) == pytest.approx(expected, rel=1e-7)
        # Its gradient with respect to D's parameters (a second derivative) against differences of its value.
        grads, metrics = penalties.grads(c, score, d, x, fake, KEY, 0)
        assert float(metrics[name]) == pytest.approx(expected, rel=1e-7)
        h = 1e-6
        for leaf, index in (("w1", (2, 3)), ("b1", (1,)), ("w2", (4,))):
            bump = lambda s: {**d, leaf: d[leaf].at[index].add(s * h)}
            fd = (float(penalties.value(c, score, bump(1), x, fake, KEY)[0]) - float(penalties.value(c, score, bump(-1), x, fake, KEY)[0])) / (2 * h)
            assert float(grads[leaf][index]) == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_the_penalties_add_up_and_wgan_gp_alone_turns_gp_on():
    assert penalties.active(config()) == () and penalties.active(config("wgan-gp")) == ("gp",)
    assert penalties.active(config("wgan-gp", gp=0.0)) == ()  # allowed: a critic without its penalty
    assert penalties.active(config("hinge", r1=1.0, r2=2.0)) == ("r1", "r2")
    score, d, x, fake = small_d(False)
    total, terms = penalties.value(config("wgan-gp", r1=1.0, r2=2.0), score, d, x, fake, KEY)
    assert set(terms) == {"r1", "r2", "gp"} and float(total) == pytest.approx(sum(float(t) for t in terms.values()))


def test_lazy_regularisation_applies_every_nth_update_scaled_by_n():
    score, d, x, fake = small_d(False)
    every = penalties.grads(config(r1=2.0), score, d, x, fake, KEY, 5)
    for count in range(8):
        grads, metrics = penalties.grads(config(r1=2.0, lazy=4), score, d, x, fake, KEY, jnp.asarray(count))
        scale = 4.0 if count % 4 == 0 else 0.0
        np.testing.assert_allclose(np.asarray(grads["w1"]), scale * np.asarray(every[0]["w1"]), rtol=1e-5, atol=1e-6)
        assert float(metrics["r1"]) == pytest.approx(scale * float(every[1]["r1"]), rel=1e-6)


@functools.lru_cache(maxsize=8)
def fresh(c):
    """A fresh state (seconds on a busy CPU): the penalties add nothing to its tree, so runs differing in them share it."""
    return steps.init_state(steps.Game(c, (4, 4, 1), 200), 0)


def iterate(c, n=2):
    game = steps.Game(c, (4, 4, 1), 200)
    state = jax.tree.map(jnp.copy, fresh(dataclasses.replace(c, penalty=PenaltyConfig())))
    images = jnp.asarray(random_images()[: 10 * c.k]).reshape(c.k, 10, 4, 4, 1)
    batch = {"image": images, "label": jnp.zeros((c.k, 10), jnp.int32)}
    step = jax.jit(lambda s: steps.iteration(game, s, batch))
    out = [step(state)]
    for _ in range(n - 1):
        out.append(step(out[-1][0]))
    return out


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_the_training_step_adds_the_penalty_on_the_lazy_updates(update):
    # The tiny D's weights are small (init 0.005): a large gamma makes the penalty's pull visible.
    base = tiny(update=update, **{"discriminator.keep_input": 1.0, "discriminator.keep_hidden": 1.0})
    ((plain, _),) = iterate(base, 1)
    runs = iterate(with_overrides(base, **{"penalty.r1": 1e4, "penalty.lazy": 2}), 3)
    r1 = [float(m["r1"]) for _, m in runs]
    assert r1[0] > 0 and r1[1] == 0 and r1[2] > 0  # D updates 0 and 2 are penalised, 1 is not
    first = runs[0][0]
    assert not np.allclose(np.asarray(first["d"]["Dense_0"]["kernel"]), np.asarray(plain["d"]["Dense_0"]["kernel"]))
    if update == "simultaneous":  # G's gradient is taken against the D before its update: the penalty leaves it be
        np.testing.assert_array_equal(np.asarray(first["g"]["out"]["kernel"]), np.asarray(plain["g"]["out"]["kernel"]))


def test_with_k_2_the_metric_is_the_mean_over_the_iterations_d_updates():
    c = tiny(k=2, update="alternating", **{"penalty.r2": 1e4, "penalty.lazy": 2})
    r2 = [float(m["r2"]) for _, m in iterate(c, 2)]
    assert all(v > 0 for v in r2)  # the last D update (odd) alone would report 0


def test_the_penalty_pass_updates_no_batch_statistics():
    base = tiny(update="alternating", **{"discriminator.batchnorm": True})
    (plain, _), = iterate(base, 1)
    (penalised, m), = iterate(with_overrides(base, **{"penalty.r1": 1e3}), 1)
    assert "r1" in m and all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(plain["d_stats"]), jax.tree.leaves(penalised["d_stats"])))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(plain["d"]), jax.tree.leaves(penalised["d"])))


@pytest.mark.parametrize("field, value, words", [
    ("penalty.r1", -1.0, "penalty r1, r2 and gp must be finite numbers >= 0"),
    ("penalty.gp", float("nan"), "penalty r1, r2 and gp must be finite numbers >= 0"),
    ("penalty.lazy", 0, "--lazy must be a whole number >= 1"),
])
def test_bad_penalties_are_refused(field, value, words):
    with pytest.raises(GancliError, match=words):
        with_overrides(RunConfig(), **{field: value})


def test_bad_penalties_through_the_cli_are_one_line(tmp_path):
    for args, words in ((["--r1", "-1"], "penalty r1, r2 and gp must be"), (["--lazy", "0"], "--lazy must be"),
                        (["--set", "penalty.gp=nan"], "penalty r1, r2 and gp must be"), (["--r2", "inf"], "finite")):
        result = runner.invoke(app, ["train", "tiny", *args, "--ckpt", str(tmp_path / "run")])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("error: ") and words in result.output


def test_the_penalty_section_in_fields_and_toml(tmp_path):
    result = runner.invoke(app, ["presets", "--fields"], env={"COLUMNS": "300"})
    assert all(f"penalty.{f.name}" in result.output for f in dataclasses.fields(PenaltyConfig))
    help_text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output.replace("│", " ").split())
    assert "[ssl_mlp], [penalty], [augment] tables" in help_text
    from gancli.config import from_toml

    toml = tmp_path / "run.toml"
    toml.write_text("d_loss = 'wgan-gp'\ng_loss = 'wgan-gp'\n[penalty]\nr1 = 1\ngp = 5.0\nlazy = 4\n")
    c = with_overrides(RunConfig(), **from_toml(toml, RunConfig()))
    assert c.penalty == PenaltyConfig(r1=1, gp=5.0, lazy=4) and RunConfig.from_dict(c.to_dict()) == c
    old = RunConfig().to_dict()
    del old["penalty"]  # a config stored before penalties existed loads with them off
    assert RunConfig.from_dict(old).penalty == PenaltyConfig()
