"""Tests of reservoir_rl.baselines.mpc: forecast-informed MPC plans on the agent's forecast and nothing else.

The decoded forecast is the env's; today's values are those of a plain full-grid backward recursion (the
reachable-window speed-up changes nothing, even against dead storage, at capacity and in floods); with the
true inflow over the whole episode MPC is the perfect-foresight DP, action for action; in its default mode
it reads nothing of the inflow record, and DP bounds it on every episode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from reservoir_rl.baselines import episode_returns, run_episodes
from reservoir_rl.baselines.dp import VALUE_DTYPE, interpolate_on_grid, storage_grid_hm3, transition
from reservoir_rl.baselines.mpc import ForecastMPCPolicy, decode_forecast_hm3
from reservoir_rl.catalog import make_baseline
from reservoir_rl.config import BaselinesConfig, Config, EnvConfig, ForecastConfig, ReservoirConfig, load_config
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.evaluation.rollout import evaluate_policy

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def synthetic_env(record, n_envs=6, seed=0, **env_options) -> DiscreteReservoirEnv:
    return DiscreteReservoirEnv(EnvConfig(**env_options), record, record.complete_water_years(), n_envs=n_envs,
                                seed=seed)


def reference_q(env, storage_hm3, inflow_hm3, days, n_storage, terminal=None, discount=1.0, days_left=None):
    """Today's values r_0 + discount·V_1(S') of the full-grid recursion over the H days of ``inflow_hm3`` (B, H)."""
    n_envs, horizon = inflow_hm3.shape
    grid = storage_grid_hm3(env.physics, n_storage)
    days_left = torch.full((n_envs,), horizon + 1) if days_left is None else days_left
    values = torch.zeros(n_envs, n_storage, dtype=VALUE_DTYPE) if terminal is None else terminal.clone()
    values[days_left <= horizon] = 0.0
    args = (env.physics, env.config.reward)
    for k in range(horizon - 1, 0, -1):
        reward, next_storage, alive = transition(*args, grid.view(1, -1, 1), inflow_hm3[:, k, None, None],
                                                 days[:, k, None, None], env.config.terminate_on_failure)
        future = interpolate_on_grid(values, next_storage, env.physics)
        values = (reward + discount * torch.where(alive, future, torch.zeros_like(future))).amax(dim=-1)
        values[days_left <= k] = 0.0
    reward, next_storage, alive = transition(*args, storage_hm3.double().unsqueeze(-1), inflow_hm3[:, :1],
                                             days[:, :1], env.config.terminate_on_failure)
    future = interpolate_on_grid(values, next_storage, env.physics)
    return reward + discount * torch.where(alive, future, torch.zeros_like(future))


def state(record_index, storage_hm3) -> TensorDict:
    return TensorDict({"record_index": torch.as_tensor(record_index), "storage_hm3": torch.as_tensor(storage_hm3)},
                      batch_size=[len(record_index)])


# ------------------------------------------------------------------ the forecast


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_decoded_forecast_is_the_env_forecast(synthetic_record, scale):
    """Without forecast error the decoded observation is the true inflow of leads 1 … L (today first)."""
    lead = 7
    env = synthetic_env(synthetic_record, n_envs=16, seed=3, horizon_days=40,
                        forecast=ForecastConfig(lead_days=lead, error_sigma=0.0, scale=scale),
                        extra_features=["flood_zone_fraction", "day_fraction"])  # features after the forecast
    trajectory = env.rollout(30, lambda td: td.set("action", torch.full(td.batch_size, 4)), break_when_any_done=False)
    observation = trajectory.get("observation").reshape(-1, env.observation_size)
    record_index = trajectory.get("record_index").reshape(-1)
    decoded = decode_forecast_hm3(env, observation)
    assert decoded.dtype == torch.float64 and decoded.shape == (len(record_index), lead)
    torch.testing.assert_close(decoded, env.inflow_trace_hm3(record_index, lead).double(), rtol=1e-6, atol=1e-9)
    # lead 1 is today's inflow, the one the step applies
    torch.testing.assert_close(decoded[:, 0].float(), trajectory.get(("next", "inflow_hm3")).reshape(-1))


def test_forecast_is_noisy_from_lead_one(synthetic_record):
    """With forecast error MPC plans on a forecast that differs from the truth, today's inflow included."""
    env = synthetic_env(synthetic_record, n_envs=64, seed=3, forecast=ForecastConfig(error_sigma=0.1))
    td = env.reset()
    decoded = decode_forecast_hm3(env, td.get("observation"))
    truth = env.inflow_trace_hm3(td.get("record_index"), env.config.forecast.lead_days).double()
    log_error = (decoded / truth).log()
    assert bool((log_error[:, 0].abs() > 1e-4).all())  # lead 1 is noisy too
    assert 0.05 < float(log_error[:, 0].std()) < 0.15 and float(log_error[:, -1].std()) > float(log_error[:, 0].std())


