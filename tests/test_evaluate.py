"""`gancli evaluate`: samples files, checkpoints (faked), reports and bad input, on tiny synthetic data; and the
Table 1 curve example drawn from its reports."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import data, evaluate, files, parzen
from gancli.cli import app
from gancli.errors import GancliError

SHAPE = (4, 4, 1)
SIGMAS = (0.2, 0.4, 0.8)


def _images(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


SPLITS = {"train": _images(1, 300), "validation": _images(2, 60), "test": _images(3, 80)}


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    """A tiny 'mnist' in place of the real one: 300/60/80 images of 4x4x1."""

    def load(name, split, data_dir=None):
        if name != "mnist":
            raise GancliError(f"unknown dataset {name!r}")
        return SPLITS[split], np.zeros(len(SPLITS[split]), np.int64)

    monkeypatch.setattr(data, "load", load)


@pytest.fixture
def npz(tmp_path) -> Path:
    path = tmp_path / "gen.npz"
    np.savez(path, samples=_images(4, 120), other=np.zeros(3))
    return path


def fake_runs(monkeypatch, root: Path, seeds: int | None, dataset: str = "mnist", broken: bool = False):
    """Fake checkpoint/sampling: `seeds` seed folders (None: a single run) whose generators give noise."""
    from gancli import checkpoint, sampling

    paths = [root] if seeds is None else [root / f"seed-{i}" for i in range(seeds)]
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)

    def load_run(path, abstract_state=None):
        cfg = SimpleNamespace(dataset=dataset, seed=int(path.name[5:]) if path.name.startswith("seed-") else 0, conditional=False)
        return SimpleNamespace(path=Path(path), config=cfg, metadata={"epoch": 7, "step": 700}, state={})

    def draw(run, n, seed, label=None):
        out = np.random.default_rng(run.config.seed * 100 + seed).random((n, *SHAPE), dtype=np.float32)
        if broken:
            out[3, 0, 0, 0] = np.nan
        return {"samples": out}

    monkeypatch.setattr(checkpoint, "find_runs", lambda path: paths)
    monkeypatch.setattr(checkpoint, "load_run", load_run)
    monkeypatch.setattr(sampling, "draw", draw)
    monkeypatch.setattr(sampling, "check_draw", lambda run, n: None)
    return paths


def invoke(*args):
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    return result, result.output


def test_samples_file_report(npz):
    ev = evaluate.evaluate_samples(npz, [evaluate.Parzen(sigmas=SIGMAS, n_valid=50)])["parzen"]
    expected = parzen.protocol(_images(4, 120), SPLITS["validation"][:50], SPLITS["test"], SIGMAS)
    (model,) = ev.models
    assert model["mean"] == pytest.approx(expected.mean) and model["sigma"] == expected.sigma
    assert ev.paths == {k: npz.parent / f"parzen.{k}" for k in ("json", "md", "png")}
    rep = json.loads(ev.paths["json"].read_text())
    assert rep["models"][0]["stderr"] == pytest.approx(expected.stderr)
    assert rep["protocol"]["n_valid"] == 50 and rep["protocol"]["n_test"] == 80
    assert rep["models"][0]["valid_ll"] == pytest.approx(list(expected.valid_ll))
    assert [p["model"] for p in rep["paper_table1"]] == ["DBN", "Stacked CAE", "Deep GSN", "Adversarial nets"]
    assert rep["paper_table1"][3] == {"model": "Adversarial nets", "mean": 225.0, "stderr": 2.0}
    # Calibration: the first 120 training images (as many as the samples) scored by the same protocol.
    cal = parzen.protocol(SPLITS["train"][:120], SPLITS["validation"][:50], SPLITS["test"], SIGMAS)
    assert rep["calibration"]["mean"] == pytest.approx(cal.mean) and rep["calibration"]["n_samples"] == 120
    md = ev.paths["md"].read_text()
    assert "| Adversarial nets (paper, Table 1) |  | 225 ± 2 |" in md
    assert "Theis et al. 2016" in md and "![validation log-likelihood against sigma](parzen.png)" in md
    assert ev.paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npz_key_choice_and_npy(tmp_path):
    only = tmp_path / "only.npz"
    np.savez(only, x=_images(5, 30))
    assert evaluate.load_samples(only).shape == (30, *SHAPE)
    npy = tmp_path / "s.npy"
    np.save(npy, _images(5, 30).reshape(30, -1))
    flat = evaluate.check_samples(evaluate.load_samples(npy), SHAPE, "s")
    assert flat.shape == (30, *SHAPE)
    assert evaluate.check_samples(_images(5, 3)[..., 0], SHAPE, "hw").shape == (3, *SHAPE)


def test_out_and_n_samples_and_no_calibration(npz, tmp_path):
    ev = evaluate.evaluate_samples(npz, [evaluate.Parzen(sigmas=SIGMAS, n_valid=20)], n_samples=40, calibration=False, out=tmp_path / "r")["parzen"]
    assert ev.calibration is None and ev.models[0]["n_samples"] == 40
    assert ev.paths["json"] == tmp_path / "r" / "parzen.json" and ev.paths["png"].exists()


def test_checkpoint_single_run(monkeypatch, tmp_path):
    (run,) = fake_runs(monkeypatch, tmp_path / "ckpt", seeds=None)
    ev = evaluate.evaluate_checkpoint(run, [evaluate.Parzen(sigmas=SIGMAS, n_valid=40)], n_samples=100, seed=3)["parzen"]
    assert ev.paths["json"] == run / "reports" / "parzen.json" and ev.seed_paths == ()
    (model,) = json.loads(ev.paths["json"].read_text())["models"]
    assert (model["label"], model["epoch"], model["step"], model["n_samples"]) == ("ckpt", 7, 700, 100)
    drawn = np.random.default_rng(3).random((100, *SHAPE), dtype=np.float32)
    expected = parzen.protocol(drawn, SPLITS["validation"][:40], SPLITS["test"], SIGMAS)
    assert model["mean"] == pytest.approx(expected.mean)


def test_checkpoint_multi_seed(monkeypatch, tmp_path):
    root = tmp_path / "ckpt"
    seeds = fake_runs(monkeypatch, root, seeds=3)
    ev = evaluate.evaluate_checkpoint(root, [evaluate.Parzen(sigmas=SIGMAS, n_valid=30)], n_samples=60)["parzen"]
    means = [m["mean"] for m in ev.models]
    assert [m["label"] for m in ev.models] == ["seed-0", "seed-1", "seed-2"] and len(set(means)) == 3
    across = ev.report["across_seeds"]
    assert across["mean"] == pytest.approx(np.mean(means)) and across["std"] == pytest.approx(np.std(means, ddof=1))
    assert ev.paths["md"] == root / "reports" / "parzen.md"
    for seed, paths in zip(seeds, ev.seed_paths):
        assert paths["json"] == seed / "reports" / "parzen.json"
        assert json.loads(paths["json"].read_text())["models"][0]["label"] == seed.name
    assert "mean over 3 seeds" in ev.paths["md"].read_text()


def test_cli_samples(npz):
    result, out = invoke("--samples", npz, "--sigmas", "0.2,0.4", "--n-valid", "30")
    assert result.exit_code == 0, out
    assert "Parzen-window log-likelihood" in out and "calibration" in out and "Adversarial nets" in out
    assert str(npz.parent / "parzen.json") in out.replace("\n", "")
    rep = json.loads((npz.parent / "parzen.json").read_text())
    assert rep["protocol"]["sigmas"] == [0.2, 0.4] and rep["protocol"]["n_valid"] == 30


def test_cli_multi_seed(monkeypatch, tmp_path):
    fake_runs(monkeypatch, tmp_path / "ckpt", seeds=2)
    result, out = invoke(tmp_path / "ckpt", "--n-samples", "50", "--sigmas", "logspace:-1:0:3", "--n-valid", "20")
    assert result.exit_code == 0, out
    assert "mean over 2 seeds" in out and out.count("report:") == 3


def _write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif path.suffix == ".npy":
        np.save(path, content)
    else:
        np.savez(path, **content)
    return path


def _lying_npy(claimed=(10**12, *SHAPE)) -> bytes:
    """A .npy whose header claims 64 TB of float32 while 64 bytes follow (a MemoryError traceback once)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": claimed})
    return buf.getvalue() + bytes(64)


