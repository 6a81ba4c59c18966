#!/usr/bin/env bash
# Install the real data sets this project can get offline: Debian's full Fashion-MNIST
# (60000 training + 10000 test images under /usr/share/datasets/fashion-mnist/).
set -euo pipefail
if [ -d /usr/share/datasets/fashion-mnist ]; then
    echo "Fashion-MNIST already installed in /usr/share/datasets/fashion-mnist"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y dataset-fashion-mnist
ls -l /usr/share/datasets/fashion-mnist
