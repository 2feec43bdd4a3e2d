"""`gancli sample` and `gancli inspect` on one tiny checkpoint trained once for the module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import files, report, sampling, train
from gancli.cli import app
from helpers import random_images, tiny

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def train_images():
    return random_images(256)


# The images of train_images, in place of the TFDS-backed loader, for training and --nearest.
pytestmark = pytest.mark.usefixtures("fake_data_for_module")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Two epochs of 20 iterations: checkpoints at steps 20 and 40, two metrics lines."""
    path = tmp_path_factory.mktemp("runs") / "run"
    # A checkpoint every epoch (the default is every few minutes): the damage tests fall back to the older one.
    train.train(tiny(epochs=2, ckpt_every=1), path)
    return path


@pytest.fixture
def copy_of(run_dir, tmp_path):
    """A fresh copy of the trained run (to damage or add to), at tmp_path/name."""

    def make(name: str = "run") -> Path:
        return Path(shutil.copytree(run_dir, tmp_path / name))

    return make


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return dict(f)


def png_shape(path: Path) -> tuple[int, ...]:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path).shape


def enlarged(h: int, w: int) -> tuple[int, int]:
    """A grid's PNG size: small grids are enlarged by a whole factor up to images.MIN_WIDTH."""
    from gancli import images

    scale = max(1, images.MIN_WIDTH // w)
    return h * scale, w * scale


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    text = result.output.strip()
    assert "Traceback" not in text and "\n" not in text and text.startswith("error:"), text
    for f in fragments:
        assert f in text, text
    return text


# --- sample ---


def test_sample_writes_npz_and_png_into_a_new_folder(run_dir, tmp_path):
    out = tmp_path / "new" / "deeper" / "s.npz"
    result = ok("sample", run_dir, "--n", 7, "--seed", 3, "--out", out)
    png = out.with_suffix(".png")
    assert str(out) in result.stdout and str(png) in result.stdout
    got = load_npz(out)
    assert got["samples"].shape == (7, 4, 4, 1) and got["samples"].dtype == np.float32
    assert 0.0 <= got["samples"].min() and got["samples"].max() <= 1.0
    assert got["z"].shape == (7, 4) and int(got["seed"]) == 3 and int(got["step"]) == 40
    # The stored z really are what the generator was given.
    run = sampling.restore(run_dir)
    np.testing.assert_allclose(sampling.decode(run, got["z"]), got["samples"], atol=1e-6)
    assert png_shape(png)[:2] == enlarged(3 * 5 + 1, 3 * 5 + 1)  # 7 tiles of 4x4 in a 3x3 grid, 1-pixel gaps
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.npz", "s.png"]  # no temporary files left


def test_seed_makes_samples_reproducible(run_dir, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        ok("sample", run_dir, "--n", 20, "--seed", seed, "--out", tmp_path / f"{name}.npz")
    a, b, c = (load_npz(tmp_path / f"{name}.npz")["samples"] for name in "abc")
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_default_path_many_samples_and_a_bounded_grid(run_dir):
    result = ok("sample", run_dir, "--n", 100_000, "--seed", 1)
    out = run_dir / "samples" / "sample_step40_seed1_n100000.npz"
    assert str(out) in result.stdout and "first 100" in result.stdout
    samples = load_npz(out)["samples"]
    assert samples.shape == (100_000, 4, 4, 1) and np.isfinite(samples).all()
    # The first samples do not depend on how many are drawn, and the PNG shows only 100 of them.
    ok("sample", run_dir, "--n", 10, "--seed", 1)
    assert np.array_equal(load_npz(run_dir / "samples" / "sample_step40_seed1_n10.npz")["samples"], samples[:10])
    assert png_shape(out.with_suffix(".png"))[:2] == enlarged(51, 51)


def test_existing_output_is_kept_unless_forced(run_dir, tmp_path):
    out = tmp_path / "s.npz"
    ok("sample", run_dir, "--n", 5, "--seed", 0, "--out", out)
    before = out.read_bytes(), out.with_suffix(".png").read_bytes()
    one_line_error(invoke("sample", run_dir, "--n", 6, "--seed", 1, "--out", out), "already exists", "--force")
    assert (out.read_bytes(), out.with_suffix(".png").read_bytes()) == before
    ok("sample", run_dir, "--n", 6, "--seed", 1, "--out", out, "--force")
    assert load_npz(out)["samples"].shape[0] == 6


def test_nearest_matches_brute_force(run_dir, tmp_path, train_images):
    out = tmp_path / "nn.npz"
    result = ok("sample", run_dir, "--n", 30, "--seed", 2, "--nearest", "--out", out)
    assert "nearest training example" in result.stdout
    got = load_npz(out)
    plain = sampling.draw(sampling.restore(run_dir), 30, 2)["samples"]
    assert np.array_equal(got["samples"], plain)  # --nearest changes what is saved, not the samples
    x = got["samples"].reshape(30, -1).astype(np.float64)
    t = train_images.reshape(200, -1).astype(np.float64)
    d = np.sqrt(((x[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    assert got["nearest_index"].dtype == np.int64 and got["nearest_distance"].shape == (30,)
    np.testing.assert_allclose(got["nearest_distance"], d.min(1), rtol=1e-4)
    chosen = d[np.arange(30), got["nearest_index"]]
    np.testing.assert_allclose(chosen, d.min(1), rtol=1e-4)  # an argmin, even if float32 broke a near tie
    assert (got["nearest_index"] == d.argmin(1)).mean() > 0.9
    # 30 pairs, 6 a row: each tile is sample | line | neighbour | gap = 12 pixels wide, plus the grid's gaps
    assert png_shape(out.with_suffix(".png"))[:2] == enlarged(5 * 5 + 1, 6 * 13 + 1)


def test_interpolation_rows_end_at_g_of_their_latents(run_dir, tmp_path):
    out = tmp_path / "interp.npz"
    ok("sample", run_dir, "--interpolate", 5, "--n", 3, "--seed", 4, "--out", out)
    got = load_npz(out)
    assert got["samples"].shape == (3, 5, 4, 4, 1) and got["z"].shape == (3, 5, 4)
    run = sampling.restore(run_dir)
    ends = np.asarray(sampling.latents(sampling.game_of(run.config, run.metadata), 6, 4)).reshape(3, 2, 4)
    np.testing.assert_array_equal(got["z"][:, 0], ends[:, 0])
    np.testing.assert_array_equal(got["z"][:, -1], ends[:, 1])
    np.testing.assert_allclose(got["z"][:, 2], (ends[:, 0] + ends[:, 1]) / 2, atol=1e-6)
    np.testing.assert_allclose(got["samples"][:, 0], sampling.decode(run, ends[:, 0]), atol=1e-6)
    np.testing.assert_allclose(got["samples"][:, -1], sampling.decode(run, ends[:, 1]), atol=1e-6)
    assert png_shape(out.with_suffix(".png"))[:2] == enlarged(3 * 5 + 1, 5 * 5 + 1)  # one row per pair of latents


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--n", "0"], ["--n must be >= 1", "got 0"]),
        (["--n", "-4"], ["--n must be >= 1"]),
        (["--interpolate", "1"], ["at least 2 steps"]),
        (["--interpolate", "3", "--nearest"], ["cannot be combined"]),
        (["--out", "{tmp}"], ["is a folder"]),
        (["--out", "{tmp}/x.png"], ["must end in .npz"]),
    ],
)
def test_bad_sample_options(run_dir, tmp_path, args, fragments):
    args = [a.format(tmp=tmp_path) for a in args]
    one_line_error(invoke("sample", run_dir, *args), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_fails_before_drawing(run_dir, monkeypatch, unwritable_dir):
    def draw(*args, **kwargs):
        raise AssertionError("drew samples before the output folder was checked")

    monkeypatch.setattr(sampling, "draw", draw)
    for out in (unwritable_dir / "s.npz", unwritable_dir / "new" / "s.npz"):
        one_line_error(invoke("sample", run_dir, "--n", 5, "--out", out), f"cannot write into {out.parent}")
    one_line_error(invoke("sample", run_dir, "--out", Path(__file__) / "s.npz"), "is a file, not a folder")


def test_sample_counts_beyond_memory_or_disk_are_refused_before_drawing(run_dir, tmp_path, monkeypatch):
    # A sample of the tiny run and its z take (16 + 4) * 4 = 80 bytes; --n 100000000000 once ran out of memory.
    help_text = " ".join(invoke("sample", "--help").output.replace("│", " ").split())  # Rich boxes the help
    assert "At most what fits in 80% of the free memory and on the output's disk" in help_text
    monkeypatch.setattr(files, "available_memory", lambda: 100_000, raising=False)
    one_line_error(invoke("sample", run_dir, "--n", 2_000, "--out", tmp_path / "a.npz"),
                   "2,000 samples need 160 kB of memory (80 bytes each), but 100 kB is available: at most 1,000 fit")
    one_line_error(invoke("sample", run_dir, "--interpolate", 10, "--n", 200, "--out", tmp_path / "b.npz"),
                   "2,000 samples need", "at most 1,000 fit")
    one_line_error(invoke("sample", run_dir, "--n", 1_000, "--nearest", "--out", tmp_path / "c.npz"),
                   "(92 bytes each)", "at most 869 fit")
    ok("sample", run_dir, "--n", 1_000, "--out", tmp_path / "d.npz")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=50_000))
    one_line_error(invoke("sample", run_dir, "--n", 1_000, "--out", tmp_path / "e.npz"),
                   f"80 kB would be written into {tmp_path}, but its disk has 50 kB free")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "d.png"]


def test_sample_seed_beyond_32_bits_is_refused(run_dir, tmp_path):
    # A JAX key holds 32 bits: seed 2**32 would give seed 0's samples, and 2**63 a traceback.
    for seed in (-1, 2**32, 2**64):
        one_line_error(invoke("sample", run_dir, "--seed", seed, "--out", tmp_path / "s.npz"), "--seed must be in [0, 4,294,967,295]")
    assert list(tmp_path.iterdir()) == []


def test_odd_names_show_as_themselves_and_diverged_samples_are_flagged(copy_of, tmp_path, monkeypatch):
    run = copy_of("run [red]x")  # Rich markup once ate "[red]" from printed paths
    out = tmp_path / "[bold]s.npz"
    result = ok("sample", run, "--n", 4, "--out", out)
    assert f"{run}: 4 samples" in result.stdout and f"npz: {out}" in result.stdout and "warning" not in result.output
    decode = sampling.decode
    monkeypatch.setattr(sampling, "decode", lambda r, z, labels=None: np.where(np.arange(len(z))[:, None, None, None] == 1, np.nan, decode(r, z)))
    result = ok("sample", run, "--n", 4, "--out", tmp_path / "nan.npz")
    assert "warning: 1 of the 4 samples hold NaN or inf: the generator has diverged" in result.output
    assert np.isnan(load_npz(tmp_path / "nan.npz")["samples"][1]).all()


def test_multi_seed_folder_is_sampled_seed_by_seed(copy_of, tmp_path):
    root = tmp_path / "multi"
    for i in range(2):
        copy_of(f"multi/seed-{i}")
    result = ok("sample", root, "--n", 4, "--out", tmp_path / "out" / "s.npz")
    for i in range(2):
        out = tmp_path / "out" / f"s.seed-{i}.npz"
        assert str(out) in result.stdout and load_npz(out)["samples"].shape == (4, 4, 4, 1)
    summary = json.loads(ok("inspect", root, "--json").stdout)
    assert [Path(s["path"]).name for s in summary["seeds"]] == ["seed-0", "seed-1"]
    assert all(s["epoch"] == 2 for s in summary["seeds"])
    text = "".join(ok("inspect", root, "--no-curves").stdout.split())
    assert "2seeds" in text and "seed-0" in text and "seed-1" in text and "notwritten" in text


# --- inspect ---


def test_inspect_json_and_curves(copy_of):
    run = copy_of()
    result = ok("inspect", run, "--json")
    summary = json.loads(result.stdout)  # stdout is JSON and nothing else
    assert summary["epoch"] == 2 and summary["step"] == 40 and summary["checkpoints"] == [20, 40]
    assert summary["params"] == {"generator": 4 * 16 + 16 + 16 * 16 + 16, "discriminator": 16 * 16 + 16 + 8 + 1}
    assert summary["dataset"] == "tiny" and summary["provenance"]["source"] == "test"
    assert summary["config"]["generator"]["z_dim"] == 4 and summary["data_shape"] == [4, 4, 1]
    assert {"jax", "flax"} <= set(summary["versions"]) and summary["device"]
    m = summary["metrics"]
    assert m["epochs"] == 2 and [r["epoch"] for r in m["rows"]] == [1, 2] and m["last"]["step"] == 40
    assert m["min"]["d_loss"]["value"] <= m["max"]["d_loss"]["value"]
    assert summary["parzen"] is None and summary["d_rejects_since"] is None
    curves = Path(summary["curves"])
    assert curves == run / "curves.png" and png_shape(curves)[0] > 100


def test_inspect_tells_of_the_tensorboard_events(copy_of, tmp_path):
    from gancli import events

    run = copy_of()
    (newest,) = events.files(run)
    e = json.loads(ok("inspect", run, "--json", "--no-curves").stdout)["events"]
    assert (e["files"], e["newest"], e["tensorboard"]) == (1, str(newest), f"tensorboard --logdir {run}")
    squashed = lambda text: "".join(text.split())  # long paths fold over lines
    text = squashed(ok("inspect", run, "--no-curves").stdout)
    assert squashed(f"events 1 file, newest {newest}") in text and squashed(f"watch with: tensorboard --logdir {run}") in text
    # A multi-seed folder: each seed's events, and the command that shows them all together.
    root = tmp_path / "multi"
    for i in range(2):
        shutil.copytree(run, root / f"seed-{i}")
    summary = json.loads(ok("inspect", root, "--json", "--no-curves").stdout)
    assert summary["events"]["files"] == 2 and summary["events"]["tensorboard"] == f"tensorboard --logdir {root}"
    assert [s["events"]["files"] for s in summary["seeds"]] == [1, 1]
    for path in events.files(root / "seed-0") + events.files(root / "seed-1"):
        path.unlink()
    assert json.loads(ok("inspect", root, "--json", "--no-curves").stdout)["events"] == {
        "files": 0, "newest": None, "newest_at": None, "tensorboard": f"tensorboard --logdir {root}"}
    assert "eventsnone" in squashed(ok("inspect", root, "--no-curves").stdout)


def test_inspect_warns_of_a_run_whose_d_rejects_every_sample_since_an_epoch(copy_of):
    run = copy_of()
    # D(G(z)) dips under 0.001 at epoch 2, recovers at 3, and stays under from epoch 4 on.
    d_fake = [0.3, 0.0005, 0.002, 0.0006, 0.0004]
    lines = [json.dumps({"epoch": e, "step": 20 * e, "d_loss": 0.01, "g_loss": 9.0, "d_real": 0.999, "d_fake": f,
                         "it_per_s": 100.0, "lr": 0.1, "momentum": 0.5}) for e, f in enumerate(d_fake, 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert json.loads(ok("inspect", run, "--json", "--no-curves").stdout)["d_rejects_since"] == 4
    text = " ".join(ok("inspect", run, "--no-curves").stdout.split())
    assert "D has rejected every generated sample since epoch 4" in text and "likely failed" in text
    # A last epoch above the line clears it.
    (run / "metrics.jsonl").write_text("\n".join(lines + [lines[0].replace('"epoch": 1,', '"epoch": 6,')]) + "\n")
    assert json.loads(ok("inspect", run, "--json", "--no-curves").stdout)["d_rejects_since"] is None
    assert "likely failed" not in ok("inspect", run, "--no-curves").stdout


def _result(mean: float, stderr: float, **at) -> dict:
    return {"label": "run", "source": "run", "epoch": None, "step": None, "sigmas": [0.1, 0.2], "valid_ll": [1.0, 2.0],
            "sigma": 0.2, "mean": mean, "stderr": stderr, "n_samples": 100, "n_valid": 50, "n_test": 200, "dim": 16, **at}


def test_inspect_shows_the_parzen_report_and_a_long_history(copy_of):
    run = copy_of()
    calibration = {**_result(244.6, 2.1), "label": "10,000 training images"}
    rep = report.parzen_report("mnist", [_result(225.31, 2.05, epoch=1, step=20)], calibration, sigmas=[0.1, 0.2])
    (run / "reports").mkdir()
    (run / "reports" / "parzen.json").write_text(json.dumps(rep))
    lines = [json.dumps({"epoch": e, "step": 20 * e, "d_loss": 0.6 + e / 1000, "g_loss": 0.9, "d_real": 0.5,
                         "d_fake": 0.4, "it_per_s": 100.0, "lr": 0.1, "momentum": 0.5}) for e in range(1, 101)]
    (run / "metrics.jsonl").write_text("\n".join(lines[:50] + ["{torn line"] + lines[50:]) + "\n")
    summary = json.loads(ok("inspect", run, "--json").stdout)
    headline = summary["parzen"]["headline"]
    assert headline["models"] == [{"label": "run", "mean": 225.31, "stderr": 2.05, "sigma": 0.2, "epoch": 1, "step": 20,
                                   "n_samples": 100, "generator_ema": None}]
    assert headline["calibration"]["mean"] == 244.6 and headline["across_seeds"] is None
    m = summary["metrics"]
    assert m["epochs"] == 100 and m["unreadable_lines"] == 1 and len(m["rows"]) == 15
    assert m["rows"][0]["epoch"] == 1 and m["rows"][-1]["epoch"] == 100
    assert m["min"]["d_loss"]["epoch"] == 1 and m["max"]["d_loss"]["epoch"] == 100
    text = "".join(ok("inspect", run).stdout.split())  # Rich folds long lines at the terminal's width
    assert "parzen225.3±2.0nats(sigma0.2,100samples,atepoch1,step20)" in text or "parzen225.3±2.1nats" in text
    assert "calibration,10,000trainingimagesasthemodel:244.6±2.1" in text
    assert "thecheckpointisnowatstep40:run'ganclievaluate'again" in text  # the report is of step 20
    assert "100epochs,15shown" in text and "G352,D281" in text and str(run / "curves.png") in text


def test_inspect_shows_the_models_own_parzen_score(copy_of):
    # inspect once showed the calibration row's mean (the first "mean" in the flattened JSON), e.g. 244.6 for
    # any MNIST run. The real evaluate, then inspect, on one run: inspect's figure is the model's.
    run = copy_of()
    ok("evaluate", run, "--n-samples", 100, "--n-valid", 50, "--sigmas", "0.1,0.2,0.4")
    written = json.loads((run / "reports" / "parzen.json").read_text())
    (model,), cal = written["models"], written["calibration"]
    assert abs(model["mean"] - cal["mean"]) > 1  # the tiny run's samples are far from its training images
    headline = json.loads(ok("inspect", run, "--json", "--no-curves").stdout)["parzen"]["headline"]
    assert headline["models"][0]["mean"] == model["mean"] and headline["models"][0]["step"] == 40
    assert headline["calibration"]["mean"] == cal["mean"]
    text = " ".join(ok("inspect", run, "--no-curves").stdout.split())
    assert f"parzen {report.format_ll(model['mean'], model['stderr'])} nats (sigma" in text
    assert f"calibration, 100 training images as the model: {report.format_ll(cal['mean'], cal['stderr'])}" in text


def test_inspect_says_which_generator_the_parzen_report_of_a_run_with_an_ema_measured(copy_of, tmp_path):
    # reproduce_table1.sh evaluates the average, then G itself (--no-ema): the run's latest report is then G's.
    run = tmp_path / "ema"
    train.train(tiny(epochs=1, ema=0.9), run)
    measure = ("--n-samples", 100, "--n-valid", 50, "--sigmas", "0.1,0.2", "--no-calibration")
    for flag, which in (((), "nats of the EMA of G (sigma"), (("--no-ema",), "nats of G itself (--no-ema) (sigma")):
        ok("evaluate", run, *measure, *flag)
        assert which in " ".join(ok("inspect", run, "--no-curves").stdout.split())
    plain = copy_of()
    ok("evaluate", plain, *measure)
    text = " ".join(ok("inspect", plain, "--no-curves").stdout.split())
    assert "nats (sigma" in text and "EMA" not in text and "G itself" not in text


def test_inspect_summarises_a_multi_seed_report_and_names_a_foreign_one(copy_of, tmp_path):
    run = copy_of()
    (run / "reports").mkdir()
    two = report.parzen_report("mnist", [_result(200.0, 2.0), _result(210.0, 2.0)], None, sigmas=[0.1, 0.2])
    (run / "reports" / "parzen.json").write_text(json.dumps(two))
    text = " ".join(ok("inspect", run, "--no-curves").stdout.split())
    assert "parzen 205.0 ± 7.1 (std over 2 seeds) nats" in text
    (run / "reports" / "parzen.json").write_text(json.dumps({"model": {"mean": 225.31}}))
    text = " ".join(ok("inspect", run, "--no-curves").stdout.split())
    assert "parzen.json: not a Parzen report written by 'gancli evaluate'" in text


def test_inspect_prints_config_values_exactly(run_dir):
    # Schedule constants at full precision: lr_decay 1.000004 once showed as 1.
    text = "".join(ok("inspect", run_dir, "--no-curves").stdout.split())
    assert "lr_decay=1.000004," in text and "lr_min=1e-06," in text and "init_scale=0.005" in text


# --- folders that are not (whole) checkpoints ---


def _truncate_state(step_dir: Path):
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 8:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _foreign_config(step_dir: Path):
    path = step_dir / "config" / "metadata"
    path.write_text(path.read_text().replace('"z_dim": 4', '"z_dim": "four"'))


def _empty(run: Path):
    for p in run.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


DAMAGE = {
    "empty folder": (_empty, ["no gancli checkpoint"]),
    "random files": (lambda run: [shutil.rmtree(run / "checkpoints"), (run / "notes.txt").write_text("hi"),
                                  (run / "x.bin").write_bytes(np.random.bytes(64))], ["no gancli checkpoint"]),
    "truncated state": (lambda run: _truncate_state(run / "checkpoints" / "40"), ["cannot restore", "checkpoints/40"]),
    "deleted state": (lambda run: shutil.rmtree(run / "checkpoints" / "40" / "state"), ["cannot restore"]),
    "empty step folder": (lambda run: [shutil.rmtree(run / "checkpoints" / "40"), (run / "checkpoints" / "40").mkdir()],
                          ["incomplete"]),
    "corrupt config": (lambda run: (run / "checkpoints" / "40" / "config" / "metadata").write_text("{not json"),
                       ["corrupt"]),
    "foreign config": (lambda run: _foreign_config(run / "checkpoints" / "40"), ["cannot use"]),
}


@pytest.mark.parametrize("command", ["sample", "inspect"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_folders_fail_in_one_line(copy_of, command, damage):
    run = copy_of()
    shutil.rmtree(run / "checkpoints" / "20")  # with an older checkpoint the commands fall back to it (test_stops.py)
    mutate, fragments = DAMAGE[damage]
    mutate(run)
    one_line_error(invoke(command, run), *fragments)


@pytest.mark.parametrize("command", ["sample", "inspect"])
def test_missing_path_and_file_fail_in_one_line(tmp_path, command):
    one_line_error(invoke(command, tmp_path / "nowhere"), "does not exist")
    (tmp_path / "file").write_text("x")
    one_line_error(invoke(command, tmp_path / "file"), "is not a folder")
