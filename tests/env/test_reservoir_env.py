"""Tests of reservoir_rl.env.reservoir_env.DiscreteReservoirEnv (TorchRL env of N batched reservoirs).

Most tests use a 12-year synthetic record (fast, strictly positive flows); the spec check and the
train/held-out split use the bundled Montague record, as the defaults do.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs, step_mdp

from reservoir_rl.config import Config, EnvConfig, ForecastConfig, ReservoirConfig, RewardConfig
from reservoir_rl.env import DiscreteReservoirEnv, make_env, observation_names, release_levels_cms
from reservoir_rl.env.inflow import split_water_years, synthetic
from reservoir_rl.env.metrics import episode_metrics, first_done_mask
from reservoir_rl.env.reservoir_env import FAILURE_FLAGS, STEP_QUANTITIES
from reservoir_rl.env.reward import COMPONENTS, weighted_reward
from reservoir_rl.errors import ConfigError
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY

N_LEVELS = 11


def seeded_policy(seed: int, n_actions: int = N_LEVELS):
    """Uniformly random release levels from a private seeded generator (a callable TorchRL policy)."""
    generator = torch.Generator().manual_seed(seed)

    def policy(td):
        td.set("action", torch.randint(0, n_actions, td.batch_size, generator=generator))
        return td

    return policy


def constant_policy(level: int):
    def policy(td):
        td.set("action", torch.full(td.batch_size, level, dtype=torch.int64))
        return td

    return policy


def make_synthetic_env(record, n_envs=8, seed=0, **env_kwargs) -> DiscreteReservoirEnv:
    config = EnvConfig(**env_kwargs)
    return DiscreteReservoirEnv(config, record, record.complete_water_years(), n_envs=n_envs, seed=seed)


def assert_td_equal(a, b):
    keys_a = set(a.keys(True, True))
    assert keys_a == set(b.keys(True, True))
    for key in keys_a:
        assert torch.equal(a.get(key), b.get(key)), key


@pytest.fixture(scope="module")
def rollout_400(synthetic_record):
    """64 envs, 400 days (one episode boundary at 365), random release levels from a seeded generator."""
    env = make_synthetic_env(synthetic_record, n_envs=64, seed=7)
    return env, env.rollout(400, seeded_policy(1), break_when_any_done=False)


# ------------------------------------------------------------------ specs


def test_check_env_specs_default_single_env():
    env = DiscreteReservoirEnv()
    assert env.batch_size == (1,)
    check_env_specs(env, seed=0)


def test_check_env_specs_default_64_envs(bundled_record):
    env = DiscreteReservoirEnv(inflow=bundled_record, n_envs=64)
    check_env_specs(env, seed=0)


def test_check_env_specs_non_default(synthetic_record):
    env = make_synthetic_env(
        synthetic_record, n_envs=5, forecast=ForecastConfig(lead_days=3), n_release_levels=7,
        extra_features=["flood_zone_fraction", "day_fraction"], horizon_days=30,
    )
    check_env_specs(env, seed=0)


@pytest.mark.parametrize(
    "kwargs, size",
    [
        ({}, 13),
        ({"forecast": ForecastConfig(lead_days=5)}, 8),
        ({"forecast": ForecastConfig(lead_days=30)}, 33),
        ({"extra_features": ["flood_zone_fraction"]}, 14),
        ({"forecast": ForecastConfig(lead_days=2), "extra_features": ["flood_zone_fraction", "day_fraction"]}, 7),
    ],
)
def test_observation_size(synthetic_record, kwargs, size):
    env = make_synthetic_env(synthetic_record, n_envs=3, **kwargs)
    assert env.observation_size == size
    assert env.observation_spec["observation"].shape == (3, size)
    td = env.reset()
    assert td["observation"].shape == (3, size)
    assert td["observation"].dtype == torch.float32
    td = env.rand_step(td)
    assert td["next", "observation"].shape == (3, size)


def test_observation_names_follow_the_observation(synthetic_record):
    """One name per entry, in order: the storage fraction, the season and the forecast read where the names say."""
    config = EnvConfig(forecast=ForecastConfig(lead_days=2), extra_features=["day_fraction", "flood_zone_fraction"])
    names = observation_names(config)
    assert names == ["storage_fraction", "season_sin", "season_cos", "forecast_log_ratio_lead_1",
                     "forecast_log_ratio_lead_2", "day_fraction", "flood_zone_fraction"]
    env = make_synthetic_env(synthetic_record, n_envs=3, forecast=config.forecast, extra_features=config.extra_features)
    assert len(names) == env.observation_size
    td = env.reset()
    observation = td["observation"]
    capacity = env.config.reservoir.capacity_hm3
    torch.testing.assert_close(observation[:, names.index("storage_fraction")], td["storage_hm3"] / capacity)
    angle = 2 * math.pi * td["day_of_year"].double() / DAYS_PER_YEAR
    torch.testing.assert_close(observation[:, names.index("season_sin")].double(), torch.sin(angle), atol=1e-5, rtol=0)
    assert (observation[:, names.index("day_fraction")] == 0).all()  # day 0 of the episode
    linear = EnvConfig(forecast=ForecastConfig(lead_days=1, scale="linear"))
    assert observation_names(linear) == ["storage_fraction", "season_sin", "season_cos", "forecast_ratio_lead_1"]


def test_release_levels_cms_are_the_physics_levels():
    config = EnvConfig(n_release_levels=5)
    levels = release_levels_cms(config)
    assert levels.dtype == torch.float64
    assert levels.tolist() == [0.0, 100.0, 200.0, 300.0, 400.0]
    from reservoir_rl.env.physics import ReservoirPhysics

    physics_hm3 = ReservoirPhysics(config.reservoir, config.n_release_levels).release_levels_hm3(dtype=torch.float64)
    torch.testing.assert_close(levels * HM3_PER_CMS_DAY, physics_hm3)


@pytest.mark.parametrize("levels", [11, 5, 2])
def test_action_spec_levels(synthetic_record, levels):
    env = make_synthetic_env(synthetic_record, n_envs=4, n_release_levels=levels)
    assert env.n_actions == levels
    assert env.action_spec.space.n == levels
    assert env.action_spec.dtype == torch.int64
    assert env.action_spec.shape == (4,)
    samples = torch.stack([env.action_spec.rand() for _ in range(200)])
    assert samples.min() == 0 and samples.max() == levels - 1


def test_default_action_spec_has_11_levels(synthetic_record):
    env = DiscreteReservoirEnv(inflow=synthetic_record, water_years=synthetic_record.complete_water_years())
    assert env.action_spec.space.n == 11


# ------------------------------------------------------------------ reset


def test_reset_state(synthetic_record):
    env = make_synthetic_env(synthetic_record, n_envs=256, seed=3, initial_storage_fraction=(0.3, 0.6))
    td = env.reset()
    cap = env.config.reservoir.capacity_hm3
    assert (td["storage_hm3"] >= 0.3 * cap - 1e-3).all() and (td["storage_hm3"] <= 0.6 * cap + 1e-3).all()
    assert td["storage_hm3"].std() > 0.05 * cap  # drawn, not constant
    assert td["record_index"].unique().numel() > 100  # random start days
    for key in STEP_QUANTITIES:
        assert (td[key] == 0).all(), key
    for key in FAILURE_FLAGS + ("done", "terminated", "truncated"):
        assert not td[key].any(), key
    for name in COMPONENTS:
        assert (td["reward_components", name] == 0).all()
    assert (env.steps_in_episode == 0).all()


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("n_envs", [1, 64])
def test_same_seed_same_rollout(synthetic_record, n_envs):
    rollouts = []
    for _ in range(2):
        env = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=11, horizon_days=40)
        rollouts.append(env.rollout(100, seeded_policy(5), break_when_any_done=False))
    assert rollouts[0].batch_size == (n_envs, 100)
    assert_td_equal(rollouts[0], rollouts[1])

    # set_seed on an existing env reproduces too
    env = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=999, horizon_days=40)
    env.set_seed(11)
    assert_td_equal(rollouts[0], env.rollout(100, seeded_policy(5), break_when_any_done=False))

    # a fixed action sequence gives the same trajectory as well
    a = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=4).rollout(30, constant_policy(3))
    b = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=4).rollout(30, constant_policy(3))
    assert_td_equal(a, b)


def test_different_seed_different_rollout(synthetic_record):
    a = make_synthetic_env(synthetic_record, n_envs=8, seed=1).rollout(50, seeded_policy(5))
    b = make_synthetic_env(synthetic_record, n_envs=8, seed=2).rollout(50, seeded_policy(5))
    assert not torch.equal(a["storage_hm3"], b["storage_hm3"])
    assert not torch.equal(a["record_index"], b["record_index"])
    assert not torch.equal(a["observation"], b["observation"])


# ------------------------------------------------------------------ one long rollout: dynamics


def test_rollout_shapes_and_done(rollout_400):
    env, td = rollout_400
    assert td.batch_size == (64, 400)
    assert td["next", "reward"].shape == (64, 400, 1)
    done, term, trunc = (td["next", key].squeeze(-1) for key in ("done", "terminated", "truncated"))
    assert torch.equal(done, term | trunc)
    assert not (term & trunc).any() or True  # both may hold on the horizon day; done covers it
    assert trunc.any()  # every env that survives reaches the 365-day horizon inside 400 days


def test_mass_balance_over_rollout(rollout_400):
    env, td = rollout_400
    s = td["storage_hm3"].double()
    nxt = td["next"]
    residual = s + nxt["inflow_hm3"].double() - nxt["evaporation_hm3"].double() - nxt["release_hm3"].double()
    residual = residual - nxt["spill_hm3"].double() - nxt["storage_hm3"].double()
    scale = torch.maximum(s, nxt["inflow_hm3"].double())
    assert (residual.abs() / scale).max().item() <= 1e-5
    cfg = env.config.reservoir
    assert nxt["storage_hm3"].min() >= cfg.dead_storage_hm3 - 1e-3
    assert nxt["storage_hm3"].max() <= cfg.capacity_hm3 + 1e-3
    for key in ("release_hm3", "spill_hm3", "evaporation_hm3", "energy_mwh", "downstream_cms"):
        assert nxt[key].min() >= 0, key
    # the release never exceeds the chosen level's target
    target = td["action"].double() * cfg.release_capacity_cms * HM3_PER_CMS_DAY / (N_LEVELS - 1)
    assert (nxt["release_hm3"].double() - target).max() <= 1e-4
    # inflow is the record's inflow of the root day
    torch.testing.assert_close(nxt["inflow_hm3"], env.inflow_hm3_at(td["record_index"]))


def test_next_state_is_next_root_state(rollout_400):
    env, td = rollout_400
    done = td["next", "done"].squeeze(-1)[:, :-1]
    cont = ~done
    assert cont.sum() > 0.9 * cont.numel()
    assert torch.equal(td["next", "storage_hm3"][:, :-1][cont], td["storage_hm3"][:, 1:][cont])
    assert torch.equal(td["next", "record_index"][:, :-1][cont], td["record_index"][:, 1:][cont])
    assert torch.equal(td["next", "record_index"], td["record_index"] + 1)
    # after a done the next root is a fresh episode (new start day somewhere else)
    assert (td["next", "record_index"][:, :-1][done] != td["record_index"][:, 1:][done]).all()


def test_reward_is_weighted_sum_of_components(rollout_400):
    env, td = rollout_400
    comps = {name: td["next", "reward_components", name] for name in COMPONENTS}
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), weighted_reward(env.config.reward, comps))
    expected = sum(getattr(env.config.reward, name) * comps[name] for name in COMPONENTS)
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), expected)
    assert comps["hydropower"].min() >= 0 and comps["hydropower"].max() <= 1 + 1e-6
    for name in ("flood", "env_flow", "supply", "spill", "failure"):
        assert comps[name].max() <= 0, name
    for name in ("flood", "env_flow", "supply"):
        assert comps[name].min() >= -1 - 1e-6, name
    failure = td["next", "flood_failure"] | td["next", "drought_failure"]
    assert torch.equal(comps["failure"], -failure.float())


def test_reward_with_custom_weights(synthetic_record):
    weights = RewardConfig(hydropower=3.0, flood=0.2, env_flow=5.0, supply=0.0, spill=1.5, failure=7.0)
    env = make_synthetic_env(synthetic_record, n_envs=16, seed=2, reward=weights)
    td = env.rollout(60, seeded_policy(3), break_when_any_done=False)
    comps = {name: td["next", "reward_components", name] for name in COMPONENTS}
    expected = sum(getattr(weights, name) * comps[name] for name in COMPONENTS)
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), expected)


def test_observation_storage_fraction_and_season(rollout_400, synthetic_record):
    env, td = rollout_400
    cap = env.config.reservoir.capacity_hm3
    for prefix in ((), ("next",)):
        sub = td.get(prefix) if prefix else td
        obs = sub["observation"]
        torch.testing.assert_close(obs[..., 0], sub["storage_hm3"] / cap)
        doy = torch.as_tensor(synthetic_record.day_of_year)[sub["record_index"]]
        assert torch.equal(sub["day_of_year"], doy)
        angle = 2 * math.pi * doy.double() / DAYS_PER_YEAR
        torch.testing.assert_close(obs[..., 1].double(), torch.sin(angle), atol=1e-5, rtol=0)
        torch.testing.assert_close(obs[..., 2].double(), torch.cos(angle), atol=1e-5, rtol=0)


def test_extra_features(synthetic_record):
    env = make_synthetic_env(synthetic_record, n_envs=4, horizon_days=20,
                             extra_features=["flood_zone_fraction", "day_fraction"])
    td = env.rollout(25, seeded_policy(0), break_when_any_done=False)
    cfg = env.config.reservoir
    torch.testing.assert_close(td["observation"][..., -2], td["storage_hm3"] / cfg.flood_zone_hm3)
    # day_fraction = days already simulated in the episode / horizon: 0 at reset, (t+1)/H after day t
    expected = torch.cat([torch.arange(20), torch.arange(5)]).float() / 20
    torch.testing.assert_close(td["observation"][..., -1], expected.expand(4, 25))
    torch.testing.assert_close(td["next", "observation"][:, :19, -1], (torch.arange(1, 20).float() / 20).expand(4, 19))


def test_seasonal_flood_zone_in_feature_reward_and_flood_zone_days(synthetic_record):
    curve = [(0, 900.0), (120, 600.0), (240, 1300.0)]
    env = make_synthetic_env(synthetic_record, n_envs=16, horizon_days=365, extra_features=["flood_zone_fraction"],
                             reservoir=ReservoirConfig(flood_zone_hm3=curve))
    td = env.rollout(365, seeded_policy(3), break_when_any_done=False)
    zone = env.physics.flood_zone_hm3(td["day_of_year"])
    torch.testing.assert_close(td["observation"][..., -1], td["storage_hm3"] / zone)
    storage = td["next", "storage_hm3"]
    above = storage > zone
    assert above.any() and (~above).any() and not torch.equal(above, storage > 900.0)  # the season matters
    flood = td["next", "reward_components", "flood"]
    torch.testing.assert_close(flood, -((storage - zone) / (1500.0 - zone)).clamp(0, 1))
    metrics = episode_metrics(td, env.config)
    valid = first_done_mask(td["next", "done"])
    torch.testing.assert_close(metrics["flood_zone_days"], (above & valid).sum(dim=1).float())


# ------------------------------------------------------------------ forecast


def test_forecast_without_error_is_true_future_inflow(synthetic_record):
    lead = 10
    env = make_synthetic_env(synthetic_record, n_envs=16, seed=5,
                             forecast=ForecastConfig(lead_days=lead, error_sigma=0.0, scale="linear"), horizon_days=50)
    td = env.rollout(80, seeded_policy(2), break_when_any_done=False)
    mean_hm3 = synthetic_record.mean_inflow_cms * HM3_PER_CMS_DAY
    inflow = torch.as_tensor(synthetic_record.inflow_hm3())  # float64, independent of the env's table
    for sub in (td, td["next"]):
        forecast = sub["observation"][..., 3:3 + lead].double()
        index = sub["record_index"].unsqueeze(-1) + torch.arange(lead)
        torch.testing.assert_close(forecast, inflow[index] / mean_hm3, rtol=1e-5, atol=1e-7)
    # lead 1 is today: the inflow the step then reports
    torch.testing.assert_close(td["observation"][..., 3] * mean_hm3, td["next", "inflow_hm3"], rtol=1e-5, atol=1e-6)
    # lead k at t is lead k−1 at t+1 (no noise): the window slides by one day
    cont = ~td["next", "done"].squeeze(-1)
    torch.testing.assert_close(td["next", "observation"][..., 3:3 + lead - 1][cont],
                               td["observation"][..., 4:3 + lead][cont])


def test_forecast_error_spread_grows_with_lead(synthetic_record):
    lead, sigma, growth = 10, 0.1, 0.5
    env = make_synthetic_env(synthetic_record, n_envs=64, seed=9,
                             forecast=ForecastConfig(lead_days=lead, error_sigma=sigma, error_growth=growth, scale="linear"))
    td = env.rollout(100, constant_policy(4), break_when_any_done=False)
    mean_hm3 = synthetic_record.mean_inflow_cms * HM3_PER_CMS_DAY
    index = td["record_index"].unsqueeze(-1) + torch.arange(lead)
    truth = torch.as_tensor(synthetic_record.inflow_hm3())[index]
    log_error = torch.log(td["observation"][..., 3:3 + lead].double() * mean_hm3 / truth).reshape(-1, lead)
    std = log_error.std(dim=0)
    assert (std.diff() > 0).all(), std
    expected = sigma * torch.arange(1, lead + 1, dtype=torch.float64).pow(growth)
    torch.testing.assert_close(std, expected, rtol=0.08, atol=0)
    # mean-unbiased log-normal error: E[forecast / truth] = 1
    ratio = log_error.exp().mean(dim=0)
    torch.testing.assert_close(ratio, torch.ones(lead, dtype=torch.float64), rtol=0, atol=0.03)


# ------------------------------------------------------------------ horizon and failures


@pytest.mark.parametrize("terminate_on_failure", [True, False])
def test_horizon_truncates_not_terminates(synthetic_record, terminate_on_failure):
    env = make_synthetic_env(synthetic_record, n_envs=6, seed=1, horizon_days=5,
                             terminate_on_failure=terminate_on_failure)
    td = env.rollout(12, constant_policy(5), break_when_any_done=False)
    trunc = td["next", "truncated"].squeeze(-1)
    term = td["next", "terminated"].squeeze(-1)
    assert not td["next", "drought_failure"].any() and not td["next", "flood_failure"].any()
    expected = torch.zeros(12, dtype=torch.bool)
    expected[[4, 9]] = True
    assert torch.equal(trunc, expected.expand(6, 12))
    assert not term.any()
    assert torch.equal(td["next", "done"].squeeze(-1), trunc)
    # the rollout stops at exactly the horizon when asked to
    env.set_seed(1)
    short = env.rollout(50, constant_policy(5))
    assert short.batch_size == (6, 5)
    assert short["next", "truncated"][:, -1].all() and not short["next", "terminated"].any()


def _dry_record():
    return synthetic(n_years=4, mean_inflow_cms=0.5, seed=2)


def _wet_record():
    return synthetic(n_years=4, mean_inflow_cms=5000.0, seed=3)


def test_drought_terminates_when_configured():
    record = _dry_record()
    env = make_synthetic_env(record, n_envs=8, seed=0, initial_storage_fraction=(0.11, 0.12), horizon_days=100)
    td = env.rollout(10, constant_policy(N_LEVELS - 1))  # stops at the first done
    assert td.batch_size[1] < 10
    last = td[:, -1]["next"]
    assert last["drought_failure"].any()
    assert torch.equal(last["terminated"].squeeze(-1), last["drought_failure"] | last["flood_failure"])
    assert not last["truncated"].any()
    failed = last["drought_failure"]
    assert torch.allclose(last["storage_hm3"][failed], torch.tensor(150.0), atol=0.2)
    torch.testing.assert_close(last["reward_components", "failure"], -failed.float())
    # the failure penalty is in the reward
    assert (last["reward"].squeeze(-1)[failed] <= -env.config.reward.failure + 1.0).all()


def test_drought_does_not_terminate_when_disabled():
    record = _dry_record()
    env = make_synthetic_env(record, n_envs=8, seed=0, initial_storage_fraction=(0.11, 0.12), horizon_days=100,
                             terminate_on_failure=False)
    td = env.rollout(10, constant_policy(N_LEVELS - 1))
    assert td.batch_size == (8, 10)  # nothing done before the horizon
    assert td["next", "drought_failure"].any()
    assert not td["next", "terminated"].any() and not td["next", "done"].any()
    # still penalised
    failed = td["next", "drought_failure"]
    torch.testing.assert_close(td["next", "reward_components", "failure"], -failed.float())


@pytest.mark.parametrize("terminate_on_failure", [True, False])
def test_flood_failure(terminate_on_failure):
    record = _wet_record()
    env = make_synthetic_env(record, n_envs=8, seed=0, initial_storage_fraction=(1.0, 1.0), horizon_days=200,
                             terminate_on_failure=terminate_on_failure)
    td = env.rollout(60, constant_policy(0), break_when_any_done=False)
    flood = td["next", "flood_failure"]
    assert flood.any()
    spillway = env.config.reservoir.spillway_capacity_cms * HM3_PER_CMS_DAY
    assert torch.equal(flood, td["next", "spill_hm3"] > spillway)
    term = td["next", "terminated"].squeeze(-1)
    if terminate_on_failure:
        assert torch.equal(term, flood | td["next", "drought_failure"])
    else:
        assert not term.any()


# ------------------------------------------------------------------ partial reset


def test_partial_reset_only_resets_masked_envs(synthetic_record):
    n = 8
    env = make_synthetic_env(synthetic_record, n_envs=n, seed=3)
    twin = make_synthetic_env(synthetic_record, n_envs=n, seed=3)
    td, td_twin = env.reset(), twin.reset()
    actions = [torch.randint(0, N_LEVELS, (n,), generator=torch.Generator().manual_seed(k)) for k in range(8)]
    for a in actions[:3]:
        td = step_mdp(env.step(td.set("action", a)))
        td_twin = step_mdp(twin.step(td_twin.set("action", a)))
    before = env.get_state()
    mask = torch.tensor([True, False, True, False, False, False, False, True])
    td_reset = env.reset(td.clone().set("_reset", mask.unsqueeze(-1)))
    after = env.get_state()
    keep = ~mask
    # untouched envs keep their state, both in the env and in the returned tensordict
    assert torch.equal(after["storage_hm3"][keep], before["storage_hm3"][keep])
    assert torch.equal(after["record_index"][keep], before["record_index"][keep])
    assert torch.equal(after["steps"][keep], before["steps"][keep])
    assert torch.equal(td_reset["storage_hm3"][keep], td["storage_hm3"][keep])
    assert torch.equal(td_reset["record_index"][keep], td["record_index"][keep])
    # masked envs start a new episode
    assert (after["steps"][mask] == 0).all() and (before["steps"][mask] == 3).all()
    assert (after["record_index"][mask] != before["record_index"][mask]).all()
    assert torch.equal(td_reset["storage_hm3"][mask], after["storage_hm3"][mask])
    assert torch.equal(td_reset["record_index"][mask], after["record_index"][mask])
    assert not td_reset["done"].any()
    # untouched envs continue exactly like a twin that was never reset
    td = td_reset
    for a in actions[3:]:
        td = env.step(td.set("action", a))
        td_twin = twin.step(td_twin.set("action", a))
        for key in ("storage_hm3", "record_index", "release_hm3", "spill_hm3", "reward"):
            assert torch.equal(td["next", key][keep], td_twin["next", key][keep]), key
        td, td_twin = step_mdp(td), step_mdp(td_twin)
    assert torch.equal(env.steps_in_episode, torch.where(mask, 5, 8))


# ------------------------------------------------------------------ training split


def _water_year_of(record, index: torch.Tensor) -> np.ndarray:
    return record.water_years[index.numpy()]


def test_training_env_never_touches_heldout_years(bundled_record):
    config = Config()
    train_years, heldout_years = split_water_years(bundled_record, config.inflow.heldout_water_years)
    assert len(heldout_years) == 20 and set(train_years).isdisjoint(heldout_years)
    env = make_env(config, split="train", n_envs=64, seed=0, inflow=bundled_record)
    lead = config.env.forecast.lead_days
    # every possible episode window (start … start + horizon + lead − 1) lies in training years
    starts = env._start_indices
    window_end = starts + config.env.horizon_days + lead - 1
    for index in (starts, window_end):
        assert np.isin(_water_year_of(bundled_record, index), train_years).all()
    # and a rollout crossing an episode boundary only visits training days, forecasts included
    td = env.rollout(400, seeded_policy(0), break_when_any_done=False)
    for sub in (td, td["next"]):
        visited = (sub["record_index"].unsqueeze(-1) + torch.arange(lead)).reshape(-1)
        years = _water_year_of(bundled_record, visited)
        assert not np.isin(years, heldout_years).any()
    # the held-out env is the mirror image
    heldout = make_env(config, split="heldout", n_envs=4, seed=0, inflow=bundled_record)
    assert np.isin(_water_year_of(bundled_record, heldout._start_indices), heldout_years).all()
    with pytest.raises(ConfigError, match="split"):
        make_env(config, split="test", inflow=bundled_record)


def test_validation_split_defaults_to_training_years_and_can_be_carved_out(bundled_record):
    train_years, heldout_years = split_water_years(bundled_record, 20)
    default = make_env(Config(), split="validation", n_envs=2, seed=0, inflow=bundled_record)
    assert default.water_years == train_years  # 0: the in-training evaluation ranks on training years
    config = Config.model_validate({"inflow": {"validation_water_years": 5}})
    fit = make_env(config, split="train", n_envs=2, seed=0, inflow=bundled_record)
    validation = make_env(config, split="validation", n_envs=2, seed=0, inflow=bundled_record)
    assert validation.water_years == train_years[-5:]
    assert fit.water_years == train_years[:-5]
    assert set(validation.water_years).isdisjoint(heldout_years)
    everything = make_env(config, split="all", n_envs=2, seed=0, inflow=bundled_record)
    assert everything.water_years == sorted(train_years + heldout_years)


# ------------------------------------------------------------------ inflow scaling (training episodes)


def test_inflow_scale_multiplies_inflow_and_forecast_and_keeps_mass_balance(synthetic_record):
    config = EnvConfig(forecast={"error_sigma": 1e-9, "scale": "linear"})  # near-exact forecast: compare with the record
    env = DiscreteReservoirEnv(config, synthetic_record, n_envs=256, seed=3, inflow_scale_range=(0.5, 2.0),
                               water_years=synthetic_record.complete_water_years())
    td = env.reset()
    scale = env.inflow_scale.clone()
    assert scale.min() >= 0.5 and scale.max() <= 2.0 and scale.std() > 0.2
    # log-uniform: log-scale is uniform on [log 0.5, log 2], median 1
    assert abs(float(scale.log().mean())) < 0.15 and abs(float(scale.median()) - 1.0) < 0.15
    true = env.inflow_trace_hm3(td["record_index"], config.forecast.lead_days)
    forecast = td["observation"][:, 3:] * env.mean_inflow_hm3
    torch.testing.assert_close(forecast, true * scale.unsqueeze(-1), rtol=1e-4, atol=1e-4)
    td["action"] = torch.full((256,), 5, dtype=torch.int64)
    out = env.step(td)["next"]
    torch.testing.assert_close(out["inflow_hm3"], env.inflow_hm3_at(td["record_index"]) * scale)
    balance = td["storage_hm3"] + out["inflow_hm3"] - out["evaporation_hm3"] - out["release_hm3"] - out["spill_hm3"]
    torch.testing.assert_close(out["storage_hm3"], balance, rtol=0, atol=1e-3)


def test_inflow_scale_is_redrawn_only_for_reset_envs_and_survives_state_round_trip(synthetic_record):
    env = DiscreteReservoirEnv(None, synthetic_record, n_envs=8, seed=1, inflow_scale_range=(0.7, 1.4),
                               water_years=synthetic_record.complete_water_years())
    env.reset()
    before = env.inflow_scale.clone()
    mask = torch.tensor([True, False] * 4).unsqueeze(-1)
    env.reset(TensorDict({"_reset": mask}, batch_size=[8]))
    after = env.inflow_scale
    assert torch.equal(after[1::2], before[1::2]) and not torch.equal(after[0::2], before[0::2])
    twin = DiscreteReservoirEnv(None, synthetic_record, n_envs=8, seed=99, inflow_scale_range=(0.7, 1.4),
                                water_years=synthetic_record.complete_water_years())
    twin.set_state(env.get_state())
    assert torch.equal(twin.inflow_scale, env.inflow_scale)


def test_unscaled_env_draws_the_same_episodes_as_before_scaling_existed(synthetic_record):
    years = synthetic_record.complete_water_years()
    plain = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=16, seed=5)
    unit = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=16, seed=5, inflow_scale_range=(1.0, 1.0))
    wide = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=16, seed=5, inflow_scale_range=(0.9, 1.1))
    a, b, c = plain.reset(), unit.reset(), wide.reset()
    assert torch.equal(a["record_index"], b["record_index"]) and torch.equal(a["observation"], b["observation"])
    assert torch.equal(a["record_index"], c["record_index"])  # same starts; the factor is drawn after them
    assert torch.equal(plain.inflow_scale, torch.ones(16))


def test_make_env_scales_only_training_collectors(bundled_record):
    config = Config.model_validate({"inflow": {"train_inflow_scale": [0.5, 2.0]}})
    assert make_env(config, "train", n_envs=2, inflow=bundled_record, scale_inflow=True).inflow_scale_range == (0.5, 2.0)
    for split in ("train", "validation", "heldout"):
        assert make_env(config, split, n_envs=2, inflow=bundled_record).inflow_scale_range == (1.0, 1.0)
    with pytest.raises(ValueError, match=r"inflow_scale_range must be \[low, high\] with 0 < low <= high"):
        DiscreteReservoirEnv(None, bundled_record, n_envs=1, inflow_scale_range=(2.0, 1.0))


# ------------------------------------------------------------------ flood scaling (training episodes)


def test_flood_scale_grows_only_the_inflow_above_the_threshold_in_inflow_and_forecast(synthetic_record):
    config = EnvConfig(forecast={"error_sigma": 1e-9, "scale": "linear"})  # near-exact forecast
    threshold_cms = 200.0
    env = DiscreteReservoirEnv(config, synthetic_record, n_envs=256, seed=3, flood_scale_range=(1.0, 3.0),
                               flood_threshold_cms=threshold_cms, water_years=synthetic_record.complete_water_years())
    td = env.reset()
    k = env.flood_scale.clone()
    assert k.min() >= 1.0 and k.max() <= 3.0 and k.std() > 0.2
    assert abs(float(k.log().mean()) - 0.5 * math.log(3.0)) < 0.1  # log-uniform on [0, log 3]
    threshold_hm3 = threshold_cms * HM3_PER_CMS_DAY
    true = env.inflow_trace_hm3(td["record_index"], config.forecast.lead_days)
    expected = torch.where(true > threshold_hm3, threshold_hm3 + k.unsqueeze(-1) * (true - threshold_hm3), true)
    assert (true > threshold_hm3).any() and (true <= threshold_hm3).any()  # both sides of the threshold are met
    forecast = td["observation"][:, 3:] * env.mean_inflow_hm3
    torch.testing.assert_close(forecast, expected, rtol=1e-4, atol=1e-4)
    td["action"] = torch.full((256,), 5, dtype=torch.int64)
    out = env.step(td)["next"]
    torch.testing.assert_close(out["inflow_hm3"], expected[:, 0])
    balance = td["storage_hm3"] + out["inflow_hm3"] - out["evaporation_hm3"] - out["release_hm3"] - out["spill_hm3"]
    torch.testing.assert_close(out["storage_hm3"], balance, rtol=0, atol=1e-3)


def test_flood_threshold_defaults_to_the_release_capacity(synthetic_record):
    config = EnvConfig(reservoir={"release_capacity_cms": 321.0})
    env = DiscreteReservoirEnv(config, synthetic_record, n_envs=2, flood_scale_range=(1.0, 2.0),
                               water_years=synthetic_record.complete_water_years())
    assert env.flood_threshold_hm3 == pytest.approx(321.0 * HM3_PER_CMS_DAY)


def test_flood_scale_is_redrawn_only_for_reset_envs_and_survives_state_round_trip(synthetic_record):
    years = synthetic_record.complete_water_years()
    env = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=8, seed=1, flood_scale_range=(1.0, 2.0))
    env.reset()
    before = env.flood_scale.clone()
    env.reset(TensorDict({"_reset": torch.tensor([True, False] * 4).unsqueeze(-1)}, batch_size=[8]))
    after = env.flood_scale
    assert torch.equal(after[1::2], before[1::2]) and not torch.equal(after[0::2], before[0::2])
    twin = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=8, seed=99, flood_scale_range=(1.0, 2.0))
    twin.set_state(env.get_state())
    assert torch.equal(twin.flood_scale, env.flood_scale)
    old_state = {key: value for key, value in env.get_state().items() if key != "flood_scale"}
    twin.set_state(old_state)  # a checkpoint written before flood scaling existed: floods as recorded
    assert torch.equal(twin.flood_scale, torch.ones(8))


def test_flood_scaling_off_keeps_the_random_stream(synthetic_record):
    years = synthetic_record.complete_water_years()
    plain = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=16, seed=5)
    unit = DiscreteReservoirEnv(None, synthetic_record, years, n_envs=16, seed=5, flood_scale_range=(1.0, 1.0))
    def release_half(td):
        return td.set("action", torch.full((16,), 5, dtype=torch.int64))

    a = plain.rollout(30, release_half, break_when_any_done=False)
    b = unit.rollout(30, release_half, break_when_any_done=False)
    assert torch.equal(a["next", "observation"], b["next", "observation"])
    assert torch.equal(unit.flood_scale, torch.ones(16))


def test_make_env_scales_floods_only_for_training_collectors(bundled_record):
    config = Config.model_validate({"inflow": {"train_flood_scale": [1.0, 2.0], "flood_threshold_cms": 500.0}})
    train = make_env(config, "train", n_envs=2, inflow=bundled_record, scale_inflow=True)
    assert train.flood_scale_range == (1.0, 2.0)
    assert train.flood_threshold_hm3 == pytest.approx(500.0 * HM3_PER_CMS_DAY)
    for split in ("train", "validation", "heldout"):
        assert make_env(config, split, n_envs=2, inflow=bundled_record).flood_scale_range == (1.0, 1.0)
    with pytest.raises(ValueError, match=r"flood_scale_range must be \[low, high\] with 1 <= low <= high"):
        DiscreteReservoirEnv(None, bundled_record, n_envs=1, flood_scale_range=(0.8, 1.2))
    with pytest.raises(ValueError, match="flood_threshold_cms must be > 0"):
        DiscreteReservoirEnv(None, bundled_record, n_envs=1, flood_threshold_cms=0.0)


def test_make_env_default_loads_bundled_record():
    env = make_env(Config(), split="train", n_envs=2, seed=0)
    assert "Montague" in env.inflow.name
    years = split_water_years(env.inflow, 20)[0]
    assert env.water_years == years


# ------------------------------------------------------------------ state round trip


@pytest.mark.parametrize("n_envs", [1, 64])
def test_get_state_set_state_round_trip(synthetic_record, n_envs):
    kwargs = dict(horizon_days=25)  # the continuation crosses episode boundaries (resets draw from the generator)
    env = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=5, **kwargs)
    head = env.rollout(30, seeded_policy(1), break_when_any_done=False)
    td_now = step_mdp(head[..., -1])
    # a partial reset of finished envs would be pending: rollout already applied it, so td_now is live
    state = env.get_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # plain tensors: checkpointable
    buffer.seek(0)
    state_loaded = torch.load(buffer)
    reference = env.rollout(60, seeded_policy(2), auto_reset=False, tensordict=td_now.clone(),
                            break_when_any_done=False)

    other = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=12345, **kwargs)
    other.reset()
    other.rollout(7, seeded_policy(9), break_when_any_done=False)  # unrelated history
    other.set_state(state_loaded)
    continued = other.rollout(60, seeded_policy(2), auto_reset=False, tensordict=td_now.clone(),
                              break_when_any_done=False)
    assert reference["next", "done"].any()
    assert_td_equal(reference, continued)


def test_get_state_is_a_copy_and_set_state_checks_size(synthetic_record):
    env = make_synthetic_env(synthetic_record, n_envs=4, seed=0)
    env.reset()
    state = env.get_state()
    saved = {k: v.clone() for k, v in state.items()}
    env.rollout(5, seeded_policy(0))
    for key in ("storage_hm3", "record_index", "steps"):
        assert torch.equal(state[key], saved[key])
    with pytest.raises(ConfigError, match="4"):
        make_synthetic_env(synthetic_record, n_envs=3, seed=0).set_state(state)


# ------------------------------------------------------------------ batch sizes


@pytest.mark.parametrize("n_envs", [1, 64])
def test_works_with_n_envs(synthetic_record, n_envs):
    env = make_synthetic_env(synthetic_record, n_envs=n_envs, seed=0, horizon_days=30)
    td = env.rollout(40, seeded_policy(0), break_when_any_done=False)
    assert td.batch_size == (n_envs, 40)
    assert td["observation"].shape == (n_envs, 40, 13)
    assert td["next", "truncated"].squeeze(-1)[:, 29].all()
    # each env in the batch is independent of the others: env k of a batch equals a lone env in its state
    state = env.get_state()
    k = n_envs - 1
    single = make_synthetic_env(synthetic_record, n_envs=1, seed=0, horizon_days=30)
    single.set_state({"storage_hm3": state["storage_hm3"][k:k + 1], "record_index": state["record_index"][k:k + 1],
                      "steps": state["steps"][k:k + 1], "generator": single.get_state()["generator"]})
    root = step_mdp(td[..., -1])[k:k + 1]
    action = torch.tensor([7])
    out_single = single.step(root.clone().set("action", action))
    out_batch = env.step(step_mdp(td[..., -1]).set("action", torch.full((n_envs,), 7)))
    for key in ("storage_hm3", "release_hm3", "spill_hm3", "energy_mwh", "reward"):
        assert torch.equal(out_single["next", key], out_batch["next", key][k:k + 1]), key


def test_log_forecast_scale_is_log1p_of_the_linear_features(synthetic_record):
    years = synthetic_record.complete_water_years()
    assert EnvConfig().forecast.scale == "log"  # the default
    linear = DiscreteReservoirEnv(EnvConfig(forecast={"scale": "linear"}), synthetic_record, years, n_envs=16, seed=2)
    logged = DiscreteReservoirEnv(EnvConfig(), synthetic_record, years, n_envs=16, seed=2)
    a, b = linear.reset(), logged.reset()
    lead = linear.config.forecast.lead_days
    torch.testing.assert_close(b["observation"][:, 3:3 + lead], torch.log1p(a["observation"][:, 3:3 + lead]))
    torch.testing.assert_close(b["observation"][:, :3], a["observation"][:, :3])
    # a flood 30 times the mean inflow stays a small number the network can have seen
    assert math.log1p(30.0) < 3.5
    action = torch.full((16,), 3, dtype=torch.int64)
    a["action"], b["action"] = action, action.clone()
    torch.testing.assert_close(logged.step(b)["next", "observation"][:, 3:3 + lead],
                               torch.log1p(linear.step(a)["next", "observation"][:, 3:3 + lead]))
