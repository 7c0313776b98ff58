"""Env-steps per second of DiscreteReservoirEnv on one CPU thread, at 1, 64 and 4,096 reservoirs.

Three paths are timed, each as the median over ``--repeats`` runs of ``--steps`` days (after a warm-up):

physics   the tensor core alone: ``ReservoirPhysics.step`` + ``reward_components`` + ``weighted_reward``
          on the batch, storage carried from day to day (what the env computes, without TensorDicts)
step      ``env.step(td)`` through torchrl's ``EnvBase`` (spec checks, ``next`` tensordict) followed by
          ``step_mdp``, as a hand-written loop or a collector does
rollout   ``env.rollout(steps, policy)``, which also stacks the trajectory

Usage:  python benchmarks/bench_env.py [--envs 1 64 4096] [--steps 200] [--repeats 7] [--config CONFIG]

``--config`` times the env a training run of that config collects from (``build_env(config, "train",
scale_inflow=True)``: its reservoir, flood-control zone, forecast, extra observation features — the SDP's
release included — and training inflow scaling) instead of the default ``DiscreteReservoirEnv``; both on
the bundled Montague record unless the config says otherwise.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torchrl.envs.utils import step_mdp

import reservoir_rl
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.reward import reward_components, weighted_reward


def _median_rate(run, n_envs: int, n_steps: int, repeats: int) -> float:
    """Median env-steps/s of ``run()`` (which simulates ``n_steps`` days of ``n_envs`` reservoirs)."""
    run()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return n_envs * n_steps / statistics.median(seconds)


def _cyclic_actions(env: DiscreteReservoirEnv, n_steps: int) -> torch.Tensor:
    """Release levels (n_steps, n_envs) drawn once, so no policy cost is timed."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, env.n_actions, (n_steps, env.n_envs), generator=generator)


def bench_physics(env: DiscreteReservoirEnv, n_steps: int, repeats: int) -> float:
    physics, weights = env.physics, env.config.reward
    actions = _cyclic_actions(env, n_steps)
    start_td = env.reset()
    start_storage = start_td.get("storage_hm3")
    start_index = start_td.get("record_index")
    inflow = env.inflow_trace_hm3(start_index, n_steps).t().contiguous()  # (n_steps, n_envs)
    day = env.day_of_year_trace(start_index, n_steps).t().contiguous()

    def run() -> None:
        storage = start_storage
        for t in range(n_steps):
            outcome = physics.step(storage, inflow[t], actions[t], day[t])
            weighted_reward(weights, reward_components(physics, outcome))
            storage = outcome.next_storage_hm3

    return _median_rate(run, env.n_envs, n_steps, repeats)


def bench_step(env: DiscreteReservoirEnv, n_steps: int, repeats: int) -> float:
    actions = _cyclic_actions(env, n_steps)

    def run() -> None:
        td = env.reset()
        for t in range(n_steps):
            td.set("action", actions[t])
            td = step_mdp(env.step(td), keep_other=True)

    return _median_rate(run, env.n_envs, n_steps, repeats)


def bench_rollout(env: DiscreteReservoirEnv, n_steps: int, repeats: int) -> float:
    actions = _cyclic_actions(env, n_steps)
    counter = [0]

    def policy(td):
        td.set("action", actions[counter[0] % n_steps])
        counter[0] += 1
        return td

    def run() -> None:
        env.rollout(n_steps, policy, break_when_any_done=False)

    return _median_rate(run, env.n_envs, n_steps, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 4096], help="batch sizes to time")
    parser.add_argument("--steps", type=int, default=200, help="days per timed run (<= horizon, no reset inside)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure; the median is printed")
    parser.add_argument("--config", default=None, help="time the training env of this config file")
    args = parser.parse_args()
    config = None
    if args.config:
        from reservoir_rl.config import load_config

        config = load_config(args.config)
    torch.set_num_threads(1)

    print(f"reservoir-rl {reservoir_rl.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}; {args.steps} days x median of {args.repeats}")
    print(f"env: {args.config + ' (training env)' if args.config else 'DiscreteReservoirEnv() defaults'}")
    print(f"{'n_envs':>8} {'physics steps/s':>18} {'env.step steps/s':>18} {'rollout steps/s':>18}")
    for n_envs in args.envs:
        if config is None:
            env = DiscreteReservoirEnv(n_envs=n_envs, seed=0)
        else:
            env = build_env(config, "train", n_envs=n_envs, seed=0, scale_inflow=True)
        if args.steps > env.config.horizon_days:
            parser.error(f"--steps must be <= the horizon ({env.config.horizon_days} days)")
        rates = [bench(env, args.steps, args.repeats) for bench in (bench_physics, bench_step, bench_rollout)]
        print(f"{n_envs:>8} " + " ".join(f"{rate:>18,.0f}" for rate in rates), flush=True)


if __name__ == "__main__":
    main()