def _zipped(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, content)
    return buf.getvalue()


BAD_FILES = [
    ("wrong-shape.npz", {"samples": np.zeros((10, 5, 5, 1), np.float32)}, "shape"),
    ("nan.npy", np.full((10, *SHAPE), np.nan, np.float32), "NaN or inf"),
    ("inf.npy", np.where(_images(6, 10) > 0.5, np.inf, 0.5).astype(np.float32), "NaN or inf"),
    ("range.npy", _images(6, 10) * 255, r"\[0, 1\]"),
    ("negative.npy", _images(6, 10) - 0.5, r"\[0, 1\]"),
    ("empty.npy", b"", "empty"),
    ("text.npy", b"this is not an array\n", "not a .npy or .npz"),
    ("no-samples.npy", np.zeros((0, *SHAPE), np.float32), "no samples"),
    ("two.npz", {"a": np.zeros(3), "b": np.zeros(3)}, "name one 'samples'"),
    ("strings.npy", np.array([["a"] * 16] * 3), "must be numbers"),
    ("scalar.npy", np.float32(0.5), "no samples"),
    ("lying-header.npy", _lying_npy(), "truncated or damaged: its header says"),
    ("lying-header.npz", _zipped("samples.npy", _lying_npy()), "truncated or damaged: its header says"),
    ("cut-short.npy", _lying_npy((10, *SHAPE)), "only 64 B of data follow"),
    ("not-npy-member.npz", _zipped("samples.npy", b"hello"), "not a .npy or .npz"),
    ("float16.npy", _images(6, 10).astype(np.float16), None),  # not bad: any real or integer dtype is taken
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_samples_files(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    if message is None:
        assert evaluate.evaluate_samples(path, [evaluate.Parzen(sigmas=SIGMAS, n_valid=10)])["parzen"].models[0]["n_samples"] == 10
        return
    with pytest.raises(GancliError, match=message):
        evaluate.evaluate_samples(path, [evaluate.Parzen(sigmas=SIGMAS, n_valid=10)])["parzen"]
    result, out = invoke("--samples", path, "--sigmas", "0.5", "--n-valid", "10")
    assert result.exit_code == 1
    assert out.startswith("error:") and len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert not (tmp_path / "parzen.json").exists()


def test_object_array_needs_pickle(tmp_path):
    objects = np.array([{"a": 1}], dtype=object)
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", samples=objects)
    for path in (tmp_path / "obj.npy", tmp_path / "obj.npz"):
        with pytest.raises(GancliError, match="Python objects"):
            evaluate.load_samples(path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "missing.npz"], "does not exist"),
        (["--samples", "{dir}"], "is a folder: give a .npy or .npz file"),
        (["--samples", "/dev/null"], "is not a regular file"),
        (["--samples", "{npz}", "--out", "{npz}", "--n-valid", "10"], "is a file, not a folder"),
        (["--samples", "{npz}", "--n-samples", "500", "--n-valid", "10"], "fewer than --n-samples"),
        (["--samples", "{npz}", "--n-samples", "0"], "n-samples must be >= 1"),
        (["--samples", "{npz}", "--n-valid", "61"], "exceeds the 60 validation images"),
        (["--samples", "{npz}", "--n-valid", "0"], "n-valid must be >= 1"),
        (["--samples", "{npz}", "--sigmas", "0.1,zero"], "bad --sigmas"),
        (["--samples", "{npz}", "--sigmas", "-1"], "at least 1e-06"),
        (["--samples", "{npz}", "--sigmas", "0.1,1e-300"], "at least 1e-06"),  # once a NaN result
        (["--samples", "{npz}", "--sigmas", "logspace:-1:0:1000000000"], "between 1 and 100 sigmas"),  # once a hang
        (["--samples", "{npz}", "--dataset", "nosuch"], "unknown dataset"),
        (["--samples", "{npz}", "somewhere"], "not both"),
        (["--samples", "{npz}", "--no-parzen"], "nothing to evaluate"),
    ],
)
def test_bad_options(npz, args, message):
    result, out = invoke(*(a.format(npz=npz, dir=npz.parent) for a in args))
    assert result.exit_code == 1 and message in out and len(out.strip().splitlines()) == 1, out


