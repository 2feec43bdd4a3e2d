"""The training loop: data on the device, compiled chunks of iterations, checkpoints, metrics, resume, stops."""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gancli import augment, checkpoint, conditional, data, images, models, objectives, optim, parallel, pixels, rundir, steps, stops, streaming, streams
from gancli.config import RunConfig, differences, file_blamed, preset, with_overrides
from gancli.data import labelled
from gancli.errors import GancliError
from gancli.files import human_bytes
from gancli.models import count_params

# Fields that may change when a run is resumed: they do not change what one iteration computes.
RESUMABLE = ("epochs", "chunk", "ckpt_every", "ckpt_minutes", "keep")
GRID = 100  # samples in the per-epoch picture of images
SCATTER = 1000  # ... and of low-dimensional data
# An epoch whose mean D(G(z)) is below this: D tells every generated sample from the data. Seed 2 of the
# paper-lr-ema run fell below it at epoch 7 and D(G(z)) kept falling (to 3e-5 at epoch 28) while its samples stayed
# black, so the loop warns, and inspect says since when, rather than the user finding out at evaluation. Only for
# a D objective whose d_fake is a probability (objectives.probabilities): a hinge or least-squares D's raw mean
# output is often below it in a healthy run.
D_REJECTS = 1e-3


class Reporter(Protocol):
    """What the loop tells the user; the CLI supplies a Rich one, tests a silent one."""

    def status(self, text: str) -> None: ...
    def start(self, total: int, done: int, epoch: int) -> None: ...
    def advance(self, done: int, epoch: int, metrics: dict[str, float], it_per_s: float) -> None: ...
    def epoch_end(self, record: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class Evaluations(Protocol):
    """Per-epoch measurements handed to the loop: checked before any work, built once the game is known; what
    build returns has run(state, epoch, epoch_seconds, reporter) -> one dict of figures per seed, or None."""

    def check(self, config: RunConfig) -> Any: ...

    def build(self, config: RunConfig, game: steps.Game, data_dir) -> Any: ...


class Silent:
    """A reporter that says nothing."""

    def status(self, text): ...
    def start(self, total, done, epoch): ...
    def advance(self, done, epoch, metrics, it_per_s): ...
    def epoch_end(self, record): ...
    def message(self, text): ...
    def stop(self): ...


@dataclass
class Outcome:
    """How a call to train() ended."""

    run_dir: Path
    status: str  # "done", "interrupted" or "up-to-date"
    epoch: int
    step: int
    history: list[dict[str, Any]]
    signal: int = 0  # the signal that interrupted it (SIGINT, SIGTERM)
    saved: bool = True  # False: interrupted during start-up, before the first step, with nothing saved


def resolve_config(
    ckpt_dir: Path, dataset: str | None, preset_name: str | None, overrides: dict[str, Any], resume: bool,
    config_file: tuple[Path, dict[str, Any]] | None = None,
) -> tuple[RunConfig, bool]:
    """The config to train with, and whether it continues the checkpoint in ckpt_dir.

    config_file: a --config file's path and its settings, under overrides (which win); an error its settings
    cause names the file and the key.

    A new run starts from the preset; a resumed run from the checkpoint's config, and any option given that
    contradicts it (other than the epoch count and bookkeeping) is refused. A folder that holds only what a run
    stopped before its first checkpoint left is a fresh start. The folder is checked writable here, before any work.
    """
    path, from_file = config_file or (None, {})

    def layered(build):
        return file_blamed(path, from_file, build, overrides) if from_file else build(overrides)

    rundir.check(ckpt_dir)
    runs = rundir.find_runs(ckpt_dir) if Path(ckpt_dir).is_dir() else [Path(ckpt_dir)]
    if not any(rundir.checkpoint_steps(r) for r in runs):
        if resume:
            raise GancliError(f"--resume: {ckpt_dir} holds no checkpoint to resume")
        if Path(ckpt_dir).is_dir() and rundir.leftovers(ckpt_dir) is None:
            raise GancliError(f"{ckpt_dir} is not empty and holds no gancli checkpoint: choose another --ckpt")
        base = preset(preset_name, dataset or "mnist")
        return layered(lambda o: models.check(with_overrides(base, **o))), False
    stored = checkpoint.newest_config(runs[0])
    if len(runs) > 1:
        stored = whole_run_config(stored, int(runs[0].name[5:]), len(runs))
    asked = layered(lambda o: with_overrides(stored, **o))
    if dataset is not None and dataset != stored.dataset:
        same_folder = dataset.startswith("folder_") and dataset.rsplit("_", 1)[0] == stored.dataset.rsplit("_", 1)[0]
        if same_folder:  # the name's last part is the folder's digest (gancli.data.image_sets)
            raise GancliError(f"{ckpt_dir} trains {stored.dataset!r}, built from the folder as it was; its files have "
                              f"changed since (now {dataset!r}): resume without the folder argument to go on with the "
                              "images it was trained on, or choose another --ckpt")
        raise GancliError(f"{ckpt_dir} trains {stored.dataset!r}, not {dataset!r}: choose another --ckpt")
    if preset_name is not None and preset_name != stored.preset:
        raise GancliError(f"{ckpt_dir} was trained with preset {stored.preset!r}, not {preset_name!r}")
    conflicts = differences(asked, stored, ignore=RESUMABLE)
    if conflicts:
        raise GancliError(f"{ckpt_dir} holds a run whose config differs: {'; '.join(conflicts)}")
    return models.check(asked), True


def versions() -> dict[str, str]:
    """Versions of the packages that decide what training computes."""
    out = {"python": platform.python_version()}
    for name in ("gancli", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets"):
        try:
            out[name] = pkg_metadata.version(name)
        except pkg_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind}"


def auto_chunk(game: steps.Game) -> int:
    """Iterations per compiled call: a whole epoch on an accelerator; on a CPU about 10,000 examples' worth
    per discriminator step, so that the progress bar moves every few seconds."""
    if jax.default_backend() != "cpu":
        return game.iters_per_epoch
    c = game.config
    return max(1, min(game.iters_per_epoch, 10_000 // (c.batch_size * c.k)))


def check_state_fits(game: steps.Game, placement: parallel.Placement | None) -> None:
    """GancliError, before any array is made, when the training state and its gradients alone exceed what one
    device holds: a config of a billion units would otherwise fail inside XLA (a traceback, or a machine that swaps).
    From the state's shapes (jax.eval_shape): parameters, optimiser moments, averages, batch statistics. A lower
    bound: the compiled program's activations and a save's copy of the state come on top."""
    have, where = parallel.device_memory()
    if have is None:
        return
    state = steps.abstract_state(game)
    size = lambda tree: sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))
    seeds = -(-game.config.seeds // (1 if placement is None or placement.split != "seeds" else placement.devices))
    need = seeds * (size(state) + size(state["g"]) + size(state["d"]))  # the state, and a gradient per parameter
    if need > have:
        raise GancliError(
            f"this config's training state needs at least {human_bytes(need)} ({count_params(state['g']):,} "
            f"parameters in G and {count_params(state['d']):,} in D, with their optimiser moments, averages and "
            f"gradients{f', for {seeds} seeds' if seeds > 1 else ''}), but {where.format(human_bytes(have))}: make the "
            "networks smaller"
        )


def seed_config(config: RunConfig, i: int) -> RunConfig:
    """The config a single seed's folder stores: seed + i, one seed, and its own label seed (labelled.label_seed_of)."""
    if config.seeds == 1:
        return config
    return with_overrides(config, seed=config.seed + i, seeds=1, label_seed=labelled.label_seed_of(config, i))


def whole_run_config(stored: RunConfig, i: int, seeds: int) -> RunConfig:
    """The config of the run of `seeds` seeds whose seed i's folder stores `stored` (seed_config's inverse)."""
    run = with_overrides(stored, seed=stored.seed - i, seeds=seeds)
    return run if stored.same_labels or not labelled.is_semi_supervised(stored) else with_overrides(run, label_seed=stored.label_seed - i)


def seed_pools(config: RunConfig, train_labels) -> list[dict[str, tuple[int, ...]]]:
    """Each seed's pools of training examples (streams.pools of its seed_config): its labelled subset."""
    return [streams.pools(seed_config(config, i), train_labels) for i in range(config.seeds)]


def train(config: RunConfig, ckpt_dir: Path, data_dir=None, reporter: Reporter | None = None, resume: bool = False,
          evaluations: Evaluations | None = None, devices: int | None = None, stream: bool = False) -> Outcome:
    """Train (or continue) the run in ckpt_dir up to config.epochs epochs; SIGINT or SIGTERM stops it (gancli.stops):
    during start-up with nothing saved (saved False), once training has begun by saving the state it reached.
    evaluations: what to measure at the end of some epochs, into metrics.jsonl (train --eval-every passes
    gancli.per_epoch.Every); the loop runs whatever it is given and knows no evaluation itself.
    devices: how many to train on (None: all there are; gancli.parallel.plan says how the work is split over them).
    stream: read the training set from disk as it trains (gancli.streaming), as a set too big for the device always is.

    The folder is locked for this process first: a second writer is refused before it loads or compiles anything.
    Of several processes (jax.distributed) only process 0 locks it and writes its files; every process saves its
    part of each checkpoint.
    """
    if evaluations is not None:
        evaluations.check(config)
    primary = parallel.is_primary()
    reporter = (reporter or Silent()) if primary else Silent()
    with stops.watch() as stop:  # the CLI's, installed at its first line, or one of our own
        try:
            stop.check()  # a signal before this call (while JAX was imported, say): nothing is claimed
            with rundir.claim(ckpt_dir) if primary else nullcontext() as take_back, stop.undoing(take_back):
                if not resume and primary:
                    rundir.start_fresh(ckpt_dir)
                parallel.barrier("gancli: run folder ready")
                return _train(config, Path(ckpt_dir), data_dir, reporter, resume, evaluations, devices, stop, stream)
        except stops.Interrupted as e:  # the claim has taken back what it made (rundir.claim)
            return Outcome(Path(ckpt_dir), "interrupted", 0, 0, [], e.signum, saved=False)
        finally:
            reporter.stop()  # a status line of start-up must not stay live over what the caller prints next


def _train(config: RunConfig, ckpt_dir: Path, data_dir, reporter: Reporter, resume: bool, evaluations: Evaluations | None,
           devices: int | None, stop: stops.Stop, stream: bool = False) -> Outcome:
    # stop.check() at each safe point of start-up: a signal stops the run there, before its first step.
    source = _stream_source(config, data_dir, devices, stream, reporter)  # None: the training set goes on the device
    if source is not None:
        train_images, means = streaming.init_images(source, config)  # the first rows only, for the init
        train_labels = source.labels() if config.conditional else np.zeros(0, np.int64)
        devices = 1
    else:
        reporter.status(f"loading {config.dataset}")
        train_images, train_labels = data.load(config.dataset, config.train_split, data_dir)
    stop.check()
    config = conditional.with_classes(config, train_labels)
    provenance = data.provenance(config.dataset, data_dir)
    # Pixels that are bytes k/255 go to the device as the bytes, a quarter of the memory (gancli.pixels).
    stored = pixels.pack(train_images) if train_images.ndim == 4 else None
    game = steps.Game(config, tuple(train_images.shape[1:]), train_images.shape[0] if source is None else len(source),
                      data_dtype="float32" if stored is None else "uint8")
    pools = seed_pools(config, train_labels)
    augment.check(config, game.data_shape)
    ipe = game.iters_per_epoch
    if ipe < 1:
        raise GancliError(
            f"{config.dataset} has {game.n_train} training examples, fewer than one iteration "
            f"(batch size {config.batch_size} x k {config.k}) needs", fields=("batch_size", "k")
        )
    placement = parallel.plan(config, devices, (train_images if stored is None else stored).nbytes + 4 * train_labels.size)
    assert source is None or placement is None, "a streamed run trains on one device (streaming.refusal)"
    check_state_fits(game, placement)
    primary = parallel.is_primary()
    if placement is not None:
        reporter.message(f"on {parallel.words(parallel.describe(placement))}")
    dirs = rundir.seed_dirs(ckpt_dir, config.seeds)
    stream_state = None  # where a resumed streamed run's data stream stands, from its checkpoint
    if resume:
        state, partial, stream_state = _restore(game, dirs, placement)
    else:
        # Each seed from its own config: a data-dependent init (model ssl-mlp) takes the seed's label seed's images.
        states = [steps.init_state(dataclasses.replace(game, config=seed_config(config, i)), config.seed + i, train_images)
                  for i in range(config.seeds)]
        state, partial = _stack(states, config.seeds), None
        if source is not None and means is not None:  # G's output bias from the whole set's means, not the first rows'
            state["g"]["out"]["bias"] = jnp.asarray(models.logit_of_means(means[None]))
    stop.check()
    step = int(np.asarray(state["step"]).reshape(-1)[0])
    total = config.epochs * ipe
    history = [rundir.history(d, step // ipe, rewrite=parallel.is_primary(), upto_step=step) for d in dirs]
    warned: set[int] = set()  # seeds whose D rejects every sample, told once
    watched = objectives.probabilities(config)
    if step >= total:
        return Outcome(ckpt_dir, "up-to-date", step // ipe, step, history[0])

    data_on_device = None if source is not None else parallel.place_data(placement, train_images if stored is None else stored, train_labels)
    if pools[0]:  # each seed's pools, on the seed axis as the state's leaves are
        stacked = {name: np.stack([np.asarray(p[name], np.int32) for p in pools]) if config.seeds > 1 else np.asarray(pools[0][name], np.int32)
                   for name in pools[0]}
        data_on_device[steps.POOLS] = jax.device_put(stacked) if placement is None else parallel.put(stacked, placement.state)
    # Low-dimensional samples are pictured over real points; images speak for themselves.
    reference = None if train_images.ndim == 4 else train_images[:2000]
    del train_images, stored
    pictured = GRID if len(game.data_shape) == 3 else SCATTER
    fixed_z = (
        jax.vmap(lambda k: steps.fixed_noise(game, k, pictured))(state["key"])
        if config.seeds > 1
        else steps.fixed_noise(game, state["key"], pictured)
    )
    # A conditional run's picture asks for the classes in turn: one row per class.
    labels = conditional.class_labels(config, pictured)
    draw = lambda st, z: steps.sample(game, st, z, None if labels is None else jnp.asarray(labels))  # the moving average of G when the run keeps one: what `sample` shows
    if placement is not None:  # from here on every array lives on the mesh
        state, fixed_z = parallel.put(state, placement.state), parallel.put(fixed_z, placement.replicated)
    # Samples come back whole to every process, which all run this program.
    sample_fn = jax.jit(jax.vmap(draw) if config.seeds > 1 else draw, **({} if placement is None else {"out_shardings": placement.replicated}))
    names = steps.metric_names(game)
    base_meta = {
        "dataset": config.dataset,
        "provenance": provenance,
        "data_shape": list(game.data_shape),
        "n_train": game.n_train,
        "iters_per_epoch": ipe,
        "versions": versions(),
        "device": device_description(),
        "mesh": parallel.describe(placement),
        "params": {"generator": count_params(state["g"]) // config.seeds, "discriminator": count_params(state["d"]) // config.seeds},
    }

    # What each seed's checkpoints say of its labelled subset, so that evaluate and inspect can tell the seeds' apart.
    seed_meta = [{"labelled": {"label_seed": seed_config(config, i).label_seed, "n": len(p[objectives.LABELLED]),
                               "sha256": labelled.digest(p[objectives.LABELLED])}} if objectives.LABELLED in p else {}
                 for i, p in enumerate(pools)]
    evaluations = evaluations.build(config, game, data_dir) if evaluations is not None else None  # reference statistics, once
    stop.check()
    reporter.status("compiling the training program")

    def program(length: int):
        t0 = time.perf_counter()
        fn = steps.compiled_chunk(game, config.seeds, length, placement) if source is None else steps.compiled_streamed_chunk(game, length)
        base_meta.setdefault("compile_s", round(time.perf_counter() - t0, 2))
        return fn

    sums = np.zeros((config.seeds, len(names))) if partial is None else np.asarray(partial["sums"])
    epoch_iters = 0 if partial is None else int(partial["iters"])
    epoch_seconds = 0.0 if partial is None else float(partial["seconds"])
    chunk = config.chunk or auto_chunk(game)
    program(min(chunk, ipe - step % ipe))
    stop.check()  # between compilation and the first step, before the writers make anything in the folder
    stopped_by = lambda: stop.signum
    with ExitStack() as stack:
        schedule = lambda step: min(chunk - (step % ipe) % chunk, ipe - step % ipe)  # dispatch's chunk lengths
        feed = None if source is None else stack.enter_context(
            streaming.Feed(game, source, state["key"], step, total, schedule, stream_state))
        writers = [stack.enter_context(checkpoint.Writer(d, config.keep)) for d in dirs]
        logs = [stack.enter_context(rundir.Log(d)) for d in dirs] if primary else []
        stack.callback(reporter.stop)  # also when an error ends the loop: the bar must not stay live over it
        # Pictures are drawn by one background thread: on a GPU an epoch can take less time than a PNG.
        painter = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        painted = []

        def dispatch(step: int, state):
            """Start the chunk from `step`: JAX returns at once and the device runs it while the host goes on."""
            i = step % ipe
            length = min(chunk - i % chunk, ipe - i)
            batches = data_on_device if feed is None else feed.take(step, length)
            return length, time.perf_counter(), *program(length)(state, batches)

        stop.training()  # from here a save may be in flight: a second signal must not break it
        reporter.start(total, step, step // ipe)
        last_save = time.monotonic()
        length, started, state, metrics = dispatch(step, state)
        while True:
            epoch = step // ipe
            # Waits for the chunk; each metric is [length], or [seeds, length].
            metrics = np.stack([np.asarray(metrics[k]) for k in names], axis=-1).reshape((config.seeds, length, len(names)))
            seconds = time.perf_counter() - started
            if not np.all(np.isfinite(metrics)):
                bad = int(np.argwhere(~np.isfinite(metrics))[0][1])
                for w in writers:  # the last good checkpoint may still be on its way to the disk
                    w.wait()
                last = checkpoint.latest_step(dirs[0])
                kept = f"the last good checkpoint (step {last}) is kept" if last is not None else "no checkpoint was written"
                raise GancliError(
                    f"non-finite loss at iteration {step + bad} (epoch {epoch + 1}): training stopped; {kept}"
                )
            step += length
            sums += metrics.sum(axis=1)
            epoch_iters += length
            epoch_seconds += seconds
            reporter.advance(step, epoch, dict(zip(names, metrics[0, -1].tolist())), length / seconds)
            epoch_done = step % ipe == 0
            stopping = stopped_by() != 0 and step < total
            saving = _time_to_save(config, step, ipe, total, epoch_done, stopping, time.monotonic() - last_save)
            # The picture and the checkpoint of this state are asked for before the next chunk is given the state
            # (donated); the host waits on them, and writes, while the device runs that chunk.
            drawn = sample_fn(state, fixed_z) if epoch_done else None
            evaluated = evaluations.run(state, epoch + 1, epoch_seconds, reporter) if epoch_done and evaluations else None
            copies = _snapshot(state, config.seeds, placement) if saving else None
            finished = stopping or step == total
            if not finished:  # from here `state` is the next chunk's
                length, started, state, metrics = dispatch(step, state)
            if epoch_done:
                records = _epoch_records(game, names, sums / epoch_iters, epoch + 1, step, epoch_iters / epoch_seconds)
                for record, figures in zip(records, evaluated or ()):
                    record.update(figures)
                samples = np.asarray(drawn).reshape((config.seeds, pictured) + game.data_shape)
                for s, d in enumerate(dirs):
                    picture = d / "samples" / f"epoch_{epoch + 1:04d}.png"
                    if primary:
                        painted.append(painter.submit(_paint, logs[s], step, samples[s], picture, f"epoch {epoch + 1}", reference, labels))
                        logs[s].epoch(records[s])
                    history[s].append(records[s])
                reporter.epoch_end(records[0])
                for s, d in enumerate(dirs):
                    if watched and s not in warned and _rejected(records[s]):
                        warned.add(s)
                        reporter.message(f"warning: {d}: mean D(G(z)) {records[s]['d_fake']:.2g} over epoch {epoch + 1}: "
                                         "D rejects every generated sample; such a run seldom recovers (look at its samples)")
                sums[:] = 0.0
                epoch_iters, epoch_seconds = 0, 0.0
            if finished:  # the bar stops here, so that what a second signal prints is not drawn over
                reporter.stop()
                stop.saving(step)
            if saving:
                partial = {"sums": sums.tolist(), "iters": epoch_iters, "seconds": epoch_seconds}
                streamed = {} if feed is None else {streaming.STATE_KEY: feed.state(step)}
                _save(writers, copies, config, [dict(base_meta, **m, **streamed) for m in seed_meta], step, ipe, partial if epoch_iters else None)
                last_save = time.monotonic()
            if finished:
                status = "interrupted" if stopping else "done"
                break
        for w in writers:  # the run is reported done only once its last checkpoint is whole on disk
            w.wait()
        for picture in painted:
            if isinstance(error := picture.exception(), OSError):
                raise GancliError(f"cannot write a sample picture: {error}")
            picture.result()
    return Outcome(ckpt_dir, status, step // ipe, step, history[0], stopped_by() if status == "interrupted" else 0)


def _paint(log: rundir.Log, step: int, samples: np.ndarray, picture: Path, *how) -> None:
    """The epoch's picture of samples (on the picture thread), then the same PNG in the run's TensorBoard events."""
    log.picture(step, images.save_samples(samples, picture, *how))


def _time_to_save(config: RunConfig, step: int, ipe: int, total: int, epoch_done: bool, stopping: bool,
                  since_save: float) -> bool:
    """Whether to checkpoint after the chunk that reached `step`, `since_save` seconds after the last save (or the
    start): at the end, when a signal stops the run, and every ckpt_every epochs, or when ckpt_every is 0, at the
    first chunk boundary ckpt_minutes after the last save. One save per step: Orbax refuses a second one."""
    if stopping or step == total:
        return True
    if config.ckpt_every:
        return epoch_done and (step // ipe) % config.ckpt_every == 0
    return since_save >= 60 * config.ckpt_minutes


def _epoch_records(game: steps.Game, names: list[str], means: np.ndarray, epoch: int, step: int, it_per_s: float):
    c = game.config.optimizer
    g_count = step  # G takes one update per iteration
    lr = float(optim.learning_rate(c, g_count - 1, game.iters_per_epoch))
    mom = float(optim.momentum(c, epoch - 1)) if c.name == "sgd" else c.b1
    return [
        {"epoch": epoch, "step": step, **{k: round(float(v), 6) for k, v in zip(names, row)},
         "it_per_s": round(it_per_s, 2), "lr": lr, "momentum": round(mom, 6)}
        for row in means
    ]


def rejected_since(history: list[dict[str, Any]], probabilities: bool = True) -> int | None:
    """The first epoch of the unbroken stretch, up to the last epoch, in which D rejected G's samples outright (mean
    D(G(z)) below D_REJECTS); None if it did not in the last epoch, the objective logs no D(G(z)), or its d_fake is
    not a probability (probabilities False: objectives.probabilities)."""
    if not probabilities:
        return None
    since = None
    for record in history:
        since = (since or record["epoch"]) if _rejected(record) else None
    return since


def _rejected(record: dict[str, Any]) -> bool:
    """Whether D rejected every generated sample in this epoch (an objective without D(G(z)) never does)."""
    return record.get("d_fake", 1.0) < D_REJECTS


def _snapshot(state, seeds: int, placement: parallel.Placement | None) -> list:
    """Each seed's state in buffers of its own, which the next chunk cannot take (donate) while Orbax reads them."""
    if seeds == 1:
        return [jax.tree_util.tree_map(jnp.copy, state)]
    return [parallel.seed_of(placement, state, s) for s in range(seeds)]


def _save(writers, states: list, config: RunConfig, seed_meta: list, step: int, ipe: int, partial) -> None:
    for s, (w, one) in enumerate(zip(writers, states)):
        meta = dict(seed_meta[s], epoch=step // ipe, step=step, seed=config.seed + s, saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if partial is not None:
            meta["partial_epoch"] = {"sums": partial["sums"][s], "iters": partial["iters"], "seconds": partial["seconds"]}
        w.save(step, one, seed_config(config, s), meta)


def _restore(game: steps.Game, dirs: list[Path], placement: parallel.Placement | None):
    """Every seed's state at their newest common step that restores, and its partial epoch's sums, if any.

    Each checkpoint is restored against the shapes its own config gives, so that one whose config was edited is
    told apart from damaged files. The run's config came from the newest checkpoint whose config reads: when that
    one was skipped, the one restored must have been trained with the same config.
    """
    # Restored onto this run's devices whatever devices wrote it; a multi-seed state is split over them later.
    where = parallel.restore_sharding(placement)
    if parallel.is_primary():
        rundir.set_aside_strays(dirs)
    parallel.barrier("gancli: strays set aside")
    runs = checkpoint.load_common(dirs, lambda c, m: parallel.with_sharding(steps.abstract_state(dataclasses.replace(game, config=c)), where))
    step = int(runs[0].state["step"])
    stored = runs[0].config
    if len(dirs) > 1:
        stored = whole_run_config(stored, int(dirs[0].name[5:]), len(dirs))
    conflicts = differences(game.config, stored, ignore=RESUMABLE) if runs[0].skipped else []
    if conflicts:
        raise GancliError(
            f"{runs[0].path}: step {step}, the newest checkpoint that restores, was trained with another config than "
            f"the newest one's ({'; '.join(conflicts)}): to resume from step {step}, move the newer ones out of "
            f"{runs[0].path / rundir.CHECKPOINTS}"
        )
    if parallel.is_primary():
        rundir.set_aside(dirs, step)
    parallel.barrier("gancli: checkpoints set aside")
    parts = [r.metadata.get("partial_epoch") for r in runs]
    partial = None
    if parts[0] is not None:
        try:
            sums = [list(p["sums"]) for p in parts]
            partial = {"sums": sums, "iters": int(parts[0]["iters"]), "seconds": float(parts[0]["seconds"])}
        except (TypeError, KeyError, ValueError):
            raise GancliError(f"{runs[0].path}: step {step} has a partial_epoch record gancli cannot read") from None
    return _stack([r.state for r in runs], len(runs)), partial, runs[0].metadata.get(streaming.STATE_KEY)


def _stream_source(config: RunConfig, data_dir, devices: int | None, stream: bool, reporter: Reporter):
    """The training split's rows on disk when the run streams them (gancli.streaming): asked with stream, or when
    they are a prepared set too big for the device (streaming.STREAM_SHARE); None when they go on the device."""
    if not stream:
        nbytes = data.prepared_bytes(config.dataset, config.train_split, data_dir)
        big, reason = (False, "") if nbytes is None else streaming.too_big(nbytes)
        if not big:
            return None
        why = f"{config.dataset} streams from disk: {reason}"
    else:
        why = "--stream"
    if problem := streaming.refusal(config, devices, why):
        if not stream:  # as before streaming existed: on the device, which may not hold it
            reporter.message(f"warning: {problem}; the training set goes on the device instead")
            return None
        raise GancliError(problem)
    source = data.source(config.dataset, config.train_split, data_dir)
    reporter.message(f"streaming {config.dataset} from disk (--stream)" if stream else why)
    return source


def _stack(states: list, seeds: int):
    if seeds == 1:
        return states[0]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
