"""A straightforward plain-JAX GAN trainer for the paper's MNIST model: the baseline gancli is compared with.

Written the way a careful JAX user would write it without gancli: parameter dicts, one jitted epoch as a
lax.scan over minibatches, data and randomness on the device, buffers donated. Each iteration takes k
discriminator steps, then a generator step that draws fresh z and runs G and D again (Algorithm 1), with
classical momentum at a fixed rate. It shares no code with gancli, so that the comparison is fair.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Z_DIM, G_HIDDEN, D_UNITS, PIECES = 100, 1200, 240, 5
KEEP_INPUT, KEEP_HIDDEN, LR, MOMENTUM = 0.8, 0.5, 0.1, 0.5


def _layer(key, n_in, n_out, scale):
    return {"w": jax.random.uniform(key, (n_in, n_out), minval=-scale, maxval=scale), "b": jnp.zeros(n_out)}


def init(seed: int, n_pixels: int = 784):
    """Parameters and momenta of G (100-1200-1200-784) and D (maxout 240x5, 240x5, then 1)."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    g = [_layer(k[0], Z_DIM, G_HIDDEN, 0.05), _layer(k[1], G_HIDDEN, G_HIDDEN, 0.05), _layer(k[2], G_HIDDEN, n_pixels, 0.05)]
    d = [_layer(k[3], n_pixels, D_UNITS * PIECES, 0.005), _layer(k[4], D_UNITS, D_UNITS * PIECES, 0.005), _layer(k[5], D_UNITS, 1, 0.005)]
    params = {"g": g, "d": d}
    return params, jax.tree.map(jnp.zeros_like, params)


def generate(g, z):
    h = jax.nn.relu(z @ g[0]["w"] + g[0]["b"])
    h = jax.nn.relu(h @ g[1]["w"] + g[1]["b"])
    return jax.nn.sigmoid(h @ g[2]["w"] + g[2]["b"])


def discriminate(d, x, key):
    keys = jax.random.split(key, 3)
    h = x
    for i, layer in enumerate(d[:2]):
        keep = KEEP_INPUT if i == 0 else KEEP_HIDDEN
        h = jnp.where(jax.random.bernoulli(keys[i], keep, h.shape), h / keep, 0.0)
        h = (h @ layer["w"] + layer["b"]).reshape(h.shape[0], D_UNITS, PIECES).max(-1)
    h = jnp.where(jax.random.bernoulli(keys[2], KEEP_HIDDEN, h.shape), h / KEEP_HIDDEN, 0.0)
    return (h @ d[2]["w"] + d[2]["b"])[:, 0]


def noise(key, n):
    return jax.random.uniform(key, (n, Z_DIM), minval=-math.sqrt(3.0), maxval=math.sqrt(3.0))


def d_loss(d, g, x, key):
    z_key, real_key, fake_key = jax.random.split(key, 3)
    fake = generate(g, noise(z_key, x.shape[0]))
    real_logits, fake_logits = discriminate(d, x, real_key), discriminate(d, fake, fake_key)
    return 0.5 * (jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits)))


def g_loss(g, d, n, key):
    z_key, drop_key = jax.random.split(key)
    return jnp.mean(jax.nn.softplus(-discriminate(d, generate(g, noise(z_key, n)), drop_key)))


def _momentum_step(params, velocity, grads):
    velocity = jax.tree.map(lambda v, g: MOMENTUM * v - LR * g, velocity, grads)
    return jax.tree.map(jnp.add, params, velocity), velocity


def make_epoch(iters: int, batch_size: int, k: int):
    """A jitted function (params, velocity, data, key) -> (params, velocity, losses) running `iters` iterations."""

    def iteration(carry, i):
        params, velocity, data, order, key = carry
        keys = jax.random.split(jax.random.fold_in(key, i), k + 1)
        for j in range(k):
            idx = jax.lax.dynamic_slice(order, ((i * k + j) * batch_size,), (batch_size,))
            grads = jax.grad(d_loss)(params["d"], params["g"], data[idx], keys[j])
            params["d"], velocity["d"] = _momentum_step(params["d"], velocity["d"], grads)
        loss, grads = jax.value_and_grad(g_loss)(params["g"], params["d"], batch_size, keys[-1])
        params["g"], velocity["g"] = _momentum_step(params["g"], velocity["g"], grads)
        return (params, velocity, data, order, key), loss

    def epoch(params, velocity, data, key):
        order = jax.random.permutation(key, data.shape[0])
        (params, velocity, *_), losses = jax.lax.scan(iteration, (params, velocity, data, order, key), jnp.arange(iters))
        return params, velocity, losses

    return jax.jit(epoch, donate_argnums=(0, 1))