# ------------------------------------------------------------------ the plan


@pytest.mark.parametrize("terminal", [False, True])
def test_q_values_are_those_of_the_full_grid_recursion(synthetic_record, terminal):
    """On the noisy forecast the agent observes: today's values equal the full-grid recursion's exactly."""
    env = synthetic_env(synthetic_record, n_envs=24, seed=7, initial_storage_fraction=(0.1, 1.0))
    n_storage, horizon = 300, env.config.forecast.lead_days
    grid = storage_grid_hm3(env.physics, n_storage)
    value_of_storage = lambda day, grid_hm3: (day.double().unsqueeze(-1) / 365 + 1) * 20 * grid_hm3 / grid_hm3[-1]
    policy = ForecastMPCPolicy(env, n_storage=n_storage, terminal_value=value_of_storage if terminal else None,
                               discount=0.97 if terminal else 1.0)
    td = env.reset()
    for _ in range(3):
        q = policy.q_values(td)
        forecast = decode_forecast_hm3(env, td.get("observation"))
        days = env.day_of_year_trace(td.get("record_index"), horizon + 1)
        expected = reference_q(env, td.get("storage_hm3"), forecast, days, n_storage,
                               value_of_storage(days[:, -1], grid) if terminal else None, policy.discount)
        torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)
        td = env.step(policy(td))["next"]


@pytest.mark.parametrize("evaporation_mm_per_day", [2.5, 80.0])  # 80: up to 8.6 hm³/day, above the grid spacing
def test_reachable_windows_change_nothing_at_the_edges(synthetic_record, evaporation_mm_per_day):
    """Storages at dead storage and at capacity, floods that fill the lake, no inflow at all, the end of the
    episode within the horizon, 300 random states and forecasts, a lake losing more to evaporation in a day
    than the grid spacing: still the full-grid values."""
    n_random = 300
    env = synthetic_env(synthetic_record, n_envs=6 + n_random,
                        reservoir=ReservoirConfig(evaporation_mm_per_day=evaporation_mm_per_day))
    physics, horizon, n_storage = env.physics, 6, 250
    storage = torch.tensor([physics.dead_storage_hm3, physics.dead_storage_hm3 + 0.3, 700.0,
                            physics.capacity_hm3 - 0.2, physics.capacity_hm3, 1400.0])
    forecast = torch.tensor([[0.0] * horizon, [0.5, 0.0, 2.0, 0.0, 0.0, 1.0], [300.0, 250.0, 10.0, 0.0, 5.0, 400.0],
                             [80.0] * horizon, [0.0, 200.0, 0.0, 0.0, 0.0, 0.0], [250.0] * horizon], dtype=VALUE_DTYPE)
    record_index = torch.tensor([0, 100, 200, 300, 360, 500])
    days_left = torch.tensor([10, 10, 3, 10, 1, 6])
    generator = torch.Generator().manual_seed(0)
    storage = torch.cat([storage, physics.dead_storage_hm3 + 1350.0 * torch.rand(n_random, generator=generator)])
    forecast = torch.cat([forecast, 300.0 * torch.rand(n_random, horizon, generator=generator, dtype=VALUE_DTYPE) ** 4])
    record_index = torch.cat([record_index, torch.randint(0, 3000, (n_random,), generator=generator)])
    days_left = torch.cat([days_left, torch.randint(1, 12, (n_random,), generator=generator)])
    env_state = env.get_state()  # episode_aware reads the days each env has simulated
    env_state.update(storage_hm3=storage, record_index=record_index, steps=env.config.horizon_days - days_left,
                     inflow_scale=torch.ones(len(storage)), flood_scale=torch.ones(len(storage)))
    env.set_state(env_state)
    policy = ForecastMPCPolicy(env, n_storage=n_storage, horizon_days=horizon, episode_aware=True,
                               forecast=lambda td: forecast)
    days = env.day_of_year_trace(record_index, horizon + 1)
    expected = reference_q(env, storage, forecast, days, n_storage, days_left=days_left)
    torch.testing.assert_close(policy.q_values(state(record_index, storage)), expected, rtol=0, atol=1e-12)


