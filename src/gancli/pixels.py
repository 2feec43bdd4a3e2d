"""Pixels as stored (uint8 bytes k) and as the networks see them (float32 k/255), and the exact way between them.

The training set stays on the device as bytes, a quarter of float32's memory, and becomes float inside the
compiled step by a 256-entry table of to_unit's own floats. Not by x / 255 there: XLA may rewrite a division by a
constant as a multiplication by its reciprocal, and k * float32(1/255) differs from k / 255 in the last bit for
126 of the 256 bytes; a table gives exactly the floats data.load gives, so a run trains bit for bit as before.
"""

from __future__ import annotations

import numpy as np

# Every byte-valued image set is k/255, as pylearn2's read_mnist_images gave the paper's code (and its
# Parzen script). The classic mnist.pkl.gz stores k/256, which raises every Parzen figure by about 3 nats.
PIXEL_SCALE = 255.0


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 images as float32 pixels k/255 in [0, 1]."""
    out = images.astype(np.float32)
    out /= np.float32(PIXEL_SCALE)
    return out


# to_unit of every byte: what the compiled step looks a stored pixel up in.
TABLE = to_unit(np.arange(256, dtype=np.uint8))


def pack(images: np.ndarray, chunk: int = 1 << 22) -> np.ndarray | None:
    """float32 images as the uint8 bytes whose to_unit they are exactly, bit for bit; None when any pixel is not
    one of TABLE's floats (a normalised set such as cifar10_gcn, k/256 test data, the toy sets' points)."""
    if images.dtype != np.float32 or images.size == 0:
        return None
    flat = images.reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    for start in range(0, flat.size, chunk):  # a chunk at a time: no float64 or int copy of the whole set
        x = flat[start : start + chunk]
        with np.errstate(invalid="ignore"):  # a NaN casts to some byte, which the comparison then refuses
            k = np.rint(np.clip(x, 0.0, 1.0) * np.float32(PIXEL_SCALE)).astype(np.uint8)
        if not np.array_equal(TABLE[k].view(np.uint32), x.view(np.uint32)):
            return None
        out[start : start + chunk] = k
    return out.reshape(images.shape)
