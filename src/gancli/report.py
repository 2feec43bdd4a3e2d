"""Evaluation reports, each as a JSON record, a Markdown page, a PNG and rows for a terminal table: the Parzen protocol's
(log-likelihood against sigma) and the sample-quality metrics' (class histogram, precision against recall)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from gancli import metrics, rundir
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


def across_seeds(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of one figure over the seeds of a run: the one statistic every
    report gives across seeds."""
    return statistics.fmean(values), statistics.stdev(values)


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
        mean, std = across_seeds([m["mean"] for m in models])
        report["across_seeds"] = {"n": len(models), "mean": mean, "std": std, "ddof": 1}
    if dataset == "mnist":
        report["paper_table1"] = [{"model": n, "mean": m, "stderr": s} for n, m, s in PAPER_TABLE1_MNIST]
    return report


# What a summary shows of each result: parzen_headline reads the report through these names.
HEADLINE = ("label", "mean", "stderr", "sigma", "epoch", "step", "n_samples", "generator_ema")
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


def check_out_dir(out_dir: Path, force: bool, files: dict[str, str] = FILES) -> None:
    """Before any work: out_dir can take the report files, and holds none of them unless force."""
    check_writable(out_dir)
    for name in files.values():
        if (Path(out_dir) / name).exists() and not force:
            raise GancliError(f"{Path(out_dir) / name} already exists: pass --force to overwrite it, or --out to write elsewhere")


def check_run_out_dirs(ckpt: Path, run_paths: list[Path], out: Path | None, force: bool,
                       files: dict[str, str] = FILES) -> tuple[Path, list[Path]]:
    """Before any work: (out_dir, seed_dirs) for a checkpoint's report, checked as check_out_dir. out_dir is out
    (kept unless force) or the checkpoint's reports/; seed_dirs, each seed's reports/ of a multi-seed run. A run's
    reports/ hold its latest evaluation and are always rewritten."""
    out_dir = out if out is not None else rundir.reports_dir(ckpt)
    check_out_dir(out_dir, force or out is None, files)
    seed_dirs = [rundir.reports_dir(p) for p in run_paths] if len(run_paths) > 1 else []
    for folder in seed_dirs:
        check_out_dir(folder, True, files)
    return out_dir, seed_dirs


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


def plot_overlaid(panels: list, path: Path, title: str = "") -> Path:
    """One panel per metric, one line per run (gancli compare): panels is [(heading, [(label, epochs, values,
    standard errors or None)])]; a band of ± one standard error around a line that has them."""
    from matplotlib.figure import Figure

    from matplotlib.ticker import MaxNLocator

    cols = 2 if len(panels) == 4 else min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (heading, lines) in zip(axes, panels):
        for label, epochs, values, errs in lines:
            (line,) = ax.plot(epochs, values, label=label, marker="o" if len(epochs) < 30 else None, markersize=3)
            if errs is not None:
                ax.fill_between(epochs, [v - e for v, e in zip(values, errs)], [v + e for v, e in zip(values, errs)],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    legend = {}  # label -> line, from every panel: a run may lack the first panel's metric
    for ax in axes[:len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(labels) > 3), 1, 1))
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _atomic(path: Path, write) -> Path:
    """Write through a temporary file and rename, so a report is never left half-written."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _write_files(report: dict, out_dir: Path, names: dict[str, str], markdown, plot) -> dict[str, Path]:
    """Write a report as names' json, md (markdown(report)) and png (plot(report, path)) into out_dir; return their
    paths by kind."""
    out_dir = Path(out_dir)
    paths = {kind: out_dir / name for kind, name in names.items()}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic(paths["json"], lambda t: t.write_text(json.dumps(report, indent=2) + "\n"))
        _atomic(paths["md"], lambda t: t.write_text(markdown(report)))
        plot(report, paths["png"])
    except OSError as e:  # checked before the work, so only a full disk or a folder changed meanwhile gets here
        raise GancliError(f"cannot write the report into {out_dir}: {e.strerror or e}") from None
    return paths


def write_parzen(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write parzen.json, parzen.md and parzen.png into out_dir; return their paths by kind."""
    return _write_files(report, out_dir, FILES, parzen_markdown, plot_parzen)


# --- sample-quality metrics (gancli.metrics) ---

