"""What a checkpoint folder holds: a plain-data summary, its training curves as a PNG, and the text of a view of both."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gancli import events, metrics, objectives, parallel, rundir, sampling, train
from gancli.files import atomic_path
from gancli.models import count_params
from gancli.report import curves_figure, format_ll, metrics_headline, parzen_headline

BOOKKEEPING = ("epoch", "step")
SCHEDULE = ("it_per_s", "lr", "momentum")  # logged beside what the objectives report
TABLE_ROWS = 15  # epochs shown in the history table: the first and last few, evenly spaced between
CURVES = "curves.png"


def summarize(path: Path, curves: bool = True) -> dict[str, Any]:
    """The summary of a run folder; for a multi-seed folder {"path", "seeds": [one summary per seed], "events": its
    seeds' TensorBoard events together}."""
    runs = rundir.find_runs(path)
    if len(runs) == 1 and runs[0] == Path(path):
        return summarize_run(runs[0], curves)
    seeds = [summarize_run(r, curves) for r in runs]
    return {"path": str(path), "seeds": seeds, "events": events_summary(Path(path), [Path(r) for r in runs])}


def events_summary(logdir: Path, folders: list[Path] | None = None) -> dict[str, Any]:
    """{"files", "newest" (the last written, or None), "newest_at" (its time, UTC ISO), "tensorboard" (the command
    that shows them)} of the TensorBoard event files in folders (default: logdir itself), which logdir holds."""
    found = [p for f in (folders or [logdir]) for p in events.files(f)]
    newest = max(found, key=lambda p: p.stat().st_mtime, default=None)
    at = None if newest is None else datetime.fromtimestamp(newest.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return {"files": len(found), "newest": None if newest is None else str(newest), "newest_at": at,
            "tensorboard": f"tensorboard --logdir {logdir}"}


def events_text(e: dict[str, Any]) -> str:
    """How many event files, the newest, and the command to watch them; or why there are none."""
    if not e["files"]:
        return "none (gancli train writes them beside metrics.jsonl)"
    return f"{_plural(e['files'], 'file')}, newest {e['newest']} ({e['newest_at']}); watch with: {e['tensorboard']}"


def summarize_run(run_dir: Path, curves: bool = True) -> dict[str, Any]:
    """One run's checkpoint (restored, so a damaged one fails here), metrics history, reports and curves."""
    run_dir = Path(run_dir)
    run = sampling.restore(run_dir)
    meta = run.metadata
    history, skipped = rundir.read_metrics(run_dir)
    summary = {
        "path": str(run_dir),
        "dataset": run.config.dataset,
        "provenance": meta.get("provenance"),
        "epoch": meta.get("epoch"),
        "step": meta.get("step"),
        "partial_epoch": "partial_epoch" in meta,
        "checkpoints": rundir.checkpoint_steps(run_dir),
        "seed": meta.get("seed", run.config.seed),
        "data_shape": meta.get("data_shape"),
        "n_train": meta.get("n_train"),
        "iters_per_epoch": meta.get("iters_per_epoch"),
        "params": {"generator": count_params(run.state["g"]), "discriminator": count_params(run.state["d"])},
        "ema": sampling.ema_decay(run),
        "ada_p": float(run.state["ada"]["p"]) if "ada" in run.state else None,  # augmentation's probability now
        "versions": meta.get("versions"),
        "device": meta.get("device"),
        "mesh": meta.get("mesh"),
        "saved_at": meta.get("saved_at"),
        "compile_s": meta.get("compile_s"),
        "labelled": meta.get("labelled"),  # a semi-supervised seed's labelled subset: its label seed, size and digest
        "config": run.config.to_dict(),
        "metrics": metrics_summary(history, skipped),
        "d_rejects_since": train.rejected_since(history, objectives.probabilities(run.config)),
        "epoch_grids": len(list((run_dir / "samples").glob("epoch_*.png"))),
        "parzen": parzen_report(run_dir),
        "sample_quality": metrics_report(run_dir),
        "reports": sorted(p.name for p in rundir.reports_dir(run_dir).glob("*")) if rundir.reports_dir(run_dir).is_dir() else [],
        "events": events_summary(run_dir),
        "curves": None,
    }
    if curves and history:
        try:
            summary["curves"] = str(plot_curves(history, run_dir / CURVES, f"{run_dir} ({run.config.dataset})",
                                                 objectives.probabilities(run.config)))
        except OSError as e:  # a read-only run folder still gets its summary
            summary["curves_error"] = f"cannot write {run_dir / CURVES}: {e.strerror or e}"
    return _plain(summary)


def table_rows(n: int, rows: int = TABLE_ROWS) -> list[int]:
    """Indices of the epochs to show: all of few, else the first and last three and evenly spaced between."""
    if n <= rows:
        return list(range(n))
    middle = np.linspace(3, n - 4, rows - 6).round().astype(int).tolist()
    return sorted(set(range(3)) | set(middle) | set(range(n - 3, n)))


def metrics_summary(history: list[dict[str, Any]], skipped: int = 0) -> dict[str, Any]:
    """Epoch count, selected rows, and each metric's min and max with the epoch it happened in."""
    out: dict[str, Any] = {"epochs": len(history), "unreadable_lines": skipped}
    if not history:
        return out
    out["first"], out["last"] = history[0], history[-1]
    out["rows"] = [history[i] for i in table_rows(len(history))]
    out["names"] = metric_names(history)
    for which, pick in (("min", min), ("max", max)):
        out[which] = {}
        for key in out["names"] + list(SCHEDULE):
            valued = [(r[key], r["epoch"]) for r in history if _finite(r.get(key))]
            if valued:
                value, epoch = pick(valued, key=lambda ve: ve[0])
                out[which][key] = {"value": value, "epoch": epoch}
    return out


def metric_names(history: list[dict[str, Any]]) -> list[str]:
    """The metrics the run's objectives reported, in the order the log has them (whatever an objective adds)."""
    names: dict[str, None] = {}
    for record in history:
        names.update((k, None) for k in record if k not in BOOKKEEPING + SCHEDULE)
    return list(names)


def parzen_report(run_dir: Path) -> dict[str, Any] | None:
    """{"path", "headline": report.parzen_headline} of the latest Parzen report (reports/parzen.json, else the
    newest parzen*.json), {"path", "error"} if it cannot be read, None if there is none."""
    reports = rundir.reports_dir(run_dir)
    path = reports / "parzen.json"
    if not path.is_file():
        found = sorted(reports.glob("parzen*.json"), key=lambda p: p.stat().st_mtime) if reports.is_dir() else []
        if not found:
            return None
        path = found[-1]
    try:
        headline = parzen_headline(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {"path": str(path), "error": f"unreadable ({type(e).__name__})"}
    except ValueError as e:
        return {"path": str(path), "error": str(e)}
    return {"path": str(path), "headline": headline}


def metrics_report(run_dir: Path) -> dict[str, Any] | None:
    """{"path", "headline": report.metrics_headline} of the run's latest sample-quality report (reports/metrics.json),
    {"path", "error"} if it cannot be read, None if there is none."""
    path = rundir.reports_dir(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return {"path": str(path), "headline": metrics_headline(json.loads(path.read_text()))}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {"path": str(path), "error": f"unreadable ({type(e).__name__})"}
    except ValueError as e:
        return {"path": str(path), "error": str(e)}


def _quality_text(q: dict[str, Any] | None, step: int | None) -> str:
    """The model's headline metrics and the real-image calibration's, labelled, with the report's path."""
    if q is None:
        return "no report (run 'gancli evaluate --metrics all')"
    if "error" in q:
        return f"{q['path']}: {q['error']}"
    h = q["headline"]

    def figures(e: dict) -> str:
        return ", ".join(f"{c.short} {_num(e[key])}" for key, c in metrics.COLUMNS.items()
                         if c.short and _finite(e.get(key)))

    text = "; ".join(f"{m['label']}" + (f" (step {m['step']})" if m.get("step") is not None else "") + f": {figures(m)}"
                     for m in h["models"])
    text += f" ({_num(h['n_samples'])} samples, {h['feature_net']})"
    steps_seen = {m.get("step") for m in h["models"]} - {None}
    if step is not None and steps_seen and steps_seen != {step}:
        text += f"; the checkpoint is now at step {step}: run 'gancli evaluate --metrics' again"
    if c := h["calibration"]:
        text += f"; calibration, {c['train']['label']}: {figures(c['train'])}"
    return f"{text}; {q['path']}"


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "", probabilities: bool = True) -> Path:
    """report.curves_figure of the history as one PNG written atomically."""
    fig = curves_figure(history, title, probabilities)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return path


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _plain(x):
    """JSON-ready: tuples to lists, NaN and infinities to None (strict JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return _plain(x.item())
    return x


# --- The text of the terminal view: gancli.cli.render draws it ---


def run_facts(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows telling what a run summary's run is: its checkpoint, data, models, settings and device,
    and a warning when D has rejected every generated sample for a while."""
    c = s["config"]
    shape = "x".join(str(d) for d in s["data_shape"] or [])
    rows = []
    add = lambda label, text: rows.append((label, text))
    partial = " (saved mid-epoch)" if s["partial_epoch"] else ""
    add("checkpoint", f"epoch {s['epoch']}, step {s['step']}{partial}; kept steps "
        f"{', '.join(map(str, s['checkpoints']))}; saved {s['saved_at']}")
    add("dataset", f"{s['dataset']}: {s['n_train']:,} training examples of {shape}, "
        f"{s['iters_per_epoch']} iterations per epoch")
    add("provenance", _pairs(s["provenance"]) if isinstance(s["provenance"], dict) else str(s["provenance"]))
    p = s["params"]
    add("parameters", f"G {p['generator']:,}, D {p['discriminator']:,}")
    if s.get("ema") is not None:
        add("EMA of G", f"kept, decay {s['ema']!r}: sample and evaluate use it (--no-ema for G itself)")
    a = c.get("augment") or {}
    if a.get("policy"):
        p = "" if s.get("ada_p") is None else f"{s['ada_p']:.4g}"
        add("augmentation", f"{a['policy']} on everything D sees, each with probability p {p}; "
            + (f"ADA moves p towards E[sign D(x)] = {a['ada_target']:g} every {a['ada_interval']} iterations, by at most "
               f"1 per {a['ada_kimg']:g} kimg" if a.get("ada_target") else "p fixed at 1 (DiffAugment)"))
    add("run", f"preset {c['preset']}, seed {s['seed']}, k={c['k']}, {c['update']} updates, "
        + (f"{c['d_loss']} D loss, " if c.get("d_loss", "gan") != "gan" else "")
        + f"{c['g_loss']} G loss, batch {c['batch_size']}, training to epoch {c['epochs']}")
    penalty = {k: v for k, v in (c.get("penalty") or {}).items() if k in ("r1", "r2") and v}
    if c.get("d_loss") == "wgan-gp":
        penalty["gp"] = (c.get("penalty") or {}).get("gp", 10.0)
    if penalty:
        lazy = (c.get("penalty") or {}).get("lazy", 1)
        add("penalties", ", ".join(f"{k} {v!r}" for k, v in penalty.items()) + (f", every {lazy} D updates" if lazy > 1 else ""))
    if c.get("conditional"):
        add("conditional", f"model {c.get('model')}, G and D take the label, {c.get('n_classes')} classes; "
            "generated examples take the real batch's labels; sample --label N draws class N")
    if c.get("labels"):
        add("semi-supervised", f"{c['labels']} labelled training examples ({c['labels'] // max(c.get('n_classes') or 10, 1)} "
            f"per class, label seed {c['label_seed']}" + (f", subset sha256 {s['labelled']['sha256']}" if s.get("labelled") else "")
            + "); the unlabelled batches draw from the whole training split; D classifies"
            + (f" with its average of decay {c['d_ema']!r} (evaluate --classify)" if c.get("d_ema") else " (evaluate --classify)"))
    add("generator", _pairs(c["generator"]))
    add("discriminator", _pairs(c["discriminator"]))
    add("optimizer", _pairs(_optimizer_settings(c["optimizer"])))
    add("versions", _pairs(s["versions"]) if isinstance(s["versions"], dict) else str(s["versions"]))
    add("device", f"{s['device']}" + (f", compiled in {s['compile_s']} s" if s.get("compile_s") else ""))
    add("mesh", parallel.words(s.get("mesh")))
    since = s.get("d_rejects_since")
    if since is not None:
        add("warning", f"D has rejected every generated sample since epoch {since} (mean D(G(z)) below "
            f"{train.D_REJECTS:g} in every epoch since): this run has likely failed; look at its samples")
    return rows


def _optimizer_settings(o: dict[str, Any]) -> dict[str, Any]:
    """The optimiser's settings that act on the run: momentum and its ramp are sgd's alone."""
    if o.get("name") == "sgd":
        return o
    return {k: v for k, v in o.items() if not k.startswith("momentum")}


def run_outputs(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows telling what a run summary's run has produced: its reports, sample grids and curves."""
    rows = [("parzen", _parzen_text(s["parzen"], s["step"], s["ema"])),
            ("metrics", _quality_text(s.get("sample_quality"), s["step"]))]
    shown = {Path(r["path"]).name for r in (s["parzen"], s.get("sample_quality")) if r}
    others = [r for r in s["reports"] if r not in shown]
    if others:
        rows.append(("reports", ", ".join(others)))
    rows.append(("samples", f"{s['epoch_grids']} per-epoch grids in {Path(s['path']) / 'samples'}"))
    rows.append(("events", events_text(s["events"])))
    no_curves = "none: no metrics recorded" if not s["metrics"]["epochs"] else "not written this time"
    rows.append(("curves", s["curves"] or s.get("curves_error") or no_curves))
    return rows


# Headings of the metrics the table knows; any other metric shows under its own name. Min and max rows are
# for the objectives' metrics, not the schedule.
HEADINGS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))", "it_per_s": "it/s", "lr": "lr",
            "fid": "FD", "score": "score", "score_std": "±", "classes_covered": "classes", "classes_kl": "KL(cls)",
            "eval_s": "eval s", "d_labelled": "D lab", "d_unlabelled": "D unlab", "train_error": "train err",
            "test_errors": "test errors", "test_error": "test err", "test_errors_raw": "errors (raw D)",
            "test_error_raw": "err (raw D)"}


# Metric columns per table: an objective may log many metrics (the semi-supervised one logs 18), and one table
# that wide is unreadable in an 80-column terminal, so they are shown in groups, each with its epoch column.
COLUMNS_PER_TABLE = 7


def history_tables(m: dict[str, Any]) -> list[dict[str, Any]]:
    """A metrics summary's shown epochs as tables of at most COLUMNS_PER_TABLE metrics, each {"title" (the first
    table's; None for the others), "columns" (headings after "epoch"), "rows" (an epoch and its cells), "extremes"
    (min, at epoch, max, at epoch)}; [] when no metrics were recorded."""
    if not m["epochs"]:
        return []
    shown = len(m["rows"])
    title = f"metrics: {_plural(m['epochs'], 'epoch')}" + ("" if shown == m["epochs"] else f", {shown} shown")
    if m["unreadable_lines"]:
        title += f" ({_plural(m['unreadable_lines'], 'unreadable line')} skipped)"
    names = m["names"] + ["it_per_s", "lr"]
    tables = []
    for start in range(0, len(names), COLUMNS_PER_TABLE):
        columns = names[start:start + COLUMNS_PER_TABLE]
        extremes = []
        for which in ("min", "max"):
            found = [m[which].get(k) if k in m["names"] else None for k in columns]
            extremes.append([which, *[_num(v["value"]) if v else "" for v in found]])
            extremes.append(["at epoch", *[str(v["epoch"]) if v else "" for v in found]])
        tables.append({
            "title": title if start == 0 else None,
            "columns": [HEADINGS.get(name, name) for name in columns],
            "rows": [[str(r["epoch"]), *[_num(r.get(k)) for k in columns]] for r in m["rows"]],
            "extremes": extremes,
        })
    return tables


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


SEEDS_COLUMNS = ("folder", "seed", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "parzen")


def seeds_rows(summary: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """(title, a row of SEEDS_COLUMNS per seed) comparing the seeds of a multi-seed summary."""
    rows = []
    for s in summary["seeds"]:
        last = s["metrics"].get("last", {})
        rows.append([Path(s["path"]).name, str(s["seed"]), str(s["epoch"]),
                     *[_num(last.get(k)) for k in ("d_loss", "g_loss", "d_real", "d_fake")], _parzen_short(s["parzen"], s["ema"])])
    return f"{summary['path']}: {len(summary['seeds'])} seeds", rows


def _parzen_text(p: dict[str, Any] | None, step: int | None, ema: float | None = None) -> str:
    """The model's figure with how it was measured, the calibration apart and labelled, and the report's path."""
    if p is None:
        return "no report (run 'gancli evaluate')"
    if "error" in p:
        return f"{p['path']}: {p['error']}"
    h = p["headline"]
    text = _parzen_short(p) + " nats" + {"EMA": " of the EMA of G", "G": " of G itself (--no-ema)", None: ""}[_measured(h, ema)]
    if len(h["models"]) == 1:
        m = h["models"][0]
        at = ", ".join(f"{k} {m[k]}" for k in ("epoch", "step") if m[k] is not None)
        text += f" (sigma {_num(m['sigma'])}, {_num(m['n_samples'])} samples" + (f", at {at})" if at else ")")
        if m["step"] is not None and step is not None and m["step"] != step:
            text += f"; the checkpoint is now at step {step}: run 'gancli evaluate' again"
    if c := h["calibration"]:
        text += f"; calibration, {c['label']} as the model: {format_ll(c['mean'], c['stderr'])}"
    return f"{text}; {p['path']}"


def _parzen_short(p: dict[str, Any] | None, ema: float | None = None) -> str:
    """The model's figure: mean ± standard error, or mean ± std over seeds; never the calibration's. For a run
    that keeps an EMA of G, which generator it measured ("EMA" or "G"): its latest report may be of G itself."""
    if not p or "headline" not in p:
        return "-"
    h = p["headline"]
    which = f", {measured}" if (measured := _measured(h, ema)) else ""
    if s := h["across_seeds"]:
        return f"{format_ll(s['mean'], s['std'])} (std over {s['n']} seeds{which})"
    return format_ll(h["models"][0]["mean"], h["models"][0]["stderr"]) + which


def _measured(headline: dict[str, Any], ema: float | None) -> str | None:
    """Which generator a Parzen report of a run that keeps an EMA of G measured, "EMA" or "G"; None for a run without one."""
    if ema is None:
        return None
    return "EMA" if headline["models"][0]["generator_ema"] is not None else "G"


def _pairs(d: dict[str, Any] | None) -> str:
    """key=value pairs; floats exactly (repr), since a schedule constant such as lr_decay 1.000004 is not 1."""
    if not d:
        return "-"
    return ", ".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def _num(x) -> str:
    """A metric rounded for a table: 4 significant digits, whole numbers up to a billion, then an exponent."""
    if not _finite(x):
        return "-" if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    return f"{x:,.0f}" if 1e4 <= abs(x) < 1e9 else f"{x:.4g}"
