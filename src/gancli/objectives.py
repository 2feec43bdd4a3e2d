"""The players' objectives: registered pure functions of D's outputs on real and generated data.

D's outputs are a dict: "logit" [B] (D's raw output: D(x) = sigmoid(logit) for the 2014 game, the critic's score
for wgan-gp), "features" [B, F] (its last hidden layer), and whatever a model adds ("class_logits" [B, K] for a
classifier). Each objective returns (loss, metrics), metrics a dict of scalars that the progress bar, metrics.jsonl
and inspect show as they are. A D objective reports d_real and d_fake, D's mean output on x and on G(z): the
probability sigmoid(logit) when its entry says `probabilities`, else the mean raw output.

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

from gancli.errors import GancliError

Outputs = dict[str, Any]
# d_loss(real, fake, batch, context) and g_loss(real, fake, batch, context) -> (loss, metrics)
Loss = Callable[[Outputs, Outputs, dict, "Context"], tuple[Any, dict[str, Any]]]

# What an objective may need besides D's outputs on its step's x and G(z):
LABELLED = "labelled"  # D's outputs on a batch of the run's labelled examples, each D step (a stream)
G_REAL = "g_real"  # G's step on a real batch of its own, not the last D step's (a stream; config g_batch own)
REAL_IN_G = "real_in_g"  # D's outputs on the real batch in G's step too, not only on G(z)
INTERPOLATES = "interpolates"  # wgan-gp's gradient penalty on random interpolates of x and G(z) (gancli.penalties)


@dataclass(frozen=True)
class Objective:
    """A registered objective: its function and what it needs (LABELLED, REAL_IN_G, ...)."""

    fn: Loss
    needs: frozenset[str] = frozenset()
    # A D objective's d_real / d_fake are probabilities (mean sigmoid(logit)), so "D rejects every sample" (a mean
    # D(G(z)) near 0) means something; False for the losses whose D gives raw scores.
    probabilities: bool = True

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


# The losses after 2016. Their D gives a raw score, not a probability: d_real and d_fake are its mean raw outputs.


def _raw(loss, real: Outputs, fake: Outputs) -> dict[str, Any]:
    return {"d_loss": loss, "d_real": jnp.mean(real["logit"]), "d_fake": jnp.mean(fake["logit"])}


def hinge_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Lim & Ye (2017), Miyato et al. (2018): mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), D raw."""
    loss = jnp.mean(jax.nn.relu(1.0 - real["logit"])) + jnp.mean(jax.nn.relu(1.0 + fake["logit"]))
    return loss, _raw(loss, real, fake)


def critic_g_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """-mean(D(G(z))), D raw: the generator's side of the hinge loss and of wgan-gp."""
    loss = -jnp.mean(fake["logit"])
    return loss, {"g_loss": loss}


def least_squares_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Mao et al. (2017), targets a=0 (fake), b=1 (real): 0.5 mean((D(x) - 1)^2) + 0.5 mean(D(G(z))^2), D raw."""
    loss = 0.5 * jnp.mean(jnp.square(real["logit"] - 1.0)) + 0.5 * jnp.mean(jnp.square(fake["logit"]))
    return loss, _raw(loss, real, fake)


def least_squares_g_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Mao et al. (2017), G's target c=1: 0.5 mean((D(G(z)) - 1)^2)."""
    loss = 0.5 * jnp.mean(jnp.square(fake["logit"] - 1.0))
    return loss, {"g_loss": loss}


def wgan_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Gulrajani et al. (2017), the critic's part: mean(D(G(z))) - mean(D(x)). Its gradient penalty on random
    interpolates (INTERPOLATES) is added by training (gancli.penalties, metric gp): d_loss excludes it."""
    loss = jnp.mean(fake["logit"]) - jnp.mean(real["logit"])
    return loss, _raw(loss, real, fake)


def relativistic_d_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """Jolicoeur-Martineau (2018) RpGAN, as R3GAN (Huang et al. 2025): mean(softplus(-(D(x_i) - D(G(z_i))))), each
    real example paired with the generated one of the same index."""
    loss = jnp.mean(softplus(fake["logit"] - real["logit"]))
    return loss, _raw(loss, real, fake)


def relativistic_g_loss(real: Outputs, fake: Outputs, batch: dict, ctx: Context):
    """RpGAN's generator side: mean(softplus(-(D(G(z_i)) - D(x_i)))); it needs D on the real batch (REAL_IN_G)."""
    loss = jnp.mean(softplus(real["logit"] - fake["logit"]))
    return loss, {"g_loss": loss}


D_LOSSES: dict[str, Objective] = {
    "gan": Objective(gan_d_loss),
    "semi-supervised": Objective(semi_supervised_d_loss, frozenset({LABELLED})),
    "hinge": Objective(hinge_d_loss, probabilities=False),
    "least-squares": Objective(least_squares_d_loss, probabilities=False),
    "wgan-gp": Objective(wgan_d_loss, frozenset({INTERPOLATES}), probabilities=False),
    "relativistic": Objective(relativistic_d_loss, probabilities=False),
}
G_LOSSES: dict[str, Objective] = {
    "nonsaturating": Objective(nonsaturating),
    "minimax": Objective(minimax),
    "switch": Objective(switch),
    "feature-matching": Objective(feature_matching, frozenset({REAL_IN_G})),
    "hinge": Objective(critic_g_loss),
    "least-squares": Objective(least_squares_g_loss),
    "wgan-gp": Objective(critic_g_loss),
    "relativistic": Objective(relativistic_g_loss, frozenset({REAL_IN_G})),
}
# --loss NAME: both players' objectives of one name; "gan" is the 2014 game with the non-saturating G.
LOSSES: dict[str, tuple[str, str]] = {"gan": ("gan", "nonsaturating"),
                                      **{name: (name, name) for name in D_LOSSES if name in G_LOSSES}}


def pair(loss: str) -> tuple[str, str]:
    """(d_loss, g_loss) of --loss NAME, or GancliError listing the names."""
    if loss not in LOSSES:
        raise GancliError(f"--loss must be one of {', '.join(LOSSES)} (got {loss!r})")
    return LOSSES[loss]


def probabilities(config) -> bool:
    """Whether the run's d_real / d_fake are probabilities (the 2014 game's D), not raw scores."""
    return config.d_loss not in D_LOSSES or D_LOSSES[config.d_loss].probabilities


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
