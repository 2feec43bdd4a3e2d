"""Semi-supervised learning with a (K+1)-class D (Salimans et al. 2016): D as a classifier of the test images
(`gancli evaluate RUN --classify`, and the per-epoch test error).

Which training examples are labelled is gancli.data.labelled's (its names are importable from here too). The
unlabelled data are the whole training split, the labelled examples included, as in improved-gan; the training
step draws one labelled batch per D step from the subset (gancli.streams).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from gancli.config import RunConfig
from gancli.data.labelled import is_semi_supervised
from gancli.errors import GancliError

BATCH = 2_000  # test images per compiled call: a test split of 10,000 in five, each a step of the progress bar

# Salimans et al. (2016), Table 1: test errors (of 10,000) on permutation-invariant MNIST, by the number of labelled
# examples: mean ± std over 10 runs, each on its own random labelled subset, balanced by class (their section 6.1;
# the table's caption calls them 10 seeds). gancli's counterpart: --seeds 10, each seed its own label seed.
PAPER_MNIST = {20: (1677, 452), 50: (221, 136), 100: (93, 6.5), 200: (90, 4.2)}


@lru_cache(maxsize=8)
def _classify_fn(game, ema: bool):
    import jax
    import jax.numpy as jnp

    from gancli import steps

    return jax.jit(lambda state, x: jnp.argmax(steps.discriminate(game, state, x, ema=ema)["class_logits"], axis=-1))


def predict(game, state, images: np.ndarray, ema: bool = True, progress: Callable[[int, int], None] | None = None,
            batch: int | None = None) -> np.ndarray:
    """D's class (argmax of its K class logits, no noise) of each image, with the moving average of D's weights
    when the run keeps one and ema is True; progress(done, total) after each batch of images."""
    import jax.numpy as jnp

    keys = ("d", "d_ema", "d_stats", "d_spectral")  # what classifying needs of a state: never G or the optimisers
    state = {k: v for k, v in state.items() if k in keys}
    fn = _classify_fn(game, ema)
    batch = batch or BATCH
    found = []
    for i in range(0, len(images), batch):
        found.append(np.asarray(fn(state, jnp.asarray(images[i : i + batch]))))
        if progress is not None:
            progress(min(i + batch, len(images)), len(images))
    return np.concatenate(found)


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """[k, k] counts: row = true class, column = D's class."""
    out = np.zeros((k, k), np.int64)
    np.add.at(out, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return out


def scores(truth: np.ndarray, predicted: np.ndarray, k: int) -> dict:
    """Error count and rate, and the confusion matrix, of predictions against the true classes."""
    matrix = confusion(truth, predicted, k)
    errors = int(len(truth) - np.trace(matrix))
    return {"errors": errors, "error_rate": errors / len(truth), "n": int(len(truth)), "confusion": matrix.tolist()}


def measure_per_epoch(config: RunConfig, game, data_dir) -> Callable[[dict, object], dict[str, float]]:
    """The per-epoch test error (train --eval-every): D's errors on the test split with the moving average of its
    weights (what improved-gan prints each epoch) and, when the run keeps one, with D's own weights."""
    from gancli import data

    images, labels = data.load(config.dataset, "test", data_dir)

    def measure(state, key):
        out = {}
        for name, ema in (("test_errors", True), ("test_errors_raw", False))[: 2 if "d_ema" in state else 1]:
            found = scores(labels, predict(game, state, images, ema), game.config.n_classes)
            out[name], out[name.replace("errors", "error")] = found["errors"], round(found["error_rate"], 6)
        return out

    return measure


def check_run(config: RunConfig, where: str) -> None:
    """GancliError unless the run is semi-supervised, so that its D is a classifier."""
    if not is_semi_supervised(config):
        raise GancliError(f"--classify: {where} is not a semi-supervised run (no --labels): its D has no classes to "
                          "classify with; train one with --preset semi-supervised")


def paper_row(dataset: str, labels: int) -> dict | None:
    """Salimans et al.'s result for this many labels on MNIST, or None."""
    if dataset != "mnist" or labels not in PAPER_MNIST:
        return None
    mean, std = PAPER_MNIST[labels]
    return {"model": f"Salimans et al. (2016), Table 1, {labels} labels, 10 random labelled subsets", "errors_mean": mean, "errors_std": std}

