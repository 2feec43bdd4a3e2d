"""Streams: the extra batches an iteration draws because its objectives need them (gancli.objectives.needs).

A stream is named after the need it serves. Each iteration it draws a batch per D step (step "d": D's pass covers
it beside [x; G(z)], its examples are batch[name] and D's outputs on them real[name]) or one for G's step (step
"g": G's step takes its real batch from the stream, not from the last D step). Its examples are drawn from the
whole training set or from a pool of it (`pool`: an int32 array that the compiled chunk takes beside the data, one
per seed, so that the seeds of one program can draw from different pools), in an order that is a function of the
run's key, the stream's own fold_in constant and the epoch, so a resumed run draws what an uninterrupted one would.
The training step knows streams only through this registry: a new one is an entry here and a need an objective
declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gancli import objectives

# The streams' fold_in constants for their epoch keys, after gancli.steps' INIT, STEP, ORDER, FIXED_Z (0 to 3).
LABELLED_ORDER, G_ORDER = 4, 5


@dataclass(frozen=True)
class Stream:
    """How a stream draws: `prepare(game, epoch_key, pool)` once per compiled chunk (pool: this seed's array of
    examples, None for a stream without one), then `indices(game, prepared, i)`, iteration i's training examples,
    flat [batches * batch_size]; `pool(config, train_labels)` the examples it draws from (None: the whole training
    set), `pool_size(config)` how many that is."""

    name: str  # the need it serves (objectives.LABELLED, ...); its batches are batches[name]
    step: str  # "d": one batch per D step, through D's pass; "g": G's step's real batch
    order: int  # the fold_in constant of its epoch key
    prepare: Callable[[Any, Any, Any], Any]
    indices: Callable[[Any, Any, Any], jax.Array]
    pool: Callable[[Any, Any], tuple[int, ...]] | None = None
    pool_size: Callable[[Any], int] | None = None

    def batches(self, config) -> int:
        """How many batches of config.batch_size it gives an iteration."""
        return config.k if self.step == "d" else 1


def _labelled_pool(config, labels) -> tuple[int, ...]:
    from gancli.data.labelled import labelled_subset  # lazily: the data package loads TFDS, which a step needs not

    return labelled_subset(config, labels)


def _labelled_start(game, key, pool):
    if pool is None or pool.shape != (game.config.labels,):
        raise ValueError(f"the labelled stream needs a pool of {game.config.labels} examples, got "
                         f"{None if pool is None else pool.shape}")
    return key, pool


def labelled_indices(game, drawn, i):
    """The training examples of iteration i's k labelled batches, flat [k * B]: the labelled set is reshuffled at
    every pass through it and the passes are laid end to end, as improved-gan tiles permutations of its labelled
    set over an epoch (with 100 labels and batches of 100, each batch is the whole set in a new order). drawn is
    (the epoch's key, the seed's labelled examples): the passes start afresh every epoch, as there."""
    c = game.config
    key, labelled = drawn
    n, per_iter = labelled.shape[0], c.k * c.batch_size
    start = i * per_iter
    first = start // n  # the pass this iteration's first labelled example belongs to
    passes = jax.vmap(lambda q: jax.random.permutation(jax.random.fold_in(key, q), n))(first + jnp.arange(-(-per_iter // n) + 1))
    at = jax.lax.dynamic_slice(passes.reshape(-1), (start - first * n,), (per_iter,))
    return labelled[at]


def _own_order(game, key, pool=None):
    """G's own pass over the training set: a permutation of its own every epoch."""
    return jax.random.permutation(key, game.n_train)


def _own_indices(game, order, i):
    b = game.config.batch_size
    return jax.lax.dynamic_slice(order, (i * b,), (b,))


STREAMS: tuple[Stream, ...] = (
    # Salimans et al. (2016): each D step's labelled batch, from the run's labelled subset (gancli.data.labelled).
    Stream(objectives.LABELLED, "d", LABELLED_ORDER, _labelled_start, labelled_indices, _labelled_pool, lambda c: c.labels),
    # improved-gan's G step on its own unlabelled batch (config g_batch own).
    Stream(objectives.G_REAL, "g", G_ORDER, _own_order, _own_indices),
)


def of(config) -> tuple[Stream, ...]:
    """The streams a run's training draws, in STREAMS' order."""
    wanted = objectives.needs(config)
    return tuple(s for s in STREAMS if s.name in wanted)


def pools(config, train_labels) -> dict[str, tuple[int, ...]]:
    """{stream name: the training examples it draws from} of each of the run's streams with a pool, for the seed
    whose config this is (gancli.train.seed_config)."""
    return {s.name: s.pool(config, train_labels) for s in of(config) if s.pool is not None}


def pool_sizes(config) -> dict[str, int]:
    """{stream name: the size of its pool} of each of the run's streams with a pool: what the program is built for."""
    return {s.name: s.pool_size(config) for s in of(config) if s.pool is not None}
