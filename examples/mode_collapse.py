"""Mode collapse on ring8, measured: modes covered and the share of high-quality samples for each G objective
and D variant of the toy preset, over several seeds trained in one program each.

    python examples/mode_collapse.py                  # 5 seeds, 10 epochs: runs/mode_collapse/{table.md,samples.png}
    python examples/mode_collapse.py --seeds 2 --epochs 1 --out /tmp/mc   # a smoke run

Coverage is gancli's ring8 rule (evaluate reports it too): a sample is high quality within 3 std of a mode's
centre, a mode is covered when at least 1% of 10,000 samples are high-quality samples of it.
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

from gancli import checkpoint, rundir, sampling, train  # noqa: E402
from gancli.config import preset, with_overrides  # noqa: E402
from gancli.data import toy  # noqa: E402

VARIANTS = {
    "non-saturating (baseline)": {},
    "minimax": {"g_loss": "minimax"},
    "feature matching": {"g_loss": "feature-matching"},
    "minibatch discrimination (100 x 5)": {"discriminator.minibatch": (100, 5)},
    "baseline + EMA of G (0.999)": {"ema": 0.999},
    "hinge": {"d_loss": "hinge", "g_loss": "hinge"},
    "least squares": {"d_loss": "least-squares", "g_loss": "least-squares"},
    "wgan-gp (lambda 10)": {"d_loss": "wgan-gp", "g_loss": "wgan-gp"},
    "relativistic": {"d_loss": "relativistic", "g_loss": "relativistic"},
    "baseline + R1 (gamma 1)": {"penalty.r1": 1.0},
    "baseline + spectral norm in D": {"spectral_norm": "d"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/mode_collapse"))
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS), help="which rows (default: all)")
    args = parser.parse_args()
    rows, pictures = [], {}
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        if name not in args.variants:
            continue
        config = with_overrides(preset("toy", "ring8"), epochs=args.epochs, seeds=args.seeds, seed=0, **overrides)
        folder = args.out / f"variant-{i}"
        t0 = time.perf_counter()
        if train.train(config, folder, resume=folder.exists()).status == "interrupted":
            raise SystemExit(f"interrupted while training {name!r}; run the same command to resume it")
        seconds = time.perf_counter() - t0
        modes, shares = [], []
        for s, run_dir in enumerate(rundir.find_runs(folder)):
            samples = sampling.draw(sampling.restore(run_dir), 10_000, 0)["samples"]
            cov = toy.mode_coverage(samples)
            modes.append(cov["modes_covered"])
            shares.append(cov["high_quality_share"])
            if s == 0:
                pictures[name] = samples[:2000]
        rows.append({"variant": name, "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
                     "modes_covered": modes, "high_quality_share": shares, "train_seconds": round(seconds, 1)})
        print(f"{name}: modes {np.mean(modes):.1f} ± {np.std(modes, ddof=1) if len(modes) > 1 else 0:.1f}, "
              f"high quality {np.mean(shares):.1%} ± {np.std(shares, ddof=1) if len(shares) > 1 else 0:.1%} ({seconds:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.json").write_text(json.dumps({"seeds": args.seeds, "epochs": args.epochs, "rows": rows}, indent=2))
    spread = lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0
    lines = [f"| variant ({args.seeds} seeds, {args.epochs} epochs) | modes covered (of 8) | high-quality samples |",
             "|---|---|---|"]
    lines += [f"| {r['variant']} | {np.mean(r['modes_covered']):.1f} ± {spread(r['modes_covered']):.1f} | "
              f"{np.mean(r['high_quality_share']):.1%} ± {spread(r['high_quality_share']):.1%} |" for r in rows]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, len(pictures), figsize=(3 * len(pictures), 3.2), dpi=100)
    centres = toy.ring8_centres()
    for ax, (name, pts) in zip(np.atleast_1d(axes), pictures.items()):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3)
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="red", s=20)
        ax.set_title(name, fontsize=8)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"ring8 samples of seed 0 after {args.epochs} epochs (red: the 8 modes)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "samples.png")
    print("\n".join(lines))
    print(f"wrote {args.out / 'table.md'} and {args.out / 'samples.png'}")


if __name__ == "__main__":
    main()
