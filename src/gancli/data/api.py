"""gancli's data API: load a split, describe what is available, and say where data came from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gancli.data import catalog, generic, image_sets, prepared, reading, user_files
from gancli.data.registry import DATASETS, ArrayDataset
from gancli.errors import GancliError

DATA_DIR_ENV = "TFDS_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The TFDS data dir: the argument, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    chosen = data_dir if data_dir else os.environ.get(DATA_DIR_ENV) or "~/tensorflow_datasets"
    return Path(chosen).expanduser().absolute()


def _own_folders() -> set[str]:
    """Folder names of gancli's own builders, listed under their gancli names instead."""
    return {ds.builder_cls.name for ds in DATASETS.values() if hasattr(ds, "builder_cls")}


def _own(name: str, split: str):
    """gancli's own dataset of that name (None for any other name), its split checked; GancliError for the folder
    name gancli stores one of them under, and for a split it does not have."""
    if name in _own_folders():
        raise GancliError(f"{name!r} is where gancli stores one of {', '.join(DATASETS)}; load that name instead")
    if ds := DATASETS.get(name):
        if split not in ds.splits:
            raise GancliError(f"unknown split {split!r} for {name}; choose from {', '.join(ds.splits)}")
    return ds


def load(name: str, split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 images in [0, 1] shaped (N, H, W, C) and int64 labels; builds gancli's datasets on first use."""
    root = resolve_data_dir(data_dir)
    if ds := _own(name, split):
        return ds.load(split, root)
    tname = catalog.catalog_name(name)
    return generic.load(tname, split, generic.find(tname, root, sorted(DATASETS)))


def source(name: str, split: str, data_dir: str | os.PathLike | None = None) -> reading.SplitSource:
    """Random access to a split's stored uint8 rows, for streaming (gancli.streaming); nothing is read into memory.
    GancliError for a dataset that is made in memory or converted as it is read (toy sets, cifar10_gcn, tfd), which
    cannot be streamed, and for an unknown split."""
    root = resolve_data_dir(data_dir)
    if ds := _own(name, split):
        if not hasattr(ds, "ensure_prepared") or getattr(ds, "convert", None) is not None or split in getattr(ds, "combined", {}):
            raise GancliError(f"--stream: {name} {split} is made in memory or converted as it is read; it cannot be "
                              "streamed (train it without --stream)")
        builder = prepared.open_prepared(ds.ensure_prepared(root), ds.builder_cls.features_json())
        return reading.SplitSource(builder, split)
    tname = catalog.catalog_name(name)
    builder = prepared.open_prepared(generic.find(tname, root, sorted(DATASETS)))
    if split not in builder.info.splits:
        raise GancliError(f"unknown split {split!r} for {name}; it has {', '.join(builder.info.splits)}")
    return reading.SplitSource(builder, split)


def prepared_bytes(name: str, split: str, data_dir: str | os.PathLike | None = None) -> int | None:
    """The uint8 bytes of a split of a dataset found prepared in the data dir that gancli does not know by name (an
    image folder, a TFDS catalog set), from its metadata alone; None for any other dataset, or one that cannot be
    streamed. For the choice to stream: gancli's named sets are small, and are never looked at here."""
    root = resolve_data_dir(data_dir)
    tname = catalog.catalog_name(name)
    if name in DATASETS or name in _own_folders() or not generic._NAME.match(tname) or prepared.find_prepared(root, tname) is None:
        return None
    try:
        return source(name, split, data_dir).nbytes
    except GancliError:
        return None


_DEFAULTS = {"state": "ready", "splits": {}, "source": "", "sha256": {}, "version": "", "path": None, "hint": None,
             "preprocessing": None}


def _entry(name: str, description: str, info: dict) -> dict:
    """A describe() row: every field present, in one fixed order."""
    return {"name": name, "description": description, **{k: info.get(k, v) for k, v in _DEFAULTS.items()}}


def describe(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One entry per known dataset and per dataset prepared in the data dir; never fetches or builds."""
    root = resolve_data_dir(data_dir)
    entries = [_entry(ds.name, ds.description, _info_or_problem(ds.info, root)) for ds in DATASETS.values()]
    own = _own_folders()
    for name, path in prepared.list_prepared(root).items():
        if name.split("/")[0] not in own and name not in DATASETS:
            info = _info_or_problem(lambda p: generic.info(name, p), path)
            kind = {image_sets.FOLDER_PREFIX: "image folder built by gancli", catalog.RESIZED_PREFIX: "TFDS catalog dataset resized by gancli"}
            entries.append(_entry(name, next((v for k, v in kind.items() if name.startswith(k)), "prepared TFDS dataset"), info))
    return entries


def _info_or_problem(info, path: Path) -> dict:
    """info(path), or an 'unavailable' entry carrying the error: one damaged dataset must not hide the rest."""
    try:
        return info(path)
    except GancliError as e:
        return {"state": "unavailable", "source": str(path), "hint": str(e)}


def provenance(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """JSON-serialisable record of a dataset's origin, for checkpoint metadata; never fetches or builds."""
    root = resolve_data_dir(data_dir)
    if ds := DATASETS.get(name):
        entry = _entry(name, ds.description, ds.info(root))
    else:
        tname = catalog.catalog_name(name)
        entry = _entry(name, "prepared TFDS dataset", generic.info(tname, generic.find(tname, root, sorted(DATASETS))))
    keys = ("source", "sha256", "splits", "version", "state", "path")
    scale = None if isinstance(DATASETS.get(name), ArrayDataset) else reading.PIXEL_SCALE  # toy sets are not pixels
    out = {"dataset": name, **{k: entry[k] for k in keys}, "pixel_scale": scale}
    if preprocessing := getattr(DATASETS.get(name), "preprocessing", None) or entry.get("preprocessing"):
        out["preprocessing"] = preprocessing
    return out


def use_file(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, dataset: str | None = None,
             progress=None) -> list[str]:
    """Build the dataset a user's file holds (CIFAR-10's python release, a TFD .mat) into the data dir, once; the
    names of the datasets it serves. With dataset, the file must be one for it. progress(what, done, total) while
    the file is read and through the build."""
    return user_files.use_file(path, resolve_data_dir(data_dir), dataset, progress)


def use_folder(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, image_size: int = 64,
               channels: int | None = None, strict: bool = False) -> str:
    """Build a folder of images into the data dir (once per content: gancli.data.image_sets); the dataset name to
    train, sample and evaluate with."""
    return image_sets.use_folder(path, resolve_data_dir(data_dir), image_size, channels, strict)


def is_folder_argument(text: str) -> bool:
    """Whether a dataset argument names a folder of images rather than a dataset."""
    return image_sets.is_folder_argument(text)


FOLDER_IMAGE_SIZE = 64  # a folder's side when --image-size is not given: DCGAN's classic size


def dataset_argument(text: str | None, data_dir: str | os.PathLike | None = None, image_size: int | None = None,
                     channels: int | None = None, strict: bool = False, download: bool = False) -> str | None:
    """The dataset name a command line's dataset argument trains on. A folder is built first (image_size, channels
    and strict apply to it); a TFDS catalog name is prepared first with download and resized with image_size
    (gancli.data.catalog); any other name is returned as it is, and found when loaded. GancliError for options that
    do not apply."""
    if text is not None and is_folder_argument(text):
        if download:
            raise GancliError("--download applies to a TFDS catalog dataset, not to a folder")
        return use_folder(text, data_dir, image_size or FOLDER_IMAGE_SIZE, channels, strict)
    if text is not None and text not in DATASETS and (image_size is not None or channels is not None or download):
        if strict:
            raise GancliError("--strict applies to a folder of images")
        return catalog.use(text, resolve_data_dir(data_dir), image_size, channels, download)
    given = [flag for flag, v in (("--image-size", image_size), ("--channels", channels), ("--strict", strict),
                                  ("--download", download)) if v]
    if given:
        what = f"gancli's own {text!r}" if text else "a run without a dataset argument"
        raise GancliError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a folder of images or a TFDS "
                          f"catalog dataset, not to {what}" + (f" (tfds:{text} is the catalog's)" if text else ""))
    return text
