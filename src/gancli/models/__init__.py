"""The model registry: a run's config names a model family, which builds its generator and discriminator.

G is called as G(z, label=None, train=True) and returns samples shaped like the data; D as
D(x, label=None, dropout_key=None, train=True) and returns a dict with at least "logit" and "features" (and
"class_logits" for a classifier family); dropout_key drives whatever randomness D has in training (dropout, noise).
Adding a model family is one module and one entry in MODELS.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import numpy as np

from gancli import objectives
from gancli.config import RunConfig
from gancli.errors import GancliError
from gancli.models import cgan, conv, mlp, sngan, ssl
from gancli.models.conditioning import ConditionalDiscriminator, ConditionalGenerator
from gancli.models.layers import dropout, uniform_init


class Family(NamedTuple):
    """How to build a model family's two networks from the config and the data's shape."""

    generator: Callable[[RunConfig, tuple[int, ...]], nn.Module]
    discriminator: Callable[[RunConfig, tuple[int, ...]], nn.Module]
    conditional: bool = False  # takes the label itself; any other family is made conditional by build()
    problems: Callable[[RunConfig], list[str]] = lambda config: []  # what it cannot build, in words
    classifier: bool = False  # D also returns "class_logits" [B, n_classes], as semi-supervised objectives need
    options: str | None = None  # the name of the config section that holds the family's own knobs, if it has one
    # The training images D's init pass sees (config, all training images) -> images, for a data-dependent init;
    # None: D is initialised without data.
    init_data: Callable[[RunConfig, np.ndarray], np.ndarray] | None = None


MODELS: dict[str, Family] = {
    # The 2014 paper's MNIST model; the toy preset uses it too, smaller and without dropout.
    "mlp": Family(lambda c, shape: mlp.Generator(c.generator, shape), lambda c, shape: mlp.Discriminator(c.discriminator),
                  init_data=mlp.init_examples),
    # Mirza & Osindero (2014): the label through a hidden layer of its own in both nets.
    "cgan": Family(lambda c, shape: cgan.Generator(c.generator, shape, c.n_classes),
                   lambda c, shape: cgan.Discriminator(c.discriminator, c.n_classes), conditional=True, problems=cgan.problems),
    # The 2014 paper's CIFAR-10 and TFD models (gancli.models.conv), and a DCGAN-style baseline for colour images.
    "cifar-fc": Family(conv.cifar_fc_generator, conv.maxout_discriminator, problems=conv.fc_problems),
    "cifar-conv": Family(conv.cifar_conv_generator, conv.cifar_conv_discriminator, problems=conv.cifar_conv_problems),
    "tfd": Family(conv.tfd_generator, conv.maxout_discriminator, problems=conv.fc_problems),
    "dcgan": Family(conv.dcgan_generator, conv.dcgan_discriminator, problems=conv.dcgan_problems),
    # Miyato et al. (2018): the standard CNN of their Table 3 (gancli.models.sngan), for spectral normalisation of D.
    "sngan-cnn": Family(sngan.generator, sngan.discriminator, problems=sngan.problems),
    # Salimans et al. (2016): the weight-normalised MLPs of their semi-supervised MNIST code, D with K class logits.
    "ssl-mlp": Family(lambda c, shape: ssl.Generator(c.generator, shape), lambda c, shape: ssl.Discriminator(c.discriminator, c.n_classes, c.ssl_mlp),
                      problems=ssl.problems, classifier=True, options="ssl_mlp", init_data=ssl.init_examples),
}


def build(config: RunConfig, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the config's model family for data of this shape."""
    family = MODELS[config.model]
    if config.conditional and config.n_classes < 1:
        raise GancliError("a conditional model needs n_classes >= 1 (training sets it from the labels when 0)")
    g, d = family.generator(config, data_shape), family.discriminator(config, data_shape)
    if config.conditional and not family.conditional:
        g = ConditionalGenerator(g, config.n_classes)
        d = ConditionalDiscriminator(d, config.n_classes, config.discriminator.init_scale)
    return g, d


def check(config: RunConfig) -> RunConfig:
    """config, once its model family and objectives are known to the registries and can be built as asked;
    GancliError naming the first problem. RunConfig.validate checks the rest."""
    if config.model not in MODELS:
        raise GancliError(f"model must be one of {', '.join(MODELS)} (got {config.model!r})")
    for message in [*objectives.problems(config), *problems(config)]:
        raise GancliError(message)
    return config


def problems(config: RunConfig) -> list[str]:
    """Why the config's model cannot be built as asked, in words (none when it can)."""
    family = MODELS[config.model]
    out = [] if config.n_classes >= 0 else [f"n_classes must be >= 0, 0 meaning 'from the training labels' (got {config.n_classes})"]
    if family.conditional and not config.conditional:
        out.append(f"model {config.model} is conditional by design: set conditional (train --conditional)")
    if objectives.LABELLED in objectives.needs(config) and not family.classifier:
        out.append(f"d_loss {config.d_loss} needs a D with class logits, which model {config.model} has not: use model ssl-mlp")
    for name, family_of in ((f.options, n) for n, f in MODELS.items() if f.options):
        if family_of != config.model and getattr(config, name) != type(getattr(config, name))():
            out.append(f"the {name} settings are model {family_of}'s own; model {config.model} has none: leave them at "
                       "their defaults")
    return out + family.problems(config)


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


__all__ = ["MODELS", "Family", "build", "check", "count_params", "dropout", "logit_of_means", "per_example", "problems", "uniform_init"]
