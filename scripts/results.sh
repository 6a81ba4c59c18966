#!/usr/bin/env bash
# Regenerate docs/RESULTS.md and docs/results/: the study of GC on Fashion-MNIST (normalization,
# learning-rate and weight-decay robustness, GC's placement and scope, the rank rule on burn's
# layouts). Every grid is resumable: run the script again after an interruption and finished runs
# are kept. Runs are deterministic (seeded weights, shuffling and augmentation), so the same commit
# gives the same tables. About three and a half hours on 2 cores, alone on the machine.
#
#   scripts/install-data.sh        # once: Debian's full Fashion-MNIST
#   scripts/results.sh [GRID ...]  # all grids, or those named (see `grids` below)
#
# Runs go to runs/study/<grid>/, tables and plots to docs/results/<grid>/, each grid's wall time to
# runs/study/timings.txt; docs/RESULTS.md is docs/RESULTS.in.md with each
# `<!-- include results/... -->` line replaced by that file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p gc-lab --quiet
runs=runs/study
mkdir -p "$runs"
# The grids run a copy of the binary, so that a build meanwhile cannot change it between two
# comparisons, and each grid's line in timings.txt names the tree it was built from.
gclab=$runs/.gclab
cp target/release/gclab "$gclab"
built=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || built="$built with local changes to the code"

common=(--suite fashion-full --seeds 3 --resume)

# One comparison: its runs into runs/study/GRID, its table and curves into docs/results/GRID.
compare() {
    local grid=$1
    shift
    "$gclab" compare "${common[@]}" --out "$runs/$grid" "$@"
    mkdir -p "docs/results/$grid"
    "$gclab" report "$runs/$grid" --out "docs/results/$grid" > /dev/null
}

# One grid over a setting: sweep.md and the two figures into docs/results/GRID.
sweep() {
    local grid=$1
    shift
    "$gclab" sweep "${common[@]}" --out "$runs/$grid" "$@"
    mkdir -p "docs/results/$grid"
    cp "$runs/$grid"/sweep.md "$runs/$grid"/sweep-*.png "$runs/$grid"/sweep-*.svg "docs/results/$grid/"
}

# Part 1: normalization. The small CNN on all 60,000 images; ResNet-20 on a balanced 10,000.
grid_norm_small() {
    for model in small-cnn small-cnn-gn small-cnn-nonorm; do
        compare "normalization/$model" --model "$model" --arms sgd,sgd_gc,adam,adam_gc --epochs 8
    done
}
grid_norm_resnet20() {
    for model in resnet20 resnet20-gn; do
        compare "normalization/$model" --model "$model" --train-per-class 1000 \
            --arms sgd,sgd_gc,adam,adam_gc --epochs 6
    done
}
# Part 2: robustness to the learning rate and the weight decay (small CNN with BatchNorm).
grid_lr() {
    sweep lr --over lr --values 0.003,0.01,0.03,0.1,0.3,1 --arms sgd,sgd_gc --epochs 5
}
grid_wd() {
    sweep weight-decay --over weight-decay --values 0,0.0001,0.0005,0.001,0.005 \
        --arms sgd,sgd_gc --epochs 5
}
# Parts 3 and 4: where GC goes (gradient or update, conv and linear or conv only) and the rank rule
# on burn's layouts (`:burn_rank`: each Linear weight centralized per input row), on the same runs.
grid_placement() {
    compare placement --epochs 5 --arms \
        sgd,sgd_gc,sgd_gcc,sgd_gc:burn_rank,adam,adam_gc,adam_gc2,adam_gcc,adam_gcc2,adam_gc:burn_rank,adamw,adamw_gc,adamw_gcc
}

grids=(lr wd placement norm_small norm_resnet20)
[ $# -gt 0 ] && grids=("$@")
for grid in "${grids[@]}"; do
    started=$SECONDS
    "grid_$grid"
    echo "$grid: $(( (SECONDS - started) / 60 )) min ($(date -u +%Y-%m-%dT%H:%MZ), built from $built)" \
        | tee -a "$runs/timings.txt"
done

# The page, once every grid it includes has run; until then the script names the first table
# missing and leaves the page as it is.
awk '
    /^<!-- include .* -->$/ {
        file = "docs/" $3
        if ((getline line < file) <= 0) {
            print "results.sh: " file " is missing: run its grid first" > "/dev/stderr"
            exit 1
        }
        do print line; while ((getline line < file) > 0)
        close(file)
        next
    }
    { print }
' docs/RESULTS.in.md > docs/RESULTS.md.new || { rm -f docs/RESULTS.md.new; exit 1; }
mv docs/RESULTS.md.new docs/RESULTS.md
echo "wrote docs/RESULTS.md"
