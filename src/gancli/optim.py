"""Optimisers for each player: the original SGD with classical momentum and schedules, or Adam."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gancli.config import OptimizerConfig

MOMENTUM_START_EPOCH = 1  # pylearn2's MomentumAdjustor(start=1)


def learning_rate(c: OptimizerConfig, count, steps_per_epoch: int = 1):
    """The lr of update `count` (0-based) of a network that takes steps_per_epoch updates an epoch: lr / decay^count,
    floored at lr_min (pylearn2's ExponentialDecay, one step per minibatch), times the linear tail's factor."""
    # log(decay) in float64 on the host: 1.000004 rounded to float32 is 1.00000405, which would decay 1.3% too fast.
    return jnp.maximum(c.lr * jnp.exp(-math.log(c.lr_decay) * count), c.lr_min) * linear_tail(c, count // steps_per_epoch)


def linear_tail(c: OptimizerConfig, epoch):
    """The factor on the lr in `epoch` (0-based): 1 until epoch lr_linear_from, then falling linearly to 0 at epoch
    lr_linear_to, constant within an epoch. improved-gan's MNIST script of 2016-06-08 (train_mnist_feature_matching.py)
    set lr = 0.001 * min(3 - epoch / 100, 1) at the start of each epoch: from 200 and to 300. 1 when off."""
    if (c.lr_linear_from, c.lr_linear_to) == (0, 0):
        return 1.0
    return jnp.clip((c.lr_linear_to - epoch) / (c.lr_linear_to - c.lr_linear_from), 0.0, 1.0)


def momentum(c: OptimizerConfig, epochs_done):
    """The momentum of the epoch that follows `epochs_done` finished ones: `momentum` in epoch 1, rising
    linearly to `momentum_final` in epoch `momentum_saturate_epoch`.

    pylearn2's MomentumAdjustor counts monitor calls, and the monitor runs once before the first epoch, so its
    count is already 1 when epoch 1 starts: epoch e (1-based) trains with count e.
    """
    span = max(c.momentum_saturate_epoch - MOMENTUM_START_EPOCH, 1)
    alpha = jnp.clip((epochs_done + 1 - MOMENTUM_START_EPOCH) / span, 0.0, 1.0)
    return c.momentum + alpha * (c.momentum_final - c.momentum)


class MomentumState(NamedTuple):
    count: jax.Array
    momentum: jax.Array  # the momentum of the last update, kept so a run's schedule can be read off its state
    velocity: optax.Updates


def classical_momentum(c: OptimizerConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """v <- m v - lr g; theta <- theta + v. Unlike optax.sgd's trace, lr scales only the new gradient."""

    def init(params):
        zero = jnp.zeros([], jnp.float32)
        return MomentumState(jnp.zeros([], jnp.int32), zero, jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        lr = learning_rate(c, state.count, steps_per_epoch)
        m = momentum(c, state.count // steps_per_epoch)
        velocity = jax.tree_util.tree_map(lambda v, g: m * v - lr * g, state.velocity, grads)
        return velocity, MomentumState(state.count + 1, jnp.asarray(m, jnp.float32), velocity)

    return optax.GradientTransformation(init, update)


def max_col_norm(limit: float) -> optax.GradientTransformation:
    """After an update, each weight column (the weights into one unit: a kernel's last axis) whose L2 norm passes
    limit is scaled back to it, as pylearn2's max_col_norm / max_kernel_norm do; biases are left alone. The
    optimiser's own state (momentum's velocity) is not touched, as in pylearn2, which edits only the new values."""

    def update(updates, state, params):
        def cap(path, u, p):
            if getattr(path[-1], "key", None) != "kernel":
                return u
            new = p + u
            norms = jnp.sqrt(jnp.sum(jnp.square(new), axis=tuple(range(new.ndim - 1)), keepdims=True))
            return new * (jnp.minimum(norms, limit) / (1e-7 + norms)) - p  # pylearn2's clip(norms, 0, max) / (1e-7 + norms)

        return jax.tree_util.tree_map_with_path(cap, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make(c: OptimizerConfig, steps_per_epoch: int, max_norm: float = 0.0) -> optax.GradientTransformation:
    """The configured optimiser for a network that takes steps_per_epoch updates per epoch, its weight columns
    capped at max_norm when it is > 0 (the state then gains an empty entry; runs without the cap keep theirs)."""
    tx = classical_momentum(c, steps_per_epoch) if c.name == "sgd" else optax.adam(lambda count: learning_rate(c, count, steps_per_epoch), b1=c.b1, b2=c.b2, eps=c.eps, eps_root=c.eps_root)
    return optax.chain(tx, max_col_norm(max_norm)) if max_norm > 0 else tx
