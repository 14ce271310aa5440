#!/usr/bin/env bash
# Sets up everything the project needs; idempotent, and quick when nothing changed.
#   node_modules (npm ci; better-sqlite3 built), .venv with the Python workers (torch pinned), dist/ (tsc).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Node dependencies: reinstalled only when the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing node dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
# The journal's SQLite binding is compiled at install (node-gyp, with the system's Node headers).
if ! node -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; then
  say "building better-sqlite3 (npm rebuild)"
  npm rebuild better-sqlite3 --loglevel=error
fi

# Python workers: a venv, reinstalled only when pyproject.toml or the extras below changed.
# Extras: dev (tests, hadolint) and quant (bitsandbytes: 4-bit/8-bit loads are tested on CPU
# for real); not deepspeed, which only the dpo-trainer image on a CUDA host needs.
PYTHON_BIN=${PYTHON:-python3}
extras=dev,quant
stamp=.venv/.pds-dpo-setup-stamp
want=$( (cat python_workers/pyproject.toml; echo "extras=$extras"; "$PYTHON_BIN" --version) | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON_BIN" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing python workers into .venv (torch==2.13.0 first, so no other build is pulled)"
  log=.venv/setup-pip.log
  # pip's own chatter goes to a log; its tail is shown if an install fails.
  if ! { .venv/bin/python -m pip install --upgrade pip \
      && .venv/bin/python -m pip install "torch==2.13.0" \
      && .venv/bin/python -m pip install -e "python_workers[$extras]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "installing the python workers failed (full log: $log)"
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# Debian's Chromium, for the report's browser test (driven by playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (apt-get) for the browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/tmp/pds-dpo-apt.log 2>&1 \
      || { tail -n 20 /tmp/pds-dpo-apt.log >&2; say "installing chromium failed"; exit 1; }
  else
    say "warning: /usr/bin/chromium is missing; the report browser test will fail (apt-get install chromium)"
  fi
fi

# podman, runc and debootstrap, for the container tests (tests/containers: the worker images are
# built on a Debian root made by debootstrap and run by podman with runc, as
# tests/containers/containers.conf says). The images themselves are built by the tests, once.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing podman, runc and debootstrap (apt-get) for the container tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap; } >/tmp/pds-dpo-apt.log 2>&1 \
      || { tail -n 20 /tmp/pds-dpo-apt.log >&2; say "installing podman failed"; exit 1; }
  else
    say "warning: podman, runc or debootstrap is missing; the container tests will fail (apt-get install podman runc debootstrap)"
  fi
fi

# The control plane: compiled TypeScript.
npx tsc -p tsconfig.json
say "ready"
