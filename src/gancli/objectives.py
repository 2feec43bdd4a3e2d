"""The players' objectives: registered pure functions of D's outputs on real and generated data.

D's outputs are a dict: "logit" [B] (D(x) = sigmoid(logit)), "features" [B, F] (its last hidden layer), and
whatever a model adds ("class_logits" [B, K] for a classifier). Each objective returns (loss, metrics), metrics a
dict of scalars that the progress bar, metrics.jsonl and inspect show as they are.

A registry entry declares what its function reads beyond D's outputs on the step's real and generated batches
(`needs`); training provides exactly that. A need named like a stream of gancli.streams is an extra batch per
step: its examples are batch[name] = {"image", "label"} and D's outputs on them real[name]. Adding an objective
is one function and one registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.nn import sigmoid, softplus

Outputs = dict[str, Any]
# d_loss(real, fake, batch, context) and g_loss(real, fake, batch, context) -> (loss, metrics)
Loss = Callable[[Outputs, Outputs, dict, "Context"], tuple[Any, dict[str, Any]]]

# What an objective may need besides D's outputs on its step's x and G(z):
LABELLED = "labelled"  # D's outputs on a batch of the run's labelled examples, each D step (a stream)
G_REAL = "g_real"  # G's step on a real batch of its own, not the last D step's (a stream; config g_batch own)
REAL_IN_G = "real_in_g"  # D's outputs on the real batch in G's step too, not only on G(z)


@dataclass(frozen=True)
class Objective:
    """A registered objective: its function and what it needs (LABELLED, REAL_IN_G, ...)."""

    fn: Loss
    needs: frozenset[str] = frozenset()

    def __call__(self, real: Outputs, fake: Outputs, batch: dict, ctx: "Context"):
        return self.fn(real, fake, batch, ctx)


class Context:
    """What an objective may need besides D's outputs: the run's config and the current epoch (traced)."""

    def __init__(self, config, epoch):
        self.config = config
        self.epoch = epoch


def gan_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """0.5 * (CE(1, D(x)) + CE(0, D(G(z)))): the original code's discriminator objective."""
    loss = 0.5 * (jnp.mean(softplus(-real["logit"])) + jnp.mean(softplus(fake["logit"])))
    return loss, {"d_loss": loss, "d_real": jnp.mean(sigmoid(real["logit"])), "d_fake": jnp.mean(sigmoid(fake["logit"]))}


def nonsaturating(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """CE(1, D(G(z))) = -log D(G(z)): strong gradients while D rejects the samples."""
    loss = jnp.mean(softplus(-fake["logit"]))
    return loss, {"g_loss": loss}


def minimax(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """log(1 - D(G(z))) = -softplus(logit): the generator's side of the minimax game, minimised."""
    loss = -jnp.mean(softplus(fake["logit"]))
    return loss, {"g_loss": loss}


def switch(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Non-saturating before config.switch_epoch, minimax from then on."""
    early, late = nonsaturating(real, fake, batch, ctx)[0], minimax(real, fake, batch, ctx)[0]
    loss = jnp.where(ctx.epoch < ctx.config.switch_epoch, early, late)
    return loss, {"g_loss": loss}


def feature_matching(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Salimans et al. (2016): the squared distance between the batch means of D's last hidden features on
    real and on generated data, averaged over features (their MNIST code's form).

    A conditional run matches the means class by class, weighted by each class's share of the batch (a fake takes
    its real counterpart's label, so both sides have the same classes): D's features do not see the label, and
    the batch-wide means would tell G nothing about which class it was asked for."""
    if ctx.config is None or not ctx.config.conditional:
        diff = jnp.mean(fake["features"], axis=0) - jnp.mean(real["features"], axis=0)
        loss = jnp.mean(jnp.square(diff))
        return loss, {"g_loss": loss}
    members = jax.nn.one_hot(batch["label"], ctx.config.n_classes, dtype=fake["features"].dtype)  # [B, K]
    counts = jnp.sum(members, axis=0)
    diff = (members.T @ (fake["features"] - real["features"])) / jnp.maximum(counts, 1.0)[:, None]
    loss = jnp.sum(counts / len(members) * jnp.mean(jnp.square(diff), axis=-1))
    return loss, {"g_loss": loss}


def semi_supervised_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Salimans et al. (2016), a (K+1)-class D whose fake class's logit is fixed at 0: the cross-entropy of its K
    class logits on the labelled batch, plus the unsupervised loss on unlabelled real and generated data.

    improved-gan writes the latter -0.5 mean(lse(l_x)) + 0.5 mean(softplus(lse(l_x))) + 0.5 mean(softplus(lse(l_G(z)))),
    which is 0.5 [-log D(x) - log(1 - D(G(z)))] with D(x) = sigmoid(lse(l)): gan_d_loss on D's logit = lse(l).
    """
    logits, y = real["labelled"]["class_logits"], batch["labelled"]["label"]
    supervised = jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])
    unsupervised, metrics = gan_d_loss(real, fake, batch, ctx)
    loss = supervised + unsupervised
    # train_error: the labelled batch's error with D's noise on, as the code's "train err".
    return loss, {**metrics, "d_loss": loss, "d_labelled": supervised, "d_unlabelled": unsupervised,
                  "train_error": jnp.mean(jnp.argmax(logits, axis=-1) != y)}


D_LOSSES: dict[str, Objective] = {
    "gan": Objective(gan_d_loss),
    "semi-supervised": Objective(semi_supervised_d_loss, frozenset({LABELLED})),
}
G_LOSSES: dict[str, Objective] = {
    "nonsaturating": Objective(nonsaturating),
    "minimax": Objective(minimax),
    "switch": Objective(switch),
    "feature-matching": Objective(feature_matching, frozenset({REAL_IN_G})),
}


def needs(config) -> set[str]:
    """What a run's training must provide its objectives, and G_REAL when the config gives G's step a batch of its
    own. Names the registries do not hold need nothing here: validating the config reports them."""
    out = set()
    for registry, name in ((D_LOSSES, config.d_loss), (G_LOSSES, config.g_loss)):
        if name in registry:
            out |= registry[name].needs
    if config.g_batch == "own":
        out.add(G_REAL)
    return out


def needing(registry: dict[str, Objective], need: str) -> list[str]:
    """The names of a registry's objectives that need `need`, sorted."""
    return sorted(name for name, objective in registry.items() if need in objective.needs)


def problems(config) -> list[str]:
    """What is wrong with the config's objectives, in words: an unknown name, or a need the run does not meet."""
    if config.d_loss not in D_LOSSES:
        return [f"d_loss must be one of {', '.join(D_LOSSES)} (got {config.d_loss!r})"]
    if config.g_loss not in G_LOSSES:
        return [f"--g-loss must be one of {', '.join(G_LOSSES)} (got {config.g_loss!r})"]
    labelled = needing(D_LOSSES, LABELLED)
    if config.labels and LABELLED not in needs(config):
        return [f"--labels is for semi-supervised training (d_loss {' or '.join(labelled)}; preset semi-supervised)"]
    if not config.labels and LABELLED in needs(config):
        return [f"d_loss {config.d_loss} trains on labelled examples: give --labels N"]
    return []
