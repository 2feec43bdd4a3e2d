"""Training speed of the CIFAR-10 models (cifar-fc, cifar-conv, dcgan) through gancli's compiled training.

    python benchmarks/conv_speed.py                      # 2,000 images, one epoch of each model, on this device
    python benchmarks/conv_speed.py --images 10000 --models cifar-conv

It writes a cifar-10-python.tar.gz in the real format (five data batches and a test batch of random pixels:
speed does not depend on the values) into a temporary folder, builds it with gancli's TFDS builder, loads the
training split (data_batch_1-4: 4/5 of --images) as cifar10_gcn (cifar-fc, cifar-conv, as the paper) or cifar10
(dcgan), and times one epoch of each full-size preset as train.py runs it: the epoch as one compiled chunk
(steps.compiled_chunk), the data on the device. Compilation is done ahead of time and timed apart; the epoch (or
its first --iters iterations, as one chunk) is then run --rounds times and the best round is reported (the least
disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import platform
import tarfile
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancli import data, steps
from gancli.config import preset
from gancli.data import cifar
from gancli.models import count_params

MODELS = {"cifar-fc": "cifar10_gcn", "cifar-conv": "cifar10_gcn", "dcgan": "cifar10"}


def write_archive(path: Path, images: int, seed: int = 0) -> Path:
    """A cifar-10-python.tar.gz of `images` training images in five batches, plus a test batch of a fifth of them."""
    rng = np.random.default_rng(seed)
    per = images // 5
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in cifar.BATCHES:
            batch = {"batch_label": name, "labels": rng.integers(0, 10, per).tolist(),
                     "data": rng.integers(0, 256, (per, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(per)]}
            raw = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def time_epoch(name: str, dataset: str, data_dir: Path, rounds: int, iters: int | None = None) -> dict:
    """Compile time and the best of `rounds` timed epochs (or chunks of `iters` iterations) of the full-size preset."""
    images, labels = data.load(dataset, "train", data_dir)
    game = steps.Game(preset(name, dataset), tuple(images.shape[1:]), len(images))
    on_device = jax.device_put({"image": jnp.asarray(images), "label": jnp.asarray(labels, jnp.int32)})
    state = steps.init_state(game, 0, images)
    params = (count_params(state["g"]), count_params(state["d"]))
    length = min(iters or game.iters_per_epoch, game.iters_per_epoch)
    t0 = time.perf_counter()
    fn = steps.compiled_chunk(game, 1, length)  # compiled ahead of time: the first call runs warm
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        state, metrics = fn(state, on_device)
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - t0)
    finite = all(bool(np.isfinite(np.asarray(v)).all()) for v in metrics.values())
    return {"model": name, "dataset": dataset, "batch": game.config.batch_size, "iters": length,
            "compile_s": compile_s, "epoch_s": best, "it_per_s": length / best,
            "img_per_s": length * game.config.batch_size / best, "params": params, "finite": finite}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the file's five training batches")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per model; the best is reported")
    parser.add_argument("--iters", type=int, default=None, help="time this many iterations instead of a whole epoch")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {jax.devices()[0].platform}:{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}, jax {jax.__version__}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = write_archive(Path(tmp) / cifar.ARCHIVE, args.images)
        data.use_file(archive, Path(tmp) / "tfds")
        print(f"file: {cifar.ARCHIVE} with {args.images:,} training images ({args.images * 4 // 5:,} in the train "
              f"split) and {args.images // 5:,} test images, {archive.stat().st_size / 1e6:.1f} MB")
        print(f"{'model':<11} {'data':<12} {'batch':>5} {'iters':>5} {'compile s':>9} {'timed s':>8} {'it/s':>7} "
              f"{'img/s':>7}  params G / D")
        for name in args.models:
            r = time_epoch(name, MODELS[name], Path(tmp) / "tfds", args.rounds, args.iters)
            print(f"{r['model']:<11} {r['dataset']:<12} {r['batch']:>5} {r['iters']:>5} {r['compile_s']:>9.1f} "
                  f"{r['epoch_s']:>8.2f} {r['it_per_s']:>7.2f} {r['img_per_s']:>7.0f}  "
                  f"{r['params'][0]:,} / {r['params'][1]:,}" + ("" if r["finite"] else "  NON-FINITE LOSSES"), flush=True)


if __name__ == "__main__":
    main()
