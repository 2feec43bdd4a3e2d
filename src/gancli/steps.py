"""Pure, jit-compiled training steps: k discriminator updates and one generator update per iteration.

The state is a plain dict pytree: {"g", "d"} the trainable parameters, {"g_opt", "d_opt"} their optimiser
states, "step", "key", and when a run has them "g_stats"/"d_stats" (batch-norm statistics, which the
optimisers never see; also weight norm's fixed scales) and "g_ema"/"d_ema" (exponential moving averages of G's and
D's parameters, AVERAGES). A batch is a dict {"image", "label"}, and one more batch per stream the run's
objectives need (gancli.streams), under the stream's name. An iteration's randomness is fold_in(key, step), and an
epoch's data order is fold_in(key, epoch), so a resumed run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gancli import augment, models, objectives, optim, penalties, pixels, spectral, streams
from gancli.config import RunConfig

# Streams of randomness derived from a run's key; gancli.streams' data streams have theirs after these.
INIT, STEP, ORDER, FIXED_Z = range(4)
PENALTY = 1  # fold_in of a D step's key (split into G's noise and D's dropout) for its gradient penalties' randomness


@dataclass(frozen=True)
class Average:
    """An exponential moving average of one network's parameters, kept in the state under `key` when the config's
    `decay` field is > 0. Each update of the network moves it by that decay; before epoch ema_start it equals the
    network itself."""

    key: str  # its state key, as checkpoints store it
    network: str  # the state key of the parameters it averages
    decay: str  # the RunConfig field of its decay
    start: Callable  # its value in a fresh state, from the network's initial parameters


AVERAGES = (
    Average("g_ema", "g", "ema", lambda p: jax.tree.map(jnp.copy, p)),  # its own buffers: the state is donated leaf by leaf
    Average("d_ema", "d", "d_ema", lambda p: jax.tree.map(jnp.zeros_like, p)),  # from zero, as improved-gan's disc_param_avg
)


def averages(config: RunConfig) -> tuple[Average, ...]:
    """The moving averages a run keeps."""
    return tuple(a for a in AVERAGES if getattr(config, a.decay))


@dataclass(frozen=True)
class Game:
    """The static parts of a run: config, networks, objectives, optimisers and the epoch's shape."""

    config: RunConfig
    data_shape: tuple[int, ...]
    n_train: int
    # How the training images lie on the device: "uint8" bytes (gancli.pixels.pack), made float32 k/255 as each
    # batch is gathered, or "float32" as they are
    data_dtype: str = "float32"

    @property
    def iters_per_epoch(self) -> int:
        return self.n_train // (self.config.batch_size * self.config.k)

    @property
    def streams(self) -> tuple[streams.Stream, ...]:
        """The extra batches each iteration draws for the objectives."""
        return streams.of(self.config)

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
        """n latent vectors from the configured prior (uniform has unit variance; uniform01 is U[0, 1))."""
        shape = (n, self.config.generator.z_dim)
        if self.config.generator.noise == "uniform":
            return jax.random.uniform(key, shape, minval=-math.sqrt(3.0), maxval=math.sqrt(3.0))
        if self.config.generator.noise == "uniform01":
            return jax.random.uniform(key, shape)
        return jax.random.normal(key, shape)


def init_state(game: Game, seed: int, train_images: np.ndarray | None = None):
    """Fresh parameters and optimiser states; G's output bias from the data's means when configured, and D's
    data-dependent init (a family with init_data) from training images: a real state of such a family needs them."""
    key = jax.random.PRNGKey(seed)
    g_key, d_key = jax.random.split(jax.random.fold_in(key, INIT))
    label = jnp.zeros((1,), jnp.int32)  # unconditional models ignore it
    g = dict(game.generator.init(g_key, jnp.zeros((1, game.config.generator.z_dim)), label))
    init_data = models.MODELS[game.config.model].init_data
    x = jnp.zeros((1,) + game.data_shape)
    if init_data is not None and train_images is not None:
        x = jnp.asarray(init_data(game.config, train_images))
    d = dict(game.discriminator.init(d_key, x, jnp.zeros((x.shape[0],), jnp.int32)))
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
    for average in averages(game.config):
        state[average.key] = average.start(state[average.network])
    # Spectral normalisation's vectors, "d_spectral" / "g_spectral" (gancli.spectral), when it is on.
    state.update(spectral.start(game.config, jax.random.fold_in(key, INIT), g_params, d_params))
    if augment.on(game.config):
        state["ada"] = augment.start(game.config)
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


