"""The losses after 2016 (hinge, least-squares, wgan-gp, relativistic) against their formulas on fixed D outputs,
--loss and its pairing, what d_real / d_fake mean for them, and a short training run with each."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import objectives, steps, train
from gancli.cli import app
from gancli.errors import GancliError
from helpers import random_images, tiny

runner = CliRunner()
NEW = ("hinge", "least-squares", "wgan-gp", "relativistic")
# D's raw outputs on three real and three generated examples.
REAL, FAKE = [2.0, -0.5, 0.0], [0.5, -2.0, 2.5]


def scores(values):
    return {"logit": jnp.asarray(values, jnp.float32)}


def losses(name):
    ctx = objectives.Context(None, 0)
    d, d_metrics = objectives.D_LOSSES[name](scores(REAL), scores(FAKE), {}, ctx)
    g, g_metrics = objectives.G_LOSSES[name](scores(REAL), scores(FAKE), {}, ctx)
    return float(d), float(g), d_metrics, g_metrics


def softplus(v):
    return math.log1p(math.exp(v))


# By hand: relu(1 - D(x)) = 0, 1.5, 1 and relu(1 + D(G(z))) = 1.5, 0, 3.5; (D(x) - 1)^2 = 1, 2.25, 1 and
# D(G(z))^2 = 0.25, 4, 6.25, (D(G(z)) - 1)^2 = 0.25, 9, 2.25; sum D(x) = 1.5, sum D(G(z)) = 1; D(G(z)) - D(x) =
# -1.5, -1.5, 2.5.
EXPECTED = {
    "hinge": (2.5 / 3 + 5.0 / 3, -1.0 / 3),
    "least-squares": (0.5 * 4.25 / 3 + 0.5 * 10.5 / 3, 0.5 * 11.5 / 3),
    "wgan-gp": (1.0 / 3 - 1.5 / 3, -1.0 / 3),
    "relativistic": ((2 * softplus(-1.5) + softplus(2.5)) / 3, (2 * softplus(1.5) + softplus(-2.5)) / 3),
}


@pytest.mark.parametrize("name", NEW)
def test_each_loss_against_its_formula(name):
    d, g, d_metrics, g_metrics = losses(name)
    assert (d, g) == pytest.approx(EXPECTED[name], rel=1e-6)
    assert float(d_metrics["d_loss"]) == d and float(g_metrics["g_loss"]) == g
    # Raw scores, not probabilities: d_real / d_fake are the mean raw outputs.
    assert float(d_metrics["d_real"]) == pytest.approx(0.5) and float(d_metrics["d_fake"]) == pytest.approx(1.0 / 3)


def test_the_hand_numbers_with_numpy():
    r, f = np.array(REAL), np.array(FAKE)
    assert EXPECTED["hinge"][0] == pytest.approx(np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)))
    assert EXPECTED["least-squares"][0] == pytest.approx(0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2))
    assert EXPECTED["relativistic"][1] == pytest.approx(np.mean(np.logaddexp(0, -(f - r))))


def test_the_relativistic_loss_pairs_each_real_example_with_its_generated_one():
    # Swapping two generated examples changes the pairs, hence the loss; a batch-mean loss would not see it.
    ctx = objectives.Context(None, 0)
    loss = lambda fake: float(objectives.relativistic_d_loss(scores(REAL), scores(fake), {}, ctx)[0])
    assert loss(FAKE) != pytest.approx(loss([FAKE[1], FAKE[0], FAKE[2]]))
    assert objectives.REAL_IN_G in objectives.G_LOSSES["relativistic"].needs


def test_loss_sets_both_players_and_names_the_choices():
    assert objectives.pair("gan") == ("gan", "nonsaturating")
    for name in NEW:
        assert objectives.pair(name) == (name, name)
    with pytest.raises(GancliError, match="--loss must be one of gan, hinge, least-squares, wgan-gp, relativistic"):
        objectives.pair("wasserstein")
    # Mixing is allowed (each G loss is a function of D's outputs), as StudioGAN allows it.
    assert objectives.problems(tiny(d_loss="hinge", g_loss="minimax")) == []


def test_only_a_d_with_probabilities_can_be_said_to_reject_every_sample():
    assert objectives.probabilities(tiny()) and objectives.probabilities(tiny(d_loss="semi-supervised", labels=10))
    for name in NEW:
        assert not objectives.probabilities(tiny(d_loss=name, g_loss=name))
    history = [{"epoch": e, "d_fake": -3.0} for e in (1, 2)]  # a hinge D's healthy raw mean on G(z)
    assert train.rejected_since(history, probabilities=False) is None
    assert train.rejected_since(history) == 1


@pytest.fixture(scope="module")
def start():
    """A fresh tiny state and three iterations' batches: a state's tree does not depend on the losses."""
    config = tiny(**{"optimizer.name": "adam", "optimizer.lr": 1e-3})
    images = jnp.asarray(random_images()[:30]).reshape(3, 1, 10, 4, 4, 1)
    return config, steps.init_state(steps.Game(config, (4, 4, 1), 200), 0), images


@pytest.mark.parametrize("name", NEW)
def test_a_few_iterations_with_each_loss_end_finite(name, start):
    base, state, images = start
    game = steps.Game(dataclasses.replace(base, d_loss=name, g_loss=name), (4, 4, 1), 200)
    step = jax.jit(lambda s, b: steps.iteration(game, s, b))
    for x in images:
        state, metrics = step(state, {"image": x, "label": jnp.zeros((1, 10), jnp.int32)})
    assert set(metrics) >= {"d_loss", "g_loss", "d_real", "d_fake"} and ("gp" in metrics) == (name == "wgan-gp")
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state["d"]))


def test_train_with_loss_hinge_through_the_cli(tmp_path, fake_data):
    run = tmp_path / "run"
    args = ["train", "tiny", "--set", "generator.z_dim=4", "--set", "generator.hidden=16", "--set", "discriminator.units=8",
            "--set", "discriminator.pieces=2", "--set", "batch_size=10", "--set", "chunk=10", "--epochs", "1"]
    result = runner.invoke(app, [*args, "--loss", "hinge", "--r1", "0.5", "--ckpt", str(run)])
    assert result.exit_code == 0, result.output
    assert "hinge D loss, hinge G loss, r1 0.5," in " ".join(result.output.split())
    assert "D rejects" not in result.output
    from gancli import rundir

    (record,), _ = rundir.read_metrics(run)
    assert all(math.isfinite(record[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "r1"))
    shown = " ".join(runner.invoke(app, ["inspect", str(run), "--no-curves"], env={"COLUMNS": "300"}).output.split())
    assert "hinge D loss, hinge G loss" in shown and "r1 0.5" in shown
    restored = train.resolve_config(run, None, None, {}, True)[0]
    assert (restored.d_loss, restored.g_loss, restored.penalty.r1) == ("hinge", "hinge", 0.5)


def test_g_loss_beside_loss_picks_g_and_bad_names_are_one_line(tmp_path):
    result = runner.invoke(app, ["train", "tiny", "--loss", "wasserstein", "--ckpt", str(tmp_path / "a")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: --loss must be one of gan, hinge, least-squares, wgan-gp, relativistic")
    result = runner.invoke(app, ["train", "tiny", "--loss", "hinge", "--g-loss", "nope", "--ckpt", str(tmp_path / "b")])
    assert result.exit_code == 1 and "--g-loss must be one of" in result.output and "hinge" in result.output
