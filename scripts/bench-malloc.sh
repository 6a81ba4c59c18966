#!/usr/bin/env bash
# Which allocator a training step runs fastest with: glibc as it comes, glibc with the settings
# gclab applies (flex_kernels::malloc::keep_freed_memory), mimalloc and jemalloc (Debian's shared
# libraries, preloaded). Runs `train_step --quick --optimizer sgd` once per allocator per round,
# the allocators interleaved within each round so that a slow moment of the machine weighs on all
# alike; prints each allocator's median step time over the rounds and its ratio to glibc's.
# When the PyTorch environment of scripts/bench-vs-pytorch.sh exists, PyTorch's same step (its
# own model twin, SGD) runs in each round too, with glibc as it comes and with the same settings
# given through glibc's environment variables, so that ours / PyTorch is measured both ways.
#
#   scripts/bench-malloc.sh [resnet20|resnet50] [ROUNDS]     (default: resnet20, 3 rounds)
#
# The two libraries are fetched with `apt-get download` (no root needed) into
# ~/.cache/gradient-centralization/malloc on the first run. Nothing else should be running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model="${1:-resnet20}"
rounds="${2:-3}"
case "$model" in
    resnet20|resnet50) ;;
    *) echo "unknown model $model; usage: $0 [resnet20|resnet50] [ROUNDS]" >&2; exit 2 ;;
esac

cache="$HOME/.cache/gradient-centralization/malloc"
libs="$cache/usr/lib/x86_64-linux-gnu"
if [ ! -e "$libs/libmimalloc.so.2" ] || [ ! -e "$libs/libjemalloc.so.2" ]; then
    echo "== fetching mimalloc and jemalloc (Debian packages) into $cache"
    mkdir -p "$cache"
    (cd "$cache" && apt-get download libmimalloc2.0 libjemalloc2 && for deb in ./*.deb; do dpkg -x "$deb" .; done)
fi

echo "== building the benches (release)"
cargo bench --workspace --no-run --quiet 2>/dev/null || cargo bench --workspace --no-run
bench=$(ls -t target/release/deps/train_step-* | grep -v '\.d$' | head -1)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
allocators=(glibc glibc-tuned mimalloc jemalloc)
venv="${GC_TORCH_VENV:-$HOME/.cache/gradient-centralization/torch-venv}"
torch=(crates/gc-lab/benches/pytorch/torch_bench.py train "$model" --quick --optimizer sgd)
if [ -x "$venv/bin/python" ]; then
    allocators+=(pytorch pytorch-tuned)
    export GC_BENCH_THREADS=$(nproc)
fi
# glibc's environment variables for the settings flex_kernels::malloc applies (no trimming: a
# threshold above any heap here).
tuned_env=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1099511627776 MALLOC_TOP_PAD_=536870912)
for round in $(seq "$rounds"); do
    for allocator in "${allocators[@]}"; do
        case "$allocator" in
            glibc) run=("$bench" --default-malloc) ;;
            glibc-tuned) run=("$bench") ;;
            mimalloc) run=(env LD_PRELOAD="$libs/libmimalloc.so.2" "$bench" --default-malloc) ;;
            jemalloc) run=(env LD_PRELOAD="$libs/libjemalloc.so.2" "$bench" --default-malloc) ;;
            pytorch) run=("$venv/bin/python" "${torch[@]}") ;;
            pytorch-tuned) run=(env "${tuned_env[@]}" "$venv/bin/python" "${torch[@]}") ;;
        esac
        case "$allocator" in
            pytorch*) line=$("${run[@]}" | grep '^train_step ') ;;
            *) line=$("${run[@]}" "$model" --quick --optimizer sgd | grep '^train_step ') ;;
        esac
        echo "round $round $allocator $line" | tee -a "$out"
    done
done

python3 - "$out" "$model" <<'PY'
import statistics, sys

rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    # round N allocator train_step model optimizer step fwd bwd optim peak
    rows.setdefault(f[2], []).append([float(x) for x in f[6:11]])
base = statistics.median(r[0] for r in rows["glibc"])
print(f"\n{sys.argv[2]}, SGD, median over {len(rows['glibc'])} rounds")
print(f"{'allocator':<12} {'step ms':>9} {'fwd ms':>9} {'bwd ms':>9} {'optim ms':>9} {'peak MiB':>9} {'x glibc':>8}")
for name, r in rows.items():
    m = [statistics.median(x[i] for x in r) for i in range(5)]
    print(f"{name:<12} {m[0]:>9.1f} {m[1]:>9.1f} {m[2]:>9.1f} {m[3]:>9.2f} {m[4]:>9.0f} {m[0] / base:>8.3f}")
step = {name: statistics.median(x[0] for x in r) for name, r in rows.items()}
for name in rows:
    if not name.startswith("pytorch"):
        print(f"malloc {sys.argv[2]} {name} {step[name] / base:.4f}")
for torch in ("pytorch", "pytorch-tuned"):
    if torch in step:
        for ours in ("glibc", "glibc-tuned"):
            print(f"ratio train_step_{sys.argv[2]} ours:{ours} {torch} {step[ours] / step[torch]:.4f}")
PY