def _d_extras(game: Game) -> tuple[str, ...]:
    """The names of the streams whose batches D's pass covers beside [x; G(z)], in order."""
    return tuple(s.name for s in game.streams if s.step == "d")


def _joined(game: Game, batch, fake):
    """One D pass's inputs and labels: [x; G(z)], then each D stream's batch. A fake takes its real counterpart's
    label."""
    images, labels = [batch["image"], fake], [batch["label"], batch["label"]]
    for name in _d_extras(game):
        images.append(batch[name]["image"])
        labels.append(batch[name]["label"])
    return jnp.concatenate(images), jnp.concatenate(labels)


def _split(game: Game, outputs, n: int):
    """D's outputs on _joined's inputs as (outputs on x, outputs on G(z)); those on each D stream's batch go into
    the first under the stream's name."""
    real, fake = jax.tree.map(lambda a: a[:n], outputs), jax.tree.map(lambda a: a[n : 2 * n], outputs)
    for i, name in enumerate(_d_extras(game)):
        real = {**real, name: jax.tree.map(lambda a: a[(2 + i) * n : (3 + i) * n], outputs)}
    return real, fake


def _seen(game: Game, ada, x, key, i: int):
    """What D sees of its input x in training: x augmented (gancli.augment) when the run augments; i tells apart
    the D passes of one step (0 real, 1 generated, 2 + j D stream j)."""
    return augment.view(game.config, game.data_shape, ada, x, key, i)



def _penalized(game: Game, d_grads, d_metrics, d, d_stats, batch, fake, key, count, ada=None):
    """D's gradients and metrics with the run's gradient penalties added (gancli.penalties), at D update `count`.
    The penalties' D passes use D's parameters and statistics, dropout keys of their own, and update no statistics;
    when the run augments, D's gradient is taken through the augmentation, at the images before it (as StyleGAN2-ADA's R1)."""
    if not penalties.active(game.config):
        return d_grads, d_metrics
    score = lambda d, images, key: run_discriminator(game, d, d_stats, _seen(game, ada, images, key, 0), key, batch["label"])[0]["logit"]
    extra = penalties.grads(game.config, score, d, batch["image"], fake, jax.random.fold_in(key, PENALTY), count)
    return penalties.add(d_grads, d_metrics, *extra)


def _d_step_grads(game: Game, ctx, g, g_stats, d, d_stats, batch, key, count=0, ada=None):
    """Gradient of the D objective at (g, d) on one real batch, D's new statistics and the metrics; count is the
    run's D update that this is (lazy gradient penalties)."""
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    fake, _ = run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key))
    fake = jax.lax.stop_gradient(fake)
    inputs, labels = _joined(game, batch, fake)

    def objective(d):
        if game.fused:
            outputs, stats = run_discriminator(game, d, d_stats, _seen(game, ada, inputs, key, 0), drop_key, labels)
            real, generated = _split(game, outputs, n)
        else:
            real, stats = run_discriminator(game, d, d_stats, _seen(game, ada, x, key, 0), jax.random.fold_in(drop_key, 0), batch["label"])
            generated, stats = run_discriminator(game, d, stats, _seen(game, ada, fake, key, 1), jax.random.fold_in(drop_key, 1), batch["label"])
            for i, name in enumerate(_d_extras(game)):
                extra = batch[name]
                outputs, stats = run_discriminator(game, d, stats, _seen(game, ada, extra["image"], key, 2 + i), jax.random.fold_in(drop_key, 2 + i), extra["label"])
                real = {**real, name: outputs}
        loss, metrics = objectives.D_LOSSES[game.config.d_loss](real, generated, batch, ctx)
        return loss, (stats, {**metrics, **augment.signal(game.config, real)})

    grads, (stats, metrics) = jax.grad(objective, has_aux=True)(d)
    grads, metrics = _penalized(game, grads, metrics, d, d_stats, batch, fake, key, count, ada)
    return grads, stats, metrics


def _g_objective(game: Game, ctx, real, generated, batch):
    return objectives.G_LOSSES[game.config.g_loss](real, generated, batch, ctx)


