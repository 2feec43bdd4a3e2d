"""examples/reproduce_table1.sh end to end on tiny data: its reports, its curve, its table and its resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gancli.config import preset

ROOT = Path(__file__).parents[1]

# A `gancli` for the script: the tests' 200 tiny images, and paper-lr-ema at TINY's sizes with its average begun at
# epoch 1 (the script decides from the report, not the preset's name, whether to measure G itself as well).
TINY_GANCLI = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import helpers
exec(helpers.FAKE_DATA)
from gancli import config
base = config.PRESETS["paper-lr-ema"]
config.PRESETS["paper-lr-ema"] = config.Preset(
    base.description, lambda dataset: config.with_overrides(base.make(dataset), **helpers.TINY, ema_start=1))
from gancli.cli import app
app(prog_name="gancli")
"""


def reproduce(tmp_path: Path, epochs: int) -> subprocess.CompletedProcess:
    program = tmp_path / "tiny_gancli.py"  # not gancli.py: it would shadow the package
    program.write_text(TINY_GANCLI)
    wrapper = tmp_path / "gancli"
    wrapper.write_text(f'#!/usr/bin/env bash\nexec {sys.executable} {program} "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "CKPT": str(tmp_path / "run"), "PRESET": "paper-lr-ema", "EPOCHS": str(epochs), "EVERY": "1",
           "SEEDS": "2", "GANCLI": str(wrapper),
           # the script's python3 is the one running the tests, also from a virtual environment not activated
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", str(ROOT / "examples" / "reproduce_table1.sh")], env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_script_keeps_a_report_of_the_average_and_of_g_per_point_resumes_without_redoing_one_and_tables_them(tmp_path):
    done = reproduce(tmp_path, epochs=2)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = tmp_path / "run" / "reports"
    for epoch in (1, 2):
        average = json.loads((reports / f"parzen_epoch_{epoch:04d}.json").read_text())
        g = json.loads((reports / f"parzen_raw_epoch_{epoch:04d}.json").read_text())
        assert [m["epoch"] for m in average["models"] + g["models"]] == [epoch] * 4
        assert {m["generator_ema"] for m in average["models"]} == {preset("paper-lr-ema", "mnist").ema} and {m["generator_ema"] for m in g["models"]} == {None}
        assert average["across_seeds"]["n"] == 2 and average["calibration"] is None
    assert json.loads((reports / "parzen.json").read_text())["calibration"] is not None  # the last one, calibrated
    assert (reports / "parzen_curve.png").is_file() and "calibration:" in done.stdout

    kept = {p.name: p.stat().st_mtime_ns for p in reports.glob("parzen_*epoch_*.json")}
    done = reproduce(tmp_path, epochs=3)  # the same command, asked for one more point
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in reports.glob("parzen_*epoch_000[12].json")} == kept
    assert sorted(p.name for p in reports.glob("parzen_*epoch_0003.json")) == ["parzen_epoch_0003.json", "parzen_raw_epoch_0003.json"]
    curve = [line.split(":")[0].split()[1] for line in done.stdout.splitlines() if "G itself" in line]
    assert curve == ["1", "2", "3"]  # the curve's printout: every kept point, the EMA's and G's

    # --table: one column per point, each seed's figure per cell. The 4x4 images have no feature network, so the
    # metrics reports the script would keep with METRICS are written here, with figures the test chooses.
    for epoch in (1, 3):
        for kind, fid in (("", 10.0), ("raw_", 20.0)):
            models = json.loads((reports / f"parzen_{kind}epoch_{epoch:04d}.json").read_text())["models"]
            models = [{**m, "fid": fid + epoch + i, "prdc": {"precision": 0.8, "recall": 0.7, "density": 0.9, "coverage": 0.6}} for i, m in enumerate(models)]
            (reports / f"metrics_{kind}epoch_{epoch:04d}.json").write_text(json.dumps({"kind": "metrics", "models": models}))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "parzen_curve.py"), str(tmp_path / "run"), "--table"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = {line.split(" | ")[0].strip("| "): line.strip(" |").split(" | ")[1:]
             for line in done.stdout.splitlines() if line.startswith("| ")}
    assert table.pop("seed-0 / seed-1") == ["1", "2", "3"]
    parzen = lambda kind, e: " / ".join(f"{m['mean']:.1f}" for m in json.loads((reports / f"parzen_{kind}epoch_{e:04d}.json").read_text())["models"])
    assert table.pop("Parzen, EMA of G") == [parzen("", e) for e in (1, 2, 3)]
    assert table.pop("Parzen, G itself") == [parzen("raw_", e) for e in (1, 2, 3)]
    assert table.pop("FD, EMA of G") == ["11.0 / 12.0", "-", "13.0 / 14.0"]  # epoch 2 kept no metrics report
    assert table.pop("FD, G itself") == ["21.0 / 22.0", "-", "23.0 / 24.0"]
    assert table == {f"{name}, {who}": [value, "-", value] for name, value in (("precision", "0.800 / 0.800"), ("recall", "0.700 / 0.700"))
                     for who in ("EMA of G", "G itself")}
