"""Exact nearest neighbours and pairwise squared distances of flattened images, in blocks of bounded memory: the one
engine behind sample --nearest (Figure 2), memorisation, precision/recall and density/coverage."""

from __future__ import annotations

import numpy as np

from gancli.errors import GancliError

# Principal directions in the lower bound of pixel distances: 128 leaves ~20 exact distances per generated
# digit to compute (64 leaves ~90), which more than pays for the wider matmul.
PCA_DIMS = 128
# Distances held at once (float32): ~10M = 40 MB per block, whatever the set sizes.
BLOCK_ELEMENTS = 10_000_000
# The nearest-image search's bounds against 50,000 training images: 500 rows a block (100 MB), where the
# matmul runs ~1.5x faster than at 200.
INDEX_BLOCK_ELEMENTS = 25_000_000
# A query whose lower bound leaves more candidates than this (uniform noise: nearly all 50,000) is searched
# by brute force, one BLAS row against every training image, as the bound says little about it.
MAX_CANDIDATES = 2_000


def rows_per_block(n_cols: int, block_elements: int = BLOCK_ELEMENTS) -> int:
    """Rows per block so that a (rows, n_cols) block holds about block_elements floats."""
    return max(1, block_elements // max(n_cols, 1))


def right_operand(b: np.ndarray) -> np.ndarray:
    """The right operand of sq_dists for points b (n, d): [-2b, 1, |b|^2] transposed, (d + 2, n)."""
    sq = np.einsum("ij,ij->i", b, b)[:, None]
    return np.ascontiguousarray(np.concatenate([-2.0 * b, np.ones_like(sq), sq], axis=1).T)


def sq_dists(a: np.ndarray, right: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 squared distances (rows of a, points of right), |a|^2 + |b|^2 - 2 a.b as one BLAS call.

    Folding both norms into the matmul writes the (rows, n) block once instead of in four passes; the
    rounding (~1e-7 of the norms) can leave a distance slightly below 0, which callers clamp where it matters.
    """
    sq = np.einsum("ij,ij->i", a, a)[:, None]
    return np.matmul(np.concatenate([a, sq, np.ones_like(sq)], axis=1), right, out=out)


def centred_sets(*sets):
    """float32 copies of the sets, centred on the first one's mean: it shrinks the expanded form's cancellation."""
    sets = [np.asarray(s, np.float32).reshape(len(s), -1) for s in sets]
    centre = sets[0].mean(axis=0)
    return [s - centre for s in sets]


class TrainIndex:
    """The training images with a PCA lift whose distances are lower bounds of pixel distances.

    For an orthonormal basis P of the top principal directions and Q = I - PP^T:
    ||x - t||^2 = ||P^T(x - t)||^2 + ||Q(x - t)||^2 >= ||P^T(x - t)||^2 + (||Qx|| - ||Qt||)^2,
    which is the squared distance between the lifted points [P^T x, ||Qx||] and [P^T t, ||Qt||]. Only the
    training images whose bound is below the best exact distance found need an exact distance, so the
    search is exact at a fraction of the brute-force cost for image-like queries.
    """

    def __init__(self, train, dims: int = PCA_DIMS):
        t = np.asarray(train, np.float32)
        t = t.reshape(len(t), -1)
        self.centre = t.mean(axis=0)  # any fixed centre will do: it only shrinks the norms
        self.centred = t - self.centre
        self.basis = _principal_basis(self.centred, min(dims, t.shape[1] - 1)).astype(np.float32)
        self.sq = np.einsum("ij,ij->i", self.centred, self.centred)
        self.lifted = right_operand(self._lift(self.centred))

    def _lift(self, centred: np.ndarray) -> np.ndarray:
        """[P^T x, ||Qx||] of centred images."""
        proj = centred @ self.basis
        resid = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", proj, proj)
        return np.concatenate([proj, np.sqrt(np.maximum(resid, 0.0))[:, None]], axis=1)

    def nearest(self, x, block_elements: int = INDEX_BLOCK_ELEMENTS, max_candidates: int = MAX_CANDIDATES,
                progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Index of and exact pixel L2 distance (float64) to each image's nearest training image; progress(done,
        total) after each block of images."""
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        if x.shape[1] != self.centred.shape[1]:
            raise GancliError(f"images have {x.shape[1]} pixels but the training images {self.centred.shape[1]}")
        centred = x - self.centre
        lifted = self._lift(centred)
        idx = np.empty(len(x), np.int64)
        dist2 = np.empty(len(x), np.float64)
        rows = rows_per_block(len(self.centred), block_elements)
        buffer = np.empty((min(rows, len(x)), len(self.centred)), np.float32)  # reused: fresh pages cost
        for start in range(0, len(x), rows):
            stop = min(start + rows, len(x))
            bound = sq_dists(lifted[start:stop], self.lifted, buffer[: stop - start])
            idx[start:stop], dist2[start:stop] = self._refine(centred[start:stop], bound, max_candidates)
            if progress is not None:
                progress(stop, len(x))
        return idx, np.sqrt(dist2)

    def _refine(self, x: np.ndarray, bound: np.ndarray, max_candidates: int):
        """Exact nearest neighbours of rows x given lower bounds (rows, n_train) of their squared distances."""
        idx = np.argmin(bound, axis=1)
        dist2 = _exact_sq(x, self.centred[idx])
        # flatnonzero is ~10x faster than a 2-D nonzero: one index array instead of two.
        flat = np.flatnonzero(bound < _loosened(dist2)[:, None])
        rows = flat // bound.shape[1]
        counts = np.bincount(rows, minlength=len(x))
        flat = flat[counts[rows] <= max_candidates]
        self._check_in_bound_order(x, idx, dist2, flat, bound)
        brute = np.flatnonzero(counts > max_candidates)
        if len(brute):
            xb = x[brute]
            xb_sq = np.einsum("ij,ij->i", xb, xb)
            approx = xb @ self.centred.T
            approx *= -2.0
            approx += xb_sq[:, None]
            approx += self.sq[None, :]
            # The expanded form's error is ~1e-6 of the norms: recheck everything that close to the minimum.
            near = approx <= (approx.min(axis=1) + 1e-5 * (xb_sq + self.sq.max()) + 1e-4)[:, None]
            r, c = np.divmod(np.flatnonzero(near), near.shape[1])
            _take_smaller(idx, dist2, brute[r], c, _exact_sq(x[brute[r]], self.centred[c]))
        return idx, dist2

    def _check_in_bound_order(self, x, idx, dist2, flat, bound) -> None:
        """Exact distances of the candidates at flat (indices into bound), lowest bounds first, in rounds.

        Each round checks the next few candidates of every row and drops those whose bound now exceeds the
        row's best: the nearest image usually has one of the lowest bounds, so most candidates never need
        their 784 pixels read.
        """
        rows, cols = np.divmod(flat, bound.shape[1])
        b = bound.ravel()[flat]
        order = np.lexsort((b, rows))
        rows, cols, b = rows[order], cols[order], b[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        done, width = 0, 4
        while len(rows):
            now = rank < done + width
            r_now, c_now = rows[now], cols[now]
            for i in range(0, len(r_now), 20_000):  # bounded gathers: 20,000 images at a time
                r, c = r_now[i : i + 20_000], c_now[i : i + 20_000]
                _take_smaller(idx, dist2, r, c, _exact_sq(x[r], self.centred[c]))
            later = ~now & (b < _loosened(dist2[rows]))
            rows, cols, b, rank = rows[later], cols[later], b[later], rank[later]
            done, width = done + width, width * 2


def _loosened(dist2: np.ndarray) -> np.ndarray:
    """The best squared distance plus the bound's own float32 rounding: a candidate is dropped only when
    its bound is clearly above it."""
    return dist2 + 1e-3 * dist2 + 1e-2


def _principal_basis(centred: np.ndarray, dims: int, subsample: int = 10_000, powers: int = 2) -> np.ndarray:
    """An orthonormal (d, <= dims) basis close to the top principal directions (a randomised range finder).

    Any orthonormal basis keeps the lower bound valid; a good one only makes it tight. A few matmuls and
    three small eighs, where a full 784 x 784 eigh takes seconds on a busy CPU.
    """
    sample = centred[:: max(1, len(centred) // subsample)]
    cov = (sample.T @ sample).astype(np.float64)
    q = np.random.default_rng(0).standard_normal((cov.shape[0], dims))
    for _ in range(powers):
        q = cov @ q
    q = _orthonormal(q)
    _, v = np.linalg.eigh(q.T @ cov @ q)
    return q @ v[:, ::-1]


def _orthonormal(a: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning a's (directions of negligible extent dropped), from its Gram matrix.

    Not np.linalg.qr: with OpenBLAS's threads on a busy 2-core machine a 784 x 128 QR took 1-5 s, against
    milliseconds for a 128 x 128 eigh. Two passes leave columns orthonormal to ~1e-15 ("twice is enough").
    """
    for _ in range(2):
        w, v = np.linalg.eigh(a.T @ a)
        keep = w > w.max() * 1e-12
        a = a @ (v[:, keep] / np.sqrt(w[keep]))
    return a


def _exact_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise squared distances of paired rows, by differences (no cancellation), float64."""
    diff = a - b
    return np.einsum("ij,ij->i", diff, diff, dtype=np.float64)


def _take_smaller(idx: np.ndarray, dist2: np.ndarray, rows: np.ndarray, cols: np.ndarray, d2: np.ndarray) -> None:
    """For each row, keep (col, d2) where d2 beats the current best; ties keep the lower training index."""
    order = np.lexsort((cols, d2, rows))  # per row: smallest d2 first, then lowest index
    rows, cols, d2 = rows[order], cols[order], d2[order]
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    rows, cols, d2 = rows[first], cols[first], d2[first]
    better = (d2 < dist2[rows]) | ((d2 == dist2[rows]) & (cols < idx[rows]))
    idx[rows[better]], dist2[rows[better]] = cols[better], d2[better]
