#!/usr/bin/env bash
# Set up .venv with the test extras and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,ray,export,tune  # ray, export and tune too: the Ray collector, ONNX export and tune tests run on every change
# One test process per CPU core (pytest-xdist; the tests of one file stay in one process, in order), then the
# tests marked `serial` alone. Exit code 5 (no test selected, e.g. a file without serial tests) is no failure.
status=0
.venv/bin/python -m pytest -q -n auto --dist loadfile -m "not serial" "$@" || { code=$?; [ "$code" -eq 5 ] || status=$code; }
.venv/bin/python -m pytest -q -m serial "$@" || { code=$?; [ "$code" -eq 5 ] || status=$code; }
exit "$status"