def test_terminal_value_gets_the_day_after_the_horizon_and_the_grid(synthetic_record):
    env = synthetic_env(synthetic_record, n_envs=8, seed=2)
    calls = []

    def full_lake_is_worth_a_lot(day_of_year, grid_hm3):
        calls.append((day_of_year.clone(), grid_hm3.clone()))
        return (300.0 * grid_hm3 / grid_hm3[-1]).expand(len(day_of_year), -1)

    horizon = 5
    valued = ForecastMPCPolicy(env, n_storage=200, horizon_days=horizon, terminal_value=full_lake_is_worth_a_lot)
    td = env.reset()
    valued(td.clone())
    day_of_year, grid = calls[0]
    assert day_of_year.dtype == torch.int64
    assert torch.equal(day_of_year, env.day_of_year_trace(td.get("record_index"), horizon + 1)[:, horizon])
    assert torch.equal(grid, storage_grid_hm3(env.physics, 200))
    # storage worth more than any release: keep the water (release as little as is safe)
    plain = ForecastMPCPolicy(env, n_storage=200, horizon_days=horizon)
    assert valued(td.clone()).get("action").sum() < plain(td.clone()).get("action").sum()


def test_calendar_continues_across_new_year_and_leap_days():
    """Days of year come from the record's dates (Dec 31 of a leap year is 365), past the record's end too."""
    dates = np.datetime64("2003-10-01") + np.arange(3 * 366)
    record = InflowRecord("constant", dates, np.full(len(dates), 150.0))
    env = DiscreteReservoirEnv(EnvConfig(horizon_days=30), record, record.complete_water_years(), n_envs=2)
    seen = []
    policy = ForecastMPCPolicy(env, n_storage=50, horizon_days=20, forecast=lambda td: torch.full((2, 20), 10.0),
                               terminal_value=lambda day, grid: seen.append(day) or torch.zeros(len(day), len(grid)))
    dec_25_2004 = int((np.datetime64("2004-12-25") - dates[0]).astype(np.int64))
    policy(state([dec_25_2004, len(dates) - 5], [800.0, 800.0]))
    assert seen[0].tolist() == [13, 290]  # 2005-01-14 (2004 has 366 days); 2006-10-18, after the record's end
    assert env.day_of_year_trace(torch.tensor(dec_25_2004 + 6), 2).tolist() == [365, 0]


def test_zero_discount_or_one_day_horizon_is_greedy_on_todays_forecast(synthetic_record):
    """Storages dead … capacity with a flood forecast from day 3: the myopic plans agree; the 10-day plan
    releases more ahead of the flood from a fuller lake."""
    env = synthetic_env(synthetic_record, n_envs=1)
    storage = torch.linspace(env.physics.dead_storage_hm3, env.physics.capacity_hm3, 40)
    flood = torch.tensor([10.0, 10.0, 10.0, 250.0, 250.0, 250.0, 100.0, 50.0, 20.0, 10.0]).expand(40, -1)
    td = state(torch.full((40,), 400), storage)
    options = {"n_storage": 200, "forecast": lambda td: flood}
    one_day = ForecastMPCPolicy(env, horizon_days=1, **options)(td.clone()).get("action")
    myopic = ForecastMPCPolicy(env, discount=0.0, **options)(td.clone()).get("action")
    assert torch.equal(one_day, myopic)
    far_sighted = ForecastMPCPolicy(env, **options)(td.clone()).get("action")
    full = storage > 900.0
    assert bool((far_sighted[full] >= myopic[full]).all()) and bool((far_sighted[full] > myopic[full]).sum() >= 10)


