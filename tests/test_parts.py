"""The training core's parts beyond the 2014 model: feature matching, minibatch discrimination, batch norm, an EMA
of G, the fused D pass as an optimisation, and the config layers (--set, --config, presets)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import checkpoint, objectives, sampling, steps, train
from gancli.cli import app
from gancli.config import preset, settings, with_overrides
from gancli.errors import GancliError
from gancli.models.layers import MinibatchDiscrimination
from helpers import tiny


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_feature_matching_against_a_hand_computation(tiny_images):
    """G's loss is the mean over features of the squared difference of batch means of D's last hidden layer."""
    game = steps.Game(tiny(**{"discriminator.keep_input": 1.0, "discriminator.keep_hidden": 1.0}), (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    x_real, x_fake = tiny_images[:10], tiny_images[10:25]  # batches of different sizes: means, not sums
    d = state["d"]["Dense_0"]
    kernel, bias = np.asarray(d["kernel"], np.float64), np.asarray(d["bias"], np.float64)

    def features(x):  # maxout of 8 units x 2 pieces, by hand
        h = x.reshape(len(x), -1).astype(np.float64) @ kernel + bias
        return h.reshape(len(x), 8, 2).max(axis=-1)

    expected = np.mean((features(x_fake).mean(0) - features(x_real).mean(0)) ** 2)
    out = lambda x: steps.discriminate(game, state, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out(x_real)["features"]), features(x_real), rtol=1e-5, atol=1e-6)
    loss, metrics = objectives.feature_matching(out(x_real), out(x_fake), {}, objectives.Context(game.config, 0))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["g_loss"]) == float(loss)


def test_conditional_feature_matching_matches_each_class_against_a_hand_computation():
    """A conditional run's G matches D's feature means class by class, weighted by the class's share: fakes of a
    batch take its real labels, so a G that draws the wrong class for a label is penalised."""
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    labels = np.array([0, 2, 2, 0, 2, 1])
    expected = 0.0
    for c in range(4):  # class 3 is absent from the batch and adds nothing
        picked = labels == c
        if picked.any():
            expected += picked.mean() * np.mean((fake[picked].mean(0) - real[picked].mean(0)) ** 2)
    config = with_overrides(preset("paper", "mnist"), conditional=True, n_classes=4)
    outputs = lambda f: {"features": jnp.asarray(f, jnp.float32)}
    batch = {"label": jnp.asarray(labels)}
    loss, _ = objectives.feature_matching(outputs(real), outputs(fake), batch, objectives.Context(config, 0))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # The same features with the classes' fakes swapped are equally close over the whole batch, not per class.
    swapped = fake[[1, 0, 3, 2, 4, 5]]
    whole = lambda f: np.mean((f.mean(0) - real.mean(0)) ** 2)
    assert whole(swapped) == pytest.approx(whole(fake))
    assert float(objectives.feature_matching(outputs(real), outputs(swapped), batch, objectives.Context(config, 0))[0]) != pytest.approx(expected)


def test_minibatch_discrimination_against_a_hand_computation():
    """o(x_i)_b = sum over j != i of exp(-||M_i,b - M_j,b||_1) + bias_b, M_i = f(x_i) T."""
    rng = np.random.default_rng(3)
    f = rng.normal(size=(5, 4)).astype(np.float32)
    layer = MinibatchDiscrimination(kernels=3, dims=2)
    params = layer.init(jax.random.PRNGKey(0), jnp.asarray(f))
    t = rng.normal(0, 0.3, (4, 6)).astype(np.float32)
    bias = np.array([0.1, -0.2, 0.3], np.float32)
    params = {"params": {"T": jnp.asarray(t), "bias": jnp.asarray(bias)}}
    m = (f.astype(np.float64) @ t).reshape(5, 3, 2)
    expected = np.zeros((5, 3))
    for i in range(5):
        for b in range(3):
            expected[i, b] = sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(5) if j != i) + bias[b]
    np.testing.assert_allclose(np.asarray(layer.apply(params, jnp.asarray(f))), expected, rtol=1e-5, atol=1e-6)


def test_minibatch_discriminations_written_out_gradient_is_autodiffs():
    """closeness's hand-written backward pass against autodiff of the plain formula (no ties in the data)."""
    from gancli.models.layers import closeness

    m = jnp.asarray(np.random.default_rng(5).normal(0, 0.4, (12, 4, 3)), jnp.float32)
    plain = lambda m: jnp.sum(jnp.exp(-jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)), axis=1) - 1.0
    weights = jnp.asarray(np.random.default_rng(6).normal(size=(12, 4)), jnp.float32)
    np.testing.assert_allclose(np.asarray(closeness(m)), np.asarray(plain(m)), rtol=1e-6)
    got, want = (jax.grad(lambda m: jnp.sum(weights * jnp.sin(f(m))))(m) for f in (closeness, plain))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_starts_from_the_codes_data_dependent_init():
    """Init on a batch scales each kernel so that half its mean nearest-neighbour L1 distance is 1, and centres o:
    the paper preset with it trains, where without it SGD at lr 0.1 diverged in ten iterations."""
    f = jnp.asarray(np.random.default_rng(4).normal(size=(50, 6)), jnp.float32)
    layer = MinibatchDiscrimination(kernels=4, dims=3)
    params = layer.init(jax.random.PRNGKey(0), f)
    m = np.asarray(f, np.float64) @ np.asarray(params["params"]["T"], np.float64)
    m = m.reshape(50, 4, 3)
    l1 = np.abs(m[:, None] - m[None, :]).sum(-1) + 1e9 * np.eye(50)[:, :, None]
    np.testing.assert_allclose(0.5 * l1.min(axis=1).mean(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(layer.apply(params, f)).mean(axis=0), 0.0, atol=1e-5)
    raw = layer.init(jax.random.PRNGKey(0), f[:1])["params"]  # one example: nothing to measure, plain N(0, 0.05)
    assert float(jnp.std(raw["T"])) == pytest.approx(0.05, rel=0.3) and not np.any(np.asarray(raw["bias"]))


def test_minibatch_discrimination_makes_d_see_real_and_generated_batches_apart(tiny_images):
    game = steps.Game(tiny(**{"discriminator.minibatch": (5, 3)}), (4, 4, 1), 200)
    assert not game.fused and steps.Game(tiny(), (4, 4, 1), 200).fused
    state = steps.init_state(game, 0)
    assert state["d"]["MinibatchDiscrimination_0"]["T"].shape == (8, 15)
    # D's output on one example depends on the rest of its batch: the reason it must not see [x; G(z)] at once.
    x = jnp.asarray(tiny_images[:10])
    alone = steps.discriminate(game, state, x[:5])["logit"]
    together = steps.discriminate(game, state, x)["logit"][:5]
    assert not np.allclose(np.asarray(alone), np.asarray(together))


def test_the_fused_pass_is_only_an_optimisation(tiny_images, monkeypatch):
    """For a per-example D without dropout, one D pass over [x; G(z)] and separate passes give the same step."""
    config = tiny(**{"discriminator.keep_input": 1.0, "discriminator.keep_hidden": 1.0}, k=2)
    xs = jnp.asarray(tiny_images[:20]).reshape(2, 10, 4, 4, 1)
    batches = {"image": xs, "label": jnp.zeros((2, 10), jnp.int32)}
    game = steps.Game(config, (4, 4, 1), 200)
    fused, fused_metrics = steps.iteration(game, steps.init_state(game, 0), batches)
    monkeypatch.setattr(steps.Game, "fused", property(lambda self: False))
    apart, apart_metrics = steps.iteration(game, steps.init_state(game, 0), batches)
    for a, b in zip(leaves(fused), leaves(apart)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fused_metrics.keys() == apart_metrics.keys() == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_batch_norm_statistics_live_beside_the_parameters_not_in_the_optimiser(tiny_images):
    game = steps.Game(tiny(**{"generator.batchnorm": True, "discriminator.batchnorm": True}), (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    assert set(state["g_stats"]) == {"batch_stats"} and set(state["d_stats"]) == {"batch_stats"}
    # The optimisers see exactly the trainable parameters: their velocity has the parameters' tree.
    assert jax.tree.structure(state["g_opt"].velocity) == jax.tree.structure(state["g"])
    assert "batch_stats" not in json.dumps(jax.tree_util.tree_map(lambda x: 0, state["g"]))
    xs = jnp.asarray(tiny_images[:10]).reshape(1, 10, 4, 4, 1)
    new, _ = steps.iteration(game, state, {"image": xs, "label": jnp.zeros((1, 10), jnp.int32)})
    for key in ("g_stats", "d_stats"):
        assert any(not np.array_equal(a, b) for a, b in zip(leaves(state[key]), leaves(new[key]))), key
    # At test time the running statistics are used: one example is drawn the same alone or in a batch.
    z = game.noise(jax.random.PRNGKey(1), 6)
    np.testing.assert_allclose(np.asarray(steps.sample(game, new, z[:1])), np.asarray(steps.sample(game, new, z)[:1]), rtol=1e-5)


def test_the_ema_follows_g_by_its_recursion(tiny_images):
    game = steps.Game(tiny(ema=0.5, update="alternating"), (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    ema = leaves(state["g"])
    assert all(np.array_equal(a, b) for a, b in zip(ema, leaves(state["g_ema"])))  # starts from G's initial weights
    step = jax.jit(lambda st, b: steps.iteration(game, st, b))
    for i in range(3):
        xs = jnp.asarray(tiny_images[i * 10 : (i + 1) * 10]).reshape(1, 10, 4, 4, 1)
        state, _ = step(state, {"image": xs, "label": jnp.zeros((1, 10), jnp.int32)})
        ema = [0.5 * a + 0.5 * g for a, g in zip(ema, leaves(state["g"]))]
    for a, b in zip(ema, leaves(state["g_ema"])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_ema_start_holds_the_average_at_g_until_its_epoch(tiny_images):
    game = steps.Game(tiny(ema=0.9, ema_start=1), (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    xs = jnp.asarray(tiny_images[:10]).reshape(1, 10, 4, 4, 1)
    state, _ = steps.iteration(game, state, {"image": xs, "label": jnp.zeros((1, 10), jnp.int32)})
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state["g"]), leaves(state["g_ema"])))


NEW_PARTS = {
    "generator.batchnorm": True,
    "discriminator.minibatch": (4, 3),
    "g_loss": "feature-matching",
    "ema": 0.99,
}


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_new_parts_resume_bitwise_exactly(tmp_path, fake_data, update):
    config = tiny(epochs=2, update=update, **NEW_PARTS)
    train.train(config, tmp_path / "straight")
    train.train(with_overrides(config, epochs=1), tmp_path / "split")
    train.train(config, tmp_path / "split", resume=True)
    restored = [sampling.restore(tmp_path / d).state for d in ("straight", "split")]
    assert set(restored[0]) >= {"g_stats", "g_ema"}
    assert all(np.array_equal(a, b) for a, b in zip(leaves(restored[0]), leaves(restored[1])))
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("straight", "split")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "it_per_s"}
    assert [strip(x) for x in logs[0]] == [strip(x) for x in logs[1]]


def test_sample_uses_the_ema_and_says_so_and_no_ema_draws_g(tmp_path, fake_data):
    train.train(tiny(epochs=1, ema=0.9), tmp_path / "run")
    run = tmp_path / "run"
    runner = CliRunner()
    with_ema = runner.invoke(app, ["sample", str(run), "--n", "8", "--out", str(tmp_path / "a.npz")])
    raw = runner.invoke(app, ["sample", str(run), "--n", "8", "--out", str(tmp_path / "b.npz"), "--no-ema"])
    assert with_ema.exit_code == 0 and raw.exit_code == 0, with_ema.output + raw.output
    assert "moving average of G's weights (decay 0.9" in with_ema.output
    assert "G's own weights (--no-ema)" in raw.output
    a, b = np.load(tmp_path / "a.npz")["samples"], np.load(tmp_path / "b.npz")["samples"]
    stored = sampling.restore(run)
    game = sampling.game_of(stored.config, stored.metadata)
    z = jnp.asarray(sampling.latents(game, 8, 0))
    draw = lambda params: np.asarray(game.generator.apply({"params": params}, z, train=False))
    assert not np.array_equal(draw(stored.state["g_ema"]), draw(stored.state["g"]))
    np.testing.assert_array_equal(a, draw(stored.state["g_ema"]))
    np.testing.assert_array_equal(b, draw(stored.state["g"]))
    info = json.loads(runner.invoke(app, ["inspect", str(run), "--json"]).output)
    assert info["ema"] == 0.9


def test_set_parses_each_field_by_its_type_and_refuses_what_does_not_fit():
    base = preset("paper", "mnist")
    got = settings(base, ["discriminator.minibatch=100,5", "generator.batchnorm=true", "ema=0.999", "k=2",
                          "g_loss=feature-matching", "generator.hidden=500, 500"])
    assert got == {"discriminator.minibatch": (100, 5), "generator.batchnorm": True, "ema": 0.999, "k": 2,
                   "g_loss": "feature-matching", "generator.hidden": (500, 500)}
    config = with_overrides(base, **got)
    assert config.discriminator.minibatch == (100, 5) and config.generator.hidden == (500, 500)
    for bad, message in [
        ("discriminator.minibach=1,2", "no such config field"),
        ("k=two", "expected a whole number"),
        ("generator=1", "a section, not a field"),
        ("ema", "write it as section.field=value"),
    ]:
        with pytest.raises(GancliError, match=message):
            settings(base, [bad])
    with pytest.raises(GancliError, match="discriminator.minibatch must be two numbers"):
        with_overrides(base, **settings(base, ["discriminator.minibatch=100"]))


def test_cli_layers_preset_config_file_set_and_options(tmp_path, fake_data):
    toml = tmp_path / "run.toml"
    toml.write_text('ema = 0.5\nk = 3\n[discriminator]\nminibatch = [4, 2]\nunits = [8]\npieces = 2\n'
                    '[generator]\nz_dim = 4\nhidden = [16]\n')
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "tiny", "--config", str(toml), "--set", "k=2", "--set", "ema=0.25",
                                      "--ema", "0.75", "--batch-size", "10", "--epochs", "1", "--ckpt", str(out)])
    assert result.exit_code == 0, result.output
    config = checkpoint.load_run(out).config
    assert (config.k, config.ema, config.discriminator.minibatch, config.generator.hidden) == (2, 0.75, (4, 2), (16,))
    toml.write_text("[discriminator]\nminibatch = 'wide'\n")
    bad = CliRunner().invoke(app, ["train", "tiny", "--config", str(toml), "--ckpt", str(tmp_path / "other")])
    assert bad.exit_code == 1 and "discriminator.minibatch must be a comma-separated list" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_presets_command_lists_every_preset():
    result = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "300"})  # no cell wrapped
    assert result.exit_code == 0
    for name in ("paper", "fast", "adam", "toy"):
        assert name in result.output
    assert "1.000032" in result.output  # fast's lr decay, from the preset's config itself
