"""Training: the paper's model, losses, k and update-mode semantics, checkpoints and exact resume."""

from __future__ import annotations

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gancli import checkpoint, models, objectives, optim, steps, train
from gancli.config import differences, preset, with_overrides
from gancli.errors import GancliError
from gancli.models import count_params
from helpers import leaves_equal, max_diff, random_images, tiny, use_fake_data

# Weights and a step large enough that one D update visibly changes the gradient D passes back to G.
BIG_STEP = {"discriminator.init_scale": 0.5, "generator.init_scale": 0.5, "discriminator.keep_hidden": 1.0}


@pytest.fixture
def tiny_images():
    return random_images(256)


@pytest.fixture
def fake_data(monkeypatch, tiny_images):
    """A 200-image dataset named 'tiny' in place of the TFDS-backed loader."""
    use_fake_data(monkeypatch, tiny_images, np.zeros(200, np.int64))


def test_paper_parameter_counts():
    game = steps.Game(preset("paper", "mnist"), (28, 28, 1), 50000)
    state = steps.abstract_state(game)
    assert count_params(state["g"]) == 2_503_984
    assert count_params(state["d"]) == 1_231_441


def test_generator_output_bias_is_logit_of_pixel_means(tiny_images):
    game = steps.Game(tiny(), tiny_images.shape[1:], len(tiny_images))
    state = steps.init_state(game, 0, tiny_images)
    p = np.clip(tiny_images.reshape(len(tiny_images), -1).mean(0), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(state["g"]["out"]["bias"], np.log(p / (1 - p)), rtol=1e-5, atol=1e-6)


def test_objectives_against_hand_computed_values():
    real, fake = {"logit": jnp.array([2.0, 0.0])}, {"logit": jnp.array([-1.0, 0.5])}
    d = lambda l: 1 / (1 + np.exp(-l))
    expected_d = 0.5 * (np.mean(-np.log(d(np.array([2.0, 0.0])))) + np.mean(-np.log(1 - d(np.array([-1.0, 0.5])))))
    ctx = lambda epoch: objectives.Context(preset("paper", "mnist"), epoch)  # switch_epoch 10
    loss = lambda name, epoch=0: float(objectives.G_LOSSES[name](real, fake, {}, ctx(epoch))[0])
    d_loss, metrics = objectives.gan_d_loss(real, fake, {}, ctx(0))
    assert float(d_loss) == pytest.approx(expected_d, rel=1e-6)
    assert float(metrics["d_real"]) == pytest.approx(np.mean(d(np.array([2.0, 0.0]))), rel=1e-6)
    assert float(metrics["d_fake"]) == pytest.approx(np.mean(d(np.array([-1.0, 0.5]))), rel=1e-6)
    assert loss("nonsaturating") == pytest.approx(np.mean(-np.log(d(np.array([-1.0, 0.5])))), rel=1e-6)
    assert loss("minimax") == pytest.approx(np.mean(np.log(1 - d(np.array([-1.0, 0.5])))), rel=1e-6)
    # switch: non-saturating before the switch epoch, minimax from it on
    assert loss("switch", 9) == pytest.approx(loss("nonsaturating"))
    assert loss("switch", 10) == pytest.approx(loss("minimax"))
    # at D = 1/2 everywhere the D objective is log 2
    half = {"logit": jnp.zeros(3)}
    assert float(objectives.gan_d_loss(half, half, {}, ctx(0))[0]) == pytest.approx(np.log(2.0))


def _one_iteration(config, images, k_batches):
    game = steps.Game(config, images.shape[1:], len(images))
    state = steps.init_state(game, 0, images)
    xs = jnp.asarray(images[: config.k * config.batch_size]).reshape((config.k, config.batch_size) + images.shape[1:])
    batches = {"image": xs, "label": jnp.zeros((config.k, config.batch_size), jnp.int32)}
    new, _ = jax.jit(lambda st, b: steps.iteration(game, st, b))(state, batches)
    return game, state, new, xs


def _expected_g(game, g, d, key, n, lr):
    """SGD's first step on G (velocity starts at 0: theta - lr * grad) against discriminator d."""
    z_key, drop_key = jax.random.split(key)

    def objective(g):
        fake = steps.run_generator(game, g, None, game.noise(z_key, n))[0]
        logits = steps.run_discriminator(game, d, None, fake, drop_key)[0]["logit"]
        return jnp.mean(jax.nn.softplus(-logits))  # -log D(G(z))

    grads = jax.grad(objective)(g)
    return jax.tree.map(lambda p, gr: p - lr * gr, g, grads)


def test_paper_schedules_match_pylearn2():
    c = preset("paper", "mnist").optimizer
    # ExponentialDecay in float64: after 1M updates lr is 0.1 / 1.000004^1e6 (a float32 decay factor drifts 5%).
    for count in (0, 1000, 250_000, 1_000_000):
        assert float(optim.learning_rate(c, jnp.int32(count))) == pytest.approx(0.1 / 1.000004**count, rel=1e-5)
    assert float(optim.learning_rate(c, jnp.int32(5_000_000))) == pytest.approx(1e-6)
    # MomentumAdjustor: 0.5 in epoch 1 (0 done), linear to 0.7 in epoch 250 (249 done), then constant.
    assert [float(optim.momentum(c, e)) for e in (0, 1, 124.5, 249, 900)] == pytest.approx([0.5, 0.5 + 0.2 / 249, 0.6, 0.7, 0.7])


def test_momentum_schedule_read_off_a_runs_optimiser_state(fake_data, tmp_path):
    """pylearn2's adjustor has fired once before epoch 1: with saturation at epoch 3 the last update of epoch 3
    (not 4) uses the final momentum, both for G and for D (which takes k updates per G update)."""
    config = tiny(k=2, **{"optimizer.momentum_saturate_epoch": 3}, chunk=0)
    seen = []
    for epochs in (1, 2, 3, 4):
        train.train(with_overrides(config, epochs=epochs), tmp_path / "run", resume=epochs > 1)
        state = checkpoint.load_run(tmp_path / "run", lambda c, m: steps.abstract_state(steps.Game(c, (4, 4, 1), 200))).state
        seen += [float(state["g_opt"].momentum), float(state["d_opt"].momentum)]
    assert seen == pytest.approx([0.5, 0.5, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7])


def test_fast_preset_is_the_paper_recipe_with_its_schedule_8x_shorter():
    paper, fast = preset("paper", "mnist"), preset("fast", "mnist")
    changed = [d.split()[0] for d in differences(fast, paper, ignore=())]
    assert sorted(changed) == ["epochs", "optimizer.lr_decay", "optimizer.momentum_saturate_epoch", "preset"]
    # Where the paper's lr is after 2,000 epochs (1M updates), fast's is after 250 (125k updates).
    lr = lambda c, count: float(optim.learning_rate(c.optimizer, jnp.int32(count)))
    assert lr(fast, 125_000) == pytest.approx(lr(paper, 1_000_000), rel=0.01)
    assert fast.epochs == 250 and fast.optimizer.momentum_saturate_epoch == 31
    # paper-ema is fast plus only its average of G.
    ema = preset("paper-ema", "mnist")
    assert sorted(d.split()[0] for d in differences(ema, fast, ignore=())) == ["ema", "ema_start", "preset"]
    assert (ema.ema, ema.ema_start) == (0.9999, 25)
    # paper-lr-ema is a slower average from the same epoch on the paper's own schedule, stopped at 250 epochs.
    slow = preset("paper-lr-ema", "mnist")
    assert sorted(d.split()[0] for d in differences(slow, paper, ignore=())) == ["ema", "ema_start", "epochs", "preset"]
    assert (slow.ema, slow.ema_start, slow.epochs) == (0.99995, ema.ema_start, 250)


def test_k_discriminator_updates_per_generator_update(tiny_images):
    for update in ("simultaneous", "alternating"):
        _, state, new, _ = _one_iteration(tiny(k=3, update=update), tiny_images, 3)
        assert int(new["d_opt"].count) == 3
        assert int(new["g_opt"].count) == 1
        assert int(new["step"]) == 1


def test_simultaneous_generator_gradient_uses_pre_update_discriminator(tiny_images):
    config = tiny(update="simultaneous", **BIG_STEP)
    game, state, new, xs = _one_iteration(config, tiny_images, 1)
    key = jax.random.split(jax.random.fold_in(jax.random.fold_in(state["key"], steps.STEP), 0), 2)[-1]
    # simultaneous: G's step is the gradient through D's pre-update parameters, on the same [x; G(z)] pass
    z_key, drop_key = jax.random.split(key)
    n = config.batch_size

    def objective(g, d):
        fake = steps.run_generator(game, g, None, game.noise(z_key, n))[0]
        logits = steps.run_discriminator(game, d, None, jnp.concatenate([xs[0], fake]), drop_key)[0]["logit"]
        return jnp.mean(jax.nn.softplus(-logits[n:]))  # -log D(G(z))

    lr = config.optimizer.lr
    pre, post = (
        max_diff(jax.tree.map(lambda p, gr: p - lr * gr, state["g"], jax.grad(objective)(state["g"], d)), new["g"])
        for d in (state["d"], new["d"])
    )
    assert pre < 1e-6 < 1e-4 < post


def test_alternating_generator_gradient_uses_updated_discriminator(tiny_images):
    config = tiny(update="alternating", **BIG_STEP)
    game, state, new, _ = _one_iteration(config, tiny_images, 1)
    key = jax.random.split(jax.random.fold_in(jax.random.fold_in(state["key"], steps.STEP), 0), 2)[-1]
    lr = config.optimizer.lr
    after = _expected_g(game, state["g"], new["d"], key, config.batch_size, lr)
    before = _expected_g(game, state["g"], state["d"], key, config.batch_size, lr)
    assert max_diff(after, new["g"]) < 1e-6 < 1e-4 < max_diff(before, new["g"])


def test_train_two_epochs_writes_checkpoints_metrics_and_samples(tmp_path, fake_data):
    out = train.train(tiny(epochs=2), tmp_path / "run")
    assert out.status == "done" and out.epoch == 2
    run = tmp_path / "run"
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2]
    assert set(lines[0]) >= {"d_loss", "g_loss", "d_real", "d_fake", "it_per_s", "lr", "momentum"}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    restored = checkpoint.load_run(run)
    assert restored.config == tiny(epochs=2)
    assert restored.metadata["epoch"] == 2 and restored.metadata["dataset"] == "tiny"
    assert {"jax", "flax", "optax"} <= set(restored.metadata["versions"])


