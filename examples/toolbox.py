"""The post-2016 toolbox measured: each loss x (nothing, R1, spectral norm, DiffAugment) on MNIST and Fashion-MNIST,
with one model and one number of updates, several seeds trained in one program per configuration.

    python examples/toolbox.py                     # 3 seeds, 1 epoch: runs/toolbox/{table.md,table.json,*.png}
    python examples/toolbox.py --datasets mnist --losses hinge --parts nothing --seeds 2 --epochs 1 --out /tmp/tb

The model and optimiser are preset `modern`'s (the small DCGAN-style pair, Adam 2e-4 beta1 0.5, alternating updates,
batch 64) with its own parts turned off (no R1, no augmentation, and samples from G itself, not its EMA), so that each column
adds one part to the same base: R1 as `modern` has it (gamma 1, lazy 16), spectral norm in D, or DiffAugment's
translation and cutout. Each cell is FD on the dataset's shipped classifier, precision and recall
(10,000 samples of G against the test split), mean ± std over the living seeds. A seed is dead when its losses or
samples are not finite, or when its FD is no better than uniform noise's (the calibration row of
`gancli evaluate --metrics`): its numbers are left out of the mean and
the cell says how many died. Training seconds are the CPU time of each configuration's whole program (all seeds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gancli import images, metrics, rundir, sampling, train  # noqa: E402
from gancli.config import preset, with_overrides  # noqa: E402

LOSSES = {
    "gan (non-saturating)": {"d_loss": "gan", "g_loss": "nonsaturating"},
    "hinge": {"d_loss": "hinge", "g_loss": "hinge"},
    "least squares": {"d_loss": "least-squares", "g_loss": "least-squares"},
    "wgan-gp": {"d_loss": "wgan-gp", "g_loss": "wgan-gp"},
    "relativistic": {"d_loss": "relativistic", "g_loss": "relativistic"},
}
PARTS = {
    "nothing": {},
    "R1 (gamma 1)": {"penalty.r1": 1.0},
    "SN in D": {"spectral_norm": "d"},
    "DiffAugment": {"augment.policy": "translation,cutout"},
}
# Preset modern without its own parts, and without its EMA: over a few epochs an average of decay 0.999 would still
# hold much of its start, so the table measures G itself.
BASE = {"penalty.r1": 0.0, "augment.policy": "", "ema": 0.0}
# The models each cell can use. modern's DCGAN pair costs about 1.6 s per update of 3 seeds on the 2-core CPU, so
# its 40 cells need about 15 hours there; the small MLP pair (ReLU G 256-512, maxout-2 D 512-256, no dropout) is
# about 20 times cheaper per update and fits the table in one session. Everything else is modern's.
MODELS = {
    "dcgan": {},
    "mlp": {"model": "mlp", "generator.hidden": (256, 512), "generator.init_scale": 0.05,
            "discriminator.units": (512, 256), "discriminator.pieces": 2, "discriminator.init_scale": 0.005},
}
WHICH = ("fid", "prdc")
N_SAMPLES = 10_000


def spread(values: list[float]) -> str:
    if not values:
        return "dead"
    return f"{np.mean(values):.{3 if max(values) < 10 else 1}f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.{3 if max(values) < 10 else 1}f}"


def measure(folder: Path, ref, noise_fd: float) -> tuple[list[dict], np.ndarray]:
    """Each seed's FD, precision, recall and whether it died; a grid of seed 0's first 64 samples."""
    out, grid = [], None
    for s, run_dir in enumerate(rundir.find_runs(folder)):
        losses = rundir.read_metrics(run_dir)[0]
        finite = all(np.isfinite(r.get("d_loss", 0.0)) and np.isfinite(r.get("g_loss", 0.0)) for r in losses)
        samples = sampling.draw(sampling.restore(run_dir), N_SAMPLES, 0)["samples"]
        if s == 0:
            grid = samples[:64]
        if not finite or not np.all(np.isfinite(samples)):
            out.append({"seed": s, "dead": True, "why": "not finite"})
            continue
        m = metrics.measure(np.clip(samples, 0.0, 1.0), ref, WHICH, f"seed {s}")
        row = {"seed": s, "fid": m["fid"], "precision": m["prdc"]["precision"], "recall": m["prdc"]["recall"]}
        row["dead"] = bool(row["fid"] >= noise_fd)
        out.append(row)
    return out, grid


def updates(folder: Path) -> int:
    """G updates the configuration's runs made (the latest checkpoint's step)."""
    return int(sampling.restore(rundir.find_runs(folder)[0]).metadata["step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma list of: " + ", ".join(LOSSES))
    parser.add_argument("--parts", default=",".join(PARTS), help="comma list of: " + ", ".join(PARTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", choices=list(MODELS), default="dcgan", help="modern's DCGAN pair, or the small MLP pair")
    parser.add_argument("--out", type=Path, default=Path("runs/toolbox"))
    args = parser.parse_args()
    losses = [name.strip() for name in args.losses.split(",")]
    parts = [name.strip() for name in args.parts.split(",")]
    for name in losses + parts:
        if name not in LOSSES and name not in PARTS:
            parser.error(f"unknown loss or part {name!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    table_path = args.out / "table.json"
    done = json.loads(table_path.read_text()) if table_path.exists() else {}
    for dataset in args.datasets.split(","):
        ref = metrics.reference(dataset, WHICH)
        noise_fd = metrics.measure(metrics.noise_images(N_SAMPLES), ref, ("fid",), "noise")["fid"]
        grids = {}
        for loss in losses:
            for part in parts:
                key = f"{dataset} | {loss} | {part}"
                config = with_overrides(preset("modern", dataset), epochs=args.epochs, seeds=args.seeds, seed=0,
                                        **{**BASE, **MODELS[args.model], **LOSSES[loss], **PARTS[part]})
                folder = args.out / dataset / f"{loss}-{part}".replace(" ", "_").replace("(", "").replace(")", "")
                if key not in done:
                    t0, c0 = time.perf_counter(), time.process_time()
                    if train.train(config, folder, resume=folder.exists()).status == "interrupted":
                        raise SystemExit(f"interrupted while training {key}; run the same command to resume it")
                    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                    seeds, grid = measure(folder, ref, noise_fd)
                    done[key] = {"dataset": dataset, "loss": loss, "part": part, "seeds": seeds,
                                 "wall_seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                                 "updates": updates(folder)}
                    table_path.write_text(json.dumps(done, indent=2))
                    np.save(folder / "grid.npy", grid)
                grids[(loss, part)] = np.load(folder / "grid.npy")
                row = done[key]
                alive = [s for s in row["seeds"] if not s["dead"]]
                print(f"{key}: FD {spread([s['fid'] for s in alive])}, precision {spread([s['precision'] for s in alive])}, "
                      f"recall {spread([s['recall'] for s in alive])}, {len(row['seeds']) - len(alive)} dead, "
                      f"{row['wall_seconds']:.0f} s", flush=True)
        picture(grids, losses, parts, dataset, args.out / f"{dataset}.png", args.epochs)
    write_table(done, args)


def picture(grids: dict, losses: list[str], parts: list[str], dataset: str, path: Path, epochs: int) -> None:
    fig, axes = plt.subplots(len(losses), len(parts), figsize=(2.2 * len(parts), 2.3 * len(losses)), dpi=100, squeeze=False)
    for i, loss in enumerate(losses):
        for j, part in enumerate(parts):
            ax = axes[i][j]
            ax.imshow(images.grid(grids[(loss, part)].reshape(-1, 28, 28, 1), 8)[..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(part, fontsize=8)
            if j == 0:
                ax.set_ylabel(loss, fontsize=8)
    fig.suptitle(f"{dataset}: seed 0's samples after {epochs} epochs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_table(done: dict, args) -> None:
    lines = []
    for dataset in args.datasets.split(","):
        lines += [f"### {dataset}: FD on the shipped classifier / precision / recall ({args.seeds} seeds, {args.epochs} epochs)", "",
                  "| loss | " + " | ".join(PARTS) + " |", "|---" * (len(PARTS) + 1) + "|"]
        for loss in LOSSES:
            cells = []
            for part in PARTS:
                row = done.get(f"{dataset} | {loss} | {part}")
                if row is None:
                    cells.append("not run")
                    continue
                alive = [s for s in row["seeds"] if not s["dead"]]
                dead = len(row["seeds"]) - len(alive)
                cell = " / ".join(spread([s[k] for s in alive]) for k in ("fid", "precision", "recall")) if alive else "all dead"
                cells.append(cell + (f" ({dead} dead)" if dead and alive else "") + f"<br>{row['wall_seconds']:.0f} s")
            lines.append(f"| {loss} | " + " | ".join(cells) + " |")
        lines.append("")
    (args.out / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out / 'table.md'}, {args.out / 'table.json'} and a picture per dataset")


if __name__ == "__main__":
    main()
