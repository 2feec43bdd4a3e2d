"""Parzen reports: a JSON record, a Markdown page, a PNG of validation log-likelihood against sigma, a Rich table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gancli.files import atomic_path

# Table 1 of Goodfellow et al. (2014): Parzen log-likelihood on MNIST, nats (mean, standard error).
PAPER_TABLE1_MNIST = (
    ("DBN", 138.0, 2.0),
    ("Stacked CAE", 121.0, 1.6),
    ("Deep GSN", 214.0, 1.1),
    ("Adversarial nets", 225.0, 2.0),
)

NOTE = (
    "Parzen-window estimates are high-variance and easy to game; the same protocol with real training "
    "images as the model calibrates the scale (Theis et al. 2016, 'A note on the evaluation of generative models')."
)


def parzen_report(dataset: str, models: list[dict], calibration: dict | None = None, **protocol) -> dict:
    """The report as plain data: models (each a ParzenResult dict plus label/source/epoch/step), seeds, references."""
    report = {
        "kind": "parzen",
        "dataset": dataset,
        "protocol": {
            "estimator": "log p(x) = logsumexp_j(-|x-mu_j|^2/(2 sigma^2)) - log N - d log(sigma sqrt(2 pi))",
            "sigma": "argmax of the mean log-likelihood of the first n_valid validation images",
            "result": "mean over the test split +- population std / sqrt(n_test)",
            **protocol,
        },
        "models": models,
        "across_seeds": None,
        "calibration": calibration,
        "paper_table1": [],
        "note": NOTE,
    }
    if len(models) > 1:
        means = [m["mean"] for m in models]
        mean = sum(means) / len(means)
        std = math.sqrt(sum((v - mean) ** 2 for v in means) / (len(means) - 1))
        report["across_seeds"] = {"n": len(means), "mean": mean, "std": std, "ddof": 1}
    if dataset == "mnist":
        report["paper_table1"] = [{"model": n, "mean": m, "stderr": s} for n, m, s in PAPER_TABLE1_MNIST]
    return report


def _model_name(m: dict) -> str:
    """A model row's label with its checkpoint epoch/step when known."""
    at = ", ".join(f"{k} {m[k]}" for k in ("epoch", "step") if m.get(k) is not None)
    return f"{m['label']} ({at})" if at else m["label"]


def _rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, sigma, log-likelihood, samples) rows shared by the Markdown and the terminal table."""
    rows = [(_model_name(m), f"{m['sigma']:.4g}", f"{m['mean']:.1f} ± {m['stderr']:.1f}", str(m["n_samples"]))
            for m in report["models"]]
    if s := report["across_seeds"]:
        rows.append((f"mean over {s['n']} seeds", "", f"{s['mean']:.1f} ± {s['std']:.1f} (std)", ""))
    if c := report["calibration"]:
        rows.append((f"calibration: {c['label']}", f"{c['sigma']:.4g}", f"{c['mean']:.1f} ± {c['stderr']:.1f}",
                     str(c["n_samples"])))
    for p in report["paper_table1"]:
        rows.append((f"{p['model']} (paper, Table 1)", "", f"{p['mean']:g} ± {p['stderr']:g}", ""))
    return rows


def parzen_markdown(report: dict, plot_name: str | None = "parzen.png") -> str:
    """The report as a Markdown page."""
    p = report["protocol"]
    lines = [
        f"# Parzen-window log-likelihood on {report['dataset']}",
        "",
        f"Sigma chosen over {len(p['sigmas'])} values on the first {p['n_valid']} validation images; "
        f"result: mean log-likelihood of the {p['n_test']} test images ± standard error (nats)."
        + (f" Samples drawn with noise seed {p['sampling_seed']}." if p.get("sampling_seed") is not None else ""),
        "",
        "| model | sigma | log-likelihood | samples |",
        "|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in _rows(report)),
        "",
        "## Validation log-likelihood per sigma",
        "",
    ]
    curves = _curves(report)
    lines += ["| sigma | " + " | ".join(name for name, _, _ in curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for i, sigma in enumerate(p["sigmas"]):
        cells = [f"**{c[i]:.1f}**" if sigma == chosen else f"{c[i]:.1f}" for _, c, chosen in curves]
        lines.append(f"| {sigma:.4g} | " + " | ".join(cells) + " |")
    if coverage := _coverage_rows(report):
        lines += ["", "## Mode coverage", "", f"{coverage[0][3]}.", "", "| model | modes covered | high-quality samples |",
                  "|---|---|---|", *(f"| {name} | {modes} | {share} |" for name, modes, share, _ in coverage)]
    if plot_name:
        lines += ["", f"![validation log-likelihood against sigma]({plot_name})"]
    lines += ["", f"_{report['note']}_", ""]
    return "\n".join(lines)


def _curves(report: dict) -> list[tuple[str, list[float], float]]:
    """(name, validation log-likelihood per sigma, chosen sigma) for every model and the calibration."""
    curves = [(m["label"], m["valid_ll"], m["sigma"]) for m in report["models"]]
    if c := report["calibration"]:
        curves.append(("calibration", c["valid_ll"], c["sigma"]))
    return curves


def _coverage_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, modes covered, share of high-quality samples, rule) for every entry that has a mode coverage."""
    entries = [(m["label"], m) for m in report["models"]]
    if c := report["calibration"]:
        entries.append((f"calibration: {c['label']}", c))
    return [
        (name, f"{cov['modes_covered']} / {cov['modes']}", f"{cov['high_quality_share']:.1%}", cov["rule"])
        for name, m in entries
        if (cov := m.get("mode_coverage"))
    ]


