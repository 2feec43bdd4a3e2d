"""Semi-supervised MNIST by Salimans et al.'s protocol: both released recipes over N random labelled subsets.

    python examples/ssl_protocol.py --subsets 3                    # runs/ssl-protocol/{table.md,table.json}
    python examples/ssl_protocol.py --subsets 3 --epochs 2 --at 1,2 --eval-every 1 --out /tmp/ssl-time   # timing

Salimans et al. (2016), Table 1 and section 6.1: 100 labels (10 per class), permutation-invariant MNIST, test errors
of 10,000, 93 ± 6.5 as mean ± std over 10 random labelled subsets. Each recipe here is one run of --subsets seeds in
one compiled program (gancli train --seeds N): seed i takes training seed --seed + i and label seed --label-seed + i,
a labelled subset of its own. The recipes are the presets `semi-supervised` (improved-gan's script as of
2016-06-14: Adam lr 0.003 held, testing an average of D's weights) and `semi-supervised-2016-06-08` (the script as
released two days before the paper: lr 0.001 held to epoch 200, then linear to 0 at 300, testing D itself). The
test errors are those train --eval-every logs (the recipe's own test: the average for the first, D for the second;
the first's D itself too), read from each seed's metrics.jsonl at the epochs of --at. Beside them: the paper's
93 ± 6.5 and the 82 errors at epoch 300 of the Chainer port's logged run (hiroharu-kato/improved_gan_chainer).

Resumable: the same command continues every recipe from its checkpoints (train saves every 5 minutes and on
SIGINT/SIGTERM) and rewrites the table from the logs, saying how far each recipe got. The table covers every recipe
folder under --out, so the recipes may train in separate processes (--recipes one each); --table-only rewrites it
from the logs without training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

RECIPES = {
    "semi-supervised": "improved-gan 2016-06-14 (lr 0.003, average of D tested)",
    "semi-supervised-2016-06-08": "improved-gan 2016-06-08 (lr 0.001, linear to 0 from epoch 200 to 300, D tested)",
}
# Rows for comparison: (who, test errors mean, std or None, what it is).
REFERENCES = (
    ("Salimans et al. (2016), Table 1, 100 labels", 93.0, 6.5, "mean ± std over 10 random labelled subsets"),
    ("hiroharu-kato/improved_gan_chainer, logged run", 82.0, None, "one run, at epoch 300"),
)


def seed_errors(records: list[dict], at: list[int]) -> dict:
    """One seed's test errors at the epochs of `at` from its metrics.jsonl records ({epoch: errors}, missing epochs
    left out): `test` the recipe's own test (an average of D when it keeps one), `d` D itself."""
    by_epoch = {r["epoch"]: r for r in records}
    out = {"test": {}, "d": {}, "epochs_done": max(by_epoch, default=0)}
    for e in at:
        r = by_epoch.get(e, {})
        if "test_errors" in r:
            out["test"][e] = r["test_errors"]
            out["d"][e] = r.get("test_errors_raw", r["test_errors"])  # without an average, the test is of D itself
    return out


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1, as the paper's ± over subsets); std None for one value."""
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def _cell(values: list[float], n: int) -> str:
    """mean ± std of the seeds that reached the epoch, saying so when not all did."""
    if not values:
        return "—"
    mean, std = mean_std(values)
    text = f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")
    return text + (f" ({len(values)} of {n})" if len(values) < n else "")


def table(results: dict, at: list[int]) -> tuple[str, dict]:
    """The protocol's table as (Markdown, JSON-ready dict). results: {recipe: {"description", "seeds": [{"seed",
    "label_seed", "test": {epoch: errors}, "d": {...}, "epochs_done"}], "epochs", "cpu_s_per_epoch" (or None)}}."""
    data = {"at": at, "recipes": {}, "references": [
        {"who": who, "errors_mean": m, "errors_std": s, "what": what} for who, m, s, what in REFERENCES]}
    lines = ["| recipe | test | label seeds | " + " | ".join(f"epoch {e}" for e in at) + " | epochs done |",
             "|---" * (len(at) + 4) + "|"]
    for recipe, r in results.items():
        seeds = r["seeds"]
        entry = {"description": r["description"], "epochs": r["epochs"], "cpu_s_per_epoch": r.get("cpu_s_per_epoch"),
                 "seeds": seeds, "mean_std": {}}
        label_seeds = ", ".join(str(s["label_seed"]) for s in seeds)
        done = min((s["epochs_done"] for s in seeds), default=0)
        tests = (("test", "average of D"), ("d", "D itself")) if any(s["d"] != s["test"] for s in seeds) else (("test", "D itself"),)
        for key, what in tests:
            cells = []
            for e in at:
                values = [s[key][e] for s in seeds if e in s[key]]
                cells.append(_cell(values, len(seeds)))
                if values:
                    mean, std = mean_std(values)
                    entry["mean_std"].setdefault(key, {})[e] = {"n": len(values), "mean": mean, "std": std}
            lines.append(f"| `{recipe}` | {what} | {label_seeds} | " + " | ".join(cells) + f" | {done} of {r['epochs']} |")
        for s in seeds:
            lines.append(f"| &nbsp;&nbsp;seed {s['seed']} | | {s['label_seed']} | "
                         + " | ".join(" / ".join(str(s[k][e]) for k, _ in tests) if e in s["test"] else "—" for e in at)
                         + f" | {s['epochs_done']} |")
        data["recipes"][recipe] = entry
    for who, m, s, what in REFERENCES:
        lines.append(f"| {who} | {what} | | " + " | ".join(
            (f"{m:g}" + (f" ± {s:g}" if s is not None else "")) if e == max(at) else "" for e in at) + " | |")
    notes = ["", "Test errors of the 10,000 MNIST test images, 100 labels (10 per class); mean ± std (ddof 1) over the "
             "labelled subsets, each cell's seeds in brackets when not all have reached it; a seed's row gives its "
             "recipe's test / D itself."]
    for recipe, r in results.items():
        if r.get("cpu_s_per_epoch"):
            notes.append(f"- `{recipe}`: {r['description']}; {r['cpu_s_per_epoch']:.0f} CPU s per epoch of all "
                         f"{len(r['seeds'])} seeds together, as last measured")
        else:
            notes.append(f"- `{recipe}`: {r['description']}")
    return "\n".join(lines + notes) + "\n", data


