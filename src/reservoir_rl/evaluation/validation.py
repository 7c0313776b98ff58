"""The baselines scored on the validation episodes (those of the in-training evaluation), and the best
implementable baseline chosen there: held-out years never take part in choosing it."""

from __future__ import annotations

from typing import Optional, Sequence

from reservoir_rl.catalog import IMPLEMENTABLE_BASELINES, RAW_RETURN_BASELINES, make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.evaluation.rollout import evaluate_policy


def baseline_returns(env: DiscreteReservoirEnv, config: Config, seed: int,
                     names: Sequence[str] = RAW_RETURN_BASELINES) -> dict[str, float]:
    """Mean return of each baseline of ``names`` on ``env``'s episodes, reset with ``seed`` (the baselines
    are deterministic: the same numbers every call)."""
    return {name: evaluate_policy(env, make_baseline(name, env, config), seed).mean("return") for name in names}


def validation_returns(config: Config, inflow: InflowRecord, names: Sequence[str] = RAW_RETURN_BASELINES) -> dict[str, float]:
    """Mean return of each baseline of ``names`` on the ``train.eval_episodes`` validation episodes of the
    in-training evaluations (the same env, reset with ``train.validation_env_seed``)."""
    seed = config.train.validation_env_seed
    env = build_env(config, "validation", n_envs=config.train.eval_episodes, seed=seed, inflow=inflow)
    return baseline_returns(env, config, seed, names)


def best_implementable(returns: dict[str, float]) -> Optional[str]:
    """The implementable baseline (no foresight) with the highest mean return in ``returns`` (name → mean
    return on the validation episodes), or None when there is none; ties go to the first in catalog order."""
    candidates = [name for name in IMPLEMENTABLE_BASELINES if name in returns]
    return max(candidates, key=lambda name: returns[name]) if candidates else None
