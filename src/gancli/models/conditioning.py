"""Any registered model made conditional on a class label: build() wraps its G and D in these two modules.

G(z, y) = G_inner([z, E_y]): a learned label embedding (n_classes wide, so it can say what a one-hot says)
joins the noise at G's input. It starts small (EMBED_INIT), so the noise, not the label, decides G's first
moves. The 2014 G collapses onto one image in its first epoch and escapes as D pushes its samples apart, along
whatever input varies. Started N(0, 1) (a tenth of the energy of 100-d unit-variance noise), the label took that
role: G split into one image per class, D's push was then the same for every z of a class, z's weights shrank, and
D won for good (with a label-blind D as much, so the cause was G's input; docs/mirza2014.md). Started small, z spreads the samples as in the unconditional run, and the label's use grows once D's
projection tells the classes apart. Small rather than zero, so that the label is an input from the first step
(the gradient of its first-layer weights is E_y times the error).

D(x, y) = D_inner(x) + <P_y, f(x)>, f(x) being D's last hidden features (its "features" output): the label's
embedding P_y meets those features at the output layer, whose weight vector becomes w + P_y for class y (the
projection discriminator of Miyato & Koyama 2018). Concatenating the embedding to f(x) in front of the linear
output layer would add only w_e . P_y, a constant per class, to the logit: D(x, y) = sigmoid(a(x) + c_y) cannot
tell whether x matches y, and G would get no signal about its label at all.

Both wrappers share their inner module's scope, so the inner parameters keep their names ({"Dense_0", "out",
...}) beside the new "label_embedding" / "label_projection", and whatever reads them (the output bias from the
data, the EMA, feature matching on "features") works as for the unconditional model.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from gancli.models.layers import uniform_init


EMBED_INIT = 0.01  # std of G's label embedding at init: a hundredth of unit-variance noise's scale


def _require(label):
    if label is None:
        raise ValueError("a conditional model needs the batch's labels")
    return label


class ConditionalGenerator(nn.Module):
    """G_inner([z, E_y]): a learned label embedding, small at first, concatenated to the noise."""

    inner: nn.Module
    n_classes: int

    def setup(self):
        nn.share_scope(self, self.inner)

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        embed = nn.Embed(self.n_classes, self.n_classes, embedding_init=nn.initializers.normal(EMBED_INIT),
                         name="label_embedding")
        return self.inner(jnp.concatenate([z, embed(_require(label)).astype(z.dtype)], axis=-1), None, train=train)


class ConditionalDiscriminator(nn.Module):
    """D_inner's logit plus the dot product of D's last hidden features with the label's learned vector, which
    starts U(-s, s) like D's output layer."""

    inner: nn.Module
    n_classes: int
    init_scale: float

    def setup(self):
        nn.share_scope(self, self.inner)

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        out = self.inner(x, None, dropout_key, train=train)
        features = out["features"]
        project = nn.Embed(self.n_classes, features.shape[-1], embedding_init=uniform_init(self.init_scale),
                           name="label_projection")
        return {**out, "logit": out["logit"] + jnp.sum(project(_require(label)) * features, axis=-1)}