def run_recipe(recipe: str, args, out: Path) -> None:
    """Train (or continue) one recipe's seeds to --epochs; the CPU seconds per epoch of this call go to its cpu.json."""
    from gancli import per_epoch, train

    folder = out / recipe
    overrides = {"seeds": args.subsets, "seed": args.seed, "label_seed": args.label_seed, "labels": args.labels,
                 "epochs": args.epochs}
    config, resuming = train.resolve_config(folder, "mnist", recipe, overrides, resume=False)
    before = _epochs_done(folder)
    print(f"{'resuming' if resuming else 'training'} {recipe} at epoch {before}: {args.subsets} seeds, label seeds "
          f"{args.label_seed} to {args.label_seed + args.subsets - 1}", flush=True)
    c0 = time.process_time()
    outcome = train.train(config, folder, args.data_dir, _lines(recipe), resume=resuming,
                          evaluations=per_epoch.Every(args.eval_every))
    cpu = time.process_time() - c0
    after = _epochs_done(folder)
    if after > before:  # this process's CPU time (all its threads), compiling and evaluating included
        (folder / "cpu.json").write_text(json.dumps({"cpu_s_per_epoch": round(cpu / (after - before), 1), "epochs": after - before,
                                                     "seeds": config.seeds, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    if outcome.status == "interrupted":
        raise SystemExit(f"interrupted while training {recipe} at epoch {outcome.epoch}; run the same command to resume")


def collect(recipe: str, args) -> dict | None:
    """What a recipe's folder under --out holds so far, as table() takes it; None when it has no seeds yet."""
    from gancli import checkpoint, rundir

    folder = args.out / recipe
    runs = rundir.find_runs(folder) if folder.is_dir() else []
    if not runs or not rundir.checkpoint_steps(runs[0]):
        return None
    seeds = []
    for run_dir in runs:
        stored = checkpoint.newest_config(run_dir)  # each seed's own: its training seed and label seed
        seeds.append({"seed": stored.seed, "label_seed": stored.label_seed, **seed_errors(rundir.read_metrics(run_dir)[0], args.at)})
    cpu = json.loads((folder / "cpu.json").read_text()) if (folder / "cpu.json").exists() else {}
    return {"description": RECIPES[recipe], "epochs": stored.epochs, "seeds": seeds, "cpu_s_per_epoch": cpu.get("cpu_s_per_epoch")}


def _lines(recipe: str):
    """A reporter that prints one line per epoch (seed 0's record) and the loop's messages: a log file, not a bar."""
    from gancli import train

    class Lines(train.Silent):
        def epoch_end(self, record):
            shown = {k: record[k] for k in ("d_loss", "g_loss", "train_error", "test_errors", "test_errors_raw", "it_per_s") if k in record}
            print(f"{time.strftime('%H:%M:%S')} {recipe} epoch {record['epoch']}: "
                  + ", ".join(f"{k} {v:g}" for k, v in shown.items()), flush=True)

        def message(self, text):
            print(text, flush=True)

    return Lines()


def _epochs_done(folder: Path) -> int:
    from gancli import rundir

    runs = rundir.find_runs(folder) if folder.is_dir() else []
    return min((max((r["epoch"] for r in rundir.read_metrics(d)[0]), default=0) for d in runs), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", type=int, default=10, help="labelled subsets (seeds) per recipe; the paper's 10")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma list of: " + ", ".join(RECIPES))
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--at", default="100,200,300", help="epochs whose test errors the table shows")
    parser.add_argument("--eval-every", type=int, default=100, help="epochs between the test-error measurements")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--label-seed", type=int, default=1, help="the first subset's label seed (the code's default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/ssl-protocol"))
    parser.add_argument("--table-only", action="store_true", help="rewrite the table from the logs; train nothing")
    args = parser.parse_args()
    args.at = [int(e) for e in args.at.split(",")]
    recipes = [r.strip() for r in args.recipes.split(",")]
    for r in recipes:
        if r not in RECIPES:
            parser.error(f"unknown recipe {r!r}; choose from {', '.join(RECIPES)}")
    bad = [e for e in args.at if e > args.epochs or e % args.eval_every]
    if bad:
        parser.error(f"--at {bad[0]} is past --epochs or not a multiple of --eval-every")
    args.out.mkdir(parents=True, exist_ok=True)
    for recipe in [] if args.table_only else recipes:
        run_recipe(recipe, args, args.out)
        write(args)
    print(write(args))


def write(args) -> str:
    """table.md and table.json of every recipe folder under --out, each written whole (a rename), so that two
    processes may write them; the Markdown."""
    results = {r: found for r in RECIPES if (found := collect(r, args)) is not None}
    markdown, data = table(results, args.at)
    for name, text in (("table.md", markdown), ("table.json", json.dumps(_json_keys(data), indent=2, allow_nan=False))):
        part = args.out / f".{name}.{os.getpid()}"
        part.write_text(text)
        part.replace(args.out / name)
    return markdown


def _json_keys(tree):
    """Epoch keys as strings, NaN never (json)."""
    if isinstance(tree, dict):
        return {str(k): _json_keys(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_json_keys(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


if __name__ == "__main__":
    main()
