"""Paired rollouts: every policy on the same env reset with the same seed, so episode i has the same start
day, inflow trace and initial storage for every policy (and every seed's agent)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from reservoir_rl.catalog import EXTRA_METRICS, HEADLINE_METRICS
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.evaluation.rollout import EvaluationResult, evaluate_policy

EPISODE_FIELDS = ("start_date", "start_record_index", "initial_storage_hm3", "trace_inflow_hm3")


def _episode_info(env: DiscreteReservoirEnv, result: EvaluationResult) -> dict[str, torch.Tensor]:
    """Start index, initial storage and total inflow of the whole trace of each episode (shape (episodes,))."""
    start = result.trajectory.get("record_index")[:, 0]
    return {
        "start_record_index": start,
        "initial_storage_hm3": result.trajectory.get("storage_hm3")[:, 0],
        "trace_inflow_hm3": env.inflow_trace_hm3(start, env.config.horizon_days).to(torch.float64).sum(dim=-1),
    }


def run_paired(
    env: DiscreteReservoirEnv, policies: dict[str, Any], seed: int, on_policy: Optional[Callable[[str], None]] = None
) -> tuple[dict[str, EvaluationResult], dict[str, torch.Tensor]]:
    """Every policy on the same ``env`` reset with ``seed``; returns the results and the episodes' traces
    (start index, initial storage, trace inflow; checked identical for every policy)."""
    results: dict[str, EvaluationResult] = {}
    info: Optional[dict[str, torch.Tensor]] = None
    for name, policy in policies.items():
        if on_policy is not None:
            on_policy(name)
        results[name] = evaluate_policy(env, policy, seed)
        this = _episode_info(env, results[name])
        if info is None:
            info = this
        elif not all(torch.equal(info[k], this[k]) for k in info):  # the pairing is the point: never silently lost
            raise RuntimeError(f"policy {name!r} was not evaluated on the same traces as the first policy")
    assert info is not None
    return results, info


def per_episode_values(result: EvaluationResult) -> dict[str, torch.Tensor]:
    """The report's metrics of one policy: name → float64 (episodes,) on the CPU."""
    return {k: result.metrics[k].detach().cpu().to(torch.float64) for k in (*HEADLINE_METRICS, *EXTRA_METRICS)}


def episode_info_lists(env: DiscreteReservoirEnv, info: dict[str, torch.Tensor]) -> dict[str, list[Any]]:
    """The episodes' traces as JSON-ready lists (start date, start index, initial storage, trace inflow)."""
    start = info["start_record_index"].cpu()
    return {
        "start_date": [str(d) for d in env.inflow.dates[start.numpy()]],
        "start_record_index": start.tolist(),
        "initial_storage_hm3": info["initial_storage_hm3"].cpu().tolist(),
        "trace_inflow_hm3": info["trace_inflow_hm3"].cpu().tolist(),
    }
