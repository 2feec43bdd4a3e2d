"""Evaluation: samples from a checkpoint or a file, the reference data, the Parzen protocol and its report."""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from gancli import parzen, report
from gancli.errors import GancliError
from gancli.files import check_memory, human_bytes

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
    """The array in a .npy file (memory-mapped: rows are read when used), or in a .npz file (key "samples", else
    its only array). The header is checked against the file's size first: a damaged one must not ask for terabytes."""
    path = Path(path)
    if not path.exists():
        raise GancliError(f"samples file {path} does not exist")
    if path.is_dir():
        raise GancliError(f"{path} is a folder: give a .npy or .npz file of samples")
    if not path.is_file():
        raise GancliError(f"{path} is not a regular file: give a .npy or .npz file of samples")
    size = path.stat().st_size
    if size == 0:
        raise GancliError(f"samples file {path} is empty")
    try:
        with open(path, "rb") as f:
            if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip (an empty one too): np.savez's .npz
                return _npz_member(path)
            f.seek(0)
            _check_header(f, size, str(path))
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise GancliError(f"{path} is not a .npy or .npz array file ({str(e).splitlines()[0]})") from None
    except MemoryError:  # a header within the file's size, but an array larger than memory (a compressed .npz)
        raise GancliError(f"{path} holds more data than fits in memory") from None


def _npz_member(path: Path) -> np.ndarray:
    """The "samples" array of an .npz (else its only one), its header checked against the member's size."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename.removesuffix(".npy"): i for i in z.infolist()}
        if "samples" in members:
            key = "samples"
        elif len(members) == 1:
            (key,) = members
        else:
            raise GancliError(f"{path} holds {len(members)} arrays ({', '.join(members) or 'none'}); name one 'samples'")
        with z.open(members[key]) as f:
            header = _check_header(f, members[key].file_size, f"{path}: array {key!r}")
    if header is not None and header[0]:  # (shape, dtype) of rows; an .npz is read whole, so they must fit
        shape, dtype = header
        check_memory(shape[0], math.prod(shape[1:]) * dtype.itemsize,
                     f"samples in {path} (an .npz is read whole; of a .npy, only the --n-samples used)")
    with np.load(path, allow_pickle=False) as loaded:
        return loaded[key]


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_header(f, size: int, where: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype in the .npy header at f's position; GancliError unless they are numbers that the size
    bytes really hold. None for a header numpy has no public reader for (version 3.0: non-Latin-1 field names)."""
    version = np.lib.format.read_magic(f)
    read = _HEADER_READERS.get(version)
    if read is None:
        return None
    shape, _, dtype = read(f)
    if dtype.hasobject:
        raise GancliError(f"{where} holds Python objects (dtype {dtype}), not numbers; they would need pickle")
    need, have = math.prod(shape) * dtype.itemsize, size - f.tell()
    if need > have:
        raise GancliError(
            f"{where} is truncated or damaged: its header says {shape} {dtype} ({human_bytes(need)}), "
            f"but only {human_bytes(have)} of data follow"
        )
    return shape, dtype


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
    given = samples
    samples = samples.reshape((samples.shape[0], *example_shape)).astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples).reshape(len(samples), -1).all(axis=1)))
        if np.issubdtype(given.dtype, np.floating) and np.isfinite(given).all():
            raise GancliError(f"{source}: {bad} of {len(samples)} samples hold values beyond float32's ±3.4e38")
        raise GancliError(f"{source}: {bad} of {len(samples)} samples contain NaN or inf")
    lo, hi = float(samples.min()), float(samples.max())
    if unit_range and (lo < 0.0 or hi > 1.0):
        raise GancliError(f"{source}: sample values must lie in [0, 1] like the data, got [{lo:g}, {hi:g}]")
    return samples


# The paper's parzen_ll.py chose sigma on the first 1,000 MNIST validation images but on all of TFD's valid fold.
WHOLE_VALIDATION = ("tfd", "tfd96")


def load_reference(dataset: str, n_valid: int | None, data_dir=None) -> Reference:
    """The first n_valid validation images (None: the paper's choice, N_VALID or all for TFD) and the test split."""
    from gancli import data  # the TFDS stack loads only when data is needed

    if n_valid is not None and n_valid < 1:
        raise GancliError(f"--n-valid must be >= 1 (got {n_valid})")
    valid = data.load(dataset, "validation", data_dir)[0]
    if n_valid is None:
        n_valid = len(valid) if dataset in WHOLE_VALIDATION else min(N_VALID, len(valid))
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
    n_valid: int | None = None,  # None: load_reference's default
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Evaluation:
    """Parzen-evaluate the samples in a .npz/.npy file (the first n_samples, default all) against `dataset`.

    The report goes beside the file (or into out), and never over an existing report there unless force: a
    folder of sample files would otherwise keep only the last one's report, silently."""
    path = Path(path)
    sigmas = _check_counts(n_samples, sigmas)
    raw = load_samples(path)
    if n_samples is not None and raw.ndim > 0:  # only these rows of a .npy are read from disk
        if len(raw) < n_samples:
            raise GancliError(f"{path} holds {len(raw)} samples, fewer than --n-samples {n_samples}")
        raw = raw[:n_samples]
    if raw.ndim > 0:
        check_memory(len(raw), 4 * math.prod(raw.shape[1:]), f"samples in {path}")  # as float32
    ref = load_reference(dataset, n_valid, data_dir)
    out_dir = out if out is not None else path.parent
    report.check_out_dir(out_dir, force)
    samples = check_samples(raw, ref.test.shape[1:], str(path), ref.unit_range)
    log(f"evaluating {len(samples):,} samples from {path} against {dataset}")
    model = _score(path.stem, path, samples, ref, sigmas)
    cal = _calibrate(ref, len(samples), sigmas, log) if calibration else None
    rep = report.parzen_report(ref.dataset, [model], cal, **_protocol(ref, sigmas, len(samples), None))
    paths = report.write_parzen(rep, out_dir)
    return Evaluation(ref.dataset, (model,), cal, rep, paths)


