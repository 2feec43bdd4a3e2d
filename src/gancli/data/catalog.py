"""Datasets of the TFDS catalog (celeb_a, cifar10, svhn_cropped ...) by name: read where they are prepared in the
data dir, downloaded and prepared by TFDS's own builder only when the user asks (--download), and resized to one
shape (--image-size) into a gancli dataset as image folders are (gancli.data.image_sets).

A name gancli defines itself (mnist, cifar10 ...) means gancli's build; `tfds:NAME` always means the catalog's.
Offline, a catalog name that is not prepared is one line at once: nothing calls download_and_prepare unasked.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from gancli.data import image_sets, prepared, reading
from gancli.errors import GancliError

PREFIX = "tfds:"
RESIZED_PREFIX = "tfds_"
_CHUNK = 1024


def catalog_name(name: str) -> str:
    """The TFDS name a dataset argument means: without the tfds: prefix."""
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def in_catalog(name: str) -> bool:
    """Whether TFDS knows a builder of this name ('ds' or 'ds/config'); a lookup in its registry, no network."""
    return name.split("/")[0] in tfds.list_builders(with_community_datasets=False)


def not_prepared(name: str, data_dir: Path) -> str:
    """The one line for a catalog dataset that is not prepared in data_dir."""
    return (f"{name} is in the TFDS catalog but not prepared in {data_dir}: pass --download to have TFDS download and "
            f"prepare it there (needs the network), or prepare it where there is network (`tfds build {name} "
            f"--data_dir {data_dir} --file_format=array_record`) and point --data-dir at it")


def download(name: str, data_dir: Path) -> Path:
    """Prepare a catalog dataset with TFDS's own builder, as array_record (what gancli reads without TensorFlow);
    the prepared folder. Only called for --download."""
    if not in_catalog(name):
        raise GancliError(f"--download: {name!r} is not a dataset of the TFDS catalog (`tfds.list_builders()`)")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            print(f"gancli: TFDS downloads and prepares {name} into {data_dir} (--download)", file=sys.stderr)
            with contextlib.redirect_stdout(sys.stderr):  # TFDS's notes are not the program's results
                builder.download_and_prepare(file_format="array_record", download_dir=data_dir / "downloads")
    except GancliError:
        raise
    except Exception as e:  # no network, a missing extra package, a licence that needs a manual download
        raise GancliError(f"--download {name}: TFDS could not prepare it ({type(e).__name__}: {prepared.one_line(e)})") from None
    path = prepared.find_prepared(data_dir, name)
    if path is None:
        raise GancliError(f"--download {name}: TFDS finished but left no prepared dataset in {data_dir / name}")
    return path


def resized_name(name: str, size: int, channels: int) -> str:
    """tfds_<name, its config after a double underscore>_<shape>."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("/", "__")).strip("_")
    return f"{RESIZED_PREFIX}{slug}_{image_sets.shape_name(size, channels)}"


def use(name: str, data_dir: Path, image_size: int | None, channels: int | None, download_it: bool) -> str:
    """The dataset name to train on for a catalog name: prepared first when download_it; with image_size, resized
    once into a gancli dataset (resized_name); else the name itself, read as TFDS prepared it."""
    tname = catalog_name(name)
    path = prepared.find_prepared(data_dir, tname)
    if path is None:
        if not in_catalog(tname):
            raise GancliError(f"unknown dataset {tname!r}: not one of gancli's, not in the TFDS catalog, and not prepared in {data_dir}")
        if not download_it:
            raise GancliError(not_prepared(tname, data_dir))
        path = download(tname, data_dir)
    if image_size is None:
        if channels is not None:
            raise GancliError("--channels applies with --image-size to a TFDS catalog dataset (it is resized into a dataset of its own)")
        return name
    if image_size < 1:
        raise GancliError(f"--image-size must be >= 1 (got {image_size})")
    builder = prepared.open_prepared(path)
    if problem := reading.format_problem(builder):
        raise GancliError(problem)
    image_key, label_key = reading.image_and_label_keys(builder)
    shape = builder.info.features[image_key].shape
    if channels is None:
        channels = 1 if shape and shape[-1] == 1 else 3
    if channels not in (1, 3):
        raise GancliError(f"--channels must be 1 or 3 (got {channels})")
    out = resized_name(tname, image_size, channels)
    if prepared.find_prepared(data_dir, out) is not None:
        return out
    _resize_into(builder, tname, path, out, image_key, label_key, image_size, channels, data_dir)
    return out


def _resize_into(builder, tname, path, out, image_key, label_key, size, channels, data_dir) -> None:
    """Build `out` from every split of a prepared catalog dataset, each image fitted as a folder's are."""
    Image, _ = image_sets._pillow()
    splits = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split)
        n = len(source)
        images = np.empty((n, size, size, channels), np.uint8)
        labels = np.full(n, -1, np.int64)
        for start in range(0, n, _CHUNK):
            for i, row in enumerate(source.__getitems__(list(range(start, min(n, start + _CHUNK)))), start):
                pixels = np.asarray(row[image_key])
                if pixels.dtype != np.uint8:
                    raise GancliError(f"{tname} images are {pixels.dtype}; gancli reads uint8 images only")
                images[i] = image_sets.fit(Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels), size, channels)
                if label_key is not None:
                    labels[i] = int(row[label_key])
        splits[split] = (images, labels)
    classes = builder.info.features[label_key].names if label_key is not None else []
    source = f"TFDS {tname} {builder.info.version} prepared at {path}, feature {image_key!r}" + (f", labels {label_key!r}" if label_key else "")
    meta = {"catalog": {"name": tname, "version": str(builder.info.version), "image_size": size, "channels": channels,
                        "image_feature": image_key, "label_feature": label_key},
            "preprocessing": image_sets.PREPROCESSING}
    rows = image_sets.ImageRows(splits, source, {}, meta)
    prepared.build(image_sets.make_builder(out, (size, size, channels), classes, rows, data_dir), f"{out} from {tname}")
