"""Layers the papers define: pylearn2's uniform init, inverted dropout, maxout, and minibatch discrimination."""

from __future__ import annotations

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
    which only shifts o by 1. T starts N(0, 0.05) as there; their weight normalisation of T is not used.
    """

    kernels: int  # B
    dims: int  # C

    @nn.compact
    def __call__(self, f):
        t = self.param("T", nn.initializers.normal(0.05), (f.shape[-1], self.kernels * self.dims))
        m = (f @ t).reshape(f.shape[0], self.kernels, self.dims)
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [N, N, B]
        o = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # minus the self-term exp(0)
        return o + self.param("bias", nn.initializers.zeros, (self.kernels,))
