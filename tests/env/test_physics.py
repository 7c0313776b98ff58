"""Tests of reservoir_rl.env.physics (one daily step) and reservoir_rl.env.reward (its components).

Most invariants are checked on seeded random sweeps (hypothesis-style, driven by a torch generator) over
storages dead … capacity, inflows 0 … 5000 m³/s (as hm³/day), every release level and days 0 … 364, and on
a full broadcast grid; a few cases are checked against hand computations of DESIGN §2.
"""

from __future__ import annotations

import math

import pytest
import torch

from reservoir_rl.config import ReservoirConfig, RewardConfig
from reservoir_rl.env.physics import (
    GRAVITY_M_S2,
    WATER_DENSITY_KG_M3,
    ReservoirPhysics,
    StepOutcome,
    interpolate,
)
from reservoir_rl.env.reward import COMPONENTS, reward_components, weighted_reward
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY

N_LEVELS = 11
MAX_INFLOW_HM3 = 5000.0 * HM3_PER_CMS_DAY
CFG = ReservoirConfig()
DEAD, CAP = CFG.dead_storage_hm3, CFG.capacity_hm3
R_MAX = CFG.release_capacity_cms * HM3_PER_CMS_DAY


@pytest.fixture(scope="module")
def physics() -> ReservoirPhysics:
    return ReservoirPhysics(ReservoirConfig(), N_LEVELS)


def _sample(n: int, seed: int, dtype=torch.float32, physics_config: ReservoirConfig = CFG):
    """Random (storage, inflow, action, day) of length n with edge cases mixed in (dead, capacity, no inflow)."""
    g = torch.Generator().manual_seed(seed)
    dead, cap = physics_config.dead_storage_hm3, physics_config.capacity_hm3
    storage = dead + (cap - dead) * torch.rand(n, generator=g, dtype=torch.float64)
    # a skewed draw covers small inflows densely and still reaches 5000 m³/s
    inflow = MAX_INFLOW_HM3 * torch.rand(n, generator=g, dtype=torch.float64).pow(3)
    edge = torch.randint(0, 10, (n,), generator=g)
    storage = torch.where(edge == 0, torch.full_like(storage, dead), storage)
    storage = torch.where(edge == 1, torch.full_like(storage, cap), storage)
    inflow = torch.where(edge == 2, torch.zeros_like(inflow), inflow)
    inflow = torch.where(edge == 3, torch.full_like(inflow, MAX_INFLOW_HM3), inflow)
    action = torch.randint(0, N_LEVELS, (n,), generator=g)
    day = torch.randint(0, 365, (n,), generator=g)
    return storage.to(dtype), inflow.to(dtype), action, day


def _mass_residual(storage, inflow, out: StepOutcome) -> torch.Tensor:
    """|S + I − E − R − W − S'| / max(S, I), evaluated in float64 from the step's own outputs."""
    s, i = storage.double(), inflow.double()
    residual = s + i - out.evaporation_hm3.double() - out.release_hm3.double() - out.spill_hm3.double()
    residual = residual - out.next_storage_hm3.double()
    return residual.abs() / torch.maximum(s, i)


def _tol(dtype) -> float:
    """Absolute slack for comparisons at reservoir scale (a few ulps of 2,000 hm³)."""
    return 1e-3 if dtype == torch.float32 else 1e-9


