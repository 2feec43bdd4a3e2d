"""Training iterations per second: gancli's compiled chunks against a Python loop over one jitted step and
against a plain-JAX trainer written without gancli (benchmarks/plain_jax.py).

    python benchmarks/train_speed.py                 # paper preset, k=5, batch 1000 on the current device
    python benchmarks/train_speed.py --iters 100     # shorter timing windows (at most half an epoch: 250 here)
    python benchmarks/train_speed.py --scaling       # 1, 2, 4, ... devices side by side (gancli.parallel)

One iteration = k discriminator updates + 1 generator update. All paths run on the same device-resident
data (random MNIST-shaped pixels: speed does not depend on the values), in the same process, warm
(compiled first, then timed in 3 interleaved rounds, each path's best kept). The first two run gancli's
own update code; the plain-JAX one is the usual way to write the paper's model by hand, an epoch as one
lax.scan.
"""

from __future__ import annotations

import argparse
import time
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np

import plain_jax
from gancli import parallel, steps
from gancli.config import preset, with_overrides

REPEATS = 3  # timed windows per measurement; the best is reported (the least disturbed by other work)

CASES = {
    "paper (batch 100, k 1)": {},
    "k 5": {"k": 5},
    "batch 1000": {"batch_size": 1000},
}
# The parts of Salimans et al. (2016) and the EMA on the paper preset: timed against the paper preset itself.
PARTS = {
    "feature matching": {"g_loss": "feature-matching"},
    "minibatch discrimination 100x5": {"discriminator.minibatch": (100, 5)},
    "batch norm in G": {"generator.batchnorm": True},
    "batch norm in D": {"discriminator.batchnorm": True},
    "EMA of G 0.999": {"ema": 0.999},
    "hinge loss": {"d_loss": "hinge", "g_loss": "hinge"},
    "least-squares loss": {"d_loss": "least-squares", "g_loss": "least-squares"},
    "wgan-gp loss (lambda 10)": {"d_loss": "wgan-gp", "g_loss": "wgan-gp"},
    "relativistic loss": {"d_loss": "relativistic", "g_loss": "relativistic"},
    "R1 gamma 1": {"penalty.r1": 1.0},
    "R1 gamma 1, lazy 16": {"penalty.r1": 1.0, "penalty.lazy": 16},
    "R2 gamma 1": {"penalty.r2": 1.0},
    "spectral norm in D": {"spectral_norm": "d"},
    "spectral norm in D and G": {"spectral_norm": "both"},
    "DiffAugment translation,cutout": {"augment.policy": "translation,cutout"},
    "DiffAugment all three": {"augment.policy": "translation,cutout,color"},
    "ADA (target 0.6)": {"augment.policy": "translation,cutout", "augment.ada_target": 0.6},
}


def rates(paths: list, iters: int) -> list[float]:
    """Iterations/s of each (advance, carry) path, where advance(carry) -> carry runs `iters` iterations and
    waits for them: one warm-up call each, then REPEATS rounds in which every path is timed once, the best
    round kept. Interleaving the rounds gives every path the same share of a shared machine's slow spells."""
    carries = [advance(carry) for advance, carry in paths]
    best = [float("inf")] * len(paths)
    for _ in range(REPEATS):
        for i, (advance, _) in enumerate(paths):
            t0 = time.perf_counter()
            carries[i] = advance(carries[i])
            best[i] = min(best[i], time.perf_counter() - t0)
    return [iters / b for b in best]


def compiled_path(game, state, data, iters: int, seeds: int = 1):
    """gancli's path: `iters` iterations as one compiled lax.scan, state donated (vmapped over seeds)."""
    fn = steps.compiled_chunk(game, seeds, iters)

    def advance(state):
        state, m = fn(state, data)
        jax.block_until_ready(m)
        return state

    return advance, state


def python_loop_path(game, state, data, iters: int):
    """The common way: a Python for-loop dispatching one jitted iteration at a time."""
    c = game.config
    per = c.batch_size * c.k
    step = jax.jit(lambda st, xs: steps.iteration(game, st, xs), donate_argnums=0)
    order = np.random.default_rng(0).permutation(data["image"].shape[0])

    def advance(state):
        m = None
        for i in range(iters):
            j = i % game.iters_per_epoch
            idx = order[j * per : (j + 1) * per]
            xs = {k: v[idx].reshape((c.k, c.batch_size) + v.shape[1:]) for k, v in data.items()}
            state, m = step(state, xs)
        jax.block_until_ready(m)
        return state

    return advance, state


