"""Seconds to solve the perfect-foresight DP of 365-day episodes on the 1,000-level storage grid.

Timed, each as the median over ``--repeats`` runs after a warm-up, on one CPU thread:

solve     ``solve_values`` (the backward recursion) for ``B`` traces of the bundled record at once;
          printed as seconds per call and seconds per episode
episode   ``run_episodes`` with ``PerfectForesightPolicy`` on a fresh policy (solve + 365 decisions
          through ``env.rollout``), one env

Usage:  python benchmarks/bench_dp.py [--levels 1000] [--days 365] [--batch 1 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import reservoir_rl
from reservoir_rl.baselines.dp import PerfectForesightPolicy, solve_values
from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.config import EnvConfig
from reservoir_rl.env import DiscreteReservoirEnv


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=1000, help="storage grid levels")
    parser.add_argument("--days", type=int, default=365, help="episode length (horizon)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="traces solved together")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is printed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = DiscreteReservoirEnv(EnvConfig(horizon_days=args.days), n_envs=1, seed=0)
    print(f"reservoir-rl {reservoir_rl.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{args.days} days x {args.levels} storage levels x {env.n_actions} release levels, median of {args.repeats}")
    for n_batch in args.batch:
        # episode starts as the env draws them: the record positions of a reset of n_batch reservoirs
        starts = DiscreteReservoirEnv(env.config, n_envs=n_batch, seed=0).reset().get("record_index")
        inflow = env.inflow_trace_hm3(starts, args.days)
        day = env.day_of_year_trace(starts, args.days)

        def solve() -> None:
            solve_values(env.physics, env.config.reward, inflow, day, args.levels, env.config.terminate_on_failure)

        seconds = _median_seconds(solve, args.repeats)
        print(f"solve     B={n_batch:<4d} {seconds:8.3f} s per call  {seconds / n_batch:8.3f} s per episode", flush=True)

    def episode() -> None:
        env.set_seed(0)
        run_episodes(env, PerfectForesightPolicy(env, n_storage=args.levels))

    seconds = _median_seconds(episode, args.repeats)
    print(f"episode   n_envs=1 {seconds:8.3f} s (DP solve + {args.days} decisions through env.rollout)")


if __name__ == "__main__":
    main()