def test_checkpoint_errors(monkeypatch, tmp_path):
    fake_runs(monkeypatch, tmp_path / "ckpt", seeds=None, dataset="mnist", broken=True)
    with pytest.raises(GancliError, match="generator of .* 1 of 50 samples contain NaN"):
        evaluate.evaluate_checkpoint(tmp_path / "ckpt", [evaluate.Parzen(sigmas=SIGMAS, n_valid=10)], n_samples=50)["parzen"]
    result, out = invoke(tmp_path / "ckpt", "--dataset", "fashion_mnist")
    assert result.exit_code == 1 and "trained on mnist, not fashion_mnist" in out


def test_generator_range_is_its_own(monkeypatch, tmp_path):
    # A linear-output generator may leave [0, 1]; that is a model property, not bad input.
    fake_runs(monkeypatch, tmp_path / "ckpt", seeds=None)
    from gancli import sampling

    monkeypatch.setattr(sampling, "draw", lambda run, n, seed, label=None: {"samples": _images(9, n) * 1.2 - 0.1})
    ev = evaluate.evaluate_checkpoint(tmp_path / "ckpt", [evaluate.Parzen(sigmas=SIGMAS, n_valid=10)], n_samples=40, calibration=False)["parzen"]
    assert math.isfinite(ev.models[0]["mean"])