def _simultaneous_fused(game: Game, ctx, g, g_stats, d, d_stats, batch, key, count=0, ada=None):
    """Both gradients from one batch and the same pre-update networks, as the original code did.

    One G pass and one D pass over [x; G(z)]; D's backward runs once for D's parameters (D objective) and
    once for its input (G objective), so nothing is recomputed.
    """
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    (fake, g_stats), g_vjp = _vjp_generator(game, g, g_stats, z_key, n, batch)
    inputs, labels = _joined(game, batch, fake)
    outputs, d_vjp = jax.vjp(lambda d, inputs: run_discriminator(game, d, d_stats, _seen(game, ada, inputs, key, 0), drop_key, labels)[0], d, inputs)
    d_obj = lambda o: objectives.D_LOSSES[game.config.d_loss](*_split(game, o, n), batch, ctx)
    g_obj = lambda o: _g_objective(game, ctx, *_split(game, o, n), batch)
    d_cot, d_metrics = jax.grad(d_obj, has_aux=True)(outputs)
    g_cot, g_metrics = jax.grad(g_obj, has_aux=True)(outputs)
    d_grads, _ = d_vjp(d_cot)
    _, input_grads = d_vjp(g_cot)
    (g_grads,) = g_vjp(input_grads[n : 2 * n])
    d_grads, d_metrics = _penalized(game, d_grads, d_metrics, d, d_stats, batch, fake, key, count, ada)
    return d_grads, d_stats, g_grads, g_stats, {**d_metrics, **augment.signal(game.config, _split(game, outputs, n)[0]), **g_metrics}


def _vjp_generator(game: Game, g, g_stats, z_key, n: int, batch):
    """((G(z), G's new statistics), the VJP of G(z) with respect to G's parameters)."""
    fake, g_vjp, stats = jax.vjp(
        lambda g: run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key)),
        g, has_aux=True,
    )
    return (fake, stats), g_vjp


def _g_step_grads(game: Game, ctx, g, g_stats, d, d_stats, batch, key, ada=None):
    """Gradient of the G objective against D as given (Algorithm 1's generator step), and G's new statistics."""
    z_key, drop_key = jax.random.split(key)
    x = batch["image"]
    n = x.shape[0]
    needs_real = objectives.REAL_IN_G in objectives.G_LOSSES[game.config.g_loss].needs

    def objective(g):
        fake, stats = run_generator(game, g, g_stats, game.noise(z_key, n), batch["label"], key=_g_dropout_key(game, z_key))
        generated, _ = run_discriminator(game, d, d_stats, _seen(game, ada, fake, key, 1), drop_key, batch["label"])
        real = None
        if needs_real:
            real, _ = run_discriminator(game, d, d_stats, _seen(game, ada, x, key, 0), jax.random.fold_in(drop_key, 1), batch["label"])
        loss, metrics = _g_objective(game, ctx, real, generated, batch)
        return loss, (stats, metrics)

    grads, (stats, metrics) = jax.grad(objective, has_aux=True)(g)
    return grads, stats, metrics


def _averaged(game: Game, kept: dict, network: str, params, epoch) -> dict:
    """The run's moving averages after an update of `network` to params: each of that network's moves by its decay,
    or equals the network itself before epoch ema_start; the others stay."""
    c = game.config
    out = dict(kept)
    for average in averages(c):
        if average.network == network:
            decay = getattr(c, average.decay)
            out[average.key] = jax.tree.map(lambda a, p: jnp.where(epoch < c.ema_start, p, decay * a + (1.0 - decay) * p),
                                            kept[average.key], params)
    return out


