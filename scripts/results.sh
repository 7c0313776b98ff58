#!/usr/bin/env bash
# Regenerates docs/results.md and its figures: trains configs/base.yaml (Montague) and
# configs/trenton.yaml (Trenton) with three seeds each, with the release guard (the default) and, to measure
# what the guard costs, without it (env.safety.enabled=false); evaluates every guarded seed's best.pt against
# the baselines on 50 held-out episodes, draws the figures, counts every seed's failures and avoidable failures
# (perfect-foresight DP avoided them) on 500 held-out episodes with and without the guard, measures the guard
# on a synthetic flashy river (scripts/guard_check.py) and writes the report.
# Usage: bash scripts/results.sh            (about an hour on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.venv/bin
runs=runs/results
mkdir -p "$runs" docs/results
for river in montague trenton; do
    config=configs/base.yaml
    [ "$river" = trenton ] && config=configs/trenton.yaml
    rm -rf "${runs:?}/$river" "${runs:?}/$river-unguarded"
    # the training summary (per-seed wall time, best / last validation return) goes into the report
    COLUMNS=100 "$bin/reservoir-rl" train "$config" --seeds 0,1,2 --name "$river" --runs-dir "$runs" --quiet \
        | tee "docs/results/$river-training.txt"
    COLUMNS=100 "$bin/reservoir-rl" train "$config" --seeds 0,1,2 --name "$river-unguarded" --runs-dir "$runs" \
        --set env.safety.enabled=false --quiet | tee "docs/results/$river-unguarded-training.txt"
    # failure check on ten times the episodes, agent and DP (avoidable failures), guarded and unguarded (first:
    # the run's evaluation.json, which plot draws, is then the full comparison below)
    for run in "$river-unguarded" "$river"; do
        "$bin/reservoir-rl" evaluate "$run" --runs-dir "$runs" --episodes 500 --baselines dp \
            --out "docs/results/$run-failures.json" --force
    done
    "$bin/reservoir-rl" evaluate "$river" --runs-dir "$runs" --episodes 50 \
        --out "docs/results/$river.json" --force
    "$bin/reservoir-rl" plot "$river" --runs-dir "$runs" --out "docs/results/$river" --force
done
# the guard on a river nobody tuned for: three seeds, guarded and not, 500 held-out episodes each
"$bin/python" scripts/guard_check.py --out-dir "$runs/flashy" --seeds 0,1,2 --episodes 500 --baselines dp \
    --summary docs/results/flashy-guard.json
"$bin/python" scripts/results_report.py docs/results montague trenton > docs/results.md
echo "wrote docs/results.md"
