"""Parzen reports: a JSON record, a Markdown page, a PNG of validation log-likelihood against sigma, a Rich table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gancli.errors import GancliError
from gancli.files import atomic_path, check_writable

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


# What a summary shows of each result: parzen_headline reads the report through these names.
HEADLINE = ("label", "mean", "stderr", "sigma", "epoch", "step", "n_samples")
FILES = {"json": "parzen.json", "md": "parzen.md", "png": "parzen.png"}


def parzen_headline(report: dict) -> dict:
    """A report's results for a summary: {"models", "across_seeds", "calibration"}, the calibration apart.

    "models" has one entry per evaluated generator (one per seed for a multi-seed run) with HEADLINE's fields;
    "across_seeds" is {n, mean, std, ddof} or None; "calibration" (real training images scored as the model, to
    show the scale: never the model's figure) is an entry like the models' or None. ValueError for anything
    parzen_report did not write.
    """
    if not (isinstance(report, dict) and report.get("kind") == "parzen" and isinstance(report.get("models"), list)
            and report["models"]):
        raise ValueError("not a Parzen report written by 'gancli evaluate'")
    across, cal = report.get("across_seeds"), report.get("calibration")
    if across is not None and not (isinstance(across, dict) and all(_is_number(across.get(k)) for k in ("n", "mean", "std"))):
        raise ValueError("not a Parzen report written by 'gancli evaluate' (its across_seeds is not a result)")
    return {
        "models": [_headline_entry(m) for m in report["models"]],
        "across_seeds": across,
        "calibration": None if cal is None else _headline_entry(cal),
    }


def _headline_entry(entry) -> dict:
    picked = {k: entry.get(k) for k in HEADLINE} if isinstance(entry, dict) else {}
    if not (picked and isinstance(picked["label"], str)
            and all(_is_number(picked[k]) for k in ("mean", "stderr", "sigma", "n_samples"))
            and all(picked[k] is None or type(picked[k]) is int for k in ("epoch", "step"))):
        raise ValueError("not a Parzen report written by 'gancli evaluate' (a result lacks its numbers)")
    return picked


def _is_number(x) -> bool:
    """An int or float (NaN and inf included: a result may be one); not a bool."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Before any work: out_dir can take the report files, and holds none of them unless force."""
    check_writable(out_dir)
    for name in FILES.values():
        if (Path(out_dir) / name).exists() and not force:
            raise GancliError(f"{Path(out_dir) / name} already exists: pass --force to overwrite it, or --out to write elsewhere")


def _model_name(m: dict) -> str:
    """A model row's label with its checkpoint epoch/step when known."""
    at = ", ".join(f"{k} {m[k]}" for k in ("epoch", "step") if m.get(k) is not None)
    return f"{m['label']} ({at})" if at else m["label"]


def format_ll(mean, err) -> str:
    """mean ± err, err to two significant digits and mean to as many decimals (at least one): -2.0325 ± 0.0069
    on toy data, where one decimal would show ± 0.0."""
    if not (_is_number(mean) and math.isfinite(mean)):
        return "not finite" if mean is None else str(mean)  # a summary's JSON has no NaN or inf: they became null
    if not (_is_number(err) and math.isfinite(err) and err > 0):
        return f"{mean:.1f}"
    decimals = max(1, 1 - math.floor(math.log10(err)))
    return f"{mean:.{decimals}f} ± {err:.{decimals}f}"


def _rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, sigma, log-likelihood, samples) rows shared by the Markdown and the terminal table."""
    rows = [(_model_name(m), f"{m['sigma']:.4g}", format_ll(m["mean"], m["stderr"]), str(m["n_samples"]))
            for m in report["models"]]
    if s := report["across_seeds"]:
        rows.append((f"mean over {s['n']} seeds", "", f"{format_ll(s['mean'], s['std'])} (std)", ""))
    if c := report["calibration"]:
        rows.append((f"calibration: {c['label']}", f"{c['sigma']:.4g}", format_ll(c["mean"], c["stderr"]),
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
    lines += conditional_markdown(report)
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


def _conditional_grid(report: dict) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of a conditional run's class accuracy and per-class Fréchet distance: a row per class and one
    over all, two columns per model and for the real-image calibration; None when nothing was judged."""
    cond = report.get("conditional")
    if not (isinstance(cond, dict) and cond.get("classifier")):
        return None
    entries = [(m["label"], m["conditional"]) for m in report["models"] if m.get("conditional")]
    if cal := cond.get("calibration"):
        entries.append((f"calibration: {cal['label']}", cal))
    pct = lambda x: "-" if x is None else f"{x:.1%}"
    num = lambda x: "-" if x is None else f"{x:.3g}"
    header = ["class", "samples"] + [f"{name}: {what}" for name, _ in entries for what in ("accuracy", "Fréchet")]
    rows = [[str(c), str(n)] + [cell for _, e in entries for cell in (pct(e["per_class"][c]["accuracy"]), num(e["per_class"][c]["frechet"]))]
            for c, n in enumerate(cond["samples_per_class"])]
    rows.append(["all", str(sum(cond["samples_per_class"]))]
                + [cell for _, e in entries for cell in (pct(e["accuracy"]), f"{num(e['frechet_mean'])} (mean)")])
    return header, rows


def _conditional_caption(cond: dict) -> str:
    paper = cond.get("paper")
    return (f"Classifier {cond['classifier'].get('version', cond['classifier']['name'])} (accuracy on the test images "
            f"{cond['classifier_test_accuracy']:.1%}); Fréchet distance on {cond['features']} against {cond['reference']}"
            + (f". {paper['model']}: Parzen {paper['mean']:g} ± {paper['stderr']:g}" if paper else ""))


def conditional_markdown(report: dict) -> list[str]:
    """The Markdown lines of a conditional run's section (none for an unconditional run)."""
    cond = report.get("conditional")
    if not isinstance(cond, dict):
        return []
    lines = ["", "## Conditional samples", "", f"Labels: {cond['labels']}: {', '.join(map(str, cond['samples_per_class']))}.", ""]
    if paper := cond.get("paper"):
        lines += [f"{paper['model']}: Parzen log-likelihood {paper['mean']:g} ± {paper['stderr']:g} (the same protocol).", ""]
    grid = _conditional_grid(report)
    if grid is None:
        return lines + [f"{cond.get('note', 'Not judged.')}"]
    header, rows = grid
    return lines + [_conditional_caption(cond) + ".", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|",
                    *("| " + " | ".join(r) + " |" for r in rows)]


def conditional_table(report: dict) -> Table | None:
    """A conditional run's class accuracy and per-class Fréchet distance as a Rich table; None when not judged."""
    grid = _conditional_grid(report)
    if grid is None:
        return None
    header, rows = grid
    table = Table(title=f"Conditional samples on {report['dataset']}: class accuracy and per-class Fréchet distance",
                  caption=_conditional_caption(report["conditional"]))
    for i, name in enumerate(header):
        table.add_column(escape(name), justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*map(escape, row), style="bold" if i == len(rows) - 1 else None)
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
    paths = {kind: out_dir / name for kind, name in FILES.items()}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic(paths["json"], lambda t: t.write_text(json.dumps(report, indent=2) + "\n"))
        _atomic(paths["md"], lambda t: t.write_text(parzen_markdown(report)))
        plot_parzen(report, paths["png"])
    except OSError as e:  # checked before the work, so only a full disk or a folder changed meanwhile gets here
        raise GancliError(f"cannot write the report into {out_dir}: {e.strerror or e}") from None
    return paths


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
