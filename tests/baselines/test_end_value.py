"""Tests of reservoir_rl.baselines.end_value: the value of the storage an episode leaves behind, and the DP
that maximises return + that value (the upper bound of the score without the end-of-episode artifact)."""

from __future__ import annotations

import pytest
import torch

from reservoir_rl.baselines import run_episodes
from reservoir_rl.baselines.dp import PerfectForesightPolicy
from reservoir_rl.baselines.end_value import EndStorageValue
from reservoir_rl.baselines.sdp import sdp_solution
from reservoir_rl.catalog import make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.evaluation.end_storage import add_end_storage_value
from reservoir_rl.evaluation.rollout import evaluate_policy

HORIZON = 90


@pytest.fixture(scope="module")
def setting(synthetic_record):
    config = Config(
        inflow={"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 12, "seed": 1}},
        env={"horizon_days": HORIZON},
        baselines={"dp_storage_levels": 300, "sdp": {"storage_levels": 60}},
    )
    env = make_env(config, "heldout", n_envs=12, seed=5, inflow=synthetic_record)
    return config, env, EndStorageValue(env, sdp_solution(env, config))


def test_the_day_after_the_episode_is_the_records_next_day(setting):
    _, env, end_value = setting
    start = torch.tensor([0, 100, 1000, env.inflow.n_days - HORIZON - 1])
    expected = torch.as_tensor(env.inflow.day_of_year[(start + HORIZON).numpy()])
    assert torch.equal(end_value.day_after_episode(start), expected)
    # the last possible start: the day after the record's last day, one calendar day on
    last = torch.tensor([env.inflow.n_days - HORIZON])
    assert int(end_value.day_after_episode(last)) == (int(env.inflow.day_of_year[-1]) + 1) % 365


def test_episode_value_is_the_sdp_value_of_the_storage_left_relative_to_the_start(setting):
    _, env, end_value = setting
    start = torch.tensor([10, 400, 900])
    initial = torch.tensor([600.0, 900.0, 1200.0])
    final = torch.tensor([600.0, 1300.0, 400.0])
    alive = torch.tensor([True, True, False])
    values = end_value.episode_values(start, initial, final, alive)
    day = end_value.day_after_episode(start)
    solution = end_value.solution
    v_final = solution.mean_value(day, final.to(torch.float64).unsqueeze(-1)).squeeze(-1)
    v_initial = solution.mean_value(day, initial.to(torch.float64).unsqueeze(-1)).squeeze(-1)
    assert values.dtype == torch.float64
    assert float(values[0]) == 0.0  # the storage it started with: nothing gained, nothing lost
    assert float(values[1]) == pytest.approx(float(v_final[1] - v_initial[1]), rel=1e-12)
    assert float(values[1]) > 0  # more water left than at the start is worth something
    assert float(values[2]) == pytest.approx(float(-v_initial[2]), rel=1e-12)  # failed: no future at all


def test_end_storage_metrics_read_the_last_real_day_of_each_episode(setting):
    config, env, end_value = setting
    result = evaluate_policy(env, make_baseline("sop", env, config), seed=3)
    add_end_storage_value(result, end_value)
    trajectory = result.trajectory
    length = result.metrics["length"].long()
    rows = torch.arange(env.n_envs)
    final = trajectory.get(("next", "storage_hm3"))[rows, length - 1]  # the last day of each episode
    expected = end_value.episode_values(trajectory.get("record_index")[:, 0], trajectory.get("storage_hm3")[:, 0],
                                        final, torch.ones(env.n_envs, dtype=torch.bool))
    torch.testing.assert_close(result.metrics["end_storage_value"], expected)
    torch.testing.assert_close(result.metrics["return_end_valued"],
                               result.metrics["return"].double() + result.metrics["end_storage_value"])


def test_dp_valuing_the_end_keeps_water_and_bounds_every_policy_on_that_score(setting):
    config, env, end_value = setting
    scores = {}
    final_storage = {}
    for name in ("sop", "sdp", "mpc", "dp", "dp_end"):
        result = evaluate_policy(env, make_baseline(name, env, config), seed=3)
        add_end_storage_value(result, end_value)
        scores[name] = result.metrics
        final_storage[name] = result.trajectory.get(("next", "storage_hm3"))[:, -1]
    for name in ("sop", "sdp", "mpc", "dp"):
        assert bool((scores["dp_end"]["return_end_valued"] >= scores[name]["return_end_valued"] - 1e-3).all()), name
    # the raw DP draws the reservoir down before the horizon; the DP that values the end does not
    assert float(final_storage["dp_end"].mean()) > float(final_storage["dp"].mean())
    assert bool((scores["dp"]["return"] >= scores["dp_end"]["return"] - 1e-3).all())


def test_dp_end_value_is_passed_through_the_policy(setting):
    _, env, end_value = setting
    policy = PerfectForesightPolicy(env, n_storage=300, end_value=end_value)
    env.set_seed(3)
    run_episodes(env, policy)
    assert len(policy._starts) == env.n_envs and torch.equal(
        policy._values[:, -1], end_value(policy._starts, torch.linspace(
            env.physics.dead_storage_hm3, env.physics.capacity_hm3, 300, dtype=torch.float64).expand(env.n_envs, -1)))