def iteration(game: Game, state, batches):
    """One iteration on batches {"image": [k, B, ...], "label": [k, B]} and each stream's (game.streams: [k, B] for
    a D stream, [1, B] for a G one): k D updates and one G update."""
    c = game.config
    g, d, g_opt, d_opt = state["g"], state["d"], state["g_opt"], state["d_opt"]
    g_stats, d_stats = state.get("g_stats"), state.get("d_stats")
    # Spectral normalisation (None: off): each step's gradients are taken at the normalised weights (the *_hat) and
    # pulled back to the raw ones; each network's vectors move once per update of it, before its passes.
    d_u, g_u = state.get("d_spectral"), state.get("g_spectral")
    g_hat, g_back = spectral.view(g, g_u)
    kept = {average.key: state[average.key] for average in averages(c)}
    step_key = jax.random.fold_in(jax.random.fold_in(state["key"], STEP), state["step"])
    keys = jax.random.split(step_key, c.k + 1)
    epoch = state["step"] // game.iters_per_epoch
    ctx = objectives.Context(c, epoch)
    g_streams = [s.name for s in game.streams if s.step == "g"]
    if len(g_streams) > 1:
        raise ValueError(f"G's step takes one real batch, but streams {', '.join(g_streams)} each give it one")
    d_batches = {name: b for name, b in batches.items() if name not in g_streams}
    batch = lambda j: jax.tree.map(lambda a: a[j], d_batches)
    g_batch = jax.tree.map(lambda a: a[0], batches[g_streams[0]]) if g_streams else batch(c.k - 1)
    simultaneous = c.update == "simultaneous"
    ada, signals = state.get("ada"), []  # the augmentation's state, and each D step's ADA signal

    def update_d(grads, d, d_opt, kept):
        d, d_opt = _apply(game.d_tx, grads, d_opt, d)
        return d, d_opt, _averaged(game, kept, "d", d, epoch)

    count = lambda j: state["step"] * c.k + j  # the run's D updates so far, before this one
    per_update = []  # each D update's metrics, for the penalties' (penalties.averaged)
    for j in range(c.k - 1 if simultaneous else c.k):
        d_u = spectral.iterate(d, d_u)
        d_hat, d_back = spectral.view(d, d_u)
        grads, d_stats, d_metrics = _d_step_grads(game, ctx, g_hat, g_stats, d_hat, d_stats, batch(j), keys[j], count(j), ada)
        d, d_opt, kept = update_d(d_back(grads), d, d_opt, kept)
        per_update.append(d_metrics)
        signals.append(d_metrics.get("ada_r"))
    if simultaneous:  # the last D update and the G update share their passes, so both networks' vectors move first
        d_u, g_u = spectral.iterate(d, d_u), spectral.iterate(g, g_u)
        (d_hat, d_back), (g_hat, g_back) = spectral.view(d, d_u), spectral.view(g, g_u)
    if simultaneous and game.fused:
        d_grads, d_stats, g_grads, g_stats, metrics = _simultaneous_fused(game, ctx, g_hat, g_stats, d_hat, d_stats, batch(c.k - 1), keys[-1], count(c.k - 1), ada)
        d, d_opt, kept = update_d(d_back(d_grads), d, d_opt, kept)
        per_update.append(metrics)
        signals.append(metrics.get("ada_r"))
    elif simultaneous:  # the same semantics with D run on real and generated batches separately
        d_grads, new_d_stats, d_metrics = _d_step_grads(game, ctx, g_hat, g_stats, d_hat, d_stats, batch(c.k - 1), keys[-1], count(c.k - 1), ada)
        per_update.append(d_metrics)
        signals.append(d_metrics.get("ada_r"))
        g_grads, g_stats, g_metrics = _g_step_grads(game, ctx, g_hat, g_stats, d_hat, d_stats, batch(c.k - 1), keys[-1], ada)
        d, d_opt, kept = update_d(d_back(d_grads), d, d_opt, kept)
        d_stats, metrics = new_d_stats, {**d_metrics, **g_metrics}
    else:
        g_u = spectral.iterate(g, g_u)
        (g_hat, g_back), d_hat = spectral.view(g, g_u), spectral.normalise(d, d_u)  # D as its last update left it
        g_grads, g_stats, g_metrics = _g_step_grads(game, ctx, g_hat, g_stats, d_hat, d_stats, g_batch, keys[-1], ada)
        metrics = {**d_metrics, **g_metrics}
    metrics = {**metrics, **penalties.averaged(per_update)}
    g, g_opt = _apply(game.g_tx, g_back(g_grads), g_opt, g)
    kept = _averaged(game, kept, "g", g, epoch)
    new = dict(state, g=g, d=d, g_opt=g_opt, d_opt=d_opt, step=state["step"] + 1, **kept)
    if g_stats is not None:
        new["g_stats"] = g_stats
    if d_stats is not None:
        new["d_stats"] = d_stats
    new.update({spectral.STATE_KEYS[n]: u for n, u in (("d", d_u), ("g", g_u)) if u is not None})
    if ada is not None:
        new["ada"], ada_metrics = augment.update(c, ada, signals, new["step"])
        metrics = {**metrics, **ada_metrics}
    return new, metrics


