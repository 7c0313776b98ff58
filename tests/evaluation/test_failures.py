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


def test_avoidable_in_window_asks_dp_from_the_storage_on_the_first_day_the_forecast_showed_the_failure(monkeypatch):
    """Each avoidable failure on day d is judged from the policy's storage and record index on step
    max(0, d − lead_days) (0-based; lead 1 is the day itself) over the rest of the horizon; other episodes are
    False without a solve."""
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.evaluation import failures

    config = config_from_dict({"inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6}},
                               "env": {"horizon_days": 30, "forecast": {"lead_days": 5}}})
    env = make_env(config, "heldout", n_envs=1, seed=0)
    episodes, days = 3, 30
    trajectory = TensorDict({
        "record_index": torch.arange(days).repeat(episodes, 1) + torch.tensor([[100], [200], [300]]),
        "storage_hm3": torch.arange(days, dtype=torch.float32).repeat(episodes, 1) * 10.0 + torch.tensor([[1.0], [2.0], [3.0]]),
    }, batch_size=[episodes, days])
    asked = []

    def fake(physics, inflow_hm3, day_of_year, storage_hm3, n_storage):
        asked.append((inflow_hm3, day_of_year, float(storage_hm3[0]), n_storage))
        return torch.tensor([float(storage_hm3[0]) % 10 > 1.5])  # episode 0 (…1.0): not free; 1 and 2: free

    monkeypatch.setattr(failures, "failure_free", fake)
    day = torch.tensor([12, 3, 20])  # steps 7, 0 (clamped) and 15
    found = failures.avoidable_in_window(env, trajectory, day, torch.tensor([True, True, False]), 77)
    assert found.tolist() == [False, True, False]
    assert [(storage, levels) for _, _, storage, levels in asked] == [(71.0, 77), (2.0, 77)]  # episode 2: no solve
    for (inflow, day_of_year, _, _), (start, n_days) in zip(asked, [(107, 23), (200, 30)]):
        assert torch.equal(inflow, env.inflow_trace_hm3(torch.tensor([start]), n_days))
        assert torch.equal(day_of_year, env.day_of_year_trace(torch.tensor([start]), n_days))
