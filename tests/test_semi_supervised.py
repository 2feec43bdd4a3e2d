"""Semi-supervised learning with a K+1-class D (Salimans et al. 2016): the losses, the labelled subset and its
batches, weight normalisation's data-dependent init, the preset, a tiny run through the CLI, and exact resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import models, objectives, sampling, steps, streams
from gancli.cli import app
from gancli.data import labelled
from gancli.config import preset, with_overrides
from gancli.errors import GancliError
from gancli.models import ssl
from gancli.models.layers import WeightNormDense

# A tiny semi-supervised game on 200 4x4 images of 10 classes: 20 labels, batches of 10, 20 iterations an epoch.
TINY = {"generator.z_dim": 4, "generator.hidden": (8,), "discriminator.units": (12, 6), "batch_size": 10, "chunk": 10,
        "labels": 20}
# The same through the CLI; chunks of 7 put chunk boundaries inside epochs, where a resume may start.
TINY_SET = ["--set", "generator.z_dim=4", "--set", "generator.hidden=8", "--set", "discriminator.units=12,6",
            "--batch-size", "10", "--chunk", "7"]


def tiny(**extra):
    return with_overrides(preset("semi-supervised", "tiny"), **{**TINY, **extra})


def _lse(a):
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _softplus(a):
    return np.log1p(np.exp(a))


def test_k_plus_1_losses_match_a_hand_computation():
    rng = np.random.default_rng(1)
    lab, unl, fake = rng.normal(size=(4, 3)) * 2, rng.normal(size=(5, 3)) * 2, rng.normal(size=(6, 3)) * 2
    y = np.array([0, 2, 1, 2])
    # improved-gan's train_mnist_feature_matching.py, written out in float64.
    want_lab = -np.mean(lab[np.arange(4), y]) + np.mean(_lse(lab))
    want_unl = -0.5 * np.mean(_lse(unl)) + 0.5 * np.mean(_softplus(_lse(unl))) + 0.5 * np.mean(_softplus(_lse(fake)))
    want_err = np.mean(lab.argmax(axis=1) != y)
    outputs = lambda l: {"logit": jnp.asarray(_lse(l), jnp.float32), "class_logits": jnp.asarray(l, jnp.float32)}
    real = {**outputs(unl), "labelled": outputs(lab)}
    batch = {"labelled": {"label": jnp.asarray(y)}}
    loss, m = objectives.D_LOSSES["semi-supervised"](real, outputs(fake), batch, objectives.Context(None, 0))
    np.testing.assert_allclose([m["d_labelled"], m["d_unlabelled"], loss], [want_lab, want_unl, want_lab + want_unl], rtol=1e-5)
    assert float(m["train_error"]) == pytest.approx(want_err) and 0 < want_err < 1
    assert objectives.needing(objectives.D_LOSSES, objectives.LABELLED) == ["semi-supervised"]


def test_d_is_k_plus_1_classes_with_the_fake_logit_at_0_and_g_matches_its_last_hidden_layer():
    config = tiny(n_classes=10)
    d = ssl.Discriminator(config.discriminator, 10, config.ssl_mlp)
    x = jax.random.uniform(jax.random.PRNGKey(0), (7, 4, 4, 1))
    variables = d.init(jax.random.PRNGKey(1), x)
    out = d.apply(variables, x)  # no key: no noise, as at test time
    z = np.exp(np.asarray(out["class_logits"], np.float64)).sum(axis=1)
    np.testing.assert_allclose(jax.nn.sigmoid(out["logit"]), z / (z + 1), rtol=1e-5)  # D(x) = Z / (Z + 1)
    assert out["features"].shape == (7, 6) and float(out["features"].min()) >= 0  # the last ReLU layer, before its noise
    noisy = [d.apply(variables, x, None, jax.random.PRNGKey(k))["class_logits"] for k in (2, 3)]
    assert not np.allclose(noisy[0], noisy[1]) and not np.allclose(noisy[0], out["class_logits"])
    # Feature matching, as the code's loss_gen: mean over features of the squared difference of batch means.
    f_real, f_fake = np.random.default_rng(0).normal(size=(2, 5, 3))
    loss, _ = objectives.G_LOSSES["feature-matching"]({"features": f_real}, {"features": f_fake}, {}, objectives.Context(None, 0))
    assert float(loss) == pytest.approx(np.mean((f_fake.mean(0) - f_real.mean(0)) ** 2), rel=1e-5)


def test_weight_norm_init_standardises_the_first_batch_and_fixes_hidden_scales():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 5)) * 3.0 + 2.0
    for train_scale in (True, False):
        layer = WeightNormDense(7, train_scale=train_scale)
        variables = layer.init(jax.random.PRNGKey(1), x)
        assert ("scale" in variables["params"]) == train_scale and ("fixed" in variables) != train_scale
        t = layer.apply(variables, x)
        np.testing.assert_allclose(t.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(t.std(axis=0), 1.0, rtol=1e-4)
        other = layer.apply(variables, x[:32] * 2.0)  # set once: another batch is not standardised
        assert not np.allclose(other.std(axis=0), 1.0, rtol=1e-2)
    without = WeightNormDense(7, data_init=False).init(jax.random.PRNGKey(1), x)["params"]
    assert np.all(without["scale"] == 1.0) and np.all(without["bias"] == 0.0)


def test_labelled_subset_is_balanced_reproducible_and_seeded():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    config = with_overrides(tiny(), labels=100, n_classes=10)
    chosen = np.array(labelled.labelled_subset(config, labels))
    assert len(chosen) == len(set(chosen)) == 100 and chosen.min() >= 0 and chosen.max() < 1000
    assert np.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    assert tuple(chosen) == labelled.labelled_subset(config, labels)
    other = labelled.labelled_subset(with_overrides(config, label_seed=config.label_seed + 1), labels)
    assert set(other) != set(chosen.tolist())
    # The first 10 of each class in the label seed's permutation, as improved-gan picks them.
    order = labelled.permutation(config.label_seed, 1000).tolist()
    for c in range(10):
        ranks = sorted(order.index(i) for i in np.flatnonzero(labels == c))
        assert sorted(order.index(i) for i in chosen[labels[chosen] == c]) == ranks[:10]
    assert labelled.labelled_subset(preset("paper", "tiny"), labels) == ()
    with pytest.raises(GancliError, match="cannot be split evenly over the 10 classes"):
        labelled.labelled_subset(with_overrides(config, labels=105), labels)
    with pytest.raises(GancliError, match="needs 100 examples of class"):
        labelled.labelled_subset(with_overrides(config, labels=1000), labels)


def test_each_pass_over_the_labelled_set_is_a_fresh_permutation():
    subset = tuple(range(100, 120))
    game = steps.Game(tiny(n_classes=10), (4, 4, 1), 200)
    key = jax.random.PRNGKey(0)
    drawn = streams.STREAMS[0].prepare(game, key, jnp.asarray(subset, jnp.int32))
    batches = [np.asarray(streams.labelled_indices(game, drawn, i)) for i in range(4)]  # 10 each: two per pass of 20
    for p in range(2):
        assert sorted(np.concatenate(batches[2 * p : 2 * p + 2]).tolist()) == list(subset)
    assert not np.array_equal(np.concatenate(batches[:2]), np.concatenate(batches[2:]))
    whole = steps.Game(tiny(n_classes=10, batch_size=20), (4, 4, 1), 200)  # a batch as large as the set
    assert sorted(np.asarray(streams.labelled_indices(whole, drawn, 3)).tolist()) == list(subset)
    with pytest.raises(ValueError, match="needs a pool of 20 examples"):
        streams.STREAMS[0].prepare(game, key, jnp.arange(19, dtype=jnp.int32))


def test_preset_is_the_released_mnist_code():
    c = preset("semi-supervised", "mnist")
    assert (c.model, c.d_loss, c.g_loss, c.update, c.k, c.g_batch) == ("ssl-mlp", "semi-supervised", "feature-matching", "alternating", 1, "own")
    assert c.discriminator.units == (1000, 500, 250, 250, 250) and (c.ssl_mlp.input_noise, c.ssl_mlp.hidden_noise) == (0.3, 0.5)
    assert c.generator.hidden == (500, 500) and c.generator.batchnorm and c.generator.noise == "uniform01" and c.generator.z_dim == 100
    o = c.optimizer
    assert (o.name, o.lr, o.lr_decay, o.b1, o.eps, o.eps_root) == ("adam", 0.003, 1.0, 0.5, 0.0, 1e-8)
    assert (c.batch_size, c.epochs, c.labels, c.label_seed, c.d_ema) == (100, 300, 100, 1, 0.9999)
    assert c.train_split == "train_full"  # the code's unlabelled data: mnist.pkl.gz's train and validation sets
    assert steps.Game(c, (28, 28, 1), 60_000).iters_per_epoch == 600  # an epoch: one pass over the unlabelled data
    with pytest.raises(GancliError, match="--labels is for semi-supervised training"):
        models.check(with_overrides(preset("paper", "mnist"), labels=100))
    with pytest.raises(GancliError, match="trains on labelled examples: give --labels"):
        models.check(with_overrides(c, labels=0))
    with pytest.raises(GancliError, match="needs a D with class logits"):
        models.check(with_overrides(c, model="mlp", **{"ssl_mlp.input_noise": 0.0, "ssl_mlp.hidden_noise": 0.0}))


@pytest.fixture(scope="module")
def ssl_runs(tmp_path_factory):
    """Through the CLI, on the fake data: a tiny semi-supervised run trained 2 epochs straight with the per-epoch
    test error, the same trained 1 epoch then resumed to 2, and a plain (not semi-supervised) run."""
    root = tmp_path_factory.mktemp("ssl")
    runner = CliRunner()
    args = ["train", "tiny", "--preset", "semi-supervised", "--labels", "20", "--label-seed", "3", *TINY_SET]
    with pytest.MonkeyPatch.context() as m:
        from gancli import data

        m.setattr(data, "load", lambda name, split, data_dir=None: (fake_images(), np.arange(200) % 10))
        m.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})
        outputs = [runner.invoke(app, args + ["--epochs", "2", "--eval-every", "1", "--ckpt", str(root / "straight")]),
                   runner.invoke(app, args + ["--epochs", "1", "--eval-every", "1", "--ckpt", str(root / "split")]),
                   runner.invoke(app, ["train", "--epochs", "2", "--eval-every", "1", "--ckpt", str(root / "split")]),
                   runner.invoke(app, args + ["--epochs", "1", "--eval-every", "1", "--ckpt", str(root / "old")])]
        for stored in (root / "old" / "checkpoints").glob("*/config/metadata"):
            stored.write_text(json.dumps(in_the_layout_before_family_sections(json.loads(stored.read_text()))))
        outputs += [runner.invoke(app, ["train", "--epochs", "2", "--eval-every", "1", "--ckpt", str(root / "old")]),
                   runner.invoke(app, ["train", "tiny", "--epochs", "1", "--ckpt", str(root / "plain"), "--set",
                                       "generator.hidden=8", "--set", "discriminator.units=6", "--batch-size", "10"])]
        for result in outputs:
            assert result.exit_code == 0, result.output
        assert "20 labelled examples (label seed 3)" in " ".join(outputs[0].output.split()) and "resuming" in outputs[2].output
        yield root


def test_a_tiny_run_through_the_cli_trains_classifies_and_refuses_other_runs(ssl_runs):
    root = ssl_runs
    runner, run = CliRunner(), root / "straight"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0 <= r["test_errors"] <= 200 and 0 <= r["test_errors_raw"] <= 200 and "train_error" in r for r in records)

    result = runner.invoke(app, ["evaluate", str(run), "--classify"])
    assert result.exit_code == 0, result.output
    rep = json.loads((run / "reports" / "classify.json").read_text())
    (model,) = rep["models"]
    assert model["n"] == 200 and np.asarray(model["confusion"]).sum() == 200 and model["d_ema"] == 0.9999
    assert model["errors"] == 200 - np.trace(np.asarray(model["confusion"])) == records[-1]["test_errors"]
    assert (model["labels"], model["label_seed"], model["step"]) == (20, 3, 40)
    assert all((run / "reports" / name).stat().st_size > 0 for name in ("classify.json", "classify.md", "classify.png"))
    assert "Confusion matrix" in result.output and "test errors" in result.output
    raw = runner.invoke(app, ["evaluate", str(run), "--classify", "--no-ema", "--json"])
    assert raw.exit_code == 0 and json.loads(raw.stdout)["models"][0]["errors"] == records[-1]["test_errors_raw"]

    shown = runner.invoke(app, ["inspect", str(run)], env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert "20 labelled training examples (2 per class, label seed 3, subset sha256 " in said
    assert "unlabelled batches draw from the whole training split" in said  # the labelled ones included, as the code
    assert "average of decay 0.9999" in shown.output and "test errors" in shown.output

    refused = runner.invoke(app, ["evaluate", str(root / "plain"), "--classify"])
    assert refused.exit_code == 1 and "is not a semi-supervised run" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (root / "plain" / "reports" / "classify.json").exists()
    both = runner.invoke(app, ["evaluate", str(run), "--classify", "--metrics", "fid"])
    assert both.exit_code == 1 and "--classify evaluates a run's D on its own" in both.output


def in_the_layout_before_family_sections(config: dict) -> dict:
    """A stored config as gancli wrote it before model ssl-mlp's knobs had their own section: its noise fields
    inside the discriminator's."""
    old = {k: v for k, v in config.items() if k != "ssl_mlp"}
    old["discriminator"] = {**config["discriminator"], **config["ssl_mlp"]}
    return old


