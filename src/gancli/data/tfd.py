"""Read the Toronto Face Database's TFD_48x48.mat / TFD_96x96.mat (MATLAB v5 files) into the splits of its folds.

The file holds `images` [N, S, S] uint8, `labs_ex` [N, 1] (expression 1..7, -1 when unlabelled), `labs_id` [N, 1]
and `folds` [N, 5]: per fold, 0 = unlabeled, 1 = train, 2 = valid, 3 = test (pylearn2's TFD.mapper). Every known
release of it is a v5 .mat, which scipy (already installed with JAX) reads; a v7.3 (HDF5) file is refused with a
way out, rather than pulling in h5py for a format no release uses.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from gancli.data import bounded
from gancli.data.fetch import sha256_file
from gancli.errors import GancliError

FILES = {48: "TFD_48x48.mat", 96: "TFD_96x96.mat"}
FOLDS = 5
UNLABELED, TRAIN, VALID, TEST = range(4)  # the codes in `folds`, as pylearn2's TFD.mapper names them
EXPRESSIONS = 7
UNLABELED_CLASS = EXPRESSIONS  # the class index an unlabelled image is stored under; loaded back as -1
_VARIABLES = ("images", "labs_ex", "folds")
_HEADER = 128
# Each release file holds 102,236 faces as uint8 (236 MB at 48x48, 942 MB at 96x96, less where compressed). A file
# or a declared images array past four times that is refused before scipy reads it, which it would do whole.
RELEASE_FACES = 102_236


def max_bytes(side: int) -> int:
    """The most bytes gancli reads as a TFD file of side x side faces (or as its images array)."""
    return 4 * RELEASE_FACES * side * side


def _holds(side: int) -> str:
    return f"the {FILES[side]} release holds ({RELEASE_FACES:,} faces, {max_bytes(side) >> 20} MiB at most)"
_COMPRESSED = 15  # miCOMPRESSED: a zlib-compressed element, not padded to 8 bytes


def mat_version(path: Path) -> str | None:
    """'5' or '7.3' from a .mat file's text header, None when it is not a MATLAB file."""
    with open(path, "rb") as f:
        head = f.read(_HEADER)
    if not head.startswith(b"MATLAB "):
        return None
    return "7.3" if head.startswith(b"MATLAB 7.3 MAT-file") else "5"


def _check_v5(path: Path) -> None:
    version = mat_version(path)
    if version is None:
        raise GancliError(f"{path} is not a MATLAB .mat file (no 'MATLAB ... MAT-file' header)")
    if version == "7.3":
        raise GancliError(
            f"{path} is a MATLAB v7.3 (HDF5) file; gancli reads the v5 .mat that TFD is released as: "
            "resave it with MATLAB or Octave as `save -v7`"
        )


