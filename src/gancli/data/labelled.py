"""Which training examples a semi-supervised run (Salimans et al. 2016) uses the labels of.

The labelled subset is a function of the run's config and its training labels: the first labels/K examples of
each class in the permutation np.random.RandomState(label_seed).permutation(n), as improved-gan draws it with
its data seed. The config (labels, label_seed) is stored in every checkpoint, so a resumed run and an evaluation
find the same subset. With --seeds N, seed i takes label seed label_seed + i (unless same_labels): Salimans et al.'s
figures are means over runs on different random labelled subsets, so N seeds are N draws of the protocol. A leaf:
numpy, the config and errors only, so that models and streams can use it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from gancli.config import RunConfig
from gancli.errors import GancliError


def is_semi_supervised(config: RunConfig) -> bool:
    """Whether a run trained its D on labelled examples (and so has class logits to classify with)."""
    return config.labels > 0


def label_seed_of(config: RunConfig, i: int) -> int:
    """The label seed of seed i of a run (0 <= i < seeds): label_seed + i, or label_seed for all with same_labels
    (and for a run without labels, whose label seed picks nothing)."""
    return config.label_seed if config.same_labels or not is_semi_supervised(config) else config.label_seed + i


def digest(subset) -> str:
    """A short fingerprint of a labelled subset (sha256 of its indices as little-endian int64, 16 hex digits):
    stored with each seed's checkpoint, so two seeds' subsets can be told apart without listing them."""
    return hashlib.sha256(np.asarray(subset, "<i8").tobytes()).hexdigest()[:16]


def permutation(seed: int, n: int) -> np.ndarray:
    """The label seed's permutation of n training examples (numpy's legacy generator, as improved-gan's data_rng)."""
    return np.random.RandomState(seed).permutation(n)


def labelled_subset(config: RunConfig, labels) -> tuple[int, ...]:
    """The training examples whose labels a semi-supervised run uses, class by class (empty for other runs);
    GancliError when they cannot be balanced over the run's n_classes classes."""
    if not is_semi_supervised(config):
        return ()
    labels = np.asarray(labels)
    k = config.n_classes
    if config.labels % k:
        raise GancliError(f"--labels {config.labels} cannot be split evenly over the {k} classes of {config.dataset}",
                          fields=("labels",))
    per_class = config.labels // k
    order = permutation(config.label_seed, len(labels))
    chosen = []
    for c in range(k):
        of_class = order[labels[order] == c][:per_class]
        if len(of_class) < per_class:
            raise GancliError(f"--labels {config.labels} needs {per_class} examples of class {c}; "
                              f"{config.dataset}'s training split has {len(of_class)}", fields=("labels",))
        chosen.append(of_class)
    return tuple(int(i) for i in np.concatenate(chosen))
