#!/usr/bin/env bash
# Table 1's MNIST row (Parzen log-likelihood, 225 +- 2 in the paper): train the paper's recipe and run the
# Parzen protocol every EVERY epochs, keeping each report, then plot Parzen against epochs.
#
#   bash examples/reproduce_table1.sh                                  # the faithful recipe, 2,000 epochs
#   PRESET=fast EPOCHS=250 EVERY=25 bash examples/reproduce_table1.sh  # the schedule 8x shorter
#   EPOCHS=2 EVERY=1 bash examples/reproduce_table1.sh                 # a smoke run
set -euo pipefail
PRESET=${PRESET:-paper}
EPOCHS=${EPOCHS:-2000}
EVERY=${EVERY:-250}
CKPT=${CKPT:-runs/table1-$PRESET}

for ((e = EVERY; e <= EPOCHS; e += EVERY)); do
  gancli train mnist --preset "$PRESET" --epochs "$e" --ckpt "$CKPT" --ckpt-every "$EVERY"
  gancli evaluate "$CKPT" --parzen --no-calibration
  cp "$CKPT/reports/parzen.json" "$CKPT/reports/parzen_epoch_$(printf %04d "$e").json"
done
gancli evaluate "$CKPT" --parzen   # the last one again, with the real-data calibration row
python3 "$(dirname "$0")/parzen_curve.py" "$CKPT"
