"""Tests of reservoir_rl.env.safety: the release guard that sees only the observed forecast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from reservoir_rl.baselines.rollout import run_episodes
from reservoir_rl.config import EnvConfig, ReservoirConfig
from reservoir_rl.env.inflow import InflowRecord, synthetic_flashy
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.env.safety import (
    GUARD_OVERRIDE_KEY,
    GuardedPolicy,
    ReleaseGuard,
    flood_safe_storage_hm3,
    forecast_quantile_factors,
    guarded,
)
from reservoir_rl.units import HM3_PER_CMS_DAY

SCALE = 3.0 / 169.0  # configs/base.yaml's design scaled to a river of mean flow 3 m³/s


def flashy_config(**overrides) -> EnvConfig:
    """base.yaml's reservoir scaled to the flashy river's mean flow, with outlets (40 m³/s) that can empty
    the lake within the forecast window: storms large against storage, but visible in time."""
    reservoir = dict(capacity_hm3=1500 * SCALE, dead_storage_hm3=150 * SCALE, min_operating_hm3=300 * SCALE,
                     flood_zone_hm3=1275 * SCALE, release_capacity_cms=40.0, turbine_capacity_cms=250 * SCALE,
                     spillway_capacity_cms=2500 * SCALE, installed_capacity_mw=130 * SCALE,
                     area_at_capacity_km2=60 * SCALE, env_flow_cms=30 * SCALE)
    return EnvConfig(reservoir=reservoir, **{"horizon_days": 365, **overrides})


@pytest.fixture(scope="module")
def flashy_record() -> InflowRecord:
    return synthetic_flashy(n_years=12, seed=0, storm_peak_ratio=20.0)


def constant(level: int):
    def policy(td):
        td.set("action", torch.full(td.batch_size, level, dtype=torch.int64))
        return td

    return policy


def failures(trajectory) -> tuple[int, int]:
    """Episodes with an overtopping, with a dead-storage failure."""
    return (int(trajectory.get(("next", "flood_failure")).any(-1).sum()),
            int(trajectory.get(("next", "drought_failure")).any(-1).sum()))


def test_flashy_river_is_flashy(flashy_record):
    flow = flashy_record.inflow_cms
    assert flow.mean() == pytest.approx(3.0)
    assert (flow > 30 * flow.mean()).sum() >= 5  # daily peaks tens of times the mean
    assert synthetic_flashy(n_years=12, seed=0, storm_peak_ratio=20.0).inflow_cms.tolist() == flow.tolist()


def test_guard_prevents_the_overtopping_of_a_policy_that_always_releases_the_minimum(flashy_record):
    env = DiscreteReservoirEnv(flashy_config(), flashy_record, flashy_record.complete_water_years(), n_envs=32, seed=0)
    env.set_seed(5)
    floods, droughts = failures(run_episodes(env, constant(0)))
    assert floods >= 10 and droughts == 0  # the full lake overtops on the storms
    env.set_seed(5)
    trajectory = run_episodes(env, guarded(constant(0), env))
    assert failures(trajectory) == (0, 0)
    assert trajectory.get(GUARD_OVERRIDE_KEY).any()
    # the executed action is the one in the trajectory: the physics released what "action" says
    executed = trajectory.get("action")
    assert (executed > 0).any() and torch.equal(trajectory.get(GUARD_OVERRIDE_KEY), executed != 0)


def test_a_flood_the_forecast_hides_is_not_prevented():
    """The guard reads the observation's forecast, never the record: a flood the forecast does not show
    (here: a forecast error that hides it entirely) overtops the dam under the guard."""
    config = flashy_config(forecast={"lead_days": 5, "error_sigma": 0.0, "scale": "linear"}, horizon_days=30)
    days = 800
    flow = np.full(days, 1.0)
    flow[400] = 60.0  # a full lake releasing nothing spills more than the spillway passes; releasing all, it does not
    record = InflowRecord("one flood", np.datetime64("1990-10-01") + np.arange(days), flow)
    env = DiscreteReservoirEnv(config, record, [1991], n_envs=1, seed=0)
    guard = ReleaseGuard.for_env(env)
    env.reset()
    env._record_index = torch.tensor([400])  # the flood is today's inflow
    env._storage_hm3 = torch.tensor([config.reservoir.capacity_hm3 * 0.99])
    td = env._observe()
    seen = TensorDict({k: v for k, v in td.items()}, batch_size=[1])
    hidden = seen.clone()
    hidden["observation"][:, 3:] = 1.0 / record.mean_inflow_cms  # a forecast of 1 m³/s on every lead
    action = torch.zeros(1, dtype=torch.int64)
    shown, _ = guard.apply(action, seen["storage_hm3"], seen["observation"], seen["day_of_year"])
    assert int(shown) > 0  # the forecast shows the flood: the guard releases
    executed, override = guard.apply(action, hidden["storage_hm3"], hidden["observation"], hidden["day_of_year"])
    assert int(executed) == 0 and not bool(override)
    # the guarded policy reads only observation, storage and day of year: no record position needed
    policy = GuardedPolicy(constant(0), guard)
    out = policy(hidden.exclude("record_index"))
    assert int(out["action"]) == 0
    hidden.set("action", executed)
    assert bool(env.step(hidden)["next", "flood_failure"])  # the hidden forecast's decision overtops
    # the same days under the guard with the forecast the env shows: no failure
    env._record_index = torch.tensor([398])
    env._storage_hm3 = torch.tensor([config.reservoir.capacity_hm3 * 0.99])
    td = TensorDict(env._observe(), batch_size=[1])
    for _ in range(3):
        td = env.step(guarded(constant(0), env)(td)).get("next")
        assert not bool(td["flood_failure"])


def test_never_below_the_environmental_flow_while_water_is_available(flashy_record):
    env = DiscreteReservoirEnv(flashy_config(), flashy_record, flashy_record.complete_water_years(), n_envs=256, seed=3)
    guard = ReleaseGuard.for_env(env)
    env_level = guard.env_flow_level
    step_cms = env.config.reservoir.release_capacity_cms / (env.n_actions - 1)
    assert (env_level - 1) * step_cms < env.config.reservoir.env_flow_cms <= env_level * step_cms
    generator = torch.Generator().manual_seed(0)
    checked = 0
    td = env.reset()
    for day in range(40):
        capacity = env.config.reservoir.capacity_hm3
        storage = (0.1 + 0.9 * torch.rand(env.n_envs, generator=generator)) * capacity  # some near dead storage
        action = torch.randint(0, env.n_actions, (env.n_envs,), generator=generator)
        executed, _ = guard.apply(action, storage, td["observation"], td["day_of_year"])
        # water is available: releasing the env-flow level today keeps the lake above the floor under the
        # low forecast (computed here from the physics, independently of the guard's code)
        low = td["observation"][:, 3].double() * env.mean_inflow_hm3 * float(
            forecast_quantile_factors(env.config.forecast, env.config.safety.drought_quantile)[0])
        if env.config.forecast.scale == "log":
            low = torch.expm1(td["observation"][:, 3].double()) * env.mean_inflow_hm3 * float(
                forecast_quantile_factors(env.config.forecast, env.config.safety.drought_quantile)[0])
        outcome = env.physics.step(storage.double(), low, torch.full_like(action, env_level), td["day_of_year"])
        available = outcome.next_storage_hm3 > guard.floor_hm3
        lowered = executed < action
        assert not (lowered & available & (executed < env_level)).any()
        checked += int((lowered & available).sum())
        td.set("action", action)
        td = env.step(td).get("next")
    assert checked > 0  # the guard did lower releases (to the env-flow level at the lowest)


def test_flood_safe_storage_matches_a_brute_force_simulation():
    physics = ReservoirPhysics(ReservoirConfig(capacity_hm3=100.0, dead_storage_hm3=10.0, min_operating_hm3=20.0,
                                               flood_zone_hm3=80.0, release_capacity_cms=50.0, turbine_capacity_cms=40.0,
                                               spillway_capacity_cms=100.0, area_at_capacity_km2=0.0), 11)
    generator = torch.Generator().manual_seed(1)
    inflow = torch.rand(64, 6, generator=generator, dtype=torch.float64) * 25.0  # up to 290 m³/s
    limit = flood_safe_storage_hm3(physics, inflow)
    spillway = physics.config.spillway_capacity_cms * HM3_PER_CMS_DAY
    for storage_start in torch.linspace(10.0, 100.0, 181, dtype=torch.float64):
        storage = storage_start.expand(64).clone()
        safe = torch.ones(64, dtype=torch.bool)
        for k in range(1, 6):
            outcome = physics.step(storage, inflow[:, k], torch.full((64,), 10), torch.zeros(64, dtype=torch.int64))
            safe &= outcome.spill_hm3 <= spillway
            storage = outcome.next_storage_hm3
        assert torch.equal(safe, storage_start <= limit), float(storage_start)


def test_forecast_quantile_factors_cover_the_env_forecast_error(synthetic_record):
    config = EnvConfig(forecast={"lead_days": 4, "error_sigma": 0.3, "scale": "linear"})
    env = DiscreteReservoirEnv(config, synthetic_record, synthetic_record.complete_water_years(), n_envs=4096, seed=2)
    td = env.reset()
    forecast = td["observation"][:, 3:7].double() * env.mean_inflow_hm3
    truth = env._inflow_windows_hm3[td["record_index"]].double()
    for quantile in (0.05, 0.5, 0.95):
        share = (truth <= forecast * forecast_quantile_factors(config.forecast, quantile)).double().mean(0)
        assert torch.allclose(share, torch.full_like(share, quantile), atol=0.03)
    sigma = 0.3 * torch.arange(1, 5, dtype=torch.float64).sqrt()
    assert torch.allclose(forecast_quantile_factors(config.forecast, 0.5), torch.exp(0.5 * sigma**2))


def test_flood_wins_where_both_cannot_hold():
    config = flashy_config(forecast={"lead_days": 3, "error_sigma": 0.0, "scale": "linear"})
    physics = ReservoirPhysics(config.reservoir, config.n_release_levels)
    guard = ReleaseGuard(physics, config.forecast, config.safety, 0.26)
    capacity = config.reservoir.capacity_hm3
    # lake a little above the drought floor and a dry window: only small releases keep it above the floor
    dry_forecast = torch.zeros(1, 3, dtype=torch.float64)
    lowest, highest = guard.bounds(torch.tensor([guard.floor_hm3 + 0.5]), dry_forecast, torch.tensor([100]))
    assert int(lowest) == 0 and int(highest) < config.n_release_levels - 1
    # the same lake, a storm in two days beyond what the lake can hold unless it releases now: flood wins
    storm = torch.tensor([[0.0, 0.0, capacity * 1.2]], dtype=torch.float64)
    storage = torch.tensor([capacity * 0.6])
    lowest, highest = guard.bounds(storage, storm, torch.tensor([100]))
    action = torch.zeros(1, dtype=torch.int64)
    executed, override = guard.apply(action, storage, torch.cat([torch.zeros(1, 3), storm.float() / 0.26], dim=-1),
                                     torch.tensor([100]))
    assert int(lowest) > 0 and int(executed) == int(lowest) and bool(override)


def test_guard_off_gives_the_unguarded_rollouts_bitwise(flashy_record):
    on = flashy_config()
    off = flashy_config(safety={"enabled": False})
    generator = torch.Generator().manual_seed(4)

    def random_policy(td):
        td.set("action", torch.randint(0, 11, td.batch_size, generator=generator))
        return td

    trajectories = []
    for config, wrap in ((on, False), (off, True)):  # raw policy on an env with the guard configured on; off + guarded()
        env = DiscreteReservoirEnv(config, flashy_record, flashy_record.complete_water_years(), n_envs=8, seed=0)
        policy = guarded(random_policy, env) if wrap else random_policy
        assert policy is random_policy
        generator.manual_seed(4)
        env.set_seed(9)
        trajectories.append(run_episodes(env, policy))
    a, b = trajectories
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert torch.equal(a.get(key), b.get(key)), key
    assert GUARD_OVERRIDE_KEY not in a.keys()


def test_guard_settings_are_validated():
    with pytest.raises(ValueError, match="flood_quantile"):
        EnvConfig(safety={"flood_quantile": 1.0})
    with pytest.raises(ValueError, match="dead_storage_margin_fraction"):
        EnvConfig(safety={"dead_storage_margin_fraction": 0.95})
    assert math.isclose(EnvConfig().safety.flood_quantile, 0.99) and EnvConfig().safety.enabled


def test_the_flood_reserve_makes_room_beyond_the_window_for_the_training_years_design_day():
    """A full lake and a dry forecast: without the reserve the guard lets the policy release nothing; with
    ``flood_reserve_days: 1`` it asks for a release, because the training years brought a day after the window
    that overtops a full lake. A larger flood in a year the env does not train on changes nothing."""
    config = flashy_config(forecast={"lead_days": 5, "error_sigma": 0.0, "scale": "linear"}, horizon_days=30)
    days = 4 * 366
    flow = np.full(days, 1.0)
    dates = np.datetime64("1990-10-01") + np.arange(days)
    design_day = 120  # a flood on day 120 of the first water year (1991), larger than a full lake can pass
    flow[design_day] = 250.0
    flow[366 * 2 + design_day] = 900.0  # an even larger one in water year 1993, not a training year
    record = InflowRecord("reserve", dates, flow)

    def bounds(reserve_days: int, training_years=(1991, 1992), quantile: float = 1.0):
        cfg = config.model_copy(update={"safety": config.safety.model_copy(
            update={"flood_reserve_days": reserve_days, "flood_reserve_quantile": quantile})})
        env = DiscreteReservoirEnv(cfg, record, [1991, 1992], n_envs=1, seed=0, training_water_years=list(training_years))
        guard = ReleaseGuard.for_env(env)
        storage = torch.tensor([cfg.reservoir.capacity_hm3])
        forecast = torch.full((1, cfg.forecast.lead_days), 1.0 * HM3_PER_CMS_DAY)  # a dry window
        # the window ends the day before the design day's date: the design day comes right after it
        day = torch.tensor([int(record.day_of_year[design_day]) - cfg.forecast.lead_days])
        return guard, guard.bounds(storage, forecast, day)

    _, (lowest, _) = bounds(0)
    assert int(lowest) == 0
    guard, (lowest, _) = bounds(1)
    assert int(lowest) > 0
    assert max(guard.design_inflow_hm3) == pytest.approx(250.0 * HM3_PER_CMS_DAY)  # 1993's 900 m³/s is not read
    # the design day is only as large as the training years made it: with 1993 among them, more room is asked
    _, (lowest_1993, _) = bounds(1, training_years=(1991, 1992, 1993))
    assert int(lowest_1993) > int(lowest)
    # at a quantile below 1 the one flood day is not the design day: the dry days around it are, and nothing
    # beyond the window asks for room
    guard_q, (lowest_q, _) = bounds(1, quantile=0.9)
    assert int(lowest_q) == 0 and max(guard_q.design_inflow_hm3) == pytest.approx(1.0 * HM3_PER_CMS_DAY)


def test_without_the_reserve_the_guard_reads_no_design_day(flashy_record):
    env = DiscreteReservoirEnv(flashy_config(), flashy_record, flashy_record.complete_water_years(), n_envs=4, seed=0)
    assert ReleaseGuard.for_env(env).design_inflow_hm3 == ()
