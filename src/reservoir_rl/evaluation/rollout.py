"""Greedy evaluation of a policy on a fixed set of episodes (same traces every time it is called), and the
greedy policy of a checkpoint: where a CKPT argument points, its payload checked, its Q-network rebuilt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.config import Config, config_from_dict
from reservoir_rl.env.metrics import episode_metrics, first_done_mask
from reservoir_rl.evaluation.reliability import hashimoto_metrics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.runs.folders import RunDir, find_run

# Payload keys evaluate / plot / inspect read; a checkpoint without them is refused with one line.
REQUIRED_KEYS = ("config", "counters", "q_network")


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
    (`reservoir_rl.evaluation.reliability`), each float32 (n_envs,).
    """
    env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        trajectory = run_episodes(env, policy)
    metrics = episode_metrics(trajectory, env.config)
    valid = first_done_mask(trajectory.get(("next", "done")))
    has_demand = env.config.reservoir.supply_demand_cms > 0
    metrics.update(hashimoto_metrics(trajectory.get(("next", "supply_deficit_hm3")), valid, has_demand))
    return EvaluationResult(metrics, trajectory)


# ------------------------------------------------------------------------------------- checkpoints


@dataclass
class CheckpointSource:
    """Where a checkpoint came from: its file, and its run folder when it was named by run."""

    path: Path
    run: Optional[RunDir]


def locate_checkpoint(ckpt: str | Path, runs_dir: str | Path = "runs") -> CheckpointSource:
    """A checkpoint file, or a run (name under ``runs_dir`` or path) → its ``checkpoints/best.pt``.

    A run without ``best.pt`` (stopped before its first evaluation) falls back to ``last.pt``.
    """
    path = Path(ckpt)
    if path.is_file():
        return CheckpointSource(path, None)
    looks_like_file = path.suffix in (".pt", ".pth", ".ckpt") or path.name in ("best.pt", "last.pt")
    if looks_like_file and not (Path(runs_dir) / str(ckpt)).is_dir():
        raise CheckpointError(f"{path}: checkpoint not found")
    run = find_run(str(ckpt), Path(runs_dir))
    for candidate in (run.best_checkpoint, run.last_checkpoint):
        if candidate.is_file():
            return CheckpointSource(candidate, run)
    raise UserError(f"{run.path}: the run has no checkpoint yet (no checkpoints/best.pt or last.pt)")


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], Config]:
    """Load a checkpoint safely (nothing is unpickled beyond plain data) and validate its config."""
    payload = load_checkpoint(path)
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(repr(k) for k in missing)}")
    if not isinstance(payload["q_network"], dict) or not all(
        isinstance(v, torch.Tensor) for v in payload["q_network"].values()
    ):
        raise CheckpointError(f"{path}: checkpoint 'q_network' is not a dict of tensors")
    config = config_from_dict(payload["config"], source=f"{path} (config stored in the checkpoint)")
    return payload, config


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
