"""Runs side by side (gancli compare): the config fields that differ, each run's latest metrics with their
standard errors, and their training curves overlaid in one PNG; from the run folders alone (the config stored in
their newest checkpoint, metrics.jsonl, reports/parzen.json, and the latest sample-quality report,
reports/metrics.json, that `gancli evaluate --metrics` writes).

Standard errors: a run of several seeds gives each figure as the mean over its seeds of the seed's latest value,
± the standard error over seeds (sample standard deviation, ddof 1, / sqrt(n)): the spread that another seed would
show. A run of one seed has no such spread to measure, so its figure comes alone (n 1); the epoch-to-epoch jitter
of one seed's last epochs is not a standard error of anything a reader compares (the epochs are neither
independent nor of one model). The Parzen figure keeps its own: the estimator's over the test split for one seed,
the same over-seeds one for several. A sample-quality report's figures are its mean over seeds ± the standard
error (its ddof-1 std / sqrt(n)) for several seeds, its one model's figures alone for one.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

from gancli import checkpoint, inspection, rundir
from gancli.config import RunConfig, changed_fields, with_overrides
from gancli.errors import GancliError
from gancli.report import format_ll, plot_overlaid

CURVES = "compare.png"
NOT_COMPARED = ("epoch", "step")  # where each run is, shown apart
NOT_PLOTTED = ("lr", "momentum", "it_per_s", "eval_s")  # schedule and speed: in the table, not worth a panel
STDERR = ("x ± e (n N): the mean over N seeds of each seed's latest value ± the standard error over seeds (sample "
          "std / sqrt(N)); one seed: its latest value; Parzen of one seed: ± its standard error over the test split; "
          "report: the latest sample-quality report (evaluate --metrics), over its seeds the same way")
REPORT_FIELDS = ("label", "epoch", "step", "n")  # a report headline's model entry: who and when, not a figure


@dataclasses.dataclass
class Run:
    path: Path
    config: RunConfig
    histories: list[list[dict[str, Any]]]  # one metrics log per seed

    @property
    def seeds(self) -> int:
        return len(self.histories)


def load(path: Path) -> Run:
    """A run folder's config (its newest checkpoint's, for the whole run) and each seed's metrics log."""
    path = Path(path)
    dirs = rundir.find_runs(path)
    if not any(rundir.checkpoint_steps(d) for d in dirs):
        raise GancliError(f"{path} is not a gancli run: it holds no checkpoint (give folders written by 'gancli train')")
    config = checkpoint.newest_config(dirs[0])
    if len(dirs) > 1:  # seed-0's config is one seed's: the run's is its first seed and their count
        config = with_overrides(config, seed=config.seed - int(dirs[0].name[5:]), seeds=len(dirs))
    return Run(path, config, [rundir.read_metrics(d)[0] for d in dirs])


def compare(paths: list[Path], curves: Path | None = Path(CURVES)) -> dict[str, Any]:
    """The comparison of two runs or more as plain data; the overlaid curves written to `curves` (None: not)."""
    if len(paths) < 2:
        raise GancliError(f"compare needs two runs or more, got {len(paths)}: give RUN_A RUN_B ...")
    seen = {}
    for p in paths:
        if Path(p).resolve() in seen:
            raise GancliError(f"{p} is given twice (as {seen[Path(p).resolve()]}): give each run once")
        seen[Path(p).resolve()] = p
    runs = [load(p) for p in paths]
    out = {
        "runs": [{"path": str(r.path), "dataset": r.config.dataset, "preset": r.config.preset, "seeds": r.seeds,
                  "epoch": _epoch(r)} for r in runs],
        "differences": differences([r.config for r in runs]),
        "metrics": latest(runs),
        "parzen": [parzen(r) for r in runs],
        "sample_quality": [quality(r) for r in runs],
        "stderr": STDERR,
        "curves": None,
    }
    drawn = panels(runs) if curves is not None else []
    if drawn:
        try:
            out["curves"] = str(plot_overlaid(drawn, Path(curves), "  vs  ".join(str(r.path) for r in runs)))
        except OSError as e:
            raise GancliError(f"cannot write {curves}: {e.strerror or e}") from None
    return out


def differences(configs: list[RunConfig]) -> list[dict[str, Any]]:
    """{"field", "values" (one per config)} of every config field on which the configs do not all agree, in the
    config's own order."""
    names: set[str] = set()
    for c in configs[1:]:
        names |= {name for name, _, _ in changed_fields(configs[0], c)}
    order = list(_flat(configs[0].to_dict()))
    return [{"field": n, "values": [_field(c, n) for c in configs]} for n in sorted(names, key=order.index)]


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def _field(config: RunConfig, name: str):
    value: Any = config
    for part in name.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


def _epoch(run: Run) -> int | None:
    epochs = [h[-1]["epoch"] for h in run.histories if h]
    return max(epochs) if epochs else None


def estimate(values: list[float]) -> dict[str, Any] | None:
    """{"mean", "stderr" (None for one value), "n"} of the finite values; None when there are none."""
    values = [float(v) for v in values if _number(v) and math.isfinite(v)]
    if not values:
        return None
    stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "stderr": stderr, "n": len(values)}


def latest(runs: list[Run]) -> list[dict[str, Any]]:
    """{"name", "values": an estimate per run (None where it has no such figure)} of every number the runs' last
    metrics.jsonl records hold; the objectives' metrics and --eval-every's figures first, as the first run logs them."""
    names: dict[str, None] = {}
    for r in runs:
        for h in r.histories:
            if h:
                names.update((k, None) for k, v in h[-1].items() if _number(v) and k not in NOT_COMPARED)
    # Evaluations run every few epochs: a seed's latest figure is the one of its last record that has it.
    last = lambda h, k: next((rec[k] for rec in reversed(h) if _number(rec.get(k))), None)
    return [{"name": k, "values": [estimate([last(h, k) for h in r.histories]) for r in runs]} for k in names]


