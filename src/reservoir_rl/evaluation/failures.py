"""Which episodes failed, how and when, and which failures perfect foresight avoided.

A failure is a catastrophic flood (the dam overtops: spill beyond the spillway capacity) or a critical
drought (storage drawn to dead storage). A failure is **avoidable** when the perfect-foresight DP, run on the
same inflow trace from the same initial storage (the paired evaluation's episode), has none: a better
operating policy would have avoided it. A failure DP has too is one nobody could avoid on that trace.

An avoidable failure is **avoidable within the forecast window** when it could still be avoided (by some
release sequence, knowing the future) from the storage the policy had on the first day its forecast window
reached the failure's day, ``env.forecast.lead_days`` − 1 days before it (`avoidable_in_window`). The others
were settled before any forecast showed that day: only keeping more room earlier, without a forecast of the
flood (or more water, for a drought), would have avoided them.
"""

from __future__ import annotations

from typing import Optional

import torch
from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import failure_free
from reservoir_rl.env.metrics import first_done_mask
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv

FAILURE_KINDS = ("none", "flood", "drought")  # the CSV's failure_kind, by code 0, 1, 2


def first_failures(trajectory: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
    """(kind, day) of the first failure of each episode of a (E, T) trajectory, both int64 (E,): kind is an
    index into `FAILURE_KINDS` (0: no failure), day the day of the episode it happened on (1 = the first
    day; 0: no failure). Days after an episode's first done are ignored."""
    valid = first_done_mask(trajectory.get(("next", "done")))
    flood = trajectory.get(("next", "flood_failure")).reshape(valid.shape) & valid
    drought = trajectory.get(("next", "drought_failure")).reshape(valid.shape) & valid
    failed = flood | drought
    any_failure = failed.any(dim=-1)
    first = failed.to(torch.int64).argmax(dim=-1)  # the first True (0 when none)
    kind = torch.where(flood.gather(-1, first.unsqueeze(-1)).squeeze(-1), 1, 2)
    zero = torch.zeros_like(first)
    return torch.where(any_failure, kind, zero), torch.where(any_failure, first + 1, zero)


def avoidable(kind: torch.Tensor, dp_kind: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Bool with the shape of ``kind`` ((..., E) failure kinds): the episode failed and DP's episode
    (``dp_kind``, (E,)) did not; None without DP."""
    if dp_kind is None:
        return None
    return (kind > 0) & (dp_kind == 0)


def avoidable_in_window(env: DiscreteReservoirEnv, trajectory: TensorDictBase, day: torch.Tensor,
                        avoidable_mask: torch.Tensor, n_storage: int) -> torch.Tensor:
    """For each episode of a (E, T) ``trajectory`` of ``env`` with ``avoidable_mask`` (bool (E,)) whose first
    failure is on ``day`` (int64 (E,), 1 = the first day): True when some release sequence, knowing the
    future, avoids every failure from the policy's storage on day max(1, day − lead_days + 1) — the first
    whose forecast (leads 1 … lead_days, lead 1 = that day) covered the failure's day — to the end of the
    episode's ``horizon_days`` (`reservoir_rl.baselines.dp.failure_free` on ``n_storage`` levels). False
    where ``avoidable_mask`` is False. bool (E,) on the CPU."""
    mask = avoidable_mask.reshape(-1).cpu()
    result = torch.zeros_like(mask)
    lead, horizon = env.config.forecast.lead_days, env.config.horizon_days
    for episode in torch.nonzero(mask).flatten().tolist():
        step = max(0, int(day[episode]) - lead)  # 0-based: the failure's step is day − 1
        record_index = trajectory.get("record_index")[episode, step].reshape(1).to(env.device)
        storage = trajectory.get("storage_hm3")[episode, step].reshape(1).to(env.device)
        n_days = horizon - step
        result[episode] = bool(failure_free(env.physics, env.inflow_trace_hm3(record_index, n_days),
                                            env.day_of_year_trace(record_index, n_days), storage, n_storage)[0])
    return result


def window_failures(env: DiscreteReservoirEnv, trajectories: dict[str, TensorDictBase], n_storage: int,
                    dp: str = "dp") -> dict[str, torch.Tensor]:
    """`avoidable_in_window` of each policy's (E, T) trajectory of one paired evaluation on ``env``, its failures
    judged avoidable against the trajectory named ``dp``: name → bool (E,); empty when ``dp`` is not among them."""
    if dp not in trajectories:
        return {}
    dp_kind = first_failures(trajectories[dp])[0].cpu()
    found = {}
    for name, trajectory in trajectories.items():
        kind, day = first_failures(trajectory)
        mask = avoidable(kind.cpu(), dp_kind)
        found[name] = avoidable_in_window(env, trajectory, day.cpu(), mask, n_storage)
    return found


def guard_override_fraction(trajectory: TensorDictBase, key: str) -> torch.Tensor:
    """Share of each episode's days on which the release guard changed the policy's action, float32 (E,);
    NaN for a policy that ran without the guard (no ``key`` in its trajectory)."""
    valid = first_done_mask(trajectory.get(("next", "done")))
    if key not in trajectory.keys():
        return torch.full(valid.shape[:1], float("nan"), dtype=torch.float32, device=valid.device)
    override = trajectory.get(key).reshape(valid.shape) & valid
    return override.sum(-1).to(torch.float32) / valid.sum(-1).clamp(min=1).to(torch.float32)
