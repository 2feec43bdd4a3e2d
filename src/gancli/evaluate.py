"""The one evaluation runner: restore each seed once, draw its samples once, give them to every evaluator asked for
(Parzen, sample-quality metrics, D as a classifier), and write the per-seed and across-seed reports in one place.

An evaluator is one class with `kind`, `files` and the hooks the runner calls in order: check (before any work),
prepare (its reference data), measure (one model's row), calibrate (its calibration row), compose (the report
dict); report files are written by gancli.report's writer of that kind."""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from gancli import metrics, parzen, report
from gancli.errors import GancliError
from gancli.files import check_count, check_memory, human_bytes

N_SAMPLES = 10_000
N_VALID = 1_000


@dataclasses.dataclass(frozen=True)
class ParzenData:
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
    # A negative size makes the product below look small; numpy's memory map then fails with an OverflowError.
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise GancliError(f"{where} is damaged: its header declares the shape {shape}, with a negative dimension")
    if math.prod(n for n in shape if n) * dtype.itemsize >= 2**63:
        raise GancliError(f"{where} is damaged: its header declares the shape {shape}, larger than any array can be")
    need, have = math.prod(shape) * dtype.itemsize, size - f.tell()
    if need > have:
        raise GancliError(
            f"{where} is truncated or damaged: its header says {shape} {dtype} ({human_bytes(need)}), "
            f"but only {human_bytes(have)} of data follow"
        )
    return shape, dtype


def check_samples(samples, example_shape: tuple[int, ...], source: str, unit_range: bool = True,
                  chunk: int | None = None) -> np.ndarray:
    """Samples as float32 (N, *example_shape), or GancliError naming what is wrong with them. They are checked
    `chunk` rows at a time (default parzen.SAMPLE_CHUNK), and float32 samples come back as a view: a memory-mapped
    file is never read whole."""
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
    n, chunk = samples.shape[0], max(1, parzen.SAMPLE_CHUNK if chunk is None else chunk)
    shaped = samples.reshape((n, *example_shape))
    lo, hi, bad, beyond = np.inf, -np.inf, 0, np.issubdtype(samples.dtype, np.floating)
    for start in range(0, n, chunk):
        given = shaped[start : start + chunk]
        rows = given.astype(np.float32, copy=False)
        finite = np.isfinite(rows).reshape(len(rows), -1).all(axis=1)
        if not finite.all():
            bad += int(np.count_nonzero(~finite))
            beyond = beyond and bool(np.isfinite(given).all())
        elif not bad:
            lo, hi = min(lo, float(rows.min())), max(hi, float(rows.max()))
    if bad:
        if beyond:
            raise GancliError(f"{source}: {bad} of {n} samples hold values beyond float32's ±3.4e38")
        raise GancliError(f"{source}: {bad} of {n} samples contain NaN or inf")
    if unit_range and (lo < 0.0 or hi > 1.0):
        raise GancliError(f"{source}: sample values must lie in [0, 1] like the data, got [{lo:g}, {hi:g}]")
    return shaped.astype(np.float32, copy=False)


# The paper's parzen_ll.py chose sigma on the first 1,000 MNIST validation images but on all of TFD's valid fold.
WHOLE_VALIDATION = ("tfd", "tfd96")


def load_reference(dataset: str, n_valid: int | None, data_dir=None) -> ParzenData:
    """The first n_valid validation images (None: the paper's choice, N_VALID or all for TFD) and the test split."""
    from gancli import data  # the TFDS stack loads only when data is needed

    check_count(n_valid, "--n-valid")
    valid = data.load(dataset, "validation", data_dir)[0]
    if n_valid is None:
        n_valid = len(valid) if dataset in WHOLE_VALIDATION else min(N_VALID, len(valid))
    if n_valid > len(valid):
        raise GancliError(f"--n-valid {n_valid} exceeds the {len(valid)} validation images of {dataset}")
    test = data.load(dataset, "test", data_dir)[0]
    return ParzenData(dataset, np.asarray(valid[:n_valid]), np.asarray(test), data_dir)