def test_a_run_stored_before_the_family_sections_resumes_exactly(ssl_runs):
    """Its config migrates on load (the noise fields to ssl_mlp), so it resumes where an uninterrupted run is."""
    root = ssl_runs
    saved = {int(p.parts[-3]): json.loads(p.read_text()) for p in (root / "old" / "checkpoints").glob("*/config/metadata")}
    assert "ssl_mlp" not in saved[20] and "ssl_mlp" in saved[40]  # the resume wrote today's layout
    straight, migrated = (sampling.restore(root / d) for d in ("straight", "old"))
    assert migrated.config == straight.config and migrated.config.ssl_mlp.input_noise == 0.3
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(migrated.state)))
    with_old_names = with_overrides(preset("semi-supervised", "tiny"), **{"discriminator.hidden_noise": 0.25})
    assert with_old_names.ssl_mlp.hidden_noise == 0.25  # --set and --config files with the old names still work


def test_semi_supervised_runs_resume_bitwise_exactly(ssl_runs):
    root = ssl_runs
    runs = [sampling.restore(root / d) for d in ("straight", "split")]
    assert runs[0].config == runs[1].config and runs[0].config.n_classes == 10
    assert {"d_ema", "d_stats", "g_stats"} <= set(runs[0].state)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(runs[0].state), jax.tree.leaves(runs[1].state)))
    logs = [(root / d / "metrics.jsonl").read_text().splitlines() for d in ("straight", "split")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("it_per_s", "eval_s")}
    assert [strip(x) for x in logs[0]] == [strip(x) for x in logs[1]]
    # The average of D moved away from its zero start; the hidden scales stayed as the init pass set them.
    assert float(jnp.abs(runs[0].state["d_ema"]["out"]["bias"]).sum()) > 0
    fresh = steps.init_state(sampling.game_of(runs[0].config, runs[0].metadata), 0, fake_images())
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fresh["d_stats"]), jax.tree.leaves(runs[0].state["d_stats"])))


