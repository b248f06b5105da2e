#!/usr/bin/env bash
# Install rlm-ray with its dev tools into .venv, lint, type-check and run the test suite.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

export LITELLM_LOCAL_MODEL_COST_MAP=True
export RAY_USAGE_STATS_ENABLED=0
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

.venv/bin/ruff check rlm_ray tests examples benchmarks
.venv/bin/ruff format --check rlm_ray tests examples benchmarks
.venv/bin/mypy rlm_ray

.venv/bin/python -m pytest "$@"
