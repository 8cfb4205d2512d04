#!/usr/bin/env bash
# What a GPU machine runs, in one command: the CUDA-path checks, training
# throughput of dermlearn vs a plain PyTorch loop, and the transforms' device throughput.
# Runs from the repository root with the machine's own torch, without installing (a GPU
# machine without a package index works); logs and cuda_check.json go to $OUT (default ./gpu-results).
#
#     bash benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/nvidia_smi.txt"
status=0
timeout 300 "$PY" benchmarks/cuda_check.py --out "$OUT" 2>&1 | tee "$OUT/cuda_check.txt" || status=1
timeout 180 "$PY" benchmarks/gpu_train.py 2>&1 | tee "$OUT/gpu_train.txt" || status=1
timeout 90 "$PY" benchmarks/transforms.py 2>&1 | tee "$OUT/transforms.txt" || status=1
echo "gpu_session: exit $status"
exit $status
