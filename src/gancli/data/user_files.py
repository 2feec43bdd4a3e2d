"""CIFAR-10 and TFD from the user's own files: built once into the TFDS data dir by gancli's builders, then read
from there like mnist.

A file is found in TFDS's manual dir (<data_dir>/downloads/manual/) under its release name, or given with
--data-file PATH (train, evaluate, sample --nearest, datasets), which builds it in place; a prepared dataset is
never rebuilt from a different file behind the user's back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gancli.data import builders, cifar, fetch, prepared, reading, tfd
from gancli.data.tfds_sets import BuiltDataset
from gancli.errors import GancliError

USES = "train, evaluate, sample --nearest and datasets"


def manual_dir(data_dir: Path) -> Path:
    """TFDS's folder for files a user downloads by hand."""
    return Path(data_dir) / "downloads" / "manual"


class GancliCifar10(builders._ImageBuilder, skip_registration=True):
    """CIFAR-10 from its python release. Splits as goodfeli/adversarial's cifar10_*.yaml: train = rows [0:40000]
    of the training file (data_batch_1-4), validation = [40000:50000] (data_batch_5, its monitoring set), test =
    test_batch. Stored as uint8 pixels; global contrast normalisation is applied when cifar10_gcn is read."""

    name = "gancli_cifar10"
    IMAGE_SHAPE = cifar.SHAPE
    LABEL_NAMES = cifar.LABEL_NAMES
    DESCRIPTION = "CIFAR-10 (python release): train = data_batch_1-4, validation = data_batch_5, test = test_batch."
    HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"

    def _split_generators(self, dl_manager):
        source = self._require_source()
        splits, sha256, official = cifar.read(source, self._progress)
        if source.is_file():
            sha256 = {source.name: fetch.sha256_file(source), **sha256}
        release = "the official release" if official else "batches differ from the official release's md5s"
        self._record_provenance(f"{source} ({release})", sha256)
        self.info.metadata.update({"official_release": official})
        return {split: self._examples(x, y, split) for split, (x, y) in splits.items()}


class _GancliTfd(builders._ImageBuilder, skip_registration=True):
    """The Toronto Face Database in the folds of its .mat file, as pylearn2's TFD class reads them.

    train = fold 0's 'unlabeled' set: goodfeli/adversarial's tfd_pretrain/pretrain.yaml and train.yaml train on
    TFD(which_set='unlabeled', scale=True) with pylearn2's default fold=0, and monitor TFD('valid'); its
    parzen_ll.py scores fold 0 by default (--fold 0), choosing sigma on TFD('valid', fold) and reporting on its
    test set. validation / test = fold 0's valid / test sets; labeled_train = fold 0's labelled train set;
    foldK_train / foldK_validation / foldK_test = folds 1-4, for the paper's spread across folds. Pixels are
    k/255 (scale=True); expression labels 0-6 (labs_ex - 1, as pylearn2), -1 for unlabelled faces.
    """

    SIZE = 48
    LABEL_NAMES = (*(f"expression {i}" for i in range(1, tfd.EXPRESSIONS + 1)), "unlabeled")
    HOMEPAGE = "http://aclab.ca/users/josh/TFD.html"

    def _split_generators(self, dl_manager):
        source = self._require_source()
        what, size = f"reading {source.name}", source.stat().st_size
        if self._progress is not None:  # scipy reads the .mat in one call: a bar that says what is being read
            self._progress(what, 0, size)
        splits, sha256, same = tfd.read(source, self.SIZE)
        if self._progress is not None:
            self._progress(what, size, size)
        empty = [split for split, (x, _) in splits.items() if len(x) == 0]
        if empty:
            raise GancliError(f"{source}: the folds leave {', '.join(empty)} empty; not TFD's fold layout")
        self._record_provenance(str(source), sha256)
        self.info.metadata.update({"unlabeled_same_in_every_fold": same})
        return {split: self._examples(x, y, split) for split, (x, y) in splits.items()}


