#!/usr/bin/env bash
# Set up .venv with the test extras and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,ray,export,tune  # ray, export and tune too: the Ray collector, ONNX export and tune tests run on every change
# one test process per CPU core (pytest-xdist); the tests of one file stay in one process, in order
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@"