# ------------------------------------------------------------------ random sweeps: invariants


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sweep_invariants(physics, seed, dtype):
    storage, inflow, action, day = _sample(100_000, seed, dtype)
    out = physics.step(storage, inflow, action, day)
    tol = _tol(dtype)

    # mass balance closes to rounding error
    assert _mass_residual(storage, inflow, out).max().item() <= 1e-5

    # storage stays within [dead, capacity]
    assert out.next_storage_hm3.min().item() >= DEAD - tol
    assert out.next_storage_hm3.max().item() <= CAP + tol

    # non-negative quantities
    for name in ("release_hm3", "spill_hm3", "evaporation_hm3", "energy_mwh", "downstream_cms"):
        assert getattr(out, name).min().item() >= 0.0, name

    # spill only when the reservoir ends full
    spilling = out.spill_hm3 > 0
    assert spilling.any() and (~spilling).any()
    assert (out.next_storage_hm3[spilling] - CAP).abs().max().item() <= tol

    # release never above the target, nor above the water available above dead storage
    target = action.to(dtype) * (R_MAX / (N_LEVELS - 1))
    assert (out.release_hm3 - target).max().item() <= tol
    available_above_dead = storage + inflow - out.evaporation_hm3 - DEAD
    assert (out.release_hm3 - available_above_dead).max().item() <= tol
    # ... and equal to the target whenever the water is there (the release is only cut when it must be)
    ample = available_above_dead >= target + 1.0
    assert torch.allclose(out.release_hm3[ample], target[ample], rtol=1e-6, atol=tol)

    # energy: capped by the installed capacity, nothing below the minimum operating level
    assert out.energy_mwh.max().item() <= CFG.installed_capacity_mw * 24.0 * (1 + 1e-6)
    mean_storage = 0.5 * (storage + out.next_storage_hm3)
    low = mean_storage < CFG.min_operating_hm3
    assert low.any()
    assert (out.energy_mwh[low] == 0).all()
    assert (out.energy_mwh[~low & (out.release_hm3 > 1e-3)] > 0).all()

    # downstream flow is release + spill as a mean daily flow
    torch.testing.assert_close(out.downstream_cms, (out.release_hm3 + out.spill_hm3) / HM3_PER_CMS_DAY)

    # failure flags
    spillway_hm3 = CFG.spillway_capacity_cms * HM3_PER_CMS_DAY
    assert torch.equal(out.flood_failure, out.spill_hm3 > spillway_hm3)
    assert out.flood_failure.any() and (~out.flood_failure).any()
    assert out.drought_failure.any() and (~out.drought_failure).any()
    assert (out.next_storage_hm3[out.drought_failure] <= DEAD + 1e-3 * CAP).all()
    assert (out.next_storage_hm3[~out.drought_failure] > DEAD).all()

    # no supply demand in the default config
    assert (out.supply_demand_hm3 == 0).all() and (out.supply_deficit_hm3 == 0).all()


def _grid_step(physics):
    storage = torch.linspace(DEAD, CAP, 16).view(-1, 1, 1, 1)
    inflow = torch.cat([torch.zeros(1), torch.logspace(-2, math.log10(MAX_INFLOW_HM3), 11)]).view(1, -1, 1, 1)
    action = torch.arange(N_LEVELS).view(1, 1, -1, 1)
    day = torch.arange(365).view(1, 1, 1, -1)
    return (storage, inflow, action, day), physics.step(storage, inflow, action, day)


GRID_SHAPE = (16, 12, N_LEVELS, 365)


def test_step_outcome_fields_have_broadcast_shape(physics):
    """Every field has the broadcast shape, also those that do not depend on the action (evaporation)."""
    _, out = _grid_step(physics)
    bad = {name: tuple(value.shape) for name, value in out._asdict().items() if value.shape != GRID_SHAPE}
    assert not bad
    # evaporation is the same for every release level of one (storage, inflow, day)
    evaporation = out.evaporation_hm3
    assert torch.equal(evaporation, evaporation[:, :, :1, :].expand(GRID_SHAPE))
    assert (evaporation > 0).any()


def test_level_table_interpolation_warns_nothing(recwarn):
    """The storage–level table is searched with contiguous columns (no torch.searchsorted copy warning)."""
    physics = ReservoirPhysics(ReservoirConfig(level_table=[(150.0, 20.0), (1500.0, 58.0)]), N_LEVELS)
    storage = torch.linspace(150.0, 1500.0, 8).view(2, 4).t()  # a non-contiguous query
    torch.testing.assert_close(physics.head_m(storage), 20.0 + (storage - 150.0) * (38.0 / 1350.0))
    torch.testing.assert_close(physics.head_m(storage.double()), 20.0 + (storage.double() - 150.0) * (38.0 / 1350.0))
    # a non-contiguous boundary given to interpolate directly
    table = torch.tensor([[0.0, 0.0], [1.0, 10.0], [3.0, 30.0]])
    torch.testing.assert_close(interpolate(torch.tensor([0.5, 2.0]), table[:, 0], table[:, 1]), torch.tensor([5.0, 20.0]))
    assert not [w for w in recwarn if "searchsorted" in str(w.message)]


