#!/usr/bin/env bash
# Regenerates docs/results.md and its figures: trains configs/base.yaml (Montague) and
# configs/trenton.yaml (Trenton) with three seeds each, evaluates every seed's best.pt against the
# baselines on 50 held-out episodes, draws the figures, counts every seed's failures on 500 held-out
# episodes and writes the report.
# Usage: bash scripts/results.sh            (about 20 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.venv/bin
runs=runs/results
mkdir -p "$runs" docs/results
for river in montague trenton; do
    config=configs/base.yaml
    [ "$river" = trenton ] && config=configs/trenton.yaml
    rm -rf "${runs:?}/$river"
    # the training summary (per-seed wall time, best / last validation return) goes into the report
    COLUMNS=100 "$bin/reservoir-rl" train "$config" --seeds 0,1,2 --name "$river" --runs-dir "$runs" --quiet \
        | tee "docs/results/$river-training.txt"
    # failure check on ten times the episodes, agent only (first: the run's evaluation.json, which plot
    # draws, is then the full comparison below)
    "$bin/reservoir-rl" evaluate "$river" --runs-dir "$runs" --episodes 500 --baselines none \
        --out "docs/results/$river-failures.json" --force
    "$bin/reservoir-rl" evaluate "$river" --runs-dir "$runs" --episodes 50 \
        --out "docs/results/$river.json" --force
    "$bin/reservoir-rl" plot "$river" --runs-dir "$runs" --out "docs/results/$river" --force
done
"$bin/python" scripts/results_report.py docs/results montague trenton > docs/results.md
echo "wrote docs/results.md"
