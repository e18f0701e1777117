#!/usr/bin/env bash
# The lite zoo's training chain (models/README.md) run once per stability weight: the weight-2500
# chain made the shipped mosaic, candy and starry_night lite nets, and the others measure the term
# per style against it (docs/temporal.md, "Every lite style").
#
#     git show c3501bf:models/mosaic_lite.onnx > /tmp/mosaic_lite_v1.onnx     # the chain's start
#     ROOT=/tmp/mosaic_lite_v1.onnx bash bench/stability_chains.sh 0 2500      # two chains side by side
#     STYLES=first bash bench/stability_chains.sh 5000 10000   # candy, the_scream, starry_night only
#     cd bench && python temporal.py /tmp/st/candy_lite_tw0.onnx /tmp/st/candy_lite_tw2500.onnx
#
# With the training extra installed (the venv active). One chain per weight, all in parallel with
# one thread each; nets go to $OUT (default /tmp/st), runs and logs to runs/st_*. ROOT is the lite
# net the chain starts from (default models/mosaic_lite.onnx): the shipped zoo started from the
# mosaic_lite of before the colour skip, which the first stage adds. --warmup-steps 0: the measured
# chains ran before --init-from runs warmed up by default.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/st}
STYLES=${STYLES:-all}
ROOT=${ROOT:-models/mosaic_lite.onnx}
PAINTINGS=../shared/data/styles
PHOTOS=../shared/data/train
mkdir -p "$OUT" runs/logs

meta() {  # painting key: from the shipped lite model's metadata
    python -c 'import sys; from realtime_style.engine import read_metadata; print(read_metadata(sys.argv[1])[sys.argv[2]])' \
        "models/$1_lite.onnx" "$2"
}

stage() {  # weight painting init steps style_weight name
    local weight=$1 painting=$2 init=$3 steps=$4 style_weight=$5 name=$6
    OMP_NUM_THREADS=1 python tools/train.py --style "$PAINTINGS/$painting.jpg" --name "${painting}_lite" \
        --display-name "$(meta "$painting" display_name)" --style-credit "$(meta "$painting" style_credit)" \
        --style-license "$(meta "$painting" style_license)" \
        --arch lite --data "$PHOTOS" --steps "$steps" --size 128 --init-from "$init" \
        --style-weight "$style_weight" --lr-schedule cosine --temporal-weight "$weight" \
        --temporal-batch 0 --warmup-steps 0 --workers 1 \
        --out-dir "runs/st_${name}_tw$weight" --overwrite --no-export > "runs/logs/st_${name}_tw$weight.log" 2>&1
    rtstyle export "runs/st_${name}_tw$weight/checkpoint.pt" "$OUT/${name}_lite_tw$weight.onnx" --overwrite
}

chain() {  # weight
    local w=$1
    stage "$w" mosaic "$ROOT" 500 10 mosaic
    stage "$w" candy "$OUT/mosaic_lite_tw$w.onnx" 500 30 candy
    stage "$w" the_scream "$OUT/candy_lite_tw$w.onnx" 300 100 the_scream
    stage "$w" starry_night "$OUT/candy_lite_tw$w.onnx" 300 30 starry_night
    [ "$STYLES" = first ] && return
    stage "$w" woman_with_hat "$OUT/candy_lite_tw$w.onnx" 200 60 woman_with_hat
    stage "$w" composition_vii "$OUT/candy_lite_tw$w.onnx" 200 60 composition_vii
    stage "$w" wave "$OUT/starry_night_lite_tw$w.onnx" 200 30 wave_a
    stage "$w" wave "$OUT/wave_a_lite_tw$w.onnx" 200 150 wave
    stage "$w" udnie "$OUT/the_scream_lite_tw$w.onnx" 200 60 udnie_a
    stage "$w" udnie "$OUT/udnie_a_lite_tw$w.onnx" 200 200 udnie
    stage "$w" shipwreck "$OUT/the_scream_lite_tw$w.onnx" 200 60 shipwreck_a
    stage "$w" shipwreck "$OUT/shipwreck_a_lite_tw$w.onnx" 200 200 shipwreck
}

[ $# -gt 0 ] || { echo "usage: bash bench/stability_chains.sh WEIGHT [WEIGHT ...]" >&2; exit 2; }
pids=()
for weight in "$@"; do chain "$weight" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid" || { echo "a chain failed: see runs/logs/st_*" >&2; exit 1; }; done
echo "nets in $OUT"