def parzen(run: Run) -> dict[str, Any] | None:
    """The latest Parzen report's figure, {"mean", "stderr", "n", "over"}; None without a readable one."""
    found = inspection.parzen_report(run.path)
    if not found or "headline" not in found:
        return None
    h = found["headline"]
    if s := h["across_seeds"]:
        return {"mean": s["mean"], "stderr": s["std"] / math.sqrt(s["n"]), "n": s["n"], "over": "seeds"}
    m = h["models"][0]
    return {"mean": m["mean"], "stderr": m["stderr"], "n": 1, "over": "test split"}


def quality(run: Run) -> dict[str, Any] | None:
    """The latest sample-quality report's figures, {"path", "feature_net", "n_samples", "epoch", "values": {name:
    estimate}}; {"path", "error"} when it cannot be read; None without one."""
    found = inspection.metrics_report(run.path)
    if not found or "error" in found:
        return found
    h = found["headline"]
    epochs = [m["epoch"] for m in h["models"] if _number(m.get("epoch"))]
    if s := h["across_seeds"]:
        values = {k: {"mean": v["mean"], "stderr": v["std"] / math.sqrt(s["n"]) if _number(v["std"]) else None, "n": s["n"]}
                  for k, v in s.items() if isinstance(v, dict) and _number(v.get("mean"))}
    else:
        values = {k: {"mean": v, "stderr": None, "n": 1} for k, v in h["models"][0].items()
                  if k not in REPORT_FIELDS and _number(v)}
    return {"path": found["path"], "feature_net": h["feature_net"], "n_samples": h["n_samples"],
            "epoch": max(epochs) if epochs else None, "values": values}


def panels(runs: list[Run]) -> list[tuple[str, list[tuple[str, list[int], list[float], list[float] | None]]]]:
    """(metric, [(run label, epochs, mean over seeds, standard error over seeds or None)]) for each metric the
    runs log per epoch; a run's line has the epochs that every seed of it has the metric for."""
    names: dict[str, None] = {}
    for r in runs:
        for h in r.histories:
            for rec in h:
                names.update((k, None) for k, v in rec.items() if _number(v) and k not in NOT_COMPARED + NOT_PLOTTED)
    out = []
    for k in names:
        lines = []
        for r in runs:
            by_epoch = [{rec["epoch"]: rec[k] for rec in h if _number(rec.get(k)) and math.isfinite(rec[k])} for h in r.histories]
            epochs = sorted(set.intersection(*(set(b) for b in by_epoch)))
            if not epochs:
                continue
            stats = [estimate([b[e] for b in by_epoch]) for e in epochs]
            errs = [s["stderr"] for s in stats] if r.seeds > 1 else None
            lines.append((_label(r), epochs, [s["mean"] for s in stats], errs))
        if lines:
            out.append((inspection.HEADINGS.get(k, k), lines))
    return out


def _label(run: Run) -> str:
    return f"{run.path} ({run.seeds} seeds)" if run.seeds > 1 else str(run.path)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# --- the text of the terminal view: gancli.cli.render draws it ---


def cell(e: dict[str, Any] | None) -> str:
    """An estimate as text: mean ± standard error, or the value alone for one."""
    if e is None:
        return "-"
    n = f" (n {e['n']})" if e["n"] > 1 else ""
    if e["stderr"] is None or not e["stderr"] > 0:  # one value, or seeds that all agree
        return (str(e["mean"]) if isinstance(e["mean"], int) else f"{e['mean']:.4g}") + n
    return format_ll(e["mean"], e["stderr"]) + n


def value_text(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return ",".join(map(value_text, v)) or "()"
    return "''" if v == "" else str(v)


def difference_rows(result: dict[str, Any]) -> list[list[str]]:
    """[field, value in each run] rows; [] when the configs agree everywhere."""
    return [[d["field"], *map(value_text, d["values"])] for d in result["differences"]]


def metric_rows(result: dict[str, Any]) -> list[list[str]]:
    """[metric, cell per run] rows: the epoch each run is at, every latest figure, the Parzen figure."""
    rows = [["epoch", *[str(r["epoch"]) if r["epoch"] is not None else "-" for r in result["runs"]]],
            ["seeds", *[str(r["seeds"]) for r in result["runs"]]]]
    rows += [[inspection.HEADINGS.get(m["name"], m["name"]), *map(cell, m["values"])] for m in result["metrics"]]
    if any(result["parzen"]):
        rows.append(["Parzen (nats)", *map(cell, result["parzen"])])
    found = result["sample_quality"]
    if any(found):
        rows.append(["report", *map(_report_where, found)])
        names: dict[str, None] = {}
        for q in found:
            names.update((k, None) for k in (q or {}).get("values", {}))
        rows += [[f"report: {inspection.HEADINGS.get(k, k)}", *[cell((q or {}).get("values", {}).get(k)) for q in found]]
                 for k in names]
    return rows


def _report_where(q: dict[str, Any] | None) -> str:
    """Which sample-quality report a run's column shows: its epoch and sample count, or why it shows none."""
    if q is None:
        return "-"
    if "error" in q:
        return f"{Path(q['path']).name}: {q['error']}"
    epoch = f"epoch {q['epoch']}, " if q["epoch"] is not None else ""
    return f"{epoch}{q['n_samples']:,} samples"
