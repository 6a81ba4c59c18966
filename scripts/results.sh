#!/usr/bin/env bash
# Regenerate docs/results/: the Fashion-MNIST comparison of docs/RESULTS.md. Trains 9 arms x 3 seeds
# x 3 epochs on the full set (about 1.5 hours on 2 cores; resumable: run it again after an
# interruption), then draws one table and one pair of plots per comparison.
#
#   scripts/install-data.sh   # once: Debian's full Fashion-MNIST
#   scripts/results.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=runs/results-fashion-full
cargo build --release --workspace --quiet
gclab=target/release/gclab
"$gclab" compare --suite fashion-full \
    --arms sgd,sgd_gc,sgd_gcc,adam,adam_gc,adamw,adamw_gcc,adagrad,adagrad_gcc \
    --seeds 3 --epochs 3 --out "$runs" --resume
for pair in sgd:sgd_gc sgd:sgd_gcc adam:adam_gc adamw:adamw_gcc adagrad:adagrad_gcc; do
    base=${pair%%:*}
    gc=${pair##*:}
    out=docs/results/$base-vs-$gc
    mkdir -p "$out"
    "$gclab" report "$runs/$base" "$runs/$gc" --out "$out"
done
"$gclab" report "$runs" --out docs/results/all