def test_resume_is_bitwise_identical_to_uninterrupted_run(tmp_path, fake_data):
    whole = train.train(tiny(epochs=3), tmp_path / "whole")
    train.train(tiny(epochs=1), tmp_path / "parts")
    config, resuming = train.resolve_config(tmp_path / "parts", None, None, {"epochs": 3}, resume=False)
    assert resuming
    parts = train.train(config, tmp_path / "parts", resume=True)
    assert whole.step == parts.step
    game = steps.Game(tiny(), (4, 4, 1), 200)
    a = checkpoint.load_run(tmp_path / "whole", lambda c, m: steps.abstract_state(game)).state
    b = checkpoint.load_run(tmp_path / "parts", lambda c, m: steps.abstract_state(game)).state
    assert leaves_equal(a, b)
    assert [r["d_loss"] for r in whole.history] == [r["d_loss"] for r in parts.history]


class InterruptAfter(train.Silent):
    """Delivers a real SIGINT after the n-th chunk."""

    def __init__(self, n):
        self.n = n

    def advance(self, done, epoch, metrics, it_per_s):
        self.n -= 1
        if self.n == 0:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_mid_epoch_and_resume_matches(tmp_path, fake_data):
    whole = train.train(tiny(epochs=2), tmp_path / "whole")
    cut = train.train(tiny(epochs=2), tmp_path / "cut", reporter=InterruptAfter(2))  # 2 chunks of 4: mid-epoch
    assert cut.status == "interrupted" and cut.step == 8
    assert checkpoint.latest_step(tmp_path / "cut") == 8
    config, resuming = train.resolve_config(tmp_path / "cut", None, None, {}, resume=True)
    done = train.train(config, tmp_path / "cut", resume=resuming)
    game = steps.Game(tiny(), (4, 4, 1), 200)
    a = checkpoint.load_run(tmp_path / "whole", lambda c, m: steps.abstract_state(game)).state
    b = checkpoint.load_run(tmp_path / "cut", lambda c, m: steps.abstract_state(game)).state
    assert done.status == "done" and leaves_equal(a, b)
    assert [r["d_loss"] for r in whole.history] == pytest.approx([r["d_loss"] for r in done.history], rel=1e-6)


