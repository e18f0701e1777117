#!/bin/bash
# Seconds per training step of tools/train.py under several settings, in two interleaved rounds.
#
#     bash bench/step_times.sh [ROUNDS]        # from the repository root; about 10 minutes a round
#
# A shared VM's speed drifts (by a third within one session on 2026-12-04), so every setting runs
# once per round, in turn, and only settings of the same round compare. Each line: the mean of
# steps 5-14 from the images/s column of loss.csv, then the steps themselves. The numbers are in
# docs/training.md ("How long it takes") and docs/temporal.md ("The term on part of the batch").
set -u
ROUNDS=${1:-2}
DATA=${DATA:-../shared/data}
if [ ! -f "$DATA/styles/candy.jpg" ] || [ ! -d "$DATA/train" ]; then
    echo "step_times.sh: no $DATA/styles/candy.jpg or $DATA/train: set DATA to the shared data folder" >&2
    exit 1
fi
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT

one() {  # label, train.py options...
    local label=$1; shift
    if ! python tools/train.py --style "$DATA/styles/candy.jpg" --name t --out-dir "$RUN/t" --data "$DATA/train" \
            --batch-size 4 --steps 14 --no-export --overwrite --workers 1 "$@" > "$RUN/log" 2>&1; then
        echo "$label: failed: $(tail -1 "$RUN/log")"
        return
    fi
    python - "$label" "$RUN/t/loss.csv" <<'PY'
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[2])))
seconds = [4 / float(row["images_per_s"]) for row in rows[4:]]
print(f"{sys.argv[1]}: mean {sum(seconds) / len(seconds):.2f} s |", " ".join(f"{s:.2f}" for s in seconds), flush=True)
PY
}

for round in $(seq "$ROUNDS"); do
    echo "round $round, $(date -u +%T) UTC"
    one "256 px, stability term on 2 images" --size 256 --temporal-batch 2
    one "256 px, on 2, --compile" --size 256 --temporal-batch 2 --compile
    one "256 px, on all 4" --size 256 --temporal-batch 0
    one "256 px, no stability term" --size 256 --temporal-weight 0
    one "256 px, on 1" --size 256 --temporal-batch 1
    one "256 px, on 1, --compile" --size 256 --temporal-batch 1 --compile
    one "256 px, on 2, --no-channels-last" --size 256 --temporal-batch 2 --no-channels-last
    one "256 px, on all 4, --no-channels-last" --size 256 --temporal-batch 0 --no-channels-last
    one "128 px, on 2" --size 128 --temporal-batch 2
    one "128 px, on 2, --compile" --size 128 --temporal-batch 2 --compile
    one "128 px, on all 4" --size 128 --temporal-batch 0
    one "128 px, no stability term" --size 128 --temporal-weight 0
done
