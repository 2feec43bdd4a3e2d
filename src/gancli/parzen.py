"""The Parzen-window log-likelihood estimator and the paper's protocol (Goodfellow et al. 2014, parzen_ll.py).

log p(x) = logsumexp_j(-||x - mu_j||^2 / (2 sigma^2)) - log N - d log(sigma sqrt(2 pi)).
Squared distances are computed once per block of points and reused for every sigma; only a block of
`rows x N` distances is ever held, and the samples are prepared a chunk at a time, so memory stays bounded for any
number of samples.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np

from gancli.errors import GancliError

PAPER_SIGMAS: tuple[float, ...] = tuple(float(s) for s in np.logspace(-1, 0, 10))
# Each sigma is a pass over the validation distances; the paper searches 10.
MAX_SIGMAS = 100
# Below this 1/(2 sigma^2) times a squared distance overflows float32 and the log-likelihood is NaN.
MIN_SIGMA = 1e-6

# Distances held at once (floats): 20M = 80 MB bounds memory for any number of samples; blocks of ~2,000
# rows against 10,000 samples measured fastest on a 2-core CPU (smaller blocks underuse the matmul).
BLOCK_ELEMENTS = 20_000_000
# Progress is reported about this many times a pass: often enough for a bar, rarely enough to cost nothing.
PROGRESS_STEPS = 20
# Samples on the device at once (with their centred transpose): 10,000 MNIST-sized ones are 2 x 31 MB, whatever the
# size of the samples file they are read from. 10,000 is also evaluate's default draw, which stays one chunk, and
# blocks of 2,000 points against it measured fastest (BLOCK_ELEMENTS); smaller chunks would underuse the matmul.
SAMPLE_CHUNK = 10_000


@dataclasses.dataclass(frozen=True)
class ParzenResult:
    """The outcome of the protocol: sigma chosen on validation, test mean log-likelihood +- standard error."""

    sigmas: tuple[float, ...]
    valid_ll: tuple[float, ...]
    sigma: float
    mean: float
    stderr: float
    n_samples: int
    n_valid: int
    n_test: int
    dim: int

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def parse_sigmas(text: str) -> tuple[float, ...]:
    """Parse "0.1,0.2" or "logspace:START:STOP:NUM" (numpy.logspace: powers of ten) into sigmas."""
    text = text.strip()
    try:
        if text.startswith("logspace:"):
            start, stop, num = text.split(":")[1:]
            if not 1 <= int(num) <= MAX_SIGMAS:  # before numpy makes them
                raise GancliError(f"bad --sigmas {text!r}: between 1 and {MAX_SIGMAS} sigmas, please")
            sigmas = tuple(float(s) for s in np.logspace(float(start), float(stop), int(num)))
        else:
            sigmas = tuple(float(s) for s in re.split(r"[,\s]+", text) if s)
    except ValueError:
        hint = "use e.g. '0.1,0.2' or 'logspace:-1.0:0:10' (numpy.logspace's start:stop:num)"
        raise GancliError(f"bad --sigmas {text!r}: {hint}") from None
    return check_sigmas(sigmas)


def check_sigmas(sigmas) -> tuple[float, ...]:
    """Return sigmas as a tuple of floats, or raise GancliError unless there are 1 to MAX_SIGMAS finite numbers
    >= MIN_SIGMA."""
    sigmas = tuple(float(s) for s in sigmas)
    if not sigmas:
        raise GancliError("no sigmas given")
    if len(sigmas) > MAX_SIGMAS:
        raise GancliError(f"{len(sigmas)} sigmas given: at most {MAX_SIGMAS}, please")
    if not all(math.isfinite(s) and s >= MIN_SIGMA for s in sigmas):
        raise GancliError(f"sigmas must be finite and at least {MIN_SIGMA:g}, got {list(sigmas)}")
    return sigmas


def block_rows(n_points: int, n_samples: int, block_elements: int = BLOCK_ELEMENTS) -> int:
    """Rows per block so that a block of distances holds at most about `block_elements` floats."""
    max_rows = max(1, min(n_points, block_elements // max(n_samples, 1)))
    n_blocks = -(-n_points // max_rows)
    # Even blocks waste less padding than full blocks plus a nearly empty last one.
    return -(-n_points // n_blocks)


@jax.jit
def _prepare(mu, center):
    """Centre, transposed samples and squared norms: computed once per chunk, shared by every block and pass."""
    # Centring on the samples' mean shrinks the norms, hence the cancellation in |x|^2 + |mu|^2 - 2 x.mu.
    mu = mu - center
    # (d, N): a contiguous right operand is faster for the CPU matmul.
    return center, mu.T, jnp.sum(mu * mu, axis=1)


@functools.partial(jax.jit, static_argnames=("rows",))
def _logsumexp_grid(x, center, mu_t, mu_sq, scales, rows: int):
    """logsumexp_j(-s ||x_i - mu_j||^2) for every scale s, shape (len(scales), len(x)), in blocks of rows."""
    n = x.shape[0]
    n_blocks = -(-n // rows)
    x = jnp.pad(x - center, ((0, n_blocks * rows - n), (0, 0)))

    def block(xb):
        # HIGHEST: never TF32/bf16 passes on GPU/TPU, whose errors are ruinous at small sigma.
        dots = jax.lax.dot_general(xb, mu_t, (((1,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)
        d2 = jnp.maximum(jnp.sum(xb * xb, axis=1)[:, None] + mu_sq[None, :] - 2.0 * dots, 0.0)
        # The nearest sample gives the logsumexp's maximum for every sigma at once.
        d_min = jnp.min(d2, axis=1)
        rel = d2 - d_min[:, None]
        sums = jnp.sum(jnp.exp(-scales[:, None, None] * rel[None, :, :]), axis=2)
        return jnp.log(sums) - scales[:, None] * d_min[None, :]

    out = jax.lax.map(block, x.reshape(n_blocks, rows, x.shape[1]))  # (n_blocks, S, rows)
    return jnp.transpose(out, (1, 0, 2)).reshape(scales.shape[0], n_blocks * rows)[:, :n]


def _flat(a, name: str) -> np.ndarray:
    """(N, ...) array as float32 (N, d); raise GancliError if empty."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim < 1 or a.shape[0] == 0:
        raise GancliError(f"no {name} to evaluate")
    return a.reshape(a.shape[0], -1)