def test_resume_refuses_conflicting_options(tmp_path, fake_data):
    train.train(tiny(epochs=1), tmp_path / "run")
    with pytest.raises(GancliError, match="k"):
        train.resolve_config(tmp_path / "run", None, None, {"k": 2}, resume=False)
    with pytest.raises(GancliError, match="trains 'tiny'"):
        train.resolve_config(tmp_path / "run", "mnist", None, {}, resume=False)
    with pytest.raises(GancliError, match="no checkpoint"):
        train.resolve_config(tmp_path / "empty", None, None, {}, resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, fake_data):
    train.train(tiny(epochs=1), tmp_path / "run")
    config, _ = train.resolve_config(tmp_path / "run", None, None, {"epochs": 3}, resume=False)
    blowup = with_overrides(config, **{"optimizer.lr": 1e30, "optimizer.lr_decay": 1.0})
    with pytest.raises(GancliError, match="non-finite loss.*step 20"):
        train.train(blowup, tmp_path / "run", resume=True)
    assert checkpoint.latest_step(tmp_path / "run") == 20


def test_bad_options_are_refused():
    for bad, message in (({"k": 0}, "--k"), ({"update": "both"}, "--update"), ({"g_loss": "x"}, "--g-loss"),
                         ({"optimizer.name": "rmsprop"}, "--optimizer"), ({"batch_size": 0}, "--batch-size")):
        with pytest.raises(GancliError, match=message):  # the schema's checks, then the registries' (g_loss)
            models.check(with_overrides(preset("paper", "mnist"), **bad))