def _score(label: str, source, samples, ref: ParzenData, sigmas, epoch=None, step=None, progress=None) -> dict:
    """One model's Parzen entry: its identity and its protocol result."""
    result = parzen.protocol(samples, ref.valid, ref.test, sigmas, progress=progress, label=label)
    entry = {"label": label, "source": str(source), "epoch": epoch, "step": step, **result.to_dict()}
    if ref.dataset == "ring8":  # a mixture with known modes: say which ones the generator covers
        from gancli.data import toy

        entry["mode_coverage"] = toy.mode_coverage(samples)
    return entry


@dataclasses.dataclass(frozen=True)
class Model:
    """What is evaluated: a name, where it came from, when (epoch, step of a checkpoint), and the run itself
    (None for a samples file)."""

    label: str
    source: str
    epoch: int | None = None
    step: int | None = None
    run: object = None

    def identity(self) -> dict:
        return {"label": self.label, "source": self.source, "epoch": self.epoch, "step": self.step}


class Parzen:
    """The 2014 paper's Parzen-window protocol: sigma chosen on validation images, log-likelihood of the test split."""

    kind: ClassVar[str] = "parzen"
    files: ClassVar[dict[str, str]] = report.FILES
    draws: ClassVar[bool] = True

    def __init__(self, sigmas=parzen.PAPER_SIGMAS, n_valid: int | None = None):
        self.sigmas = parzen.check_sigmas(sigmas)
        self.n_valid = n_valid

    def check(self, dataset: str, configs) -> None:
        pass

    def kept_bytes(self, dims: int, calibration: bool) -> int:
        """Bytes held per sample beyond the chunk being read: none, the samples are read chunk by chunk each pass."""
        return 0

    def prepare(self, dataset: str, data_dir, log) -> None:
        self.ref = load_reference(dataset, self.n_valid, data_dir)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.ref.test.shape[1:])

    @property
    def unit_range(self) -> bool:
        return self.ref.unit_range

    def measure(self, model: Model, samples, extra: dict) -> dict:
        self.log(f"evaluating against {self.ref.dataset}: sigma over {len(self.sigmas)} values, then {len(self.ref.test):,} test images")
        return {**_score(model.label, model.source, samples, self.ref, self.sigmas, model.epoch, model.step,
                         self.progress), **extra}

    def calibrate(self, n: int, seed: int, log) -> dict:
        """The protocol with the first n training images as the model, which shows the scale of the numbers."""
        from gancli import data

        train = np.asarray(data.load(self.ref.dataset, "train", self.ref.data_dir)[0][:n])
        log(f"calibrating: the same protocol with {len(train):,} real training images as the model")
        return _score(f"{len(train):,} training images", "train", train, self.ref, self.sigmas, progress=self.progress)

    def compose(self, models: list[dict], calibration, info: dict, extra: dict) -> dict:
        protocol = {"sigmas": list(self.sigmas), "n_valid": len(self.ref.valid), "n_test": len(self.ref.test),
                    "n_samples": info["n_samples"], "sampling_seed": info["seed"]}
        return {**report.parzen_report(self.ref.dataset, models, calibration, **protocol), **extra}

    write = staticmethod(report.write_parzen)