def test_broadcast_grid(physics):
    """storage × inflow × action × day as broadcast tensors: invariants hold on the whole grid."""
    (storage, inflow, action, day), out = _grid_step(physics)
    shape = GRID_SHAPE
    for name, value in out._asdict().items():
        assert value.shape == shape, name
    s, i = storage.expand(shape), inflow.expand(shape)
    assert _mass_residual(s, i, out).max().item() <= 1e-5
    assert out.next_storage_hm3.min().item() >= DEAD - 1e-3
    assert out.next_storage_hm3.max().item() <= CAP + 1e-3
    # the batch is independent: each element equals the unbatched step of that element
    for idx in [(0, 0, 0, 0), (3, 5, 7, 100), (15, 11, 10, 364), (8, 0, 10, 196)]:
        single = physics.step(s[idx], i[idx], action.expand(shape)[idx], day.expand(shape)[idx])
        for name, value in single._asdict().items():
            torch.testing.assert_close(getattr(out, name)[idx], value, msg=name)


def test_more_release_never_means_more_storage(physics):
    storage, inflow, _, day = _sample(20_000, 7)
    previous = None
    for a in range(N_LEVELS):
        out = physics.step(storage, inflow, torch.full_like(day, a), day)
        if previous is not None:
            assert (out.release_hm3 >= previous.release_hm3 - 1e-4).all()
            assert (out.next_storage_hm3 <= previous.next_storage_hm3 + 1e-3).all()
        previous = out


# ------------------------------------------------------------------ hand computations


def _hand_energy(cfg: ReservoirConfig, release_hm3: float, mean_storage: float, head_m: float) -> float:
    q = min(release_hm3 / HM3_PER_CMS_DAY, cfg.turbine_capacity_cms)
    power_mw = cfg.efficiency * WATER_DENSITY_KG_M3 * GRAVITY_M_S2 * q * head_m / 1e6
    if mean_storage < cfg.min_operating_hm3:
        return 0.0
    return min(power_mw * 24.0, cfg.installed_capacity_mw * 24.0)


def _hand_step(cfg: ReservoirConfig, n_levels: int, s: float, i: float, a: int, day: int):
    """DESIGN §2 in plain floats (power-law head)."""
    r_max = cfg.release_capacity_cms * HM3_PER_CMS_DAY
    target = a / (n_levels - 1) * r_max
    area = cfg.area_at_capacity_km2 * (s / cfg.capacity_hm3) ** cfg.area_exponent
    depth = cfg.evaporation_mm_per_day * (
        1 + cfg.evaporation_amplitude * math.cos(2 * math.pi * (day - cfg.evaporation_peak_day) / DAYS_PER_YEAR)
    )
    evap = min(area * depth * 1e-3, s + i - cfg.dead_storage_hm3)
    release = max(0.0, min(target, s + i - evap - cfg.dead_storage_hm3))
    spill = max(0.0, s + i - evap - release - cfg.capacity_hm3)
    s_next = s + i - evap - release - spill
    mean = 0.5 * (s + s_next)
    head = cfg.max_head_m * (mean / cfg.capacity_hm3) ** cfg.level_exponent
    return dict(evap=evap, release=release, spill=spill, s_next=s_next, mean=mean, head=head)


