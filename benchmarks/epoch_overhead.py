"""The fixed cost an epoch adds to its iterations: the metrics line, the sample picture and the checkpoint.

    python benchmarks/epoch_overhead.py                   # toy preset on ring8, 20 epochs, on the current device
    python benchmarks/epoch_overhead.py --epochs 50 --rounds 5

Each case is a whole `gancli train` (train.train) on the same run, timed from the end of compilation to the
return (its last checkpoint and pictures complete on disk), against the bare compiled chunks of the same
epochs with no host work at all. A second figure is more direct and less disturbed by other work on a shared
machine: how long the device sat idle between the end of one chunk and the dispatch of the next (what the
host did on the device's critical path), per epoch. The cases:

- "a save every epoch, synchronous": --ckpt-every 1 with each save waited for before the loop goes on, as
  gancli saved before it used Orbax's background saves (the earlier default);
- "a save every epoch, in the background": --ckpt-every 1;
- "defaults (every 5 minutes: at the end)": what `gancli train ring8` does now.

Rounds are interleaved and each case's best kept, so that every case gets the same share of a shared
machine's slow spells.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp

from gancli import checkpoint, data, steps, train
from gancli.config import preset, with_overrides

# name: (what it is, config overrides, whether each save is waited for)
CASES = {
    "sync": ("a save every epoch, synchronous", {"ckpt_every": 1}, True),
    "background": ("a save every epoch, in the background", {"ckpt_every": 1}, False),
    "defaults": ("defaults (every 5 minutes: at the end)", {}, False),
}


class Clock(train.Silent):
    """Notes when the loop starts: after loading and compiling."""

    def start(self, total, done, epoch):
        self.started = time.perf_counter()


@contextmanager
def idle_meter():
    """Yields a list that collects, for each chunk after the first, the seconds between the end of the chunk
    before it (seen by a thread that waits on its metrics) and its own dispatch."""
    compiled, gaps, ended = steps.compiled_chunk, [], [None]

    def metered(*args, **kwargs):
        fn = compiled(*args, **kwargs)

        def run(state, data_on_device):
            now = time.perf_counter()
            if ended[0] is not None:
                gaps.append(max(0.0, now - ended[0].result()))
            state, metrics = fn(state, data_on_device)
            ended[0] = watcher.submit(lambda: (jax.block_until_ready(metrics), time.perf_counter())[1])
            return state, metrics

        return run

    with ThreadPoolExecutor(max_workers=1) as watcher:
        steps.compiled_chunk = metered
        try:
            yield gaps
        finally:
            steps.compiled_chunk = compiled


@contextmanager
def synchronous_saves():
    """Each checkpoint waited for as soon as it is handed to Orbax."""
    save = checkpoint.Writer.save

    def save_and_wait(self, *args, **kwargs):
        save(self, *args, **kwargs)
        self.wait()

    checkpoint.Writer.save = save_and_wait
    try:
        yield
    finally:
        checkpoint.Writer.save = save


def train_seconds(config, folder: Path, sync: bool) -> tuple[float, float]:
    """Wall seconds of the loop, and seconds the device sat idle between chunks."""
    clock = Clock()
    with synchronous_saves() if sync else nullcontext(), idle_meter() as gaps:
        train.train(config, folder, reporter=clock)
    return time.perf_counter() - clock.started, sum(gaps)


def bare_seconds(config, images) -> float:
    """The same epochs as compiled chunks alone, dispatched back to back and waited for once."""
    game = steps.Game(config, tuple(images.shape[1:]), images.shape[0])
    chunk = config.chunk or train.auto_chunk(game)
    on_device = jax.device_put({"image": jnp.asarray(images), "label": jnp.zeros(images.shape[0], jnp.int32)})
    state = steps.init_state(game, config.seed, images)
    lengths = [min(chunk, game.iters_per_epoch - i) for i in range(0, game.iters_per_epoch, chunk)] * config.epochs
    for length in set(lengths):  # compiled before the clock starts
        steps.compiled_chunk(game, 1, length)
    t0 = time.perf_counter()
    for length in lengths:
        state, metrics = steps.compiled_chunk(game, 1, length)(state, on_device)
    jax.block_until_ready((state, metrics))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ring8")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each case's best is kept")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES), help="which cases to run")
    args = parser.parse_args()
    device = jax.devices()[0]
    versions = {p: metadata.version(p) for p in ("gancli", "jax", "orbax-checkpoint")}
    print(f"device: {device.platform} {device.device_kind}; {', '.join(f'{k} {v}' for k, v in versions.items())}")
    base = with_overrides(preset("toy", args.dataset), epochs=args.epochs)
    images, _ = data.load(args.dataset, "train")
    game = steps.Game(base, tuple(images.shape[1:]), images.shape[0])
    print(f"{args.dataset}, toy preset: {args.epochs} epochs of {game.iters_per_epoch} iterations, "
          f"chunks of {base.chunk or train.auto_chunk(game)}; best of {args.rounds} interleaved rounds\n")
    best = {name: float("inf") for name in ("bare", *args.cases)}
    idle = {name: float("inf") for name in args.cases}
    with tempfile.TemporaryDirectory() as tmp:
        train.train(with_overrides(base, epochs=1), Path(tmp) / "warm-up")  # compiles what every case shares
        for r in range(args.rounds):
            best["bare"] = min(best["bare"], bare_seconds(base, images))
            for name in args.cases:
                _, overrides, sync = CASES[name]
                seconds, waited = train_seconds(with_overrides(base, **overrides), Path(tmp) / f"{name}-{r}", sync)
                best[name], idle[name] = min(best[name], seconds), min(idle[name], waited)
    bare = best["bare"]
    per_epoch = lambda seconds: 1000 * seconds / args.epochs
    print(f"{'case':<42}{'wall (s)':>10}{'per epoch (ms)':>16}{'over the bare chunks (ms/epoch)':>33}"
          f"{'device idle between chunks (ms/epoch)':>39}")
    print(f"{'compiled chunks alone, no host work':<42}{bare:>10.2f}{per_epoch(bare):>16.1f}{'-':>33}{'-':>39}")
    for name in args.cases:
        wall = best[name]
        print(f"{CASES[name][0]:<42}{wall:>10.2f}{per_epoch(wall):>16.1f}{per_epoch(wall - bare):>33.1f}"
              f"{per_epoch(idle[name]):>39.1f}")


if __name__ == "__main__":
    main()