METRICS_FILES = {"json": "metrics.json", "md": "metrics.md", "png": "metrics.png"}
METRICS_NOTE = (
    "Measured on the penultimate features and logits of a fixed, shipped classifier against the test split; "
    "the calibration rows put real training images, then uniform noise, in place of the samples."
)
INCEPTION_NOTE = (
    "The Inception metrics are measured on the pool3 features of the 2015-12-05 Inception-v3 graph, which published "
    "FIDs use, against the test split; KD is the unbiased squared MMD of the cubic polynomial kernel over subsets."
)
def metrics_report(header: dict, models: list[dict], calibration: dict | None, sampling: dict, **extra) -> dict:
    """The report as plain data. header: {dataset, metrics, reference (metrics.FeatureReference.info()), settings}; models:
    each a metrics.measure row plus label/source/epoch/step; calibration: metrics.calibrate's {"train", "noise"}."""
    report = {
        "kind": "metrics",
        "dataset": header["dataset"],
        "metrics": header["metrics"],
        "feature_net": header["reference"]["feature_net"]["version"],
        "reference": header["reference"],
        "settings": header["settings"],
        "sampling": sampling,
        "models": models,
        "across_seeds": None,
        "calibration": calibration,
        "note": METRICS_NOTE + (" " + INCEPTION_NOTE if "inception" in header["metrics"] else ""),
        **extra,
    }
    if len(models) > 1:
        flat = [metrics.scalars(m) for m in models]
        spread = {k: across_seeds([f[k] for f in flat]) for k in flat[0]}
        report["across_seeds"] = {"n": len(models), "ddof": 1, **{k: {"mean": m, "std": s} for k, (m, s) in spread.items()}}
    return report


def metrics_headline(report: dict) -> dict:
    """{"feature_net", "n_samples", "models": [label, epoch, step, scalars...], "calibration": {"train", "noise"}
    or None} of a metrics report, for a summary; ValueError for anything metrics_report did not write."""
    if not (isinstance(report, dict) and report.get("kind") == "metrics" and isinstance(report.get("models"), list)
            and report["models"] and all(isinstance(m, dict) for m in report["models"])):
        raise ValueError("not a metrics report written by 'gancli evaluate --metrics'")
    try:
        entry = lambda m: {"label": m["label"], "epoch": m.get("epoch"), "step": m.get("step"), "n": m["n"], **metrics.scalars(m)}
        cal = report.get("calibration")
        return {
            "feature_net": report["feature_net"],
            "n_samples": report["sampling"]["n_samples"],
            "models": [entry(m) for m in report["models"]],
            "across_seeds": report.get("across_seeds"),
            "calibration": None if cal is None else {k: entry(cal[k]) for k in ("train", "noise")},
        }
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a metrics report written by 'gancli evaluate --metrics' (no {e})") from None


def _metric_columns(report: dict) -> list[str]:
    return [k for k in metrics.scalars(report["models"][0]) if k in metrics.COLUMNS]


def _metric_cell(flat: dict, key: str) -> str:
    v = flat.get(key)
    if v is None:
        return "-"
    if key == "score":
        return f"{v:.3f} ± {flat['score_std']:.3f}"
    if key == "classes_covered":
        return str(v)
    if key == "copy_share":
        return f"{v:.2%}"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _metric_rows(report: dict) -> list[tuple[str, list[str]]]:
    """(row name, cells) for every model, the mean over seeds, and the calibration rows."""
    cols = _metric_columns(report)
    rows = [(_model_name(m), [_metric_cell(metrics.scalars(m), k) for k in cols]) for m in report["models"]]
    if s := report.get("across_seeds"):
        cells = [f"{s[k]['mean']:.4g} ± {s[k]['std']:.2g}" if k in s else "-" for k in cols]
        rows.append((f"mean ± std over {s['n']} seeds", cells))
    for c in (report.get("calibration") or {}).values():
        rows.append((f"calibration: {c['label']}", [_metric_cell(metrics.scalars(c), k) for k in cols]))
    return rows


def _metrics_caption(report: dict) -> str:
    s = report["sampling"]
    ref = report["reference"]
    seed = f", noise seed {s['seed']}" if s.get("seed") is not None else ""
    text = (f"{s['n_samples']:,} samples ({s['source']}{seed}) against the {ref['n']:,} {ref['split']} images of "
            f"{report['dataset']}; feature network {report['feature_net']}")
    if inc := ref.get("inception"):
        text += f"; Inception metrics on {inc['name']}, sha256 {inc['sha256'][:12]}..., {inc['resize']}"
    return text


