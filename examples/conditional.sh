#!/usr/bin/env bash
# Conditional GANs on MNIST (Mirza & Osindero 2014: Parzen 132 +- 1.8 with 1,000 samples per class; the 2014 GAN
# 225 +- 2). Trains the cgan preset (their model) and the 2014 paper preset made conditional (--conditional), and
# every EVERY epochs runs `gancli evaluate`: the Parzen protocol on 10,000 samples (the classes in turn: 1,000 per
# digit), the class accuracy of the shipped MNIST classifier and the per-class Fréchet distance, keeping each report.
# Then it draws a grid with one row per digit into docs/ and plots Parzen against epochs.
#
#   bash examples/conditional.sh                                    # 100 epochs each, a report every 10
#   EPOCHS=2 EVERY=1 bash examples/conditional.sh                   # a smoke run
#   DATA_DIR=.pytest_cache/gancli-data bash examples/conditional.sh # MNIST already prepared there
#   PRESETS=cgan bash examples/conditional.sh                       # one of the two
#
# Mirza & Osindero stopped at the best validation Parzen estimate; the script prints the epoch whose kept report
# has it (the validation log-likelihood at the chosen sigma) beside the test figure there. The docs/ grid is drawn
# from the last checkpoint. Stopped at any point, the same command resumes: training continues from the newest
# checkpoint, and an epoch whose report is kept is not evaluated again.
set -euo pipefail
EPOCHS=${EPOCHS:-100}
EVERY=${EVERY:-10}
PRESETS=${PRESETS:-cgan paper}
OUT=${OUT:-runs/conditional}
DOCS=${DOCS:-docs}
GANCLI=${GANCLI:-gancli}
DATA=(${DATA_DIR:+--data-dir "$DATA_DIR"})

for preset in $PRESETS; do
  ckpt="$OUT/$preset"
  for ((e = EVERY; e <= EPOCHS; e += EVERY)); do
    kept="$ckpt/reports/parzen_epoch_$(printf %04d "$e").json"
    [[ -f $kept ]] && continue
    "$GANCLI" train mnist --preset "$preset" --conditional --epochs "$e" --ckpt "$ckpt" "${DATA[@]}"
    "$GANCLI" evaluate "$ckpt" --no-calibration "${DATA[@]}"
    cp "$ckpt/reports/parzen.json" "$kept"
  done
  "$GANCLI" evaluate "$ckpt" "${DATA[@]}"  # the last epoch again, with the real-data calibration rows
  "$GANCLI" sample "$ckpt" --n 100 --seed 0 --out "$ckpt/figure/rows_per_digit.npz" --force  # 10 per digit, a row each
  mkdir -p "$DOCS" && cp "$ckpt/figure/rows_per_digit.png" "$DOCS/conditional_${preset}.png"
  python3 "$(dirname "$0")/parzen_curve.py" "$ckpt"
  python3 - "$ckpt" <<'EOF'
import json, sys
from pathlib import Path

kept = sorted((Path(sys.argv[1]) / "reports").glob("parzen_epoch_*.json"))
m = max((json.loads(p.read_text())["models"][0] for p in kept), key=lambda m: max(m["valid_ll"]))
c = m.get("conditional") or {}
print(f"{sys.argv[1]}: best validation Parzen at epoch {m['epoch']}: test {m['mean']:.1f} +- {m['stderr']:.1f} "
      f"(validation {max(m['valid_ll']):.1f}), class accuracy {c.get('accuracy', float('nan')):.1%}, "
      f"mean per-class Frechet {c.get('frechet_mean') or float('nan'):.3g}")
EOF
done
