"""One self-contained HTML page of one or more runs (`gancli report`): each run's config, its training curves, its
sample grids over the epochs and every evaluation report with its protocol, a multi-seed run's seeds side by side.

The page needs nothing but itself: images are inline data: URIs, the CSS is inline, there is no script, and its
Content-Security-Policy forbids the browser to load anything else, so that a page mailed or archived shows the same
thing offline years later. Every string that comes from a run (paths, config values, labels) is escaped.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from gancli import checkpoint, objectives, report, rundir
from gancli.errors import GancliError
from gancli.files import atomic_path, check_count, check_writable

FILE = "report.html"
GRIDS = 12  # sample grids shown per seed by default: the first and last epochs and evenly spaced between
# The browser may load nothing but the page's own inline images and styles.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.4em; } h4 { margin: 1em 0 .3em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .88em; }
td, th { border: 1px solid #ddd; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
.side { display: grid; gap: 1em; align-items: start; }
.side > div { min-width: 0; } img { max-width: 100%; height: auto; image-rendering: pixelated; }
img.plot { image-rendering: auto; } .report img { max-width: 640px; }
.note { color: #555; font-size: .88em; } .problem { color: #a00; }
details { margin: .5em 0; } summary { cursor: pointer; font-weight: 600; }
nav ul { columns: 2; }
.fields { columns: 18em auto; column-gap: 2em; font-size: .85em; }
.fields > div { break-inside: avoid; padding: .05em 0; }
.value { color: #05a; }
.gallery { display: flex; flex-wrap: wrap; gap: .6em; }
.gallery figure { margin: 0; width: 210px; } .gallery figcaption { font-size: .8em; color: #555; text-align: center; }
"""


def default_out(paths: list[Path]) -> Path:
    """RUN/report.html for one run, report.html in the current folder for several."""
    return Path(paths[0]) / FILE if len(paths) == 1 else Path(FILE)


def write(paths: list[Path], out: Path | None = None, grids: int = GRIDS, force: bool = False) -> Path:
    """Write the page of the runs at paths to out (default_out when None) and return its path. A run's own
    report.html is always rewritten; any other existing file only with force."""
    if not paths:
        raise GancliError("give at least one run folder")
    check_count(grids, "--grids")
    runs = [read_run(Path(p)) for p in paths]  # every run read (and checked) before anything is drawn
    target = default_out(paths) if out is None else Path(out)
    if target.is_dir():
        raise GancliError(f"{target} is a folder: give --out a file name, e.g. {target / FILE}")
    own = out is None and len(paths) == 1  # a run's own page, always rewritten as its reports/ are
    if target.exists() and not own and not force:
        raise GancliError(f"{target} already exists: pass --force to overwrite it, or --out to write elsewhere")
    check_writable(target.parent)
    page = render(runs, grids)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(page, encoding="utf-8")
    except OSError as e:
        raise GancliError(f"cannot write {target}: {e.strerror or e}") from None
    return target


# --- what a run folder holds, as plain data ---


def read_run(path: Path) -> dict[str, Any]:
    """{"path", "config", "seeds": [per seed: folder, metadata, history, grids, reports], "reports"} of a run
    folder; its checkpoints' config and metadata only (no state is restored). GancliError for a folder that holds
    no run."""
    dirs = rundir.find_runs(path)
    restored = checkpoint.load_common(dirs)
    seeds = []
    for d, run in zip(dirs, restored):
        history, skipped = rundir.read_metrics(d)
        seeds.append({
            "folder": d, "name": d.name if len(dirs) > 1 else str(path), "metadata": run.metadata,
            "history": history, "unreadable_lines": skipped,
            "grids": sorted((d / rundir.SAMPLES).glob("epoch_*.png")) if (d / rundir.SAMPLES).is_dir() else [],
            "reports": _report_files(d) if len(dirs) > 1 else [],
        })
    return {"path": Path(path), "config": restored[0].config, "seeds": seeds, "reports": _report_files(Path(path))}


