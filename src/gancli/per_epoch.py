"""Evaluations the training loop runs every N epochs (train --eval-every N), each adding flat numbers to that
epoch's metrics.jsonl record, so the curves show quality and not only losses.

An evaluation is one entry of EVALUATIONS: `applies(config)` says why a run cannot have it (None when it can),
checked before training starts; `build(config, game, data_dir, progress)` runs once before the loop (reporting
progress(what, done, total) of its reference statistics) and returns
measure(state, key) -> {name: number} for one seed's state. The key is the run's own key folded with EVAL, the
epoch and the entry's position, never drawn from the training stream: evaluating changes nothing a resumed run
computes, and a resumed run evaluates an epoch with the same key as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gancli import metrics
from gancli.config import RunConfig
from gancli.errors import GancliError

EVAL = 1_000  # fold_in tag of the evaluations' randomness, apart from steps' INIT, STEP, ORDER, FIXED_Z


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One per-epoch evaluation: when it applies, and how to build its measure."""

    describe: str
    applies: Callable[[RunConfig], str | None]
    build: Callable[..., Callable[[dict, jax.Array], dict[str, float]]]


def _quality_applies(config: RunConfig) -> str | None:
    from gancli import feature_nets

    if config.dataset not in feature_nets.SPECS:
        return f"the sample-quality metrics need a feature network, which gancli ships for {', '.join(feature_nets.SPECS)} only"
    return None


def _quality_build(config: RunConfig, game, data_dir, progress=None) -> Callable:
    """metrics.quick (the registry's cheap metrics) of N_CHEAP samples of the generator that
    `sample` draws from (the moving average of G when the run keeps one); a conditional run's take the classes in turn."""
    from gancli import conditional, sampling, steps

    ref = metrics.reference(config.dataset, metrics.CHEAP, data_dir, progress=progress)
    labels = conditional.class_labels(config, metrics.N_CHEAP)
    labels = None if labels is None else jnp.asarray(labels)
    draw = jax.jit(lambda g, z: steps.sample(game, g, z, labels))

    def measure(state, key):
        g = {k: state[k] for k in sampling.GENERATOR_KEYS if k in state}
        # The generator's range is its own design (a linear output may overshoot); the network takes [0, 1].
        x = np.clip(np.asarray(draw(g, game.noise(key, metrics.N_CHEAP))), 0.0, 1.0)
        return {k: v if isinstance(v, int) else round(float(v), 6) for k, v in metrics.scalars(metrics.quick(x, ref)).items()}

    return measure


def _classify_applies(config: RunConfig) -> str | None:
    if not config.labels:
        return "the test error needs a semi-supervised run (--labels; preset semi-supervised)"
    return None


def _classify_build(config: RunConfig, game, data_dir, progress=None) -> Callable:
    """D's test errors (its moving average, and D itself when the run keeps one) on the whole test split."""
    from gancli import semi_supervised

    return semi_supervised.measure_per_epoch(config, game, data_dir)


# Append new entries at the end: an entry's position is part of its key.
EVALUATIONS: dict[str, Evaluation] = {
    "quality": Evaluation(metrics.describe(metrics.CHEAP), _quality_applies, _quality_build),
    "classify": Evaluation("D's test error", _classify_applies, _classify_build),
}


@dataclasses.dataclass
class PerEpoch:
    """The evaluations a run has, built, and how often they run."""

    every: int
    seeds: int
    measures: list[tuple[int, str, Callable]]

    def run(self, state, epoch: int, epoch_seconds: float, reporter) -> list[dict] | None:
        """Each seed's figures at the end of `epoch` (None when it is not due), from the state at that moment (a
        leading seed axis when seeds > 1); the cost, with its share of the epoch's training time, is reported."""
        if epoch % self.every:
            return None
        start = time.perf_counter()
        found = []
        for s in range(self.seeds):
            one = state if self.seeds == 1 else jax.tree.map(lambda x: x[s], state)
            base = jax.random.fold_in(jax.random.fold_in(one["key"], EVAL), epoch)
            figures = {}
            for position, _, measure in self.measures:
                figures.update(measure(one, jax.random.fold_in(base, position)))
            found.append(figures)
        spent = time.perf_counter() - start
        for figures in found:
            figures["eval_s"] = round(spent, 3)
        share = f", {spent / epoch_seconds:.1%} of the epoch's training time" if epoch_seconds > 0 else ""
        reporter.message(f"epoch {epoch} evaluation ({', '.join(name for _, name, _ in self.measures)}): {spent:.2f} s{share}")
        return found


def check(config: RunConfig, every: int | None) -> list[str]:
    """Before any work: the names of the evaluations this run will have every `every` epochs ([] for None);
    GancliError when every < 1 or none applies to the run."""
    if every is None:
        return []
    if every < 1:
        raise GancliError(f"--eval-every must be >= 1 epoch (got {every})")
    names, why_not = [], []
    for name, e in EVALUATIONS.items():
        reason = e.applies(config)
        (why_not if reason else names).append(reason or name)
    if not names:
        raise GancliError(f"--eval-every: nothing to evaluate on {config.dataset}: {'; '.join(why_not)}")
    return names


def build(config: RunConfig, game, data_dir, every: int | None,
          progress: Callable[[str, int, int], None] | None = None) -> PerEpoch | None:
    """The run's per-epoch evaluations, ready to measure (reference statistics computed, reporting progress(what,
    done, total)), or None without --eval-every."""
    names = check(config, every)
    if not names:
        return None
    order = list(EVALUATIONS)
    measures = [(order.index(n), EVALUATIONS[n].describe, EVALUATIONS[n].build(config, game, data_dir, progress))
                for n in names]
    return PerEpoch(every, config.seeds, measures)


@dataclasses.dataclass(frozen=True)
class Every:
    """The run's per-epoch evaluations every n epochs (train --eval-every), as train.train takes them; progress(what,
    done, total): the work of building them before training starts (the train command's reporter.work draws it)."""

    n: int
    progress: Callable[[str, int, int], None] | None = None

    def check(self, config: RunConfig) -> list[str]:
        return check(config, self.n)

    def build(self, config: RunConfig, game, data_dir) -> PerEpoch | None:
        return build(config, game, data_dir, self.n, self.progress)
