"""Conditional GANs (Mirza & Osindero 2014): labels reach G and D, a conditional G learns each label's mode,
sample --label and evaluate on conditional runs, exact resume, and bad labels refused in one line."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import conditional, images, models, sampling, steps, train
from gancli.cli import app
from gancli.config import preset, with_overrides
from gancli.data import toy
from gancli.errors import GancliError
from helpers import TINY, tiny

# The cgan family's widths are (data branch, label branch, joined layers...).
TINY_CGAN = {**TINY, "generator.hidden": (8, 6, 16), "discriminator.units": (8, 4, 8)}


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory):
    """The toy preset made conditional, trained 2 epochs on ring8, whose labels are its 8 modes."""
    path = tmp_path_factory.mktemp("conditional") / "ring8"
    train.train(with_overrides(preset("toy", "ring8"), conditional=True, epochs=2, seed=0), path)
    return path


def nearest_mode(x) -> np.ndarray:
    return np.linalg.norm(np.asarray(x)[:, None] - toy.ring8_centres()[None], axis=-1).argmin(axis=1)


def test_a_conditional_generator_puts_each_label_on_its_mode(ring8_run):
    run = sampling.restore(ring8_run)
    assert run.config.conditional and run.config.n_classes == 8  # set from the training labels
    hits = [float(np.mean(nearest_mode(sampling.draw(run, 400, 1, m)["samples"]) == m)) for m in range(8)]
    # Chance is 1/8: an unconditional G (or one that ignores its label) puts 12.5% of any label's samples there.
    assert min(hits) > 0.5 and np.mean(hits) > 0.8, hits


def test_the_fused_d_pass_gives_real_and_generated_examples_the_batchs_labels(tiny_images, monkeypatch):
    """One D pass over [x; G(z, y)] with labels [y; y], and separate passes, take the same step (k = 2: the fused
    D step and the fused simultaneous step)."""
    labels = jnp.asarray(np.arange(20).reshape(2, 10) % 10, jnp.int32)
    batches = {"image": jnp.asarray(tiny_images[:20]).reshape(2, 10, 4, 4, 1), "label": labels}
    config = with_overrides(preset("cgan", "tiny"), **{**TINY_CGAN, "n_classes": 10, "k": 2, "generator.keep_hidden": 1.0,
                                                       "discriminator.keep_input": 1.0, "discriminator.keep_hidden": 1.0})
    game = steps.Game(config, (4, 4, 1), 200)
    assert game.fused
    state = steps.init_state(game, 0)
    fused, _ = jax.jit(lambda st: steps.iteration(game, st, batches))(state)
    with monkeypatch.context() as m:
        m.setattr(steps.Game, "fused", property(lambda self: False))
        apart, _ = jax.jit(lambda st: steps.iteration(game, st, batches))(state)
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(apart)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_any_model_is_made_conditional_around_its_own_parameters():
    """--conditional keeps the model's parameter names and adds a label embedding (G) and projection (D)."""
    base = with_overrides(preset("paper", "mnist"), n_classes=10)
    plain = steps.abstract_state(steps.Game(base, (28, 28, 1), 100))
    cond = steps.abstract_state(steps.Game(with_overrides(base, conditional=True), (28, 28, 1), 100))
    assert set(cond["g"]) == set(plain["g"]) | {"label_embedding"}
    assert set(cond["d"]) == set(plain["d"]) | {"label_projection"}
    assert cond["g"]["Dense_0"]["kernel"].shape == (100 + 10, 1200)  # z joined by a 10-wide embedding
    assert cond["d"]["label_projection"]["embedding"].shape == (10, 240)  # one vector per class over D's features


