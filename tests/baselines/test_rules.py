"""Tests of reservoir_rl.baselines.rules: SOP, two-point hedging and the rule curve do what their docstrings say.

The rules are probed on a sweep of states (storage dead … capacity × inflows 0 … 3,000 m³/s × four
seasons), built from an inflow record whose days cycle through chosen flows, and each chosen release level
is stepped through `ReservoirPhysics.step` to see what really happens to the water. The rule curve's
environmental flow is also checked day by day over a year of episodes on the bundled record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from reservoir_rl.baselines import run_episodes
from reservoir_rl.baselines.firm_yield import training_firm_yield_hm3
from reservoir_rl.baselines.rollout import first_done_mask
from reservoir_rl.catalog import make_baseline
from reservoir_rl.baselines.rules import (
    HedgingPolicy,
    RuleCurvePolicy,
    StandardOperatingPolicy,
    target_release_hm3,
    target_warning,
)
from reservoir_rl.config import BaselinesConfig, Config, EnvConfig, load_config
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.inflow import InflowRecord, synthetic
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.units import HM3_PER_CMS_DAY

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

PROBE_FLOWS_CMS = (0.0, 2.0, 20.0, 80.0, 150.0, 300.0, 700.0, 1500.0, 3000.0)
PROBE_DAYS = (0, 91, 196, 300)
PROBE_RECORD_DAYS = 4 * 366
PROBE_RECORD_CMS = np.array([PROBE_FLOWS_CMS[i % len(PROBE_FLOWS_CMS)] for i in range(PROBE_RECORD_DAYS)])
TARGET_CMS = 150.0  # SOP / hedging target: 12.96 hm³/day, between levels 3 (10.4) and 4 (13.8)
TOL_HM3 = 2e-3  # float32 rounding at reservoir scale


@pytest.fixture(scope="module")
def probe_env() -> DiscreteReservoirEnv:
    """An env on a 4-year record whose day i carries PROBE_FLOWS_CMS[i % 9] (record index picks the inflow)."""
    dates = np.datetime64("1990-10-01") + np.arange(PROBE_RECORD_DAYS)
    record = InflowRecord("probe flows", dates, PROBE_RECORD_CMS)
    return DiscreteReservoirEnv(EnvConfig(), record, record.complete_water_years(), n_envs=1, seed=0)


@pytest.fixture(scope="module")
def probe(probe_env) -> TensorDict:
    """Root keys of 90 storages × 9 inflows × 4 days of year, flattened (batch 3,240)."""
    physics = probe_env.physics
    storage = torch.linspace(physics.dead_storage_hm3, physics.capacity_hm3, 90)
    storage = torch.cat([storage, torch.tensor([physics.dead_storage_hm3 + 0.01, physics.capacity_hm3 - 0.01])])
    record_index = torch.arange(len(PROBE_FLOWS_CMS))
    day = torch.tensor(PROBE_DAYS)
    shape = (len(storage), len(record_index), len(day))
    s = storage.view(-1, 1, 1).expand(shape).reshape(-1)
    r = record_index.view(1, -1, 1).expand(shape).reshape(-1)
    d = day.view(1, 1, -1).expand(shape).reshape(-1)
    return TensorDict({"storage_hm3": s, "record_index": r, "day_of_year": d}, batch_size=[s.numel()])


def decide_and_step(env, policy, probe):
    """Action the policy writes for each probe state, and the physics outcome of that action."""
    td = policy(probe.clone())
    action = td.get("action")
    assert action.dtype == torch.int64 and action.shape == probe.batch_size
    assert action.min() >= 0 and action.max() <= env.n_actions - 1
    inflow = env.inflow_hm3_at(probe.get("record_index"))
    outcome = env.physics.step(probe.get("storage_hm3"), inflow, action, probe.get("day_of_year"))
    return action, outcome


def water_balance(env, probe, outcome):
    """(W, S + I − E): water above dead storage after evaporation, and the water the day holds."""
    inflow = env.inflow_hm3_at(probe.get("record_index"))
    water = probe.get("storage_hm3") + inflow - outcome.evaporation_hm3
    return water - env.physics.dead_storage_hm3, water


def level_step_hm3(env) -> float:
    return env.physics.release_capacity_hm3 / (env.n_actions - 1)


def sop(env) -> StandardOperatingPolicy:
    return make_baseline("sop", env, Config(baselines=BaselinesConfig(target_release_cms=TARGET_CMS)))


# ------------------------------------------------------------------ SOP


def test_sop_releases_target_when_water_is_plentiful(probe_env, probe):
    env, target = probe_env, TARGET_CMS * HM3_PER_CMS_DAY
    action, out = decide_and_step(env, sop(env), probe)
    available, water = water_balance(env, probe, out)
    target_level = round(target / level_step_hm3(env))  # nearest level: 4
    plenty = (available >= target_level * level_step_hm3(env) + TOL_HM3) & (
        water - target_level * level_step_hm3(env) <= flood_zone(env, probe)
    )
    assert plenty.sum() > 100
    assert (action[plenty] == target_level).all()
    assert (out.release_hm3[plenty] - target).abs().max() <= level_step_hm3(env) / 2
    assert (out.spill_hm3[plenty] == 0).all()


def test_sop_releases_all_water_above_dead_storage_when_short(probe_env, probe):
    env, target = probe_env, TARGET_CMS * HM3_PER_CMS_DAY
    action, out = decide_and_step(env, sop(env), probe)
    available, _ = water_balance(env, probe, out)
    short = available < target - TOL_HM3
    assert short.sum() > 20
    torch.testing.assert_close(out.release_hm3[short], available[short].clamp(min=0), atol=TOL_HM3, rtol=0)
    assert (out.next_storage_hm3[short] - env.physics.dead_storage_hm3).abs().max() <= TOL_HM3


def test_sop_never_spills_water_it_could_have_released(probe_env, probe):
    env = probe_env
    action, out = decide_and_step(env, sop(env), probe)
    _, water = water_balance(env, probe, out)
    excess = water - env.physics.capacity_hm3  # what must leave so that storage ends at capacity
    r_max = env.physics.release_capacity_hm3
    releasable = (excess > TOL_HM3) & (excess <= r_max - TOL_HM3)
    beyond = excess > r_max + TOL_HM3
    assert releasable.sum() > 20 and beyond.sum() > 20
    assert out.spill_hm3[releasable].max() <= TOL_HM3
    assert (out.release_hm3[releasable] >= excess[releasable] - TOL_HM3).all()
    # a flood larger than the outlet: fully open, only the rest spills
    assert (action[beyond] == env.n_actions - 1).all()
    torch.testing.assert_close(out.spill_hm3[beyond], excess[beyond] - r_max, atol=TOL_HM3, rtol=1e-5)
    # wherever anything spills, the outlet was fully open
    assert (action[out.spill_hm3 > TOL_HM3] == env.n_actions - 1).all()


def test_sop_evacuates_the_flood_pool(probe_env, probe):
    """Flood-control operation: water above the day's flood-control zone leaves through the outlets
    (up to their capacity), so storage ends at the zone's bottom, not at the crest."""
    env = probe_env
    _, out = decide_and_step(env, sop(env), probe)
    _, water = water_balance(env, probe, out)
    excess = water - flood_zone(env, probe)
    releasable = (excess > TOL_HM3) & (excess <= env.physics.release_capacity_hm3 - TOL_HM3)
    assert releasable.sum() > 20
    assert (out.release_hm3[releasable] >= excess[releasable] - TOL_HM3).all()
    assert (out.next_storage_hm3[releasable] <= flood_zone(env, probe)[releasable] + TOL_HM3).all()


