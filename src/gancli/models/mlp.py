"""The 2014 paper's fully connected models: a ReLU MLP generator and a maxout discriminator with dropout.

Linen modules are used because their parameters are a plain pytree: the hot loop is a pure function of that
pytree, which scans and vmaps (over seeds) with no graph traversal per call.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gancli.config import DiscriminatorConfig, GeneratorConfig, RunConfig
from gancli.models.layers import MinibatchDiscrimination, dropout, maxout, uniform_init


class Generator(nn.Module):
    """z -> ReLU hidden layers (batch norm before each ReLU when configured) -> sigmoid or linear output."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        w_init = uniform_init(c.init_scale)
        # keep_hidden < 1: dropout above the first layer, from the "dropout" stream a training step passes.
        key = self.make_rng("dropout") if train and c.keep_hidden < 1 and self.has_rng("dropout") else None
        keys = [None] * (len(c.hidden) + 1) if key is None else jax.random.split(key, len(c.hidden) + 1)
        h = z
        for i, width in enumerate(c.hidden):
            h = nn.Dense(width, kernel_init=w_init)(dropout(h, c.keep_hidden, keys[i]) if i else h)
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = nn.relu(h)
        h = nn.Dense(math.prod(self.out_shape), kernel_init=w_init, name="out")(dropout(h, c.keep_hidden, keys[-1]) if c.hidden else h)
        if c.output == "sigmoid":
            h = nn.sigmoid(h)
        return h.reshape(z.shape[:-1] + tuple(self.out_shape))


class Discriminator(nn.Module):
    """Maxout layers, then one logit; inverted dropout on the input of every layer when training.

    Returns {"logit": [B], "features": [B, F]}, the features being the last hidden layer before its dropout
    (what feature matching compares). With minibatch discrimination, its B kernel outputs computed on the
    features are concatenated to them (after dropout) before the output layer.
    """

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        c = self.config
        w_init = uniform_init(c.init_scale)
        h = x.reshape(x.shape[0], -1)
        keys = [None] * (len(c.units) + 1) if dropout_key is None else jax.random.split(dropout_key, len(c.units) + 1)
        for i, units in enumerate(c.units):
            h = dropout(h, c.keep_input if i == 0 else c.keep_hidden, keys[i])
            h = nn.Dense(units * c.pieces, kernel_init=w_init)(h)
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = maxout(h, units, c.pieces)
        features = h
        h = dropout(h, c.keep_input if not c.units else c.keep_hidden, keys[-1])
        if c.minibatch[0]:
            h = jnp.concatenate([h, MinibatchDiscrimination(*c.minibatch)(features)], axis=-1)
        return {"logit": nn.Dense(1, kernel_init=w_init)(h)[:, 0], "features": features}


INIT_EXAMPLES = 500  # as improved-gan's init pass (trainx[:500])


def init_examples(config: RunConfig, images: np.ndarray) -> np.ndarray:
    """What D's init pass sees: the first INIT_EXAMPLES training images in file order, for minibatch
    discrimination's data-dependent init; every other layer here is initialised without data."""
    return images[:INIT_EXAMPLES] if config.discriminator.minibatch[0] else images[:1]
