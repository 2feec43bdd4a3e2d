"""Sample-quality metrics on a fixed feature network (gancli.feature_nets), with real-data calibration rows.

fid           Fréchet distance between Gaussians fitted to the network's 128 penultimate features
fid_logits    the same on its 10 logits (TF-GAN's mnist_frechet_distance)
score         classifier score exp(E_x KL(p(y|x) || p(y))) (TF-GAN's mnist_score), mean and std over 10 splits
prdc          precision and recall (Kynkäänniemi et al. 2019, k = 3), density and coverage (Naeem et al. 2020,
              k = 5) on the features; generated samples against the test split
classes       histogram of predicted classes, classes holding >= 1% of samples, KL to the uniform distribution
memorisation  each sample's pixel L2 distance to its nearest training image, against the test images' own

The real reference is the dataset's test split; the calibration rows put real training images, then uniform
noise, in place of the samples, so a reader sees what a perfect and a useless generator score.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from gancli.knn import BLOCK_ELEMENTS, TrainIndex, centred_sets, right_operand, rows_per_block, sq_dists
from gancli.errors import GancliError

if TYPE_CHECKING:
    from gancli import feature_nets

IMAGE_SHAPE = (28, 28, 1)  # what the shipped feature networks take
N_CHEAP = 2_000
K_PR = 3
K_DC = 5
SCORE_SPLITS = 10
CLASS_MIN_SHARE = 0.01
COPY_PERCENTILE = 1.0
N_NOISE_MEMORISATION = 1_000  # noise images searched for their nearest training image (brute force)
# Samples checked, searched or fed to Inception at once: a samples file is read a chunk at a time, never whole.
CHUNK = 10_000


def parse(which: str | Iterable[str]) -> tuple[str, ...]:
    """Metric names from "all", "fid,score" or an iterable, in METRICS order; GancliError on an unknown name."""
    names = [w.strip() for w in which.split(",")] if isinstance(which, str) else [str(w).strip() for w in which]
    names = [n for n in names if n]
    if "all" in names:
        return METRICS
    unknown = sorted(set(names) - set(METRICS))
    if unknown or not names:
        raise GancliError(f"unknown metric {', '.join(unknown) or '(none given)'}: choose from all, {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in names)


# --- Fréchet distance ---


def reference_stats(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gaussian_stats(x) and the covariance's symmetric square root, for the side every row is compared with."""
    mu, cov = gaussian_stats(x)
    return mu, cov, _psd_sqrt(cov)


def gaussian_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean and unbiased (ddof 1) covariance of the rows of x, summed over chunks of CHUNK rows: a float64
    copy of all the features of a large samples file, and its centred copy, would outweigh the features twice over."""
    x = np.asarray(x).reshape(len(x), -1)
    if len(x) < 2:
        raise GancliError(f"a covariance needs at least 2 points, got {len(x)}")
    rows = lambda start: x[start : start + CHUNK].astype(np.float64)
    starts = range(0, len(x), CHUNK)
    mu = sum(rows(start).sum(axis=0) for start in starts) / len(x)
    scatter = np.zeros((x.shape[1], x.shape[1]))
    for start in starts:
        centred = rows(start) - mu
        scatter += centred.T @ centred
    return mu, scatter / (len(x) - 1)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix; rounding's negative eigenvalues -> 0."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2, sqrt_cov2: np.ndarray | None = None) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64; sqrt_cov2: _psd_sqrt(cov2) if known."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    # Tr (S1 S2)^(1/2) = Tr (S2^(1/2) S1 S2^(1/2))^(1/2): the second is symmetric PSD, so eigvalsh is stable
    # where a general sqrtm of the non-symmetric S1 S2 can return complex noise. With S2 the reference's,
    # its root is computed once per reference, not once per row.
    root2 = _psd_sqrt(cov2) if sqrt_cov2 is None else sqrt_cov2
    inner = root2 @ cov1 @ root2
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    return max(d, 0.0)  # it is >= 0; equal inputs can round to -1e-13


def classifier_score(logits, splits: int = SCORE_SPLITS) -> dict:
    """exp(E_x KL(p(y|x) || p(y))) on each of `splits` consecutive parts: mean and std (ddof 0) over parts."""
    logits = np.asarray(logits, np.float64)
    logp = logits - _logsumexp(logits, axis=1)[:, None]
    if len(logp) < splits:
        raise GancliError(f"the classifier score over {splits} splits needs at least {splits} samples, got {len(logp)}")
    scores = []
    for part in np.array_split(logp, splits):
        # log p(y) by logsumexp stays finite where a class's probabilities all underflow.
        log_py = _logsumexp(part, axis=0) - math.log(len(part))
        kl = np.sum(np.exp(part) * (part - log_py), axis=1)
        scores.append(math.exp(kl.mean()))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "splits": splits}


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along axis, shifted by the maximum so nothing overflows."""
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def class_coverage(logits, min_share: float = CLASS_MIN_SHARE) -> dict:
    """Histogram of predicted classes, classes holding >= min_share of samples, KL(histogram || uniform)."""
    logits = np.asarray(logits)
    n_classes = logits.shape[1]
    hist = np.bincount(np.argmax(logits, axis=1), minlength=n_classes)
    share = hist / max(hist.sum(), 1)
    nz = share > 0
    return {
        "histogram": [int(h) for h in hist],
        "covered": int(np.sum(share >= min_share)),
        "min_share": min_share,
        "kl_uniform": float(np.sum(share[nz] * np.log(share[nz] * n_classes))),
    }


