"""Baseline operating policies the agent is compared with: SOP, hedging, rule curve, perfect-foresight DP.

Every baseline is a policy ``policy(tensordict) -> tensordict`` that writes ``action`` (int64 release
level, (n_envs,)) from the env's root keys, so ``env.rollout(policy=...)`` and `run_episodes` work.
"""

from __future__ import annotations

from typing import Callable

from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import PerfectForesightPolicy, solve_values
from reservoir_rl.baselines.rollout import episode_returns, run_episodes
from reservoir_rl.baselines.rules import HedgingPolicy, RuleCurvePolicy, StandardOperatingPolicy
from reservoir_rl.config import BaselinesConfig
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import UserError
from reservoir_rl.units import HM3_PER_CMS_DAY

BASELINE_NAMES = ("sop", "hedging", "rule", "dp")

Policy = Callable[[TensorDictBase], TensorDictBase]


def target_release_hm3(env: DiscreteReservoirEnv, config: BaselinesConfig) -> float:
    """SOP / hedging target release, hm³/day: ``config.target_release_cms`` or the record's mean inflow."""
    if config.target_release_cms is not None:
        return config.target_release_cms * HM3_PER_CMS_DAY
    return env.mean_inflow_hm3


def make_baseline(name: str, env: DiscreteReservoirEnv, config: BaselinesConfig) -> Policy:
    """The baseline ``name`` (one of `BASELINE_NAMES`) for ``env``, set up from the ``baselines`` section."""
    if name == "sop":
        return StandardOperatingPolicy(env, target_release_hm3(env, config))
    if name == "hedging":
        return HedgingPolicy(
            env,
            target_release_hm3(env, config),
            start_fraction=config.hedging_start_fraction,
            end_fraction=config.hedging_end_fraction,
            min_release_fraction=config.hedging_min_release_fraction,
        )
    if name == "rule":
        return RuleCurvePolicy(env, config.rule_curve)
    if name == "dp":
        return PerfectForesightPolicy(env, n_storage=config.dp_storage_levels)
    raise UserError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINE_NAMES)}")


__all__ = [
    "BASELINE_NAMES",
    "HedgingPolicy",
    "PerfectForesightPolicy",
    "RuleCurvePolicy",
    "StandardOperatingPolicy",
    "episode_returns",
    "make_baseline",
    "run_episodes",
    "solve_values",
    "target_release_hm3",
]
