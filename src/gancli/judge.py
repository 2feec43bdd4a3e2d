"""How well a conditional generator obeys its labels, judged by a fixed classifier.

The class accuracy is the share of the samples drawn for a label that the classifier assigns to it; per class c,
the Fréchet distance is between its features of the class-c samples and of the class-c test images. The
classifier is gancli's shipped feature network (gancli.feature_nets) where the dataset has one, and on ring8,
whose labels are its modes, the nearest mode, its "features" being the points themselves.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from gancli.conditional import class_labels
from gancli.config import RunConfig
from gancli.errors import GancliError

# Mirza & Osindero (2014), Table 1: Parzen log-likelihood on MNIST (nats) from 1,000 samples per class.
PAPER_MNIST = {"model": "Conditional adversarial nets (Mirza & Osindero 2014, Table 1)", "mean": 132.0, "stderr": 1.8}


@dataclasses.dataclass(frozen=True)
class Judge:
    """A fixed classifier: features (N, F) and predicted classes (N,) of samples shaped like the data;
    classify(x, progress) reports progress(done, total) as it goes (None: not)."""

    info: dict
    features: str
    classify: Callable[..., tuple[np.ndarray, np.ndarray]]


def judge(dataset: str) -> Judge | None:
    """The classifier that judges the dataset's samples, or None where gancli has none."""
    if dataset == "ring8":
        from gancli.data import toy

        centres = toy.ring8_centres()

        def nearest_mode(x, progress=None):
            x = np.asarray(x, np.float64).reshape(len(x), -1)
            found = np.linalg.norm(x[:, None] - centres[None], axis=-1).argmin(axis=1)
            if progress is not None:  # one vectorised pass: done at once
                progress(len(x), len(x))
            return x, found

        return Judge({"name": "nearest mode of ring8"}, "the 2-D points", nearest_mode)
    from gancli import feature_nets, metrics

    try:
        network = feature_nets.shipped(dataset)
    except GancliError:
        return None

    def classify(x, progress=None):
        # Clipped: a generator's range is its own design (a linear output), the network's input is [0, 1].
        features, logits = network.features_and_logits(metrics.check_images(np.clip(x, 0.0, 1.0)), progress)
        return features, np.argmax(logits, axis=1)

    return Judge(network.info, f"penultimate features of {network.spec.version}", classify)


@dataclasses.dataclass(eq=False)
class ClassReference:
    """The test split as the judge sees it: its features' statistics per class and the judge's test accuracy."""

    dataset: str
    judge: Judge
    n_classes: int
    stats: list  # per class: (mean, covariance) of the test features, or None for a class with < 2 test examples
    n_test: list[int]
    test_accuracy: float


def reference(dataset: str, n_classes: int, data_dir=None, log: Callable[[str], None] = lambda _: None,
              progress: Callable[[str, int, int], None] | None = None) -> ClassReference | None:
    """The test split's per-class feature statistics under the dataset's judge; None when it has no judge.
    progress(what, done, total) as the judge works through the split."""
    from gancli import data, metrics

    j = judge(dataset)
    if j is None:
        log(f"no classifier for {dataset}: class accuracy and per-class Fréchet distance are not measured")
        return None
    x, y = data.load(dataset, "test", data_dir)
    log(f"classifying the {len(x):,} test images ({j.info['name']})")
    features, predicted = j.classify(x, metrics.named(progress, f"classifier features of the {dataset} test split"))
    stats, counts = [], []
    for c in range(n_classes):
        mask = y == c
        counts.append(int(mask.sum()))
        stats.append(metrics.gaussian_stats(features[mask]) if mask.sum() >= 2 else None)
    return ClassReference(dataset, j, n_classes, stats, counts, float(np.mean(predicted == y)))


def measure(samples, labels, ref: ClassReference, progress: Callable[[str, int, int], None] | None = None,
            label: str = "the samples") -> dict:
    """Class accuracy and per-class Fréchet distance of samples drawn for labels; progress(what, done, total) as the
    judge works through them, what naming them by label."""
    from gancli import metrics

    labels = np.asarray(labels)
    features, predicted = ref.judge.classify(samples, metrics.named(progress, f"classifier features of {label}"))
    per_class = []
    for c in range(ref.n_classes):
        mask = labels == c
        n = int(mask.sum())
        fd = (metrics.frechet_distance(*metrics.gaussian_stats(features[mask]), *ref.stats[c])
              if n >= 2 and ref.stats[c] is not None else None)
        per_class.append({"class": c, "n": n, "accuracy": float(np.mean(predicted[mask] == c)) if n else None,
                          "frechet": fd})
    fds = [p["frechet"] for p in per_class if p["frechet"] is not None]
    return {
        "n": len(labels),
        "accuracy": float(np.mean(predicted == labels)),
        "frechet_mean": float(np.mean(fds)) if fds else None,
        "per_class": per_class,
    }


def calibrate(ref: ClassReference, labels, data_dir=None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """measure() with real training images in place of the samples, as many of each class as labels asks for."""
    from gancli import data

    x, y = data.load(ref.dataset, "train", data_dir)
    want = np.bincount(np.asarray(labels), minlength=ref.n_classes)
    picked = np.concatenate([np.flatnonzero(y == c)[: want[c]] for c in range(ref.n_classes)])
    label = f"{len(picked):,} training images"
    return {"label": label, **measure(x[picked], y[picked], ref, progress, label)}


def section(config: RunConfig, n_samples: int, ref: ClassReference | None, calibration: dict | None) -> dict:
    """What a report records of a conditional run's evaluation besides each model's measure(): how the samples'
    labels were chosen and, when the dataset has a classifier, what judged them and the calibration."""
    counts = np.bincount(class_labels(config, n_samples), minlength=config.n_classes)
    out = {
        "n_classes": config.n_classes,
        "labels": "the classes in turn (sample i of class i % n_classes), so the samples split evenly over the classes",
        "samples_per_class": [int(c) for c in counts],
        "paper": PAPER_MNIST if config.dataset == "mnist" else None,
        "classifier": None,
    }
    if ref is None:
        return {**out, "note": f"no classifier for {config.dataset}: class accuracy and per-class Fréchet distance not measured"}
    return {
        **out,
        "classifier": ref.judge.info,
        "features": ref.judge.features,
        "reference": "the test images of each class",
        "n_test_per_class": ref.n_test,
        "classifier_test_accuracy": ref.test_accuracy,
        "accuracy": "share of the samples drawn for a class that the classifier assigns to it",
        "frechet": "per class: Fréchet distance (float64, ddof 1) between the features of its samples and of its "
                   "test images; frechet_mean averages the classes",
        "calibration": calibration,
    }
