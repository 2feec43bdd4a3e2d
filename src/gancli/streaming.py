"""Streaming a training set that does not fit on the device: Grain reads the prepared split's rows from disk, the
host assembles each compiled chunk's batches, and the device never holds more than a chunk. The only importer of
Grain.

A run streams when its training split's uint8 bytes exceed STREAM_SHARE of one device's memory (on a CPU: of the
memory the machine has available), or when `train --stream` asks. Grain's dataset is indexed by the run's iteration:
iteration t of epoch e = t // iters_per_epoch draws the examples of the epoch's order that the in-memory chunk
draws, jax.random.permutation(fold_in(fold_in(key, ORDER), e), n_train), so a streamed run trains bit for bit as
one with the set on the device, and either can resume the other. The iterator's state (Grain's, beside the step,
epoch and position in the epoch) goes into every checkpoint's metadata; a resume sets it and goes on exactly.

Prefetching: Grain's threads read and decode rows ahead of the loop (ReadOptions), and one host thread assembles
the next chunk's [length, k, B, ...] arrays and puts them on the device while the device runs the current chunk, so
the device waits only for what was not ready.

Not streamed (refused in one line): several seeds in one program (each seed has its own order), several devices,
and objectives that draw extra batches (gancli.streams: the semi-supervised labelled batches, improved-gan's own G
batch).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import jax
import numpy as np

from gancli import parallel, pixels, steps, streams
from gancli.config import RunConfig
from gancli.errors import GancliError
from gancli.files import human_bytes

STREAM_SHARE = 0.5  # stream when the training images' bytes exceed this share of one device's memory
READ_THREADS, READ_BUFFER = 8, 64  # Grain's reading threads and the iterations they read ahead
STATE_KEY = "stream"  # the checkpoint metadata's entry holding the iterator's state


def too_big(nbytes: int) -> tuple[bool, str]:
    """(whether a training set of nbytes uint8 bytes is above the threshold, the reason in words)."""
    have, where = parallel.device_memory()
    if have is None:
        return False, ""
    return nbytes > STREAM_SHARE * have, (f"its training images take {human_bytes(nbytes)}, more than "
                                          f"{STREAM_SHARE:.0%} of what {where.format(human_bytes(have))}")


def refusal(config: RunConfig, devices: int | None, why: str) -> str | None:
    """Why this run cannot stream (why: what makes it stream, for the line), or None when it can."""
    if config.seeds > 1:
        return f"{why}: a streamed run trains one seed (each seed has its own order); drop --seeds"
    if streams.of(config):
        names = ", ".join(s.name for s in streams.of(config))
        return f"{why}: a streamed run draws no extra batches, which this run's objectives need ({names})"
    if devices not in (None, 1) or jax.process_count() > 1:
        return f"{why}: a streamed run trains on one device; pass --devices 1"
    if config.model == "ssl-mlp":
        return f"{why}: model ssl-mlp's init needs the whole training set in memory"
    return None


def epoch_order(key, epoch: int, n: int) -> np.ndarray:
    """The epoch's permutation of the training set: what steps.chunk computes on the device."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, steps.ORDER), epoch), n))


def init_images(source, config: RunConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(the first training rows as floats, for a model's data-dependent init; the per-pixel mean of the whole set in
    float64 for G's output bias, None when the config does not use it), read a chunk at a time."""
    first = pixels.to_unit(source.take(range(min(len(source), 2 * 500)))[0])
    if not config.generator.output_bias_from_data:
        return first, None
    total = np.zeros(source.shape, np.float64)
    for start in range(0, len(source), 8192):
        total += pixels.TABLE[source.take(range(start, min(len(source), start + 8192)))[0]].astype(np.float64).sum(0)
    return first, total / len(source)


class Feed:
    """The batches of a streamed run, chunk by chunk, from iteration `start` of a run of `total` iterations.

    take(step, length) gives iterations [step, step + length) on the device as steps.streamed_chunk takes them;
    state(step) the iterator's state once the chunk ending at `step` is taken, for the checkpoint at that step.
    next_length(step) is the loop's chunk schedule, so the next chunk can be assembled while the device runs one.
    """

    def __init__(self, game: steps.Game, source, key, start: int, total: int, next_length: Callable[[int], int],
                 saved: dict | None = None, prefetch: bool = True):
        import grain  # here only: a run that does not stream never imports it

        self.game, self.source, self.total, self.next_length = game, source, total, next_length
        self._key = np.asarray(key)
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        c = game.config
        self._per_iter = c.k * c.batch_size
        options = grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=READ_BUFFER) if prefetch else (
            grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
        dataset = grain.MapDataset.range(total).map(self._iteration)
        self._iterator = iter(dataset.to_iter_dataset(options))
        if saved is not None:
            if saved.get("step") != start:
                raise GancliError(f"the checkpoint's data stream is at iteration {saved.get('step')!r}, its state at "
                                  f"{start}: the checkpoint is damaged")
            self._iterator.set_state(saved["iterator"])
        elif start:  # a checkpoint of a run trained in memory: the same order, from its step
            self._iterator.set_state({"next_index": start})
        self._states: dict[int, dict] = {}
        self._pool = ThreadPoolExecutor(max_workers=1) if prefetch else None
        self._pending = None  # ((step, length), future) of the chunk being assembled
        self.waits: list[float] = []  # seconds each take() blocked the loop

    def _order(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._orders:
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}  # keep two epochs at most
                self._orders[epoch] = epoch_order(self._key, epoch, self.game.n_train)
            return self._orders[epoch]

    def _iteration(self, t: int) -> dict:
        """Iteration t's k batches, as the in-memory chunk gathers them."""
        c, ipe = self.game.config, self.game.iters_per_epoch
        epoch, i = divmod(int(t), ipe)
        at = self._order(epoch)[i * self._per_iter : (i + 1) * self._per_iter]
        images, labels = self.source.take(at)
        return {"image": images.reshape((c.k, c.batch_size) + self.game.data_shape),
                "label": labels.astype(np.int32).reshape(c.k, c.batch_size)}

    def _assemble(self, step: int, length: int):
        rows = [next(self._iterator) for _ in range(length)]
        self._states[step + length] = self._iterator.get_state()
        batches = {k: np.stack([r[k] for r in rows]) for k in ("image", "label")}
        return jax.block_until_ready(jax.device_put(batches))

    def take(self, step: int, length: int):
        t0 = time.perf_counter()
        if self._pending is not None and self._pending[0] == (step, length):
            batches = self._pending[1].result()
        else:
            if self._pending is not None:
                raise RuntimeError(f"the stream was asked for iterations {step}+{length}, not {self._pending[0]}")
            batches = self._assemble(step, length)
        self._pending = None
        self.waits.append(time.perf_counter() - t0)
        after = step + length
        if self._pool is not None and after < self.total:
            nxt = (after, self.next_length(after))
            self._pending = (nxt, self._pool.submit(self._assemble, *nxt))
        return batches

    def state(self, step: int) -> dict:
        """The checkpoint's record of the stream at `step`: where Grain's iterator is, and the epoch and position."""
        ipe = self.game.iters_per_epoch
        self._states = {s: v for s, v in self._states.items() if s >= step}
        return {"step": step, "epoch": step // ipe, "position": step % ipe, "iterator": self._states[step]}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