def coverage_table(report: dict) -> Table | None:
    """Mode coverage as a Rich table, for datasets with known modes (ring8); None otherwise."""
    rows = _coverage_rows(report)
    if not rows:
        return None
    table = Table(title=f"Mode coverage on {report['dataset']}", caption=rows[0][3])
    for name, justify in (("model", "left"), ("modes covered", "right"), ("high-quality samples", "right")):
        table.add_column(name, justify=justify)
    for name, modes, share, _ in rows:
        table.add_row(escape(name), modes, share)
    return table


def plot_parzen(report: dict, path: Path) -> Path:
    """Save the validation log-likelihood against sigma (log axis), one line per model, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    sigmas = report["protocol"]["sigmas"]
    for name, ll, chosen in _curves(report):
        style = "--" if name == "calibration" else "-"
        (line,) = ax.semilogx(sigmas, ll, style, marker=".", label=name)
        ax.plot([chosen], [ll[sigmas.index(chosen)]], "o", color=line.get_color(), markersize=8, fillstyle="none")
    ax.set_xlabel("sigma")
    ax.set_ylabel("mean validation log-likelihood (nats)")
    ax.set_title(f"Parzen window on {report['dataset']}: choice of sigma (circled)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _atomic(path: Path, write) -> Path:
    """Write through a temporary file and rename, so a report is never left half-written."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_parzen(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write parzen.json, parzen.md and parzen.png into out_dir; return their paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "json": _atomic(out_dir / "parzen.json", lambda t: t.write_text(json.dumps(report, indent=2) + "\n")),
        "md": _atomic(out_dir / "parzen.md", lambda t: t.write_text(parzen_markdown(report))),
        "png": plot_parzen(report, out_dir / "parzen.png"),
    }


def parzen_table(report: dict) -> Table:
    """The report's result rows as a Rich table for the terminal."""
    table = Table(title=f"Parzen-window log-likelihood on {report['dataset']} (nats)", caption=report["note"])
    for name, justify in (("model", "left"), ("sigma", "right"), ("log-likelihood", "right"), ("samples", "right")):
        table.add_column(name, justify=justify)
    n_models = len(report["models"]) + (report["across_seeds"] is not None)
    for i, row in enumerate(_rows(report)):
        table.add_row(*map(escape, row), style="bold" if i < n_models else "dim" if "paper" in row[0] else None,
                      end_section=i == n_models - 1)
    return table
