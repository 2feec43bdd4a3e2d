"""Pure, jit-compiled training steps: k discriminator updates and one generator update per iteration.

The state is a plain dict pytree: {"g", "d"} the trainable parameters, {"g_opt", "d_opt"} their optimiser
states, "step", "key", and when a run has them "g_stats"/"d_stats" (batch-norm statistics, which the
optimisers never see) and "g_ema" (an exponential moving average of G's parameters). A batch is a dict
{"image", "label"}. An iteration's randomness is fold_in(key, step), and an epoch's data order is
fold_in(key, epoch), so a resumed run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gancli import models, objectives, optim
from gancli.config import RunConfig

# Streams of randomness derived from a run's key.
INIT, STEP, ORDER, FIXED_Z = range(4)


@dataclass(frozen=True)
class Game:
    """The static parts of a run: config, networks, objectives, optimisers and the epoch's shape."""

    config: RunConfig
    data_shape: tuple[int, ...]
    n_train: int

    @property
    def iters_per_epoch(self) -> int:
        return self.n_train // (self.config.batch_size * self.config.k)

    @cached_property
    def networks(self):
        return models.build(self.config, self.data_shape)

    @property
    def generator(self):
        return self.networks[0]

    @property
    def discriminator(self):
        return self.networks[1]

    @property
    def fused(self) -> bool:
        """One D pass over [x; G(z)] instead of two: safe only for a D that scores examples one by one."""
        return models.per_example(self.config)

    @property
    def g_tx(self) -> optax.GradientTransformation:
        return optim.make(self.config.optimizer, self.iters_per_epoch, self.config.generator.max_col_norm)

    @property
    def d_tx(self) -> optax.GradientTransformation:
        return optim.make(self.config.optimizer, self.iters_per_epoch * self.config.k, self.config.discriminator.max_col_norm)

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
    label = jnp.zeros((1,), jnp.int32)  # unconditional models ignore it
    g = dict(game.generator.init(g_key, jnp.zeros((1, game.config.generator.z_dim)), label))
    d = dict(game.discriminator.init(d_key, jnp.zeros((1,) + game.data_shape), label))
    g_params, d_params = g.pop("params"), d.pop("params")
    if game.config.generator.output_bias_from_data and train_images is not None:
        g_params["out"]["bias"] = jnp.asarray(models.logit_of_means(train_images))
    state = {
        "g": g_params,
        "d": d_params,
        "g_opt": game.g_tx.init(g_params),
        "d_opt": game.d_tx.init(d_params),
        "step": jnp.zeros([], jnp.int32),
        "key": key,
    }
    # Only present when used: a checkpoint of a run without them has the same tree as before they existed.
    if g:
        state["g_stats"] = g
    if d:
        state["d_stats"] = d
    if game.config.ema:
        state["g_ema"] = jax.tree.map(jnp.copy, g_params)  # its own buffers: the state is donated leaf by leaf
    return state


def abstract_state(game: Game):
    """Shapes and dtypes of a state, without computing one."""
    return jax.eval_shape(lambda: init_state(game, 0))


def run_generator(game: Game, params, stats, z, label=None, train: bool = True, key=None):
    """(G(z), G's updated batch statistics); in train mode batch norm uses and updates batch statistics; key
    drives G's dropout when it has some (None: none)."""
    variables = {"params": params, **(stats or {})}
    rngs = None if key is None else {"dropout": key}
    if stats and train:
        out, updated = game.generator.apply(variables, z, label, train=True, mutable=list(stats), rngs=rngs)
        return out, dict(updated)
    return game.generator.apply(variables, z, label, train=train, rngs=rngs), stats


def _g_dropout_key(game: Game, z_key):
    """The key of G's dropout, beside its noise's; None for a generator without dropout (the common case)."""
    return jax.random.fold_in(z_key, 1) if game.config.generator.keep_hidden < 1 else None


def run_discriminator(game: Game, params, stats, x, key, label=None, train: bool = True):
    """(D's outputs, D's updated batch statistics); key drives dropout (None: no dropout, as at test time)."""
    variables = {"params": params, **(stats or {})}
    if stats and train:
        out, updated = game.discriminator.apply(variables, x, label, key, train=True, mutable=list(stats))
        return out, dict(updated)
    return game.discriminator.apply(variables, x, label, key, train=train), stats


