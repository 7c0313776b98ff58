"""Greedy evaluation of a policy on a fixed set of episodes (same traces every time it is called)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.env.metrics import episode_metrics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv


@dataclass
class EvaluationResult:
    """Per-episode metrics (tensors of shape (n_episodes,)) and the trajectory (n_episodes, T)."""

    metrics: dict[str, torch.Tensor]
    trajectory: TensorDictBase

    def mean(self, name: str) -> float:
        return float(self.metrics[name].mean())

    def summary(self) -> dict[str, float]:
        """Mean of every metric over the episodes (return_min / return_max added)."""
        out = {name: float(values.mean()) for name, values in self.metrics.items()}
        out["return_min"] = float(self.metrics["return"].min())
        out["return_max"] = float(self.metrics["return"].max())
        return out


@torch.no_grad()
def evaluate_policy(env: DiscreteReservoirEnv, policy, seed: int) -> EvaluationResult:
    """One episode per env of ``env`` from a reset seeded with ``seed``: identical traces on every call,
    so every policy (and every evaluation during training) is judged on the same inflows."""
    env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        trajectory = run_episodes(env, policy)
    return EvaluationResult(episode_metrics(trajectory, env.config), trajectory)
