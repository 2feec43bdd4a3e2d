"""The Parzen estimator and protocol against a float64 numpy reference, on small synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from gancli import parzen
from gancli.errors import GancliError


def reference_ll(x, mu, sigma):
    """The paper's formula in float64 with direct differences: no cancellation anywhere."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    mu = np.asarray(mu, np.float64).reshape(len(mu), -1)
    d2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    norm = math.log(len(mu)) + mu.shape[1] * math.log(sigma * math.sqrt(2 * math.pi))
    return logsumexp(-d2 / (2 * sigma**2), axis=1) - norm


def mnist_like(rng, n, d):
    """Sparse, bright-stroke images in [0, 1]: large norms make |x|^2 + |mu|^2 - 2 x.mu cancel badly."""
    on = rng.random((n, d)) < 0.2
    return np.where(on, rng.uniform(0.5, 1.0, (n, d)), 0.0).astype(np.float32)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    return tuple(rng.random((n, 16), dtype=np.float32) for n in (200, 50, 70))


def test_matches_float64_reference_for_every_sigma(small):
    mu, valid, _ = small
    sigmas = (0.05, 0.1, 0.2, 0.5, 1.0)
    got = parzen.log_likelihoods(valid, mu, sigmas)
    assert got.shape == (len(sigmas), len(valid)) and got.dtype == np.float64
    for row, sigma in zip(got, sigmas):
        np.testing.assert_allclose(row, reference_ll(valid, mu, sigma), atol=0.01, rtol=0)


def test_exact_at_small_sigma_in_high_dimension():
    # 784 dims, |x|^2 ~ 100: a float32 or TF32 slip in the distances shows up at sigma 0.1.
    rng = np.random.default_rng(1)
    mu, x = mnist_like(rng, 300, 784), mnist_like(rng, 40, 784)
    x[:5] = mu[:5] + rng.normal(0, 0.02, (5, 784)).astype(np.float32)  # points right next to a sample
    for sigma in (0.1, 0.167):
        np.testing.assert_allclose(parzen.log_likelihood(x, mu, sigma), reference_ll(x, mu, sigma), atol=0.01, rtol=0)


def test_identical_point_has_zero_distance():
    # Clamping at 0 keeps a sample's own point finite and right: only the normaliser remains.
    mu = np.full((1, 784), 0.7, np.float32)
    got = parzen.log_likelihood(mu, mu, 0.1)[0]
    assert got == pytest.approx(-784 * math.log(0.1 * math.sqrt(2 * math.pi)), abs=1e-3)


def test_blocks_do_not_change_the_result(small):
    mu, valid, _ = small
    whole = parzen.log_likelihoods(valid, mu, (0.1, 0.3))
    # 16 elements per block = one row at a time; 7 * 200 = uneven blocks with padding.
    for block in (16, 7 * 200):
        blocked = parzen.log_likelihoods(valid, mu, (0.1, 0.3), block_elements=block)
        np.testing.assert_allclose(blocked, whole, atol=1e-4)


def test_block_rows_bounds_memory_and_covers_all_points():
    assert parzen.block_rows(10_000, 10_000) * 10_000 <= parzen.BLOCK_ELEMENTS
    assert parzen.block_rows(10_000, 50_000) * 50_000 <= parzen.BLOCK_ELEMENTS
    assert parzen.block_rows(5, 10**9) == 1
    assert parzen.block_rows(1000, 10_000, 4_000_000) == 334  # 3 even blocks, not 400 + 400 + 200


def test_many_samples_in_small_blocks():
    # The 50,000-sample case at a smaller dimension, with blocks far smaller than the distance matrix.
    rng = np.random.default_rng(2)
    mu, x = rng.random((50_000, 8), dtype=np.float32), rng.random((30, 8), dtype=np.float32)
    got = parzen.log_likelihood(x, mu, 0.2, block_elements=100_000)
    np.testing.assert_allclose(got, reference_ll(x, mu, 0.2), atol=0.01, rtol=0)


