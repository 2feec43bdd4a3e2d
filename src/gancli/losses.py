"""The D and G objectives of the 2014 paper, as pure functions of D's logits (stable softplus form)."""

from __future__ import annotations

import jax.numpy as jnp
from jax.nn import softplus


def d_loss(real_logits, fake_logits):
    """0.5 * (CE(1, D(x)) + CE(0, D(G(z)))): the original code's discriminator objective."""
    return 0.5 * (jnp.mean(softplus(-real_logits)) + jnp.mean(softplus(fake_logits)))


def g_loss_nonsaturating(fake_logits):
    """CE(1, D(G(z))) = -log D(G(z)): strong gradients while D rejects the samples."""
    return jnp.mean(softplus(-fake_logits))


def g_loss_minimax(fake_logits):
    """log(1 - D(G(z))) = -softplus(logit): the generator's side of the minimax game, minimised."""
    return -jnp.mean(softplus(fake_logits))


def g_loss(kind: str, fake_logits, epoch=None, switch_epoch: int = 0):
    """The generator objective; 'switch' is non-saturating before switch_epoch, minimax from then on."""
    if kind == "nonsaturating":
        return g_loss_nonsaturating(fake_logits)
    if kind == "minimax":
        return g_loss_minimax(fake_logits)
    if kind == "switch":
        return jnp.where(epoch < switch_epoch, g_loss_nonsaturating(fake_logits), g_loss_minimax(fake_logits))
    raise ValueError(f"unknown generator loss {kind!r}")
