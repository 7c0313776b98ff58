"""Tests of reservoir_rl.baselines.firm_yield: sequent peak and the firm yield on hand-computed series, its
limits (no storage, unlimited storage), and the yield of an env's training years."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reservoir_rl.baselines.firm_yield import (
    firm_yield_hm3,
    required_storage_hm3,
    training_firm_yield_hm3,
    training_inflow_evaporation_hm3,
)
from reservoir_rl.config import BaselinesConfig, Config
from reservoir_rl.env import DiscreteReservoirEnv
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.units import HM3_PER_CMS_DAY

# Hand-computed: inflows 5, 1, 1, 5 (mean 3). A release R ≤ 3 (in [1, 3]) draws the reservoir down only on
# the two days of inflow 1: the deficit is 0 after day 1 (5 ≥ R), R − 1 after day 2, 2R − 2 after day 3,
# and day 4 refills it (2R − 2 + R − 5 ≤ 0 for R ≤ 7/3; for R in (7/3, 3] the 3R − 7 left over is refilled
# on day 1 of the repeated record, 3R − 7 + R − 5 ≤ 0). So the storage R needs is 2R − 2, and the firm
# yield of active storage C is (C + 2) / 2, capped at the mean 3: C = 1 → 1.5, C = 2 → 2, C = 4 → 3 (the
# two dry days, 2 × (3 − 1) = 4, exactly use the storage). C = 0 → 1, the smallest inflow.
HAND_INFLOW = np.array([5.0, 1.0, 1.0, 5.0])


def test_required_storage_is_the_largest_cumulative_deficit():
    required = required_storage_hm3(HAND_INFLOW, np.array([0.5, 1.0, 1.5, 2.0, 3.0]))
    np.testing.assert_allclose(required, [0.0, 0.0, 1.0, 2.0, 4.0])
    assert required_storage_hm3(HAND_INFLOW, 2.0).shape == ()
    # a drought that straddles the end of the record is counted whole (the record runs into its start):
    # 1, 5, 5, 1 needs the same storage as 5, 1, 1, 5
    np.testing.assert_allclose(required_storage_hm3(np.array([1.0, 5.0, 5.0, 1.0]), 2.0), 2.0)


@pytest.mark.parametrize("storage, expected", [(0.0, 1.0), (1.0, 1.5), (2.0, 2.0), (4.0, 3.0), (100.0, 3.0)])
def test_firm_yield_of_a_hand_computed_series(storage, expected):
    assert firm_yield_hm3(HAND_INFLOW, storage) == pytest.approx(expected, rel=2e-6)
    # the answer is the feasible end of the bracket: its release needs no more than the storage
    assert required_storage_hm3(HAND_INFLOW, firm_yield_hm3(HAND_INFLOW, storage)) <= storage + 1e-9


def test_evaporation_is_taken_from_the_inflow():
    # net inflow 4.5, 0.5, 0.5, 4.5: storage 1 → the deficit 2R − 1 ≤ 1 → R = 1
    assert firm_yield_hm3(HAND_INFLOW, 1.0, np.full(4, 0.5)) == pytest.approx(1.0, rel=2e-6)
    # evaporation larger than what storage can carry through the dry days: nothing is sustained
    assert firm_yield_hm3(HAND_INFLOW, 0.5, np.array([0.0, 2.0, 2.0, 0.0])) == 0.0
    with pytest.raises(ValueError, match="one value per day"):
        firm_yield_hm3(HAND_INFLOW, 1.0, np.ones(3))


def test_firm_yield_limits_and_monotonicity():
    rng = np.random.default_rng(0)
    inflow = rng.lognormal(mean=1.0, sigma=1.0, size=3 * 365)
    # no storage: the smallest inflow; storage beyond every deficit: the mean inflow
    assert firm_yield_hm3(inflow, 0.0) == pytest.approx(inflow.min(), rel=1e-5)
    assert firm_yield_hm3(inflow, 1e9) == pytest.approx(inflow.mean(), rel=1e-12)
    storages = [0.0, 1.0, 10.0, 50.0, 200.0, 1000.0, 1e5]
    yields = [firm_yield_hm3(inflow, c) for c in storages]
    assert all(b >= a for a, b in zip(yields, yields[1:]))
    assert inflow.min() < yields[2] < yields[4] < inflow.mean()
    with pytest.raises(ValueError, match="active_storage_hm3"):
        firm_yield_hm3(inflow, -1.0)


def test_training_firm_yield_uses_the_training_years_only(bundled_record):
    config = Config()  # the last 20 water years held out
    config.inflow.validation_water_years = 10
    heldout = make_env(config, "heldout", n_envs=1, seed=0)
    train = make_env(config, "train", n_envs=1, seed=0)
    assert heldout.training_water_years == train.water_years == train.training_water_years
    assert not set(heldout.training_water_years) & (set(heldout.water_years) | set(make_env(config, "validation").water_years))
    inflow_hm3, evaporation_hm3 = training_inflow_evaporation_hm3(heldout)
    days = np.isin(bundled_record.water_years, train.water_years)
    np.testing.assert_array_equal(inflow_hm3, bundled_record.inflow_hm3()[days])
    # evaporation of a full lake, day by day
    physics = heldout.physics
    full_area = physics.config.area_at_capacity_km2
    depth = physics.evaporation_depth_mm(torch.as_tensor(bundled_record.day_of_year[days], dtype=torch.float64))
    np.testing.assert_allclose(evaporation_hm3, full_area * depth.numpy() * 1e-3)
    active = physics.capacity_hm3 - physics.dead_storage_hm3
    expected = firm_yield_hm3(inflow_hm3, active, evaporation_hm3)
    assert training_firm_yield_hm3(heldout) == expected == training_firm_yield_hm3(train)
    # Montague's 1,350 hm³ of active storage sustain about half the training years' mean inflow
    assert 0.4 * inflow_hm3.mean() < expected < 0.6 * inflow_hm3.mean()


def test_the_firm_yield_release_never_empties_a_full_reservoir_with_the_physics_evaporation(bundled_record):
    """Behaviour simulation through the training years: start full, release the firm yield every day, take the
    physics' storage-dependent evaporation; storage never reaches dead storage."""
    env = DiscreteReservoirEnv(inflow=bundled_record, n_envs=1, seed=0)
    physics = env.physics
    release = training_firm_yield_hm3(env)
    inflow_hm3, _ = training_inflow_evaporation_hm3(env)
    days = np.isin(bundled_record.water_years, env.training_water_years)
    depth_mm = physics.evaporation_depth_mm(torch.as_tensor(bundled_record.day_of_year[days], dtype=torch.float64))
    config = physics.config
    storage, lowest = physics.capacity_hm3, physics.capacity_hm3
    for inflow, depth in zip(inflow_hm3.tolist(), depth_mm.tolist()):
        area = config.area_at_capacity_km2 * (storage / config.capacity_hm3) ** config.area_exponent
        storage = min(storage + inflow - area * depth * 1e-3 - release, physics.capacity_hm3)
        lowest = min(lowest, storage)
    assert physics.dead_storage_hm3 < lowest < physics.dead_storage_hm3 + 0.1 * (physics.capacity_hm3 - physics.dead_storage_hm3)


def test_target_follows_the_configured_choice(bundled_record):
    from reservoir_rl.baselines.rules import target_release_hm3

    env = DiscreteReservoirEnv(inflow=bundled_record, n_envs=1, seed=0)
    assert target_release_hm3(env, BaselinesConfig()) == training_firm_yield_hm3(env)
    assert target_release_hm3(env, BaselinesConfig(target_release_cms="mean_inflow")) == env.mean_inflow_hm3
    assert target_release_hm3(env, BaselinesConfig(target_release_cms=120)) == pytest.approx(120 * HM3_PER_CMS_DAY)
    # null, as saved run configs wrote the record's mean inflow
    assert BaselinesConfig(target_release_cms=None).target_release_cms == "mean_inflow"
