#!/usr/bin/env bash
# Reads the lab's TensorBoard event files with TensorBoard itself: trains two arms for two short
# epochs with `--tensorboard`, then loads every run folder with TensorBoard's EventAccumulator
# and checks each epoch scalar against the run's metrics.csv and the step count against the
# epochs. TensorBoard is installed into a cached virtualenv on first use
# ($GC_TENSORBOARD_VENV, default ~/.cache/gradient-centralization/tensorboard).
#
#   scripts/check-tensorboard.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${GC_TENSORBOARD_VENV:-$HOME/.cache/gradient-centralization/tensorboard}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tensorboard" 2> /dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet tensorboard
fi
cargo build --release -p gc-lab --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/gclab compare --arms sgd,sgd_gc --seeds 1 --epochs 2 --train-per-class 20 \
    --test-per-class 5 --out "$work/runs" --tensorboard "$work/events" > /dev/null
"$venv/bin/python" - "$work" <<'PY'
import csv, sys
import tensorboard
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
work = sys.argv[1]
for arm in ["sgd", "sgd_gc"]:
    acc = EventAccumulator(f"{work}/events/{arm}/seed0")
    acc.Reload()
    with open(f"{work}/runs/{arm}/seed0/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for column in ["lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5"]:
        got = [(e.step, e.value) for e in acc.Scalars(f"epoch/{column}")]
        want = [(int(r["epoch"]), float(r[column])) for r in rows]
        assert [s for s, _ in got] == [s for s, _ in want], (arm, column, got, want)
        for (_, g), (_, w) in zip(got, want):
            assert abs(g - w) <= 1e-6 * max(1.0, abs(w)), (arm, column, got, want)
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) % len(rows) == 0, steps
    print(f"{arm}: TensorBoard {tensorboard.__version__} reads {len(steps)} steps and "
          f"{len(rows)} epochs, equal to metrics.csv")
PY
