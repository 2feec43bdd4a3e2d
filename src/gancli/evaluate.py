"""Evaluation: samples from a checkpoint or a file, the reference data, the Parzen protocol and its report."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from gancli import parzen, report
from gancli.errors import GancliError

N_SAMPLES = 10_000
N_VALID = 1_000


@dataclasses.dataclass(frozen=True)
class Reference:
    """The real data the protocol needs: validation images that choose sigma, and the test images."""

    dataset: str
    valid: np.ndarray
    test: np.ndarray
    data_dir: object = None

    @property
    def unit_range(self) -> bool:
        """Whether the data are images in [0, 1], so samples must be too."""
        return bool(self.test.min() >= 0.0 and self.test.max() <= 1.0)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What `evaluate` did: each model's result, the calibration, the report and where its files are."""

    dataset: str
    models: tuple[dict, ...]
    calibration: dict | None
    report: dict
    paths: dict[str, Path]
    seed_paths: tuple[dict[str, Path], ...] = ()


def load_samples(path: Path) -> np.ndarray:
    """The array in a .npy file, or in a .npz file (key "samples", else its only array)."""
    path = Path(path)
    if not path.is_file():
        raise GancliError(f"samples file {path} does not exist")
    if path.stat().st_size == 0:
        raise GancliError(f"samples file {path} is empty")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise GancliError(f"{path} is not a .npy or .npz array file ({str(e).splitlines()[0]})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if "samples" in keys:
                key = "samples"
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise GancliError(f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); name one 'samples'")
            try:
                return loaded[key]
            except ValueError as e:  # object arrays need pickle, which is never allowed
                raise GancliError(f"{path}: array {key!r} cannot be read ({str(e).splitlines()[0]})") from None
    return loaded


def check_samples(samples, example_shape: tuple[int, ...], source: str, unit_range: bool = True) -> np.ndarray:
    """Samples as float32 (N, *example_shape), or GancliError naming what is wrong with them."""
    samples = np.asarray(samples)
    if not (np.issubdtype(samples.dtype, np.floating) or np.issubdtype(samples.dtype, np.integer)):
        raise GancliError(f"{source}: samples must be numbers, got dtype {samples.dtype}")
    if samples.ndim == 0 or samples.shape[0] == 0:
        raise GancliError(f"{source}: no samples (shape {samples.shape})")
    shape = tuple(samples.shape[1:])
    example_shape = tuple(example_shape)
    # Also take the flat (N, d) layout and the channel-less (N, H, W) one for single-channel data.
    accepted = {example_shape, (int(np.prod(example_shape)),)}
    if example_shape[-1:] == (1,):
        accepted.add(example_shape[:-1])
    if shape not in accepted:
        raise GancliError(f"{source}: each sample has shape {shape}, but the reference data's is {example_shape}")
    samples = samples.reshape((samples.shape[0], *example_shape)).astype(np.float32)
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples).reshape(len(samples), -1).all(axis=1)))
        raise GancliError(f"{source}: {bad} of {len(samples)} samples contain NaN or inf")
    lo, hi = float(samples.min()), float(samples.max())
    if unit_range and (lo < 0.0 or hi > 1.0):
        raise GancliError(f"{source}: sample values must lie in [0, 1] like the data, got [{lo:g}, {hi:g}]")
    return samples


def load_reference(dataset: str, n_valid: int, data_dir=None) -> Reference:
    """The first n_valid validation images and the test split."""
    from gancli import data  # the TFDS stack loads only when data is needed

    if n_valid < 1:
        raise GancliError(f"--n-valid must be >= 1 (got {n_valid})")
    valid = data.load(dataset, "validation", data_dir)[0]
    if n_valid > len(valid):
        raise GancliError(f"--n-valid {n_valid} exceeds the {len(valid)} validation images of {dataset}")
    test = data.load(dataset, "test", data_dir)[0]
    return Reference(dataset, np.asarray(valid[:n_valid]), np.asarray(test), data_dir)


def _score(label: str, source, samples, ref: Reference, sigmas, epoch=None, step=None) -> dict:
    """One model's report entry: its identity and its protocol result."""
    result = parzen.protocol(samples, ref.valid, ref.test, sigmas)
    entry = {"label": label, "source": str(source), "epoch": epoch, "step": step, **result.to_dict()}
    if ref.dataset == "ring8":  # a mixture with known modes: say which ones the generator covers
        from gancli.data import toy

        entry["mode_coverage"] = toy.mode_coverage(samples)
    return entry


