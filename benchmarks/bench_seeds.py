"""Wall and CPU time of K seeds: `train --seeds ... --vectorized` against process mode, as whole processes.

For each K in ``--seeds-counts`` and each repeat, runs ``reservoir-rl train CONFIG --seeds 0,...,K-1`` once in each
mode of ``--modes`` — ``vectorized`` (``--vectorized``: the seeds in one vectorized group per core, one process each),
``one-process`` (``--vectorized --max-parallel 1``: every seed vectorized in one process) and ``process``
(``--processes``: one process per seed) — alternating, the order flipped every repeat, each in a fresh process
with ``--quiet`` into a temporary runs folder, and times it from the start of the process to its exit:
set-up, training, in-training evaluations, figures and checkpoints included. CPU time is the user + system
time of the process and its children (the seed processes of process mode). Prints one row per run, then the
median per K and mode, and each median relative to the median of K = 1 in the same mode.

Usage:
    python benchmarks/bench_seeds.py                                    # base.yaml, 40,000 frames, K = 1, 3, 10
    python benchmarks/bench_seeds.py --frames 20000 --seeds-counts 1,3 --repeats 1 --set logging.baseline_levels=false
    python benchmarks/bench_seeds.py --modes vectorized --repeats 2                   # vectorized only
    python benchmarks/bench_seeds.py --modes vectorized,one-process --seeds-counts 1,3 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


MODES = {"vectorized": ["--vectorized"], "one-process": ["--vectorized", "--max-parallel", "1"],
         "process": ["--processes"]}


def run_once(config: str, k: int, mode: str, frames: int, overrides: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole `train --seeds` process."""
    with tempfile.TemporaryDirectory() as runs:
        argv = [sys.executable, "-m", "reservoir_rl", "train", config, "--seeds", ",".join(map(str, range(k))),
                "--quiet", "--runs-dir", runs, "--set", f"train.total_frames={frames}"]
        for override in overrides:
            argv += ["--set", override]
        argv += MODES[mode]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/base.yaml")
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--seeds-counts", default="1,3,10", help="the K to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="vectorized,process", help="the modes to time, comma-separated")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    args = parser.parse_args()
    counts = [int(k) for k in args.seeds_counts.split(",")]
    chosen = [m for m in MODES if m in args.modes.split(",")]
    if not chosen or set(args.modes.split(",")) - set(chosen):
        parser.error(f"--modes {args.modes!r}: choose among {', '.join(MODES)}")
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    print(f"{os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")
    for repeat in range(args.repeats):
        for k in counts:
            modes = chosen if repeat % 2 == 0 else chosen[::-1]
            for mode in modes:
                wall, cpu = run_once(args.config, k, mode, args.frames, args.overrides)
                times.setdefault((k, mode), []).append((wall, cpu))
                print(f"repeat {repeat + 1}  K {k:>2}  {mode:<11}  wall {wall:7.1f} s  cpu {cpu:7.1f} s  "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\nmedians (relative to K = {counts[0]} of the same mode)")
    for mode in chosen:
        base = times.get((counts[0], mode))
        base_wall = statistics.median(w for w, _ in base) if base else float("nan")
        for k in counts:
            wall = statistics.median(w for w, _ in times[(k, mode)])
            cpu = statistics.median(c for _, c in times[(k, mode)])
            print(f"K {k:>2}  {mode:<11}  wall {wall:7.1f} s ({wall / base_wall:4.2f}×)  cpu {cpu:7.1f} s")


if __name__ == "__main__":
    main()