class Metrics:
    """The sample-quality metrics (gancli.metrics): on the dataset's shipped feature network, and on Inception-v3
    for any image dataset. "all" means every metric that applies to the dataset."""

    kind: ClassVar[str] = "metrics"
    files: ClassVar[dict[str, str]] = report.METRICS_FILES
    draws: ClassVar[bool] = True
    unit_range = True

    def __init__(self, which):
        self.which = metrics.parse(which)
        self.every = isinstance(which, str) and "all" in [w.strip() for w in which.split(",")]

    def check(self, dataset: str, configs) -> None:
        from gancli import feature_nets

        # Every metric but Inception's is defined against the dataset's shipped network and its 28x28 pixels.
        if self.every:
            self.which = tuple(m for m in self.which if m not in metrics.SHIPPED or dataset in feature_nets.SPECS)
        if any(m in metrics.SHIPPED for m in self.which):
            feature_nets.spec(dataset)  # before reading anything: the dataset must have a network

    def kept_bytes(self, dims: int, calibration: bool) -> int:
        """Bytes held per sample beyond the chunk being read: the features a metric reads and the nearest-image
        distances (the calibration's noise images are made a chunk at a time too)."""
        return metrics.kept_bytes(self.which)

    def prepare(self, dataset: str, data_dir, log) -> None:
        from gancli import data

        test = data.load(dataset, "test", data_dir)[0]
        if self.every and "inception" in self.which:
            try:
                metrics.check_inception_data(dataset, test)
            except GancliError:
                self.which = tuple(m for m in self.which if m != "inception")
        if not self.which:
            raise GancliError(f"no sample-quality metric applies to {dataset}: it has no shipped feature network and "
                              "is not images in [0, 1]")
        self.train = data.load(dataset, "train", data_dir)[0] if self.calibration or "memorisation" in self.which else None
        self.ref = metrics.reference(dataset, self.which, data_dir, log=log, train=self.train, progress=self.progress,
                                     test=test)
        self.dataset = dataset

    @property
    def example_shape(self) -> tuple[int, ...]:
        shipped = any(metrics.REGISTRY[m].network == "shipped" for m in self.which)
        return metrics.IMAGE_SHAPE if shipped else self.ref.image_shape

    def measure(self, model: Model, samples, extra: dict) -> dict:
        # A generator's range is its own design (a linear output may overshoot); the network takes [0, 1].
        x = samples if model.run is None else np.clip(samples, 0.0, 1.0)
        self.log(f"measuring {model.label}: {', '.join(self.which)}")
        return {**model.identity(), **extra, **metrics.measure(x, self.ref, self.which, model.label, progress=self.progress)}

    def calibrate(self, n: int, seed: int, log) -> dict:
        return metrics.calibrate(self.ref, self.train, n, self.which, seed, log, progress=self.progress)

    def compose(self, models: list[dict], calibration, info: dict, extra: dict) -> dict:
        header = {"dataset": self.dataset, "metrics": list(self.which), "reference": self.ref.info(),
                  "settings": metrics.settings()}
        sampling = {k: info[k] for k in ("source", "n_samples", "seed", "seconds")}
        return report.metrics_report(header, models, calibration, sampling, **extra)

    write = staticmethod(report.write_metrics)


class Classify:
    """A semi-supervised run's D (its moving average unless --no-ema) as a classifier of the test split."""

    kind: ClassVar[str] = "classify"
    files: ClassVar[dict[str, str]] = report.CLASSIFY_FILES
    draws: ClassVar[bool] = False

    def __init__(self, ema: bool = True):
        self.ema = ema

    def check(self, dataset: str, runs) -> None:
        from gancli import semi_supervised

        for run in runs:
            semi_supervised.check_run(run.config, str(run.path))

    def kept_bytes(self, dims: int, calibration: bool) -> int:
        return 0  # it reads no samples

    def prepare(self, dataset: str, data_dir, log) -> None:
        from gancli import data

        self.dataset = dataset
        self.images, self.labels = data.load(dataset, "test", data_dir)

    def decay(self, run) -> float | None:
        return run.config.d_ema if self.ema and "d_ema" in run.state else None

    def measure(self, model: Model, samples, extra: dict) -> dict:
        from gancli import sampling, semi_supervised

        run = model.run
        game = sampling.game_of(run.config, run.metadata)
        decay = self.decay(run)
        self.log(f"classifying {len(self.images):,} {self.dataset} test images with {run.path}'s D"
                 + (f" (its moving average, decay {decay:g})" if decay is not None else ""))
        predicted = semi_supervised.predict(game, run.state, self.images, self.ema, metrics.named(
            self.progress, f"classifying the {self.dataset} test split with {model.label}"))
        return {**model.identity(), "d_ema": decay, "labels": run.config.labels,
                "label_seed": run.config.label_seed, "labelled_sha256": run.metadata.get("labelled", {}).get("sha256"),
                **semi_supervised.scores(self.labels, predicted, run.config.n_classes)}

    def calibrate(self, n: int, seed: int, log) -> None:
        return None

    def compose(self, models: list[dict], calibration, info: dict, extra: dict) -> dict:
        return report.classify_report(self.dataset, models)

    write = staticmethod(report.write_classify)


def _prepare(evaluators, dataset: str, data_dir, calibration: bool, log, progress) -> None:
    for ev in evaluators:
        ev.calibration, ev.log, ev.progress = calibration, log, progress
        ev.prepare(dataset, data_dir, log)


