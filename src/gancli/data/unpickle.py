"""Read the classic mnist.pkl.gz without letting the pickle run code."""

from __future__ import annotations

import gzip
import io
import pickle
import zlib

import numpy as np

from gancli.errors import GancliError

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """What Python 3 protocol-2 pickles call to rebuild bytes; any codec but latin1 is refused."""
    if encoding != "latin1":
        raise GancliError(f"refusing to unpickle bytes encoded as {encoding!r}")
    return text.encode("latin1")


# The only globals a pickle of plain numpy arrays needs. numpy 1.x pickles name numpy.core, which
# numpy 2 renamed to numpy._core; Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1").
_ALLOWED = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only numpy's array-rebuilding globals."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise GancliError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed") from None


def loads_arrays(data: bytes):
    """Unpickle bytes that may hold only numpy arrays, tuples, lists and numbers."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except GancliError:
        raise
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise GancliError(f"cannot unpickle the data: {type(e).__name__}: {e}") from None


def _check_pair(pair, what: str) -> tuple[np.ndarray, np.ndarray]:
    """One (images, labels) pair of the classic file, checked."""
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(a, np.ndarray) for a in pair)):
        raise GancliError(f"mnist.pkl.gz: the {what} split is not an (images, labels) pair of arrays")
    x, y = pair
    if x.ndim != 2 or x.shape[1] != 28 * 28 or x.dtype != np.float32:
        raise GancliError(f"mnist.pkl.gz: {what} images are {x.dtype}{list(x.shape)}, expected float32[N, 784]")
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise GancliError(f"mnist.pkl.gz: {what} labels are {y.dtype}{list(y.shape)}, expected int[{x.shape[0]}]")
    return x, y


def read_mnist_pickle(gz_bytes: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classic file's train/validation/test splits as uint8 (N, 28, 28, 1) images and int64 labels."""
    try:
        raw = gzip.decompress(gz_bytes)
    except (OSError, EOFError, zlib.error) as e:
        raise GancliError(f"mnist.pkl.gz is not valid gzip data: {e}") from None
    obj = loads_arrays(raw)
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise GancliError("mnist.pkl.gz does not hold the (train, valid, test) triple")
    splits = {}
    for split, pair in zip(("train", "validation", "test"), obj):
        x, y = _check_pair(pair, split)
        scaled = x * np.float32(256)
        pixels = np.rint(scaled)
        # The classic pixels are k/256 exactly; anything else would not round-trip through uint8.
        if not (np.array_equal(pixels, scaled) and pixels.min(initial=0) >= 0 and pixels.max(initial=0) <= 255):
            raise GancliError(f"mnist.pkl.gz: {split} pixels are not multiples of 1/256 in [0, 1)")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise GancliError(f"mnist.pkl.gz: {split} labels are outside 0..9")
        splits[split] = (pixels.astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int64))
    return splits
