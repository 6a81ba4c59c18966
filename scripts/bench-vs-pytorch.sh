#!/usr/bin/env bash
# Ours against PyTorch on this machine, same threads, same work, in alternating rounds: the GC
# optimizers' step over ResNet-50's parameters, and a training step (SGD_GC) of ResNet-20 (batch
# 128), ResNet-50 (batch 16, 224x224) and the default job's small CNN (batch 128, 1x28x28), split
# into forward, backward and optimizer, with each process's peak memory.
#
#   scripts/bench-vs-pytorch.sh [--torch VERSION[,VERSION..]] [--pairs N] [--models LIST]
#                               [--no-optim] [--quick]
#
# --torch: the PyTorch versions from PyPI to compare with (default 2.9.1; `latest` is the newest
# PyPI has); each round runs ours, then each of them. --pairs: rounds per comparison (at least 3,
# the default). --models: a comma list of resnet20, resnet50, small-cnn (default all three).
# Each round's figures are printed; the summary gives medians, and `ratio ...` lines only for
# comparisons where PyTorch's own times stayed within 15% between rounds; otherwise the run is
# marked BUSY and the script exits with status 3 (scripts/bench_vs_pytorch.py).
#
# Each PyTorch (the PyPI build, about 5 GB with its CUDA libraries, used here on the CPU) goes
# into a cached virtual environment, $GC_TORCH_CACHE/torch-VERSION (default
# ~/.cache/gradient-centralization), made on first use. The whole output is also kept in
# target/bench-vs-pytorch/. Never run by CI. Nothing else should be running: both sides use
# every core.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage="usage: $0 [--torch VERSION[,VERSION..]] [--pairs N] [--models LIST] [--no-optim] [--quick]"
torch_list="2.9.1"
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --torch) torch_list="${2:?$usage}"; shift ;;
        --pairs | --models) pass+=("$1" "${2:?$usage}"); shift ;;
        --no-optim | --quick) pass+=("$1") ;;
        *) echo "unknown argument $1; $usage" >&2; exit 2 ;;
    esac
    shift
done

cache="${GC_TORCH_CACHE:-$HOME/.cache/gradient-centralization}"
torches=()
for version in ${torch_list//,/ }; do
    if [ "$version" = latest ]; then
        version=$(python3 -m pip index versions torch 2> /dev/null | sed -n 's/^torch (\(.*\))$/\1/p')
        [ -n "$version" ] || { echo "could not ask PyPI for torch's newest version" >&2; exit 1; }
    fi
    venv="$cache/torch-$version"
    if ! "$venv/bin/python" -c "import torch, numpy; assert torch.__version__.split('+')[0] == '$version'" 2> /dev/null; then
        echo "== installing PyTorch $version into $venv (first use only)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "torch==$version" numpy
    fi
    torches+=(--torch "$version=$venv/bin/python")
done

threads=$(nproc)
export GC_BENCH_THREADS=$threads RAYON_NUM_THREADS=$threads

echo "== building our benches (release)"
# One build; cargo's JSON messages name the two executables (`optim_step` first, then
# `train_step`).
binaries=$(cargo bench --workspace --no-run --bench optim_step --bench train_step \
    --message-format=json-render-diagnostics | python3 -c 'import json, sys
found = {}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        found[m["target"]["name"]] = m["executable"]
print(found["optim_step"], found["train_step"])')
read -r optim train <<< "$binaries"

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates || commit="$commit+uncommitted"
mkdir -p target/bench-vs-pytorch
log="target/bench-vs-pytorch/$(date +%Y%m%d-%H%M%S)-$commit.txt"
set +e
python3 scripts/bench_vs_pytorch.py --optim-bench "$optim" --train-bench "$train" \
    --torch-bench crates/gc-lab/benches/pytorch/torch_bench.py --commit "$commit" \
    "${torches[@]}" "${pass[@]}" | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "(kept in $log)"
exit "$status"
