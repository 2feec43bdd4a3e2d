"""Time the Parzen protocol (gancli.parzen) against per-sigma implementations that recompute the distances.

Run:  python benchmarks/parzen_speed.py                    # random data in [0, 1] shaped like MNIST
      python benchmarks/parzen_speed.py --mnist --data-dir DIR   # real MNIST: 10,000 training images as samples

The protocol: 10 sigmas on 1,000 validation points, then the 10,000-point test split at the chosen sigma, with
10,000 samples of dimension 784. All timings are warm (after one compile run) with the data already loaded.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from gancli import parzen


BATCH = 100  # points per call in the original code


@jax.jit
def _direct_batch(xb, mu, sigma):
    """The original code's estimator for one batch and one sigma: broadcast differences, no matmul."""
    a = (xb[:, None, :] - mu[None, :, :]) / sigma
    return jax.nn.logsumexp(-0.5 * jnp.sum(a * a, axis=2), axis=1)


def _direct_ll(x, mu, sigma):
    """Per-point log-likelihood with the direct estimator, one batch of points per call."""
    mu_dev = jnp.asarray(mu)
    lse = [np.asarray(_direct_batch(x[i : i + BATCH], mu_dev, np.float32(sigma))) for i in range(0, len(x), BATCH)]
    norm = math.log(len(mu)) + mu.shape[1] * math.log(sigma * math.sqrt(2 * math.pi))
    return np.concatenate(lse).astype(np.float64) - norm


def _matmul_ll(x, mu, sigma):
    """Per-point log-likelihood with gancli's kernel, called once per sigma (so distances are recomputed)."""
    return parzen.log_likelihood(x, mu, sigma)


def per_sigma_protocol(ll_fn, samples, valid, test, sigmas):
    """The protocol the straightforward way: each sigma evaluated on its own, then the test at the best."""
    valid_ll = [ll_fn(valid, samples, s).mean() for s in sigmas]
    sigma = sigmas[int(np.argmax(valid_ll))]
    test_ll = ll_fn(test, samples, sigma)
    return sigma, test_ll.mean(), test_ll.std() / math.sqrt(len(test_ll))


def fast_protocol(samples, valid, test, sigmas):
    """gancli's protocol: distances once per block, every sigma from them."""
    r = parzen.protocol(samples, valid, test, sigmas)
    return r.sigma, r.mean, r.stderr


def timed(fn, repeats: int, warmup=None):
    """(result, seconds of each warm run) after an untimed compile run (warmup, else fn itself)."""
    result = (warmup or fn)()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, times


def load(args):
    """(samples, valid, test) float32 flat arrays: random in [0, 1], or real MNIST."""
    if args.mnist:
        from gancli import data

        train = data.load("mnist", "train", args.data_dir)[0][: args.n_samples]
        valid = data.load("mnist", "validation", args.data_dir)[0][: args.n_valid]
        test = data.load("mnist", "test", args.data_dir)[0][: args.n_test]
        return [a.reshape(len(a), -1).astype(np.float32) for a in (train, valid, test)]
    rng = np.random.default_rng(0)
    return [rng.random((n, args.dim), dtype=np.float32) for n in (args.n_samples, args.n_valid, args.n_test)]


def main():
    """Parse flags, time every implementation on the same data, print a table and the speedups."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", action="store_true", help="real MNIST instead of random data")
    p.add_argument("--data-dir", default=None, help="TFDS data dir for --mnist")
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--n-valid", type=int, default=1_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=784, help="dimension of the random data")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of gancli's protocol (min is reported)")
    p.add_argument("--baseline-repeats", type=int, default=1, help="timed runs of each per-sigma baseline")
    p.add_argument("--skip-direct", action="store_true", help="skip the slow broadcast-difference baseline")
    args = p.parse_args()

    samples, valid, test = load(args)
    sigmas = parzen.PAPER_SIGMAS
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print(f"data: {'mnist' if args.mnist else 'random [0, 1]'}; {len(samples):,} samples of dim {samples.shape[1]}, "
          f"{len(sigmas)} sigmas on {len(valid):,} validation points, then {len(test):,} test points")

    runs = [
        ("gancli.parzen.protocol (distances once)", lambda: fast_protocol(samples, valid, test, sigmas), args.repeats,
         None),
        ("per-sigma, same matmul kernel", lambda: per_sigma_protocol(_matmul_ll, samples, valid, test, sigmas),
         args.baseline_repeats, None),
    ]
    if not args.skip_direct:
        # Compiling it needs one batch only: its shapes never change.
        warm = lambda: _direct_ll(valid[:BATCH], samples, sigmas[0])  # noqa: E731
        runs.append(("per-sigma, broadcast differences (original code)",
                     lambda: per_sigma_protocol(_direct_ll, samples, valid, test, sigmas), args.baseline_repeats, warm))
    best = {}
    for name, fn, repeats, warmup in runs:
        (sigma, mean, stderr), times = timed(fn, repeats, warmup)
        best[name] = min(times)
        spread = f" (median {statistics.median(times):.2f} s of {len(times)})" if len(times) > 1 else ""
        result = f"sigma {sigma:.4f}  test {mean:.2f} +- {stderr:.2f}"
        print(f"{name:50s} {min(times):7.2f} s{spread}   {result}", flush=True)
    fast = best[runs[0][0]]
    for name, t in list(best.items())[1:]:
        print(f"speedup over {name}: {t / fast:.1f}x")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
