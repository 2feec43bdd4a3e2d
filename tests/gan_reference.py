"""An independent float64 model of the first training iterations of the paper and toy presets, for test_pinned.

Plain numpy with hand-written forward and backward passes: nothing here calls gancli's models, objectives,
optimisers or steps. What it shares with gancli is only the contract a run's randomness follows (the key scheme
below), drawn with jax.random itself, and the initial parameters, which the test takes from gancli's own init and
checks separately. Every constant of the recipes is written out here, from the papers and the original code, not
read from gancli's config: a preset that drifts from them is a change this model must notice.

The random-stream contract (a run's key is PRNGKey(seed)):
- iteration `step` draws from split(fold_in(fold_in(key, 1), step), k + 1): the k D steps take the first k keys,
  G's step the last; a simultaneous update takes both gradients from the last key (its D step and G's share it);
- a step's key splits into (noise key, dropout key); the noise is uniform(noise key, [B, z_dim], -a, a);
- D's dropout key splits into one key per layer input (hidden layers, then the output layer), each input kept
  with bernoulli(key, keep, its shape) and scaled by 1 / keep (inverted dropout); D scores [x; G(z)] in one pass;
- epoch e visits the training set in permutation(fold_in(fold_in(key, 2), e), n_train), B * k examples an
  iteration, in that order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax
import numpy as np

STEP_STREAM, ORDER_STREAM = 1, 2


@dataclass(frozen=True)
class Recipe:
    """What one iteration computes, as numbers."""

    update: str  # "simultaneous" (both gradients from the same networks and batch) or "alternating" (D, then G)
    optimizer: str  # "sgd" (classical momentum) or "adam"
    batch: int
    z_dim: int
    noise_half_width: float  # z ~ U(-a, a)
    g_hidden: tuple[int, ...]
    g_output: str  # "sigmoid" or "linear"
    d_units: tuple[int, ...]
    d_pieces: int
    keep_input: float
    keep_hidden: float
    lr: float
    lr_decay: float = 1.0  # lr / decay^t at update t, floored at lr_min
    lr_min: float = 0.0
    momentum: float = 0.0  # sgd: in the first epoch...
    momentum_final: float = 0.0  # ...rising linearly to this...
    momentum_saturate: int = 1  # ...reached in this epoch (1-based)
    b1: float = 0.9  # adam
    b2: float = 0.999
    eps: float = 1e-8


# Goodfellow et al. (2014), MNIST, as the original pylearn2 yaml trains it: z of 100 from U(-sqrt3, sqrt3); G ReLU
# 1200-1200 with a sigmoid output; D maxout 240x5 twice, dropout keeping 0.8 of the pixels and 0.5 of each hidden
# layer's inputs; simultaneous updates, k = 1, batches of 100; SGD lr 0.1 / 1.000004 per update (floor 1e-6),
# classical momentum 0.5 rising linearly to 0.7 at epoch 250 (pylearn2's MomentumAdjustor, start 1).
PAPER = Recipe(update="simultaneous", optimizer="sgd", batch=100, z_dim=100, noise_half_width=math.sqrt(3.0),
               g_hidden=(1200, 1200), g_output="sigmoid", d_units=(240, 240), d_pieces=5, keep_input=0.8,
               keep_hidden=0.5, lr=0.1, lr_decay=1.000004, lr_min=1e-6, momentum=0.5, momentum_final=0.7,
               momentum_saturate=250)


def toy(z_dim: int) -> Recipe:
    """gancli's toy recipe: G ReLU 128-128 with a linear output and z as wide as the data; D maxout 64x2 twice
    without dropout; alternating updates, batches of 100; Adam lr 1e-3, beta1 0.5."""
    return Recipe(update="alternating", optimizer="adam", batch=100, z_dim=z_dim, noise_half_width=math.sqrt(3.0),
                  g_hidden=(128, 128), g_output="linear", d_units=(64, 64), d_pieces=2, keep_input=1.0,
                  keep_hidden=1.0, lr=1e-3, b1=0.5, b2=0.999, eps=1e-8)


def perturbed(recipe: Recipe, **changes) -> Recipe:
    return dataclasses.replace(recipe, **changes)


# The random draws -----------------------------------------------------------------------------------------------


def step_keys(seed: int, step: int, n: int):
    return jax.random.split(jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), STEP_STREAM), step), n)


def epoch_order(seed: int, epoch: int, n_train: int) -> np.ndarray:
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), ORDER_STREAM), epoch)
    return np.asarray(jax.random.permutation(key, n_train))


def noise(recipe: Recipe, key) -> np.ndarray:
    a = recipe.noise_half_width
    return np.asarray(jax.random.uniform(key, (recipe.batch, recipe.z_dim), minval=-a, maxval=a), np.float64)


def d_masks(recipe: Recipe, key, rows: int, width: int) -> list[np.ndarray | None]:
    """The keep masks of D's layer inputs ([rows, width], then each hidden layer's), None where nothing is dropped."""
    keeps = [recipe.keep_input] + [recipe.keep_hidden] * len(recipe.d_units)
    widths = [width, *recipe.d_units]
    keys = jax.random.split(key, len(keeps))
    return [None if keep >= 1.0 else np.asarray(jax.random.bernoulli(k, keep, (rows, w)))
            for k, keep, w in zip(keys, keeps, widths)]


# The networks ---------------------------------------------------------------------------------------------------


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softplus(x):
    return np.logaddexp(0.0, x)


def g_forward(recipe: Recipe, g: list, z):
    """G(z) [B, D] and what its backward pass needs; g is [(W, b)] from the first layer to the output."""
    inputs, h = [], z
    for w, b in g[:-1]:
        inputs.append(h)
        h = np.maximum(h @ w + b, 0.0)
    inputs.append(h)
    w, b = g[-1]
    out = h @ w + b
    if recipe.g_output == "sigmoid":
        out = sigmoid(out)
    return out, (inputs, out)


def g_backward(recipe: Recipe, g: list, cache, d_out) -> list:
    """[(dW, db)] of G for the cotangent d_out of its output."""
    inputs, out = cache
    d = d_out * out * (1.0 - out) if recipe.g_output == "sigmoid" else d_out
    grads = []
    for i in range(len(g) - 1, -1, -1):
        grads.append((inputs[i].T @ d, d.sum(axis=0)))
        d = d @ g[i][0].T
        if i:
            d = d * (inputs[i] > 0)  # the input of layer i is the ReLU of layer i - 1's pre-activation
    return grads[::-1]


def _drop(recipe: Recipe, h, mask, layer: int):
    keep = recipe.keep_input if layer == 0 else recipe.keep_hidden
    return h if mask is None else np.where(mask, h / keep, 0.0)


def d_forward(recipe: Recipe, d: list, x, masks):
    """D's logits [B] on x [B, D] with the given dropout masks, and what its backward pass needs."""
    inputs, winners, h = [], [], x
    for i, ((w, b), units) in enumerate(zip(d[:-1], recipe.d_units)):
        h = _drop(recipe, h, masks[i], i)
        inputs.append(h)
        pieces = (h @ w + b).reshape(len(h), units, recipe.d_pieces)
        win = np.argmax(pieces, axis=-1)
        winners.append(win)
        h = np.take_along_axis(pieces, win[..., None], axis=-1)[..., 0]
    h = _drop(recipe, h, masks[-1], len(recipe.d_units))
    inputs.append(h)
    w, b = d[-1]
    return (h @ w + b)[:, 0], (inputs, winners)


