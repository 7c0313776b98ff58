#!/usr/bin/env bash
# Creates .venv (if missing) and installs reservoir-rl into it with the given extras (e.g. "test").
# torch is installed first at the exact CPU release the project is tested with, so no other
# dependency can pull a different (multi-GB CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install --quiet -e ".[${extras}]"
else
    .venv/bin/python -m pip install --quiet -e .
fi