# --- distances, precision/recall, density/coverage ---


def kth_neighbour_radii(x, ks: Iterable[int], block_elements: int = BLOCK_ELEMENTS, progress=None) -> dict[int, np.ndarray]:
    """{k: distance from each point to its k-th nearest other point of the same set} (float64); progress(done,
    total) after each block of points."""
    ks = sorted({int(k) for k in ks})
    (x,) = centred_sets(x)
    n = len(x)
    if not ks or ks[0] < 1 or ks[-1] >= n:
        raise GancliError(f"k-th neighbour radii need 1 <= k < {n} points, got k = {ks}")
    right = right_operand(x)
    out = {k: np.empty(n, np.float64) for k in ks}
    rows = rows_per_block(n, block_elements)
    for start in range(0, n, rows):
        d2 = sq_dists(x[start : start + rows], right)
        d2[np.arange(len(d2)), np.arange(start, start + len(d2))] = np.inf  # a point is not its own neighbour
        for k, kth in _kth_smallest(d2, ks).items():
            out[k][start : start + len(d2)] = np.sqrt(np.maximum(kth, 0.0))
        if progress is not None:
            progress(start + len(d2), n)
    return out


def _kth_smallest(d2: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """{k: each row's k-th smallest entry} for small k, by k argmin passes; d2 is overwritten.

    For k <= 5 this is several times faster than np.partition over rows of 10,000, and a value that occurs
    twice in a row (duplicate points) is counted twice, as it should be.
    """
    rows = np.arange(len(d2))
    out = {}
    for j in range(1, max(ks) + 1):
        idx = np.argmin(d2, axis=1)
        if j in ks:
            out[j] = d2[rows, idx]
        d2[rows, idx] = np.inf
    return out


def prdc(generated, real, k_pr: int = K_PR, k_dc: int = K_DC, real_radii: dict | None = None,
         block_elements: int = BLOCK_ELEMENTS, progress=None) -> dict:
    """Precision, recall (k_pr) and density, coverage (k_dc) of generated points against real ones (both (N, d));
    progress(done, total) after each block of generated points, total twice their number (their radii, then the
    balls)."""
    real_radii = real_radii or kth_neighbour_radii(real, (k_pr, k_dc), block_elements)
    n = len(generated)
    gen_radii = kth_neighbour_radii(generated, (k_pr,), block_elements,
                                    None if progress is None else lambda done, _: progress(done, 2 * n))[k_pr]
    real, generated = centred_sets(real, generated)
    # Ball membership compares squared distances, as float32 like the distances themselves.
    r_pr, r_dc = (np.square(real_radii[k]).astype(np.float32) for k in (k_pr, k_dc))
    g_pr = np.square(gen_radii).astype(np.float32)
    right = right_operand(real)
    in_real_ball = np.empty(len(generated), bool)
    density_counts = np.empty(len(generated), np.int64)
    nearest_gen = np.full(len(real), np.inf, np.float32)
    recalled = np.zeros(len(real), bool)
    rows = rows_per_block(len(real), block_elements)
    for start in range(0, len(generated), rows):
        d2 = sq_dists(generated[start : start + rows], right)  # (generated, real)
        stop = start + len(d2)
        in_real_ball[start:stop] = np.any(d2 <= r_pr[None, :], axis=1)
        density_counts[start:stop] = np.count_nonzero(d2 <= r_dc[None, :], axis=1)
        np.minimum(nearest_gen, d2.min(axis=0), out=nearest_gen)
        recalled |= np.any(d2 <= g_pr[start:stop, None], axis=0)
        if progress is not None:
            progress(n + stop, 2 * n)
    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(recalled.mean()),
        "density": float(density_counts.sum() / (k_dc * len(generated))),
        "coverage": float(np.mean(nearest_gen <= r_dc)),
        "k_pr": k_pr,
        "k_dc": k_dc,
    }