def chunk(game: Game, state, data, length: int, batch_sharding=None):
    """`length` iterations inside one epoch as one compiled loop; returns the state and metrics of [length].

    data: {"image", "label"} of the training set, and under POOLS the seed's pool of each stream that has one
    (streams.pool_sizes). batch_sharding (gancli.parallel) splits every batch [k, B, ...] over devices on B; the
    data may hold padding rows past game.n_train, which are never drawn.
    """
    c = game.config
    per_iter = c.batch_size * c.k
    epoch = state["step"] // game.iters_per_epoch
    epoch_key = lambda stream: jax.random.fold_in(jax.random.fold_in(state["key"], stream), epoch)
    order = jax.random.permutation(epoch_key(ORDER), game.n_train)
    pools, examples = data.get(POOLS, {}), {k: v for k, v in data.items() if k != POOLS}
    drawn = [(s, s.prepare(game, epoch_key(s.order), pools.get(s.name))) for s in game.streams]

    def take(at, steps):
        batch = jax.tree.map(lambda a: a[at].reshape((steps, c.batch_size) + a.shape[1:]), examples)
        if batch["image"].dtype == jnp.uint8:  # bytes to to_unit's floats, exactly (gancli.pixels)
            batch["image"] = jnp.asarray(pixels.TABLE)[batch["image"]]
        return batch

    def body(state, _):
        i = state["step"] % game.iters_per_epoch
        batches = take(jax.lax.dynamic_slice(order, (i * per_iter,), (per_iter,)), c.k)
        for stream, prepared in drawn:
            batches[stream.name] = take(stream.indices(game, prepared, i), stream.batches(c))
        if batch_sharding is not None:
            batches = jax.lax.with_sharding_constraint(batches, batch_sharding)
        return iteration(game, state, batches)

    return jax.lax.scan(body, state, None, length=length)


# The data's entry holding each stream's pool of examples (one per seed, on the seed axis, for several seeds).
POOLS = "pools"


def data_spec(game: Game, rows: int | None = None, seeds: int = 1) -> dict:
    """Shapes and dtypes of the training data as the compiled chunk takes it (rows: with padding, if any), with the
    pools of a run whose streams have some ([seeds, size] for several seeds)."""
    rows = game.n_train if rows is None else rows
    spec = {
        "image": jax.ShapeDtypeStruct((rows,) + game.data_shape, jnp.dtype(game.data_dtype)),
        "label": jax.ShapeDtypeStruct((rows,), jnp.int32),
    }
    sizes = streams.pool_sizes(game.config)
    if sizes:
        lead = (seeds,) if seeds > 1 else ()
        spec[POOLS] = {name: jax.ShapeDtypeStruct(lead + (n,), jnp.int32) for name, n in sizes.items()}
    return spec


def compiled_chunk(game: Game, seeds: int, length: int, placement=None):
    """The chunk of `length` iterations, compiled once per process, the state donated; vmapped over a
    leading seed axis when seeds > 1 (the state's and the pools'); laid out over a mesh by a
    gancli.parallel.Placement (None: one device)."""
    # Fields that do not enter the program are blanked so that runs differing only in them share it (the label seed
    # picks the pools, which the program takes as data).
    config = dataclasses.replace(game.config, dataset="", preset="", epochs=1, seed=0, seeds=1, chunk=1, ckpt_every=1,
                                 ckpt_minutes=1.0, keep=1, label_seed=0, same_labels=False)
    return _compiled_chunk(dataclasses.replace(game, config=config), seeds, length, placement)


@lru_cache(maxsize=16)
def _compiled_chunk(game: Game, seeds: int, length: int, placement=None):
    fn = partial(chunk, game, length=length, batch_sharding=None if placement is None else placement.batches)
    data = data_spec(game, None if placement is None else placement.data_rows(game.n_train), seeds)
    if seeds > 1:  # the training set is shared by the seeds; each seed has its own pools
        fn = jax.vmap(fn, in_axes=(0, {k: 0 if k == POOLS else None for k in data}))
    state = abstract_state(game)
    if seeds > 1:
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((seeds,) + x.shape, x.dtype), state)
    if placement is None:
        return jax.jit(fn, donate_argnums=0).lower(state, data).compile()
    data_shardings = {k: placement.state if k == POOLS else placement.data_sharding for k in data}
    shardings = dict(in_shardings=(placement.state, data_shardings), out_shardings=(placement.state, placement.replicated))
    return jax.jit(fn, donate_argnums=0, **shardings).lower(state, data).compile()


