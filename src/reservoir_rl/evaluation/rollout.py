"""Greedy evaluation of a policy on a fixed set of episodes (same traces every time it is called), and the
greedy policy of a checkpoint (its Q-network rebuilt as in training)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.config import Config, EnvConfig
from reservoir_rl.env.metrics import episode_metrics, first_done_mask
from reservoir_rl.env.safety import GUARD_OVERRIDE_KEY
from reservoir_rl.evaluation.failures import guard_override_fraction
from reservoir_rl.evaluation.reliability import hashimoto_metrics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import CheckpointError


@dataclass
class EvaluationResult:
    """Per-episode metrics (tensors of shape (n_episodes,)) and the trajectory (n_episodes, T)."""

    metrics: dict[str, torch.Tensor]
    trajectory: TensorDictBase

    def mean(self, name: str) -> float:
        return float(self.metrics[name].nanmean())

    def summary(self) -> dict[str, float]:
        """Mean of every metric over the episodes (NaN values left out); return_min / return_max added."""
        out = {name: float(values.to(torch.float64).nanmean()) for name, values in self.metrics.items()}
        out["return_min"] = float(self.metrics["return"].min())
        out["return_max"] = float(self.metrics["return"].max())
        return out


@torch.no_grad()
def evaluate_policy(env: DiscreteReservoirEnv, policy, seed: int) -> EvaluationResult:
    """One episode per env of ``env`` from a reset seeded with ``seed``: identical traces on every call,
    so every policy (and every evaluation during training) is judged on the same inflows.

    Metrics: those of `episode_metrics` plus supply reliability / resilience / vulnerability
    (`reservoir_rl.evaluation.reliability`) and the share of days the release guard changed the action (NaN
    for a policy without the guard), each float32 (n_envs,).
    """
    env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        trajectory = run_episodes(env, policy)
    return evaluation_result(trajectory, env.config)


def evaluation_result(trajectory: TensorDictBase, config: EnvConfig) -> EvaluationResult:
    """The metrics `evaluate_policy` reports for a (n_envs, T) trajectory of one episode per env of an env
    of the ``env`` section ``config``."""
    metrics = episode_metrics(trajectory, config)
    valid = first_done_mask(trajectory.get(("next", "done")))
    has_demand = config.reservoir.supply_demand_cms > 0
    metrics.update(hashimoto_metrics(trajectory.get(("next", "supply_deficit_hm3")), valid, has_demand))
    metrics["guard_override_fraction"] = guard_override_fraction(trajectory, GUARD_OVERRIDE_KEY)
    return EvaluationResult(metrics, trajectory)


def greedy_actor(payload: dict[str, Any], config: Config, env: DiscreteReservoirEnv, path: str | Path = "checkpoint"):
    """The greedy Q-value actor of a checkpoint, built as in training (`make_agent`) for ``env``.

    Reads ``observation`` and writes ``action`` (int64 release level, (n_envs,)).
    """
    agent = make_agent(env.observation_size, env.action_spec, config.agent, config.train, device=env.device)
    try:
        agent.q_network.load_state_dict(payload["q_network"])
    except (RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise CheckpointError(f"{path}: Q-network weights do not fit the checkpoint's config ({first[:160]})") from None
    agent.q_network.eval()
    return agent.actor