def fake_images():
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (200, 4, 4, 1)) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    """Through the CLI, on the fake data: tiny 2-seed semi-supervised runs, one with a labelled subset per seed (the
    default; 1 epoch, then resumed to 2) and one with --same-labels (1 epoch)."""
    root = tmp_path_factory.mktemp("ssl-seeds")
    runner = CliRunner()
    args = ["train", "tiny", "--preset", "semi-supervised", "--labels", "20", "--label-seed", "3", "--seeds", "2",
            "--epochs", "1", "--eval-every", "1", *TINY_SET]
    with pytest.MonkeyPatch.context() as m:
        from gancli import data

        m.setattr(data, "load", lambda name, split, data_dir=None: (fake_images(), np.arange(200) % 10))
        m.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})
        outputs = [runner.invoke(app, args + ["--ckpt", str(root / "own")]),
                   runner.invoke(app, ["train", "--epochs", "2", "--eval-every", "1", "--ckpt", str(root / "own")]),
                   runner.invoke(app, args + ["--same-labels", "--ckpt", str(root / "same")])]
        for result in outputs:
            assert result.exit_code == 0, result.output
        said = [" ".join(r.output.split()) for r in outputs]
        assert "20 labelled examples (label seeds 3 to 4, one subset per seed)" in said[0] and "resuming" in said[1]
        assert "20 labelled examples (label seed 3 for every seed)" in said[2]
        yield root


