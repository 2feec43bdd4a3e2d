"""Datasets gancli does not build but finds prepared in the TFDS data dir (e.g. svhn_cropped built elsewhere)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gancli.data import catalog, prepared, reading
from gancli.errors import GancliError

# TFDS names are snake_case; a config may follow a slash. Anything else could walk out of data_dir.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$")


def find(name: str, data_dir: Path, known: list[str]) -> Path:
    """The prepared version folder of name, or a fast GancliError saying how to get it."""
    # Looking on disk first is what keeps this offline: TFDS itself would try to download for minutes.
    path = prepared.find_prepared(data_dir, name) if _NAME.match(name) else None
    if path is None and _NAME.match(name) and catalog.in_catalog(name):
        raise GancliError(catalog.not_prepared(name, data_dir))
    if path is None:
        raise GancliError(
            f"unknown dataset {name!r}: gancli builds {', '.join(known)}; it is not in the TFDS catalog, and {data_dir} "
            f"holds no prepared {name!r}; "
            f"prepare it with TFDS where there is network (`tfds build {name} --data_dir {data_dir} "
            "--file_format=array_record`) or point --data-dir at a data dir that has it"
        )
    return path


def load(name: str, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """float32 images in [0, 1] (uint8 / 255) and int64 labels of a split of a prepared dataset."""
    builder = prepared.open_prepared(path)
    if split not in builder.info.splits:
        raise GancliError(f"unknown split {split!r} for {name}; it has {', '.join(builder.info.splits)}")
    images, labels = reading.read_split(builder, split)
    return reading.to_unit(images), labels


def info(name: str, path: Path) -> dict:
    """Where a prepared dataset stands: the source and digests gancli's image builds record (gancli.data.image_sets);
    TFDS records no source checksums for the rest."""
    builder = prepared.open_prepared(path)
    problem = reading.format_problem(builder)
    meta = dict(builder.info.metadata or {})
    return {
        "state": "unavailable" if problem else "ready",
        "splits": {s: v.num_examples for s, v in builder.info.splits.items()},
        "source": meta.get("source") or f"TFDS dataset prepared at {path}",
        "sha256": dict(meta.get("sha256") or {}),
        "preprocessing": meta.get("preprocessing"),
        "version": str(builder.info.version),
        "path": str(path),
        "hint": problem,
    }
