"""The paper's Figure 1: the 1-D game. p_data (black, dotted), p_g (green) and D (blue, dashed) at several
stages of training toy1d with the same code `gancli train toy1d` runs.

    python examples/figure1.py                  # writes figure1/figure1.png (about a minute on a 2-core CPU)
    python examples/figure1.py --out DIR --stages 0 1 2 8
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gancli import checkpoint, sampling, steps, train  # noqa: E402
from gancli.config import preset, with_overrides  # noqa: E402
from gancli.data import toy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figure1"))
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 1, 2, 8], help="epochs to picture (500 iterations each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ckpt = args.out / "ckpt"
    shutil.rmtree(ckpt, ignore_errors=True)
    xs = np.linspace(-1.0, 5.0, 400)
    fig, axes = plt.subplots(1, len(args.stages), figsize=(3.2 * len(args.stages), 3), sharey=True, dpi=120)
    for ax, epoch in zip(np.atleast_1d(axes), args.stages):
        config = with_overrides(preset("toy", "toy1d"), seed=args.seed, epochs=max(epoch, 1), ckpt_every=1, keep=1)
        if epoch == 0:
            run = _untrained(config)
        else:
            resume = (ckpt / "checkpoints").is_dir()
            train.train(config, ckpt, resume=resume)
            run = sampling.restore(ckpt)
        samples = sampling.draw(run, 100_000, 1)["samples"][:, 0]
        hist, edges = np.histogram(samples, bins=120, range=(xs[0], xs[-1]), density=True)
        ax.plot(xs, toy.toy1d_density(xs), "k:", label="p_data")
        ax.plot((edges[:-1] + edges[1:]) / 2, hist, color="tab:green", label="p_g")
        ax.plot(xs, sampling.discriminate(run, xs[:, None]), "--", color="tab:blue", label="D(x)")
        ax.axhline(0.5, color="0.85", lw=0.8)
        ax.set_title(f"epoch {epoch}")
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path = args.out / "figure1.png"
    fig.savefig(path)
    print(f"wrote {path}")


def _untrained(config):
    """The freshly initialised G and D that training starts from, as a run sampling can use."""
    game = steps.Game(config, (1,), toy.SPLITS["train"])
    metadata = {"data_shape": [1], "n_train": toy.SPLITS["train"]}
    return checkpoint.Run(path=None, config=config, metadata=metadata, state=steps.init_state(game, config.seed))


if __name__ == "__main__":
    main()
