#!/usr/bin/env bash
# Regenerate crates/gc-lab/tests/fixtures/pretrained/ (the `--pretrained` import's fixtures) with
# PyTorch and torchvision from PyPI, in a cached virtualenv (about 5 GB on first use; the same
# cache as scripts/bench-vs-pytorch.sh).
#
#   bash crates/gc-lab/reference/make_pretrained.sh [OUT]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
torch=2.9.1
vision=0.24.1
venv="${GC_TORCH_CACHE:-$HOME/.cache/gradient-centralization}/torch-$torch"
if ! "$venv/bin/python" -c "import torch, torchvision" 2> /dev/null; then
    echo "== installing PyTorch $torch and torchvision $vision into $venv (first use only)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==$torch" "torchvision==$vision" numpy
fi
"$venv/bin/python" crates/gc-lab/reference/make_pretrained.py "${1:-crates/gc-lab/tests/fixtures/pretrained}"
ls -l "${1:-crates/gc-lab/tests/fixtures/pretrained}"
