"""Augmentation of everything D sees in training: DiffAugment's differentiable transforms (Zhao et al. 2020) on real
and generated batches alike, in every D pass (D's steps and G's), so that G's gradient flows through them; and ADA's
adaptive probability (Karras et al. 2020).

Each transform of the config's policy is applied to each example with probability p, independently per transform and
per example. With augment.ada_target 0, p is 1 (plain DiffAugment). With a target, p starts at 0 and every
ada_interval iterations moves by sign(r_t - target) * batch_size * ada_interval / (ada_kimg * 1000), clipped to
[0, 1], r_t being the mean of sign(D's logit) on the real batches of D's steps over the interval. p and the interval's
sum and count live in the state under "ada" (only in a run that augments), so a resumed run continues with the p it
stopped at, exactly.

Images are [B, H, W, C] with pixels in [0, 1] (gancli.data.load); a batch of another shape is seen as the data's
shape and given back in its own.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gancli.config import RunConfig, augment_transforms
from gancli.errors import GancliError

TRANSLATION = 1 / 8  # DiffAugment's: an integer shift of up to 1/8 of each side, either way
CUTOUT = 1 / 2  # DiffAugment's: a square of half the side
# DiffAugment's brightness offset is U(-0.5, 0.5) on pixels in [-1, 1]; gancli's pixels are in [0, 1], half as wide a
# range, so the same change relative to the range is U(-0.25, 0.25).
BRIGHTNESS = 0.25
SATURATION = (0.0, 2.0)  # factor on each pixel's distance from its mean over the channels, as DiffAugment
CONTRAST = (0.5, 1.5)  # factor on each pixel's distance from the image's mean, as DiffAugment
KEY = 0x61756720  # folded into a D pass's key for its augmentation: far from the small numbers split and fold_in use there


def translate(x, dy, dx):
    """Each image of x [B, H, W, C] moved by (dy[i], dx[i]) whole pixels, zeros coming in at the edges."""
    h, w = x.shape[1:3]
    # As products with 0/1 shift matrices, row r of the output taking row r - dy of the input: XLA compiles these,
    # and their gradients, far faster than gathers, and a row shifted out of the image leaves zeros by itself.
    rows = jnp.arange(h)[None, :, None] - dy[:, None, None] == jnp.arange(h)[None, None, :]
    cols = jnp.arange(w)[None, :, None] - dx[:, None, None] == jnp.arange(w)[None, None, :]
    return jnp.einsum("byh,bhwc,bxw->byxc", rows.astype(x.dtype), x, cols.astype(x.dtype))


def cut(x, top, left, size: tuple[int, int]):
    """Each image of x with the size[0] x size[1] rectangle whose top-left corner is (top[i], left[i]) zeroed; the
    part of it outside the image is nothing."""
    h, w = x.shape[1:3]
    rows = (jnp.arange(h)[None, :] >= top[:, None]) & (jnp.arange(h)[None, :] < top[:, None] + size[0])
    cols = (jnp.arange(w)[None, :] >= left[:, None]) & (jnp.arange(w)[None, :] < left[:, None] + size[1])
    hole = rows[:, :, None] & cols[:, None, :]
    return jnp.where(hole[..., None], 0.0, x)


def brightness(x, offset):
    """x + offset[i] on every pixel of image i."""
    return x + offset[:, None, None, None]


def saturation(x, factor):
    """Each pixel's distance from its mean over the channels times factor[i]: the identity for one channel."""
    mean = x.mean(axis=3, keepdims=True)
    return (x - mean) * factor[:, None, None, None] + mean


def contrast(x, factor):
    """Each pixel's distance from its image's mean (over rows, columns and channels) times factor[i]."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * factor[:, None, None, None] + mean


def shift_of(side: int) -> int:
    """The largest shift of translation on a side of this many pixels, rounded as DiffAugment rounds it."""
    return int(side * TRANSLATION + 0.5)


def cutout_size(side: int) -> int:
    return int(side * CUTOUT + 0.5)


def _whole(u, low: int, high: int):
    """Whole numbers uniform in [low, high] from uniforms u in [0, 1)."""
    return jnp.clip(jnp.floor(low + u * (high - low + 1)).astype(jnp.int32), low, high)


# Each transform draws its parameters from u [B, 3], three uniforms in [0, 1) per example: one random call per D pass
# for every transform, as each of JAX's random calls is a hash that XLA takes about 0.1 s to compile on a CPU.

def random_translation(u, x):
    """translate by shifts uniform over the whole numbers in [-s, s], s = shift_of(side), on each axis."""
    h, w = x.shape[1:3]
    return translate(x, _whole(u[:, 0], -shift_of(h), shift_of(h)), _whole(u[:, 1], -shift_of(w), shift_of(w)))


def random_cutout(u, x):
    """cut a square of cutout_size(side) whose centre is anywhere in the image (so it may hang over an edge),
    as DiffAugment places it."""
    h, w = x.shape[1:3]
    size = (cutout_size(h), cutout_size(w))
    # Corners from -(s // 2) to side - ceil(s / 2): the square's centre pixel at every place in the image.
    top = _whole(u[:, 0], -(size[0] // 2), h - (size[0] + 1) // 2)
    left = _whole(u[:, 1], -(size[1] // 2), w - (size[1] + 1) // 2)
    return cut(x, top, left, size)


def random_color(u, x):
    """brightness, saturation and contrast in DiffAugment's order, each with its own factor per example."""
    x = brightness(x, (2 * u[:, 0] - 1) * BRIGHTNESS)
    x = saturation(x, SATURATION[0] + u[:, 1] * (SATURATION[1] - SATURATION[0]))
    return contrast(x, CONTRAST[0] + u[:, 2] * (CONTRAST[1] - CONTRAST[0]))