class GancliTfd(_GancliTfd, skip_registration=True):
    name = "gancli_tfd"
    IMAGE_SHAPE = (48, 48, 1)
    DESCRIPTION = "Toronto Face Database 48x48 (TFD_48x48.mat) in its folds; train = fold 0's unlabeled set."


class GancliTfd96(_GancliTfd, skip_registration=True):
    name = "gancli_tfd96"
    SIZE = 96
    IMAGE_SHAPE = (96, 96, 1)
    DESCRIPTION = "Toronto Face Database 96x96 (TFD_96x96.mat) in its folds; train = fold 0's unlabeled set."


# ---- where the files are -------------------------------------------------------------------------------------


def _cifar_in(folder: Path) -> Path | None:
    archive, batches = folder / cifar.ARCHIVE, folder / cifar.FOLDER
    if archive.is_file():
        return archive
    return batches if batches.is_dir() and cifar.batch_folder(batches) else None


def _tfd_in(size: int) -> Callable[[Path], Path | None]:
    return lambda folder: p if (p := folder / tfd.FILES[size]).is_file() else None


_CIFAR_EXPECTS = f"{cifar.ARCHIVE} (or its extracted folder {cifar.FOLDER})"
EXPECTED = {GancliCifar10: _CIFAR_EXPECTS, GancliTfd: tfd.FILES[48], GancliTfd96: tfd.FILES[96]}
_FINDERS = {GancliCifar10: _cifar_in, GancliTfd: _tfd_in(48), GancliTfd96: _tfd_in(96)}


def _hint(builder_cls, data_dir: Path) -> str:
    return f"put {EXPECTED[builder_cls]} in {manual_dir(data_dir)}, or give its path with --data-file PATH ({USES})"


def _source(builder_cls, name: str) -> Callable[[Path], Path]:
    def get(data_dir: Path) -> Path:
        found = _FINDERS[builder_cls](manual_dir(data_dir))
        if found is None:
            raise GancliError(f"{name} needs {EXPECTED[builder_cls]}, which is not in {manual_dir(data_dir)}: {_hint(builder_cls, data_dir)}")
        return found

    return get


def _source_info(builder_cls) -> Callable[[Path], dict]:
    def info(data_dir: Path) -> dict:
        found = _FINDERS[builder_cls](manual_dir(data_dir))
        if found is None:
            return {"state": "needs a file", "source": EXPECTED[builder_cls], "sha256": {}, "hint": _hint(builder_cls, data_dir)}
        # Hashed when built, not here: describing must stay cheap.
        return {"state": "buildable", "source": str(found), "sha256": {}, "hint": None}

    return info


# ---- the datasets ------------------------------------------------------------------------------------------------


def _gcn(images: np.ndarray, labels: np.ndarray):
    return cifar.global_contrast_normalize(images), labels


def _faces(images: np.ndarray, labels: np.ndarray):
    return reading.to_unit(images), np.where(labels == tfd.UNLABELED_CLASS, -1, labels)


_CIFAR_SPLITS = {"train": 40_000, "validation": 10_000, "test": 10_000, "train_full": 50_000}
_TFD_SPLITS = {
    "train": None, "validation": None, "test": None, "labeled_train": None,
    **{f"fold{k}_{s}": None for k in range(1, tfd.FOLDS) for s in ("train", "validation", "test")},
}  # fmt: skip


def _dataset(name: str, description: str, builder_cls, splits, **more) -> BuiltDataset:
    return BuiltDataset(name=name, description=description, splits=splits, builder_cls=builder_cls,
                        get_source=_source(builder_cls, name), source_info=_source_info(builder_cls), **more)