def _stored(run):
    """(config, metadata) of each seed folder's newest checkpoint."""
    from gancli import checkpoint

    return [(r.config, r.metadata) for r in (checkpoint.load_run(run / f"seed-{i}") for i in range(2))]


def test_each_seed_trains_on_a_labelled_subset_of_its_own_unless_same_labels(seeded_runs):
    own, same = _stored(seeded_runs / "own"), _stored(seeded_runs / "same")
    assert [c.label_seed for c, _ in own] == [3, 4] and [c.label_seed for c, _ in same] == [3, 3]
    assert [m["labelled"]["label_seed"] for _, m in own] == [3, 4] and own[0][1]["labelled"]["n"] == 20
    labels = np.arange(200) % 10
    for c, m in own + same:  # each seed's digest is its own label seed's subset
        assert m["labelled"]["sha256"] == labelled.digest(labelled.labelled_subset(c, labels))
    assert own[0][1]["labelled"]["sha256"] != own[1][1]["labelled"]["sha256"]
    assert same[0][1]["labelled"]["sha256"] == same[1][1]["labelled"]["sha256"] == own[0][1]["labelled"]["sha256"]
    # In the one program the seeds differ only in what they are given: seed 0 (label seed 3 in both runs) trains the
    # same; seed 1, same seed but another labelled subset, does not.
    first = lambda run, i: {k: v for k, v in json.loads((run / f"seed-{i}" / "metrics.jsonl").read_text().splitlines()[0]).items()
                            if k not in ("it_per_s", "eval_s")}
    assert first(seeded_runs / "own", 0) == first(seeded_runs / "same", 0)
    assert first(seeded_runs / "own", 1)["d_loss"] != first(seeded_runs / "same", 1)["d_loss"]
    assert own[0][0].epochs == 2 and own[1][1]["epoch"] == 2  # the resume kept each seed's label seed


