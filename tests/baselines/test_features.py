"""Tests of reservoir_rl.baselines.features: ``env.extra_features: [sdp_release_fraction]`` is the release the
``sdp`` baseline would choose today with the observed lead-1 forecast as today's inflow, over the release
capacity; it reads the observed forecast (never the true inflow) and nothing of validation or held-out years;
every env of a config that asks for it gets it, and an env that cannot get it is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reservoir_rl.baselines.features import SDPReleaseFeature, build_env, release_feature
from reservoir_rl.baselines.sdp import StochasticDPPolicy, clear_sdp_cache, greedy_action_values, sdp_solution
from reservoir_rl.config import Config, config_from_dict
from reservoir_rl.env import make_env, observation_names, release_levels_cms
from reservoir_rl.env.blocks import make_blocked_env
from reservoir_rl.env.inflow import InflowRecord, split_validation, split_water_years
from reservoir_rl.env.reservoir_env import decode_forecast_hm3
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import ConfigError
from reservoir_rl.runs.resources import observation_size

FEATURE = "sdp_release_fraction"


def feature_config(**env: object) -> Config:
    """A small synthetic river (8 water years: 2 held out, 2 validation), 60-day episodes, a coarse SDP grid."""
    return config_from_dict({
        "inflow": {"source": "synthetic", "heldout_water_years": 2, "validation_water_years": 2,
                   "synthetic": {"n_years": 8, "seed": 5}},
        "env": {"horizon_days": 60, "initial_storage_fraction": [0.1, 1.0], "extra_features": [FEATURE], **env},
        "baselines": {"sdp": {"storage_levels": 60}},
    }, source="test")


def step_randomly(env, td, generator: torch.Generator):
    td["action"] = torch.randint(0, env.n_actions, (env.n_envs,), generator=generator)
    return env.step(td)["next"]


def test_with_a_perfect_forecast_the_feature_is_the_sdp_baselines_release_fraction():
    config = feature_config(forecast={"error_sigma": 0.0})  # lead 1 = today's true inflow, exactly
    env = build_env(config, "train", n_envs=16, seed=3)
    policy = StochasticDPPolicy(env, config)
    fractions = release_levels_cms(config.env) / config.env.reservoir.release_capacity_cms
    td, generator, seen = env.reset(), torch.Generator().manual_seed(0), set()
    for _ in range(40):
        action = policy(td.clone()).get("action")
        feature = td["observation"][:, -1]
        assert torch.equal(feature, fractions[action].to(torch.float32)), (feature, action)
        seen.update(action.tolist())
        td = step_randomly(env, td, generator)
    assert len(seen) >= 3  # a feature that says something: several release levels over these days
    assert float(td["observation"][:, -1].min()) >= 0.0 and float(td["observation"][:, -1].max()) <= 1.0


class Recording:
    """A release feature that records what the env hands it."""

    def __init__(self, feature: SDPReleaseFeature) -> None:
        self.feature, self.calls = feature, []

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls.append([a.clone() for a in args])
        return self.feature(*args)


def test_the_feature_reads_the_observed_forecast_not_todays_true_inflow():
    config = feature_config(forecast={"error_sigma": 0.5})  # a poor forecast: its class is often not today's
    record = load_inflow(config.inflow)
    recording = Recording(release_feature(config, record))
    env = make_env(config, "train", n_envs=32, seed=4, inflow=record, release_feature=recording)
    policy = StochasticDPPolicy(env, config)
    td, generator = env.reset(), torch.Generator().manual_seed(1)
    fractions = release_levels_cms(config.env) / config.env.reservoir.release_capacity_cms
    differs = 0
    for _ in range(30):
        day, tomorrow, storage, forecast = recording.calls[-1]
        assert torch.equal(day, td["day_of_year"]) and torch.equal(storage, td["storage_hm3"])
        # the value handed over is the forecast in the observation (decoded: up to float32 rounding) …
        torch.testing.assert_close(forecast.double(), decode_forecast_hm3(env, td["observation"])[:, 0],
                                   rtol=1e-5, atol=1e-9)
        true_inflow = env.inflow_hm3_at(td["record_index"])
        assert not torch.equal(forecast, true_inflow)
        # … and the feature is the SDP's choice with it as today's inflow: a function of these four only
        levels = greedy_action_values(recording.feature.solution, config.env, day, tomorrow, storage,
                                      forecast).argmax(-1)
        assert torch.equal(td["observation"][:, -1], fractions[levels].to(torch.float32))
        assert torch.equal(recording.feature(day, tomorrow, storage, forecast), td["observation"][:, -1])
        # the baseline acting on the true inflow often chooses otherwise: the feature follows the forecast
        differs += int((policy(td.clone()).get("action") != levels).sum())
        td = step_randomly(env, td, generator)
    assert differs > 0


def test_the_feature_moves_with_the_forecasts_inflow_class():
    """Same day and storage, a forecast in the driest or the wettest inflow class: the SDP's release differs
    on many states (it is the class of the forecast that the feature reads)."""
    config = feature_config()
    feature = release_feature(config, load_inflow(config.inflow))
    classes = feature.solution.classes
    day = torch.arange(0, 365, 5).repeat_interleave(5)
    storage = torch.tensor([0.3, 0.5, 0.7, 0.85, 0.95]).repeat(len(day) // 5) * config.env.reservoir.capacity_hm3
    period = classes.period_of_day[day]
    dry = feature(day, day + 1, storage, classes.inflow_hm3[period, 0].to(torch.float32))
    wet = feature(day, day + 1, storage, classes.inflow_hm3[period, -1].to(torch.float32))
    assert (wet != dry).float().mean() > 0.2


def with_outer_years_times_ten(record: InflowRecord, config: Config) -> InflowRecord:
    """``record`` with every day of its validation and held-out water years ×10."""
    train_years, heldout = split_water_years(record, config.inflow.heldout_water_years)
    _, validation = split_validation(record, train_years, config.inflow.validation_water_years)
    outer = np.isin(record.water_years, np.asarray([*validation, *heldout]))
    assert outer.any() and not outer.all()
    return InflowRecord(record.name, record.dates, np.where(outer, 10.0 * record.inflow_cms, record.inflow_cms))


def test_validation_and_heldout_years_times_ten_leave_the_training_episodes_unchanged():
    config = feature_config()
    record = load_inflow(config.inflow)
    wetter = with_outer_years_times_ten(record, config)
    envs = []
    for r in (record, wetter):
        clear_sdp_cache()  # solved afresh on each record (the cache's key holds the training days only)
        envs.append(build_env(config, "train", n_envs=16, seed=9, inflow=r, scale_inflow=True))
    solutions = [env.release_feature.solution for env in envs]
    assert solutions[0] is not solutions[1] and torch.equal(solutions[0].values, solutions[1].values)
    tds = [env.reset() for env in envs]
    generators = [torch.Generator().manual_seed(2) for _ in envs]
    for _ in range(70):  # past the first episodes' end: new starts drawn too
        assert torch.equal(tds[0]["observation"], tds[1]["observation"])
        tds = [step_randomly(env, td, g) for env, td, g in zip(envs, tds, generators)]
    # the held-out env does see the wetter years (the check above is not vacuous)
    heldout = [build_env(config, "heldout", n_envs=4, seed=9, inflow=r) for r in (record, wetter)]
    assert not torch.equal(heldout[0].reset()["observation"], heldout[1].reset()["observation"])


def test_the_observation_grows_by_one_named_feature():
    config = feature_config()
    plain = config.model_copy(update={"env": config.env.model_copy(update={"extra_features": []})})
    env, plain_env = build_env(config, "train", n_envs=2), build_env(plain, "train", n_envs=2)
    assert env.observation_size == plain_env.observation_size + 1 == observation_size(config)
    assert observation_names(config.env) == [*observation_names(plain.env), FEATURE]
    assert env.reset()["observation"].shape == (2, plain_env.observation_size + 1)
    assert plain_env.release_feature is None and release_feature(plain, load_inflow(plain.inflow)) is None


def test_one_solution_for_the_feature_the_baseline_and_every_split():
    config = feature_config()
    envs = [build_env(config, split, n_envs=2) for split in ("train", "validation", "heldout")]
    solution = sdp_solution(envs[0], config)
    assert all(env.release_feature.solution is solution for env in envs)


def test_an_env_without_the_feature_is_refused_in_one_line():
    config = feature_config()
    with pytest.raises(ConfigError) as error:
        make_env(config, "train", n_envs=2)
    assert "\n" not in str(error.value) and FEATURE in str(error.value) and "release_feature" in str(error.value)
    with pytest.raises(ConfigError):
        make_blocked_env(config, [1, 2])


def test_the_vectorized_seeds_blocks_observe_the_feature_of_their_own_envs():
    config = feature_config()
    record = load_inflow(config.inflow)
    feature = release_feature(config, record)
    blocked = make_blocked_env(config, [5, 6], inflow=record, block_size=4, release_feature=feature)
    single = make_env(config, "train", n_envs=4, seed=6, inflow=record, release_feature=feature, scale_inflow=True)
    td, own = blocked.reset(), single.reset()
    for _ in range(20):
        # (the physics agree to float32 rounding across batch sizes, not always bitwise: tests/env/test_blocks.py)
        torch.testing.assert_close(td["observation"][4:], own["observation"], rtol=1e-5, atol=1e-6)
        action = torch.randint(0, config.env.n_release_levels, (4,), generator=torch.Generator().manual_seed(3))
        td["action"] = torch.cat([action, action])
        own["action"] = action
        td, own = blocked.step(td)["next"], single.step(own)["next"]


def test_the_python_api_and_the_gym_adapter_get_the_feature():
    import reservoir_rl as rr

    config = feature_config()
    env = rr.make_env(config, "heldout", n_envs=3, seed=1)
    assert env.release_feature is not None and env.observation_size == observation_size(config)
    gym_adapter = pytest.importorskip("reservoir_rl.env.gym_adapter")
    with pytest.raises(ConfigError):
        gym_adapter.GymReservoirEnv(config)
    gym_env = gym_adapter.GymReservoirEnv(config, seed=2,
                                          release_feature=release_feature(config, load_inflow(config.inflow)))
    observation, _ = gym_env.reset()
    assert observation.shape == (observation_size(config),) and 0.0 <= observation[-1] <= 1.0