def test_bad_arguments_are_refused(synthetic_record):
    env = synthetic_env(synthetic_record, n_envs=2)
    with pytest.raises(ValueError, match="exceeds the 10 days of forecast"):
        ForecastMPCPolicy(env, horizon_days=11)
    with pytest.raises(ValueError, match="horizon_days must be >= 1"):
        ForecastMPCPolicy(env, horizon_days=0)
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\]"):
        ForecastMPCPolicy(env, discount=1.5)
    td = env.reset()
    with pytest.raises(ValueError, match="the forecast must be"):
        ForecastMPCPolicy(env, horizon_days=20, forecast=lambda td: torch.zeros(2, 10))(td)
    with pytest.raises(ValueError, match="terminal_value must return"):
        ForecastMPCPolicy(env, n_storage=50, terminal_value=lambda day, grid: torch.zeros(2, 49))(td)


# ------------------------------------------------------------------ against DP and the rules


def test_perfect_forecast_over_the_whole_episode_is_dp(synthetic_record):
    """The true inflow as the forecast, horizon = episode, plan truncated at its end: DP's actions, day by day."""
    env = synthetic_env(synthetic_record, n_envs=6, seed=5, horizon_days=30, initial_storage_fraction=(0.1, 1.0))
    n_days, record_days = env.config.horizon_days, len(synthetic_record.dates)

    def true_future(td):  # the days after the episode's end are never planned: any inflow will do there
        index = td.get("record_index").unsqueeze(-1) + torch.arange(n_days)
        return env.inflow_hm3_at(index.clamp(max=record_days - 1))

    mpc = ForecastMPCPolicy(env, n_storage=200, horizon_days=n_days, episode_aware=True, forecast=true_future)
    dp = make_baseline("dp", env, Config(baselines=BaselinesConfig(dp_storage_levels=200)))
    trajectories = {}
    for name, policy in (("mpc", mpc), ("dp", dp)):
        env.set_seed(8)
        trajectories[name] = run_episodes(env, policy)
    assert torch.equal(trajectories["mpc"].get("action"), trajectories["dp"].get("action"))
    assert torch.equal(episode_returns(trajectories["mpc"]), episode_returns(trajectories["dp"]))


def test_mpc_reads_nothing_of_the_inflow_record(synthetic_record):
    """A policy built on an env whose record is shuffled acts exactly as one built on the env it acts in."""
    env = synthetic_env(synthetic_record, n_envs=4, seed=1, horizon_days=60)
    shuffled_cms = np.random.default_rng(0).permutation(synthetic_record.inflow_cms)
    shuffled = InflowRecord("shuffled", synthetic_record.dates, shuffled_cms)
    other = DiscreteReservoirEnv(env.config, shuffled, synthetic_record.complete_water_years(), n_envs=4)
    assert other.mean_inflow_hm3 == pytest.approx(env.mean_inflow_hm3, rel=1e-12)
    trajectories = []
    for policy_env in (env, other):
        env.set_seed(9)
        trajectories.append(run_episodes(env, ForecastMPCPolicy(policy_env, n_storage=200)).get("action"))
    assert torch.equal(trajectories[0], trajectories[1])
    # a policy that looks at the record (DP) is changed by the shuffle
    dp_actions = []
    for policy_env in (env, other):
        env.set_seed(9)
        dp_actions.append(run_episodes(env, make_baseline("dp", policy_env, Config(baselines=BaselinesConfig(dp_storage_levels=200))))
                          .get("action"))
    assert not torch.equal(dp_actions[0], dp_actions[1])


def test_on_validation_episodes_of_base_config_dp_bounds_mpc_and_mpc_beats_sop():
    config = load_config(CONFIGS / "base.yaml")
    seed = config.train.validation_env_seed
    env = make_env(config, "validation", n_envs=4, seed=seed)
    returns = {name: evaluate_policy(env, make_baseline(name, env, config), seed).metrics["return"]
               for name in ("sop", "mpc", "dp")}
    assert bool((returns["dp"] >= returns["mpc"]).all()), (returns["dp"], returns["mpc"])
    # SOP with flood-control operation is a strong rule; a plan on the forecast still does better on average
    assert float(returns["mpc"].mean()) > float(returns["sop"].mean()), (returns["mpc"], returns["sop"])