def test_sop_and_hedging_target_defaults_to_the_firm_yield(probe_env):
    firm_yield = training_firm_yield_hm3(probe_env)
    assert 0 < firm_yield < PROBE_RECORD_CMS.mean() * HM3_PER_CMS_DAY
    assert make_baseline("sop", probe_env, Config(baselines=BaselinesConfig())).target_release_hm3 == firm_yield
    assert make_baseline("hedging", probe_env, Config(baselines=BaselinesConfig())).target_release_hm3 == firm_yield
    # the other choices still work: the training years' mean inflow (not the days outside them), a release in m³/s
    mean_inflow = make_baseline("sop", probe_env, Config(baselines=BaselinesConfig(target_release_cms="mean_inflow")))
    training_days = np.isin(probe_env.inflow.water_years, probe_env.training_water_years)
    assert not training_days.all()  # the record's last days lie outside its complete water years
    assert mean_inflow.target_release_hm3 == pytest.approx(
        PROBE_RECORD_CMS[training_days].mean() * HM3_PER_CMS_DAY, rel=1e-6)
    number = make_baseline("hedging", probe_env, Config(baselines=BaselinesConfig(target_release_cms=TARGET_CMS)))
    assert number.target_release_hm3 == pytest.approx(TARGET_CMS * HM3_PER_CMS_DAY)
    with pytest.raises(ValueError, match="target_release_hm3"):
        StandardOperatingPolicy(probe_env, -1.0)
    with pytest.raises(ValueError, match="firm_yield, mean_inflow or a release > 0"):
        BaselinesConfig(target_release_cms="median_inflow")


