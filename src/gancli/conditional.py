"""Conditional runs: the class each sample is asked for (how well a generator obeys it: gancli.judge).

A conditional run (config.conditional) draws every sample for a label. Training gives each generated example
the label of its real counterpart in the batch, so the conditional D sees (x, y) and (G(z, y), y) with the same
y's. Drawing without a label asks for the classes in turn (sample i is of class i % n_classes): n / n_classes
of each, and a grid with one row per class.
"""

from __future__ import annotations

import numpy as np

from gancli.config import RunConfig, with_overrides
from gancli.errors import GancliError


def with_classes(config: RunConfig, labels) -> RunConfig:
    """A conditional or semi-supervised config with n_classes set from the training labels (max + 1) when it is 0;
    GancliError when a label lies outside [0, n_classes). Any other config is returned as it is."""
    if not (config.conditional or config.labels):
        return config
    labels = np.asarray(labels)
    if labels.size == 0 or labels.max() < 0:  # -1: unlabelled (an image folder without class subfolders)
        raise GancliError(f"{config.dataset} has no labels to condition on (an image folder's labels are its class subfolders)")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or (config.n_classes and hi >= config.n_classes):
        raise GancliError(f"{config.dataset}'s training labels span {lo}..{hi}, outside the run's "
                          f"{config.n_classes} classes 0..{config.n_classes - 1}")
    return config if config.n_classes else with_overrides(config, n_classes=hi + 1)


def class_labels(config: RunConfig, n: int, label: int | None = None) -> np.ndarray | None:
    """The class of each of n samples (int32): None for an unconditional run; `label` for all when given; else the
    classes in turn, sample i of class i % n_classes."""
    if not config.conditional:
        return None
    if label is not None:
        return np.full(n, label, np.int32)
    return (np.arange(n) % config.n_classes).astype(np.int32)


def check_label(config: RunConfig, label: int | None, where: str = "the run") -> None:
    """GancliError unless label is None, or a class of a conditional run."""
    if label is None:
        return
    if not config.conditional:
        raise GancliError(f"--label {label}: {where} is not conditional (it was trained without labels; train with --conditional)")
    if not 0 <= label < config.n_classes:
        raise GancliError(f"--label {label} is not a class of {config.dataset}: its classes are 0..{config.n_classes - 1}")