@pytest.mark.parametrize(
    "s, i, a, day",
    [
        (1000.0, 20.0, 10, 0),  # turbine flow capped: 400 m³/s target, 250 through the turbines
        (800.0, 10.0, 5, 120),  # 200 m³/s, below turbine capacity
        (1450.0, 120.0, 3, 196),  # spills at the evaporation peak
        (310.0, 0.5, 10, 300),  # mean storage falls below the minimum operating level: no energy
        (1500.0, 300.0, 10, 50),  # full head: power above installed capacity, capped
    ],
)
def test_step_matches_hand_computation(physics, s, i, a, day):
    out = physics.step(
        torch.tensor(s, dtype=torch.float64), torch.tensor(i, dtype=torch.float64), torch.tensor(a), torch.tensor(day)
    )
    hand = _hand_step(CFG, N_LEVELS, s, i, a, day)
    # the seasonal phase is evaluated in float32 (int day tensor × float) even for float64 storages: rel 1e-6
    assert out.evaporation_hm3.item() == pytest.approx(hand["evap"], rel=1e-6)
    assert out.release_hm3.item() == pytest.approx(hand["release"], rel=1e-9, abs=1e-6)
    assert out.spill_hm3.item() == pytest.approx(hand["spill"], rel=1e-9, abs=1e-6)
    assert out.next_storage_hm3.item() == pytest.approx(hand["s_next"], rel=1e-9)
    energy = _hand_energy(CFG, hand["release"], hand["mean"], hand["head"])
    assert out.energy_mwh.item() == pytest.approx(energy, rel=1e-9, abs=1e-9)
    if a == 10 and s == 1000.0:
        assert out.release_hm3.item() == pytest.approx(34.56)
    if s == 1450.0:
        assert out.spill_hm3.item() > 0 and out.next_storage_hm3.item() == pytest.approx(CAP)
    if s == 310.0:
        assert hand["mean"] < CFG.min_operating_hm3 and out.energy_mwh.item() == 0
    if s == 1500.0:
        assert out.energy_mwh.item() == pytest.approx(CFG.installed_capacity_mw * 24)


def test_energy_formula_worked_example(physics):
    """S = 1000, I = 20, full release on Jan 1: Q_t = 250 m³/s, H = 60·(S̄/1500)^0.5, E = η ρ g Q H · 24 / 1e6."""
    out = physics.step(torch.tensor(1000.0, dtype=torch.float64), torch.tensor(20.0, dtype=torch.float64),
                       torch.tensor(10), torch.tensor(0))
    s_next = out.next_storage_hm3.item()
    assert out.release_hm3.item() == pytest.approx(34.56)  # 400 m³/s for a day
    head = 60.0 * ((1000.0 + s_next) / 2 / 1500.0) ** 0.5
    expected = 0.9 * 1000.0 * 9.81 * 250.0 * head * 24.0 / 1e6
    assert 2000.0 < expected < 130.0 * 24  # a sanity check of the example itself (≈ 2,580 MWh, not capped)
    assert out.energy_mwh.item() == pytest.approx(expected, rel=1e-9)


def test_energy_capped_at_installed_capacity(physics):
    out = physics.step(torch.tensor(CAP), torch.tensor(200.0), torch.tensor(10), torch.tensor(0))
    uncapped = 0.9 * 1000 * 9.81 * 250 * 60.0 * 24 / 1e6  # ≈ 3,178 MWh at full head
    assert uncapped > 130.0 * 24
    assert out.energy_mwh.item() == pytest.approx(130.0 * 24)


def test_no_energy_below_min_operating_level(physics):
    storage = torch.tensor([290.0, 310.0])
    out = physics.step(storage, torch.tensor([0.0, 34.56]), torch.tensor([10, 10]), torch.tensor([0, 0]))
    # first: mean storage ≈ 273 < 300 → no energy although water is released
    assert out.release_hm3[0] > 0 and out.energy_mwh[0] == 0
    # second: storage stays ~310 → energy
    assert out.energy_mwh[1] > 0


# ------------------------------------------------------------------ relations


def test_level_table_interpolation_and_use_in_energy():
    table = [(150.0, 20.0), (600.0, 40.0), (1200.0, 52.0), (1500.0, 58.0)]
    cfg = ReservoirConfig(level_table=table)
    physics = ReservoirPhysics(cfg, N_LEVELS)
    storages = torch.tensor([s for s, _ in table])
    torch.testing.assert_close(physics.head_m(storages), torch.tensor([h for _, h in table]))
    # midpoints, in a 2-D batch
    mid = torch.tensor([[375.0, 900.0], [1350.0, 1275.0]])
    torch.testing.assert_close(physics.head_m(mid), torch.tensor([[30.0, 46.0], [55.0, 53.5]]))
    # constant beyond the ends
    torch.testing.assert_close(physics.head_m(torch.tensor([0.0, 100.0, 1600.0])), torch.tensor([20.0, 20.0, 58.0]))
    # the step uses the table head: S = 1200 at full release with inflow equal to release + evaporation
    s, a, day = 1200.0, 5, 0
    evap = physics.step(torch.tensor(s), torch.tensor(0.0), torch.tensor(0), torch.tensor(day)).evaporation_hm3.item()
    release = 5 / 10 * R_MAX
    out = physics.step(torch.tensor(s, dtype=torch.float64), torch.tensor(release + evap, dtype=torch.float64),
                       torch.tensor(a), torch.tensor(day))
    assert out.next_storage_hm3.item() == pytest.approx(s, abs=1e-3)
    expected = 0.9 * 1000 * 9.81 * (release / HM3_PER_CMS_DAY) * 52.0 * 24 / 1e6
    assert out.energy_mwh.item() == pytest.approx(expected, rel=1e-4)


