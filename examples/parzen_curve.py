"""Plot Parzen log-likelihood against epochs from the reports examples/reproduce_table1.sh keeps.

    python examples/parzen_curve.py runs/table1-paper                      # runs/table1-paper/reports/parzen_curve.png
    python examples/parzen_curve.py runs/table1-paper --reference ref.json # with an outside curve beside it
    python examples/parzen_curve.py runs/table1-paper-ema --per-seed       # each seed's own curve, not mean +- std
    python examples/parzen_curve.py runs/table1-paper-ema --table          # also a Markdown table of every point

Only measured points are drawn: the run's own reports (an EMA of G and G itself when the run keeps one), the real-data calibration row its latest report
holds (run `gancli evaluate RUN --parzen` once with calibration), the paper's Table 1 figure, and an outside
curve only from a file you pass, shaped {"label": ..., "source": ..., "points": {"25": 107.0, ...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _headline(report: dict) -> tuple[float, float]:
    """A report's figure: the seeds' mean +- std for a multi-seed run, else the one model's mean +- stderr."""
    if across := report.get("across_seeds"):
        return across["mean"], across["std"]
    return report["models"][0]["mean"], report["models"][0]["stderr"]


def measured(run: Path, kind: str = "") -> tuple[list[tuple[int, float, float]], dict | None]:
    """(epoch, mean, spread) of every kept report of a kind ("" or "raw_": G itself beside an EMA), and the
    newest calibration row found among the reports."""
    points, calibration = [], None
    for path in sorted((run / "reports").glob(f"parzen_{kind}epoch_*.json")) + [run / "reports" / "parzen.json"]:
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        if path.name != "parzen.json":
            points.append((report["models"][0]["epoch"], *_headline(report)))
        calibration = report.get("calibration") or calibration
    return points, calibration


def reference_curve(path: Path) -> tuple[str, dict[int, float]]:
    """An outside curve's label (with its source) and points, from a JSON file the user passes."""
    ref = json.loads(path.read_text())
    try:
        points = {int(e): float(v) for e, v in ref["points"].items()}
        label = f"{ref['label']}\n(source: {ref['source']})"  # two lines: a source is long and the legend sits inside the axes
    except (KeyError, TypeError, ValueError, AttributeError):
        sys.exit(f"{path}: expected {{\"label\": ..., \"source\": ..., \"points\": {{epoch: log-likelihood}}}}")
    return label, points


