#!/usr/bin/env bash
# The GPU benches, for a machine with an NVIDIA GPU and no network: built here, run there.
#
#   scripts/gpu-bench.sh prepare [DIR]       here: builds the release benches with the lab's wgpu
#                                            feature (add GC_GPU_FEATURES=wgpu,cuda where CubeCL's
#                                            LLVM bundle can be downloaded) and packs them, with the
#                                            PyTorch twin and this script, into DIR
#                                            (default target/gpu-bench) and DIR.tar.gz (~30 MB)
#   DIR/gpu-bench.sh run [--device NAME] [--pairs N] [--launches] [--quick] [--models "resnet20 ..."]
#                                            there: the GC optimizers' step over ResNet-50's
#                                            parameters through the library's GPU kernel and
#                                            through the tensor definition (optim_step), ResNet-20
#                                            and ResNet-50 training steps (train_step), each beside
#                                            PyTorch's twin on the same GPU where PyTorch with CUDA
#                                            is installed, alternating ours and PyTorch's N times
#                                            (default 3); prints medians of the pairs' ratios with
#                                            PyTorch's own times.
#
# NAME is one of the lab's devices (default vulkan:0, the first discrete GPU through its Vulkan
# driver; cuda:0 needs the cuda feature). Nothing is installed there: the binaries, python3 and,
# for the ratios, PyTorch with CUDA are what it uses.
set -euo pipefail

case "${1:-}" in
prepare)
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    dir="${2:-target/gpu-bench}"
    features="${GC_GPU_FEATURES:-wgpu}"
    features="gc-lab/${features//,/,gc-lab/}"
    echo "== building the benches (release, features $features)"
    artifacts=$(cargo build --release -p gc-lab -p flex-kernels --benches --features "$features" \
        --message-format=json)
    mkdir -p "$dir"
    for bench in optim_step train_step; do
        exe=$(python3 -c '
import json, sys
name = sys.argv[1]
found = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name
         and m.get("executable")]
if len(found) != 1:
    sys.exit(f"expected one bench named {name}, found {found}")
print(found[0])' "$bench" <<<"$artifacts")
        # Without their debug information: about 60 MB each instead of 500.
        strip --strip-all -o "$dir/$bench" "$exe"
    done
    cp crates/gc-lab/benches/pytorch/torch_bench.py scripts/gpu-bench.sh "$dir/"
    tar -czf "$dir.tar.gz" -C "$(dirname "$dir")" "$(basename "$dir")"
    echo "packed into $dir and $dir.tar.gz ($(du -h "$dir.tar.gz" | cut -f1)): copy either to the" \
        "GPU machine and run gpu-bench.sh run in it"
    ;;
run)
    shift
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    device=vulkan:0
    pairs=3
    launches=0
    quick=""
    models="resnet20 resnet50"
    while [ $# -gt 0 ]; do
        case "$1" in
            --device) device="$2"; shift 2 ;;
            --pairs) pairs="$2"; shift 2 ;;
            --launches) launches=1; shift ;;
            --quick) quick="--quick"; shift ;;
            --models) models="$2"; shift 2 ;;
            *) echo "unknown argument $1; usage: $0 run [--device NAME] [--pairs N] [--launches]" \
                    "[--quick] [--models LIST]" >&2
               exit 2 ;;
        esac
    done
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    echo "== the machine"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
        || echo "(no nvidia-smi)"
    torch=0
    if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        torch=1
        python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)'
    else
        echo "PyTorch with CUDA is not installed: our figures only, no ratios"
    fi
    for pair in $(seq 1 "$pairs"); do
        echo "== optimizer step, ResNet-50 parameters, pair $pair of $pairs"
        "$here/optim_step" --device "$device" $quick | tee "$out/ours-optim-$pair"
        if [ "$torch" = 1 ]; then
            python3 "$here/torch_bench.py" optim --device cuda $quick | tee "$out/torch-optim-$pair"
        fi
    done
    for model in $models; do
        for pair in $(seq 1 "$pairs"); do
            echo "== training step, $model, pair $pair of $pairs"
            "$here/train_step" "$model" --device "$device" --optimizer sgd_gc $quick \
                | tee "$out/ours-train-$model-$pair"
            "$here/train_step" "$model" --device "$device" --optimizer sgd_gc --tensor-path $quick \
                | grep '^train_step' | sed 's/^train_step/train_step_tensor/' \
                | tee "$out/ours-tensor-$model-$pair"
            if [ "$torch" = 1 ]; then
                python3 "$here/torch_bench.py" train "$model" --optimizer sgd_gc --device cuda $quick \
                    | tee "$out/torch-train-$model-$pair"
            fi
        done
    done
    if [ "$launches" = 1 ]; then
        echo "== kernel launches per step"
        "$here/optim_step" --device "$device" --quick --launches | grep -E '^(launches|optimizer|[a-z_]+ +[0-9]+ +[0-9]+$)'
    fi
    echo "== ratios (medians over the $pairs pairs; PyTorch's own time beside each)"
    python3 - "$out" "$pairs" "$torch" "$models" <<'PY'
