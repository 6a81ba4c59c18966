#!/usr/bin/env bash
# Install a Vulkan driver that runs on the CPU (Debian's Mesa lavapipe, "llvmpipe" in vulkaninfo)
# and the Vulkan loader, so burn's wgpu backend runs here without a GPU: the library's test suite
# runs on it (GC_TEST_DEVICE=wgpu, see .ci/run). Prints the driver's manifest.
set -euo pipefail
manifest=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null || true)
libraries=$(ldconfig -p 2>/dev/null || true)
if [ -z "$manifest" ] || ! grep -q 'libvulkan\.so\.1' <<<"$libraries"; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
        mesa-vulkan-drivers libvulkan1
fi
ls /usr/share/vulkan/icd.d/lvp_icd.*.json