def test_a_conditional_generator_starts_moved_by_its_noise_not_its_label():
    """At init the paper preset's conditional G varies far less with the label than with z (issue 15: with a label
    embedding started N(0, 1), a third as much, G split by label instead of by z and never used its noise)."""
    config = with_overrides(preset("paper", "mnist"), conditional=True, n_classes=10)
    game = steps.Game(config, (28, 28, 1), 100)
    state = steps.init_state(game, 0)
    z = game.noise(jax.random.PRNGKey(1), 50)
    drawn = np.stack([np.asarray(steps.sample(game, state, z, jnp.full(50, y, jnp.int32), ema=False)) for y in range(10)])
    by_label, by_z = drawn.std(axis=0).mean(), drawn.std(axis=1).mean()  # [label, z, ...]: spread over each
    assert 0 < by_label < 0.05 * by_z, (by_label, by_z)


def test_every_preset_can_be_made_conditional():
    """For each preset's model family, on the first image shape its unconditional form takes: a conditional
    iteration has the same shapes and metrics (traced only, nothing computed)."""
    from functools import partial

    from gancli.config import PRESETS

    def trace(config, shape):
        game = steps.Game(config, shape, 1000)
        return jax.eval_shape(partial(steps.iteration, game), steps.abstract_state(game), steps.iteration_spec(game))[1]

    for name in PRESETS:
        config = preset(name, "any")
        if config.labels:  # a semi-supervised D classifies the label: given it as input it would be told the answer
            with pytest.raises(GancliError, match="not conditional"):
                trace(models.check(with_overrides(config, conditional=True, n_classes=10)), (28, 28, 1))
            continue
        for shape in ((28, 28, 1), (32, 32, 3), (48, 48, 1), (2,)):
            try:
                plain = trace(with_overrides(config, conditional=False, n_classes=10), shape) if not config.conditional else None
            except Exception:  # not a shape this family takes
                continue
            assert trace(with_overrides(config, conditional=True, n_classes=10), shape).keys() == (plain or {}).keys() | {
                "d_loss", "g_loss", "d_real", "d_fake"}, name
            break
        else:
            raise AssertionError(f"preset {name}: no shape tried fits its model")


def test_cgan_preset_is_mirza_and_osinderos_mnist_model():
    config = with_overrides(preset("cgan", "mnist"), n_classes=10)
    assert (config.model, config.conditional, config.batch_size, config.k, config.update) == ("cgan", True, 100, 1, "simultaneous")
    o = config.optimizer
    assert (o.name, o.lr, o.lr_decay, o.lr_min, o.momentum, o.momentum_final) == ("sgd", 0.1, 1.00004, 1e-6, 0.5, 0.7)
    state = steps.abstract_state(steps.Game(config, (28, 28, 1), 50_000))
    shapes = lambda tree: {name: layer["kernel"].shape for name, layer in tree.items()}
    assert shapes(state["g"]) == {"z_hidden": (100, 200), "label_hidden": (10, 1000), "Dense_0": (1200, 1200), "out": (1200, 784)}
    assert shapes(state["d"]) == {"x_hidden": (784, 240 * 5), "label_hidden": (10, 50 * 5), "Dense_0": (290, 240 * 4), "out": (240, 1)}
    with pytest.raises(GancliError, match="conditional by design"):
        models.check(with_overrides(config, conditional=False))


@pytest.mark.parametrize("extra", [TINY_CGAN | {"model": "cgan", "generator.keep_hidden": 0.5},
                                   {"g_loss": "feature-matching", "ema": 0.9, "update": "alternating"}],
                         ids=["cgan", "mlp-feature-matching-ema"])
def test_conditional_runs_resume_bitwise_exactly(tmp_path, fake_data, extra):
    config = tiny(**{"conditional": True, "epochs": 2, **extra})
    train.train(config, tmp_path / "straight")
    train.train(with_overrides(config, epochs=1), tmp_path / "split")
    train.train(config, tmp_path / "split", resume=True)
    runs = [sampling.restore(tmp_path / d) for d in ("straight", "split")]
    assert runs[0].config.n_classes == 10 and runs[0].config == runs[1].config
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(runs[0].state), jax.tree.leaves(runs[1].state)))
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("straight", "split")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "it_per_s"}
    assert [strip(x) for x in logs[0]] == [strip(x) for x in logs[1]]
    # G's label matters: the same z drawn for two classes differ.
    z = sampling.latents(sampling.game_of(runs[0].config, runs[0].metadata), 4, 0)
    assert not np.allclose(sampling.decode(runs[0], z, np.zeros(4, np.int32)), sampling.decode(runs[0], z, np.ones(4, np.int32)))


