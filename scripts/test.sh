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
# The worker images of the container tests (tests/containers), built or found up to date here,
# once, before vitest: a first build takes minutes and would hold a test slot idle meanwhile.
t0=$SECONDS
mkdir -p test-results
if CONTAINERS_CONF="$PWD/tests/containers/containers.conf" node scripts/build-images.mjs --engine podman --base debian --tag dev >/dev/null 2>test-results/images.log; then
  echo "images: worker images ready ($((SECONDS - t0)) s; log: test-results/images.log)"
else
  tail -n 20 test-results/images.log; echo "images: building the worker images failed (log: test-results/images.log)"; status=1
fi
npx vitest run || status=1
exit $status
