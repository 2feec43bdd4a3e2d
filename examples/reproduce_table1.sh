#!/usr/bin/env bash
# Table 1's MNIST row (Parzen log-likelihood, 225 +- 2 in the paper): train a preset and run the Parzen
# protocol every EVERY epochs, keeping each report, then plot Parzen against epochs.
#
#   bash examples/reproduce_table1.sh                                  # the faithful recipe, 2,000 epochs
#   PRESET=fast EPOCHS=250 EVERY=25 bash examples/reproduce_table1.sh  # the schedule 8x shorter
#   EPOCHS=2 EVERY=1 bash examples/reproduce_table1.sh                 # a smoke run
#
# Stopped at any point (Ctrl-C, SIGTERM, a killed session), the same command resumes: training continues from
# the newest checkpoint, and an epoch whose report is already kept is not evaluated again.
# REFERENCE=file.json adds an outside curve to the plot ({"label": ..., "source": ..., "points": {epoch: ll}}).
set -euo pipefail
PRESET=${PRESET:-paper}
EPOCHS=${EPOCHS:-2000}
EVERY=${EVERY:-250}
CKPT=${CKPT:-runs/table1-$PRESET}
GANCLI=${GANCLI:-gancli}

for ((e = EVERY; e <= EPOCHS; e += EVERY)); do
  kept="$CKPT/reports/parzen_epoch_$(printf %04d "$e").json"
  [[ -f $kept ]] && continue
  # A checkpoint every epoch (the default) so a kill loses at most one; the one at epoch e is kept for the report.
  "$GANCLI" train mnist --preset "$PRESET" --epochs "$e" --ckpt "$CKPT"
  "$GANCLI" evaluate "$CKPT" --parzen --no-calibration
  cp "$CKPT/reports/parzen.json" "$kept"
done
"$GANCLI" evaluate "$CKPT" --parzen   # the last one again, with the real-data calibration row
python3 "$(dirname "$0")/parzen_curve.py" "$CKPT" ${REFERENCE:+--reference "$REFERENCE"}
