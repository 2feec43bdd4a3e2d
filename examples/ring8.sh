#!/usr/bin/env bash
# Mode collapse on ring8 (8 Gaussians on a circle): train with the non-saturating and the minimax G loss and compare which
# modes each generator covers. The per-epoch pictures in each run's samples/ show the modes over time.
set -euo pipefail
OUT=${OUT:-runs/ring8}
gancli train ring8 --ckpt "$OUT/nonsaturating" --epochs 10
gancli train ring8 --ckpt "$OUT/minimax" --epochs 10 --g-loss minimax
for run in nonsaturating minimax; do
  gancli evaluate "$OUT/$run"
done
