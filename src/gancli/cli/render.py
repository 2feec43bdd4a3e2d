"""Rich tables and views of what the library returns: reports' rows (gancli.report) and run summaries
(gancli.inspection). The library formats every figure; this module only lays the text out for a terminal."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from gancli import inspection, report as reports
from gancli.config import sections

# --- evaluation reports ---


def parzen_table(report: dict) -> Table:
    """The report's result rows: the models' in bold, the paper's dimmed."""
    table = Table(title=f"Parzen-window log-likelihood on {report['dataset']} (nats)", caption=report["note"])
    for name, justify in (("model", "left"), ("sigma", "right"), ("log-likelihood", "right"), ("samples", "right")):
        table.add_column(name, justify=justify)
    n_models = reports.model_row_count(report)
    for i, row in enumerate(reports.parzen_rows(report)):
        table.add_row(*map(escape, row), style="bold" if i < n_models else "dim" if "paper" in row[0] else None,
                      end_section=i == n_models - 1)
    return table


def coverage_table(report: dict) -> Table | None:
    """Mode coverage, for datasets with known modes (ring8); None otherwise."""
    rows = reports.coverage_rows(report)
    if not rows:
        return None
    table = Table(title=f"Mode coverage on {report['dataset']}", caption=rows[0][3])
    for name, justify in (("model", "left"), ("modes covered", "right"), ("high-quality samples", "right")):
        table.add_column(name, justify=justify)
    for name, modes, share, _ in rows:
        table.add_row(escape(name), modes, share)
    return table


def conditional_table(report: dict) -> Table | None:
    """A conditional run's class accuracy and per-class Fréchet distance; None when not judged."""
    grid = reports.conditional_grid(report)
    if grid is None:
        return None
    header, rows, caption = grid
    table = Table(title=f"Conditional samples on {report['dataset']}: class accuracy and per-class Fréchet distance",
                  caption=caption)
    for i, name in enumerate(header):
        table.add_column(escape(name), justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*map(escape, row), style="bold" if i == len(rows) - 1 else None)
    return table


def metrics_table(report: dict) -> Table:
    """A row per metric, a column per model and calibration row (a dozen metrics side by side would not fit a
    terminal's width)."""
    headings, rows, caption = reports.metric_rows(report)
    n_models = reports.model_row_count(report)
    table = Table(title=f"Sample-quality metrics on {report['dataset']}", caption=escape(caption))
    table.add_column("metric")
    for i, (name, _) in enumerate(rows):
        table.add_column(escape(name), justify="right", style="bold" if i < n_models else None)
    for j, heading in enumerate(headings):
        table.add_row(heading, *(cells[j] for _, cells in rows))
    return table


def classify_tables(report: dict) -> list[Table]:
    """The error counts and the confusion matrix (the sum over seeds for several)."""
    errors = Table(title=f"A semi-supervised D on the {report['dataset']} test split", caption=report["note"])
    for name, justify in (("model", "left"), ("labelled examples", "right"), ("test errors", "right"), ("error rate", "right")):
        errors.add_column(name, justify=justify)
    n_models = reports.model_row_count(report)
    for i, row in enumerate(reports.classify_rows(report)):
        errors.add_row(*map(escape, row), style="bold" if i < n_models else "dim", end_section=i == n_models - 1)
    what, matrix = reports.summed_confusion(report)
    confusion = Table(title=f"Confusion matrix ({escape(what)}): rows true class, columns D's class")
    confusion.add_column("", justify="right", style="bold")
    for j in range(len(matrix)):
        confusion.add_column(str(j), justify="right")
    for i, row in enumerate(matrix):
        confusion.add_row(str(i), *(f"[bold]{v}[/]" if i == j else (f"[red]{v}[/]" if v else "[dim]0[/]") for j, v in enumerate(row)))
    return [errors, confusion]


# --- runs side by side (gancli compare) ---