@pytest.mark.parametrize("name", ["sop", "hedging"])
def test_a_positive_target_below_half_a_level_is_released_at_level_1(probe_env, probe, name):
    env = probe_env
    small_cms = 0.2 * level_step_hm3(env) / HM3_PER_CMS_DAY  # nearest level: 0
    policy = make_baseline(name, env, Config(baselines=BaselinesConfig(target_release_cms=small_cms)))
    action, out = decide_and_step(env, policy, probe)
    available, _ = water_balance(env, probe, out)
    has_water = available > TOL_HM3
    assert has_water.sum() > 1000
    assert (action[has_water] >= 1).all()
    assert (action[available <= 0] == 0).all()
    assert (out.release_hm3[has_water] > 0).all()


def test_the_warning_names_a_target_below_the_first_release_level(probe_env):
    step_cms = level_step_hm3(probe_env) / HM3_PER_CMS_DAY  # 40 m³/s
    line = target_warning(probe_env, BaselinesConfig(target_release_cms=12.5))
    assert line is not None and "\n" not in line
    assert "12.5 m³/s" in line and f"{step_cms:.3g} m³/s" in line and "below the first release level" in line
    assert target_warning(probe_env, BaselinesConfig(target_release_cms=step_cms)) is None
    assert target_warning(probe_env, BaselinesConfig(target_release_cms=TARGET_CMS)) is None
    assert target_warning(probe_env, BaselinesConfig()) is None  # the firm yield is several levels here
    # a small river (mean 20 m³/s): its firm yield is below the first level; SOP releases 40 m³/s, not nothing
    small = synthetic(n_years=4, mean_inflow_cms=20.0, seed=2)
    env = DiscreteReservoirEnv(EnvConfig(horizon_days=30), small, small.complete_water_years(), n_envs=16, seed=0)
    firm_yield = target_release_hm3(env, BaselinesConfig())
    assert 0 < firm_yield < level_step_hm3(env) / 2
    line = target_warning(env, BaselinesConfig())
    assert line is not None and "the firm yield of the training years" in line and "40 m³/s" in line
    assert f"{firm_yield / HM3_PER_CMS_DAY:.3g} m³/s" in line
    env.set_seed(1)
    trajectory = run_episodes(env, make_baseline("sop", env, Config(baselines=BaselinesConfig())))
    assert (trajectory.get("action") == 1).float().mean() > 0.9


# ------------------------------------------------------------------ hedging


def hedging(env, **kwargs) -> HedgingPolicy:
    config = BaselinesConfig(target_release_cms=TARGET_CMS, **kwargs)
    return make_baseline("hedging", env, Config(baselines=config))