def test_missing_and_foreign_checkpoints(tmp_path, monkeypatch):
    # The real checkpoint module: a folder that does not exist, and one that gancli did not write.
    monkeypatch.chdir(tmp_path)
    result, out = invoke()
    assert result.exit_code == 1 and "ckpt does not exist" in out and len(out.strip().splitlines()) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"\0" * 10)
    result, out = invoke(foreign)
    assert result.exit_code == 1 and "no gancli checkpoint" in out and "Traceback" not in out


def test_stderr_is_population_std():
    # The protocol's standard error uses ddof=0, like the original numpy code.
    mu, x = _images(7, 50).reshape(50, -1), _images(8, 40).reshape(40, -1)
    r = parzen.protocol(mu, x, x, (0.3,))
    ll = parzen.log_likelihood(x, mu, 0.3)
    assert r.stderr == pytest.approx(ll.std(ddof=0) / math.sqrt(40))


def test_unwritable_report_folder_fails_before_the_work(npz, monkeypatch, tmp_path, unwritable_dir):
    # A read-only folder once gave a PermissionError traceback, and only after the whole computation.
    def protocol(*args, **kwargs):
        raise AssertionError("the Parzen protocol ran before the report folder was checked")

    monkeypatch.setattr(parzen, "protocol", protocol)
    for args in (["--samples", npz], [tmp_path / "ckpt"]):
        fake_runs(monkeypatch, tmp_path / "ckpt", seeds=None)
        for out in (unwritable_dir, unwritable_dir / "reports"):
            result, text = invoke(*args, "--out", out, "--sigmas", "0.5", "--n-valid", "10", "--n-samples", "20")
            assert result.exit_code == 1 and text.startswith(f"error: cannot write into {out}"), text
            assert len(text.strip().splitlines()) == 1


def test_report_beside_samples_is_kept_unless_forced(npz, monkeypatch, tmp_path):
    # Like `sample`, evaluating a file refuses to overwrite a report there: it may be another file's.
    args = ["--sigmas", "0.5", "--n-valid", "10", "--no-calibration"]
    assert invoke("--samples", npz, *args)[0].exit_code == 0
    report = npz.parent / "parzen.json"
    report.write_text("another file's report")
    result, out = invoke("--samples", npz, *args)
    assert result.exit_code == 1 and "parzen.json already exists: pass --force" in out and len(out.strip().splitlines()) == 1
    assert report.read_text() == "another file's report"
    assert invoke("--samples", npz, *args, "--force")[0].exit_code == 0
    assert json.loads(report.read_text())["kind"] == "parzen"
    # A checkpoint's own reports/ holds its latest evaluation: rewritten without --force (reproduce_table1.sh
    # evaluates one run epoch after epoch); a report it writes elsewhere is kept like any other.
    fake_runs(monkeypatch, tmp_path / "ckpt", seeds=2)
    for _ in range(2):
        assert invoke(tmp_path / "ckpt", *args, "--n-samples", "20")[0].exit_code == 0
    elsewhere = ["--out", tmp_path / "elsewhere"]
    assert invoke(tmp_path / "ckpt", *args, "--n-samples", "20", *elsewhere)[0].exit_code == 0
    result, out = invoke(tmp_path / "ckpt", *args, "--n-samples", "20", *elsewhere)
    assert result.exit_code == 1 and "already exists" in out


