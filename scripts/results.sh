#!/usr/bin/env bash
# Regenerates docs/results.md and its figures: trains configs/base.yaml (Montague) and configs/trenton.yaml
# (Trenton) with ten seeds each (vectorized: all seeds of a run in one process, `--max-parallel 1`, their updates batched), with the
# release guard (the default) and, to measure what the guard costs, without it (env.safety.enabled=false);
# evaluates every guarded seed's best.pt against the baselines on 50 held-out episodes, draws the figures,
# counts every seed's failures and avoidable failures (perfect-foresight DP avoided them) on 500 held-out
# episodes with and without the guard, measures the guard on a synthetic flashy river (scripts/guard_check.py)
# and writes the report. The two rivers run side by side (one core each); every step's wall time goes to
# docs/results/timings.txt, which the report quotes.
# Usage: bash scripts/results.sh            (about an hour on a 2-core CPU)
#        RESULTS_SEEDS=0,1,2 bash scripts/results.sh   (other seeds)
#        RESULTS_FLASHY=reuse bash scripts/results.sh  (keep docs/results/flashy-*.json as they are: skips the
#                                                       flashy river's twelve trainings, about an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.venv/bin
runs=runs/results
seeds="${RESULTS_SEEDS:-0,1,2,3,4,5,6,7,8,9}"
timings=docs/results/timings.txt
mkdir -p "$runs" docs/results
: > "$timings"

timed() {  # timed LABEL COMMAND...: runs COMMAND, appends "LABEL<TAB>seconds" to the timings file
    local label="$1" start=$SECONDS
    shift
    "$@"
    printf '%s\t%d\n' "$label" "$((SECONDS - start))" >> "$timings"
}

river_results() {  # river_results RIVER CONFIG
    local river="$1" config="$2" run
    rm -rf "${runs:?}/$river" "${runs:?}/$river-unguarded"
    # the training summary (wall time, best / last validation return per seed) goes into the report
    timed "$river: train, guarded ($seeds)" bash -c "COLUMNS=100 $bin/reservoir-rl train $config --seeds $seeds \
        --vectorized --max-parallel 1 --name $river --runs-dir $runs --quiet > docs/results/$river-training.txt"
    timed "$river: train, unguarded ($seeds)" bash -c "COLUMNS=100 $bin/reservoir-rl train $config --seeds $seeds \
        --vectorized --max-parallel 1 --name $river-unguarded --runs-dir $runs --set env.safety.enabled=false --quiet \
        > docs/results/$river-unguarded-training.txt"
    # failure check on ten times the episodes, agent and DP (avoidable failures), guarded and unguarded (first:
    # the run's evaluation.json, which plot draws, is then the full comparison below)
    for run in "$river-unguarded" "$river"; do
        timed "$run: failure check, 500 episodes with DP" "$bin/reservoir-rl" evaluate "$run" --runs-dir "$runs" \
            --episodes 500 --baselines dp --out "docs/results/$run-failures.json" --force > /dev/null
    done
    timed "$river: evaluate, 50 episodes, all baselines" "$bin/reservoir-rl" evaluate "$river" --runs-dir "$runs" \
        --episodes 50 --out "docs/results/$river.json" --force > /dev/null
    timed "$river: plot" "$bin/reservoir-rl" plot "$river" --runs-dir "$runs" --out "docs/results/$river" --force > /dev/null
}

river_results montague configs/base.yaml > "$runs/montague.log" 2>&1 &
montague=$!
river_results trenton configs/trenton.yaml > "$runs/trenton.log" 2>&1 &
trenton=$!
status=0
wait "$montague" || { echo "montague failed: $runs/montague.log" >&2; status=1; }
wait "$trenton" || { echo "trenton failed: $runs/trenton.log" >&2; status=1; }
[ "$status" -eq 0 ] || exit "$status"
# the guard on a river nobody tuned for: three seeds, guarded and not, 500 held-out episodes each
if [ "${RESULTS_FLASHY:-run}" = reuse ]; then
    echo "flashy river: docs/results/flashy-guard.json and flashy-init.json kept as they are (RESULTS_FLASHY=reuse)"
else
timed "flashy river: guard check, 3 seeds × (guarded, unguarded), 500 episodes with DP" \
    "$bin/python" scripts/guard_check.py --out-dir "$runs/flashy" --seeds 0,1,2 --episodes 500 --baselines dp \
    --summary docs/results/flashy-guard.json
timed "flashy river sized by init: guard check, 3 seeds × (guarded, unguarded), 500 episodes with DP" \
    "$bin/python" scripts/guard_check.py --design init --out-dir "$runs/flashy" --seeds 0,1,2 --episodes 500 \
    --baselines dp --summary docs/results/flashy-init.json
fi
"$bin/python" scripts/results_report.py docs/results montague trenton > docs/results.md
echo "wrote docs/results.md"
