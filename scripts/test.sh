#!/usr/bin/env bash
# Every test: Python workers (pytest) and the control plane (vitest). Both always run;
# the exit code is non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0
# The slowest tests are named, so a suite that grows slow says where.
.venv/bin/python -m pytest python_workers/tests --durations=12 || status=1
# Sources and tests type-checked together (vitest itself only strips types).
npx tsc -p tsconfig.test.json && echo "typecheck: sources and tests ok" || status=1
npx vitest run || status=1
exit $status