def _kinds(evaluators) -> None:
    if not evaluators:
        raise GancliError("nothing to evaluate: ask for --parzen and/or --metrics")
    kinds = [ev.kind for ev in evaluators]
    if len(set(kinds)) != len(kinds):
        raise GancliError(f"each evaluation once: got {', '.join(kinds)}")


def _finish(evaluators, rows: dict, cals: dict, info: dict, extra: dict, out_dirs: dict, seed_dirs: dict) -> dict[str, Evaluation]:
    """Every report of every evaluator: one per seed (of a multi-seed run) and one across seeds; written."""
    results = {}
    for ev in evaluators:
        models, cal = rows[ev.kind], cals[ev.kind]
        seed_paths = tuple(ev.write(ev.compose([m], cal, info, extra.get(ev.kind, {})), folder)
                           for m, folder in zip(models, seed_dirs.get(ev.kind, ())))
        rep = ev.compose(models, cal, info, extra.get(ev.kind, {}))
        results[ev.kind] = Evaluation(info["dataset"], tuple(models), cal, rep, ev.write(rep, out_dirs[ev.kind]), seed_paths)
    return results


def evaluate_samples(
    path: Path,
    evaluators: list,
    *,
    dataset: str = "mnist",
    n_samples: int | None = None,
    data_dir=None,
    calibration: bool = True,
    seed: int = 0,
    out: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Evaluation]:
    """Every evaluator's report on the samples in a .npz/.npy file (the first n_samples, default all) against
    `dataset`, by kind. The reports go beside the file (or into out), never over an existing report there unless
    force: a folder of sample files would otherwise keep only the last one's report, silently."""
    import time

    _kinds(evaluators)
    if any(not ev.draws for ev in evaluators):
        raise GancliError("--classify evaluates a run's D on its own: drop --samples")
    path = Path(path)
    check_count(n_samples, "--n-samples")
    for ev in evaluators:
        ev.check(dataset, [])
    raw = load_samples(path)
    if n_samples is not None and raw.ndim > 0:  # only these rows of a .npy are read from disk
        if len(raw) < n_samples:
            raise GancliError(f"{path} holds {len(raw)} samples, fewer than --n-samples {n_samples}")
        raw = raw[:n_samples]
    if raw.ndim > 0:  # what the chunked path holds: what the evaluators keep, and a float32 copy of other dtypes
        dims = math.prod(raw.shape[1:])
        kept = sum(ev.kept_bytes(dims, calibration) for ev in evaluators)
        if need := kept + (0 if raw.dtype == np.float32 else 4 * dims):
            check_memory(len(raw), need, f"samples in {path}")
    out_dir = out if out is not None else path.parent
    for ev in evaluators:  # every report's files, before any evaluator's work
        report.check_out_dir(out_dir, force, ev.files)
    start = time.perf_counter()
    _prepare(evaluators, dataset, data_dir, calibration, log, progress)
    first = evaluators[0]
    samples = check_samples(raw, first.example_shape, str(path), any(ev.unit_range for ev in evaluators))
    log(f"evaluating {len(samples):,} samples from {path} against {dataset}: {', '.join(ev.kind for ev in evaluators)}")
    model = Model(path.stem, str(path))
    rows = {ev.kind: [ev.measure(model, samples, {})] for ev in evaluators}
    cals = {ev.kind: ev.calibrate(len(samples), seed, log) if calibration else None for ev in evaluators}
    info = {"dataset": dataset, "source": f"file {path.name}", "n_samples": len(samples), "seed": None,
            "seconds": round(time.perf_counter() - start, 2)}
    return _finish(evaluators, rows, cals, info, {}, {ev.kind: out_dir for ev in evaluators}, {})


def one_dataset(ckpt: Path, datasets: set[str]) -> str:
    """The dataset that the seeds in ckpt, trained on `datasets`, share; GancliError when they differ."""
    if len(datasets) > 1:
        raise GancliError(f"the seeds in {ckpt} were trained on different datasets: {', '.join(sorted(datasets))}")
    (dataset,) = datasets
    return dataset


