"""Turn evaluation trajectories into the monitor's figures (tensors → numpy, hm³/day → m³/s)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from reservoir_rl.env.metrics import first_done_mask
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.env.reward import COMPONENTS
from reservoir_rl.monitor.figures import (
    Zones,
    action_histogram_figure,
    reward_breakdown_figure,
    trajectory_figure,
)
from reservoir_rl.evaluation.rollout import EvaluationResult
from reservoir_rl.units import HM3_PER_CMS_DAY


def zones_of(env: DiscreteReservoirEnv, start_index: int, n_days: int) -> Zones:
    """The storage zones of ``env`` over the ``n_days`` record days from ``start_index``: the bottom of the
    flood-control zone is one number, or (n_days,) hm³ when it follows a seasonal curve."""
    r = env.config.reservoir
    if env.physics.seasonal_flood_zone:
        days = env.day_of_year_trace(torch.tensor([start_index]), n_days)[0]
        flood_zone_hm3: float | np.ndarray = env.physics.flood_zone_hm3(days).cpu().numpy()
    else:
        flood_zone_hm3 = float(r.flood_zone_hm3)
    return Zones(r.dead_storage_hm3, r.min_operating_hm3, flood_zone_hm3, r.capacity_hm3)


def episode_series(result: EvaluationResult, episode: int = 0) -> dict[str, np.ndarray]:
    """Daily series of one episode (its days up to the first done), numpy arrays of shape (T,)."""
    trajectory = result.trajectory[episode]
    valid = int(result.metrics["length"][episode])
    nxt = trajectory.get("next")
    out = {
        "record_index": trajectory.get("record_index")[:valid].cpu().numpy(),
        "storage_hm3": nxt.get("storage_hm3")[:valid].cpu().numpy(),
        "inflow_cms": (nxt.get("inflow_hm3")[:valid] / HM3_PER_CMS_DAY).cpu().numpy(),
        "release_cms": (nxt.get("release_hm3")[:valid] / HM3_PER_CMS_DAY).cpu().numpy(),
        "spill_cms": (nxt.get("spill_hm3")[:valid] / HM3_PER_CMS_DAY).cpu().numpy(),
        "energy_mwh": nxt.get("energy_mwh")[:valid].cpu().numpy(),
        "action": trajectory.get("action")[:valid].cpu().numpy(),
    }
    return out


FAILURE_KINDS = {"flood_failure": "flood", "drought_failure": "drought"}  # the env's flags → figure labels


def episode_failure(result: EvaluationResult, episode: int = 0) -> tuple[int, str] | None:
    """(day index, kind: "flood" or "drought") of the first failure of one episode, or None without one."""
    valid = int(result.metrics["length"][episode])
    nxt = result.trajectory[episode].get("next")
    found = []
    for key, kind in FAILURE_KINDS.items():
        if key in nxt.keys():
            days = torch.nonzero(nxt.get(key)[:valid].reshape(valid, -1).any(dim=-1)).reshape(-1)
            if days.numel():
                found.append((int(days[0]), kind))
    return min(found) if found else None


def weighted_component_totals(result: EvaluationResult, env: DiscreteReservoirEnv) -> dict[str, float]:
    """Mean over episodes of each weighted reward component summed over the episode's days."""
    mask = first_done_mask(result.trajectory.get(("next", "done"))).to(torch.float32)
    components = result.trajectory.get(("next", "reward_components"))
    weights = env.config.reward
    return {
        name: float((components.get(name) * mask).sum(dim=1).mean()) * getattr(weights, name) for name in COMPONENTS
    }


def action_counts(result: EvaluationResult, n_actions: int) -> np.ndarray:
    mask = first_done_mask(result.trajectory.get(("next", "done")))
    actions = result.trajectory.get("action")[mask]
    return torch.bincount(actions.reshape(-1).cpu(), minlength=n_actions).numpy()


def release_levels_cms(env: DiscreteReservoirEnv) -> np.ndarray:
    return (env.physics.release_levels_hm3() / HM3_PER_CMS_DAY).numpy()


def _padded(values: np.ndarray, n_days: int) -> np.ndarray:
    """``values`` (T,) as float, NaN-padded to (n_days,): days after an episode ended are gaps."""
    out = np.full(n_days, np.nan)
    out[: len(values)] = values
    return out


def trajectory_title(episodes: str | None, episode: int, n_episodes: int, start: object) -> str:
    """``Validation episode 1 of 10, from 2008-03-07``."""
    what = f"{episodes} episode" if episodes else "episode"
    return f"{what[:1].upper()}{what[1:]} {episode + 1} of {n_episodes}, from {start}"


def evaluation_figures(
    result: EvaluationResult,
    env: DiscreteReservoirEnv,
    others: Mapping[str, EvaluationResult] | None = None,
    episode: int = 0,
    episodes: str | None = None,
) -> dict[str, Figure]:
    """Trajectory (one episode), action histogram and reward breakdown (every episode) of an evaluation.

    ``others`` adds comparison policies (e.g. {"SOP": ..., "DP": ...}) evaluated on the same traces; a
    policy whose episode ended earlier (a failure) shows a gap after its last day, and its failure is
    marked (day and kind). Each title says which and how many episodes it shows; ``episodes`` names them
    (e.g. "held-out", "validation"); None leaves them unnamed.
    """
    n_episodes = int(result.metrics["length"].numel())
    which = f"{n_episodes} {episodes} episode{'s' if n_episodes > 1 else ''}" if episodes else \
        f"{n_episodes} episode{'s' if n_episodes > 1 else ''}"
    policies = {"agent": result, **(others or {})}
    series = {name: episode_series(res, episode) for name, res in policies.items()}
    start = int(result.trajectory.get("record_index")[episode, 0])
    n_days = max(len(s["storage_hm3"]) for s in series.values())
    dates = env.inflow.dates[start : start + n_days]
    inflow_cms = (env.inflow_trace_hm3(torch.tensor([start]), n_days)[0] / HM3_PER_CMS_DAY).cpu().numpy()
    pad = {name: {k: _padded(v, n_days) for k, v in s.items()} for name, s in series.items()}
    trajectory = trajectory_figure(
        dates,
        {name: s["storage_hm3"] for name, s in pad.items()},
        zones_of(env, start, n_days),
        inflow_cms,
        {name: s["release_cms"] for name, s in pad.items()},
        spill_cms={name: s["spill_cms"] for name, s in pad.items()},
        energy_mwh={name: s["energy_mwh"] for name, s in pad.items()},
        title=trajectory_title(episodes, episode, n_episodes, dates[0]),
        failures={name: failure for name, res in policies.items()
                  if (failure := episode_failure(res, episode)) is not None},
    )
    counts = {name: action_counts(res, env.n_actions) for name, res in policies.items()}
    histogram = action_histogram_figure(
        counts if others else counts["agent"], release_levels_cms(env),
        title=f"Release levels chosen: share of the days of {which}",
    )
    breakdown_data = {name: weighted_component_totals(res, env) for name, res in policies.items()}
    breakdown = reward_breakdown_figure(
        breakdown_data if others else breakdown_data["agent"],
        title=f"Reward by component: mean per episode over {which}",
    )
    return {"trajectory": trajectory, "action_histogram": histogram, "reward_breakdown": breakdown}
