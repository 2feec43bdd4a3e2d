"""Gradient penalties on D: terms of D's loss that are functions of D's gradient with respect to its input.

Each registered penalty takes D's gradient at some inputs (the real batch, the generated one, or random interpolates
of both) and turns the per-example squared gradient norms into a term of D's loss, weighted by a config field. The
training step adds the term's gradient with respect to D's parameters to D's own (gancli.steps); the term itself is
reported as a metric under the penalty's name, and d_loss stays the objective's value without it.

Lazy regularisation (Karras et al. 2020, StyleGAN2): with penalty.lazy = N > 1 the penalties are computed only on
the D updates whose count (over the run, from 0) is a multiple of N, and multiplied by N there, so that on average
they weigh what they would every update; the other updates skip them (jax.lax.cond). A metric is the term added on
that update (N times the penalty, or 0 when skipped), so its mean over an epoch is the penalty's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from gancli import objectives

# fold_in constants of the penalties' randomness, derived from one D step's key: D's dropout in each penalty's pass
# is its own (DROPOUT + the penalty's index), and wgan-gp's mixing weights have theirs.
DROPOUT, MIX = 100, 200


@dataclass(frozen=True)
class Penalty:
    """A registered penalty: its weight read off the config (0: off), where D's gradient is taken, and the term."""

    weight: Callable  # config -> float
    inputs: Callable  # (x, G(z), key) -> the images at which D's gradient is taken
    term: Callable  # (squared gradient norms [B], weight) -> the term of D's loss


def _interpolates(x, fake, key):
    """eps x + (1 - eps) G(z), eps ~ U[0, 1] per example (Gulrajani et al. 2017)."""
    eps = jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
    return eps * x + (1.0 - eps) * fake


def _norm(squared):
    """sqrt, with a finite gradient at 0 (where the plain sqrt's is infinite and would make the update NaN)."""
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _gp_weight(config) -> float:
    return config.penalty.gp if objectives.INTERPOLATES in objectives.needs(config) else 0.0


PENALTIES: dict[str, Penalty] = {
    # Mescheder et al. (2018): gamma/2 E||grad_x D(x)||^2 on real data (R1), on generated data (R2).
    "r1": Penalty(lambda c: c.penalty.r1, lambda x, fake, key: x, lambda sq, w: 0.5 * w * jnp.mean(sq)),
    "r2": Penalty(lambda c: c.penalty.r2, lambda x, fake, key: fake, lambda sq, w: 0.5 * w * jnp.mean(sq)),
    # Gulrajani et al. (2017): lambda E(||grad D(x_hat)||_2 - 1)^2 on random interpolates; only with d_loss wgan-gp.
    "gp": Penalty(_gp_weight, _interpolates, lambda sq, w: w * jnp.mean(jnp.square(_norm(sq) - 1.0))),
}


def active(config) -> tuple[str, ...]:
    """The names of the penalties a run applies (weight > 0), in PENALTIES' order."""
    return tuple(name for name, p in PENALTIES.items() if p.weight(config) > 0)


def squared_grad_norms(score, d, images, key):
    """||grad_x D(x)||^2 of each example of images; score(d, images, key) -> D's raw outputs [B]."""
    grads = jax.grad(lambda images: jnp.sum(score(d, images, key)))(images)
    return jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1)


def value(config, score, d, x, fake, key):
    """(the sum of the run's penalty terms at D's parameters d, {name: term}), unscaled by lazy."""
    terms = {}
    for i, name in enumerate(active(config)):
        p = PENALTIES[name]
        images = p.inputs(x, fake, jax.random.fold_in(key, MIX + i))
        terms[name] = p.term(squared_grad_norms(score, d, images, jax.random.fold_in(key, DROPOUT + i)), p.weight(config))
    return sum(terms.values()), terms


def grads(config, score, d, x, fake, key, count):
    """(the gradient of the run's penalties with respect to D's parameters d, their metrics) at D update `count`;
    zero gradients and metrics on the updates lazy regularisation skips. x and fake are taken as constants."""
    x, fake = jax.lax.stop_gradient(x), jax.lax.stop_gradient(fake)
    lazy = config.penalty.lazy

    def applied(d):
        (_, terms), g = jax.value_and_grad(lambda d: value(config, score, d, x, fake, key), has_aux=True)(d)
        return jax.tree.map(lambda a: lazy * a, g), {name: lazy * t for name, t in terms.items()}

    if lazy == 1:
        return applied(d)

    shapes = jax.eval_shape(applied, d)
    skipped = lambda d: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(count % lazy == 0, applied, skipped, d)


def add(d_grads, d_metrics, penalty_grads, penalty_metrics):
    """D's gradients and metrics with a penalty's added."""
    return jax.tree.map(jnp.add, d_grads, penalty_grads), {**d_metrics, **penalty_metrics}


def averaged(per_update: list[dict]) -> dict:
    """The penalties' metrics averaged over an iteration's D updates (the other D metrics are the last update's):
    with lazy regularisation, the last update alone may never be one that applies them."""
    names = [name for name in PENALTIES if name in per_update[-1]] if per_update else []
    return {name: sum(m[name] for m in per_update) / len(per_update) for name in names}