CIFAR10 = _dataset(
    "cifar10", "CIFAR-10 from your cifar-10-python.tar.gz; the paper's split (validation = data_batch_5); pixels k/255",
    GancliCifar10, _CIFAR_SPLITS, combined={"train_full": "train+validation"},
)
CIFAR10_GCN = _dataset(
    "cifar10_gcn", "cifar10 with pylearn2's global contrast normalisation x 55 per image, as the paper's CIFAR-10 models saw it",
    GancliCifar10, _CIFAR_SPLITS, combined={"train_full": "train+validation"}, convert=_gcn,
    preprocessing="global contrast normalisation: per image, minus its mean, over its L2 norm, times 55 (pylearn2 gcn=55.)",
)
TFD = _dataset(
    "tfd", "Toronto Face Database 48x48 from your TFD_48x48.mat: train = fold 0's unlabeled set, as the paper; pixels k/255",
    GancliTfd, _TFD_SPLITS, convert=_faces,
)
TFD96 = _dataset(
    "tfd96", "Toronto Face Database 96x96 from your TFD_96x96.mat, in the same folds as tfd",
    GancliTfd96, _TFD_SPLITS, convert=_faces,
)
DATASETS = {ds.name: ds for ds in (CIFAR10, CIFAR10_GCN, TFD, TFD96)}


# ---- --data-file -------------------------------------------------------------------------------------------------


def kind_of(path: Path):
    """The builder for a user's file or folder, told by its content; GancliError for anything else."""
    if not path.exists():
        raise GancliError(f"--data-file {path} does not exist")
    if path.is_dir():
        if cifar.batch_folder(path) is None:
            raise GancliError(f"--data-file {path} is a folder without CIFAR-10's batch files (data_batch_1 ... test_batch)")
        return GancliCifar10
    if not path.is_file():  # a pipe or a device would block or never end
        raise GancliError(f"--data-file {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise GancliError(f"--data-file {path} cannot be read: {e.strerror or e}") from None
    if head.startswith(b"MATLAB "):
        return GancliTfd if tfd.image_size(path) == 48 else GancliTfd96
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":  # gzip, or a plain tar
        return GancliCifar10
    raise GancliError(
        f"--data-file {path} is not a file gancli reads: expected {_CIFAR_EXPECTS}, {tfd.FILES[48]} or {tfd.FILES[96]}"
    )


def use_file(path, data_dir: Path, dataset: str | None = None, progress=None) -> list[str]:
    """Build the dataset that a user's file holds into data_dir (once); return the dataset names it serves;
    progress(what, done, total) while the file is read.

    When that dataset is already prepared, the file must be the one it was built from: a different one is refused
    with the folder to delete, never silently used or ignored. It goes on through the build.
    """
    path = Path(path).expanduser().absolute()
    builder_cls = kind_of(path)
    served = [name for name, ds in DATASETS.items() if ds.builder_cls is builder_cls]
    if dataset is not None and dataset not in served:
        raise GancliError(f"--data-file {path} holds {EXPECTED[builder_cls]} for {' and '.join(served)}, not data for {dataset}")
    ds = DATASETS[served[0]]
    if (done := ds.prepared(data_dir)) is not None:
        _check_same(done, path, builder_cls, progress)
    else:
        ds.ensure_prepared(data_dir, path, progress)
    return served


def _check_same(done: Path, path: Path, builder_cls, progress=None) -> None:
    """GancliError unless the prepared dataset at done was built from the same bytes as path."""
    meta = dict(prepared.open_prepared(done, builder_cls.features_json()).info.metadata or {})
    recorded = dict(meta.get("sha256") or {})
    if path.is_file() and fetch.sha256_file(path) in recorded.values():
        return
    if builder_cls is GancliCifar10:  # an archive against a build from the folder, or the other way round
        batches = cifar.read_batches(path, progress)
        if all(recorded.get(name) == hashlib.sha256(raw).hexdigest() for name, raw in batches.items()):
            return
    raise GancliError(
        f"{done.parent.name} in {done.parent.parent} was built from {meta.get('source', 'another file')}, "
        f"whose contents differ from {path}: delete {done.parent} to rebuild it from {path}"
    )