def _v5_complete(path: Path) -> bool:
    """Whether every top-level element of a v5 .mat fits in the file: scipy lists the variables of a truncated
    file up to the cut without a word, so a cut-off file would otherwise pass for one lacking variables."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_HEADER)
        order = "<" if head[126:128] == b"IM" else ">"
        offset = _HEADER
        while offset < size:
            f.seek(offset)
            tag = f.read(8)
            if len(tag) < 8:
                return False
            kind, nbytes = struct.unpack(order + "II", tag)
            if kind >> 16:  # a small element: its data sit in the tag itself
                offset += 8
                continue
            if offset + 8 + nbytes > size:
                return False
            offset += 8 + nbytes + (0 if kind == _COMPRESSED else -nbytes % 8)
    return True


def image_size(path: Path) -> int:
    """The side of the images a TFD .mat holds (48 or 96), read from its variable headers, not its data."""
    from scipy import io as sio

    _check_v5(path)
    largest = max(FILES)
    if (size := path.stat().st_size) > max_bytes(largest):
        raise bounded.refusal(path, f"is {size:,} bytes", _holds(largest))
    if not _v5_complete(path):
        raise GancliError(f"{path} is truncated: its last variable runs past the end of the file")
    try:
        shapes = {name: shape for name, shape, _ in sio.whosmat(str(path))}
    except Exception as e:  # scipy fails in many ways on damaged files; all mean the same here
        raise GancliError(f"{path} is not a readable .mat file ({type(e).__name__}: {_line(e)})") from None
    missing = [v for v in _VARIABLES if v not in shapes]
    if missing:
        raise GancliError(f"{path} has no {', '.join(missing)}: not a TFD file (it holds {', '.join(shapes) or 'nothing'})")
    shape = tuple(shapes["images"])
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in FILES:
        raise GancliError(f"{path}: images are shaped {shape}, expected [N, 48, 48] or [N, 96, 96] as TFD's")
    side = int(shape[1])
    if size > max_bytes(side):
        raise bounded.refusal(path, f"is {size:,} bytes", _holds(side))
    if math.prod(shape) > max_bytes(side) or any(math.prod(shapes[v]) > 4 * RELEASE_FACES * FOLDS for v in _VARIABLES[1:]):
        raise bounded.refusal(path, f"its variables declare {', '.join(f'{v} {list(shapes[v])}' for v in _VARIABLES)}",
                              _holds(side))
    return side


def read(path: Path, size: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str], bool]:
    """Fold 0's unlabeled (train), valid and test sets plus each fold's labelled sets, with the file's sha256 and
    whether the unlabelled images are the same in every fold.

    Splits: train = fold 0's unlabeled set (what the adversarial repo's tfd_pretrain yaml trained on:
    TFD('unlabeled'), fold 0 by default, scale=True), validation / test = fold 0's valid / test sets (what its
    parzen_ll.py scored by default), labeled_train = fold 0's labelled train set, and foldK_train / foldK_validation
    / foldK_test for folds 1-4. Images keep their order in the file within each split.
    """
    from scipy import io as sio

    got = image_size(path)
    if got != size:
        raise GancliError(f"{path} holds {got}x{got} faces: it is {FILES[got]}, not the {FILES[size]} this dataset is")
    try:
        mat = sio.loadmat(str(path), variable_names=list(_VARIABLES))
    except Exception as e:
        raise GancliError(f"{path} cannot be read: truncated or damaged ({type(e).__name__}: {_line(e)})") from None
    images, labs_ex, folds = (np.asarray(mat[v]) for v in _VARIABLES)
    n = len(images)
    labs_ex = labs_ex.reshape(-1)
    if folds.shape != (n, FOLDS) or labs_ex.shape != (n,):
        raise GancliError(f"{path}: folds {folds.shape} and labs_ex {labs_ex.shape} do not match {n} images")
    if folds.size and not np.isin(folds, (UNLABELED, TRAIN, VALID, TEST)).all():
        raise GancliError(f"{path}: folds hold codes other than 0-3 (unlabeled, train, valid, test)")
    if labs_ex.size and not np.isin(labs_ex, (-1, *range(1, EXPRESSIONS + 1))).all():
        raise GancliError(f"{path}: labs_ex holds values other than -1 and 1-{EXPRESSIONS}")
    pixels = _uint8(images, path)
    labels = np.where(labs_ex >= 1, labs_ex - 1, UNLABELED_CLASS).astype(np.int64)

    def take(fold: int, code: int):
        rows = np.flatnonzero(folds[:, fold] == code)
        return pixels[rows], labels[rows]

    splits = {"train": take(0, UNLABELED), "validation": take(0, VALID), "test": take(0, TEST), "labeled_train": take(0, TRAIN)}
    for k in range(1, FOLDS):
        splits.update({f"fold{k}_train": take(k, TRAIN), f"fold{k}_validation": take(k, VALID), f"fold{k}_test": take(k, TEST)})
    same = bool(all(np.array_equal(folds[:, 0] == UNLABELED, folds[:, k] == UNLABELED) for k in range(1, FOLDS)))
    return splits, {path.name: sha256_file(path)}, same


def _uint8(images: np.ndarray, path: Path) -> np.ndarray:
    """(N, S, S, 1) uint8 pixels; float images are accepted only when they hold whole numbers 0-255."""
    if images.dtype != np.uint8:
        if images.dtype.kind not in "uif" or (
            images.size and (not np.array_equal(images, np.rint(images)) or images.min() < 0 or images.max() > 255)
        ):
            raise GancliError(f"{path}: images are {images.dtype} values, not the 0-255 pixels of TFD")
        images = images.astype(np.uint8)
    return np.ascontiguousarray(images)[..., None]


def _line(e: BaseException) -> str:
    return (" ".join(str(e).split()) or type(e).__name__)[:200]
