#!/usr/bin/env bash
# Everything issue #15 measures on a GPU machine, in one go (run it through .gpu/enter.sh, see
# scripts/gpu-pack.sh): the adapter's facts, the GPU kernel benchmarks with PyTorch's matmul as the
# peer, `conformance --large --all-casts`, and the training benchmark next to PyTorch eager. Each
# step has its own time limit and writes its JSON to $OUT/<step>.json (logs to $OUT/logs.txt;
# default ./gpu-results), so that one
# failing or slow step leaves the others' results. STEPS picks steps (default: all, in this order);
# PRECISIONS the training precisions; CONFORMANCE_CASTS='' samples the casts instead of all 2^32.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
STEPS=${STEPS:-"info kernels train conformance"}

step() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  echo "=== $name (limit ${secs}s) $(date -u +%H:%M:%S)"
  timeout "$secs" "$@" > "$OUT/$name.json" 2> "/tmp/$name.log"
  local rc=$?
  { echo "=== $name: exit $rc"; cat "/tmp/$name.log"; } >> "$OUT/logs.txt"
  echo "=== $name: exit $rc after $(( $(date +%s) - t0 ))s"; tail -n 25 "/tmp/$name.log"
}
nvidia-smi -L 2>/dev/null || true
for s in $STEPS; do
  case $s in
    info) step info 45 node --import tsx scripts/gpu-info.ts ;;
    kernels) step kernels 140 node --import tsx bench/kernels.ts --gpu-only ;;
    train) step train 180 node --import tsx bench/train.ts --config small --precision ${PRECISIONS:-32-true,bf16-mixed,16-mixed,fp8} ;;
    conformance) step conformance 90 node --import tsx scripts/conformance.ts --large ${CONFORMANCE_CASTS:---all-casts} --out /tmp/conformance-report.json ;;
    *) echo "unknown step $s" ;;
  esac
done