# --- kernel inception distance ---

KID_SUBSETS = 100  # Bińkowski et al. (2018) and the reference implementations: 100 subsets...
KID_SUBSET_SIZE = 1_000  # ...of 1,000 samples each (fewer when a set is smaller)


def kid(generated, real, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> dict:
    """Kernel distance (Bińkowski et al. 2018): the unbiased estimate of the squared MMD between generated and real
    features under the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets of m
    points from each side; mean and std over the subsets. In float64."""
    generated, real = (np.asarray(a, np.float64).reshape(len(a), -1) for a in (generated, real))
    m = min(subset_size, len(generated), len(real))
    if m < 2:
        raise GancliError(f"the kernel distance needs at least 2 points on each side, got {len(generated)} and {len(real)}")
    d = generated.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = generated[rng.choice(len(generated), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2.0 * kxy.mean())
    values = np.asarray(values)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if subsets > 1 else 0.0,
            "subsets": subsets, "subset_size": m}


# --- nearest training images in pixel space ---


def memorisation(sample_distances, test_distances, percentile: float = COPY_PERCENTILE) -> dict:
    """Share of samples nearer a training image than the given percentile of the test images' own distances."""
    sample_distances = np.asarray(sample_distances, np.float64)
    test_distances = np.asarray(test_distances, np.float64)
    threshold = float(np.percentile(test_distances, percentile))
    return {
        "n": len(sample_distances),
        "copy_share": float(np.mean(sample_distances < threshold)),
        "threshold": threshold,
        "percentile": percentile,
        "median_distance": float(np.median(sample_distances)),
        "median_test_distance": float(np.median(test_distances)),
    }


# --- the reference and the entry points ---


# --- the registry: what each metric computes, how it shows, which way is better ---


@dataclasses.dataclass(frozen=True)
class Column:
    """One scalar a metric contributes to tables, metrics.jsonl and summaries."""

    key: str
    heading: str  # in report tables
    better: str  # "lower" or "higher"
    short: str | None = None  # in inspect's one-line summary; None: not shown there


@dataclasses.dataclass
class Inputs:
    """What a metric may read: the images, the shipped network's features and logits of them, their Inception
    features (computed on first use), the reference."""

    x: np.ndarray
    features: np.ndarray | None
    logits: np.ndarray | None
    ref: "FeatureReference"
    memorisation_n: int | None
    progress: Callable[[str, int, int], None] | None = None
    label: str = "samples"

    @functools.cached_property
    def inception(self) -> np.ndarray:
        what, n = f"Inception features of {self.label}", len(self.x)

        def features(rows, start):  # the network's input copy (3 channels) is a chunk's, not the whole set's
            report = None if self.progress is None else (lambda done, _: self.progress(what, start + done, n))
            return (self.ref.inception.features(rows, progress=report),)

        return _chunked(features, self.x, with_start=True)[0]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One --metrics name: what it measures, its value in a row, the scalars it shows, whether the training loop
    can afford it every few epochs (train --eval-every), whether it reads the network's features."""

    describe: str
    compute: Callable[[Inputs], Any]
    scalars: Callable[[Any], dict]
    columns: tuple[Column, ...]
    cheap: bool = False
    network: str | None = "shipped"  # whose features it reads: the dataset's shipped network, "inception", or none


def _inception(m: Inputs) -> dict:
    """The Fréchet distance, kernel distance and precision/recall/density/coverage of the Inception features."""
    f, ref = m.inception, m.ref
    return {"fid": frechet_distance(*gaussian_stats(f), *ref.inception_stats), "kid": kid(f, ref.inception_features),
            "prdc": prdc(f, ref.inception_features, real_radii=ref.inception_radii)}


def _chunked(compute, x, with_start: bool = False) -> tuple[np.ndarray, ...]:
    """compute(rows) -> a tuple of per-row arrays, over x a CHUNK of rows at a time, written into arrays made once:
    only the outputs of all rows and one chunk's are held, never a list of parts and their concatenation too."""
    out = None
    for start in range(0, len(x), CHUNK):
        parts = compute(x[start : start + CHUNK], start) if with_start else compute(x[start : start + CHUNK])
        if out is None:
            out = tuple(np.empty((len(x), *p.shape[1:]), p.dtype) for p in parts)
        for whole, part in zip(out, parts):
            whole[start : start + len(part)] = part
    return out


def _memorisation(m: Inputs) -> dict:
    if m.ref.train is None:
        raise GancliError("the reference was built without the training images; build it for memorisation")
    x = m.x[: m.memorisation_n]
    # A chunk at a time: the search copies and centres its queries, which for a samples file would be all of it.
    report = named(m.progress, f"nearest training image of {len(x):,} {m.label}")
    distances = [m.ref.train.nearest(x[start : start + CHUNK], progress=within(report, start, len(x)))[1]
                 for start in range(0, len(x), CHUNK)]
    return memorisation(np.concatenate(distances), m.ref.test_nearest)


REGISTRY: dict[str, Metric] = {
    "fid": Metric("Fréchet distance", lambda m: frechet_distance(*gaussian_stats(m.features), *m.ref.feature_stats),
                  lambda v: {"fid": v}, (Column("fid", "FD features", "lower", "FD"),), cheap=True),
    "fid_logits": Metric("Fréchet distance of the logits", lambda m: frechet_distance(*gaussian_stats(m.logits), *m.ref.logit_stats),
                         lambda v: {"fid_logits": v}, (Column("fid_logits", "FD logits", "lower", "FD logits"),)),
    "score": Metric("classifier score", lambda m: classifier_score(m.logits),
                    lambda v: {"score": v["mean"], "score_std": v["std"]},  # the std shows inside the score's cell
                    (Column("score", "class. score", "higher", "score"),), cheap=True),
    "prdc": Metric("precision, recall, density, coverage",
                   lambda m: prdc(m.features, m.ref.features, real_radii=m.ref.radii,
                                  progress=named(m.progress, f"precision and recall of {m.label}")),
                   lambda v: {k: v[k] for k in ("precision", "recall", "density", "coverage")},
                   tuple(Column(k, k, "higher", k) for k in ("precision", "recall", "density", "coverage"))),
    "classes": Metric("class coverage", lambda m: class_coverage(m.logits),
                      lambda v: {"classes_covered": v["covered"], "classes_kl": v["kl_uniform"]},
                      (Column("classes_covered", f"classes >= {CLASS_MIN_SHARE:.0%}", "higher", "classes"),
                       Column("classes_kl", "KL to uniform", "lower")), cheap=True),
    "memorisation": Metric("memorisation", _memorisation,
                           lambda v: {"copy_share": v["copy_share"], "nn_median": v["median_distance"]},
                           (Column("copy_share", "likely copies", "lower", "likely copies"),
                            Column("nn_median", "median NN L2", "higher")), network=None),
    "inception": Metric("Fréchet distance, kernel distance, precision/recall/density/coverage on Inception-v3 pool3",
                        lambda m: _inception(m),
                        lambda v: {"inception_fid": v["fid"], "inception_kid": v["kid"]["mean"],
                                   "inception_kid_std": v["kid"]["std"],
                                   **{f"inception_{k}": v["prdc"][k] for k in ("precision", "recall", "density", "coverage")}},
                        (Column("inception_fid", "Inception FD", "lower", "Inception FD"),
                         Column("inception_kid", "Inception KD", "lower", "Inception KD"),
                         *(Column(f"inception_{k}", f"Inception {k}", "higher") for k in ("precision", "recall", "density", "coverage"))),
                        network="inception"),
}
METRICS = tuple(REGISTRY)
SHIPPED = tuple(name for name, m in REGISTRY.items() if m.network != "inception")  # no Inception network needed
CHEAP = tuple(name for name, m in REGISTRY.items() if m.cheap)  # seconds on 2,000 samples
COLUMNS = {c.key: c for m in REGISTRY.values() for c in m.columns}


def describe(names) -> str:
    return ", ".join(REGISTRY[n].describe for n in names)


@contextlib.contextmanager
def _timed(timings: dict | None, name: str):
    """Add the seconds spent in the block to timings[name], when timings is a dict."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


@dataclasses.dataclass(eq=False)
class FeatureReference:
    """Real-data statistics of a dataset's test split, computed once and shared by every row of a call."""

    dataset: str
    network: "feature_nets.Network | None"  # the dataset's shipped network, when a metric reads it
    provenance: dict
    n_test: int
    image_shape: tuple[int, ...] = IMAGE_SHAPE
    features: np.ndarray | None = None
    feature_stats: tuple | None = None
    logit_stats: tuple | None = None
    radii: dict | None = None
    train: TrainIndex | None = None
    test_nearest: np.ndarray | None = None
    inception: object = None  # gancli.feature_nets.inception.Inception, when the inception metrics are asked
    inception_features: np.ndarray | None = None
    inception_stats: tuple | None = None
    inception_radii: dict | None = None

    def info(self) -> dict:
        """The reference as a report records it."""
        out = {"dataset": self.dataset, "split": "test", "n": self.n_test, "data": self.provenance}
        if self.network is not None:
            out["feature_net"] = self.network.info
        if self.inception is not None:
            out["inception"] = self.inception.info
            out.setdefault("feature_net", {"version": self.inception.info["name"], **self.inception.info})
        return out


def reference(dataset: str, which=METRICS, data_dir=None, network: "feature_nets.Network | None" = None,
              log: Callable[[str], None] = lambda _: None, timings: dict | None = None, train=None,
              progress: Callable[[str, int, int], None] | None = None, test=None) -> FeatureReference:
    """The test split's features, statistics and radii, and (for memorisation) the training-image index;
    train, test: those splits' images when the caller has them loaded already."""
    from gancli import data  # the TFDS stack loads only when data is needed

    which = parse(which)
    with _timed(timings, "reference: load test split"):
        test = data.load(dataset, "test", data_dir)[0] if test is None else test
        ref = FeatureReference(dataset, None, data.provenance(dataset, data_dir), len(test), tuple(test.shape[1:]))
    if any(REGISTRY[name].network == "shipped" for name in which):
        from gancli import feature_nets  # JAX and Flax load only when a network is needed

        ref.network = network = network or feature_nets.shipped(dataset)
        log(f"features of the {len(test):,} test images ({network.spec.version})")
        with _timed(timings, "reference: features"):
            features, logits = network.features_and_logits(test, named(progress, f"features of the {dataset} test split"))
            ref.features = features
            ref.feature_stats = reference_stats(features)
            ref.logit_stats = reference_stats(logits)
        if "prdc" in which:
            with _timed(timings, "reference: prdc radii"):
                ref.radii = kth_neighbour_radii(features, (K_PR, K_DC),
                                                progress=named(progress, f"neighbour radii of the {dataset} test split"))
    if "inception" in which:
        check_inception_data(dataset, test)
        ref.inception = _inception_network(str(data.resolve_data_dir(data_dir)))
        with _timed(timings, "reference: Inception features"):
            ref.inception_features = cached_inception_features(ref, test, data_dir, log, progress)
            ref.inception_stats = reference_stats(ref.inception_features)
            ref.inception_radii = kth_neighbour_radii(ref.inception_features, (K_PR, K_DC))
    if "memorisation" in which:
        log("nearest training image of every test image")
        with _timed(timings, "reference: training-image index"):
            ref.train = TrainIndex(data.load(dataset, "train", data_dir)[0] if train is None else train)
        with _timed(timings, "reference: test images' nearest"):
            ref.test_nearest = ref.train.nearest(test, progress=named(progress, f"nearest training image of the {dataset} test split"))[1]
    return ref


@functools.lru_cache(maxsize=2)
def _inception_network(data_dir: str):
    """The Inception network of a data dir, parsed once per process (its 87 MB archive takes seconds)."""
    from gancli.feature_nets import inception

    return inception.load(data_dir)


def check_inception_data(dataset: str, images: np.ndarray) -> None:
    """GancliError unless the dataset is images with pixels in [0, 1], what the Inception protocol takes."""
    x = np.asarray(images[:1000])
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise GancliError(f"the inception metrics need images of 1 or 3 channels; {dataset}'s examples are shaped {x.shape[1:]}")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise GancliError(f"the inception metrics need pixels in [0, 1]; {dataset}'s are not (a normalised variant: "
                          "use the dataset of its plain pixels)")


def named(progress: Callable[[str, int, int], None] | None, what: str) -> Callable[[int, int], None] | None:
    """progress(what, done, total) as the progress(done, total) of one step, what naming it; None for None."""
    return None if progress is None else (lambda done, total: progress(what, done, total))


def within(progress: Callable[[int, int], None] | None, start: int, total: int) -> Callable[[int, int], None] | None:
    """A chunk's progress(done, total) as progress over all `total` rows, the chunk starting at row `start`."""
    return None if progress is None else (lambda done, _: progress(start + done, total))


def inception_features(net, x: np.ndarray, what: str, progress=None) -> np.ndarray:
    """The Inception features of images, reporting progress(what, done, total) per batch."""
    return net.features(x, progress=named(progress, what))


def cached_inception_features(ref: FeatureReference, test: np.ndarray, data_dir, log, progress) -> np.ndarray:
    """The test split's Inception features, computed once per (weights, dataset provenance) and kept in the data
    dir: a changed network or dataset has another key and is never served an old file."""
    import hashlib
    import json

    from gancli import data
    from gancli.files import atomic_path

    key = hashlib.sha256(json.dumps({"weights": ref.inception.info["sha256"], "dataset": ref.dataset, "split": "test",
                                     "n": len(test), "data": ref.provenance}, sort_keys=True, default=str).encode()).hexdigest()
    path = data.resolve_data_dir(data_dir) / "gancli-stats" / f"{ref.dataset}-test-inception-{key[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                if str(cached["key"]) == key and cached["features"].shape == (len(test), ref.inception.info["dims"]):
                    log(f"Inception features of the {len(test):,} test images: cached in {path}")
                    return cached["features"]
        except (OSError, ValueError, KeyError):
            pass
        log(f"{path} is damaged or stale: computing it again")
    log(f"Inception features of the {len(test):,} test images (once; kept in {path.parent})")
    features = inception_features(ref.inception, test, f"Inception features of the {ref.dataset} test split", progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=features, key=np.array(key))
    return features


def check_images(samples, source: str = "samples", shape: tuple[int, ...] = IMAGE_SHAPE) -> np.ndarray:
    """Samples as float32 (N, *shape) in [0, 1], or GancliError saying what is wrong; shape is the shipped
    networks' 28x28 unless the Inception network alone reads them. Checked CHUNK rows at a time; float32 samples
    come back as a view, so a memory-mapped file is never read whole."""
    x = np.asarray(samples)
    if x.ndim < 1 or len(x) == 0:
        raise GancliError(f"{source}: no samples")
    if x.size != len(x) * math.prod(shape):
        size = "x".join(map(str, shape[:-1] if shape[-1] == 1 else shape))  # 28x28 for one channel
        raise GancliError(f"{source}: the feature network takes {size} images, got samples shaped {x.shape[1:]}")
    x = x.reshape(len(x), *shape)
    lo, hi = np.inf, -np.inf
    for start in range(0, len(x), CHUNK):
        rows = x[start : start + CHUNK].astype(np.float32, copy=False)
        if not np.isfinite(rows).all():
            raise GancliError(f"{source}: samples contain NaN or inf")
        lo, hi = min(lo, float(rows.min())), max(hi, float(rows.max()))
    if lo < 0.0 or hi > 1.0:
        raise GancliError(f"{source}: the feature network takes pixels in [0, 1], got [{lo:g}, {hi:g}]")
    return x.astype(np.float32, copy=False)


def kept_bytes(which) -> int:
    """Bytes measure keeps per sample beyond the chunk it reads: features, logits, nearest-image distances."""
    from gancli.feature_nets import FeatureNet
    from gancli.feature_nets.inception import DIMS

    which = parse(which)
    shipped = any(REGISTRY[name].network == "shipped" for name in which)
    per = 4 * (FeatureNet.n_features + FeatureNet.n_classes) if shipped else 0
    per += 4 * DIMS if "inception" in which else 0
    per += 16 if "memorisation" in which else 0  # index and distance of each sample's nearest training image
    return per


def measure(samples, ref: FeatureReference, which=METRICS, label: str = "samples", timings: dict | None = None,
            memorisation_n: int | None = None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """One row: the chosen metrics of samples (float32 images in [0, 1]) against the reference; memorisation
    on the first memorisation_n samples when given."""
    which = parse(which)
    shipped = any(REGISTRY[name].network == "shipped" for name in which)
    # Noise made here is in [0, 1] by construction, and made a chunk at a time as it is read.
    x = samples if isinstance(samples, NoiseImages) else check_images(samples, label, IMAGE_SHAPE if shipped else ref.image_shape)
    row: dict = {"label": label, "n": len(x)}
    features = logits = None
    if shipped:
        if ref.features is None:
            raise GancliError(f"the reference was built without features; build it for {', '.join(which)}")
        with _timed(timings, "features"):
            report = named(progress, f"features of {label}")
            features, logits = _chunked(
                lambda rows, start: ref.network.features_and_logits(rows, within(report, start, len(x))), x, with_start=True)
    inputs = Inputs(x, features, logits, ref, memorisation_n, progress, label)
    for name in which:
        with _timed(timings, name):
            row[name] = REGISTRY[name].compute(inputs)
    return row


def noise_images(n: int, seed: int = 0, shape: tuple[int, ...] = IMAGE_SHAPE) -> np.ndarray:
    """n images of independent uniform [0, 1] pixels: the useless generator of the calibration."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


class NoiseImages:
    """noise_images(n, seed, shape), made as its rows are read (x[a:b]) instead of whole: the calibration of a
    samples file of many gigabytes needs as many noise images. The generator's stream does not depend on how it is
    cut, so any slicing gives noise_images' pixels; a slice before the last one read starts the stream again."""

    def __init__(self, n: int, seed: int = 0, shape: tuple[int, ...] = IMAGE_SHAPE):
        self.n, self.seed, self.shape = n, seed, (n, *shape)
        self._rng, self._at = np.random.default_rng(seed), 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.n)
        if step != 1:
            raise IndexError("noise images are read in runs of rows")
        if start < self._at:
            self._rng, self._at = np.random.default_rng(self.seed), 0
        while self._at < start:  # skipped rows are drawn and dropped, a chunk at a time
            skip = min(CHUNK, start - self._at)
            self._rng.random((skip, *self.shape[1:]), dtype=np.float32)
            self._at += skip
        stop = max(start, stop)
        self._at = stop
        return self._rng.random((stop - start, *self.shape[1:]), dtype=np.float32)


def calibrate(ref: FeatureReference, train, n: int, which=METRICS, seed: int = 0,
              log: Callable[[str], None] = lambda _: None, timings: dict | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> dict:
    """The calibration rows for n samples: {"train": the first n training images, "noise": n uniform-noise images}."""
    which = parse(which)
    n_train = min(n, len(train))
    log(f"calibration: {n_train:,} training images, then {n:,} images of uniform noise (seed {seed})")
    spent = {} if timings is not None else None
    rows = {"train": measure(train[:n_train], ref, which, f"{n_train:,} training images", spent, progress=progress)}
    # Noise has no low-dimensional structure to prune the nearest-image search with: a brute-force search
    # of 10,000 would dominate the call, and 1,000 already show that noise copies nothing.
    rows["noise"] = measure(NoiseImages(n, seed, ref.image_shape), ref, which, "uniform noise", spent,
                            memorisation_n=N_NOISE_MEMORISATION, progress=progress)
    if timings is not None:
        timings.update({f"calibration: {k}": v for k, v in spent.items()})
    return rows


def scalars(row: dict) -> dict[str, float]:
    """A row's headline numbers as flat {name: number}: what logs, summaries and means over seeds use."""
    out = {}
    for name, metric in REGISTRY.items():
        if name in row:
            out.update(metric.scalars(row[name]))
    return out


def quick(samples, ref: FeatureReference, n: int = N_CHEAP) -> dict:
    """The cheap subset (fid, score, classes) on the first n samples, for a training loop's per-epoch log."""
    return measure(np.asarray(samples)[:n], ref, CHEAP, "samples")


def settings() -> dict:
    """The metrics' fixed settings, as a report records them."""
    return {
        "covariance": "float64, unbiased (ddof 1)",
        "score_splits": SCORE_SPLITS,
        "k_precision_recall": K_PR,
        "k_density_coverage": K_DC,
        "class_min_share": CLASS_MIN_SHARE,
        "copy_threshold": f"percentile {COPY_PERCENTILE:g} of the test images' distances to their nearest training image",
    }