def test_pictures_give_each_class_a_row():
    labels = conditional.class_labels(with_overrides(preset("toy", "ring8"), conditional=True, n_classes=3), 8)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    tiles, cols = images.class_rows(np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1), labels)
    assert cols == 3
    assert tiles[:, 0, 0, 0].tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 1.0]  # rows 0, 1, 2; a white tile ends the short one


def test_sample_by_label_cycles_classes_and_interpolates_within_a_class(ring8_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["sample", str(ring8_run), "--label", "3", "--n", "40", "--out", str(tmp_path / "three.npz")])
    assert result.exit_code == 0, result.output
    three = np.load(tmp_path / "three.npz")
    assert three["labels"].tolist() == [3] * 40 and np.mean(nearest_mode(three["samples"]) == 3) > 0.5
    assert "of class 3" in result.output and (tmp_path / "three.png").exists()
    assert runner.invoke(app, ["sample", str(ring8_run), "--out", str(tmp_path / "all.npz")]).exit_code == 0
    assert np.load(tmp_path / "all.npz")["labels"].tolist() == [i % 8 for i in range(100)]
    result = runner.invoke(app, ["sample", str(ring8_run), "--interpolate", "5", "--out", str(tmp_path / "line.npz")])
    assert result.exit_code == 0, result.output
    line = np.load(tmp_path / "line.npz")
    assert line["labels"].tolist() == [[r] * 5 for r in range(8)]  # one row per class, its label fixed along the row
    assert runner.invoke(app, ["sample", str(ring8_run), "--interpolate", "4", "--label", "6", "--n", "2",
                               "--out", str(tmp_path / "six.npz")]).exit_code == 0
    assert np.load(tmp_path / "six.npz")["labels"].tolist() == [[6] * 4] * 2


def test_evaluate_a_conditional_run_splits_samples_over_classes_and_judges_them(ring8_run, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(ring8_run), "--n-samples", "800", "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "class accuracy and per-class Fréchet distance" in result.output
    rep = json.loads((tmp_path / "rep" / "parzen.json").read_text())
    cond = rep["conditional"]
    assert cond["samples_per_class"] == [100] * 8 and cond["classifier"]["name"] == "nearest mode of ring8"
    judged = rep["models"][0]["conditional"]
    assert judged["accuracy"] > 0.8 and len(judged["per_class"]) == 8
    assert all(p["n"] == 100 and p["frechet"] >= 0 for p in judged["per_class"])
    assert cond["calibration"]["accuracy"] == 1.0 and cond["calibration"]["frechet_mean"] < judged["frechet_mean"]
    assert "## Conditional samples" in (tmp_path / "rep" / "parzen.md").read_text()


def test_bad_labels_are_one_line_errors(ring8_run, tmp_path, monkeypatch):
    run = sampling.restore(ring8_run)
    plain = dataclasses.replace(run, config=with_overrides(run.config, conditional=False, n_classes=0))  # as trained without labels
    runner = CliRunner()
    for args, fragment, restored in [
        ([str(ring8_run), "--label", "3"], "is not conditional (it was trained without labels; train with --conditional)", plain),
        ([str(ring8_run), "--label", "8"], "--label 8 is not a class of ring8: its classes are 0..7", None),
        ([str(ring8_run), "--interpolate", "3", "--label", "-1"], "is not a class of ring8", None),
    ]:
        with monkeypatch.context() as m:
            if restored is not None:
                m.setattr(sampling, "restore", lambda path, ema=True: restored)
            m.setattr(sampling, "decode", lambda *a: pytest.fail("drew samples for a bad label"))
            result = runner.invoke(app, ["sample", *args, "--out", str(tmp_path / "x.npz")])
        assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    with pytest.raises(GancliError, match="outside the run's 5 classes"):
        conditional.with_classes(with_overrides(preset("toy", "ring8"), conditional=True, n_classes=5), np.arange(8))