def test_hedging_releases_less_than_sop_when_usable_water_is_low(probe_env, probe):
    env = probe_env
    policy = hedging(env)  # start 0.6, end 0.2, min 0.5 of the target
    sop_action, sop_out = decide_and_step(env, sop(env), probe)
    action, out = decide_and_step(env, policy, probe)
    available, _ = water_balance(env, probe, out)
    usable = available / (env.physics.capacity_hm3 - env.physics.dead_storage_hm3)
    # never more than SOP
    assert (action <= sop_action).all()
    assert (out.release_hm3 <= sop_out.release_hm3 + TOL_HM3).all()
    # deepest hedging: SOP releases the target, hedging half of it (nearest level)
    sop_gives_target = sop_action == round(TARGET_CMS * HM3_PER_CMS_DAY / level_step_hm3(env))
    deep = (usable <= policy.end_fraction) & sop_gives_target
    assert deep.sum() > 10
    half_level = round(0.5 * TARGET_CMS * HM3_PER_CMS_DAY / level_step_hm3(env))
    assert (action[deep] == half_level).all()
    assert (action[deep] < sop_action[deep]).all()
    # and some water is kept: storage ends higher than under SOP
    assert (out.next_storage_hm3[deep] > sop_out.next_storage_hm3[deep]).all()


def test_hedging_equals_sop_when_usable_water_is_high(probe_env, probe):
    env = probe_env
    policy = hedging(env)
    sop_action, _ = decide_and_step(env, sop(env), probe)
    action, out = decide_and_step(env, policy, probe)
    available, _ = water_balance(env, probe, out)
    usable = available / (env.physics.capacity_hm3 - env.physics.dead_storage_hm3)
    high = usable >= policy.start_fraction + 1e-4
    assert high.sum() > 100 and (~high).sum() > 100
    assert torch.equal(action[high], sop_action[high])


def test_hedged_release_ramps_linearly_between_the_two_points(probe_env, probe):
    """Desired release = (min + (1 − min)·ramp)·R*, ramp linear in the usable fraction, capped at W."""
    env = probe_env
    policy = hedging(env, hedging_start_fraction=0.7, hedging_end_fraction=0.3, hedging_min_release_fraction=0.2)
    release, _ = policy.release_hm3(probe.clone())
    _, out = decide_and_step(env, policy, probe)
    available, water = water_balance(env, probe, out)
    usable = available / (env.physics.capacity_hm3 - env.physics.dead_storage_hm3)
    ramp = ((usable - 0.3) / 0.4).clamp(0, 1)
    expected = ((0.2 + 0.8 * ramp) * TARGET_CMS * HM3_PER_CMS_DAY).minimum(available)
    expected = expected.maximum(water - flood_zone(env, probe)).clamp(0, env.physics.release_capacity_hm3)
    torch.testing.assert_close(release, expected, atol=TOL_HM3, rtol=1e-5)
    # more water (same inflow and day) never means a smaller hedged release
    by_storage = release.reshape(92, len(PROBE_FLOWS_CMS), len(PROBE_DAYS))[:90]
    assert (by_storage.diff(dim=0) >= -TOL_HM3).all()


def test_hedging_rejects_inverted_thresholds(probe_env):
    with pytest.raises(ValueError, match="end_fraction"):
        HedgingPolicy(probe_env, 10.0, start_fraction=0.2, end_fraction=0.5, min_release_fraction=0.5)
    with pytest.raises(ValueError, match="min_release_fraction"):
        HedgingPolicy(probe_env, 10.0, start_fraction=0.6, end_fraction=0.2, min_release_fraction=1.5)


# ------------------------------------------------------------------ rule curve


CURVE = [(0, 0.62), (59, 0.55), (105, 0.6), (150, 0.8), (243, 0.8), (304, 0.7)]


