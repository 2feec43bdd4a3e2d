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
    assert "20 labelled training examples (2 per class, label seed 3)" in said
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
