#!/usr/bin/env bash
# The GPU rows of benchmarks/RESULTS.md (issue 10) in one call on a lent GPU machine, at most 8 minutes
# (about 6 expected): training tokens/s, TFLOP/s and MFU at three sizes in bf16 (eager and compiled) and
# the time to make a 4 s clip with the shipped model. Run from the repository root with that machine's
# own python3 and torch (kinema is not installed there, and its text encoder package is too large to
# carry, so generation reads the prompt's text states from benchmarks/data/generate-text-states.safetensors):
#
#     PYTHONPATH=. bash benchmarks/gpu.sh            # tables to stdout and to $OUT (default runs/gpu-bench)
#
# Each part has its own time limit, so one that hangs or runs out of memory does not cost the others.
set -uo pipefail
out="${OUT:-runs/gpu-bench}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

part() {  # part NAME SECONDS ARGS...: run one benchmark, its output to the terminal and to $out/NAME.txt
    local name="$1" limit="$2"
    shift 2
    echo "===== $name: $* (limit ${limit} s) ====="
    timeout "$limit" "$py" "$@" 2>&1 | tee "$out/$name.txt"
    echo "$name exit ${PIPESTATUS[0]}" | tee -a "$out/status.txt"
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv;
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } 2>&1 | tee "$out/machine.txt"
part train 120 -m benchmarks.train
part train-compiled 270 -m benchmarks.train --compile
part generate 90 -m benchmarks.generate --text-states benchmarks/data/generate-text-states.safetensors --repeat 3