def per_seed(run: Path, kind: str = "") -> dict[str, list[tuple[int, float]]]:
    """Each seed's (epoch, mean) of every kept report of a kind, keyed by the seed's folder name."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for path in sorted((run / "reports").glob(f"parzen_{kind}epoch_*.json")):
        for model in json.loads(path.read_text())["models"]:
            curves.setdefault(Path(model["source"]).name, []).append((model["epoch"], model["mean"]))
    return curves


# The table's rows: (report stem, row name, figure's key, format); metrics figures are metrics.scalars' keys.
TABLE_FIELDS = (("parzen", "Parzen", "mean", "{:.1f}"), ("metrics", "FD", "fid", "{:.1f}"),
                ("metrics", "precision", "precision", "{:.3f}"), ("metrics", "recall", "recall", "{:.3f}"))


def table(run: Path) -> str:
    """A Markdown table of every kept point, one column per epoch: Parzen, then FD, precision and recall where
    metrics_*epoch_*.json were kept, each for the EMA of G and for G itself when the run keeps both. A multi-seed
    run's cell holds each seed's figure, in seed order, joined by " / ": a dead seed stays visible, as a
    mean +- std would not show it."""
    from gancli import metrics  # the one owner of a metrics row's flat figures; only --table pays its import

    reports = run / "reports"
    kinds = (("", "EMA of G"), ("raw_", "G itself")) if any(reports.glob("parzen_raw_epoch_*.json")) else (("", "G"),)
    cells: dict[str, dict[int, str]] = {}
    for stem in ("parzen", "metrics"):
        for kind, who in kinds:
            for path in sorted(reports.glob(f"{stem}_{kind}epoch_*.json")):  # each report read once
                models = json.loads(path.read_text())["models"]
                flat = models if stem == "parzen" else [metrics.scalars(m) for m in models]
                for _, name, key, fmt in (f for f in TABLE_FIELDS if f[0] == stem and all(f[2] in m for m in flat)):
                    cells.setdefault(f"{name}, {who}", {})[models[0]["epoch"]] = " / ".join(fmt.format(seed[key]) for seed in flat)
    rows = [(f"{name}, {who}", cells[f"{name}, {who}"]) for _, name, _, _ in TABLE_FIELDS for _, who in kinds
            if f"{name}, {who}" in cells]
    epochs = sorted({e for _, row in rows for e in row})
    seeds = [Path(m["source"]).name for m in json.loads(next(reports.glob("parzen_epoch_*.json")).read_text())["models"]]
    lines = [f"| {' / '.join(seeds)} | " + " | ".join(map(str, epochs)) + " |", "|---" * (len(epochs) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(row.get(e, "-") for e in epochs) + " |" for name, row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/table1-paper"))
    parser.add_argument("--reference", type=Path, help="an outside curve to draw beside the run's, labelled with its source")
    parser.add_argument("--per-seed", action="store_true", help="draw each seed's curve (a multi-seed run), not their mean +- std")
    parser.add_argument("--table", action="store_true", help="also print a Markdown table of every point (Parzen, and FD, precision, recall where kept)")
    parser.add_argument("--ymin", type=float, help="the axis' lower end; a curve with points below it says so in its label")
    args = parser.parse_args()
    points, calibration = measured(args.run)
    if not points:
        sys.exit(f"no parzen_epoch_*.json in {args.run / 'reports'}: run examples/reproduce_table1.sh first")
    raw, _ = measured(args.run, "raw_")
    spread = "mean ± std of seeds" if json.loads(next((args.run / "reports").glob("parzen_epoch_*.json")).read_text()).get("across_seeds") else "± stderr"
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for kind, label, marker, style in (("", "EMA of G" if raw else "G", "o", "-"), ("raw_", "G itself", "^", "--")):
        if args.per_seed:  # one colour per seed, the EMA solid and G itself dashed
            for i, (seed, curve) in enumerate(sorted(per_seed(args.run, kind).items())):
                epochs, means = zip(*sorted(curve))
                below = f" (down to {min(means):.0f}, below the axis)" if args.ymin is not None and min(means) < args.ymin else ""
                ax.plot(epochs, means, marker=marker, ls=style, color=f"C{i}", label=f"gancli {args.run.name}/{seed}: {label}{below}")
            continue
        if curve := (points if not kind else raw):
            epochs, means, errs = zip(*sorted(curve))
            ax.errorbar(epochs, means, yerr=errs, marker=marker, capsize=3, label=f"gancli {args.run.name}: {label} ({spread})")
    if args.reference:
        label, ref = reference_curve(args.reference)
        ax.plot(sorted(ref), [ref[e] for e in sorted(ref)], "s:", color="gray", label=label)
    ax.axhline(225, color="tab:red", ls="--", label="paper, Table 1: 225 ± 2")
    if calibration:
        ax.axhline(calibration["mean"], color="tab:green", ls="-.",
                   label=f"real data as the model (this run's report): {calibration['mean']:.1f}")
    if args.ymin is not None:
        ax.set_ylim(bottom=args.ymin)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Parzen log-likelihood (nats, test)")
    ax.legend(fontsize="small")
    out = args.run / "reports" / "parzen_curve.png"
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    raw_at = {e: (m, s) for e, m, s in raw}
    for e, m, s in sorted(points):
        print(f"epoch {e:>5}: {m:7.1f} ± {s:.1f}" + (f"   G itself {raw_at[e][0]:7.1f} ± {raw_at[e][1]:.1f}" if e in raw_at else ""))
    if calibration:
        print(f"calibration: {calibration['mean']:.1f} ± {calibration['stderr']:.1f}")
    if args.table:
        print(table(args.run))


if __name__ == "__main__":
    main()
