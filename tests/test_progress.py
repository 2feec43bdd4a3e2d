"""Progress of the long steps: every step wired reports increasing counts up to its own total (on tiny data), its
result is the same with and without a callback, and a command shows the bars with their ETA on stderr."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import data, feature_nets, knn, metrics, parzen, train
from gancli.cli import app
from gancli.data import idx, tfds_sets


class Calls:
    """A progress(what, done, total) that keeps every call, and progress(done, total) of one step through .of()."""

    def __init__(self):
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, what: str, done: int, total: int) -> None:
        self.calls.append((what, done, total))

    def of(self, what: str = "step"):
        return lambda done, total: self(what, done, total)

    def steps(self) -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for what, done, total in self.calls:
            out.setdefault(what, []).append((done, total))
        return out


def assert_counts_up_to(calls: list[tuple[int, int]], total: int, at_least: int = 2) -> None:
    """Strictly increasing counts, the same total every time, ending at it, in at least `at_least` calls."""
    assert len(calls) >= at_least, calls
    assert {t for _, t in calls} == {total}, calls
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and 0 < done[0] and done[-1] == total, calls


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def test_feature_network_reports_each_batch():
    rec = Calls()
    x = images(2 * feature_nets.BATCH + 500, 0)
    net = feature_nets.shipped("mnist")
    features, logits = net.features_and_logits(x, rec.of())
    assert rec.steps()["step"] == [(1000, 2500), (2000, 2500), (2500, 2500)]
    quiet = net.features_and_logits(x)
    assert np.array_equal(features, quiet[0]) and np.array_equal(logits, quiet[1])


def test_nearest_images_neighbour_radii_and_prdc_report_each_block():
    rng = np.random.default_rng(1)
    train_images, queries = rng.random((300, 16), dtype=np.float32), rng.random((50, 16), dtype=np.float32)
    rec = Calls()
    index = knn.TrainIndex(train_images, dims=4)
    found = index.nearest(queries, block_elements=300 * 10, progress=rec.of("nearest"))
    assert rec.steps()["nearest"] == [(10, 50), (20, 50), (30, 50), (40, 50), (50, 50)]
    assert np.array_equal(found[0], index.nearest(queries)[0])

    radii = metrics.kth_neighbour_radii(train_images, (3, 5), block_elements=300 * 64, progress=rec.of("radii"))
    assert_counts_up_to(rec.steps()["radii"], 300, at_least=5)
    assert all(np.array_equal(radii[k], v) for k, v in metrics.kth_neighbour_radii(train_images, (3, 5)).items())

    scores = metrics.prdc(queries, train_images, block_elements=300 * 16, progress=rec.of("prdc"))
    assert_counts_up_to(rec.steps()["prdc"], 2 * 50, at_least=4)  # the samples' radii, then their balls
    assert scores == metrics.prdc(queries, train_images)


def test_parzen_reports_both_passes_and_scores_the_same():
    rng = np.random.default_rng(2)
    samples, valid, test = (rng.random((n, 8), dtype=np.float32) for n in (400, 120, 330))
    rec = Calls()
    # 400 samples in blocks of 4,000 distances: 10 rows a block, so 12 validation and 33 test blocks.
    shown = parzen.protocol(samples, valid, test, (0.1, 0.3), block_elements=4000, progress=rec, label="seed-0")
    steps = rec.steps()
    assert list(steps) == ["Parzen, seed-0: validation images, 2 sigmas", "Parzen, seed-0: test images"]
    assert_counts_up_to(steps["Parzen, seed-0: validation images, 2 sigmas"], 120, at_least=12)
    assert_counts_up_to(steps["Parzen, seed-0: test images"], 330, at_least=17)
    quiet = parzen.protocol(samples, valid, test, (0.1, 0.3), block_elements=4000)
    assert shown.valid_ll == pytest.approx(quiet.valid_ll, rel=1e-12) and shown.mean == pytest.approx(quiet.mean, rel=1e-12)
    assert shown.sigma == quiet.sigma


def test_reference_statistics_and_a_measurement_report_every_long_step(monkeypatch):
    monkeypatch.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})
    test, train_images, samples = images(1010, 3), images(100, 4), images(1005, 5)
    rec = Calls()
    ref = metrics.reference("mnist", ("fid", "prdc", "memorisation"), test=test, train=train_images, progress=rec)
    row = metrics.measure(samples, ref, ("fid", "prdc", "memorisation"), "seed-0", progress=rec)
    steps = rec.steps()
    assert list(steps) == ["features of the mnist test split", "neighbour radii of the mnist test split",
                           "nearest training image of the mnist test split", "features of seed-0",
                           "precision and recall of seed-0", "nearest training image of 1,005 seed-0"]
    assert steps["features of the mnist test split"] == [(1000, 1010), (1010, 1010)]
    assert steps["features of seed-0"] == [(1000, 1005), (1005, 1005)]
    assert_counts_up_to(steps["neighbour radii of the mnist test split"], 1010, at_least=1)
    assert_counts_up_to(steps["nearest training image of the mnist test split"], 1010, at_least=1)
    assert_counts_up_to(steps["precision and recall of seed-0"], 2010)
    assert_counts_up_to(steps["nearest training image of 1,005 seed-0"], 1005, at_least=1)
    assert np.isfinite(row["fid"]) and 0 <= row["prdc"]["precision"] <= 1


@pytest.fixture
def fashion_source(monkeypatch, tmp_path):
    """Fashion-MNIST's four IDX files, 60 training and 12 test images, and no TFDS_DATA_DIR from the caller."""
    import gzip
    import struct

    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    rng = np.random.default_rng(6)
    folder = tmp_path / "fashion"
    folder.mkdir()
    for split, n in (("train", 60), ("t10k", 12)):
        for name, array in zip(idx.FASHION_MNIST_FILES[split], (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / name).write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    monkeypatch.setenv(idx.FASHION_MNIST_ENV, str(folder))
    return folder


def test_a_dataset_build_reports_each_split(fashion_source, tmp_path):
    # Given explicitly...
    rec = Calls()
    tfds_sets.FASHION_MNIST.ensure_prepared(tmp_path / "one", progress=rec)
    expected = {"building fashion_mnist: train": 50, "building fashion_mnist: validation": 10,
                "building fashion_mnist: test": 12}
    assert set(rec.steps()) == set(expected)
    for what, n in expected.items():
        assert_counts_up_to(rec.steps()[what], n, at_least=n)  # every example of so small a split
    # ...or for the build that the first data.load of a dataset starts, deep inside train or evaluate.
    rec = Calls()
    with data.reporting_builds(rec):
        x, _ = data.load("fashion_mnist", "test", tmp_path / "two")
    assert len(x) == 12 and set(rec.steps()) == set(expected)
    rec = Calls()
    with data.reporting_builds(rec):
        data.load("fashion_mnist", "test", tmp_path / "two")  # built already: nothing to report
    assert rec.calls == []


def test_evaluate_shows_its_bars_with_an_eta_on_stderr(fake_data, tmp_path):
    from helpers import tiny

    run = tmp_path / "run"
    train.train(tiny(epochs=1), run)
    result = CliRunner().invoke(app, ["evaluate", str(run), "--json", "--n-samples", "100", "--n-valid", "50",
                                      "--sigmas", "0.1,0.2", "--no-calibration"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Parzen")]
    assert len(lines) == 2, result.stderr  # the validation pass and the test pass, each a finished bar
    assert "50/50" in lines[0] and "200/200" in lines[1], lines
    assert all("ETA" in line and "━" in line for line in lines), lines
    assert result.stdout.lstrip().startswith("{")  # stdout carries the report alone


def test_train_draws_a_build_before_training_in_place_of_its_status_line():
    import io

    from rich.console import Console

    from gancli.cli.progress import RichReporter

    out = io.StringIO()
    reporter = RichReporter(Console(file=out, width=100), epochs=1)
    reporter.status("loading fashion_mnist")
    for done in (4, 8, 10):  # what a build under the train command reports (data.reporting_builds(reporter.work))
        reporter.work("building fashion_mnist: train", done, 10)
    reporter.start(total=20, done=0, epoch=0)  # training starts: the build's bars are put away
    reporter.stop()
    line = next(line for line in out.getvalue().splitlines() if line.startswith("building fashion_mnist: train"))
    assert "10/10" in line and "ETA" in line, out.getvalue()


def test_the_conditional_judge_reports_its_features(monkeypatch):
    from gancli import judge

    test, samples = images(1010, 7), images(1005, 8)
    monkeypatch.setattr(data, "load", lambda name, split, data_dir=None: (test if split == "test" else images(50, 9),
                                                                          np.arange(1010 if split == "test" else 50) % 10))
    rec = Calls()
    ref = judge.reference("mnist", 10, progress=rec)
    labels = np.arange(1005) % 10
    row = judge.measure(samples, labels, ref, progress=rec, label="seed-0")
    cal = judge.calibrate(ref, np.arange(20) % 10, progress=rec)
    steps = rec.steps()
    assert list(steps) == ["classifier features of the mnist test split", "classifier features of seed-0",
                           "classifier features of 20 training images"]
    assert steps["classifier features of the mnist test split"] == [(1000, 1010), (1010, 1010)]
    assert steps["classifier features of seed-0"] == [(1000, 1005), (1005, 1005)]
    assert steps["classifier features of 20 training images"] == [(20, 20)]
    assert row == judge.measure(samples, labels, ref) and cal["n"] == 20


def test_eval_every_reports_the_reference_it_builds_before_training(monkeypatch):
    from gancli import per_epoch
    from gancli.config import preset

    monkeypatch.setattr(data, "load", lambda name, split, data_dir=None: (images(1010, 10), np.arange(1010) % 10))
    monkeypatch.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})
    rec = Calls()
    built = per_epoch.Every(1, rec).build(preset("paper", "mnist"), None, None)  # the game is used at measure time only
    assert [name for _, name, _ in built.measures] == [per_epoch.EVALUATIONS["quality"].describe]
    assert rec.steps()["features of the mnist test split"] == [(1000, 1010), (1010, 1010)]


def test_classify_reports_the_test_split_in_batches(fake_data, monkeypatch):
    from types import SimpleNamespace

    from gancli import evaluate, semi_supervised, steps
    from gancli.config import preset, with_overrides

    config = with_overrides(preset("semi-supervised", "tiny"), **{
        "generator.z_dim": 4, "generator.hidden": (8,), "discriminator.units": (12, 6), "batch_size": 10, "labels": 20, "n_classes": 10})
    game = steps.Game(config, (4, 4, 1), 200)
    state = steps.init_state(game, 0, data.load("tiny", "train")[0])
    run = SimpleNamespace(config=config, metadata={"data_shape": [4, 4, 1], "n_train": 200}, state=state, path="ssl")
    rec = Calls()
    classify = evaluate.Classify()
    classify.log, classify.progress = (lambda _: None), rec
    classify.prepare("tiny", None, None)
    monkeypatch.setattr(semi_supervised, "BATCH", 64)  # the fake test split's 200 images in four batches
    found = classify.measure(evaluate.Model("ssl", "ssl", run=run), None, {})
    assert rec.steps() == {"classifying the tiny test split with ssl": [(64, 200), (128, 200), (192, 200), (200, 200)]}
    x, y = data.load("tiny", "test")
    whole = semi_supervised.predict(game, state, x, batch=200)  # one batch, no callback: the same classes
    assert found["errors"] == int(np.sum(whole != y)) and found["n"] == 200


def test_train_draws_the_eval_every_reference_as_work_bars(monkeypatch, tmp_path):
    from gancli import per_epoch

    monkeypatch.setattr(data, "load", lambda name, split, data_dir=None: (images(1010, 11), np.arange(1010) % 10))
    monkeypatch.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})

    def start_only(config, ckpt, data_dir, reporter, resume, evaluations, devices, stream=False):
        # The loop's first work: the evaluations built (their reference) before the compiling status.
        assert isinstance(evaluations, per_epoch.Every)
        evaluations.build(config, None, data_dir)
        reporter.status("compiling the training program")
        reporter.stop()
        return train.Outcome(ckpt, "done", 0, 0, [])

    monkeypatch.setattr(train, "train", start_only)
    result = CliRunner().invoke(app, ["train", "mnist", "--epochs", "1", "--eval-every", "1", "--ckpt", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("features of the mnist test split"))
    assert "1010/1010" in line and "ETA" in line, result.output
