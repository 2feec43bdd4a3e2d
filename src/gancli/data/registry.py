"""The datasets gancli knows by name. Adding one (a toy set, say) is one entry in DATASETS."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from gancli.data import tfds_sets, toy, user_files


class Dataset(Protocol):
    """What load, describe and provenance need from a named dataset."""

    name: str
    description: str
    splits: Mapping[str, int]  # expected sizes, known before anything is built

    def load(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """float32 features and int64 labels of a split already known to exist."""

    def info(self, data_dir: Path) -> dict:
        """state, splits, source, sha256, version, path and hint, without fetching or building."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """A dataset made in memory by a function (split -> arrays), e.g. a seeded toy distribution."""

    name: str
    description: str
    splits: Mapping[str, int]
    make: Callable[[str], tuple[np.ndarray, np.ndarray]]
    source: str = "generated"
    version: str = "1.0.0"

    def load(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """The arrays for split, made afresh; data_dir is not used."""
        return self.make(split)

    def info(self, data_dir: Path) -> dict:
        """Always ready: nothing to fetch or build."""
        splits = dict(self.splits)
        return {"state": "ready", "splits": splits, "source": self.source, "sha256": {}, "version": self.version}


TOY1D = ArrayDataset("toy1d", "1-D Gaussian N(2, 0.5^2), the game of the paper's Figure 1", toy.SPLITS, toy.make_toy1d,
                     source="generated from a fixed seed")
RING8 = ArrayDataset("ring8", "8 Gaussians (std 0.05) on a circle of radius 2, to make mode collapse visible",
                     toy.SPLITS, toy.make_ring8, source="generated from a fixed seed")

DATASETS: dict[str, Dataset] = {
    ds.name: ds for ds in (tfds_sets.MNIST, tfds_sets.FASHION_MNIST, *user_files.DATASETS.values(), TOY1D, RING8)
}
