"""gancli compare on two tiny runs trained here with different settings: the fields that differ, each run's latest
metrics (one seed alone, two seeds as mean ± standard error), their latest sample-quality reports, the overlaid
curves, --json, and bad input."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
from matplotlib import image as mpimg
from typer.testing import CliRunner

from gancli import compare, rundir, train
from gancli.cli import app
from helpers import random_images, tiny, use_fake_data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A: one seed at lr 0.1; B: two seeds at lr 0.05 (each 2 epochs of the tiny model)."""
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        use_fake_data(mp, random_images(256), np.zeros(200, np.int64))
        train.train(tiny(epochs=2), root / "a")
        train.train(tiny(epochs=2, seeds=2, **{"optimizer.lr": 0.05}), root / "b")
    return root / "a", root / "b"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def last(run_dir, key):
    return json.loads((run_dir / rundir.METRICS).read_text().splitlines()[-1])[key]


def test_the_fields_that_differ_and_the_latest_metrics(runs, tmp_path):
    a, b = runs
    result = compare.compare([a, b], tmp_path / "c.png")
    assert result["differences"] == [{"field": "optimizer.lr", "values": [0.1, 0.05]}, {"field": "seeds", "values": [1, 2]}]
    assert [(r["seeds"], r["epoch"]) for r in result["runs"]] == [(1, 2), (2, 2)]
    d_loss = next(m for m in result["metrics"] if m["name"] == "d_loss")["values"]
    assert d_loss[0] == {"mean": last(a, "d_loss"), "stderr": None, "n": 1}
    seeds = [last(b / f"seed-{s}", "d_loss") for s in range(2)]
    assert seeds[0] != seeds[1]
    assert d_loss[1]["n"] == 2 and d_loss[1]["mean"] == pytest.approx(sum(seeds) / 2)
    assert d_loss[1]["stderr"] == pytest.approx(abs(seeds[0] - seeds[1]) / 2)  # stdev of two / sqrt(2)
    assert {"g_loss", "d_real", "d_fake", "it_per_s"} <= {m["name"] for m in result["metrics"]}
    assert result["parzen"] == [None, None]


def test_the_curves_are_one_png_of_every_training_metric(runs, tmp_path):
    result = compare.compare(list(runs), tmp_path / "c.png")
    assert result["curves"] == str(tmp_path / "c.png")
    picture = mpimg.imread(tmp_path / "c.png")
    assert picture.shape[0] > 300 and picture.shape[1] > 800 and picture.std() > 0.01
    headings = [heading for heading, _ in compare.panels([compare.load(r) for r in runs])]
    assert headings[:4] == ["D loss", "G loss", "D(x)", "D(G(z))"]
    [(_, lines)] = [p for p in compare.panels([compare.load(r) for r in runs]) if p[0] == "D loss"]
    assert [(epochs, errs is None) for _, epochs, _, errs in lines] == [([1, 2], True), ([1, 2], False)]
    assert compare.compare(list(runs), None)["curves"] is None and not (tmp_path / "compare.png").exists()


def test_the_command_prints_both_tables_and_json(runs, tmp_path):
    a, b = runs
    shown = invoke("compare", a, b, "--out", tmp_path / "c.png")
    assert shown.exit_code == 0, shown.output
    assert "config fields that differ" in shown.output and "optimizer.lr" in shown.output
    assert " ± " in shown.output and "(n 2)" in shown.output and (tmp_path / "c.png").is_file()
    out = invoke("compare", a, b, "--json", "--no-curves")
    assert out.exit_code == 0
    parsed = json.loads(out.output)
    assert parsed == compare.compare([a, b], None)
    assert math.isclose(parsed["metrics"][0]["values"][1]["stderr"],
                        statistics.stdev([last(b / f"seed-{s}", parsed["metrics"][0]["name"]) for s in range(2)]) / math.sqrt(2))


