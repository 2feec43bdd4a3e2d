"""Pure, jit-compiled training steps: k discriminator updates and one generator update per iteration.

The state is a plain dict pytree {"g", "d", "g_opt", "d_opt", "step", "key"}. An iteration's randomness is
fold_in(key, step), and an epoch's data order is fold_in(key, epoch), so a resumed run repeats exactly
what an uninterrupted one would have done.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gancli import losses, optim
from gancli.config import RunConfig
from gancli.models import Discriminator, Generator, logit_of_means

# Streams of randomness derived from a run's key.
INIT, STEP, ORDER, FIXED_Z = range(4)
METRICS = ("d_loss", "g_loss", "d_real", "d_fake")


@dataclass(frozen=True)
class Game:
    """The static parts of a run: config, networks, optimisers and the epoch's shape."""

    config: RunConfig
    data_shape: tuple[int, ...]
    n_train: int

    @property
    def iters_per_epoch(self) -> int:
        return self.n_train // (self.config.batch_size * self.config.k)

    @property
    def generator(self) -> Generator:
        return Generator(self.config.generator, self.data_shape)

    @property
    def discriminator(self) -> Discriminator:
        return Discriminator(self.config.discriminator)

    @property
    def g_tx(self) -> optax.GradientTransformation:
        return optim.make(self.config.optimizer, self.iters_per_epoch)

    @property
    def d_tx(self) -> optax.GradientTransformation:
        return optim.make(self.config.optimizer, self.iters_per_epoch * self.config.k)

    def noise(self, key, n: int):
        """n latent vectors from the configured prior (uniform has unit variance)."""
        shape = (n, self.config.generator.z_dim)
        if self.config.generator.noise == "uniform":
            return jax.random.uniform(key, shape, minval=-math.sqrt(3.0), maxval=math.sqrt(3.0))
        return jax.random.normal(key, shape)


def init_state(game: Game, seed: int, train_images: np.ndarray | None = None):
    """Fresh parameters and optimiser states; G's output bias from the data's means when configured."""
    key = jax.random.PRNGKey(seed)
    g_key, d_key = jax.random.split(jax.random.fold_in(key, INIT))
    g = game.generator.init(g_key, jnp.zeros((1, game.config.generator.z_dim)))
    d = game.discriminator.init(d_key, jnp.zeros((1,) + game.data_shape))
    if game.config.generator.output_bias_from_data and train_images is not None:
        g["params"]["out"]["bias"] = jnp.asarray(logit_of_means(train_images))
    return {
        "g": g,
        "d": d,
        "g_opt": game.g_tx.init(g),
        "d_opt": game.d_tx.init(d),
        "step": jnp.zeros([], jnp.int32),
        "key": key,
    }


def abstract_state(game: Game):
    """Shapes and dtypes of a state, without computing one."""
    return jax.eval_shape(lambda: init_state(game, 0))