def d_backward(recipe: Recipe, d: list, masks, cache, d_logit, params: bool = True, inputs: bool = True):
    """([(dW, db)] of D or None, the cotangent of D's input or None) for the cotangent d_logit [B] of its logits;
    params / inputs: whether to compute each."""
    layer_inputs, winners = cache
    grads = []
    delta = d_logit[:, None]
    for i in range(len(d) - 1, -1, -1):
        if params:
            grads.append((layer_inputs[i].T @ delta, delta.sum(axis=0)))
        if i == 0 and not inputs:
            break
        dh = delta @ d[i][0].T
        if masks[i] is not None:
            dh = np.where(masks[i], dh / (recipe.keep_input if i == 0 else recipe.keep_hidden), 0.0)
        if i:  # into the winning piece of each maxout unit of layer i - 1
            units = recipe.d_units[i - 1]
            spread = np.zeros((len(dh), units, recipe.d_pieces))
            np.put_along_axis(spread, winners[i - 1][..., None], dh[..., None], axis=-1)
            dh = spread.reshape(len(dh), units * recipe.d_pieces)
        delta = dh
    return (grads[::-1] if params else None), (delta if inputs else None)


def rows(masks, cache, at: slice):
    """The masks and the cache of a D pass restricted to some of its rows (D scores each row on its own)."""
    layer_inputs, winners = cache
    return [None if m is None else m[at] for m in masks], ([a[at] for a in layer_inputs], [w[at] for w in winners])


