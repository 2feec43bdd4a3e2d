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
    ax.axhline(225, color="tab:red", ls="--", label="paper, Table 1: 225 ± 2")
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
