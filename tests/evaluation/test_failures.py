"""Tests of reservoir_rl.evaluation.failures: each episode's first failure, avoidability, the guard's share."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict

from reservoir_rl.evaluation.failures import FAILURE_KINDS, avoidable, first_failures, guard_override_fraction


def trajectory(flood: list[list[int]], drought: list[list[int]], done: list[list[int]], override=None) -> TensorDict:
    n, t = len(done), len(done[0])
    data = {
        "next": TensorDict({
            "flood_failure": torch.tensor(flood, dtype=torch.bool),
            "drought_failure": torch.tensor(drought, dtype=torch.bool),
            "done": torch.tensor(done, dtype=torch.bool).unsqueeze(-1),
        }, batch_size=[n, t]),
    }
    if override is not None:
        data["guard_override"] = torch.tensor(override, dtype=torch.bool)
    return TensorDict(data, batch_size=[n, t])


def test_first_failure_kind_and_day():
    # episode 0: flood on day 3 (ends there); 1: drought on day 2; 2: none; 3: a flood after its first done
    td = trajectory(
        flood=[[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]],
        drought=[[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        done=[[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [0, 1, 1, 1]],
    )
    kind, day = first_failures(td)
    assert [FAILURE_KINDS[k] for k in kind.tolist()] == ["flood", "drought", "none", "none"]
    assert day.tolist() == [3, 2, 0, 0]


def test_avoidable_failures_are_those_dp_avoided():
    kind = torch.tensor([[1, 2, 0, 1], [0, 1, 2, 0]])  # two seeds' agents on four paired episodes
    dp_kind = torch.tensor([0, 2, 0, 1])
    assert avoidable(kind, dp_kind).tolist() == [[True, False, False, False], [False, False, True, False]]
    assert avoidable(kind, None) is None


def test_guard_override_fraction_counts_only_the_episode_days():
    done = [[0, 0, 0, 1], [0, 1, 1, 1]]
    zeros = [[0] * 4] * 2
    td = trajectory(zeros, zeros, done, override=[[1, 0, 0, 1], [1, 0, 1, 1]])
    assert guard_override_fraction(td, "guard_override").tolist() == [0.5, 0.5]
    unguarded = guard_override_fraction(trajectory(zeros, zeros, done), "guard_override")
    assert all(math.isnan(v) for v in unguarded.tolist())