def _apply(tx, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _split(outputs, n: int):
    """D's outputs on [x; G(z)] as (outputs on x, outputs on G(z))."""
    return jax.tree.map(lambda a: a[:n], outputs), jax.tree.map(lambda a: a[n:], outputs)


def _d_step_grads(game: Game, ctx, g, g_stats, d, d_stats, batch, key):
    """Gradient of the D objective at (g, d) on one real batch, D's new statistics and the metrics."""
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    fake, _ = run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key))
    fake = jax.lax.stop_gradient(fake)
    both = jnp.concatenate([batch["label"], batch["label"]])  # a fake takes its real counterpart's label

    def objective(d):
        if game.fused:
            outputs, stats = run_discriminator(game, d, d_stats, jnp.concatenate([x, fake]), drop_key, both)
            real, generated = _split(outputs, n)
        else:
            real, stats = run_discriminator(game, d, d_stats, x, jax.random.fold_in(drop_key, 0), batch["label"])
            generated, stats = run_discriminator(game, d, stats, fake, jax.random.fold_in(drop_key, 1), batch["label"])
        loss, metrics = objectives.D_LOSSES[game.config.d_loss](real, generated, batch, ctx)
        return loss, (stats, metrics)

    grads, (stats, metrics) = jax.grad(objective, has_aux=True)(d)
    return grads, stats, metrics


def _g_objective(game: Game, ctx, real, generated, batch):
    return objectives.G_LOSSES[game.config.g_loss](real, generated, batch, ctx)


def _simultaneous_fused(game: Game, ctx, g, g_stats, d, d_stats, batch, key):
    """Both gradients from one batch and the same pre-update networks, as the original code did.

    One G pass and one D pass over [x; G(z)]; D's backward runs once for D's parameters (D objective) and
    once for its input (G objective), so nothing is recomputed.
    """
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    (fake, g_stats), g_vjp = _vjp_generator(game, g, g_stats, z_key, n, batch)
    both = jnp.concatenate([batch["label"], batch["label"]])  # a fake takes its real counterpart's label
    outputs, d_vjp = jax.vjp(lambda d, inputs: run_discriminator(game, d, d_stats, inputs, drop_key, both)[0], d, jnp.concatenate([x, fake]))
    d_obj = lambda o: objectives.D_LOSSES[game.config.d_loss](*_split(o, n), batch, ctx)
    g_obj = lambda o: _g_objective(game, ctx, *_split(o, n), batch)
    d_cot, d_metrics = jax.grad(d_obj, has_aux=True)(outputs)
    g_cot, g_metrics = jax.grad(g_obj, has_aux=True)(outputs)
    d_grads, _ = d_vjp(d_cot)
    _, input_grads = d_vjp(g_cot)
    (g_grads,) = g_vjp(input_grads[n:])
    return d_grads, d_stats, g_grads, g_stats, {**d_metrics, **g_metrics}


def _vjp_generator(game: Game, g, g_stats, z_key, n: int, batch):
    """((G(z), G's new statistics), the VJP of G(z) with respect to G's parameters)."""
    fake, g_vjp, stats = jax.vjp(
        lambda g: run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key)),
        g, has_aux=True,
    )
    return (fake, stats), g_vjp


def _g_step_grads(game: Game, ctx, g, g_stats, d, d_stats, batch, key):
    """Gradient of the G objective against D as given (Algorithm 1's generator step), and G's new statistics."""
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    needs_real = game.config.g_loss in objectives.G_NEEDS_REAL

    def objective(g):
        fake, stats = run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key))
        generated, _ = run_discriminator(game, d, d_stats, fake, drop_key, batch["label"])
        real = None
        if needs_real:
            real, _ = run_discriminator(game, d, d_stats, x, jax.random.fold_in(drop_key, 1), batch["label"])
        loss, metrics = _g_objective(game, ctx, real, generated, batch)
        return loss, (stats, metrics)

    grads, (stats, metrics) = jax.grad(objective, has_aux=True)(g)
    return grads, stats, metrics


def _ema(game: Game, state, g, epoch):
    """G's moving average: decay `ema` per G update, equal to G itself before epoch `ema_start`."""
    c = game.config
    return jax.tree.map(lambda a, p: jnp.where(epoch < c.ema_start, p, c.ema * a + (1.0 - c.ema) * p), state["g_ema"], g)


