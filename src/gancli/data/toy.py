"""Low-dimensional toy distributions with known densities: the 1-D game of Figure 1 and an 8-mode ring.

They are made from a fixed seed per split, so every user and every run sees the same points.
"""

from __future__ import annotations

import math

import numpy as np

SPLITS = {"train": 50_000, "validation": 10_000, "test": 10_000}
_SPLIT_SEED = {"train": 0, "validation": 1, "test": 2}

TOY1D_MEAN, TOY1D_STD = 2.0, 0.5

RING8_MODES, RING8_RADIUS, RING8_STD = 8, 2.0, 0.05


def toy1d_density(x: np.ndarray) -> np.ndarray:
    """p_data(x) of toy1d: N(2, 0.5^2)."""
    return np.exp(-0.5 * ((x - TOY1D_MEAN) / TOY1D_STD) ** 2) / (TOY1D_STD * math.sqrt(2 * math.pi))


def ring8_centres() -> np.ndarray:
    """The 8 mode centres, (8, 2), evenly spaced on a circle of radius 2."""
    angles = 2 * np.pi * np.arange(RING8_MODES) / RING8_MODES
    return RING8_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def make_toy1d(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1) draws of N(2, 0.5^2); labels are 0."""
    rng = np.random.default_rng(1000 + _SPLIT_SEED[split])
    x = rng.normal(TOY1D_MEAN, TOY1D_STD, (SPLITS[split], 1))
    return x.astype(np.float32), np.zeros(SPLITS[split], np.int64)


def make_ring8(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) draws of an equal mixture of 8 isotropic Gaussians (std 0.05) on a circle; labels are the modes."""
    rng = np.random.default_rng(2000 + _SPLIT_SEED[split])
    modes = rng.integers(0, RING8_MODES, SPLITS[split])
    x = ring8_centres()[modes] + rng.normal(0.0, RING8_STD, (SPLITS[split], 2))
    return x.astype(np.float32), modes.astype(np.int64)


def mode_coverage(samples: np.ndarray, min_share: float = 0.01) -> dict:
    """Which of ring8's modes a generator covers.

    A sample is high quality when it lies within 3 std of its nearest centre; a mode is covered when at
    least min_share of all samples are high-quality samples of it.
    """
    x = np.asarray(samples, np.float64).reshape(len(samples), -1)
    d = np.linalg.norm(x[:, None, :] - ring8_centres()[None], axis=-1)
    nearest, dist = d.argmin(axis=1), d.min(axis=1)
    good = dist <= 3 * RING8_STD
    per_mode = np.bincount(nearest[good], minlength=RING8_MODES)
    covered = per_mode >= min_share * len(x)
    return {
        "modes": RING8_MODES,
        "modes_covered": int(covered.sum()),
        "high_quality_share": float(good.mean()),
        "share_per_mode": (per_mode / len(x)).round(4).tolist(),
        "covered": covered.tolist(),
        "rule": f"high quality: within 3 std ({3 * RING8_STD:g}) of a centre; covered: >= {min_share:.0%} of samples",
    }