def one_dataset(ckpt: Path, datasets: set[str]) -> str:
    """The dataset that the seeds in ckpt, trained on `datasets`, share; GancliError when they differ."""
    if len(datasets) > 1:
        raise GancliError(f"the seeds in {ckpt} were trained on different datasets: {', '.join(sorted(datasets))}")
    (dataset,) = datasets
    return dataset


def restore_runs(ckpt: Path, dataset: str | None, ema: bool) -> tuple[list, str]:
    """Each seed's run in ckpt, restored (G's moving average when the run keeps one and ema), and the dataset they
    were trained on; GancliError when that is not `dataset` (None: any)."""
    from gancli import checkpoint, sampling  # Orbax and the models load only for checkpoints

    runs = [sampling.restore(p, ema) for p in checkpoint.find_runs(ckpt)]
    trained_on = one_dataset(ckpt, {r.config.dataset for r in runs})
    if dataset is not None and dataset != trained_on:
        raise GancliError(f"{ckpt} was trained on {trained_on}, not {dataset}: drop --dataset or pass --samples")
    return runs, trained_on


def model_label(path: Path, several: bool, decay: float | None) -> str:
    """A run's name in a report: its seed folder when there are several, else the run folder; and the decay of the
    moving average evaluated, if any."""
    label = path.name if several else (path.absolute().name or str(path))
    return label if decay is None else f"{label} (EMA {decay:g})"


def evaluate_checkpoint(
    ckpt: Path,
    *,
    dataset: str | None = None,
    n_samples: int = N_SAMPLES,
    sigmas=parzen.PAPER_SIGMAS,
    n_valid: int | None = None,  # None: load_reference's default
    seed: int = 0,
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    force: bool = False,
    ema: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> Evaluation:
    """Parzen-evaluate a run's generator (every seed of a multi-seed run); reports go into the run's reports/.
    The generator is the run's moving average of G when it keeps one and ema is True.

    A run's reports/parzen.* are its latest evaluation and are rewritten each time (reproduce_table1.sh evaluates
    one run epoch after epoch); only a report in another folder (out) is kept unless force."""
    from gancli import conditional, sampling  # the models load only for checkpoints

    sigmas = _check_counts(n_samples, sigmas)
    ckpt = Path(ckpt)
    # The state too: a report names the step it sampled.
    runs, trained_on = restore_runs(ckpt, dataset, ema)
    ref = load_reference(trained_on, n_valid, data_dir)
    out_dir, seed_dirs = report.check_run_out_dirs(ckpt, [run.path for run in runs], out, force)
    protocol = _protocol(ref, sigmas, n_samples, seed)
    # A conditional run's samples take the classes in turn (n_samples / n_classes each, as Mirza & Osindero's
    # 1,000 per class); a classifier then judges whether each obeys its label.
    cond = runs[0].config if runs[0].config.conditional else None
    judge = conditional.reference(ref.dataset, cond.n_classes, data_dir, log) if cond else None

    models = []
    for run in runs:
        log(f"drawing {n_samples:,} samples from {run.path} (seed {seed})" + (", the classes in turn" if cond else ""))
        drawn = sampling.generate(run, n_samples, seed)
        # A generator's range is its own design (e.g. a linear output layer): only NaN/inf make it unscorable.
        samples = check_samples(drawn, ref.test.shape[1:], f"the generator of {run.path}", unit_range=False)
        log(f"evaluating against {ref.dataset}: sigma over {len(sigmas)} values, then {len(ref.test):,} test images")
        at = run.metadata.get("epoch"), run.metadata.get("step")
        decay = sampling.ema_decay(run)
        label = model_label(run.path, len(runs) > 1, decay)
        models.append({**_score(label, run.path, samples, ref, sigmas, *at), "generator_ema": decay})
        if judge is not None:
            log(f"class accuracy and per-class Fréchet distance ({judge.judge.info['name']})")
            models[-1]["conditional"] = conditional.measure(samples, conditional.class_labels(cond, n_samples), judge)
    cal = _calibrate(ref, n_samples, sigmas, log) if calibration else None
    extra = {}
    if cond:
        cond_cal = conditional.calibrate(judge, conditional.class_labels(cond, n_samples), data_dir) if judge and calibration else None
        extra["conditional"] = conditional.section(cond, n_samples, judge, cond_cal)

    seed_paths = tuple(
        report.write_parzen({**report.parzen_report(ref.dataset, [m], cal, **protocol), **extra}, folder)
        for m, folder in zip(models, seed_dirs)
    )
    rep = {**report.parzen_report(ref.dataset, models, cal, **protocol), **extra}
    paths = report.write_parzen(rep, out_dir)
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