def test_bad_input_is_one_line_and_a_non_zero_exit(runs, tmp_path):
    a, _ = runs
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("hi")
    for args, words in (
        ((a,), "compare needs two runs or more, got 1"),
        ((a, tmp_path / "notes"), f"{tmp_path / 'notes'} is not a gancli run"),
        ((a, tmp_path / "missing"), f"{tmp_path / 'missing'} does not exist"),
        ((a, a), "is given twice"),
    ):
        result = invoke("compare", *args, "--no-curves")
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output


def write_metrics_report(run_dir, figures: list[dict], n_samples: int = 1000):
    """A sample-quality report in run_dir/reports as evaluate --metrics writes it: one model per seed."""
    from gancli import report

    header = {"dataset": "tiny", "metrics": ["fid", "classes"], "reference": {"feature_net": {"version": "test-net"}},
              "settings": {}}
    models = [{"label": f"seed-{i}", "source": str(run_dir), "epoch": 2, "step": 40, "n": n_samples, **f}
              for i, f in enumerate(figures)]
    rep = report.metrics_report(header, models, None, {"n_samples": n_samples, "source": "G", "seed": 0})
    (run_dir / "reports").mkdir(exist_ok=True)
    (run_dir / "reports" / "metrics.json").write_text(json.dumps(rep))


def test_the_latest_sample_quality_report_of_each_run(runs, tmp_path):
    import shutil

    a, b = (shutil.copytree(r, tmp_path / r.name) for r in runs)
    write_metrics_report(a, [{"fid": 12.5, "classes": {"covered": 9, "kl_uniform": 0.25}}])
    write_metrics_report(b, [{"fid": 10.0, "classes": {"covered": 8, "kl_uniform": 0.5}},
                             {"fid": 14.0, "classes": {"covered": 10, "kl_uniform": 0.5}}], n_samples=2000)
    result = compare.compare([a, b], None)
    qa, qb = result["sample_quality"]
    assert (qa["path"], qa["feature_net"], qa["n_samples"], qa["epoch"]) == (str(a / "reports" / "metrics.json"), "test-net", 1000, 2)
    assert qa["values"] == {"fid": {"mean": 12.5, "stderr": None, "n": 1}, "classes_covered": {"mean": 9, "stderr": None, "n": 1},
                            "classes_kl": {"mean": 0.25, "stderr": None, "n": 1}}
    assert qb["values"]["fid"]["mean"] == pytest.approx(12.0) and qb["values"]["fid"]["n"] == 2
    assert qb["values"]["fid"]["stderr"] == pytest.approx(statistics.stdev([10.0, 14.0]) / math.sqrt(2))  # = 2
    assert qb["values"]["classes_kl"]["stderr"] == 0

    shown = invoke("compare", a, b, "--no-curves")
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in shown.output.splitlines() if line.count("│") == 4}
    assert rows["report"] == ["epoch 2, 1,000 samples", "epoch 2, 2,000 samples"], shown.output
    assert rows["report: FD"] == ["12.5", "12.0 ± 2.0 (n 2)"], shown.output
    assert rows["report: classes"] == ["9", "9.0 ± 1.0 (n 2)"], shown.output
    parsed = json.loads(invoke("compare", a, b, "--json", "--no-curves").output)
    assert parsed["sample_quality"] == result["sample_quality"]

    # A run with no report shows none; an unreadable one says so.
    (b / "reports" / "metrics.json").write_text("{not json")
    found = compare.compare([a, runs[0]], None)["sample_quality"]
    assert found[1] is None
    damaged = compare.compare([a, b], None)
    assert damaged["sample_quality"][1] == {"path": str(b / "reports" / "metrics.json"), "error": "unreadable (JSONDecodeError)"}
    assert ["report", "epoch 2, 1,000 samples", "metrics.json: unreadable (JSONDecodeError)"] in compare.metric_rows(damaged)
    assert ["report: FD", "12.5", "-"] in compare.metric_rows(damaged)
    shown = invoke("compare", a, b, "--no-curves")
    assert shown.exit_code == 0 and "unreadable" in shown.output
