"""Mirza & Osindero (2014), "Conditional Generative Adversarial Nets": their MNIST model, where the one-hot label
enters each network through a hidden layer of its own and joins the data's branch above it.

G: z -> ReLU hidden[0]; one-hot y -> ReLU hidden[1]; joined -> ReLU hidden[2:] -> output (sigmoid 784).
D: x -> maxout units[0] x pieces; y -> maxout units[1] x pieces; joined -> maxout units[2:] x JOINT_PIECES -> logit.
The preset's widths are the paper's: hidden (200, 1000, 1200), units (240, 50, 240), pieces 5 (and 4 joined).

Dropout (the paper: 0.5 "applied to both the generator and discriminator", placement not stated) is inverted
dropout on the input of every layer above the branches, in both nets, and on D's pixel input (keep_input); never on
the label, which dropped would make the condition noise.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gancli.config import DiscriminatorConfig, GeneratorConfig
from gancli.models.layers import dropout, maxout, uniform_init

JOINT_PIECES = 4  # the paper's joined D layer: maxout 240 units x 4 pieces (its branches have 5)


def _keys(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


class Generator(nn.Module):
    """z and the one-hot label through their own ReLU layers, joined, then ReLU layers and the output layer."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]
    n_classes: int

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        w_init = uniform_init(c.init_scale)
        # G's dropout draws from the "dropout" stream the training step passes; none at test time or in init.
        key = self.make_rng("dropout") if train and c.keep_hidden < 1 and self.has_rng("dropout") else None
        keys = _keys(key, len(c.hidden) - 1)
        hz = nn.relu(nn.Dense(c.hidden[0], kernel_init=w_init, name="z_hidden")(z))
        hy = nn.relu(nn.Dense(c.hidden[1], kernel_init=w_init, name="label_hidden")(jax.nn.one_hot(label, self.n_classes)))
        h = jnp.concatenate([hz, hy], axis=-1)
        for i, width in enumerate(c.hidden[2:]):
            h = nn.relu(nn.Dense(width, kernel_init=w_init)(dropout(h, c.keep_hidden, keys[i])))
        h = nn.Dense(math.prod(self.out_shape), kernel_init=w_init, name="out")(dropout(h, c.keep_hidden, keys[-1]))
        if c.output == "sigmoid":
            h = nn.sigmoid(h)
        return h.reshape(z.shape[:-1] + tuple(self.out_shape))


class Discriminator(nn.Module):
    """x and the one-hot label through their own maxout layers, joined, then maxout layers and one logit.

    Returns {"logit": [B], "features": [B, F]}, the features being the last joined layer before its dropout.
    """

    config: DiscriminatorConfig
    n_classes: int

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        c = self.config
        w_init = uniform_init(c.init_scale)
        joined = c.units[2:]
        keys = _keys(dropout_key, len(joined) + 2)
        x = dropout(x.reshape(x.shape[0], -1), c.keep_input, keys[0])
        hx = maxout(nn.Dense(c.units[0] * c.pieces, kernel_init=w_init, name="x_hidden")(x), c.units[0], c.pieces)
        y = jax.nn.one_hot(label, self.n_classes)
        hy = maxout(nn.Dense(c.units[1] * c.pieces, kernel_init=w_init, name="label_hidden")(y), c.units[1], c.pieces)
        h = jnp.concatenate([hx, hy], axis=-1)
        for i, units in enumerate(joined):
            h = nn.Dense(units * JOINT_PIECES, kernel_init=w_init)(dropout(h, c.keep_hidden, keys[1 + i]))
            h = maxout(h, units, JOINT_PIECES)
        features = h
        h = dropout(h, c.keep_hidden, keys[-1])
        return {"logit": nn.Dense(1, kernel_init=w_init, name="out")(h)[:, 0], "features": features}


def problems(config) -> list[str]:
    """What this family cannot build from a config, in words."""
    g, d = config.generator, config.discriminator
    out = []
    if len(g.hidden) < 3:
        out.append(f"model cgan needs generator.hidden = (z branch, label branch, joined layers...), 3 or more widths (got {g.hidden})")
    if len(d.units) < 3:
        out.append(f"model cgan needs discriminator.units = (x branch, label branch, joined layers...), 3 or more (got {d.units})")
    if g.batchnorm or d.batchnorm or d.minibatch[0]:
        out.append("model cgan has no batch norm or minibatch discrimination: use model mlp with conditional=true")
    return out
