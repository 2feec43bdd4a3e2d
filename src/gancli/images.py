"""PNG pictures of samples: image grids, and histograms or scatter plots for low-dimensional toy data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
# Figures, not pyplot: the training loop draws its sample pictures on a worker thread, and pyplot's global figure
# state is not thread-safe; a Figure saved through the Agg canvas needs no backend and opens no window.
from matplotlib.figure import Figure


MIN_WIDTH = 560  # pixels: a 10 x 10 grid of 28 x 28 digits is shown at twice its size


def grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (N, H, W, C) in [0, 1] into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) array."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    return out


def for_display(images: np.ndarray) -> np.ndarray:
    """Images as [0, 1] pixels for a picture. Pixels (all values within [-0.5, 1.5]: [0, 1] give or take a linear
    generator's overshoot) are clipped to [0, 1]; anything else, e.g. contrast-normalised CIFAR-10 (cifar10_gcn), is
    shown as pylearn2 showed it: each image divided by its largest absolute value, [-1, 1] mapped onto [0, 1]."""
    x = np.asarray(images, np.float32)
    if x.size == 0 or (x.min() >= -0.5 and x.max() <= 1.5):
        return np.clip(x, 0.0, 1.0)
    peak = np.abs(x).reshape(len(x), -1).max(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    return 0.5 + 0.5 * x / np.maximum(peak, 1e-12)


def save_grid(images: np.ndarray, path: Path, cols: int | None = None) -> Path:
    """Write images (N, H, W, C) as one PNG grid, colour or greyscale (C == 1), through for_display."""
    tiled = np.clip(grid(for_display(images), cols), 0.0, 1.0)
    scale = max(1, MIN_WIDTH // tiled.shape[1])  # small images: enlarge by whole pixels, never blur
    tiled = tiled.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One pixel per element, unscaled and unsmoothed: the figure takes the array's size (resize). A power-of-two dpi
    # keeps pixels / dpi * dpi exact, so no edge column falls outside the canvas; the file says 100 dpi regardless.
    fig = Figure(dpi=64, frameon=False)
    if tiled.shape[-1] == 1:
        fig.figimage(tiled[..., 0], cmap="gray", vmin=0.0, vmax=1.0, resize=True)
    else:
        fig.figimage(tiled, resize=True)
    fig.savefig(path, dpi=fig.dpi, format="png", transparent=True, pil_kwargs={"dpi": (100, 100)})
    return path


def class_rows(images: np.ndarray, labels) -> tuple[np.ndarray, int]:
    """(tiles, cols): images regrouped so that a grid of cols columns has one row per class present, in class
    order, each row in the images' order; blank (white) tiles fill the shorter rows."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rows = [np.flatnonzero(labels == c) for c in classes]
    cols = max(len(r) for r in rows)
    tiles = np.ones((len(rows) * cols,) + images.shape[1:], np.float32)
    for i, r in enumerate(rows):
        tiles[i * cols : i * cols + len(r)] = images[r]
    return tiles, cols


def save_samples(samples: np.ndarray, path: Path, title: str = "", reference: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> Path:
    """A picture of samples whatever their shape: a grid for images (one row per class when labels are given),
    else a histogram (1-D) or scatter (2-D, coloured by label when given), drawn over reference (real) data in
    grey when given."""
    if samples.ndim == 4:
        if labels is None:
            return save_grid(samples, path)
        tiles, cols = class_rows(samples, labels)
        return save_grid(tiles, path, cols)
    flat = samples.reshape(samples.shape[0], -1)
    ref = None if reference is None else reference.reshape(reference.shape[0], -1)
    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    if flat.shape[1] == 1:
        if ref is not None:
            ax.hist(ref[:, 0], bins=50, density=True, color="0.8", label="data")
        ax.hist(flat[:, 0], bins=50, density=True, color="tab:green", alpha=0.7, label="G(z)")
        ax.set_xlabel("x")
    else:
        if ref is not None:
            ax.scatter(ref[:, 0], ref[:, 1], s=4, color="0.8", label="data")
        if labels is None:
            ax.scatter(flat[:, 0], flat[:, 1], s=4, alpha=0.5, color="tab:green", label="G(z)")
        else:
            ax.scatter(flat[:, 0], flat[:, 1], s=4, alpha=0.5, c=np.asarray(labels) % 10, cmap="tab10", vmin=0, vmax=9,
                       label="G(z, y), coloured by y")
        ax.set_aspect("equal")
    if ref is not None:
        ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