class _Samples:
    """The samples as kernel centres, read and prepared on the device a chunk of `chunk` rows at a time: a samples
    file larger than memory is read row by row from its memory map, and each point's logsumexp over all samples is
    the log-sum of its logsumexps over the chunks. A set of one chunk is prepared once for every evaluation."""

    def __init__(self, samples, chunk: int | None = None):
        if np.ndim(samples) < 1 or len(samples) == 0:
            raise GancliError("no samples to evaluate")
        self.samples, self.chunk = samples, max(1, int(SAMPLE_CHUNK if chunk is None else chunk))
        self.n, self.d = len(samples), math.prod(np.shape(samples)[1:])
        total = np.zeros(self.d, np.float64)
        for start in range(0, self.n, self.chunk):
            total += _flat(samples[start : start + self.chunk], "samples").sum(axis=0, dtype=np.float64)
        self.center = jnp.asarray(total / self.n, dtype=jnp.float32)
        self._whole = self._part(0) if self.n <= self.chunk else None

    def _part(self, start: int):
        mu = _flat(self.samples[start : start + self.chunk], "samples")
        return len(mu), _prepare(jnp.asarray(mu), self.center)

    def _parts(self):
        if self._whole is not None:
            yield self._whole
            return
        for start in range(0, self.n, self.chunk):
            yield self._part(start)

    def log_likelihoods(self, x, sigmas, block_elements: int, progress=None) -> np.ndarray:
        """(len(sigmas), len(x)) float64 log-likelihoods; progress(done, total) as the points are scored."""
        sigmas = np.asarray(check_sigmas(sigmas), dtype=np.float64)
        x = _flat(x, "points")
        if x.shape[1] != self.d:
            raise GancliError(f"points have {x.shape[1]} dimensions but samples have {self.d}")
        scales = jnp.asarray(1.0 / (2.0 * sigmas**2), dtype=jnp.float32)
        n_parts = -(-self.n // self.chunk)
        lse = None
        for index, (n, prepared) in enumerate(self._parts()):
            rows = block_rows(len(x), n, block_elements)
            n_blocks = -(-len(x) // rows)
            # One compiled call for all the blocks, unless progress is shown: then calls of equal size (the last one
            # padded, so one compilation), about PROGRESS_STEPS of them, each a whole number of blocks.
            per_call = rows * (n_blocks if progress is None else -(-n_blocks // PROGRESS_STEPS))
            parts = []
            for start in range(0, len(x), per_call):
                chunk = x[start : start + per_call]
                padded = np.pad(chunk, ((0, per_call - len(chunk)), (0, 0))) if len(x) > per_call else chunk
                parts.append(np.asarray(_logsumexp_grid(jnp.asarray(padded), *prepared, scales, rows),
                                        dtype=np.float64)[:, : len(chunk)])
                if progress is not None:
                    progress(index * len(x) + start + len(chunk), n_parts * len(x))
            part = np.concatenate(parts, axis=1)
            lse = part if lse is None else np.logaddexp(lse, part)
        # The large constants go in on the host in float64, where they cost no precision.
        return lse - math.log(self.n) - self.d * np.log(sigmas * math.sqrt(2.0 * math.pi))[:, None]


def log_likelihoods(x, samples, sigmas, block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """Parzen log-likelihood of every point for every sigma, float64 of shape (len(sigmas), len(x))."""
    return _Samples(samples).log_likelihoods(x, sigmas, block_elements)


def log_likelihood(x, samples, sigma: float, block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """Parzen log-likelihood of every point for one sigma, float64 of shape (len(x),)."""
    return log_likelihoods(x, samples, [sigma], block_elements)[0]


def protocol(samples, valid, test, sigmas=PAPER_SIGMAS, block_elements: int = BLOCK_ELEMENTS, progress=None,
             label: str = "samples", chunk: int | None = None) -> ParzenResult:
    """The paper's protocol: choose sigma on `valid`, report mean +- stderr (ddof 0) on `test`; progress(what,
    done, total) through each of the two passes, label naming the model in what. Samples are read `chunk` rows at
    a time (default SAMPLE_CHUNK; a memory-mapped file is never read whole into memory)."""
    sigmas = check_sigmas(sigmas)
    model = _Samples(samples, chunk)
    step = lambda what: None if progress is None else (lambda done, total: progress(f"Parzen, {label}: {what}", done, total))
    valid_ll = model.log_likelihoods(valid, sigmas, block_elements, step(f"validation images, {len(sigmas)} sigmas")).mean(axis=1)
    sigma = sigmas[int(np.argmax(valid_ll))]  # ties go to the first (smallest) sigma, as in the original code
    # The test split needs the chosen sigma only: one pass, a tenth of the validation pass's exponentials per point.
    test_ll = model.log_likelihoods(test, [sigma], block_elements, step("test images"))[0]
    return ParzenResult(
        sigmas=sigmas,
        valid_ll=tuple(float(v) for v in valid_ll),
        sigma=float(sigma),
        mean=float(test_ll.mean()),
        stderr=float(test_ll.std() / math.sqrt(len(test_ll))),
        n_samples=model.n,
        n_valid=int(np.shape(valid)[0]),
        n_test=len(test_ll),
        dim=model.d,
    )
