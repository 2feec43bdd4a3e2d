"""Training on 8 virtual CPU devices against 1, for tests/test_sharding.py; prints one JSON object of results.

XLA's device count is fixed when JAX starts, so this runs in a process of its own:
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/multidevice_run.py OUT_DIR
Every run trains on random data in place of the data loaders; the figures are differences between runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from gancli import checkpoint, data, inspection, parallel, steps, train
from gancli.config import preset, with_overrides
from gancli.errors import GancliError

TINY = {"generator.z_dim": 4, "generator.hidden": (16,), "discriminator.units": (8,), "discriminator.pieces": 2, "chunk": 4}
# Batch norm in both networks: split over 8 devices each holds 2 examples of a batch, so statistics taken per
# device instead of over the global batch would move every parameter far past the tolerance.
TINY_BN = {**TINY, "batch_size": 16, "generator.batchnorm": True, "discriminator.batchnorm": True}
SETS = {
    # The paper's model (maxout D with dropout, uniform noise, SGD with momentum) on MNIST-shaped data; batch 80
    # instead of 100 so that it splits over 8 devices.
    "paper": np.random.default_rng(0).random((640, 28, 28, 1), np.float32),
    # 204 rows: split over 8 devices they are padded to 208, rows that must never be drawn.
    "tiny": np.random.default_rng(1).random((204, 4, 4, 1), np.float32),
}


def use_fake_data() -> None:
    data.load = lambda name, split, data_dir=None: (SETS[name], np.zeros(len(SETS[name]), np.int64))
    data.provenance = lambda name, data_dir=None: {"dataset": name, "source": "tests/multidevice_run.py"}


def state_of(run_dir: Path):
    return checkpoint.load_run(run_dir, lambda c, m: steps.abstract_state(steps.Game(c, tuple(m["data_shape"]), m["n_train"]))).state


def max_diff(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in pairs)


def collectives(compiled) -> list[str]:
    """The kinds of cross-device operation in a compiled program."""
    text = compiled.as_text()
    return sorted(op for op in ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter") if f" {op}(" in text)


def error_of(fn) -> str | None:
    try:
        fn()
    except GancliError as e:
        return str(e)
    return None


def main(out: Path) -> dict:
    use_fake_data()
    results: dict = {"devices": jax.device_count()}
    t0 = time.perf_counter()
    paper = with_overrides(preset("paper", "paper"), batch_size=80, chunk=4, epochs=1)
    train.train(paper, out / "paper-1", devices=1)
    train.train(paper, out / "paper-8", devices=8)
    results["seconds"] = {"paper": time.perf_counter() - t0}
    results["paper_1_vs_8"] = max_diff(state_of(out / "paper-1"), state_of(out / "paper-8"))
    results["paper_moved"] = max_diff(state_of(out / "paper-1")["d"], steps.init_state(steps.Game(paper, (28, 28, 1), 640), 0)["d"])
    results["paper_mesh"] = checkpoint.load_run(out / "paper-8").metadata["mesh"]
    # What jit made of the split: the collectives in the compiled 8-device programs.
    game = steps.Game(paper, (28, 28, 1), 640)
    results["paper_collectives"] = collectives(steps.compiled_chunk(game, 1, 4, parallel.plan(paper, 8, 0)))
    results["paper_inspect_mesh"] = inspection.summarize(out / "paper-8", curves=False)["mesh"]

    bn = with_overrides(preset("paper", "tiny"), **TINY_BN, epochs=2)
    train.train(bn, out / "bn-1", devices=1)
    train.train(bn, out / "bn-8", devices=8)
    results["bn_1_vs_8"] = max_diff(state_of(out / "bn-1"), state_of(out / "bn-8"))
    results["bn_stats_moved"] = max_diff(state_of(out / "bn-1")["d_stats"], steps.init_state(steps.Game(bn, (4, 4, 1), 204), 0)["d_stats"])

    results["seconds"]["bn"] = time.perf_counter() - t0
    plan = parallel.plan
    parallel.plan = lambda *a, **k: dataclasses.replace(plan(*a, **k), data="sharded")
    train.train(bn, out / "bn-8-sharded", devices=8)
    parallel.plan = plan
    results["bn_sharded_data_mesh"] = checkpoint.load_run(out / "bn-8-sharded").metadata["mesh"]
    results["bn_1_vs_8_sharded_data"] = max_diff(state_of(out / "bn-1"), state_of(out / "bn-8-sharded"))

    results["seconds"]["sharded"] = time.perf_counter() - t0
    # Resume on another device count: one epoch on 8 devices then one on 1, and the reverse, against two on 1.
    half = with_overrides(bn, epochs=1)
    train.train(half, out / "8-then-1", devices=8)
    train.train(bn, out / "8-then-1", devices=1, resume=True)
    train.train(half, out / "1-then-8", devices=1)
    train.train(bn, out / "1-then-8", devices=8, resume=True)
    results["resume_8_then_1"] = max_diff(state_of(out / "bn-1"), state_of(out / "8-then-1"))
    results["resume_1_then_8"] = max_diff(state_of(out / "bn-1"), state_of(out / "1-then-8"))
    results["resume_1_then_8_mesh"] = checkpoint.load_run(out / "1-then-8").metadata["mesh"]

    results["seconds"]["resume"] = time.perf_counter() - t0
    seeds = with_overrides(preset("paper", "tiny"), **TINY, batch_size=10, epochs=1, seeds=8)
    train.train(seeds, out / "seeds-8", devices=8)
    results["seeds_mesh"] = checkpoint.load_run(out / "seeds-8" / "seed-0").metadata["mesh"]
    game = steps.Game(seeds, (4, 4, 1), 204)
    results["seeds_collectives"] = collectives(steps.compiled_chunk(game, 8, 4, parallel.plan(seeds, 8, 0)))
    results["seeds_vs_single"] = []
    for s in range(8):
        train.train(with_overrides(seeds, seeds=1, seed=s), out / f"seed-{s}", devices=1)
        results["seeds_vs_single"].append(max_diff(state_of(out / "seeds-8" / f"seed-{s}"), state_of(out / f"seed-{s}")))

    results["seconds"]["seeds"] = time.perf_counter() - t0
    odd = with_overrides(preset("paper", "tiny"), **TINY, batch_size=10, epochs=1)
    results["errors"] = {
        "batch": error_of(lambda: parallel.plan(odd, 8, 0)),
        "seeds": error_of(lambda: parallel.plan(with_overrides(odd, seeds=3), 8, 0)),
        "too_many": error_of(lambda: parallel.plan(odd, 9, 0)),
        "train_batch": error_of(lambda: train.train(odd, out / "odd", devices=8)),
    }
    default = parallel.plan(odd, None, 0)
    results["default_devices_batch_10"] = default.devices
    return results


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
