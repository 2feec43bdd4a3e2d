"""`gancli evaluate --metrics`, `inspect` of its report and `train --eval-every`, on a tiny run of the real MNIST
cut to 3,000 training and 1,000 test images so that each call takes seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import data, evaluate, feature_nets, metrics, per_epoch, sampling
from gancli.cli import app

SIZES = {"train": 3_000, "test": 1_000}
TINY = ["--set", "generator.z_dim=4", "--set", "generator.hidden=16", "--set", "discriminator.units=8",
        "--set", "discriminator.pieces=2", "--batch-size", "100"]


@pytest.fixture(scope="module")
def cut_mnist(mnist_data_dir):
    """data.load on the real MNIST, cut to SIZES (the validation split whole)."""
    load = data.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "load", lambda name, split, data_dir=None: tuple(a[: SIZES.get(split)] for a in load(name, split, data_dir)))
        yield mnist_data_dir


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def ok(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def run(cut_mnist, tmp_path_factory):
    """Two epochs of a tiny model with an EMA of G, evaluated at epoch 2 only (--eval-every 2)."""
    path = tmp_path_factory.mktemp("quality") / "run"
    out = ok("train", "mnist", "--epochs", 2, "--eval-every", 2, "--ema", 0.9, "--ckpt", path, "--data-dir", cut_mnist, *TINY)
    assert "epoch 2 evaluation (Fréchet distance, classifier score, class coverage):" in out
    assert "of the epoch's training time" in out
    return path


def _finite_numbers(x) -> bool:
    if isinstance(x, dict):
        return all(_finite_numbers(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite_numbers(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def test_evaluate_metrics_of_a_checkpoint_equal_those_of_its_samples_in_a_file(run, cut_mnist, tmp_path):
    out = ok("evaluate", run, "--metrics", ",".join(metrics.SHIPPED), "--n-samples", 300, "--data-dir", cut_mnist)
    assert "Sample-quality metrics on mnist" in out and "Parzen" not in out  # --metrics alone: no Parzen
    reports = run / "reports"
    rep = json.loads((reports / "metrics.json").read_text())
    assert (reports / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (reports / "parzen.json").exists()
    version = feature_nets.SPECS["mnist"].version
    assert rep["feature_net"] == version == rep["reference"]["feature_net"]["version"]
    assert rep["metrics"] == list(metrics.SHIPPED) and _finite_numbers(rep)
    (model,) = rep["models"]
    assert (model["epoch"], model["step"], model["generator_ema"], model["n"]) == (2, 60, 0.9, 300)

    # The same samples (the EMA's, noise seed 0, clipped to the network's [0, 1]) through the library directly.
    drawn = np.clip(sampling.draw(sampling.restore(run), 300, 0)["samples"], 0.0, 1.0)
    np.save(tmp_path / "drawn.npy", drawn)
    expected = evaluate.evaluate_samples(tmp_path / "drawn.npy", [evaluate.Metrics(metrics.SHIPPED)], data_dir=cut_mnist)["metrics"].report
    for got, want in ((model, expected["models"][0]), (rep["calibration"]["train"], expected["calibration"]["train"]),
                      (rep["calibration"]["noise"], expected["calibration"]["noise"])):
        assert metrics.scalars(got) == pytest.approx(metrics.scalars(want), rel=1e-6, abs=1e-9)
        assert got["classes"]["histogram"] == want["classes"]["histogram"]
    md = (reports / "metrics.md").read_text()
    assert version in md and "| calibration: 300 training images |" in md and "![class histogram" in md
    assert f"{model['fid']:.4g}" in md


def test_json_no_ema_and_out(run, cut_mnist, tmp_path):
    result = invoke("evaluate", run, "--metrics", "score,fid", "--no-ema", "--json", "--n-samples", 200,
                    "--no-calibration", "--out", tmp_path / "raw", "--data-dir", cut_mnist)
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)  # the report alone on stdout; progress went to stderr
    assert rep["kind"] == "metrics" and rep["metrics"] == ["fid", "score"] and rep["calibration"] is None
    (model,) = rep["models"]
    assert model["generator_ema"] is None and "EMA" not in model["label"] and set(metrics.scalars(model)) == {"fid", "score", "score_std"}
    raw = np.clip(sampling.draw(sampling.restore(run, ema=False), 200, 0)["samples"], 0.0, 1.0)
    ref = metrics.reference("mnist", ["fid"], cut_mnist)
    assert model["fid"] == pytest.approx(metrics.measure(raw, ref, ["fid"])["fid"], rel=1e-9)
    assert json.loads((tmp_path / "raw" / "metrics.json").read_text()) == rep


def test_samples_file_from_any_tool_and_both_reports(cut_mnist, tmp_path):
    test_images = data.load("mnist", "test", cut_mnist)[0][:200]
    path = tmp_path / "real.npz"
    np.savez(path, samples=test_images.reshape(200, 784))  # flat, as another tool might save them
    result = invoke("evaluate", "--samples", path, "--metrics", "classes,fid", "--parzen", "--sigmas", "0.2",
                    "--json", "--data-dir", cut_mnist)
    assert result.exit_code == 0, result.output
    both = json.loads(result.stdout)
    assert set(both) == {"parzen", "metrics"} and both["parzen"]["kind"] == "parzen"
    rep = both["metrics"]
    assert rep["models"][0]["classes"]["covered"] == 10 and rep["models"][0]["fid"] < rep["calibration"]["noise"]["fid"] / 10
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.json", "metrics.md", "metrics.png", "parzen.json"}
    again = invoke("evaluate", "--samples", path, "--metrics", "fid", "--data-dir", cut_mnist)
    assert again.exit_code == 1 and "metrics.json already exists: pass --force" in again.output


@pytest.mark.parametrize("args, message", [
    (["--metrics", "fid,bogus"], "unknown metric bogus: choose from all, fid, fid_logits, score, prdc, classes, memorisation"),
    (["--metrics", ","], "unknown metric (none given)"),
    (["--metrics", "fid", "--dataset", "ring8"], "no feature network for 'ring8'"),
    (["--no-parzen"], "nothing to evaluate: ask for --parzen and/or --metrics"),
])
def test_bad_metrics_options_are_one_line(tmp_path, args, message):
    path = tmp_path / "s.npz"
    np.savez(path, samples=np.zeros((20, 28, 28, 1), np.float32))
    result = invoke("evaluate", "--samples", path, *args)
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_inspect_shows_the_latest_metrics(run, cut_mnist):
    ok("evaluate", run, "--metrics", "fid,score,classes", "--n-samples", 200, "--no-calibration", "--data-dir", cut_mnist)
    rep = json.loads((run / "reports" / "metrics.json").read_text())
    info = json.loads(ok("inspect", run, "--json", "--no-curves"))
    (model,) = info["sample_quality"]["headline"]["models"]
    assert model["fid"] == rep["models"][0]["fid"] and model["step"] == 60 and model["classes_covered"] == rep["models"][0]["classes"]["covered"]
    text = ok("inspect", run, "--no-curves")
    assert "metrics" in text and f"FD {rep['models'][0]['fid']:.4g}" in text.replace("\n", " ")


def test_eval_every_logs_the_quick_metrics_with_their_own_key(run, cut_mnist):
    first, second = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "fid" not in first and "eval_s" not in first  # --eval-every 2: epoch 2 only
    assert {"fid", "score", "score_std", "classes_covered", "classes_kl", "eval_s"} <= set(second)
    assert isinstance(second["classes_covered"], int)
    # The figures are those of the state at epoch 2 (the last checkpoint) with the evaluation's own key.
    restored = sampling.restore(run)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(restored.state["key"], per_epoch.EVAL), 2), 0)
    game = sampling.game_of(restored.config, restored.metadata)
    x = np.clip(sampling.decode(restored, np.asarray(game.noise(key, metrics.N_CHEAP))), 0.0, 1.0)
    want = metrics.scalars(metrics.quick(x, metrics.reference("mnist", metrics.CHEAP, cut_mnist)))
    assert {k: second[k] for k in want} == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_eval_every_changes_no_training_figure_and_gives_each_seed_its_own(cut_mnist, tmp_path):
    with_eval, without = tmp_path / "with", tmp_path / "without"
    ok("train", "mnist", "--epochs", 1, "--seeds", 2, "--eval-every", 1, "--ckpt", with_eval, "--data-dir", cut_mnist, *TINY)
    ok("train", "mnist", "--epochs", 1, "--seeds", 2, "--ckpt", without, "--data-dir", cut_mnist, *TINY)
    records = []
    for seed in ("seed-0", "seed-1"):
        (a,) = [json.loads(line) for line in (with_eval / seed / "metrics.jsonl").read_text().splitlines()]
        (b,) = [json.loads(line) for line in (without / seed / "metrics.jsonl").read_text().splitlines()]
        assert {k: a[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")} == {k: b[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")}
        records.append(a)
    assert records[0]["fid"] != records[1]["fid"] and all(math.isfinite(r["fid"]) for r in records)
    for seed in ("seed-0", "seed-1"):
        a, b = sampling.restore(with_eval / seed), sampling.restore(without / seed)
        assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)))

    # evaluate --metrics on the two seeds: a report per seed, and one with both and their mean and std.
    ok("evaluate", with_eval, "--metrics", "fid", "--n-samples", 200, "--no-calibration", "--data-dir", cut_mnist)
    rep = json.loads((with_eval / "reports" / "metrics.json").read_text())
    fids = [m["fid"] for m in rep["models"]]
    assert [m["label"] for m in rep["models"]] == ["seed-0", "seed-1"] and rep["across_seeds"]["n"] == 2
    assert rep["across_seeds"]["fid"]["mean"] == pytest.approx(np.mean(fids))
    assert rep["across_seeds"]["fid"]["std"] == pytest.approx(np.std(fids, ddof=1))
    for seed, fid in zip(("seed-0", "seed-1"), fids):
        assert json.loads((with_eval / seed / "reports" / "metrics.json").read_text())["models"][0]["fid"] == fid


def test_conditional_run_evaluates_per_class(cut_mnist, tmp_path):
    path = tmp_path / "cond"
    ok("train", "mnist", "--conditional", "--epochs", 1, "--eval-every", 1, "--ckpt", path, "--data-dir", cut_mnist, *TINY)
    (record,) = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(record["fid"]) and 1 <= record["classes_covered"] <= 10
    ok("evaluate", path, "--metrics", "classes", "--n-samples", 200, "--data-dir", cut_mnist)
    rep = json.loads((path / "reports" / "metrics.json").read_text())
    assert rep["conditional"]["samples_per_class"] == [20] * 10  # the classes in turn
    judged = rep["models"][0]["conditional"]
    assert 0.0 <= judged["accuracy"] <= 1.0 and len(judged["per_class"]) == 10
    assert rep["conditional"]["calibration"]["accuracy"] > 0.9  # real training images obey their labels
    assert "## Conditional samples" in (path / "reports" / "metrics.md").read_text()


def test_eval_every_is_refused_at_the_start_where_there_is_no_feature_network(tmp_path):
    result = invoke("train", "ring8", "--eval-every", 1, "--ckpt", tmp_path / "ring")
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: --eval-every: nothing to evaluate on ring8: ") and (
        "the sample-quality metrics need a feature network, which gancli ships for mnist, fashion_mnist only" in last)
    assert not (tmp_path / "ring").exists()  # nothing started
    result = invoke("train", "mnist", "--eval-every", 0, "--ckpt", tmp_path / "m")
    assert result.exit_code == 1 and "--eval-every must be >= 1" in result.output


def test_parzen_and_all_metrics_restore_and_draw_each_seed_once(cut_mnist, tmp_path, monkeypatch):
    """One runner: `evaluate --parzen --metrics ...` restores each seed once and draws its samples once, and both
    reports measure those same samples (the Parzen one unclipped, the metrics one clipped to [0, 1])."""
    two = tmp_path / "two"
    ok("train", "mnist", "--epochs", 1, "--seeds", 2, "--ckpt", two, "--data-dir", cut_mnist, *TINY)
    draws, restores = [], []
    draw, restore = sampling.draw, sampling.restore
    monkeypatch.setattr(sampling, "draw", lambda run, n, seed, label=None: draws.append(run.path.name) or draw(run, n, seed, label))
    monkeypatch.setattr(sampling, "restore", lambda path, ema=True: restores.append(Path(path).name) or restore(path, ema))
    # The shipped network's metrics: all of them but Inception's, which is this runner's too but takes minutes here.
    ok("evaluate", two, "--parzen", "--metrics", ",".join(metrics.SHIPPED), "--n-samples", 200, "--n-valid", 100, "--sigmas", "0.2,0.3",
       "--data-dir", cut_mnist)
    assert sorted(draws) == sorted(restores) == ["seed-0", "seed-1"]
    parzen = json.loads((two / "reports" / "parzen.json").read_text())
    quality = json.loads((two / "reports" / "metrics.json").read_text())
    assert [m["label"] for m in parzen["models"]] == [m["label"] for m in quality["models"]] == ["seed-0", "seed-1"]
    assert parzen["across_seeds"]["n"] == quality["across_seeds"]["n"] == 2
    for seed in ("seed-0", "seed-1"):  # and each seed's own reports
        assert (two / seed / "reports" / "parzen.json").exists() and (two / seed / "reports" / "metrics.json").exists()