def test_interpolate_function():
    xp = torch.tensor([0.0, 1.0, 3.0])
    fp = torch.tensor([0.0, 10.0, 30.0])
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(interpolate(x, xp, fp), torch.tensor([0.0, 0.0, 5.0, 10.0, 20.0, 30.0, 30.0]))


def test_power_law_head(physics):
    s = torch.tensor([0.0, 375.0, 1500.0])
    torch.testing.assert_close(physics.head_m(s), torch.tensor([0.0, 30.0, 60.0]))


def test_flood_failure_iff_spill_beyond_spillway(physics):
    spillway = CFG.spillway_capacity_cms * HM3_PER_CMS_DAY
    inflow = torch.linspace(0.0, MAX_INFLOW_HM3, 2001)
    out = physics.step(torch.full_like(inflow, CAP), inflow, torch.zeros(2001, dtype=torch.int64),
                       torch.zeros(2001, dtype=torch.int64))
    assert torch.equal(out.flood_failure, out.spill_hm3 > spillway)
    assert out.flood_failure.any() and not out.flood_failure.all()
    # opening the outlet fully takes R_max off the spill: fewer failures
    out_open = physics.step(torch.full_like(inflow, CAP), inflow, torch.full((2001,), 10), torch.zeros(2001, dtype=torch.int64))
    assert out_open.flood_failure.sum() < out.flood_failure.sum()
    assert torch.equal(out_open.flood_failure, out_open.spill_hm3 > spillway)


def test_drought_failure_when_drawn_to_dead(physics):
    out = physics.step(torch.tensor([DEAD + 5.0, DEAD + 5.0, 1000.0, DEAD]), torch.tensor([0.0, 0.0, 0.0, 0.0]),
                       torch.tensor([10, 0, 10, 0]), torch.tensor([0, 0, 0, 0]))
    # full release from 5 hm³ above dead: drawn exactly to dead, release cut to what was there
    assert out.next_storage_hm3[0].item() == pytest.approx(DEAD, abs=1e-3)
    assert out.release_hm3[0].item() < 5.0
    assert out.drought_failure.tolist() == [True, False, False, True]
    # at dead storage with nothing coming in nothing can leave: no evaporation, no release
    assert out.evaporation_hm3[3] == 0 and out.release_hm3[3] == 0


# ------------------------------------------------------------------ evaporation


def test_evaporation_grows_with_storage(physics):
    storage = torch.linspace(DEAD + 1.0, CAP, 500)
    for day in (0, 100, 196):
        evap = physics.step(storage, torch.full_like(storage, 10.0), torch.zeros(500, dtype=torch.int64),
                            torch.full((500,), day)).evaporation_hm3
        assert (evap.diff() > 0).all()


@pytest.mark.parametrize("peak_day", [196, 30, 364])
def test_evaporation_peaks_at_peak_day(peak_day):
    physics = ReservoirPhysics(ReservoirConfig(evaporation_peak_day=peak_day), N_LEVELS)
    days = torch.arange(365)
    evap = physics.step(torch.full((365,), 1000.0), torch.full((365,), 10.0), torch.zeros(365, dtype=torch.int64),
                        days).evaporation_hm3
    assert int(evap.argmax()) == peak_day
    # hand value at the peak: area(1000) · 2.5 mm · (1 + 0.8) · 1e-3
    area = 60.0 * (1000.0 / 1500.0) ** 0.7
    assert evap[peak_day].item() == pytest.approx(area * 2.5 * 1.8 * 1e-3, rel=1e-5)
    trough = (peak_day + 182) % 365
    assert evap[trough].item() == pytest.approx(area * 2.5 * (1 - 0.8 * math.cos(math.pi / 365)) * 1e-3, rel=1e-4)


