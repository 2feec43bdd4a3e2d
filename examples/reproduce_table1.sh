#!/usr/bin/env bash
# Table 1's MNIST row (Parzen log-likelihood, 225 +- 2 in the paper): train a preset and run the Parzen
# protocol every EVERY epochs, keeping each report, then plot Parzen against epochs.
#
#   bash examples/reproduce_table1.sh                                  # the faithful recipe, 2,000 epochs
#   PRESET=paper-ema EPOCHS=250 EVERY=25 SEEDS=3 METRICS=fid,prdc bash examples/reproduce_table1.sh
#   EPOCHS=2 EVERY=1 bash examples/reproduce_table1.sh                 # a smoke run
#
# A preset that keeps an EMA of G is evaluated twice at each point, the average (parzen_epoch_*.json) and G
# itself (parzen_raw_epoch_*.json), so the curve shows what the average adds. SEEDS > 1 trains the seeds in one
# program (--seeds) and reports their mean +- std. METRICS (a --metrics list) also keeps the sample-quality
# metrics of each (metrics_epoch_*.json, metrics_raw_epoch_*.json): Parzen rewards blur, the Fréchet distance
# and precision do not.
#
# Stopped at any point (Ctrl-C, SIGTERM, a killed session), the same command resumes: training continues from
# the newest checkpoint, and an epoch whose report is already kept is not evaluated again.
# REFERENCE=file.json adds an outside curve to the plot ({"label": ..., "source": ..., "points": {epoch: ll}});
# examples/reference_plain_jax_k256.json is the project reference notes' plain-JAX rerun of the paper's recipe.
set -euo pipefail
PRESET=${PRESET:-paper}
EPOCHS=${EPOCHS:-2000}
EVERY=${EVERY:-250}
SEEDS=${SEEDS:-1}
METRICS=${METRICS:-}
CKPT=${CKPT:-runs/table1-$PRESET}
GANCLI=${GANCLI:-gancli}
reports=$CKPT/reports

# evaluate WHAT KIND EPOCH [--no-ema]: one evaluation kept as $reports/WHAT_[raw_]epoch_NNNN.json
evaluate() {
  local what=$1 kind=$2 epoch=$3
  shift 3
  local kept="$reports/${what}_${kind}epoch_$(printf %04d "$epoch").json"
  [[ -f $kept ]] && return
  local out="$reports/latest-${kind}${what}"
  if [[ $what == parzen ]]; then
    "$GANCLI" evaluate "$CKPT" --parzen --no-calibration --out "$out" --force "$@"
  else
    "$GANCLI" evaluate "$CKPT" --metrics "$METRICS" --no-calibration --out "$out" --force "$@"
  fi
  cp "$out/$what.json" "$kept"
}

for ((e = EVERY; e <= EPOCHS; e += EVERY)); do
  # A checkpoint every few minutes (the default) so a kill loses little; the one at epoch e is the last.
  "$GANCLI" train mnist --preset "$PRESET" --epochs "$e" --seeds "$SEEDS" --ckpt "$CKPT"
  evaluate parzen "" "$e"
  # The report says whether it drew from an EMA of G; if so, G itself is measured too.
  ema=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["models"][0].get("generator_ema") or "")' \
        "$reports/parzen_epoch_$(printf %04d "$e").json")
  [[ -n $ema ]] && evaluate parzen raw_ "$e" --no-ema
  if [[ -n $METRICS ]]; then
    evaluate metrics "" "$e"
    [[ -n $ema ]] && evaluate metrics raw_ "$e" --no-ema
  fi
done
"$GANCLI" evaluate "$CKPT" --parzen   # the last one again, with the real-data calibration row
python3 "$(dirname "$0")/parzen_curve.py" "$CKPT" ${REFERENCE:+--reference "$REFERENCE"}