import statistics, sys
from pathlib import Path

out, pairs, torch = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
models = sys.argv[4].split()

def lines(name, tag):
    found = []
    for line in (out / name).read_text().splitlines():
        if line.startswith(tag + " "):
            found.append(line.split())
    return found

print(f"{'optimizer step':<24} {'kernel ms':>10} {'tensor ms':>10} {'tensor/kernel':>14} "
      f"{'x bound':>8} {'torch ms':>9} {'ours/torch':>11}")
# `optim_step_device <device> <name> <kernel_ms> <tensor_ms> <tensor/kernel> <x_bound>`
names = [f[2] for f in lines("ours-optim-1", "optim_step_device")]
for name in names:
    ours = [[f for f in lines(f"ours-optim-{p}", "optim_step_device") if f[2] == name][0]
            for p in range(1, pairs + 1)]
    kernel = statistics.median(float(f[3]) for f in ours)
    tensor = statistics.median(float(f[4]) for f in ours)
    ratio = statistics.median(float(f[5]) for f in ours)
    bound = statistics.median(float(f[6]) for f in ours)
    theirs, vs = "-", "-"
    if torch:
        t = [[f for f in lines(f"torch-optim-{p}", "optim_step") if f[1] == name]
             for p in range(1, pairs + 1)]
        if all(t):
            theirs_ms = [float(x[0][3]) for x in t]
            vs = f"{statistics.median(float(o[3]) / m for o, m in zip(ours, theirs_ms)):.2f}"
            theirs = f"{statistics.median(theirs_ms):.2f}"
    print(f"{name:<24} {kernel:>10.2f} {tensor:>10.2f} {ratio:>14.2f} {bound:>8.2f} "
          f"{theirs:>9} {vs:>11}")
print(f"{'training step':<24} {'ours ms':>10} {'tensor ms':>10} {'torch ms':>9} {'ours/torch':>11}")
for model in models:
    ours = [float(lines(f"ours-train-{model}-{p}", "train_step")[0][3]) for p in range(1, pairs + 1)]
    tensor = [float(lines(f"ours-tensor-{model}-{p}", "train_step_tensor")[0][3])
              for p in range(1, pairs + 1)]
    theirs, vs = "-", "-"
    if torch:
        t = [float(lines(f"torch-train-{model}-{p}", "train_step")[0][3]) for p in range(1, pairs + 1)]
        theirs = f"{statistics.median(t):.1f}"
        vs = f"{statistics.median(o / x for o, x in zip(ours, t)):.2f}"
    print(f"{model + ' sgd_gc':<24} {statistics.median(ours):>10.1f} "
          f"{statistics.median(tensor):>10.1f} {theirs:>9} {vs:>11}")
PY
    ;;
*)
    sed -n '2,22p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