def test_evaporation_never_below_dead(physics):
    """Evaporation from a reservoir at dead storage with no inflow cannot draw it below dead."""
    out = physics.step(torch.tensor([DEAD, DEAD + 0.001]), torch.zeros(2), torch.zeros(2, dtype=torch.int64),
                       torch.full((2,), 196))
    assert (out.next_storage_hm3 >= DEAD - 1e-4).all()
    assert (out.evaporation_hm3 <= torch.tensor([0.0, 0.001]) + 1e-4).all()


# ------------------------------------------------------------------ supply demand


def test_supply_deficit_with_demand():
    cfg = ReservoirConfig(supply_demand_cms=100.0, supply_amplitude=0.5, supply_peak_day=180)
    physics = ReservoirPhysics(cfg, N_LEVELS)
    demand_peak = 100.0 * HM3_PER_CMS_DAY * 1.5  # 12.96 hm³ at the peak day
    actions = torch.tensor([0, 3, 4, 10])
    out = physics.step(torch.full((4,), 1000.0), torch.full((4,), 10.0), actions, torch.full((4,), 180))
    torch.testing.assert_close(out.supply_demand_hm3, torch.full((4,), demand_peak))
    targets = actions * R_MAX / 10
    expected = (demand_peak - targets).clamp(min=0)
    torch.testing.assert_close(out.supply_deficit_hm3, expected.float())
    assert out.supply_deficit_hm3[0].item() == pytest.approx(demand_peak)
    assert out.supply_deficit_hm3[2:].eq(0).all()
    # supply component: −(deficit / demand)²
    comps = reward_components(physics, out)
    torch.testing.assert_close(comps["supply"], -(expected / demand_peak).square().float())
    # seasonal demand: lowest half a year from the peak
    days = torch.arange(365)
    demand = physics.supply_demand_hm3(days)
    assert int(demand.argmax()) == 180
    assert demand.min().item() == pytest.approx(100.0 * HM3_PER_CMS_DAY * (1 - 0.5 * math.cos(math.pi / 365)), rel=1e-4)
    # deficit when the reservoir is empty: release cut to zero, whole demand unmet
    empty = physics.step(torch.tensor([DEAD]), torch.tensor([0.0]), torch.tensor([10]), torch.tensor([180]))
    assert empty.supply_deficit_hm3.item() == pytest.approx(demand_peak)


# ------------------------------------------------------------------ reward


def test_reward_components_in_documented_ranges_and_weighted_sum():
    cfg = ReservoirConfig(supply_demand_cms=60.0, supply_amplitude=0.3)
    physics = ReservoirPhysics(cfg, N_LEVELS)
    storage, inflow, action, day = _sample(50_000, 11, physics_config=cfg)
    out = physics.step(storage, inflow, action, day)
    comps = reward_components(physics, out)
    assert set(comps) == set(COMPONENTS)
    for name, value in comps.items():
        assert value.shape == storage.shape, name
        assert torch.isfinite(value).all(), name
    assert comps["hydropower"].min() >= 0 and comps["hydropower"].max() <= 1 + 1e-6
    for name in ("flood", "env_flow", "supply"):
        assert comps[name].min() >= -1 - 1e-6 and comps[name].max() <= 0, name
        assert (comps[name] < 0).any(), name  # the sweep reaches each penalty
    assert comps["spill"].max() <= 0 and (comps["spill"] < 0).any()
    assert set(comps["failure"].unique().tolist()) == {-1.0, 0.0}

    # the formulas themselves
    flood_depth = cfg.capacity_hm3 - cfg.flood_zone_hm3
    torch.testing.assert_close(comps["hydropower"], out.energy_mwh / (cfg.installed_capacity_mw * 24))
    torch.testing.assert_close(comps["flood"], -((out.next_storage_hm3 - cfg.flood_zone_hm3) / flood_depth).clamp(0, 1))
    torch.testing.assert_close(comps["env_flow"], -((cfg.env_flow_cms - out.downstream_cms) / cfg.env_flow_cms).clamp(min=0))
    torch.testing.assert_close(comps["spill"], -out.spill_hm3 / R_MAX)
    torch.testing.assert_close(comps["failure"], -(out.flood_failure | out.drought_failure).float())

    weights = RewardConfig(hydropower=2.0, flood=0.5, env_flow=3.0, supply=0.25, spill=0.7, failure=40.0)
    expected = sum(getattr(weights, name) * comps[name] for name in COMPONENTS)
    torch.testing.assert_close(weighted_reward(weights, comps), expected)
    # zero weights switch a component off
    only_power = RewardConfig(hydropower=1.0, flood=0, env_flow=0, supply=0, spill=0, failure=0)
    torch.testing.assert_close(weighted_reward(only_power, comps), comps["hydropower"])