# name -> (u [B, 3] uniforms in [0, 1), images [B, H, W, C]) -> images; the names config.TRANSFORMS lists, which
# validation checks against.
TRANSFORMS: dict[str, Callable] = {
    "translation": random_translation,
    "cutout": random_cutout,
    "color": random_color,
}


def augment(policy: tuple[str, ...], x, key, p):
    """x [B, H, W, C] with each transform of policy, in order, applied to each example with probability p."""
    u = jax.random.uniform(key, (len(policy), x.shape[0], 4))
    for i, name in enumerate(policy):
        applied = u[i, :, 0] < p
        x = jnp.where(applied[:, None, None, None], TRANSFORMS[name](u[i, :, 1:], x), x)
    return x


def on(config: RunConfig) -> bool:
    """Whether the run augments what D sees."""
    return bool(augment_transforms(config.augment.policy))


def check(config: RunConfig, data_shape: tuple[int, ...]) -> None:
    """GancliError unless the run's data are images its policy can transform."""
    if on(config) and len(data_shape) != 3:
        raise GancliError(f"--augment transforms images (height, width, channels); {config.dataset}'s examples have "
                          f"shape {tuple(data_shape)}", fields=("augment.policy",))


def start(config: RunConfig) -> dict:
    """A fresh run's ADA state: p 0 when ADA moves it, else 1; the interval's sum of sign(D(x)) means and count."""
    p = 0.0 if config.augment.ada_target > 0 else 1.0
    return {"p": jnp.asarray(p, jnp.float32), "sum": jnp.zeros([], jnp.float32), "count": jnp.zeros([], jnp.int32)}


def view(config: RunConfig, data_shape: tuple[int, ...], ada, x, key, i: int = 0):
    """What D sees of the batch x: x augmented with p = ada["p"] when the run augments (ada is then its state), else x.
    key is the D step's and i tells its D passes apart; each example's randomness comes from the two."""
    if ada is None or not on(config):
        return x
    images = x.reshape((x.shape[0],) + tuple(data_shape))
    key = jax.random.fold_in(key, KEY + i)
    return augment(augment_transforms(config.augment.policy), images, key, ada["p"]).reshape(x.shape)


def signal(config: RunConfig, real) -> dict:
    """{"ada_r": mean of sign(D's logit) on a D step's real batch} when the run augments, else {}: ADA's evidence of
    D overfitting (1 when it calls every real example real)."""
    return {"ada_r": jnp.mean(jnp.sign(real["logit"]))} if on(config) else {}


def update(config: RunConfig, ada, signals: list, step) -> tuple[dict, dict]:
    """(the ADA state after the iteration that reached `step`, given its D steps' signal() values; the iteration's
    metrics ada_p and ada_r). Every ada_interval iterations p moves and the interval's sum and count start again."""
    a = config.augment
    r = sum(signals) / len(signals)
    total, count = ada["sum"] + sum(signals), ada["count"] + len(signals)
    p = ada["p"]
    if a.ada_target > 0:
        due = step % a.ada_interval == 0
        stride = config.batch_size * a.ada_interval / (a.ada_kimg * 1000)
        moved = jnp.clip(p + jnp.sign(total / count - a.ada_target) * stride, 0.0, 1.0)
        p = jnp.where(due, moved, p)
        total, count = jnp.where(due, 0.0, total), jnp.where(due, 0, count)
    else:  # p stays 1: nothing to accumulate
        total, count = ada["sum"], ada["count"]
    return {"p": p.astype(jnp.float32), "sum": total.astype(jnp.float32), "count": count.astype(jnp.int32)}, {"ada_p": p, "ada_r": r}


__all__ = ["TRANSFORMS", "augment", "brightness", "check", "contrast", "cut", "cutout_size", "on", "saturation",
           "shift_of", "signal", "start", "translate", "update", "view"]
