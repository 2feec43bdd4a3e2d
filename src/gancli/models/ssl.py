"""Salimans et al. (2016), "Improved Techniques for Training GANs": the MLPs of their semi-supervised MNIST code
(openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py and nn.py).

D: Gaussian noise on the input, then weight-normalised ReLU layers, each followed by Gaussian noise, then K
weight-normalised class logits. The fake class's logit is fixed at 0, so D(x) = Z / (Z + 1) with Z = sum_k
exp(l_k): D's "logit" is log Z. Its "features" are the last hidden layer before its noise (what the code's G
matches). Every layer's scale and bias start from a data-dependent init pass over training images, with the
noise on as in the code; the hidden layers' scales are then fixed (the code's train_scale=False), the output
layer's are trained.

G: z -> [dense without bias -> batch norm with a bias but no gain -> softplus] per hidden layer -> a
weight-normalised dense output layer -> sigmoid. Its batch norm trains on batch statistics, as the code's; the
code never uses running averages, which gancli keeps for drawing samples at test time only.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np

from gancli.config import DiscriminatorConfig, GeneratorConfig, RunConfig, SslMlpConfig
from gancli.models.layers import WeightNormDense, gaussian_noise

INIT_EXAMPLES = 500  # the code's init_param(trainx[:500])


class Generator(nn.Module):
    """z -> softplus hidden layers (batch norm before each when configured) -> weight-normalised output layer."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        glorot = nn.initializers.glorot_uniform()  # Lasagne's DenseLayer default
        h = z
        for width in c.hidden:
            # Batch norm's bias replaces the dense layer's, as the code's nn.batch_norm removes it.
            h = nn.Dense(width, use_bias=not c.batchnorm, kernel_init=glorot)(h)
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-6, use_scale=False,
                                 use_fast_variance=False)(h)
            h = nn.softplus(h)
        h = WeightNormDense(math.prod(self.out_shape), kernel_init=glorot, data_init=False, eps=1e-6, name="out")(h)
        if c.output == "sigmoid":
            h = nn.sigmoid(h)
        return h.reshape(z.shape[:-1] + tuple(self.out_shape))


class Discriminator(nn.Module):
    """K class logits from a weight-normalised ReLU MLP with Gaussian noise; dropout_key drives the noise (None: none,
    as at test time).

    Returns {"logit": log sum_k exp(l_k) [B], "features": the last hidden layer [B, F], "class_logits": [B, K]}.
    """

    config: DiscriminatorConfig
    n_classes: int
    options: SslMlpConfig = SslMlpConfig()

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        c = self.config
        key = dropout_key
        if key is None and self.is_initializing():
            key = self.make_rng("params")  # the code's init pass runs with the noise on
        keys = [None] * (len(c.units) + 1) if key is None else list(jax.random.split(key, len(c.units) + 1))
        h = gaussian_noise(x.reshape(x.shape[0], -1), self.options.input_noise, keys[0])
        features = h
        for i, units in enumerate(c.units):
            h = nn.relu(WeightNormDense(units, nn.initializers.normal(c.init_scale), train_scale=False)(h))
            features = h
            h = gaussian_noise(h, self.options.hidden_noise, keys[i + 1])
        logits = WeightNormDense(self.n_classes, nn.initializers.normal(c.init_scale), name="out")(h)
        return {"logit": jax.nn.logsumexp(logits, axis=-1), "features": features, "class_logits": logits}


def init_examples(config: RunConfig, images: np.ndarray) -> np.ndarray:
    """The training images D's data-dependent init sees: the first INIT_EXAMPLES of the label seed's permutation,
    the one that picks the labelled examples, as the code's trainx[:500] after its data_rng permutation."""
    from gancli.data.labelled import permutation  # lazily: the data package loads TFDS, which building models needs not

    return images[permutation(config.label_seed, len(images))[:INIT_EXAMPLES]]


def problems(config: RunConfig) -> list[str]:
    """What this family cannot build from a config, in words."""
    from gancli import objectives

    g, d = config.generator, config.discriminator
    out = []
    if objectives.LABELLED not in objectives.needs(config):
        out.append(f"model {config.model} is the semi-supervised D: train it with --labels N and d_loss semi-supervised "
                   "(preset semi-supervised)")
    if config.conditional:
        out.append(f"model {config.model} is not conditional")
    if not d.units:
        out.append(f"model {config.model} needs at least one hidden layer in D (discriminator.units)")
    if d.keep_input < 1 or d.keep_hidden < 1 or g.keep_hidden < 1:
        out.append(f"model {config.model} has no dropout (its D has Gaussian noise): set the keep probabilities to 1")
    if d.batchnorm or d.minibatch[0]:
        out.append(f"model {config.model}'s D has no batch norm or minibatch discrimination")
    return out