def test_evaluate_classify_reports_each_seed_and_the_mean_and_std(seeded_runs):
    run = seeded_runs / "own"
    result = CliRunner().invoke(app, ["evaluate", str(run), "--classify"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    rep = json.loads((run / "reports" / "classify.json").read_text())
    errors = [m["errors"] for m in rep["models"]]
    assert [m["label_seed"] for m in rep["models"]] == [3, 4] and len(set(m["labelled_sha256"] for m in rep["models"])) == 2
    s = rep["across_seeds"]
    assert s["n"] == 2 and s["errors_mean"] == pytest.approx(np.mean(errors)) and s["errors_std"] == pytest.approx(np.std(errors, ddof=1))
    said = " ".join(result.output.split())
    assert "20 (seed 3)" in said and "20 (seed 4)" in said and f"{errors[0]:,}" in said and f"{errors[1]:,}" in said
    assert f"mean over 2 seeds" in said and f"{s['errors_mean']:.1f} ± {s['errors_std']:.1f} (std)" in said
    shown = CliRunner().invoke(app, ["inspect", str(run / "seed-1")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and f"label seed 4, subset sha256 {rep['models'][1]['labelled_sha256']}" in " ".join(shown.output.split())


def test_the_2016_06_08_preset_holds_lr_to_epoch_200_then_falls_linearly_to_0_at_300():
    from gancli import optim

    c = preset("semi-supervised-2016-06-08", "mnist")
    today = preset("semi-supervised", "mnist")
    assert (c.optimizer.lr, c.optimizer.lr_linear_from, c.optimizer.lr_linear_to, c.d_ema) == (0.001, 200, 300, 0.0)
    assert with_overrides(c, preset="semi-supervised", d_ema=0.9999, **{
        "optimizer.lr": 0.003, "optimizer.lr_min": today.optimizer.lr_min, "optimizer.lr_linear_from": 0,
        "optimizer.lr_linear_to": 0}) == today  # nothing else differs from today's preset
    game = steps.Game(tiny(preset="semi-supervised-2016-06-08", **{
        "optimizer.lr": 0.001, "optimizer.lr_min": 0.0, "optimizer.lr_linear_from": 200, "optimizer.lr_linear_to": 300}),
        (4, 4, 1), 200)
    ipe = game.iters_per_epoch  # 20: G's and D's updates an epoch (k 1)
    lr = lambda epoch, into=0: float(optim.learning_rate(game.config.optimizer, jnp.int32(epoch * ipe + into), ipe))
    assert [lr(0), lr(200), lr(250), lr(300)] == pytest.approx([0.001, 0.001, 0.0005, 0.0])
    assert lr(199, ipe - 1) == lr(200, ipe - 1) == pytest.approx(0.001) and lr(299, ipe - 1) == pytest.approx(1e-5)  # one lr an epoch
    assert lr(250, 7) == lr(250)
    # The compiled optimisers apply it: Adam's step at update count N is lr(N's epoch) times the same direction.
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.asarray([1.0, -2.0, 0.5])}
    step_at = lambda epoch: game.d_tx.update(grads, jax.tree.map(
        lambda x: jnp.asarray(epoch * ipe, x.dtype) if getattr(x, "ndim", 1) == 0 else x, game.d_tx.init(params)), params)[0]["w"]
    ratio = np.asarray(step_at(250)) / np.asarray(step_at(200))
    assert np.all(np.isfinite(ratio)) and np.allclose(ratio, 0.5 * _bias(250 * ipe) / _bias(200 * ipe), rtol=1e-4)
    assert np.all(np.asarray(step_at(300)) == 0)
    assert not np.any(np.asarray(step_at(0)) == 0)
    with pytest.raises(GancliError, match="lr_linear_from and lr_linear_to must be epochs"):
        with_overrides(c, **{"optimizer.lr_linear_from": 300})


def _bias(count):
    """What Adam's bias corrections multiply its step by at update `count` (optax's t = count + 1; beta1 0.5, beta2
    0.999): sqrt(1 - b2^t) / (1 - b1^t)."""
    t = count + 1
    return np.sqrt(1 - 0.999**t) / (1 - 0.5**t)


def _protocol_script():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("ssl_protocol", Path(__file__).parents[1] / "examples" / "ssl_protocol.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_protocol_script_reads_a_recipes_seeds_from_its_folder(seeded_runs, tmp_path):
    import argparse

    script = _protocol_script()
    (tmp_path / "semi-supervised").symlink_to(seeded_runs / "own")  # the 2-seed run as the recipe's folder
    args = argparse.Namespace(out=tmp_path, at=[1, 2])
    found = script.collect("semi-supervised", args)
    logs = [[json.loads(x) for x in (seeded_runs / "own" / f"seed-{i}" / "metrics.jsonl").read_text().splitlines()] for i in range(2)]
    assert [(s["seed"], s["label_seed"], s["epochs_done"]) for s in found["seeds"]] == [(0, 3, 2), (1, 4, 2)]
    assert [s["test"] for s in found["seeds"]] == [{1: log[0]["test_errors"], 2: log[1]["test_errors"]} for log in logs]
    assert script.collect("semi-supervised-2016-06-08", args) is None
    markdown = script.write(args)
    assert (tmp_path / "table.md").read_text() == markdown and "| `semi-supervised` | average of D | 3, 4 |" in markdown
    assert json.loads((tmp_path / "table.json").read_text())["recipes"]["semi-supervised"]["seeds"][1]["label_seed"] == 4


def test_the_protocol_scripts_table_gives_each_seed_and_mean_and_std_beside_the_references():
    script = _protocol_script()
    records = [{"epoch": e, "test_errors": 300 - e, "test_errors_raw": 310 - e} for e in (50, 100, 150, 200)]
    one = script.seed_errors(records, [100, 200, 300])
    assert one == {"test": {100: 200, 200: 100}, "d": {100: 210, 200: 110}, "epochs_done": 200}
    assert script.seed_errors([{"epoch": 100, "test_errors": 99}], [100])["d"] == {100: 99}  # no average: D itself
    results = {
        "semi-supervised": {"description": "today", "epochs": 300, "cpu_s_per_epoch": 240.0, "seeds": [
            {"seed": 0, "label_seed": 1, "test": {100: 120, 200: 110, 300: 100}, "d": {100: 125, 200: 112, 300: 101}, "epochs_done": 300},
            {"seed": 1, "label_seed": 2, "test": {100: 130, 200: 90}, "d": {100: 131, 200: 95}, "epochs_done": 250}]},
        "semi-supervised-2016-06-08": {"description": "then", "epochs": 300, "cpu_s_per_epoch": None, "seeds": [
            {"seed": 0, "label_seed": 1, "test": {100: 140}, "d": {100: 140}, "epochs_done": 120}]},
    }
    markdown, data = script.table(results, [100, 200, 300])
    today = data["recipes"]["semi-supervised"]["mean_std"]
    assert today["test"][100] == {"n": 2, "mean": 125.0, "std": pytest.approx(np.std([120, 130], ddof=1))}
    assert today["test"][300]["n"] == 1 and today["test"][300]["std"] is None and today["d"][200]["mean"] == 103.5
    assert data["recipes"]["semi-supervised-2016-06-08"]["mean_std"] == {"test": {100: {"n": 1, "mean": 140.0, "std": None}}}
    rows = markdown.splitlines()
    assert "| `semi-supervised` | average of D | 1, 2 | 125.0 ± 7.1 | 100.0 ± 14.1 | 100.0 (1 of 2) | 250 of 300 |" in rows
    assert "| `semi-supervised` | D itself | 1, 2 | 128.0 ± 4.2 | 103.5 ± 12.0 | 101.0 (1 of 2) | 250 of 300 |" in rows
    assert "| `semi-supervised-2016-06-08` | D itself | 1 | 140.0 | — | — | 120 of 300 |" in rows
    assert "| &nbsp;&nbsp;seed 1 | | 2 | 130 / 131 | 90 / 95 | — | 250 |" in rows
    assert any(r.startswith("| Salimans et al. (2016), Table 1, 100 labels |") and r.endswith("| 93 ± 6.5 | |") for r in rows)
    assert any(r.startswith("| hiroharu-kato/improved_gan_chainer") and r.endswith("| 82 | |") for r in rows)
    assert "240 CPU s per epoch of all 2 seeds" in markdown
    assert json.loads(json.dumps(script._json_keys(data)))["recipes"]["semi-supervised"]["mean_std"]["test"]["100"]["n"] == 2
