"""Read (gzipped) IDX files, the format of MNIST and Fashion-MNIST, with their headers checked."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from gancli.errors import GancliError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "GANCLI_FASHION_MNIST_DIR"

# Split -> (images file, labels file): the standard names the Debian package ships.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 IDX array of the given rank, with magic number and size checked against the header."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise GancliError(f"{path} is truncated or not valid gzip ({e})") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GancliError(f"{path} is too short for an IDX header")
    # Magic: two zero bytes, type 0x08 (unsigned byte), then the rank.
    if data[:4] != bytes([0, 0, 0x08, ndim]):
        raise GancliError(f"{path} is not a rank-{ndim} uint8 IDX file (magic {data[:4].hex()})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        got = len(data) - header
        says = f"its header {list(shape)} says {expected}"
        raise GancliError(f"{path} holds {got} data bytes, {says}: truncated or corrupt")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST IDX files are read from: $GANCLI_FASHION_MNIST_DIR or Debian's folder."""
    override = os.environ.get(FASHION_MNIST_ENV)
    return Path(override) if override else DEBIAN_FASHION_MNIST_DIR


def fashion_mnist_paths(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """The four IDX paths when all are present, else None."""
    paths = {split: (folder / im, folder / lb) for split, (im, lb) in FASHION_MNIST_FILES.items()}
    return paths if all(p.is_file() for pair in paths.values() for p in pair) else None


def read_labelled_images(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 1) images and int64 labels from an IDX pair that must agree in length."""
    x = read_idx(images, 3)
    y = read_idx(labels, 1)
    if len(x) != len(y):
        raise GancliError(f"{images.name} has {len(x)} images but {labels.name} has {len(y)} labels")
    return x[..., None], y.astype(np.int64)
