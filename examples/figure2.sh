#!/usr/bin/env bash
# The paper's Figure 2: samples beside their nearest training images (pixel L2), from a trained MNIST model.
#   bash examples/figure2.sh [CKPT]     # default runs/table1-fast; trains 5 epochs of the adam recipe if absent
set -euo pipefail
CKPT=${1:-runs/table1-fast}
if [ ! -d "$CKPT/checkpoints" ]; then
  CKPT=runs/figure2-adam
  gancli train mnist --preset adam --epochs 5 --ckpt "$CKPT"
fi
gancli sample "$CKPT" --n 30 --nearest --seed 2 --out "$CKPT/figure2/figure2.npz" --force
