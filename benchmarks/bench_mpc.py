"""Seconds to evaluate forecast-informed MPC on 50 held-out episodes of a config, on one CPU thread.

Each run is one `evaluate_policy` (the function `reservoir-rl evaluate` calls) of a fresh
`ForecastMPCPolicy` on ``--episodes`` reservoirs of the config's ``--years`` (365 decisions, each a
backward recursion over the forecast horizon for every reservoir at once), timed on the wall clock and
as this process's CPU time (less sensitive to other jobs on shared cores); the median of ``--repeats``
runs after a warm-up of 10 days. ``--levels`` times several storage grids in turn.

Usage:  python benchmarks/bench_mpc.py [--config configs/base.yaml] [--episodes 50] [--levels 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import reservoir_rl
from reservoir_rl.baselines.mpc import ForecastMPCPolicy
from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.config import load_config
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.evaluation.rollout import evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/base.yaml", help="run config (env, inflow, baselines.mpc)")
    parser.add_argument("--episodes", type=int, default=50, help="reservoirs evaluated together")
    parser.add_argument("--years", default="heldout", help="water years: heldout, validation, train or all")
    parser.add_argument("--levels", type=int, nargs="+", default=None,
                        help="storage grids to time (default: the config's baselines.mpc.storage_levels)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per grid; the median is printed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = load_config(args.config)
    seed = config.train.validation_env_seed
    env = make_env(config, args.years, n_envs=args.episodes, seed=seed)
    horizon = config.baselines.mpc.horizon_days or config.env.forecast.lead_days
    levels = args.levels or [config.baselines.mpc.storage_levels]
    print(f"reservoir-rl {reservoir_rl.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; {args.config}: {args.episodes} {args.years} episodes x "
          f"{config.env.horizon_days} days, horizon {horizon} days, {env.n_actions} release levels, "
          f"median of {args.repeats}", flush=True)
    for n_storage in levels:
        run_episodes(env, ForecastMPCPolicy(env, n_storage=n_storage, horizon_days=horizon), max_days=10)  # warm-up
        wall, cpu = [], []
        for _ in range(args.repeats):
            policy = ForecastMPCPolicy(env, n_storage=n_storage, horizon_days=horizon)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            evaluate_policy(env, policy, seed)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
        print(f"levels {n_storage:<5d} wall {statistics.median(wall):7.2f} s  cpu {statistics.median(cpu):7.2f} s  "
              f"(runs: {', '.join(f'{w:.1f}' for w in wall)} s wall; load average {os.getloadavg()[0]:.1f})",
              flush=True)


if __name__ == "__main__":
    main()