def plain_jax_path(config, data, iters: int):
    """The hand-written baseline: `iters` iterations of its scanned epoch function."""
    epoch = plain_jax.make_epoch(iters, config.batch_size, config.k)
    flat = data["image"].reshape(data["image"].shape[0], -1)
    key = jax.random.PRNGKey(0)

    def advance(carry):
        params, velocity, losses = epoch(*carry, flat, key)
        jax.block_until_ready(losses)
        return params, velocity

    return advance, plain_jax.init(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per window (default: 1000 on GPU, 50 on CPU; at most half an epoch)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="which cases to run")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), help="which new parts to time against the paper preset")
    parser.add_argument("--seeds", type=int, default=8, help="also time this many paper-preset seeds in one program (0: skip)")
    parser.add_argument("--scaling", action="store_true", help="only the multi-device table: 1, 2, 4, ... of this machine's devices")
    parser.add_argument("--scaling-batch", type=int, default=1024, help="the global batch split over the devices (--scaling)")
    args = parser.parse_args()
    if args.scaling:
        return scaling(args.iters, args.scaling_batch)
    device = jax.devices()[0]
    iters = args.iters or (50 if device.platform == "cpu" else 1000)
    versions = {p: metadata.version(p) for p in ("gancli", "jax", "jaxlib", "flax", "optax")}
    print(f"device: {device.platform} {device.device_kind}; {', '.join(f'{k} {v}' for k, v in versions.items())}")
    print(f"timed iterations per case: {iters}; one iteration = k D updates + 1 G update\n")
    images = np.random.default_rng(0).integers(0, 256, (50000, 28, 28, 1)) / 255
    data = jax.device_put({"image": jnp.asarray(images, jnp.float32), "label": jnp.zeros(50000, jnp.int32)})
    print(f"{'case':<24}{'gancli (it/s)':>16}{'python loop (it/s)':>20}{'plain JAX (it/s)':>18}{'gancli vs best':>16}")
    for name in args.cases:
        config = with_overrides(preset("paper", "mnist"), **CASES[name])
        game = steps.Game(config, (28, 28, 1), 50000)
        n = min(iters, game.iters_per_epoch // 2)  # a window never spans more than two epochs
        fast, slow, plain = rates([
            compiled_path(game, steps.init_state(game, 0), data, n),
            python_loop_path(game, steps.init_state(game, 0), data, n),
            plain_jax_path(config, data, n),
        ], n)
        print(f"{name:<24}{fast:>16,.1f}{slow:>20,.1f}{plain:>18,.1f}{fast / max(slow, plain):>15.2f}x", flush=True)
    if args.parts:
        print(f"\n{'new part on the paper preset':<34}{'gancli (it/s)':>16}{'paper preset (it/s)':>21}{'ratio':>8}")
    paper = steps.Game(preset("paper", "mnist"), (28, 28, 1), 50000)
    for name in args.parts:
        game = steps.Game(with_overrides(preset("paper", "mnist"), **PARTS[name]), (28, 28, 1), 50000)
        n = min(iters, game.iters_per_epoch // 2)
        part, base = rates([
            compiled_path(game, steps.init_state(game, 0), data, n),
            compiled_path(paper, steps.init_state(paper, 0), data, n),
        ], n)
        print(f"{name:<34}{part:>16,.1f}{base:>21,.1f}{part / base:>8.2f}", flush=True)
    if args.seeds > 1:
        game = steps.Game(preset("paper", "mnist"), (28, 28, 1), 50000)
        n = min(iters, game.iters_per_epoch // 2)
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *(steps.init_state(game, s) for s in range(args.seeds)))
        one, many = rates([
            compiled_path(game, steps.init_state(game, 0), data, n),
            compiled_path(game, stacked, data, n, args.seeds),
        ], n)
        print(f"\n--seeds {args.seeds} (paper preset, one vmapped program): {many:,.1f} it/s per seed, "
              f"wall time {one / many:.2f}x that of one seed ({one:,.1f} it/s)")


def scaling(iters: int | None, batch: int) -> None:
    """The paper preset on 1, 2, 4, ... devices (and all of them), timed side by side in interleaved rounds.

    batch: one seed's global batch split over the devices (strong scaling: efficiency = speed-up / devices).
    seeds: one seed per device, each a whole paper-preset run (weak scaling: efficiency = per-seed speed / 1 seed's).
    """
    devices = jax.devices()
    counts = sorted({2**i for i in range(len(devices).bit_length()) if 2**i <= len(devices)} | {len(devices)})
    iters = iters or (20 if devices[0].platform == "cpu" else 500)
    images = np.random.default_rng(0).integers(0, 256, (50000, 28, 28, 1)).astype(np.float32) / 255
    labels = np.zeros(50000, np.int64)
    print(f"devices: {len(devices)} x {devices[0].platform} {devices[0].device_kind}, {jax.process_count()} process(es); "
          f"timed iterations per case: {iters}")
    n = min(iters, 50000 // batch // 2)  # one window length for all, within two epochs of the largest batch
    paths, rows = [], []
    for d in counts:
        for split, config in (("batch", with_overrides(preset("paper", "mnist"), batch_size=batch)),
                              ("seeds", with_overrides(preset("paper", "mnist"), seeds=d) if d > 1 else preset("paper", "mnist"))):
            if split == "batch" and batch % d:
                continue
            placement = parallel.plan(config, d, images.nbytes)
            game = steps.Game(config, (28, 28, 1), 50000)
            states = [steps.init_state(game, s) for s in range(config.seeds)]
            state = states[0] if config.seeds == 1 else jax.tree.map(lambda *xs: np.stack(xs), *states)
            if placement is not None:
                state = parallel.put(state, placement.state)
            data = parallel.place_data(placement, images, labels)
            fn = steps.compiled_chunk(game, config.seeds, n, placement)

            def advance(state, fn=fn, data=data):
                state, m = fn(state, data)
                jax.block_until_ready(m)
                return state

            paths.append((advance, state))
            rows.append((d, split, placement))
    speeds = rates(paths, n)  # interleaved rounds: every count gets the same share of a shared machine's slow spells
    base = {split: s for (d, split, _), s in zip(rows, speeds) if d == 1}
    print(f"\n{'devices':>8}  {'split':<48}{'it/s':>10}{'efficiency':>12}")
    for (d, split, placement), s in zip(rows, speeds):
        what = f"batch {batch} ({batch // d} per device)" if split == "batch" else f"{d} seed{'s' if d > 1 else ''}, 1 per device"
        if placement is not None:
            what += f", data {placement.data}"
        efficiency = s / (d * base["batch"]) if split == "batch" else s / base["seeds"]
        print(f"{d:>8}  {what:<48}{s:>10,.1f}{efficiency:>11.0%}", flush=True)
    print("\nefficiency: batch = speed-up over 1 device / devices; seeds = each seed's it/s / 1 seed's on 1 device")


if __name__ == "__main__":
    main()