def iteration(game: Game, state, batches):
    """One iteration on batches {"image": [k, B, ...], "label": [k, B]}: k D updates and one G update."""
    c = game.config
    g, d, g_opt, d_opt = state["g"], state["d"], state["g_opt"], state["d_opt"]
    g_stats, d_stats = state.get("g_stats"), state.get("d_stats")
    step_key = jax.random.fold_in(jax.random.fold_in(state["key"], STEP), state["step"])
    keys = jax.random.split(step_key, c.k + 1)
    epoch = state["step"] // game.iters_per_epoch
    ctx = objectives.Context(c, epoch)
    batch = lambda j: jax.tree.map(lambda a: a[j], batches)
    simultaneous = c.update == "simultaneous"
    for j in range(c.k - 1 if simultaneous else c.k):
        grads, d_stats, d_metrics = _d_step_grads(game, ctx, g, g_stats, d, d_stats, batch(j), keys[j])
        d, d_opt = _apply(game.d_tx, grads, d_opt, d)
    if simultaneous and game.fused:
        d_grads, d_stats, g_grads, g_stats, metrics = _simultaneous_fused(game, ctx, g, g_stats, d, d_stats, batch(c.k - 1), keys[-1])
        d, d_opt = _apply(game.d_tx, d_grads, d_opt, d)
    elif simultaneous:  # the same semantics with D run on real and generated batches separately
        d_grads, new_d_stats, d_metrics = _d_step_grads(game, ctx, g, g_stats, d, d_stats, batch(c.k - 1), keys[-1])
        g_grads, g_stats, g_metrics = _g_step_grads(game, ctx, g, g_stats, d, d_stats, batch(c.k - 1), keys[-1])
        d, d_opt = _apply(game.d_tx, d_grads, d_opt, d)
        d_stats, metrics = new_d_stats, {**d_metrics, **g_metrics}
    else:
        g_grads, g_stats, g_metrics = _g_step_grads(game, ctx, g, g_stats, d, d_stats, batch(c.k - 1), keys[-1])
        metrics = {**d_metrics, **g_metrics}
    g, g_opt = _apply(game.g_tx, g_grads, g_opt, g)
    new = dict(state, g=g, d=d, g_opt=g_opt, d_opt=d_opt, step=state["step"] + 1)
    if g_stats is not None:
        new["g_stats"] = g_stats
    if d_stats is not None:
        new["d_stats"] = d_stats
    if "g_ema" in state:
        new["g_ema"] = _ema(game, state, g, epoch)
    return new, metrics


def chunk(game: Game, state, data, length: int):
    """`length` iterations inside one epoch as one compiled loop; returns the state and metrics of [length]."""
    c = game.config
    per_iter = c.batch_size * c.k
    epoch = state["step"] // game.iters_per_epoch
    n = data["image"].shape[0]
    order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(state["key"], ORDER), epoch), n)

    def body(state, _):
        i = state["step"] % game.iters_per_epoch
        idx = jax.lax.dynamic_slice(order, (i * per_iter,), (per_iter,))
        batches = jax.tree.map(lambda a: a[idx].reshape((c.k, c.batch_size) + a.shape[1:]), data)
        return iteration(game, state, batches)

    return jax.lax.scan(body, state, None, length=length)


def data_spec(game: Game) -> dict:
    """Shapes and dtypes of the training data as the compiled chunk takes it."""
    return {
        "image": jax.ShapeDtypeStruct((game.n_train,) + game.data_shape, jnp.float32),
        "label": jax.ShapeDtypeStruct((game.n_train,), jnp.int32),
    }


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
    return jax.jit(fn, donate_argnums=0).lower(state, data_spec(game)).compile()


# How metrics are listed (the progress bar, metrics.jsonl, inspect): the game's four first, then the rest by name.
FIRST = ("d_loss", "g_loss", "d_real", "d_fake")


def metric_names(game: Game) -> list[str]:
    """The names of the metrics an iteration of this game reports, in display order."""
    c = game.config
    batches = jax.tree.map(lambda a: jax.ShapeDtypeStruct((c.k, c.batch_size) + a.shape[1:], a.dtype), data_spec(game))
    names = jax.eval_shape(partial(iteration, game), abstract_state(game), batches)[1]
    return sorted(names, key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))


def fixed_noise(game: Game, key, n: int):
    """The latent vectors behind the per-epoch sample grids: the same for the whole run."""
    return game.noise(jax.random.fold_in(key, FIXED_Z), n)


def generator_params(state, ema: bool = True):
    """G's parameters to sample with: the moving average when the run keeps one and ema is asked for."""
    return state["g_ema"] if ema and "g_ema" in state else state["g"]


def sample(game: Game, state, z, label=None, ema: bool = True):
    """G(z) at test time (batch norm from its running statistics)."""
    return run_generator(game, generator_params(state, ema), state.get("g_stats"), z, label, train=False)[0]


def discriminate(game: Game, state, x, label=None):
    """D's outputs at test time: no dropout, batch norm from its running statistics."""
    return run_discriminator(game, state["d"], state.get("d_stats"), x, None, label, train=False)[0]