def _calibrate(ref: Reference, n: int, sigmas, log) -> dict:
    """The protocol with the first n training images as the model, which shows the scale of the numbers."""
    from gancli import data

    train = np.asarray(data.load(ref.dataset, "train", ref.data_dir)[0][:n])
    log(f"calibrating: the same protocol with {len(train):,} real training images as the model")
    return _score(f"{len(train):,} training images", "train", train, ref, sigmas)


def _check_counts(n_samples: int | None, sigmas) -> tuple:
    """Validate the shared options early, before any slow work."""
    if n_samples is not None and n_samples < 1:
        raise GancliError(f"--n-samples must be >= 1 (got {n_samples})")
    return parzen.check_sigmas(sigmas)


def evaluate_samples(
    path: Path,
    *,
    dataset: str = "mnist",
    n_samples: int | None = None,
    sigmas=parzen.PAPER_SIGMAS,
    n_valid: int = N_VALID,
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Evaluation:
    """Parzen-evaluate the samples in a .npz/.npy file (the first n_samples, default all) against `dataset`."""
    path = Path(path)
    sigmas = _check_counts(n_samples, sigmas)
    raw = load_samples(path)
    ref = load_reference(dataset, n_valid, data_dir)
    samples = check_samples(raw, ref.test.shape[1:], str(path), ref.unit_range)
    if n_samples is not None:
        if len(samples) < n_samples:
            raise GancliError(f"{path} holds {len(samples)} samples, fewer than --n-samples {n_samples}")
        samples = samples[:n_samples]
    log(f"evaluating {len(samples):,} samples from {path} against {dataset}")
    model = _score(path.stem, path, samples, ref, sigmas)
    cal = _calibrate(ref, len(samples), sigmas, log) if calibration else None
    rep = report.parzen_report(ref.dataset, [model], cal, **_protocol(ref, sigmas, len(samples), None))
    paths = report.write_parzen(rep, out if out is not None else path.parent)
    return Evaluation(ref.dataset, (model,), cal, rep, paths)


def evaluate_checkpoint(
    ckpt: Path,
    *,
    dataset: str | None = None,
    n_samples: int = N_SAMPLES,
    sigmas=parzen.PAPER_SIGMAS,
    n_valid: int = N_VALID,
    seed: int = 0,
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Evaluation:
    """Parzen-evaluate a run's generator (every seed of a multi-seed run); reports go into the run's reports/."""
    from gancli import checkpoint, sampling  # Orbax and the models load only for checkpoints

    sigmas = _check_counts(n_samples, sigmas)
    ckpt = Path(ckpt)
    runs = [checkpoint.load_run(p) for p in checkpoint.find_runs(ckpt)]
    trained_on = {r.config.dataset for r in runs}
    if len(trained_on) > 1:
        raise GancliError(f"the seeds in {ckpt} were trained on different datasets: {', '.join(sorted(trained_on))}")
    (trained_on,) = trained_on
    if dataset is not None and dataset != trained_on:
        raise GancliError(f"{ckpt} was trained on {trained_on}, not {dataset}: drop --dataset or pass --samples")
    ref = load_reference(trained_on, n_valid, data_dir)
    protocol = _protocol(ref, sigmas, n_samples, seed)

    models = []
    for run in runs:
        log(f"drawing {n_samples:,} samples from {run.path} (seed {seed})")
        drawn = sampling.generate(run, n_samples, seed)
        # A generator's range is its own design (e.g. a linear output layer): only NaN/inf make it unscorable.
        samples = check_samples(drawn, ref.test.shape[1:], f"the generator of {run.path}", unit_range=False)
        log(f"evaluating against {ref.dataset}: sigma over {len(sigmas)} values, then {len(ref.test):,} test images")
        label = run.path.name if len(runs) > 1 else (run.path.absolute().name or str(run.path))
        at = run.metadata.get("epoch"), run.metadata.get("step")
        models.append(_score(label, run.path, samples, ref, sigmas, *at))
    cal = _calibrate(ref, n_samples, sigmas, log) if calibration else None

    seed_paths = ()
    if len(runs) > 1:
        seed_paths = tuple(
            report.write_parzen(report.parzen_report(ref.dataset, [m], cal, **protocol), run.path / "reports")
            for m, run in zip(models, runs)
        )
    rep = report.parzen_report(ref.dataset, models, cal, **protocol)
    paths = report.write_parzen(rep, out if out is not None else ckpt / "reports")
    return Evaluation(ref.dataset, tuple(models), cal, rep, paths, seed_paths)


def _protocol(ref: Reference, sigmas, n_samples: int, seed: int | None) -> dict:
    """The protocol's settings as recorded in the report."""
    return {
        "sigmas": list(sigmas),
        "n_valid": len(ref.valid),
        "n_test": len(ref.test),
        "n_samples": n_samples,
        "sampling_seed": seed,
    }
