"""Drawing from a trained generator: samples, nearest training neighbours, latent interpolation."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancli import checkpoint, steps
from gancli.config import RunConfig
from gancli.errors import GancliError
from gancli.files import atomic_path

BATCH = 10_000  # samples per compiled call: bounds memory for any n


def game_of(config: RunConfig, metadata: dict) -> steps.Game:
    """The static game a checkpoint was trained in, from its own config and metadata."""
    try:
        shape, n = tuple(int(d) for d in metadata["data_shape"]), int(metadata["n_train"])
    except (KeyError, TypeError, ValueError):
        shape, n = (), 0
    if not shape or min(shape) < 1 or n < 1:
        raise GancliError("the checkpoint's metadata has no valid data_shape/n_train: not written by 'gancli train'")
    return steps.Game(config, shape, n)


def restore(path: Path) -> checkpoint.Run:
    """The latest checkpoint of a run folder, with its state."""
    return checkpoint.load_run(path, lambda c, m: steps.abstract_state(game_of(c, m)))


@lru_cache(maxsize=8)
def _generator_fn(game: steps.Game):
    return jax.jit(game.generator.apply)


def latents(game: steps.Game, n: int, seed: int) -> jax.Array:
    """n latent vectors from the run's prior; the first m of them are the same for any n >= m."""
    if n < 1:
        raise GancliError(f"the number of samples must be >= 1 (got {n})")
    key = jax.random.PRNGKey(seed)
    parts = [game.noise(jax.random.fold_in(key, i), BATCH) for i in range(-(-n // BATCH))]
    return jnp.concatenate(parts)[:n]


def decode(run: checkpoint.Run, z) -> np.ndarray:
    """G(z) for any number of z, in batches; float32 shaped like the data."""
    if run.state is None:
        run = restore(run.path)
    game = game_of(run.config, run.metadata)
    g = _generator_fn(game)
    z = jnp.asarray(z)
    out = [np.asarray(g(run.state["g"], z[i : i + BATCH])) for i in range(0, z.shape[0], BATCH)]
    return np.concatenate(out).astype(np.float32)


def generate(run: checkpoint.Run, n: int, seed: int = 0) -> np.ndarray:
    """n samples from the run's generator, float32 shaped (n, *data_shape)."""
    game = game_of(run.config, run.metadata)
    return decode(run, latents(game, n, seed))


def discriminate(run: checkpoint.Run, x) -> np.ndarray:
    """D(x) in (0, 1) of the run's discriminator, without dropout (as at test time)."""
    if run.state is None:
        run = restore(run.path)
    game = game_of(run.config, run.metadata)
    logits = jax.jit(game.discriminator.apply)(run.state["d"], jnp.asarray(x, jnp.float32))
    return np.asarray(jax.nn.sigmoid(logits))


@jax.jit
def _nearest_chunk(x, train, train_sq):
    # Full float32 matmul: TF32 or bf16 would swamp the small differences between close images.
    dots = jnp.matmul(x, train.T, precision=jax.lax.Precision.HIGHEST)
    d2 = jnp.maximum(jnp.sum(x * x, axis=1, keepdims=True) + train_sq[None, :] - 2.0 * dots, 0.0)
    idx = jnp.argmin(d2, axis=1)
    return idx, jnp.sqrt(jnp.take_along_axis(d2, idx[:, None], axis=1)[:, 0])


def nearest(samples: np.ndarray, train: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Index of and pixel L2 distance to each sample's nearest training example."""
    x = jnp.asarray(samples.reshape(samples.shape[0], -1))
    t = jnp.asarray(train.reshape(train.shape[0], -1))
    t_sq = jnp.sum(t * t, axis=1)
    idx, dist = zip(*(_nearest_chunk(x[i : i + chunk], t, t_sq) for i in range(0, x.shape[0], chunk)))
    return np.concatenate([np.asarray(i) for i in idx]), np.concatenate([np.asarray(d) for d in dist])


# --- What `gancli sample` writes: arrays in an npz and a PNG beside it. ---

GRID_MAX = 100  # pictures show at most this many samples (rows, for interpolation); the npz holds them all
POINTS_MAX = 10_000  # points in a toy-data scatter plot


def draw(run: checkpoint.Run, n: int, seed: int) -> dict[str, np.ndarray]:
    """n samples and their latents, as the arrays the npz stores."""
    game = game_of(run.config, run.metadata)
    z = latents(game, n, seed)
    return {"samples": decode(run, z), "z": np.asarray(z, np.float32), **_stamp(run, seed)}


def with_nearest(drawn: dict[str, np.ndarray], train: np.ndarray) -> dict[str, np.ndarray]:
    """drawn plus each sample's nearest training image: its index and pixel L2 distance."""
    if tuple(train.shape[1:]) != tuple(drawn["samples"].shape[1:]):
        raise GancliError(
            f"the training data is shaped {tuple(train.shape[1:])} but the generator makes "
            f"{tuple(drawn['samples'].shape[1:])}: not the data this checkpoint was trained on"
        )
    idx, dist = nearest(drawn["samples"], train)
    return {**drawn, "nearest_index": idx.astype(np.int64), "nearest_distance": dist.astype(np.float32)}


def interpolation_latents(game: steps.Game, rows: int, steps_: int, seed: int) -> jax.Array:
    """(rows, steps_, z_dim) latents: a straight line between two draws per row (the paper's Figure 3)."""
    if steps_ < 2:
        raise GancliError(f"--interpolate needs at least 2 steps (got {steps_})")
    ends = latents(game, 2 * rows, seed).reshape(rows, 2, -1)
    t = jnp.linspace(0.0, 1.0, steps_)[None, :, None]
    return (1 - t) * ends[:, :1] + t * ends[:, 1:]


def draw_interpolation(run: checkpoint.Run, rows: int, steps_: int, seed: int) -> dict[str, np.ndarray]:
    """rows x steps_ samples along lines in z, with the latents and the interpolation weights t."""
    game = game_of(run.config, run.metadata)
    z = interpolation_latents(game, rows, steps_, seed)
    out = decode(run, z.reshape(rows * steps_, -1))
    return {
        "samples": out.reshape((rows, steps_) + out.shape[1:]),
        "z": np.asarray(z, np.float32),
        "t": np.linspace(0.0, 1.0, steps_, dtype=np.float32),
        **_stamp(run, seed),
    }


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
        tiles = pair_tiles(shown, train[drawn["nearest_index"][: len(shown)]])
        images.save_grid(tiles, path, cols=min(10, math.ceil(math.sqrt(len(tiles)))))
    elif samples.ndim == 4:
        images.save_grid(samples[:GRID_MAX], path)
    else:
        images.save_samples(samples[:POINTS_MAX], path, f"{len(samples):,} samples")


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


def output_paths(npz: Path, force: bool) -> tuple[Path, Path]:
    """The npz path and the PNG beside it, checked before any work: .npz, not a folder, not clobbering unless forced."""
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
    for parent in (npz.parent, *npz.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise GancliError(f"cannot write {npz}: {parent} is a file, not a folder")
            break
    return npz, png