def _report_files(run_dir: Path) -> list[Path]:
    folder = rundir.reports_dir(run_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# --- the page ---


def e(x: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(x), quote=True)


def render(runs: list[dict[str, Any]], grids: int = GRIDS) -> str:
    """The whole page of runs (read_run's) as a string."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "gancli report: " + ", ".join(str(r["path"]) for r in runs)
    nav = "".join(f'<li><a href="#run-{i}">{e(r["path"])}</a></li>' for i, r in enumerate(runs))
    body = "".join(_run_section(i, r, grids) for i, r in enumerate(runs))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{e(POLICY)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<h1>{e(title)}</h1><p class=\"note\">Written by gancli report at {e(stamp)}; self-contained: every image is "
        f"inline.</p><nav><ul>{nav}</ul></nav>\n{body}</body></html>\n"
    )


def _run_section(i: int, run: dict[str, Any], grids: int) -> str:
    seeds = run["seeds"]
    config = run["config"]
    parts = [f'<section class="run" id="run-{i}"><h2>{e(run["path"])}</h2>',
             _facts(run),
             _section(i, "config", "Config", _config_table(config.to_dict())),
             _section(i, "curves", "Training curves", _curves(seeds, objectives.probabilities(config))),
             _section(i, "samples", "Sample grids over epochs", _grids(seeds, grids)),
             _section(i, "evaluations", "Evaluation reports", _evaluations(run))]
    if len(seeds) > 1:
        parts.append(_section(i, "seeds", "Seeds side by side", _seeds_table(seeds)))
    return "".join(parts) + "</section>\n"


def _section(i: int, key: str, heading: str, content: str) -> str:
    return f'<section class="{key}" id="run-{i}-{key}"><h3>{e(heading)}</h3>{content}</section>'


def _facts(run: dict[str, Any]) -> str:
    c, seeds = run["config"], run["seeds"]
    m = seeds[0]["metadata"]
    shape = "x".join(str(d) for d in m.get("data_shape") or [])
    rows = [
        ("dataset", f"{c.dataset}" + (f": {m['n_train']:,} training examples of {shape}" if m.get("n_train") else "")),
        ("checkpoint", f"epoch {m.get('epoch')}, step {m.get('step')}, saved {m.get('saved_at')}"),
        ("seeds", ", ".join(str(s["metadata"].get("seed", "?")) for s in seeds)),
        ("preset", c.preset),
        ("device", m.get("device")),
        ("versions", _words(m.get("versions"))),
    ]
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows if v not in (None, "")) + "</table>"


def _words(d: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if isinstance(d, dict) else ("" if d is None else str(d))


def _config_table(config: dict[str, Any]) -> str:
    """Every config field as a dotted name and its value, as stored in the checkpoint."""
    flat: list[tuple[str, Any]] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat.append((prefix + k, v))

    walk(config, "")
    items = "".join(f'<div><span class="mono">{e(k)}</span> = <span class="mono value">{e(json.dumps(v))}</span></div>'
                    for k, v in flat)
    return f'<div class="fields">{items}</div>'


def _img(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{e(alt)}" src="data:image/png;base64,{data}">'


def _side(cells: list[tuple[str, str]]) -> str:
    """Cells (heading, HTML) side by side, one column each."""
    if len(cells) == 1:
        return cells[0][1]
    columns = f"repeat({len(cells)}, minmax(0, 1fr))"
    inner = "".join(f"<div><h4>{e(name)}</h4>{content}</div>" for name, content in cells)
    return f'<div class="side" style="grid-template-columns: {columns}">{inner}</div>'


def _curves(seeds: list[dict[str, Any]], probabilities: bool) -> str:
    if not any(s["history"] for s in seeds):
        return '<p class="note">No metrics recorded (metrics.jsonl is empty or missing).</p>'
    game, others = [], []
    names = report.other_curves([r for s in seeds for r in s["history"]])
    for s in seeds:
        label = s["name"]
        if not s["history"]:
            game.append((label, '<p class="note">no metrics recorded</p>'))
            continue
        note = f'<p class="note">{s["unreadable_lines"]} unreadable lines of metrics.jsonl skipped</p>' if s["unreadable_lines"] else ""
        png = report.png_bytes(report.curves_figure(s["history"], f"{label}: {len(s['history'])} epochs", probabilities))
        game.append((label, _img(png, f"training curves of {label}", "plot") + note))
        if names:
            png = report.png_bytes(report.other_curves_figure(s["history"], names, f"{label}: other logged metrics"))
            others.append((label, _img(png, f"other metrics of {label}", "plot")))
    out = _side(game)
    if others:
        out += f"<h4>Other logged metrics: {e(', '.join(names))}</h4>" + _side(others)
    return out


def shown_epochs(n: int, most: int) -> list[int]:
    """Indices of the grids to show of n: all of few, else the first, the last and evenly spaced between."""
    if n <= most:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, most).round().astype(int).tolist()))


def _grids(seeds: list[dict[str, Any]], most: int) -> str:
    """Each seed's grids of the shown epochs as a gallery in epoch order; the seeds' galleries side by side."""
    epochs = sorted({p.name for s in seeds for p in s["grids"]})
    if not epochs:
        return '<p class="note">No per-epoch sample grids in samples/.</p>'
    shown = [epochs[i] for i in shown_epochs(len(epochs), most)]
    note = "" if len(shown) == len(epochs) else f'<p class="note">{len(shown)} of {len(epochs)} epochs shown (--grids).</p>'
    galleries = []
    for s in seeds:
        figures = []
        for name in shown:
            path = s["folder"] / rundir.SAMPLES / name
            epoch = name.removeprefix("epoch_").removesuffix(".png").lstrip("0") or "0"
            picture = _img(path.read_bytes(), f"{s['name']}: samples after epoch {epoch}") if path.is_file() else "-"
            figures.append(f"<figure>{picture}<figcaption>epoch {e(epoch)}</figcaption></figure>")
        galleries.append((s["name"], f'<div class="gallery">{"".join(figures)}</div>'))
    return note + _side(galleries)


def _evaluations(run: dict[str, Any]) -> str:
    parts = [_report_block(p) for p in run["reports"]]
    for s in run["seeds"]:
        if s["reports"]:
            inner = "".join(_report_block(p) for p in s["reports"])
            parts.append(f"<details><summary>{e(s['name'])}: its own reports ({len(s['reports'])})</summary>{inner}</details>")
    if not parts:
        return '<p class="note">No evaluation reports in reports/ (run gancli evaluate).</p>'
    return "".join(parts)


TITLES = {"parzen": "Parzen-window log-likelihood", "metrics": "Sample-quality metrics",
          "classify": "A semi-supervised D as a classifier"}


def _report_block(path: Path) -> str:
    """One evaluation report: its table, its protocol, its picture and its note; a line saying why for a file
    that is not a report gancli wrote."""
    try:
        data = json.loads(path.read_text())
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in TITLES:
            raise ValueError("not a report written by gancli evaluate")
        table = _report_table(kind, data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, KeyError, TypeError, IndexError) as err:
        why = f"{type(err).__name__}: {err}" if not isinstance(err, ValueError) else str(err)
        return f'<p class="problem">{e(path)}: cannot be shown ({e(why)})</p>'
    picture = path.with_suffix(".png")
    image = _img(picture.read_bytes(), f"{kind} report", "plot") if picture.is_file() else ""
    note = f'<p class="note">{e(data["note"])}</p>' if data.get("note") else ""
    return (f'<div class="report {e(kind)}"><h4>{e(TITLES[kind])} on {e(data.get("dataset", "?"))} '
            f'<span class="mono">({e(path)})</span></h4>{table}<h4>Protocol</h4>{_protocol(kind, data)}{image}{note}</div>')


def _report_table(kind: str, data: dict) -> str:
    if kind == "parzen":
        out = _table(("model", "sigma", "log-likelihood (nats)", "samples"), report.parzen_rows(data))
        if coverage := report.coverage_rows(data):
            out += _table(("model", "modes covered", "high-quality samples"), [r[:3] for r in coverage])
    elif kind == "metrics":
        headings, rows, caption = report.metric_rows(data)
        out = f'<p class="note">{e(caption)}</p>' + _table(("model", *headings), [(name, *cells) for name, cells in rows])
    else:
        out = _table(("model", "labelled examples", "test errors", "error rate"), report.classify_rows(data))
    if grid := report.conditional_grid(data):
        header, rows, caption = grid
        out += f'<p class="note">{e(caption)}</p>' + _table(header, rows)
    return out


def _table(header, rows) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i else ''}>{e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _protocol(kind: str, data: dict) -> str:
    """How the report was measured, field by field, as it records it."""
    if kind == "metrics":
        fields = {"sampling": data.get("sampling"), "reference": data.get("reference"), "settings": data.get("settings"),
                  "feature network": data.get("feature_net")}
    else:
        fields = dict(data.get("protocol") or {})
    rows = "".join(f"<tr><th>{e(k)}</th><td class=\"mono\">{e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
                   for k, v in fields.items() if v is not None)
    return f"<table>{rows}</table>"


def _seeds_table(seeds: list[dict[str, Any]]) -> str:
    """A row per seed: its seed, epoch and step, and the last epoch's value of every logged metric."""
    names = [k for k in (*report.GAME, *report.other_curves([r for s in seeds for r in s["history"]]))
             if any(k in r for s in seeds for r in s["history"])]
    rows = []
    for s in seeds:
        m, last = s["metadata"], (s["history"][-1] if s["history"] else {})
        rows.append((s["name"], m.get("seed", "?"), m.get("epoch"), m.get("step"), *(_num(last.get(k)) for k in names)))
    return _table(("folder", "seed", "epoch", "step", *names), rows)


def _num(x) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-" if x is None else str(x)
    return str(x) if isinstance(x, int) else f"{x:.4g}"