def _apply(tx, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _d_only(game: Game, g, d, x, key):
    """Gradient of the D objective at (g, d) on real batch x, one fused D pass over [x; G(z)]."""
    z_key, drop_key = jax.random.split(key)
    fake = game.generator.apply(g, game.noise(z_key, x.shape[0]))
    n = x.shape[0]

    def objective(d):
        logits = game.discriminator.apply(d, jnp.concatenate([x, fake]), drop_key)
        return losses.d_loss(logits[:n], logits[n:]), logits

    (loss, logits), grads = jax.value_and_grad(objective, has_aux=True)(d)
    return grads, loss, logits[:n], logits[n:]


def _g_loss(game: Game, fake_logits, epoch):
    c = game.config
    return losses.g_loss(c.g_loss, fake_logits, epoch, c.switch_epoch)


def _simultaneous(game: Game, g, d, x, key, epoch):
    """Both gradients from one batch and the same pre-update networks, as the original code did.

    One G pass and one D pass over [x; G(z)]; D's backward runs once for D's parameters (D objective) and
    once for its input (G objective), so nothing is recomputed.
    """
    z_key, drop_key = jax.random.split(key)
    n = x.shape[0]
    fake, g_vjp = jax.vjp(lambda g: game.generator.apply(g, game.noise(z_key, n)), g)
    logits, d_vjp = jax.vjp(
        lambda d, inputs: game.discriminator.apply(d, inputs, drop_key), d, jnp.concatenate([x, fake])
    )
    d_obj = lambda lg: losses.d_loss(lg[:n], lg[n:])
    g_obj = lambda lg: _g_loss(game, lg[n:], epoch)
    d_grads, _ = d_vjp(jax.grad(d_obj)(logits))
    _, input_grads = d_vjp(jax.grad(g_obj)(logits))
    (g_grads,) = g_vjp(input_grads[n:])
    return d_grads, g_grads, d_obj(logits), g_obj(logits), logits[:n], logits[n:]


def _g_only(game: Game, g, d, n, key, epoch):
    """Gradient of the G objective against the current D (Algorithm 1's generator step)."""
    z_key, drop_key = jax.random.split(key)

    def objective(g):
        fake = game.generator.apply(g, game.noise(z_key, n))
        return _g_loss(game, game.discriminator.apply(d, fake, drop_key), epoch)

    return jax.value_and_grad(objective)(g)


def iteration(game: Game, state, xs):
    """One iteration on xs [k, B, ...]: k D updates and one G update, in the configured mode."""
    c = game.config
    g, d, g_opt, d_opt = state["g"], state["d"], state["g_opt"], state["d_opt"]
    step_key = jax.random.fold_in(jax.random.fold_in(state["key"], STEP), state["step"])
    keys = jax.random.split(step_key, c.k + 1)
    epoch = state["step"] // game.iters_per_epoch
    n_d_only = c.k - 1 if c.update == "simultaneous" else c.k
    for j in range(n_d_only):
        grads, d_loss, real, fake = _d_only(game, g, d, xs[j], keys[j])
        d, d_opt = _apply(game.d_tx, grads, d_opt, d)
    if c.update == "simultaneous":
        d_grads, g_grads, d_loss, g_loss, real, fake = _simultaneous(game, g, d, xs[-1], keys[-1], epoch)
        d, d_opt = _apply(game.d_tx, d_grads, d_opt, d)
    else:
        g_loss, g_grads = _g_only(game, g, d, xs.shape[1], keys[-1], epoch)
    g, g_opt = _apply(game.g_tx, g_grads, g_opt, g)
    metrics = jnp.stack([d_loss, g_loss, jnp.mean(jax.nn.sigmoid(real)), jnp.mean(jax.nn.sigmoid(fake))])
    new = dict(state, g=g, d=d, g_opt=g_opt, d_opt=d_opt, step=state["step"] + 1)
    return new, metrics


def chunk(game: Game, state, data, length: int):
    """`length` iterations inside one epoch as one compiled loop; returns the state and [length, 4] metrics."""
    c = game.config
    per_iter = c.batch_size * c.k
    epoch = state["step"] // game.iters_per_epoch
    order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(state["key"], ORDER), epoch), data.shape[0])

    def body(state, _):
        i = state["step"] % game.iters_per_epoch
        idx = jax.lax.dynamic_slice(order, (i * per_iter,), (per_iter,))
        xs = data[idx].reshape((c.k, c.batch_size) + game.data_shape)
        return iteration(game, state, xs)

    return jax.lax.scan(body, state, None, length=length)


def compiled_chunk(game: Game, seeds: int, length: int):
    """The chunk of `length` iterations, compiled once per process, the state donated; vmapped over a
    leading seed axis when seeds > 1."""
    # Fields that do not enter the program are blanked so that runs differing only in them share it.
    config = dataclasses.replace(game.config, dataset="", preset="", epochs=1, seed=0, seeds=1, chunk=1, ckpt_every=1, keep=1)
    return _compiled_chunk(dataclasses.replace(game, config=config), seeds, length)


@lru_cache(maxsize=16)
def _compiled_chunk(game: Game, seeds: int, length: int):
    fn = partial(chunk, game, length=length)
    if seeds > 1:
        fn = jax.vmap(fn, in_axes=(0, None))
    state = abstract_state(game)
    if seeds > 1:
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((seeds,) + x.shape, x.dtype), state)
    data = jax.ShapeDtypeStruct((game.n_train,) + game.data_shape, jnp.float32)
    return jax.jit(fn, donate_argnums=0).lower(state, data).compile()


def fixed_noise(game: Game, key, n: int):
    """The latent vectors behind the per-epoch sample grids: the same for the whole run."""
    return game.noise(jax.random.fold_in(key, FIXED_Z), n)
