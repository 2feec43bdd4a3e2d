"""Read (gzipped) IDX files, the format of MNIST and Fashion-MNIST, with their headers checked."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from gancli.data import bounded
from gancli.errors import GancliError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "GANCLI_FASHION_MNIST_DIR"

# Split -> (images file, labels file): the standard names the Debian package ships.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


# The largest file of either release is 60,000 28x28 images, 47 MB; a header declaring more than this is not one.
MAX_IDX_BYTES = 64 << 20
_HOLDS = f"MNIST's and Fashion-MNIST's IDX files hold ({MAX_IDX_BYTES >> 20} MiB at most)"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 IDX array of the given rank, with magic number and size checked against the header; a header
    declaring far more than the releases hold, or data past what it declares (a gzip bomb), is refused as soon
    as it is seen, before the rest is read or unpacked."""
    header = 4 + 4 * ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            head = f.read(header)
            if len(head) < header:
                raise GancliError(f"{path} is too short for an IDX header")
            # Magic: two zero bytes, type 0x08 (unsigned byte), then the rank.
            if head[:4] != bytes([0, 0, 0x08, ndim]):
                raise GancliError(f"{path} is not a rank-{ndim} uint8 IDX file (magic {head[:4].hex()})")
            shape = tuple(int(d) for d in np.frombuffer(head, ">u4", count=ndim, offset=4))
            expected = math.prod(shape)
            if expected > MAX_IDX_BYTES:
                raise bounded.refusal(path, f"its header declares {list(shape)}, {expected:,} bytes", _HOLDS)
            data = bounded.read_at_most(f, expected, lambda: GancliError(
                f"{path} holds more data than its header {list(shape)} says ({expected} bytes): corrupt; not reading on"))
    except (OSError, EOFError, zlib.error) as e:
        raise GancliError(f"{path} is truncated or not valid gzip ({e})") from None
    if len(data) != expected:
        raise GancliError(f"{path} holds {len(data)} data bytes, its header {list(shape)} says {expected}: truncated or corrupt")
    return np.frombuffer(data, np.uint8).reshape(shape)


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