def test_env_flow_component_hand_values(physics):
    # release 0 with no spill: whole env flow missing; full release 400 m³/s: none missing
    out = physics.step(torch.tensor([800.0, 800.0, 800.0]), torch.tensor([5.0, 5.0, 5.0]), torch.tensor([0, 10, 1]),
                       torch.tensor([0, 0, 0]))
    comps = reward_components(physics, out)
    # level 1 is 40 m³/s ≥ 30 m³/s env flow
    torch.testing.assert_close(comps["env_flow"], torch.tensor([-1.0, 0.0, 0.0]))
    assert comps["supply"].eq(0).all()  # no demand configured


def test_release_levels_and_action_for_release(physics):
    levels = physics.release_levels_hm3()
    assert levels.shape == (N_LEVELS,)
    torch.testing.assert_close(levels, torch.arange(N_LEVELS, dtype=torch.float32) * (R_MAX / 10))
    torch.testing.assert_close(physics.action_for_release(levels), torch.arange(N_LEVELS))
    assert physics.action_for_release(torch.tensor([-5.0, 1e6])).tolist() == [0, N_LEVELS - 1]


# ------------------------------------------------------------------ seasonal flood-control zone

SEASONAL = [(0, 1000.0), (90, 700.0), (180, 1200.0)]


def test_seasonal_flood_zone_interpolates_linearly_and_periodically():
    physics = ReservoirPhysics(ReservoirConfig(flood_zone_hm3=SEASONAL), N_LEVELS)
    assert physics.seasonal_flood_zone and not ReservoirPhysics(CFG, N_LEVELS).seasonal_flood_zone
    days = torch.tensor([0, 45, 90, 135, 180, 272, 364, 365])
    # day 272.5 is half way from (180, 1200) to (365, 1000) across the new year; day 365 wraps to day 0
    expected = torch.tensor([1000.0, 850.0, 700.0, 950.0, 1200.0, 1200.0 - 200.0 * 92 / 185,
                             1200.0 - 200.0 * 184 / 185, 1000.0])
    torch.testing.assert_close(physics.flood_zone_hm3(days), expected)
    constant = ReservoirPhysics(CFG, N_LEVELS).flood_zone_hm3(days)
    torch.testing.assert_close(constant, torch.full((8,), CFG.flood_zone_hm3))


def test_flood_penalty_follows_the_flood_zone_of_the_day():
    physics = ReservoirPhysics(ReservoirConfig(flood_zone_hm3=SEASONAL, evaporation_mm_per_day=0.0), N_LEVELS)
    storage = torch.full((3,), 1100.0)
    out = physics.step(storage, torch.zeros(3), torch.zeros(3, dtype=torch.int64), torch.tensor([0, 90, 180]))
    torch.testing.assert_close(out.flood_zone_hm3, torch.tensor([1000.0, 700.0, 1200.0]))
    flood = reward_components(physics, out)["flood"]
    # 1,100 hm³ is 100 of the 500 hm³ zone on day 0, 400 of 800 on day 90, under the zone on day 180
    torch.testing.assert_close(flood, torch.tensor([-0.2, -0.5, 0.0]))
    precomputed = physics.step(storage, torch.zeros(3), torch.zeros(3, dtype=torch.int64), torch.tensor([0, 90, 180]),
                               flood_zone_hm3=torch.tensor([1000.0, 700.0, 1200.0]))
    torch.testing.assert_close(precomputed.flood_zone_hm3, out.flood_zone_hm3)
