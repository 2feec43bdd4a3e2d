"""Spectral normalisation (Miyato et al. 2018) of any model family, on its parameter pytree.

Which weights: every leaf named "kernel" with two or more axes. Dense kernels are [in, out]; convolution kernels
(HWIO, transposed ones included) are seen as a matrix [kh * kw * in, out], as Miyato et al.'s code reshapes theirs,
so sigma is that matrix's largest singular value, not the convolution operator's. Biases, batch norm's and weight
norm's scales, minibatch discrimination's T and the label embeddings of conditional models are not kernels and
stay as they are. A weight-normalised layer's kernel (ssl-mlp) is normalised too, with no effect: that layer
divides it by its own column norms.

How: each normalised kernel W keeps a unit vector u over its output units, in the state beside the parameters
("d_spectral", "g_spectral"; no optimiser or moving average sees them). One power iteration, v = W u / |W u|,
u = W^T v / |W^T v|, runs once per update of its network (`iterate`), before the update's passes. Every pass then
uses W / sigma with sigma = v^T W u, v = W u / |W u| (`normalise`), u and v held constant so that the gradient
reaches W through W alone, as in Miyato et al.'s code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import traverse_util

from gancli.config import RunConfig

EPS = 1e-12  # as Miyato et al.'s l2 normalisation: v / (|v| + eps)
# fold_in constants of a run's INIT key for the starting vectors: apart from the split that seeds G's and D's init
D_VECTORS, G_VECTORS = 101, 102
STATE_KEYS = {"d": "d_spectral", "g": "g_spectral"}


def networks(config: RunConfig) -> tuple[str, ...]:
    """The networks ("d", "g") the config normalises."""
    return {"none": (), "d": ("d",), "both": ("d", "g")}[config.spectral_norm]


def kernels(params) -> list[tuple[str, ...]]:
    """The paths of the leaves normalised: those named "kernel" with ndim >= 2, in sorted order."""
    flat = traverse_util.flatten_dict(params)
    return sorted(path for path, leaf in flat.items() if path[-1] == "kernel" and jnp.ndim(leaf) >= 2)


def _matrix(w):
    return w.reshape(-1, w.shape[-1])


def _unit(x):
    return x / (jnp.linalg.norm(x) + EPS)


def start(config: RunConfig, init_key, g_params, d_params) -> dict:
    """The state entries of a fresh run: for each network normalised, one unit Gaussian vector per kernel, from the
    run's INIT key; none when spectral normalisation is off, so that such a state's tree is as before it existed."""
    out = {}
    for network in networks(config):
        params = d_params if network == "d" else g_params
        key = jax.random.fold_in(init_key, D_VECTORS if network == "d" else G_VECTORS)
        flat = traverse_util.flatten_dict(params)
        paths = kernels(params)
        keys = jax.random.split(key, max(len(paths), 1))
        vectors = {p: _unit(jax.random.normal(k, (flat[p].shape[-1],), flat[p].dtype)) for p, k in zip(paths, keys)}
        out[STATE_KEYS[network]] = traverse_util.unflatten_dict(vectors)
    return out


def iterate(params, vectors):
    """The vectors after one power iteration with the kernels of params (None: spectral normalisation is off)."""
    if vectors is None:
        return None
    flat = traverse_util.flatten_dict(params)
    out = {}
    for path, u in traverse_util.flatten_dict(vectors).items():
        w = jax.lax.stop_gradient(_matrix(flat[path]))
        out[path] = _unit(w.T @ _unit(w @ u))
    return traverse_util.unflatten_dict(out)


def sigma(w, u):
    """The estimate v^T W u of the largest singular value of kernel w seen as a matrix, v = W u / |W u|; its gradient
    with respect to w is v u^T (u and v constants)."""
    m = _matrix(w)
    u = jax.lax.stop_gradient(u)
    wu = m @ u
    return jnp.dot(jax.lax.stop_gradient(_unit(wu)), wu)


def normalise(params, vectors):
    """params with each normalised kernel divided by its sigma under the given vectors (None: params as they are)."""
    if vectors is None:
        return params
    flat = dict(traverse_util.flatten_dict(params))
    for path, u in traverse_util.flatten_dict(vectors).items():
        flat[path] = flat[path] / sigma(flat[path], u)
    return traverse_util.unflatten_dict(flat)


def view(params, vectors):
    """(normalise(params, vectors), the map from gradients with respect to those to gradients with respect to params):
    a step computes its gradients on the normalised weights and pulls them back to the raw ones."""
    if vectors is None:
        return params, lambda grads: grads
    normalised, pullback = jax.vjp(lambda p: normalise(p, vectors), params)
    return normalised, lambda grads: pullback(grads)[0]