def test_rule_curve_target_storage_interpolates_periodically(probe_env):
    policy = RuleCurvePolicy(probe_env, CURVE)
    cap = probe_env.physics.capacity_hm3
    days = torch.tensor([0, 59, 105, 150, 243, 304])
    torch.testing.assert_close(policy.target_storage_hm3(days), torch.tensor([f for _, f in CURVE], dtype=torch.float64) * cap)
    # linear between points, and across the new year: 304 (0.70) … 365 ≡ 0 (0.62)
    mid = torch.tensor([82.0, 127.5, 334.5, 200.0])
    torch.testing.assert_close(policy.target_storage_hm3(mid), torch.tensor([0.575, 0.70, 0.66, 0.80], dtype=torch.float64) * cap)
    torch.testing.assert_close(policy.target_storage_hm3(days + 365), policy.target_storage_hm3(days))
    # a curve that does not start on day 0 wraps from its last point: day 0 lies 165/195 of the way
    # from (200 − 365, 0.9) to (30, 0.5)
    late = RuleCurvePolicy(probe_env, [(200, 0.9), (30, 0.5)])  # any order
    expected = torch.tensor([0.9 - 0.4 * 165 / 195, 0.5, 0.7, 0.9], dtype=torch.float64) * cap
    torch.testing.assert_close(late.target_storage_hm3(torch.tensor([0, 30, 115, 200])), expected)
    with pytest.raises(ValueError, match="distinct"):
        RuleCurvePolicy(probe_env, [(10, 0.5), (10, 0.6)])


def env_flow_hm3(env) -> float:
    return env.config.reservoir.env_flow_cms * HM3_PER_CMS_DAY


def test_rule_curve_tracks_its_target_storage(probe_env, probe):
    env = probe_env
    policy = make_baseline("rule", env, Config(baselines=BaselinesConfig(rule_curve=CURVE)))
    action, out = decide_and_step(env, policy, probe)
    available, water = water_balance(env, probe, out)
    target = policy.target_storage_hm3(probe.get("day_of_year")).float()
    needed = water - target  # the release that lands exactly on the curve
    r_max = env.physics.release_capacity_hm3
    feasible = (needed >= env_flow_hm3(env)) & (needed <= r_max)  # at least the environmental flow
    assert feasible.sum() > 50
    # storage ends on the curve up to the rounding of the release to a level
    deviation = (out.next_storage_hm3 - target)[feasible].abs()
    assert deviation.max() <= level_step_hm3(env) / 2 + TOL_HM3
    # below the curve: keep everything but the environmental flow (level 1 = 40 m³/s ≥ 30 m³/s) when there
    # is water for it, everything when there is not; far above it: open fully
    below = needed < -level_step_hm3(env) / 2
    has_env_flow = available >= env_flow_hm3(env)
    assert (below & has_env_flow).sum() > 100 and (below & ~has_env_flow).sum() > 5
    assert (action[below & has_env_flow] == 1).all()
    assert (action[below & ~has_env_flow] == 0).all()
    assert (action[needed > r_max] == env.n_actions - 1).all()


def test_rule_curve_releases_the_environmental_flow_whenever_water_allows(probe_env, probe):
    env = probe_env
    for curve in (CURVE, [(0, 1.0)], [(0, 0.0)]):  # the default, always below the curve, always above it
        policy = make_baseline("rule", env, Config(baselines=BaselinesConfig(rule_curve=curve)))
        action, out = decide_and_step(env, policy, probe)
        available, water = water_balance(env, probe, out)
        has_env_flow = available >= env_flow_hm3(env) + TOL_HM3
        assert has_env_flow.sum() > 3000
        assert (out.downstream_cms[has_env_flow] >= env.config.reservoir.env_flow_cms * (1 - 1e-6)).all()
        # with less water than that, below the curve, it keeps what it has
        short = (available < env_flow_hm3(env) - TOL_HM3) & (water < policy.target_storage_hm3(probe.get("day_of_year")))
        assert (short.sum() > 5) == (curve != [(0, 0.0)])
        assert (out.release_hm3[short] == 0).all()
    # no environmental flow configured: pure tracking (below the full curve, nothing is released)
    no_flow = DiscreteReservoirEnv(EnvConfig(reservoir={"env_flow_cms": 0.0}), env.inflow, env.water_years)
    action, out = decide_and_step(no_flow, make_baseline("rule", no_flow, Config(baselines=BaselinesConfig(rule_curve=[(0, 1.0)]))), probe)
    _, water = water_balance(no_flow, probe, out)
    below = water < flood_zone(no_flow, probe)
    assert below.sum() > 2000 and (action[below] == 0).all()