# The objectives: D minimises 0.5 (-log D(x) - log(1 - D(G(z)))), G the non-saturating -log D(G(z)); D = sigmoid(logit).


def d_objective(real_logit, fake_logit):
    """(metrics, cotangent of the real logits, of the fake logits)."""
    n, m = len(real_logit), len(fake_logit)
    loss = 0.5 * (softplus(-real_logit).mean() + softplus(fake_logit).mean())
    metrics = {"d_loss": loss, "d_real": sigmoid(real_logit).mean(), "d_fake": sigmoid(fake_logit).mean()}
    return metrics, -0.5 * sigmoid(-real_logit) / n, 0.5 * sigmoid(fake_logit) / m


def g_objective(fake_logit):
    return {"g_loss": softplus(-fake_logit).mean()}, -sigmoid(-fake_logit) / len(fake_logit)


# The optimisers: state {"count", "slots"}, one update per call ---------------------------------------------------


def new_optimizer(params: list, count: int = 0) -> dict:
    zeros = lambda: [(np.zeros_like(w), np.zeros_like(b)) for w, b in params]
    return {"count": count, "v": zeros(), "m": zeros()}


def sgd_rates(recipe: Recipe, count: int, updates_per_epoch: int) -> tuple[float, float]:
    """(lr, momentum) of update `count` (0-based). pylearn2's adjustor is first called before epoch 1, so epoch e
    (0-based) trains with momentum ramp position e / (saturate - 1)."""
    lr = max(recipe.lr * recipe.lr_decay ** (-count), recipe.lr_min)
    ramp = min(max((count // updates_per_epoch) / (recipe.momentum_saturate - 1), 0.0), 1.0)
    return lr, recipe.momentum + ramp * (recipe.momentum_final - recipe.momentum)


def stored(pairs: list) -> list:
    """[(W, b)] as a float32 state holds them: an update below half a unit in the last place of a parameter is lost
    in any float32 implementation (G's first updates are, against its U(-0.05, 0.05) weights), so the model stores
    what it computes in float64 that way too."""
    return [tuple(np.float64(np.float32(a)) for a in pair) for pair in pairs]


def apply_update(recipe: Recipe, params: list, grads: list, opt: dict, updates_per_epoch: int) -> list:
    """The parameters after one update; opt is updated in place. Both are rounded to float32 (stored)."""
    t = opt["count"]
    out = []
    if recipe.optimizer == "sgd":  # v <- m v - lr g; theta <- theta + v
        lr, mom = sgd_rates(recipe, t, updates_per_epoch)
        for j, (p, g, v) in enumerate(zip(params, grads, opt["v"])):
            v = tuple(mom * vi - lr * gi for vi, gi in zip(v, g))
            opt["v"][j] = v
            out.append(tuple(pi + vi for pi, vi in zip(p, v)))
    else:  # Adam with bias correction, eps outside the square root
        for j, (p, g, m, v) in enumerate(zip(params, grads, opt["m"], opt["v"])):
            m = tuple(recipe.b1 * mi + (1 - recipe.b1) * gi for mi, gi in zip(m, g))
            v = tuple(recipe.b2 * vi + (1 - recipe.b2) * gi * gi for vi, gi in zip(v, g))
            opt["m"][j], opt["v"][j] = m, v
            m_hat = [mi / (1 - recipe.b1 ** (t + 1)) for mi in m]
            v_hat = [vi / (1 - recipe.b2 ** (t + 1)) for vi in v]
            out.append(tuple(pi - recipe.lr * mh / (np.sqrt(vh) + recipe.eps) for pi, mh, vh in zip(p, m_hat, v_hat)))
    opt["count"] = t + 1
    opt["v"], opt["m"] = stored(opt["v"]), stored(opt["m"])
    return stored(out)


# The iterations --------------------------------------------------------------------------------------------------


def run(recipe: Recipe, g: list, d: list, images: np.ndarray, seed: int, start: int, iterations: int):
    """(G, D, G's optimiser, D's optimiser, per-iteration metrics) after `iterations` iterations from update
    `start`, both optimisers' slots zero and their counts at `start`; images [n_train, ...] is the training set in
    file order. An optimiser is {"count", "v", "m"}: SGD's velocity in "v"; Adam's first moment in "m", its second
    in "v"."""
    n_train, per_iter = len(images), recipe.batch  # k = 1
    per_epoch = n_train // per_iter
    flat = images.reshape(n_train, -1)
    g_opt, d_opt = new_optimizer(g, start), new_optimizer(d, start)
    history = []
    for step in range(start, start + iterations):
        epoch, i = divmod(step, per_epoch)
        order = epoch_order(seed, epoch, n_train)
        x = flat[order[i * per_iter:(i + 1) * per_iter]].astype(np.float64)
        n = len(x)
        d_key, g_key = step_keys(seed, step, 2)
        if recipe.update == "simultaneous":
            z_key, drop_key = jax.random.split(g_key)
            fake, g_cache = g_forward(recipe, g, noise(recipe, z_key))
            masks = d_masks(recipe, drop_key, 2 * n, flat.shape[1])
            logits, d_cache = d_forward(recipe, d, np.concatenate([x, fake]), masks)
            metrics, cot_real, cot_fake = d_objective(logits[:n], logits[n:])
            g_metrics, g_cot = g_objective(logits[n:])
            d_grads, _ = d_backward(recipe, d, masks, d_cache, np.concatenate([cot_real, cot_fake]), inputs=False)
            # G's objective reads only the generated rows: back through the same pass (masks, maxout winners) there.
            _, input_cot = d_backward(recipe, d, *rows(masks, d_cache, slice(n, None)), g_cot, params=False)
            g_grads = g_backward(recipe, g, g_cache, input_cot)
            d = apply_update(recipe, d, d_grads, d_opt, per_epoch)
            g = apply_update(recipe, g, g_grads, g_opt, per_epoch)
        else:
            z_key, drop_key = jax.random.split(d_key)
            fake, _ = g_forward(recipe, g, noise(recipe, z_key))
            masks = d_masks(recipe, drop_key, 2 * n, flat.shape[1])
            logits, d_cache = d_forward(recipe, d, np.concatenate([x, fake]), masks)
            metrics, cot_real, cot_fake = d_objective(logits[:n], logits[n:])
            d_grads, _ = d_backward(recipe, d, masks, d_cache, np.concatenate([cot_real, cot_fake]), inputs=False)
            d = apply_update(recipe, d, d_grads, d_opt, per_epoch)
            z_key, drop_key = jax.random.split(g_key)
            fake, g_cache = g_forward(recipe, g, noise(recipe, z_key))
            masks = d_masks(recipe, drop_key, n, flat.shape[1])
            logits, d_cache = d_forward(recipe, d, fake, masks)
            g_metrics, g_cot = g_objective(logits)
            _, input_cot = d_backward(recipe, d, masks, d_cache, g_cot, params=False)
            g = apply_update(recipe, g, g_backward(recipe, g, g_cache, input_cot), g_opt, per_epoch)
        history.append({**metrics, **g_metrics})
    return g, d, g_opt, d_opt, history
