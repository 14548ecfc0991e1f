#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this kind: host packages, venv from the lock,
# and the engines' jars from Maven Central. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found. Install Python 3.11 (e.g. pyenv install 3.11) or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

need=()
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v redis-server >/dev/null || need+=(redis-server)
command -v wrk >/dev/null || need+=(wrk)
command -v promtool >/dev/null || need+=(prometheus)  # `up --monitoring`, rule tests; its service is not started
command -v chromium >/dev/null || need+=(chromium)  # the web app's browser tests (tests/e2e/test_web.py)
command -v ffmpeg >/dev/null || need+=(ffmpeg)  # the media topology's video probe, poster frame and HLS ladder
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -e /usr/sbin/policy-rc.d ]; then  # the packages' own services stay stopped: we run ours
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "error: missing ${need[*]}; install them (Debian: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.lock-stamp
want="$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies from requirements.lock (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip uv==0.13.8
  .venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  echo "$want" > "$stamp"
fi

# the web app needs no build (static ES modules in serving/web/static); its browser tests need
# playwright-core and axe-core from the npm registry, pinned by tests/e2e/web/package-lock.json
web=tests/e2e/web
if command -v npm >/dev/null; then
  wstamp=$web/node_modules/.lock-stamp
  wwant="$(sha256sum $web/package-lock.json | cut -c1-16)"
  if [ "$(cat "$wstamp" 2>/dev/null)" != "$wwant" ]; then
    say "installing the browser tests' npm packages (npm ci in $web)"
    (cd $web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$wwant" > "$wstamp"
  fi
else
  echo "warning: npm not found: the web app's browser tests will fail (install Node.js 20 with npm)" >&2
fi

say "fetching engine jars and building MinIO once (cached in ~/.cache/feedstream; the first MinIO build takes a few minutes)"
.venv/bin/feedstream local fetch >/dev/null
say "ready"