def test_protocol_chooses_sigma_on_validation_and_reports_test(small):
    mu, valid, test = small
    sigmas = parzen.PAPER_SIGMAS
    r = parzen.protocol(mu, valid, test, sigmas)
    ref_valid = [reference_ll(valid, mu, s).mean() for s in sigmas]
    assert r.sigma == sigmas[int(np.argmax(ref_valid))]
    np.testing.assert_allclose(r.valid_ll, ref_valid, atol=0.01)
    ref_test = reference_ll(test, mu, r.sigma)
    assert r.mean == pytest.approx(ref_test.mean(), abs=0.01)
    assert r.stderr == pytest.approx(ref_test.std(ddof=0) / math.sqrt(len(test)), abs=0.01)
    assert (r.n_samples, r.n_valid, r.n_test, r.dim) == (200, 50, 70, 16)
    assert r.to_dict()["sigmas"] == list(sigmas)


def test_samples_go_to_the_device_a_chunk_at_a_time_and_give_the_one_chunk_numbers(small, monkeypatch):
    """Issue 35, 6: a samples file of gigabytes was copied to the device whole, then centred and transposed there
    (10 GB of RSS for a 2 GB file); each point's logsumexp is now summed over chunks of the samples."""
    mu, valid, test = small
    whole = parzen.protocol(mu, valid, test, parzen.PAPER_SIGMAS)
    prepared, prepare = [], parzen._prepare
    monkeypatch.setattr(parzen, "_prepare", lambda m, c: prepared.append(m.shape) or prepare(m, c))
    chunked = parzen.protocol(mu, valid, test, parzen.PAPER_SIGMAS, chunk=64)
    assert prepared == [(64, 16), (64, 16), (64, 16), (8, 16)] * 2  # 200 samples; the validation pass, then the test's
    np.testing.assert_allclose(chunked.valid_ll, whole.valid_ll, rtol=1e-6)
    assert (chunked.sigma, chunked.n_samples) == (whole.sigma, 200)
    assert chunked.mean == pytest.approx(whole.mean, rel=1e-6) and chunked.stderr == pytest.approx(whole.stderr, rel=1e-5)


def test_image_shaped_inputs_are_flattened(small):
    mu, valid, test = small
    flat = parzen.protocol(mu, valid, test, (0.2, 0.4))
    shaped = parzen.protocol(mu.reshape(-1, 4, 4, 1), valid.reshape(-1, 4, 4, 1), test.reshape(-1, 4, 4, 1), (0.2, 0.4))
    assert shaped.mean == pytest.approx(flat.mean) and shaped.dim == 16


def test_paper_grid():
    assert parzen.PAPER_SIGMAS == tuple(np.logspace(-1, 0, 10))


@pytest.mark.parametrize(
    "text, expected",
    [("0.1,0.2", (0.1, 0.2)), (" 0.5 ", (0.5,)), ("logspace:-1:0:10", parzen.PAPER_SIGMAS), ("0.1, 0.3", (0.1, 0.3))],
)
def test_parse_sigmas(text, expected):
    assert parzen.parse_sigmas(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "0.1,-1", "0", "nan", "logspace:-1:0", "logspace:a:b:c", "inf"])
def test_parse_sigmas_rejects_bad_grids(text):
    with pytest.raises(GancliError, match="sigma"):
        parzen.parse_sigmas(text)


def test_mismatched_dimensions_are_an_error(small):
    mu, valid, _ = small
    with pytest.raises(GancliError, match="dimensions"):
        parzen.log_likelihood(valid[:, :8], mu, 0.1)


def test_empty_inputs_are_an_error(small):
    mu, valid, _ = small
    with pytest.raises(GancliError, match="no samples"):
        parzen.log_likelihood(valid, mu[:0], 0.1)
    with pytest.raises(GancliError, match="no points"):
        parzen.log_likelihood(valid[:0], mu, 0.1)


def test_distances_ask_for_highest_precision():
    # On GPU/TPU the default matmul precision is TF32/bf16; the kernel must ask for full float32 explicitly.
    x, mu = np.zeros((4, 8), np.float32), np.zeros((6, 8), np.float32)
    prepared = parzen._prepare(mu, mu.mean(axis=0))
    text = parzen._logsumexp_grid.lower(x, *prepared, np.ones(2, np.float32), rows=2).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots and all("precision = [HIGHEST, HIGHEST]" in line for line in dots)