def restore_runs(ckpt: Path, dataset: str | None, ema: bool) -> tuple[list, str]:
    """Each seed's run in ckpt, restored (G's moving average when the run keeps one and ema), and the dataset they
    were trained on; GancliError when that is not `dataset` (None: any)."""
    from gancli import rundir, sampling  # Orbax and the models load only for checkpoints

    runs = [sampling.restore(p, ema) for p in rundir.find_runs(ckpt)]
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
    evaluators: list,
    *,
    dataset: str | None = None,
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    data_dir=None,
    calibration: bool = True,
    out: Path | None = None,
    force: bool = False,
    ema: bool = True,
    log: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Evaluation]:
    """Every evaluator's report on a run (every seed of a multi-seed run), by kind. Each seed is restored once and
    its n_samples drawn once (from G's moving average when the run keeps one and ema), whatever the evaluators.

    A run's reports/ hold its latest evaluation and are rewritten each time (reproduce_table1.sh evaluates one run
    epoch after epoch); only a report in another folder (out) is kept unless force."""
    import time

    from gancli import conditional, judge, sampling

    _kinds(evaluators)
    check_count(n_samples, "--n-samples")
    ckpt = Path(ckpt)
    runs, trained_on = restore_runs(ckpt, dataset, ema)
    for ev in evaluators:
        ev.check(trained_on, runs)
    paths = [run.path for run in runs]
    out_dirs, seed_dirs = {}, {}
    for ev in evaluators:  # every report's files, before any evaluator's work
        out_dirs[ev.kind], seed_dirs[ev.kind] = report.check_run_out_dirs(ckpt, paths, out, force, ev.files)
    drawing = [ev for ev in evaluators if ev.draws]
    for run in runs if drawing else ():
        sampling.check_draw(run, n_samples)
    start = time.perf_counter()
    _prepare(evaluators, trained_on, data_dir, calibration, log, progress)
    # A conditional run's samples take the classes in turn (n_samples / n_classes each, as Mirza & Osindero's
    # 1,000 per class); a classifier then judges whether each obeys its label.
    cond = runs[0].config if drawing and runs[0].config.conditional else None
    labels = conditional.class_labels(cond, n_samples) if cond else None
    judged = judge.reference(trained_on, cond.n_classes, data_dir, log, progress) if cond else None

    rows = {ev.kind: [] for ev in evaluators}
    for run in runs:
        at = {"epoch": run.metadata.get("epoch"), "step": run.metadata.get("step")}
        samples = None
        if drawing:
            log(f"drawing {n_samples:,} samples from {run.path} (seed {seed})" + (", the classes in turn" if cond else ""))
            drawn = sampling.draw(run, n_samples, seed)["samples"]
            # A generator's range is its own design (e.g. a linear output layer): only NaN/inf make it unscorable.
            samples = check_samples(drawn, drawing[0].example_shape, f"the generator of {run.path}", unit_range=False)
        decay = sampling.ema_decay(run)
        extra = {"generator_ema": decay}
        if judged is not None:
            log(f"class accuracy and per-class Fréchet distance ({judged.judge.info['name']})")
            extra["conditional"] = judge.measure(samples, labels, judged, progress,
                                                 model_label(run.path, len(runs) > 1, decay))
        for ev in evaluators:
            if ev.draws:
                model = Model(model_label(run.path, len(runs) > 1, decay), str(run.path), run=run, **at)
                rows[ev.kind].append(ev.measure(model, samples, extra))
            else:
                label = model_label(run.path, len(runs) > 1, ev.decay(run))
                rows[ev.kind].append(ev.measure(Model(label, str(run.path), run=run, **at), None, {}))
    cals = {ev.kind: ev.calibrate(n_samples, seed, log) if calibration and ev.draws else None for ev in evaluators}
    extra = {}
    if cond:
        cond_cal = judge.calibrate(judged, labels, data_dir, progress) if judged and calibration else None
        section = {"conditional": judge.section(cond, n_samples, judged, cond_cal)}
        extra = {ev.kind: section for ev in drawing}
    what = "the moving average of G" if any(sampling.ema_decay(r) is not None for r in runs) else "G"
    info = {"dataset": trained_on, "source": f"{what} of the checkpoint", "n_samples": n_samples, "seed": seed,
            "seconds": round(time.perf_counter() - start, 2)}
    return _finish(evaluators, rows, cals, info, extra, out_dirs, seed_dirs)
