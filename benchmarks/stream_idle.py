"""How long the device waits for data per step when a run streams (gancli.streaming), with and without prefetching.

    python benchmarks/stream_idle.py                        # 3,000 64x64 colour PNGs, the paper's MLP shrunk
    python benchmarks/stream_idle.py --images 5000 --preset dcgan --chunk 8

It writes a folder of --images random 64x64 PNGs into a temporary folder, builds it with gancli (data.use_folder)
and runs --iters iterations of a streamed run in the training loop's pattern: wait for the chunk's results, then
take the next chunk's batches from the feed (streaming.Feed) and dispatch it. The device is idle from the moment a
chunk's results are ready to the dispatch of the next one; that gap, over the chunk's iterations, is the idle time
per step. With prefetch, Grain's threads read rows ahead and one thread assembles and places the next chunk while
the device runs the current one; without it, every row is read when the chunk is asked for. The first chunk (the
pipeline filling) is left out of the means.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from gancli import data, steps, streaming
from gancli.config import preset, with_overrides


def write_folder(root: Path, images: int, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"im{i:05d}.png", compress_level=1)


def run(game, source, iters: int, chunk: int, prefetch: bool) -> dict:
    state = steps.init_state(game, 0)
    program = steps.compiled_streamed_chunk(game, chunk)
    total = iters
    idle, busy = [], []
    with streaming.Feed(game, source, state["key"], 0, total, lambda s: chunk, prefetch=prefetch) as feed:
        ready = time.perf_counter()
        step = 0
        while step + chunk <= total:
            batches = feed.take(step, chunk)
            dispatched = time.perf_counter()
            idle.append((dispatched - ready) / chunk)
            state, metrics = program(state, batches)
            jax.block_until_ready(metrics)
            ready = time.perf_counter()
            busy.append((ready - dispatched) / chunk)
            step += chunk
    idle, busy = np.asarray(idle[1:]), np.asarray(busy[1:])
    return {"idle_ms": 1e3 * idle.mean(), "idle_max_ms": 1e3 * idle.max(), "step_ms": 1e3 * busy.mean(),
            "idle_share": idle.sum() / (idle.sum() + busy.sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--iters", type=int, default=40)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_folder(Path(tmp) / "pictures", args.images)
        name = data.use_folder(Path(tmp) / "pictures", Path(tmp) / "tfds", image_size=64, channels=3)
        print(f"{args.images} PNGs written and built in {time.perf_counter() - t0:.1f} s: {name}")
        source = data.source(name, "train", Path(tmp) / "tfds")
        small = {"generator.hidden": (256,), "discriminator.units": (128,), "discriminator.pieces": 2} if args.preset == "paper" else {}
        config = with_overrides(preset(args.preset, "tiny"), dataset=name, batch_size=args.batch_size, k=1, **small)
        game = steps.Game(config, source.shape, len(source), "uint8")
        print(f"{len(source)} training images of {source.shape}, batch {args.batch_size}, chunks of {args.chunk}, "
              f"{args.iters} iterations, preset {args.preset}, on {jax.devices()[0].platform}")
        for prefetch in (False, True):
            r = run(game, source, args.iters, args.chunk, prefetch)
            print(f"prefetch {'on ' if prefetch else 'off'}: device idle {r['idle_ms']:.2f} ms per step (max "
                  f"{r['idle_max_ms']:.2f}), compute {r['step_ms']:.2f} ms per step, idle {r['idle_share']:.1%} of the time")


if __name__ == "__main__":
    main()
