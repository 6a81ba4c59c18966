#!/usr/bin/env bash
# Profile the measured training steps of our CPU backend (after the bench's warm-up) by kind of
# operation (perf sampling with DWARF call chains, classified by scripts/profile_ops.py).
#
#   scripts/profile-train-step.sh [resnet20|resnet50]
#
# Needs perf (Debian's linux-perf; installed here if missing) and a machine that allows
# perf_event_open for the cpu-clock software event.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model="${1:-resnet20}"
if ! command -v perf > /dev/null; then
    apt-get install -y linux-perf > /dev/null
fi
cargo bench --workspace --bench train_step --no-run --quiet
bench=$(ls -t target/release/deps/train_step-* | grep -v '\.d$' | head -n 1)
data=$(mktemp)
fifos=$(mktemp -d)
trap 'rm -rf "$data" "$fifos"' EXIT
mkfifo "$fifos/ctl" "$fifos/ack"
# 499 samples a second: about 800 over ResNet-20's measured steps (97 gave about 170, too few to
# rank the kinds within a few percent). Sampling starts after the warm-up steps (the bench
# enables it through perf's control FIFO): the warm-up's first touch of memory (page faults) is
# not part of a step.
GC_PERF_CTL="$fifos/ctl" GC_PERF_ACK="$fifos/ack" perf record -q -e cpu-clock -F 499 \
    --call-graph dwarf,16384 --delay=-1 --control "fifo:$fifos/ctl,$fifos/ack" \
    -o "$data" "$bench" "$model" --quick --no-gc-share
perf script -i "$data" 2> /dev/null | python3 scripts/profile_ops.py