def test_rule_curve_leaves_no_env_flow_deficit_while_water_is_above_dead_storage():
    """Montague (configs/base.yaml), 64 training-year episodes: a day has an env-flow deficit only when
    S + I − E − S_dead < Q_env."""
    config = load_config(CONFIGS / "base.yaml")
    env = make_env(config, "train", n_envs=64, seed=5)
    policy = make_baseline("rule", env, config)
    trajectory = run_episodes(env, policy)
    valid = first_done_mask(trajectory)
    nxt = trajectory.get("next")
    available = (trajectory.get("storage_hm3") + nxt.get("inflow_hm3") - nxt.get("evaporation_hm3")
                 - env.physics.dead_storage_hm3)
    env_flow_cms = config.env.reservoir.env_flow_cms
    deficit = nxt.get("downstream_cms") < env_flow_cms * (1 - 1e-6)
    has_water = available >= env_flow_cms * HM3_PER_CMS_DAY + 1e-4
    assert valid.sum() > 20_000
    assert not (deficit & has_water & valid).any()
    # the floor matters: many days below the curve released the environmental flow
    target = policy.target_storage_hm3(trajectory.get("day_of_year")).float()
    below_curve = available + env.physics.dead_storage_hm3 - target < 0
    assert (below_curve & has_water & valid).sum() > 1000
    assert (trajectory.get("action")[below_curve & has_water & valid] >= 1).all()


def test_rule_curve_follows_the_curve_through_env_rollout(synthetic_record):
    """Through the agent interface (env.rollout), each day ends on the curve unless the release is at a bound."""
    env = DiscreteReservoirEnv(EnvConfig(horizon_days=120), synthetic_record, synthetic_record.complete_water_years(),
                               n_envs=8, seed=3)
    policy = make_baseline("rule", env, Config())
    trajectory = run_episodes(env, policy)
    action = trajectory.get("action")
    next_storage = trajectory.get(("next", "storage_hm3"))
    target = policy.target_storage_hm3(trajectory.get("day_of_year")).float()
    nxt = trajectory.get("next")
    needed = trajectory.get("storage_hm3") + nxt.get("inflow_hm3") - nxt.get("evaporation_hm3") - target
    # days whose tracking release is at least the environmental flow (else the flow's level is released)
    inside = (action > 0) & (action < env.n_actions - 1) & (needed >= env_flow_hm3(env))
    assert inside.float().mean() > 0.3
    assert (next_storage - target)[inside].abs().max() <= level_step_hm3(env) / 2 + TOL_HM3
    # at level 0 the reservoir was below its curve (kept all water); at the top it was above
    assert (next_storage[action == 0] <= target[action == 0] + level_step_hm3(env) / 2 + TOL_HM3).all()
    top = action == env.n_actions - 1
    assert (next_storage[top] >= target[top] - level_step_hm3(env) / 2 - TOL_HM3).all()


def test_make_baseline_rejects_an_unknown_name(probe_env):
    from reservoir_rl.errors import UserError

    with pytest.raises(UserError, match="unknown baseline 'nonesuch'"):
        make_baseline("nonesuch", probe_env, Config())


def flood_zone(env, probe) -> torch.Tensor:
    """Bottom of the flood-control zone (hm³) on each probe state's day: the rules release what lies above it."""
    return env.physics.flood_zone_hm3(probe.get("day_of_year").reshape(-1))
