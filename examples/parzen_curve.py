"""Plot Parzen log-likelihood against epochs from the reports examples/reproduce_table1.sh keeps.

    python examples/parzen_curve.py runs/table1-paper      # writes runs/table1-paper/reports/parzen_curve.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The paper's exact recipe rerun in plain JAX on an H100 (the project's reference notes), for comparison.
FAITHFUL_RERUN = {25: 107, 100: 163, 250: 188, 400: 196, 500: 204, 1000: 217, 1500: 223.0, 2000: 226.3}
CALIBRATION = 244.6  # 10,000 real training images as the model, same protocol


def main(run: Path) -> None:
    points = []
    for path in sorted((run / "reports").glob("parzen_epoch_*.json")):
        model = json.loads(path.read_text())["models"][0]
        points.append((model["epoch"], model["mean"], model["stderr"]))
    if not points:
        sys.exit(f"no parzen_epoch_*.json in {run / 'reports'}: run examples/reproduce_table1.sh first")
    epochs, means, errs = zip(*points)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.errorbar(epochs, means, yerr=errs, marker="o", capsize=3, label=f"gancli ({run.name})")
    shown = [e for e in FAITHFUL_RERUN if e <= max(epochs) * 1.5] or list(FAITHFUL_RERUN)[:2]
    ax.plot(shown, [FAITHFUL_RERUN[e] for e in shown], "s:", color="gray", label="paper's recipe, reference rerun")
    ax.axhline(225, color="tab:red", ls="--", label="paper, Table 1: 225 ± 2")
    ax.axhline(CALIBRATION, color="tab:green", ls="-.", label=f"real data as the model: {CALIBRATION}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Parzen log-likelihood (nats, test)")
    ax.legend()
    out = run / "reports" / "parzen_curve.png"
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    for e, m, s in points:
        print(f"epoch {e:>5}: {m:7.1f} ± {s:.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/table1-paper"))
