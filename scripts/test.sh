#!/usr/bin/env bash
# Every test: Python workers (pytest) and the control plane (vitest). Both always run;
# the exit code is non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0
mkdir -p test-results
# The worker images of the container tests (tests/containers), built or found up to date, once,
# before vitest: a first build takes minutes (pip installing the ML stack into the image) and
# would hold a test slot idle meanwhile. It runs beside pytest, at a lower CPU priority, so that
# it takes the core pytest leaves idle (146 s alone on a fresh 2-core machine; pytest ~140 s).
t0=$SECONDS
CONTAINERS_CONF="$PWD/tests/containers/containers.conf" nice -n 10 \
  node scripts/build-images.mjs --engine podman --base debian --tag dev >/dev/null 2>test-results/images.log &
images=$!
# The slowest tests are named, so a suite that grows slow says where.
.venv/bin/python -m pytest python_workers/tests --durations=12 || status=1
# Sources and tests type-checked together (vitest itself only strips types).
npx tsc -p tsconfig.test.json && echo "typecheck: sources and tests ok" || status=1
if wait $images; then
  echo "images: worker images ready ($((SECONDS - t0)) s from the start, beside pytest; log: test-results/images.log)"
else
  tail -n 20 test-results/images.log; echo "images: building the worker images failed (log: test-results/images.log)"; status=1
fi
npx vitest run || status=1
exit $status
