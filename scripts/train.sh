#!/usr/bin/env bash
# Set up .venv and run the main job: train the default agent on the bundled Delaware record.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/reservoir-rl train configs/base.yaml "$@"