class Messages(train.Silent):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def test_a_seed_whose_d_rejects_every_sample_is_warned_of_once(tmp_path, fake_data, monkeypatch):
    healthy = Messages()
    train.train(tiny(epochs=2, seeds=2), tmp_path / "healthy", reporter=healthy)
    assert not [m for m in healthy.lines if "D rejects" in m]  # D(G(z)) is far above 0.001 on this tiny run
    # With the line above every D(G(z)), both seeds count as rejected from epoch 1: one warning each, not one per epoch.
    monkeypatch.setattr(train, "D_REJECTS", 1.01)
    told = Messages()
    train.train(tiny(epochs=3, seeds=2), tmp_path / "run", reporter=told)
    warnings = [m for m in told.lines if "D rejects every generated sample" in m]
    assert len(warnings) == 2
    for i, w in enumerate(warnings):
        assert w.startswith(f"warning: {tmp_path / 'run' / f'seed-{i}'}: mean D(G(z)) ") and "over epoch 1:" in w


def test_seeds_train_independent_runs_in_one_program(tmp_path, fake_data):
    out = train.train(tiny(epochs=1, seeds=2), tmp_path / "multi")
    train.train(tiny(epochs=1, seed=1), tmp_path / "single")
    game = steps.Game(tiny(), (4, 4, 1), 200)
    seed1 = checkpoint.load_run(tmp_path / "multi" / "seed-1", lambda c, m: steps.abstract_state(game))
    ref = checkpoint.load_run(tmp_path / "single", lambda c, m: steps.abstract_state(game)).state
    assert out.status == "done" and seed1.config.seed == 1
    # seed-1 of the vmapped pair is the same run as seed 1 trained alone
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(jax.tree.leaves(seed1.state), jax.tree.leaves(ref)))
