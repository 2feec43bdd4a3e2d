"""The model registry: a run's config names a model family, which builds its generator and discriminator.

G is called as G(z, label=None, train=True) and returns samples shaped like the data; D as
D(x, label=None, dropout_key=None, train=True) and returns a dict with at least "logit" and "features".
Adding a model family is one module and one entry in MODELS.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import numpy as np

from gancli.config import RunConfig
from gancli.models import mlp
from gancli.models.layers import dropout, uniform_init


class Family(NamedTuple):
    """How to build a model family's two networks from the config and the data's shape."""

    generator: Callable[[RunConfig, tuple[int, ...]], nn.Module]
    discriminator: Callable[[RunConfig, tuple[int, ...]], nn.Module]


MODELS: dict[str, Family] = {
    # The 2014 paper's MNIST model; the toy preset uses it too, smaller and without dropout.
    "mlp": Family(lambda c, shape: mlp.Generator(c.generator, shape), lambda c, shape: mlp.Discriminator(c.discriminator)),
}


def build(config: RunConfig, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the config's model family for data of this shape."""
    family = MODELS[config.model]
    return family.generator(config, data_shape), family.discriminator(config, data_shape)


def per_example(config: RunConfig) -> bool:
    """Whether D scores each example on its own, so real and generated data may share one D pass.

    Minibatch discrimination and batch norm make D's output on an example depend on the rest of its batch.
    """
    d = config.discriminator
    return not (d.minibatch[0] or d.batchnorm)


def logit_of_means(data: np.ndarray) -> np.ndarray:
    """logit of the training set's mean per output, clipped to [1e-7, 1 - 1e-7], as the original code did."""
    p = np.clip(data.reshape(data.shape[0], -1).astype(np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def count_params(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


__all__ = ["MODELS", "Family", "build", "count_params", "dropout", "logit_of_means", "per_example", "uniform_init"]
