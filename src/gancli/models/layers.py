"""Layers the papers define: pylearn2's uniform init, inverted dropout, maxout, minibatch discrimination, Gaussian
noise and weight normalisation."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def uniform_init(scale: float):
    """U(-scale, scale), pylearn2's irange initialisation."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def dropout(x, keep: float, key):
    """Inverted dropout: scale kept units by 1/keep at train time; identity when key is None."""
    if key is None or keep >= 1.0:
        return x
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x / keep, 0.0)


def maxout(h, units: int, pieces: int):
    """The max over each unit's `pieces` consecutive linear pieces."""
    return h.reshape(h.shape[:-1] + (units, pieces)).max(axis=-1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016), section 3.2: M_i = f(x_i) T, with T of shape A x B x C;
    o(x_i)_b = sum over j != i of exp(-||M_i,b - M_j,b||_L1) + bias_b.

    The self-term (always exp(0) = 1) is left out, as improved-gan's code does; the paper's formula keeps it,
    which only shifts o by 1. T starts N(0, 0.05) as there, then, when init sees a batch (more than one example),
    the code's data-dependent init: each kernel's T is divided by half the batch's mean distance to the nearest
    other example, and the bias set to minus the mean o, so o starts centred with each exp term well inside (0, 1).
    Without it o starts near N - 1 on every kernel, and the paper's SGD at lr 0.1 diverged within ten iterations
    on MNIST (measured). Their weight normalisation of T itself is not used: T is trained directly.
    """

    kernels: int  # B
    dims: int  # C

    @nn.compact
    def __call__(self, f):
        t = self.param("T", nn.initializers.normal(0.05), (f.shape[-1], self.kernels * self.dims))
        bias = self.param("bias", nn.initializers.zeros, (self.kernels,))
        if self.is_initializing() and f.shape[0] > 1:
            m = self._project(f, t)
            l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [N, N, B]
            nearest = jnp.min(l1 + 1e6 * jnp.eye(f.shape[0])[:, :, None], axis=1)  # [N, B]
            t = t / jnp.repeat(0.5 * jnp.mean(nearest, axis=0), self.dims)
            bias = -jnp.mean(closeness(self._project(f, t)), axis=0)
            self.put_variable("params", "T", t)
            self.put_variable("params", "bias", bias)
        return closeness(self._project(f, t)) + bias

    def _project(self, f, t):
        return (f @ t).reshape(f.shape[0], self.kernels, self.dims)  # M: [N, B, C]


@jax.custom_vjp
def closeness(m):
    """o[i, b] = sum over j != i of exp(-||m[i, b] - m[j, b]||_1), for m of shape [N, B, C].

    Its gradient is written out: -sum_j (g_i + g_j) e_ij sign(m_i - m_j), one pass over the [N, N, B, C]
    differences, where autodiff's took 3 to 4 times as long on a CPU (measured, N = B = 100, C = 5). At a tie
    (m_i = m_j in a coordinate) it takes the subgradient 0, where autodiff's abs would push the pair one way.
    """
    return _closeness_fwd(m)[0]


def _closeness_fwd(m):
    d = m[:, None] - m[None, :]  # [N, N, B, C]
    e = jnp.exp(-jnp.sum(jnp.abs(d), axis=-1))  # [N, N, B], 1 on the diagonal
    return jnp.sum(e, axis=1) - 1.0, (d, e)


def _closeness_bwd(residuals, g):
    d, e = residuals
    w = (g[:, None, :] + g[None, :, :]) * e
    return (-jnp.sum(w[..., None] * jnp.sign(d), axis=1),)


closeness.defvjp(_closeness_fwd, _closeness_bwd)


def gaussian_noise(x, std: float, key):
    """x + N(0, std^2) noise at train time; identity when key is None or std is 0."""
    if key is None or std == 0:
        return x
    return x + std * jax.random.normal(key, x.shape, x.dtype)


class WeightNormDense(nn.Module):
    """Salimans & Kingma (2016): y = x (v / ||v||) * scale + bias, the norm taken per output unit.

    With data_init, the first batch the layer sees at init sets scale and bias so that its outputs on that batch
    have zero mean and unit standard deviation per unit (improved-gan's nn.DenseLayer init pass). A scale that is
    not trained (train_scale False, as improved-gan's hidden layers) lives in the "fixed" collection: set at init,
    never seen by an optimiser or a moving average.
    """

    features: int
    kernel_init: Callable = nn.initializers.normal(0.1)
    train_scale: bool = True
    data_init: bool = True
    eps: float = 0.0  # inside the square root of the norm: 0 in improved-gan's DenseLayer, 1e-6 in its l2normalize

    @nn.compact
    def __call__(self, x):
        v = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        t = x @ (v / jnp.sqrt(self.eps + jnp.sum(jnp.square(v), axis=0)))
        scale0, bias0 = jnp.ones((self.features,)), jnp.zeros((self.features,))
        if self.data_init and self.is_initializing():
            mean = jnp.mean(t, axis=0)
            std = jnp.sqrt(jnp.mean(jnp.square(t - mean), axis=0))
            scale0, bias0 = 1.0 / std, -mean / std
        if self.train_scale:
            scale = self.param("scale", lambda key, shape: scale0, (self.features,))
        else:
            scale = self.variable("fixed", "scale", lambda: scale0).value
        return t * scale + self.param("bias", lambda key, shape: bias0, (self.features,))
