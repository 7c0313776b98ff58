"""Seconds to solve the stochastic DP and to evaluate the implementable baselines, on one CPU thread.

Timed, each as the median over ``--repeats`` runs (after a warm-up), for each config:

sdp solve     `sdp_solution` from scratch (inflow classes from the training years + value iteration),
              the in-process memo cleared before each run
sdp episodes  `evaluate_policy` of `StochasticDPPolicy` (solved beforehand) on ``--episodes`` held-out
              episodes of 365 days, all at once
mpc episodes  `evaluate_policy` of the catalog's `mpc` (forecast MPC with the SDP terminal value) on the
              same episodes

Usage:  python benchmarks/bench_baselines.py [--configs configs/base.yaml configs/trenton.yaml]
                                             [--episodes 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Optional

import torch

import reservoir_rl
from reservoir_rl.baselines.sdp import StochasticDPPolicy, clear_sdp_cache, sdp_solution
from reservoir_rl.config import Config, load_config
from reservoir_rl.env import make_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.evaluation.rollout import evaluate_policy


def median_seconds(run: Callable[[], object], repeats: int, before: Optional[Callable[[], None]] = None) -> float:
    """Median wall time of ``run`` over ``repeats`` runs after one warm-up; ``before`` runs untimed first."""
    seconds = []
    for i in range(repeats + 1):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        if i:  # the first run is the warm-up
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def heldout_env(config: Config, episodes: int):
    """``episodes`` held-out reservoirs, seeded as `evaluate` seeds them by default."""
    return make_env(config, "heldout", n_envs=episodes, seed=config.train.validation_env_seed,
                    inflow=load_inflow(config.inflow))


def time_sdp(config: Config, episodes: int, repeats: int) -> tuple[float, float]:
    """(solve seconds, seconds of ``episodes`` held-out episodes with the solved policy)."""
    env = heldout_env(config, episodes)
    solve = median_seconds(lambda: sdp_solution(env, config), repeats, before=clear_sdp_cache)
    policy = StochasticDPPolicy(env, config)  # memoised: no solve here
    rollout = median_seconds(lambda: evaluate_policy(env, policy, seed=0), repeats)
    return solve, rollout


# ------------------------------------------------------------------ MPC (forecast-informed)


def time_mpc_episodes(config: Config, episodes: int, repeats: int) -> Optional[float]:
    """Seconds of ``episodes`` held-out episodes with the catalog's `mpc` (its plan valued at the horizon
    with the SDP's value function; the policy is built inside the timing, the SDP memoised by then)."""
    from reservoir_rl.catalog import make_baseline

    env = heldout_env(config, episodes)
    sdp_solution(env, config)
    return median_seconds(lambda: evaluate_policy(env, make_baseline("mpc", env, config), seed=0), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["configs/base.yaml", "configs/trenton.yaml"])
    parser.add_argument("--episodes", type=int, default=50, help="held-out episodes evaluated at once")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure; the median is printed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"reservoir-rl {reservoir_rl.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"median of {args.repeats}", flush=True)
    for path in args.configs:
        config = load_config(path)
        sdp = config.baselines.sdp
        solve, rollout = time_sdp(config, args.episodes, args.repeats)
        solution = sdp_solution(make_env(config, "heldout", n_envs=1, inflow=load_inflow(config.inflow)), config)
        print(f"{path}: SDP {sdp.storage_levels} storage levels × {sdp.inflow_classes} classes × "
              f"{config.env.n_release_levels} release levels, {solution.sweeps} annual sweeps", flush=True)
        print(f"  sdp solve                  {solve:8.3f} s", flush=True)
        print(f"  sdp {args.episodes} episodes          {rollout:8.3f} s", flush=True)
        mpc = time_mpc_episodes(config, args.episodes, args.repeats)
        if mpc is None:
            print("  mpc: skipped (reservoir_rl.baselines.mpc does not exist in this version)", flush=True)
        else:
            print(f"  mpc {args.episodes} episodes          {mpc:8.3f} s", flush=True)


if __name__ == "__main__":
    main()