def test_samples_beyond_memory_are_refused_with_the_limit(npz, monkeypatch, tmp_path):
    # 120 samples of 16 float32s: 7,680 bytes, with 80% of 5,000 available.
    monkeypatch.setattr(files, "available_memory", lambda: 5_000, raising=False)
    npy = tmp_path / "s.npy"
    np.save(npy, _images(4, 120).astype(np.float64))  # made float32 whole: 64 bytes a sample
    for path in (npy, npz):
        result, out = invoke("--samples", path, "--sigmas", "0.5", "--n-valid", "10", "--n-samples", "100")
        assert result.exit_code == 1 and f"samples in {path}" in out and "at most 62 fit" in out, out
    # Only the rows used of a .npy are read; an .npz is read whole.
    assert invoke("--samples", npy, "--sigmas", "0.5", "--n-valid", "10", "--n-samples", "60")[0].exit_code == 0
    # Float32 rows of a .npy are read a chunk at a time from its memory map: Parzen holds none of them (issue 35, 6).
    np.save(npy, _images(4, 120))
    result, out = invoke("--samples", npy, "--sigmas", "0.5", "--n-valid", "10", "--n-samples", "100", "--force")
    assert result.exit_code == 0, out
    assert "an .npz is read whole" in invoke("--samples", npz, "--sigmas", "0.5", "--n-valid", "10", "--n-samples", "60")[1]


def test_only_the_rows_used_are_read_from_a_npy(tmp_path):
    # A .npy is memory-mapped, so --n-samples reads its first rows, not the whole file.
    path = tmp_path / "s.npy"
    np.save(path, _images(5, 30))
    assert isinstance(evaluate.load_samples(path), np.memmap)
    ev = evaluate.evaluate_samples(path, [evaluate.Parzen(sigmas=SIGMAS, n_valid=10)], n_samples=12, calibration=False)["parzen"]
    assert ev.models[0]["n_samples"] == 12


def _curve(*args) -> subprocess.CompletedProcess:
    script = Path(__file__).parents[1] / "examples" / "parzen_curve.py"
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_table1_curve_draws_the_runs_own_reports_and_a_labelled_reference_file(monkeypatch, tmp_path):
    # examples/reproduce_table1.sh keeps each point's report as parzen_epoch_NNNN.json, then plots them.
    (run,) = fake_runs(monkeypatch, tmp_path / "ckpt", seeds=None)
    ev = evaluate.evaluate_checkpoint(run, [evaluate.Parzen(sigmas=SIGMAS, n_valid=40)], n_samples=100)["parzen"]
    (run / "reports" / "parzen.json").rename(run / "reports" / "parzen_epoch_0007.json")
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"label": "a rerun", "source": "my notes", "points": {"25": 107, "100": 163.5}}))
    done = _curve(run, "--reference", ref)
    assert done.returncode == 0, done.stderr
    model, calibration = ev.models[0], ev.report["calibration"]
    assert f"epoch     7: {model['mean']:7.1f} ± {model['stderr']:.1f}" in done.stdout
    assert f"calibration: {calibration['mean']:.1f}" in done.stdout
    assert (run / "reports" / "parzen_curve.png").stat().st_size > 10_000

    ref.write_text(json.dumps({"label": "no source", "points": {"25": 107}}))
    done = _curve(run, "--reference", ref)
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0 and "expected" in done.stderr
    done = _curve(tmp_path / "nothing-here")
    assert done.returncode != 0 and "run examples/reproduce_table1.sh first" in done.stderr
