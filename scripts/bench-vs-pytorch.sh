#!/usr/bin/env bash
# Ours against PyTorch on this machine, same threads, same work: the GC optimizers' step over the
# ResNet-50 parameter set, a ResNet-20 training step (batch 128) and, with --resnet50, a ResNet-50
# training step (batch 16, 224x224); peak memory of each training process. Prints one table of
# ratios ours / PyTorch and ends with `ratio <metric> <ours_over_pytorch>` lines.
#
#   scripts/bench-vs-pytorch.sh [--quick] [--resnet50]
#
# PyTorch (the PyPI build, about 5 GB with its CUDA libraries, used here on the CPU) goes into a
# cached virtual environment, $GC_TORCH_VENV or ~/.cache/gradient-centralization/torch-venv, made
# on the first run. Never run by CI. Nothing else should be running: both sides use every core.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=""
resnet50=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick="--quick" ;;
        --resnet50) resnet50=1 ;;
        *) echo "unknown argument $arg; usage: $0 [--quick] [--resnet50]" >&2; exit 2 ;;
    esac
done

venv="${GC_TORCH_VENV:-$HOME/.cache/gradient-centralization/torch-venv}"
torch_version="2.15.0"
if ! "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('$torch_version')" 2>/dev/null; then
    echo "== installing PyTorch $torch_version into $venv (first run only)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==$torch_version" numpy
fi
py="$venv/bin/python"
threads=$(nproc)
export GC_BENCH_THREADS=$threads RAYON_NUM_THREADS=$threads

echo "== building our benches (release)"
cargo bench --workspace --no-run --quiet 2>/dev/null || cargo bench --workspace --no-run
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The optimizer steps take a few tens of milliseconds, and this machine's memory bandwidth moves
# by tens of percent from one minute to the next: after the whole bench, two more pairs of runs
# of the four GC optimizers alternate ours and PyTorch's; each ratio is the median of the pairs'.
pairs=3
[ -n "$quick" ] && pairs=1
echo "== optimizer step, ResNet-50 parameters (pair 1 of $pairs: our whole bench, then PyTorch's)"
cargo bench --quiet --workspace --bench optim_step -- $quick | tee "$out/ours-optim-1"
"$py" crates/gc-lab/benches/pytorch/torch_bench.py optim $quick | tee "$out/torch-optim-1"
for pair in $(seq 2 "$pairs"); do
    echo "== optimizer step, pair $pair of $pairs"
    cargo bench --quiet --workspace --bench optim_step -- $quick \
        --only sgd_gc,adam_gc,adamw_gcc,adagrad_gcc | grep '^optim_step' | tee "$out/ours-optim-$pair"
    "$py" crates/gc-lab/benches/pytorch/torch_bench.py optim $quick | grep '^optim_step' \
        | tee "$out/torch-optim-$pair"
done

models=(resnet20)
[ "$resnet50" = 1 ] && models+=(resnet50)
for model in "${models[@]}"; do
    echo "== training step, $model"
    cargo bench --quiet --workspace --bench train_step -- "$model" $quick | tee "$out/ours-$model"
    "$py" crates/gc-lab/benches/pytorch/torch_bench.py train "$model" $quick | tee "$out/torch-$model"
done

echo
"$py" - "$out" <<'EOF'
import pathlib, sys

out = pathlib.Path(sys.argv[1])

def lines(name, tag):
    path = out / name
    if not path.exists():
        return []
    return [l.split() for l in path.read_text().splitlines() if l.startswith(tag + " ")]

def median(v):
    v = sorted(v)
    return v[len(v) // 2]

pairs = []
for k in range(1, 100):
    if not (out / f"ours-optim-{k}").exists():
        break
    pairs.append(tuple({f[1]: float(f[2]) for f in lines(f"{side}-optim-{k}", "optim_step")}
                       for side in ["ours", "torch"]))
# (metric, unit, ours, pytorch, ours / pytorch): the optimizer rows' figures are medians over the
# pairs, their ratio the median of the pairs' ratios.
rows = []
for name in ["sgd_gc", "adam_gc", "adamw_gcc", "adagrad_gcc"]:
    rows.append((f"optim_step_{name}", "ns/param", median([o[name] for o, _ in pairs]),
                 median([t[name] for _, t in pairs]),
                 median([o[name] / t[name] for o, t in pairs])))
    print(f"optim_step_{name}: ours / pytorch per pair " +
          " ".join(f"{o[name] / t[name]:.3f}" for o, t in pairs))
for model in ["resnet20", "resnet50"]:
    o = lines(f"ours-{model}", "train_step")
    t = lines(f"torch-{model}", "train_step")
    if not o or not t:
        continue
    o, t = o[0], t[0]
    for i, what in [(3, "train_step"), (4, "forward"), (5, "backward"), (6, "optimizer")]:
        rows.append((f"{what}_{model}", "ms", float(o[i]), float(t[i]), float(o[i]) / float(t[i])))
    rows.append((f"peak_memory_{model}", "MiB", float(o[7]), float(t[7]), float(o[7]) / float(t[7])))

print(f"{'metric':<28} {'unit':>8} {'ours':>12} {'pytorch':>12} {'ours/pytorch':>13}")
for metric, unit, a, b, r in rows:
    print(f"{metric:<28} {unit:>8} {a:>12.3f} {b:>12.3f} {r:>13.3f}")
for metric, _, _, _, r in rows:
    print(f"ratio {metric} {r:.4f}")
EOF
