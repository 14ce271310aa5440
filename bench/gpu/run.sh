#!/usr/bin/env bash
# The GPU benchmark: workers vs the direct loop on full-size architectures with random
# weights (SD 1.5-sized pipeline, LLaVA-1.5-7B-sized model with LoRA DPO steps), for a
# machine with one CUDA GPU and torch installed but no model hub. At most 8 minutes.
#   bench/gpu/run.sh [--cpu] [OUT_DIR]
# --cpu runs the same script at toy size on the CPU (how `npm run bench` checks it works).
# The Python packages of python_workers/pyproject.toml must be importable (installed, or on
# PYTHONPATH); the repository's python_workers/ is put on PYTHONPATH here.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=cuda
if [ "${1:-}" = "--cpu" ]; then mode=cpu; shift; fi
out=${1:-bench/results}
mkdir -p "$out"
python=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then python=.venv/bin/python; fi
export PYTHONPATH="$PWD/python_workers${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
exec timeout 480 "$python" bench/gpu/gpu_bench.py --mode "$mode" --out "$out/gpu-$mode.json"
