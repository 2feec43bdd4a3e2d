"""The generator and discriminator of the 2014 paper, in Flax, built from the run's config.

Linen modules are used because their parameters are a plain pytree: the hot loop is a pure function of
that pytree, which scans and vmaps (over seeds) with no graph traversal per call.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gancli.config import DiscriminatorConfig, GeneratorConfig


def uniform_init(scale: float):
    """U(-scale, scale), pylearn2's irange initialisation."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class Generator(nn.Module):
    """z -> ReLU hidden layers -> sigmoid (images) or linear (toy data) output of size prod(out_shape)."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z):
        w_init = uniform_init(self.config.init_scale)
        h = z
        for width in self.config.hidden:
            h = nn.relu(nn.Dense(width, kernel_init=w_init)(h))
        h = nn.Dense(math.prod(self.out_shape), kernel_init=w_init, name="out")(h)
        if self.config.output == "sigmoid":
            h = nn.sigmoid(h)
        return h.reshape(z.shape[:-1] + tuple(self.out_shape))


class Discriminator(nn.Module):
    """Maxout layers, then one logit; inverted dropout on the input of every layer when training."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, dropout_key=None):
        c = self.config
        w_init = uniform_init(c.init_scale)
        h = x.reshape(x.shape[0], -1)
        keys = [None] * (len(c.units) + 1) if dropout_key is None else jax.random.split(dropout_key, len(c.units) + 1)
        for i, units in enumerate(c.units):
            h = dropout(h, c.keep_input if i == 0 else c.keep_hidden, keys[i])
            h = nn.Dense(units * c.pieces, kernel_init=w_init)(h)
            h = h.reshape(h.shape[0], units, c.pieces).max(axis=-1)
        h = dropout(h, c.keep_input if not c.units else c.keep_hidden, keys[-1])
        return nn.Dense(1, kernel_init=w_init)(h)[:, 0]


def dropout(x, keep: float, key):
    """Inverted dropout: scale kept units by 1/keep at train time; identity when key is None."""
    if key is None or keep >= 1.0:
        return x
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x / keep, 0.0)


def logit_of_means(data: np.ndarray) -> np.ndarray:
    """logit of the training set's mean per output, clipped to [1e-7, 1 - 1e-7], as the original code did."""
    p = np.clip(data.reshape(data.shape[0], -1).astype(np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def count_params(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
