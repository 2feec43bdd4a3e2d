"""`gancli evaluate --metrics`: the sample-quality metrics (gancli.metrics) of a run's generator or of a samples
file, with the calibration rows, written as a report (report.write_metrics) like the Parzen one."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from gancli import evaluate, feature_nets, metrics, report
from gancli.errors import GancliError
from gancli.files import check_memory


def _prepare(dataset: str, which, calibration: bool, data_dir, log):
    """The training images (when a calibration row or memorisation needs them), the reference and the header
    fields metrics_report takes."""
    from gancli import data

    train = data.load(dataset, "train", data_dir)[0] if calibration or "memorisation" in which else None
    ref = metrics.reference(dataset, which, data_dir, log=log, train=train)
    header = {"dataset": dataset, "metrics": list(which), "reference": ref.info(), "settings": metrics.settings()}
    return train, ref, header


def evaluate_samples(
    path: Path,
    which,
    *,
    dataset: str = "mnist",
    n_samples: int | None = None,
    data_dir=None,
    calibration: bool = True,
    seed: int = 0,
    out: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> evaluate.Evaluation:
    """The metrics of the samples in a .npz/.npy file from any tool (the first n_samples, default all; float
    pixels in [0, 1], 28x28); the report goes beside the file or into out, never over one there unless force."""
    which = metrics.parse(which)
    path = Path(path)
    feature_nets.spec(dataset)  # before reading anything: the dataset must have a network
    if n_samples is not None and n_samples < 1:
        raise GancliError(f"--n-samples must be >= 1 (got {n_samples})")
    raw = evaluate.load_samples(path)
    if n_samples is not None and raw.ndim > 0:
        if len(raw) < n_samples:
            raise GancliError(f"{path} holds {len(raw)} samples, fewer than --n-samples {n_samples}")
        raw = raw[:n_samples]
    if raw.ndim > 0:
        check_memory(len(raw), 4 * math.prod(raw.shape[1:]), f"samples in {path}")
    out_dir = out if out is not None else path.parent
    report.check_out_dir(out_dir, force, report.METRICS_FILES)
    samples = metrics.check_images(raw, str(path))
    start = time.perf_counter()
    train, ref, header = _prepare(dataset, which, calibration, data_dir, log)
    log(f"measuring {len(samples):,} samples from {path}: {', '.join(which)}")
    model = {"label": path.stem, "source": str(path), "epoch": None, "step": None,
             **metrics.measure(samples, ref, which, path.stem)}
    cal = metrics.calibrate(ref, train, len(samples), which, seed, log) if calibration else None
    sampling = {"source": f"file {path.name}", "n_samples": len(samples), "seed": None,
                "seconds": round(time.perf_counter() - start, 2)}
    rep = report.metrics_report(header, [model], cal, sampling)
    return evaluate.Evaluation(dataset, (model,), cal, rep, report.write_metrics(rep, out_dir))


def evaluate_checkpoint(
    ckpt: Path,
    which,
    *,
    dataset: str | None = None,
    n_samples: int = evaluate.N_SAMPLES,
    seed: int = 0,
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    force: bool = False,
    ema: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> evaluate.Evaluation:
    """The metrics of a run's generator (every seed of a multi-seed run; the moving average of G when the run
    keeps one and ema is True); reports go into the run's reports/ (and each seed's), rewritten each time."""
    from gancli import conditional, sampling

    which = metrics.parse(which)
    if n_samples < 1:
        raise GancliError(f"--n-samples must be >= 1 (got {n_samples})")
    ckpt = Path(ckpt)
    runs, trained_on = evaluate.restore_runs(ckpt, dataset, ema)
    feature_nets.spec(trained_on)
    out_dir, seed_dirs = report.check_run_out_dirs(ckpt, [run.path for run in runs], out, force, report.METRICS_FILES)
    for run in runs:
        sampling.check_count(run, n_samples)
    start = time.perf_counter()
    train, ref, header = _prepare(trained_on, which, calibration, data_dir, log)
    cond = runs[0].config if runs[0].config.conditional else None
    labels = conditional.class_labels(cond, n_samples) if cond else None
    judge = conditional.reference(trained_on, cond.n_classes, data_dir, log) if cond else None

    models = []
    for run in runs:
        log(f"drawing {n_samples:,} samples from {run.path} (seed {seed})" + (", the classes in turn" if cond else ""))
        drawn = sampling.generate(run, n_samples, seed)
        if bad := sampling.count_nonfinite(drawn):
            raise GancliError(f"the generator of {run.path}: {bad} of {n_samples} samples contain NaN or inf")
        # The generator's range is its own design (a linear output may overshoot); the network takes [0, 1].
        samples = np.clip(drawn, 0.0, 1.0)
        decay = sampling.ema_decay(run)
        label = evaluate.model_label(run.path, len(runs) > 1, decay)
        log(f"measuring {label}: {', '.join(which)}")
        model = {"label": label, "source": str(run.path), "epoch": run.metadata.get("epoch"),
                 "step": run.metadata.get("step"), "generator_ema": decay, **metrics.measure(samples, ref, which, label)}
        if judge is not None:
            model["conditional"] = conditional.measure(samples, labels, judge)
        models.append(model)
    cal = metrics.calibrate(ref, train, n_samples, which, seed, log) if calibration else None
    extra = {}
    if cond:
        cond_cal = conditional.calibrate(judge, labels, data_dir) if judge and calibration else None
        extra["conditional"] = conditional.section(cond, n_samples, judge, cond_cal)
    what = "the moving average of G" if any(m["generator_ema"] is not None for m in models) else "G"
    sampling_info = {"source": f"{what} of the checkpoint", "n_samples": n_samples, "seed": seed,
                     "seconds": round(time.perf_counter() - start, 2)}
    seed_paths = tuple(
        report.write_metrics(report.metrics_report(header, [m], cal, sampling_info, **extra), folder)
        for m, folder in zip(models, seed_dirs)
    )
    rep = report.metrics_report(header, models, cal, sampling_info, **extra)
    return evaluate.Evaluation(trained_on, tuple(models), cal, rep, report.write_metrics(rep, out_dir), seed_paths)