def compare_tables(result: dict[str, Any]) -> list[Table]:
    """The config fields that differ, then the latest metrics, a column per run."""
    from gancli import compare

    names = [r["path"] for r in result["runs"]]
    out = []
    differing = compare.difference_rows(result)
    table = Table(title="config fields that differ" if differing else "config: the runs agree on every field")
    table.add_column("field", style="bold")
    for name in names:
        table.add_column(escape(name), overflow="fold")
    for row in differing:
        table.add_row(*map(escape, row))
    out.append(table)
    table = Table(title="latest metrics")
    table.add_column("metric", style="bold")
    for name in names:
        table.add_column(escape(name), justify="right", overflow="fold")
    for row in compare.metric_rows(result):
        table.add_row(*map(escape, row))
    out.append(table)
    return out


# --- run summaries (gancli inspect) ---


def summary_view(summary: dict[str, Any]) -> list:
    """One block per run, after a comparison table for a multi-seed folder."""
    if "seeds" not in summary:
        return _run_view(summary)
    out = [_seeds_table(summary), _facts([("events", inspection.events_text(summary["events"]))])]
    for s in summary["seeds"]:
        out += _run_view(s)
    return out


def _facts(rows: list[tuple[str, str]]) -> Table:
    """Labelled lines; plain text, not markup: provenance or paths may hold brackets."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in rows:
        grid.add_row(label, Text(text))
    return grid


def _run_view(s: dict[str, Any]) -> list:
    return [Rule(Text(s["path"], style="bold"), align="left"), _facts(inspection.run_facts(s)),
            *_history_tables(s["metrics"]), _facts(inspection.run_outputs(s))]


def _history_tables(m: dict[str, Any]) -> list:
    parts = inspection.history_tables(m)
    if not parts:
        return [Text("metrics: none recorded (no metrics.jsonl)", style="yellow")]
    tables = []
    for part in parts:
        table = Table(title=part["title"], title_justify="left")
        table.add_column("epoch", justify="right")
        for heading in part["columns"]:
            table.add_column(heading, justify="right", no_wrap=True)
        for row in part["rows"]:
            table.add_row(*row)
        table.add_section()
        for row in part["extremes"]:
            table.add_row(*row, style="dim" if row[0] == "at epoch" else None)
        tables.append(table)
    return tables


def _seeds_table(summary: dict[str, Any]) -> Table:
    title, rows = inspection.seeds_rows(summary)
    table = Table(title=Text(title), title_justify="left")
    for col in inspection.SEEDS_COLUMNS:
        table.add_column(col, justify="left" if col == "folder" else "right")
    for folder, *cells in rows:
        table.add_row(Text(folder), *cells)
    return table


# --- datasets and presets ---


def datasets_table(root, entries: list[dict]) -> Table:
    """gancli.data.describe's entries: name, splits and sizes, state (coloured), source, digests' prefixes."""
    colours = {"ready": "green", "buildable": "yellow", "needs a file": "yellow", "unavailable": "red"}
    # Paths, sources and hints are text, not Rich markup: "[x]" in a folder name must show.
    table = Table(title=Text(f"Datasets in {root}"), title_justify="left")
    for column in ("name", "splits", "state"):
        table.add_column(column, no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("sha256", overflow="fold")
    for e in entries:
        splits = "\n".join(f"{split} {n:,}" if n is not None else split for split, n in e["splits"].items())  # None: told by the file
        # Prefixes only, one per source file in provenance order; `provenance()` has the full digests.
        sums = "\n".join(digest[:12] for digest in e["sha256"].values()) or "-"
        state = f"[{colours.get(e['state'], 'white')}]{e['state']}[/]"
        table.add_row(Text(e["name"]), splits, state, Text(e["source"]), sums)
    return table


def presets_table(rows: list[tuple[str, str, str]]) -> Table:
    """(name, what it is, the fields it changes) of each preset."""
    table = Table(title="Presets (gancli train DATASET --preset NAME; --set section.field=value changes any field)", title_justify="left")
    for column in ("name", "what it is", "differs from the defaults in"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def fields_table(rows: list[tuple[str, str, str, str]]) -> Table:
    """(section.field, type, default, meaning) of every config field; all plain text (defaults and comments may
    hold brackets)."""
    table = Table(title=Text("Config fields: --set section.field=value, or in a --config TOML file as top-level keys "
                             f"and {', '.join(f'[{name}]' for name in sections())} tables; presets change some of the "
                             "defaults (gancli presets)"), title_justify="left")
    table.add_column("field", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("default", overflow="fold")
    table.add_column("meaning", overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    return table