def metrics_markdown(report: dict, plot_name: str | None = METRICS_FILES["png"]) -> str:
    """The report as a Markdown page: the table, how each metric is computed, the conditional section."""
    cols = _metric_columns(report)
    st = report["settings"]
    lines = [
        f"# Sample-quality metrics on {report['dataset']}",
        "",
        _metrics_caption(report) + ".",
        "",
        "| model | " + " | ".join(metrics.COLUMNS[k].heading for k in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
        *(f"| {name} | {' | '.join(cells)} |" for name, cells in _metric_rows(report)),
        "",
        f"FD: Fréchet distance (covariances {st['covariance']}) on the features, or on the logits; class. score: "
        f"exp E KL(p(y|x) || p(y)), mean ± std over {st['score_splits']} splits; precision/recall with "
        f"k = {st['k_precision_recall']}, density/coverage with k = {st['k_density_coverage']}; classes holding >= "
        f"{st['class_min_share']:.0%} of the samples; likely copies: samples nearer a training image than the "
        f"{st['copy_threshold']}. Better: " + "; ".join(
            f"{way} {', '.join(metrics.COLUMNS[k].heading for k in cols if metrics.COLUMNS[k].better == way)}"
            for way in ("lower", "higher") if any(metrics.COLUMNS[k].better == way for k in cols)) + ".",
    ]
    classes = [(name, m["classes"]["histogram"]) for name, m in _entries(report) if "classes" in m]
    if classes:
        n = len(classes[0][1])
        lines += ["", "## Predicted classes", "", "| model | " + " | ".join(map(str, range(n))) + " |",
                  "|---" * (n + 1) + "|", *(f"| {name} | {' | '.join(map(str, h))} |" for name, h in classes)]
    lines += conditional_markdown(report)
    if plot_name:
        lines += ["", f"![class histogram and precision against recall]({plot_name})"]
    lines += ["", f"_{report['note']}_", ""]
    return "\n".join(lines)


def _entries(report: dict) -> list[tuple[str, dict]]:
    """(name, row) of every model and calibration row."""
    out = [(m["label"], m) for m in report["models"]]
    return out + [(f"calibration: {c['label']}", c) for c in (report.get("calibration") or {}).values()]


def plot_metrics(report: dict, path: Path) -> Path:
    """Save the predicted-class histogram (share of samples per class) and precision against recall as a PNG;
    a panel whose metric was not asked for says so."""
    from matplotlib.figure import Figure

    entries = _entries(report)
    fig = Figure(figsize=(11, 4), dpi=110)
    hist_ax, pr_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    with_classes = [(name, m["classes"]["histogram"]) for name, m in entries if "classes" in m]
    if with_classes:
        n_classes = len(with_classes[0][1])
        width = 0.8 / len(with_classes)
        for i, (name, h) in enumerate(with_classes):
            total = max(sum(h), 1)
            hist_ax.bar([c - 0.4 + width * (i + 0.5) for c in range(n_classes)], [v / total for v in h], width, label=name)
        hist_ax.axhline(1 / n_classes, color="grey", linestyle="--", linewidth=0.8, label="uniform")
        hist_ax.set_xticks(range(n_classes))
        hist_ax.set_xlabel("predicted class")
        hist_ax.set_ylabel("share of samples")
        hist_ax.legend(fontsize="x-small")
    else:
        hist_ax.text(0.5, 0.5, "class histogram: not measured\n(--metrics classes)", ha="center", va="center")
        hist_ax.set_axis_off()
    hist_ax.set_title("predicted classes", fontsize="medium")
    with_pr = ([(name, m["prdc"]) for name, m in entries if "prdc" in m]
               or [(f"{name} (Inception)", m["inception"]["prdc"]) for name, m in entries if "inception" in m])
    if with_pr:
        for name, p in with_pr:
            pr_ax.plot([p["recall"]], [p["precision"]], "o", label=name)
        pr_ax.set_xlim(-0.02, 1.02)
        pr_ax.set_ylim(-0.02, 1.02)
        pr_ax.set_xlabel(f"recall (k = {with_pr[0][1]['k_pr']})")
        pr_ax.set_ylabel("precision")
        pr_ax.grid(alpha=0.3)
        pr_ax.legend(fontsize="x-small")
    else:
        pr_ax.text(0.5, 0.5, "precision and recall: not measured\n(--metrics prdc)", ha="center", va="center")
        pr_ax.set_axis_off()
    pr_ax.set_title("precision against recall", fontsize="medium")
    fig.suptitle(f"{report['dataset']}: {report['feature_net']}", fontsize="small")
    fig.tight_layout()
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_metrics(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write metrics.json, metrics.md and metrics.png into out_dir; return their paths by kind."""
    return _write_files(report, out_dir, METRICS_FILES, metrics_markdown, plot_metrics)


# --- a semi-supervised D as a classifier (gancli.semi_supervised) ---

CLASSIFY_FILES = {"json": "classify.json", "md": "classify.md", "png": "classify.png"}
CLASSIFY_NOTE = (
    "D's class is the argmax of its K class logits (the fake class, its logit fixed at 0, takes no part), with no "
    "noise in D; errors are counted over the whole test split."
)


def classify_report(dataset: str, models: list[dict]) -> dict:
    """The report as plain data. models: each semi_supervised.scores' output plus label/source/epoch/step, d_ema
    (the average's decay, None for D itself), labels and label_seed."""
    from gancli import semi_supervised

    report = {
        "kind": "classify",
        "dataset": dataset,
        "protocol": {"n_test": models[0]["n"], "classifier": "argmax of D's class logits, D deterministic (no noise)"},
        "models": models,
        "across_seeds": None,
        "paper": semi_supervised.paper_row(dataset, models[0]["labels"]),
        "note": CLASSIFY_NOTE,
    }
    if len(models) > 1:
        mean, std = across_seeds([m["errors"] for m in models])
        report["across_seeds"] = {"n": len(models), "errors_mean": mean, "errors_std": std, "ddof": 1}
    return report


def _classify_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, labels, test errors, error rate) rows shared by the Markdown and the terminal table."""
    n = report["protocol"]["n_test"]
    rows = [(_model_name(m), f"{m['labels']} (seed {m['label_seed']})", f"{m['errors']:,}", f"{m['error_rate']:.2%}")
            for m in report["models"]]
    if s := report["across_seeds"]:
        rows.append((f"mean over {s['n']} seeds", "", f"{s['errors_mean']:.1f} ± {s['errors_std']:.1f} (std)",
                     f"{s['errors_mean'] / n:.2%}"))
    if p := report["paper"]:
        rows.append((p["model"], "", f"{p['errors_mean']:g} ± {p['errors_std']:g}", f"{p['errors_mean'] / 10_000:.2%}"))
    return rows


def _summed_confusion(report: dict) -> tuple[str, list[list[int]]]:
    """(what it is, matrix): the one model's confusion matrix, or the sum over seeds."""
    models = report["models"]
    if len(models) == 1:
        return models[0]["label"], models[0]["confusion"]
    k = len(models[0]["confusion"])
    total = [[sum(m["confusion"][i][j] for m in models) for j in range(k)] for i in range(k)]
    return f"summed over {len(models)} seeds", total


def classify_markdown(report: dict, plot_name: str | None = "classify.png") -> str:
    """The report as a Markdown page: the error counts, then each model's confusion matrix."""
    lines = [
        f"# A semi-supervised D as a classifier of the {report['dataset']} test split",
        "",
        f"Test errors of {report['protocol']['n_test']:,} images.",
        "",
        "| model | labelled examples | test errors | error rate |",
        "|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in _classify_rows(report)),
    ]
    for m in report["models"]:
        k = len(m["confusion"])
        lines += ["", f"## Confusion matrix: {_model_name(m)}", "", "rows: true class; columns: D's class", "",
                  "| | " + " | ".join(map(str, range(k))) + " |", "|---" * (k + 1) + "|"]
        lines += [f"| **{i}** | " + " | ".join(f"**{v}**" if i == j else str(v) for j, v in enumerate(row)) + " |"
                  for i, row in enumerate(m["confusion"])]
    if plot_name:
        lines += ["", f"![confusion matrices]({plot_name})"]
    lines += ["", f"_{report['note']}_", ""]
    return "\n".join(lines)


def plot_confusion(report: dict, path: Path) -> Path:
    """Save each model's confusion matrix as a heat map (log colour scale, so that the errors show), as a PNG."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    models = report["models"]
    cols = min(len(models), 4)
    rows = -(-len(models) // cols)
    fig = Figure(figsize=(4.6 * cols, 4.2 * rows), dpi=110)
    for i, m in enumerate(models):
        ax = fig.add_subplot(rows, cols, i + 1)
        matrix = np.asarray(m["confusion"])
        shown = np.ma.masked_equal(matrix, 0)
        image = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(1, matrix.max())))
        for (r, c), v in np.ndenumerate(matrix):
            if v:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=6, color="white" if r != c else "black")
        k = len(matrix)
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xlabel("D's class")
        ax.set_ylabel("true class")
        ax.set_title(f"{m['label']}: {m['errors']:,} errors", fontsize="small")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{report['dataset']} test split: confusion of a semi-supervised D", fontsize="small")
    fig.tight_layout()
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_classify(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write classify.json, classify.md and classify.png into out_dir; return their paths by kind."""
    return _write_files(report, out_dir, CLASSIFY_FILES, classify_markdown, plot_confusion)


# --- rows of the terminal's tables: the CLI draws them (gancli.cli.render) from the rows the Markdown uses ---


def model_row_count(report: dict) -> int:
    """How many of a report's first rows are its models' own: one per model, and the mean over seeds."""
    return len(report["models"]) + (report.get("across_seeds") is not None)


def parzen_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, sigma, log-likelihood, samples): the models', the mean over seeds, the calibration's, the paper's."""
    return _rows(report)


def coverage_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, modes covered, share of high-quality samples, rule) of each entry with a mode coverage; [] for
    datasets without known modes."""
    return _coverage_rows(report)


def conditional_grid(report: dict) -> tuple[list[str], list[list[str]], str] | None:
    """(header, rows, caption) of a conditional run's class accuracy and per-class Fréchet distance; None when
    nothing was judged."""
    grid = _conditional_grid(report)
    return None if grid is None else (*grid, _conditional_caption(report["conditional"]))


def metric_rows(report: dict) -> tuple[list[str], list[tuple[str, list[str]]], str]:
    """(metric headings, (row name, a cell per metric) of every model, the mean over seeds and the calibration
    rows, caption) of a metrics report."""
    return [metrics.COLUMNS[k].heading for k in _metric_columns(report)], _metric_rows(report), _metrics_caption(report)


def classify_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(model, labelled examples, test errors, error rate): the models', the mean over seeds, the paper's."""
    return _classify_rows(report)


