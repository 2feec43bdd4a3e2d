#!/usr/bin/env bash
# Mode collapse on ring8 (8 Gaussians on a circle): train two recipes on the same data and compare which
# modes each generator covers. The per-epoch pictures in each run's samples/ show the modes over time.
set -euo pipefail
OUT=${OUT:-runs/ring8}
gancli train ring8 --ckpt "$OUT/alternating" --epochs 10
gancli train ring8 --ckpt "$OUT/minimax" --epochs 10 --g-loss minimax
for run in alternating minimax; do
  gancli evaluate "$OUT/$run"
done