def streamed_chunk(game: Game, state, batches):
    """The iterations of a streamed chunk (gancli.streaming) as one compiled loop: batches {"image": [length, k, B,
    ...] uint8, "label": [length, k, B]} drawn on the host in chunk's order (the same permutation fold_in(key, epoch)),
    so each iteration sees the batch it would see with the training set on the device."""

    def body(state, batch):
        batch = dict(batch, image=jnp.asarray(pixels.TABLE)[batch["image"]])  # bytes to to_unit's floats, as in chunk
        return iteration(game, state, batch)

    return jax.lax.scan(body, state, batches)


def compiled_streamed_chunk(game: Game, length: int):
    """streamed_chunk for `length` iterations, compiled once per process, the state donated (one seed, one device)."""
    config = dataclasses.replace(game.config, dataset="", preset="", epochs=1, seed=0, seeds=1, chunk=1, ckpt_every=1,
                                 ckpt_minutes=1.0, keep=1, label_seed=0, same_labels=False)
    return _compiled_streamed_chunk(dataclasses.replace(game, config=config), length)


@lru_cache(maxsize=16)
def _compiled_streamed_chunk(game: Game, length: int):
    c = game.config
    batches = {
        "image": jax.ShapeDtypeStruct((length, c.k, c.batch_size) + game.data_shape, jnp.uint8),
        "label": jax.ShapeDtypeStruct((length, c.k, c.batch_size), jnp.int32),
    }
    return jax.jit(partial(streamed_chunk, game), donate_argnums=0).lower(abstract_state(game), batches).compile()


# How metrics are listed (the progress bar, metrics.jsonl, inspect): the game's four first, then the rest by name.
FIRST = ("d_loss", "g_loss", "d_real", "d_fake")


def iteration_spec(game: Game) -> dict:
    """Shapes and dtypes of the batches one iteration takes (what `iteration` is traced with)."""
    c = game.config
    as_seen = dataclasses.replace(game, data_dtype="float32")  # a batch's images are float whatever the data's dtype
    examples = {k: v for k, v in data_spec(as_seen).items() if k != POOLS}
    per_step = lambda steps: jax.tree.map(lambda a: jax.ShapeDtypeStruct((steps, c.batch_size) + a.shape[1:], a.dtype), examples)
    batches = per_step(c.k)
    for stream in game.streams:
        batches[stream.name] = per_step(stream.batches(c))
    return batches


def metric_names(game: Game) -> list[str]:
    """The names of the metrics an iteration of this game reports, in display order."""
    names = jax.eval_shape(partial(iteration, game), abstract_state(game), iteration_spec(game))[1]
    return sorted(names, key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))


def fixed_noise(game: Game, key, n: int):
    """The latent vectors behind the per-epoch sample grids: the same for the whole run."""
    return game.noise(jax.random.fold_in(key, FIXED_Z), n)


def _params(state, network: str, ema: bool):
    """A network's parameters, or with ema its moving average when the state holds one; spectrally normalised with
    the network's current vectors when the run normalises it (a moving average of the raw weights included)."""
    (average,) = (a for a in AVERAGES if a.network == network)
    params = state[average.key] if ema and average.key in state else state[network]
    return spectral.normalise(params, state.get(spectral.STATE_KEYS[network]))


def generator_params(state, ema: bool = True):
    """G's parameters to sample with: the moving average when the run keeps one and ema is asked for."""
    return _params(state, "g", ema)


def sample(game: Game, state, z, label=None, ema: bool = True):
    """G(z) at test time (batch norm from its running statistics)."""
    return run_generator(game, generator_params(state, ema), state.get("g_stats"), z, label, train=False)[0]


def discriminator_params(state, ema: bool = False):
    """D's parameters: its moving average when the run keeps one and ema is asked for."""
    return _params(state, "d", ema)


def discriminate(game: Game, state, x, label=None, ema: bool = False):
    """D's outputs at test time: no dropout or noise, batch norm from its running statistics; with ema, from the
    moving average of D's weights when the run keeps one (what a semi-supervised run is tested with)."""
    return run_discriminator(game, discriminator_params(state, ema), state.get("d_stats"), x, None, label, train=False)[0]