def summed_confusion(report: dict) -> tuple[str, list[list[int]]]:
    """(what it is, matrix): the one model's confusion matrix, or the sum over seeds."""
    return _summed_confusion(report)


# --- training curves (metrics.jsonl): inspect writes them as curves.png, the HTML report inlines them ---

# Keys of a metrics.jsonl record that are not curves of the game: bookkeeping, the schedule, the evaluation's seconds.
NOT_CURVES = ("epoch", "step", "it_per_s", "lr", "momentum", "eval_s")
GAME = ("d_loss", "g_loss", "d_real", "d_fake")


def curves_figure(history: list[dict], title: str = "", probabilities: bool = True):
    """Per-epoch D and G losses, and mean D(x) and D(G(z)), as a matplotlib Figure. probabilities False (a hinge,
    least-squares, wgan-gp or relativistic D: objectives.probabilities): D's outputs are raw scores, drawn unbounded
    and without the 2014 game's equilibrium lines."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    epochs = [r["epoch"] for r in history]
    style = {"marker": "o", "markersize": 3} if len(history) < 30 else {}
    fig = Figure(figsize=(10, 3.8), dpi=100)
    losses, outputs = fig.subplots(1, 2)
    for ax, keys, labels, equilibrium, name in (
        (losses, ("d_loss", "g_loss"), ("D loss", "G loss"), math.log(2.0), "D loss log 2"),
        (outputs, ("d_real", "d_fake"), ("mean D(x)", "mean D(G(z))"), 0.5, "1/2"),
    ):
        for key, label in zip(keys, labels):
            ax.plot(epochs, [r.get(key, np.nan) for r in history], label=label, **style)
        # The value both reach at the game's equilibrium, p_g = p_data and D = 1/2 everywhere.
        if probabilities:
            ax.axhline(equilibrium, color="grey", linestyle="--", linewidth=0.8, label=f"at equilibrium ({name})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    losses.set_title("losses")
    outputs.set_title("discriminator outputs" if probabilities else "discriminator outputs (raw)")
    if probabilities:
        outputs.set_ylim(-0.02, 1.02)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def other_curves(history: list[dict]) -> list[str]:
    """The numeric metrics of a history besides the game's four and the schedule, in the order first logged: an
    objective's own, and the --eval-every measurements (fid, score, ...)."""
    names: list[str] = []
    for r in history:
        for k, v in r.items():
            if k not in NOT_CURVES and k not in GAME and k not in names and _is_number(v):
                names.append(k)
    return names


def other_curves_figure(history: list[dict], names: list[str], title: str = "", most_columns: int = 6):
    """One small panel per metric of names against the epoch (the epochs that logged it), as a Figure."""
    from matplotlib.figure import Figure

    columns = max(1, min(len(names), most_columns))
    rows = -(-len(names) // columns)
    fig = Figure(figsize=(2.6 * columns, 2.2 * rows + 0.4), dpi=100)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, i + 1)
        points = [(r["epoch"], r[name]) for r in history if _is_number(r.get(name))]
        ax.plot([e for e, _ in points], [v for _, v in points], marker="o" if len(points) < 30 else None, markersize=3)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    """A Figure as PNG bytes, for a page that carries its images inline."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
