#!/usr/bin/env bash
# On the GPU machine (packed by scripts/gpu-pack.sh, copied to .gpu/enter.sh): unpacks Node, the
# Vulkan loader and node_modules, points the loader at NVIDIA's Vulkan driver, and runs the given
# command from the project root. Example: bash .gpu/enter.sh bash scripts/gpu-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/gpu-bin
[ -x /tmp/gpu-bin/node ] || { xz -dc .gpu/node.xz > /tmp/gpu-bin/node; chmod +x /tmp/gpu-bin/node; }
export PATH=/tmp/gpu-bin:$PATH
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done; ldconfig
[ -d node_modules/webgpu ] || xz -dc .gpu/nm.tar.xz | tar -xf -
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] || icd=$( (ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null || true) | head -1)
if [ -n "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; else echo "enter.sh: no NVIDIA Vulkan ICD found; memfit picks an adapter by itself" >&2; fi
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export XDG_RUNTIME_DIR=/tmp
exec "$@"
