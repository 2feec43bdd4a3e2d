#!/usr/bin/env bash
# The paper's Figure 2: samples beside their nearest training images (pixel L2), from a trained MNIST model.
#   bash examples/figure2.sh [CKPT]     # default runs/table1-fast; trains 5 epochs of the adam recipe if absent
# A run that keeps a moving average of G gets two figures from the same latents: figure2.npz/.png from the
# average and figure2_raw.npz/.png from G itself, so one can see whether the average's samples are copies.
set -euo pipefail
CKPT=${1:-runs/table1-fast}
if [ ! -d "$CKPT/checkpoints" ]; then
  CKPT=runs/figure2-adam
  gancli train mnist --preset adam --epochs 5 --ckpt "$CKPT"
fi
gancli sample "$CKPT" --n 30 --nearest --seed 2 --out "$CKPT/figure2/figure2.npz" --force
# --no-curves: reading the config must not redraw the run's curves.png.
HAS_EMA=$(gancli inspect "$CKPT" --json --no-curves | python -c "import json, sys; print(int(json.load(sys.stdin)['config']['ema'] > 0))")
if [ "$HAS_EMA" = 1 ]; then
  gancli sample "$CKPT" --n 30 --nearest --seed 2 --no-ema --out "$CKPT/figure2/figure2_raw.npz" --force
fi
