"""Drawing from a trained generator: samples, nearest training neighbours, latent interpolation."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancli import checkpoint, conditional, steps
from gancli.config import SEEDS, RunConfig
from gancli.errors import GancliError
from gancli.knn import TrainIndex
from gancli.files import atomic_path, check_count, check_memory, check_writable

BATCH = 10_000  # samples per compiled call; the host arrays are filled batch by batch, never concatenated


def game_of(config: RunConfig, metadata: dict) -> steps.Game:
    """The static game a checkpoint was trained in, from its own config and metadata."""
    try:
        shape, n = tuple(int(d) for d in metadata["data_shape"]), int(metadata["n_train"])
    except (KeyError, TypeError, ValueError):
        shape, n = (), 0
    if not shape or min(shape) < 1 or n < 1:
        raise GancliError("the checkpoint's metadata has no valid data_shape/n_train: not written by 'gancli train'")
    return steps.Game(config, shape, n)


def restore(path: Path, ema: bool = True) -> checkpoint.Run:
    """The latest checkpoint of a run folder, with its state; with ema=False the moving average of G is dropped,
    so that everything drawn from the run comes from the raw generator."""
    run = checkpoint.load_run(path, lambda c, m: steps.abstract_state(game_of(c, m)))
    if not ema:
        run.state.pop("g_ema", None)
    return run


def ema_decay(run: checkpoint.Run) -> float | None:
    """The decay of the moving average of G that draws from this run use, or None when they use G itself."""
    return run.config.ema if run.state is not None and "g_ema" in run.state else None


GENERATOR_KEYS = ("g", "g_ema", "g_stats", "g_spectral")  # what sampling needs of a state: never the optimisers'


@lru_cache(maxsize=8)
def _generator_fn(game: steps.Game):
    return jax.jit(lambda state, z, label: steps.sample(game, state, z, label))


def check_draw(run: checkpoint.Run, n: int, nearest: bool = False) -> int:
    """Before drawing: n >= 1, and n samples with their latents (float32; with nearest, their neighbours' index and
    distance) fit in memory. Returns the bytes they take, about the size of their npz (np.savez does not compress)."""
    check_count(n, "the number of samples")
    game = game_of(run.config, run.metadata)
    per_sample = 4 * (math.prod(game.data_shape) + game.config.generator.z_dim) + (12 if nearest else 0)
    per_sample += 8 if game.config.conditional else 0  # each sample's label (int64)
    check_memory(n, per_sample, "samples")
    return n * per_sample


def latents(game: steps.Game, n: int, seed: int) -> np.ndarray:
    """n latent vectors from the run's prior, float32; the first m of them are the same for any n >= m."""
    if not 0 <= seed < SEEDS:  # JAX would take seed 2**32 as seed 0, and fail past 2**63
        raise GancliError(f"--seed must be in [0, {SEEDS - 1:,}] (got {seed})")
    key = jax.random.PRNGKey(seed)
    z = np.empty((n, game.config.generator.z_dim), np.float32)
    for i in range(0, n, BATCH):
        z[i : i + BATCH] = game.noise(jax.random.fold_in(key, i // BATCH), BATCH)[: n - i]
    return z


def decode(run: checkpoint.Run, z, labels=None) -> np.ndarray:
    """G(z) (G(z, labels) for a conditional run) for any number of z, in batches; float32 shaped like the data."""
    if run.state is None:
        run = restore(run.path)
    game = game_of(run.config, run.metadata)
    g = _generator_fn(game)
    state = {k: v for k, v in run.state.items() if k in GENERATOR_KEYS}
    out = np.empty((len(z), *game.data_shape), np.float32)
    for i in range(0, len(z), BATCH):
        out[i : i + BATCH] = g(state, jnp.asarray(z[i : i + BATCH]), None if labels is None else jnp.asarray(labels[i : i + BATCH]))
    return out


def count_nonfinite(samples: np.ndarray) -> int:
    """How many entries along the first axis hold NaN or inf, a batch at a time (no temporary as large as all)."""
    return sum(int((~np.isfinite(part.reshape(len(part), -1)).all(axis=1)).sum())
               for part in (samples[i : i + BATCH] for i in range(0, len(samples), BATCH)))


def discriminate(run: checkpoint.Run, x) -> np.ndarray:
    """D(x) in (0, 1) of the run's discriminator, without dropout (as at test time)."""
    if run.state is None:
        run = restore(run.path)
    game = game_of(run.config, run.metadata)
    outputs = jax.jit(lambda state, x: steps.discriminate(game, state, x))(run.state, jnp.asarray(x, jnp.float32))
    return np.asarray(jax.nn.sigmoid(outputs["logit"]))


# --- What `gancli sample` writes: arrays in an npz and a PNG beside it. ---

GRID_MAX = 100  # pictures show at most this many samples (rows, for interpolation); the npz holds them all
POINTS_MAX = 10_000  # points in a toy-data scatter plot


def draw(run: checkpoint.Run, n: int, seed: int, label: int | None = None) -> dict[str, np.ndarray]:
    """n samples and their latents, as the arrays the npz stores; for a conditional run, their labels too (all
    `label`, or the classes in turn)."""
    check_draw(run, n)
    conditional.check_label(run.config, label, str(run.path))
    z = latents(game_of(run.config, run.metadata), n, seed)
    labels = conditional.class_labels(run.config, n, label)
    return {"samples": decode(run, z, labels), "z": z, **_labelled(labels), **_stamp(run, seed)}


def with_nearest(drawn: dict[str, np.ndarray], train: np.ndarray, progress=None) -> dict[str, np.ndarray]:
    """drawn plus each sample's nearest training image: its index and pixel L2 distance; progress(done, total) as
    the samples are searched."""
    if tuple(train.shape[1:]) != tuple(drawn["samples"].shape[1:]):
        raise GancliError(
            f"the training data is shaped {tuple(train.shape[1:])} but the generator makes "
            f"{tuple(drawn['samples'].shape[1:])}: not the data this checkpoint was trained on"
        )
    idx, dist = TrainIndex(train).nearest(drawn["samples"], progress=progress)
    return {**drawn, "nearest_index": idx.astype(np.int64), "nearest_distance": dist.astype(np.float32)}


def interpolation_latents(game: steps.Game, rows: int, steps_: int, seed: int) -> np.ndarray:
    """(rows, steps_, z_dim) latents: a straight line between two draws per row (the paper's Figure 3)."""
    if steps_ < 2:
        raise GancliError(f"--interpolate needs at least 2 steps (got {steps_})")
    ends = latents(game, 2 * rows, seed).reshape(rows, 2, -1)
    t = np.linspace(0.0, 1.0, steps_, dtype=np.float32)[None, :, None]
    return (1 - t) * ends[:, :1] + t * ends[:, 1:]


def draw_interpolation(run: checkpoint.Run, rows: int, steps_: int, seed: int, label: int | None = None) -> dict[str, np.ndarray]:
    """rows x steps_ samples along lines in z, with the latents and the interpolation weights t. A conditional run
    keeps each row's label fixed: `label`, or the classes in turn (row r of class r % n_classes); labels are
    stored per sample, (rows, steps_)."""
    check_draw(run, rows * steps_)
    conditional.check_label(run.config, label, str(run.path))
    z = interpolation_latents(game_of(run.config, run.metadata), rows, steps_, seed)
    row_labels = conditional.class_labels(run.config, rows, label)
    labels = None if row_labels is None else np.repeat(row_labels[:, None], steps_, axis=1)
    out = decode(run, z.reshape(rows * steps_, -1), None if labels is None else labels.reshape(-1))
    return {
        "samples": out.reshape((rows, steps_) + out.shape[1:]),
        "z": z,
        "t": np.linspace(0.0, 1.0, steps_, dtype=np.float32),
        **_labelled(labels),
        **_stamp(run, seed),
    }


def _labelled(labels) -> dict[str, np.ndarray]:
    """The npz's "labels" entry (int64), only for a conditional run's draws."""
    return {} if labels is None else {"labels": np.asarray(labels, np.int64)}


def _stamp(run: checkpoint.Run, seed: int) -> dict[str, np.ndarray]:
    return {"seed": np.asarray(seed, np.int64), "step": np.asarray(int(run.metadata.get("step", -1)), np.int64)}


def pair_tiles(samples: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(N, H, 2W + 4, C) tiles: sample | grey line | nearest training image | white gap (sets pairs apart)."""
    n, h, _, c = samples.shape
    line = np.full((n, h, 1, c), 0.5, np.float32)
    gap = np.ones((n, h, 3, c), np.float32)
    return np.concatenate([samples, line, neighbours, gap], axis=2)


def save_picture(drawn: dict[str, np.ndarray], path: Path, train: np.ndarray | None = None) -> Path:
    """The PNG for drawn arrays: a sample grid, (sample | nearest) pairs, or one row per interpolation."""
    try:
        with atomic_path(path) as tmp:
            _draw(drawn, tmp, train)
    except OSError as e:
        raise GancliError(f"cannot write {path}: {e.strerror or e}") from None
    return Path(path)


def _draw(drawn: dict[str, np.ndarray], path: Path, train: np.ndarray | None) -> None:
    from gancli import images

    samples = drawn["samples"]
    if "t" in drawn:  # interpolation: (rows, steps, *shape)
        rows = samples[:GRID_MAX]
        if rows.ndim == 5:
            images.save_grid(rows.reshape((-1,) + rows.shape[2:]), path, cols=rows.shape[1])
        else:
            images.save_samples(rows.reshape((-1,) + rows.shape[2:]), path, "latent interpolation")
    elif samples.ndim == 4 and "nearest_index" in drawn and train is not None:
        shown = samples[:GRID_MAX]
        # Each side scaled for display before the grey line and white gap go in (e.g. contrast-normalised data).
        tiles = pair_tiles(images.for_display(shown), images.for_display(train[drawn["nearest_index"][: len(shown)]]))
        if _mixed(drawn, len(shown)):  # one row per class
            tiles, cols = images.class_rows(tiles, drawn["labels"][: len(shown)])
            images.save_grid(tiles, path, cols)
        else:
            images.save_grid(tiles, path, cols=min(10, math.ceil(math.sqrt(len(tiles)))))
    elif samples.ndim == 4:
        shown = samples[:GRID_MAX]
        images.save_samples(shown, path, labels=drawn["labels"][: len(shown)] if _mixed(drawn, len(shown)) else None)
    else:
        shown = samples[:POINTS_MAX]
        images.save_samples(shown, path, f"{len(samples):,} samples", labels=drawn["labels"][: len(shown)] if "labels" in drawn else None)


def _mixed(drawn: dict[str, np.ndarray], n: int) -> bool:
    """Whether the first n drawn samples ask for more than one class (then a picture gives each class a row)."""
    return "labels" in drawn and len(np.unique(drawn["labels"][:n])) > 1


def save_npz(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """Write arrays to path atomically (a temporary file in the same folder, then a rename); makes the folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GancliError(f"cannot create {path.parent}: {e.strerror or e}") from None
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name
            np.savez(f, **arrays)
    except OSError as e:
        raise GancliError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def output_paths(npz: Path, force: bool, need_bytes: int = 0) -> tuple[Path, Path]:
    """The npz path and the PNG beside it, checked before any work: .npz, not a folder, not clobbering unless
    forced, in a folder that can be written (or made) with need_bytes free."""
    npz = Path(npz)
    if npz.is_dir():
        raise GancliError(f"{npz} is a folder: give --out a file path ending in .npz")
    if npz.suffix != ".npz":
        raise GancliError(f"--out {npz} must end in .npz (the PNG is written beside it with the same stem)")
    png = npz.with_suffix(".png")
    for p in (npz, png):
        if p.is_dir():
            raise GancliError(f"{p} is a folder: give --out a file path ending in .npz")
        if p.exists() and not force:
            raise GancliError(f"{p} already exists: pass --force to overwrite it, or --out to write elsewhere")
    check_writable(npz.parent, need_bytes)
    return npz, png
