"""Which episodes failed, how and when, and which failures perfect foresight avoided.

A failure is a catastrophic flood (the dam overtops: spill beyond the spillway capacity) or a critical
drought (storage drawn to dead storage). A failure is **avoidable** when the perfect-foresight DP, run on the
same inflow trace from the same initial storage (the paired evaluation's episode), has none: a better
operating policy would have avoided it. A failure DP has too is one nobody could avoid on that trace.
"""

from __future__ import annotations

from typing import Optional

import torch
from tensordict import TensorDictBase

from reservoir_rl.env.metrics import first_done_mask

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


def guard_override_fraction(trajectory: TensorDictBase, key: str) -> torch.Tensor:
    """Share of each episode's days on which the release guard changed the policy's action, float32 (E,);
    NaN for a policy that ran without the guard (no ``key`` in its trajectory)."""
    valid = first_done_mask(trajectory.get(("next", "done")))
    if key not in trajectory.keys():
        return torch.full(valid.shape[:1], float("nan"), dtype=torch.float32, device=valid.device)
    override = trajectory.get(key).reshape(valid.shape) & valid
    return override.sum(-1).to(torch.float32) / valid.sum(-1).clamp(min=1).to(torch.float32)
