"""Daily reservoir physics as pure tensor functions (no state, no RL).

Volumes are hm³ (10⁶ m³) per day, flows m³/s, heads m, energy MWh. Every function broadcasts over any
batch shape, so the same code steps 4,096 independent reservoirs or a DP storage grid × release levels.

One step for release level ``a`` (``../DESIGN`` §2): target release ``a/(n−1)·R_max``; evaporation from the
lake area; the release is cut so storage never falls below dead storage; what exceeds capacity spills;
``S' = S + I − E − R − W`` closes to rounding error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch

from reservoir_rl.config import ReservoirConfig
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY

WATER_DENSITY_KG_M3 = 1000.0
GRAVITY_M_S2 = 9.81


class StepOutcome(NamedTuple):
    """Physical result of one daily step; every field has the broadcast batch shape."""

    next_storage_hm3: torch.Tensor
    release_hm3: torch.Tensor  # controlled release actually made (≤ target)
    spill_hm3: torch.Tensor  # uncontrolled spill over the crest
    evaporation_hm3: torch.Tensor
    energy_mwh: torch.Tensor
    downstream_cms: torch.Tensor  # (release + spill) as a mean daily flow
    supply_deficit_hm3: torch.Tensor
    supply_demand_hm3: torch.Tensor
    flood_zone_hm3: torch.Tensor  # bottom of the flood-control zone on the day
    flood_failure: torch.Tensor  # bool: spill beyond spillway capacity (dam overtopping)
    drought_failure: torch.Tensor  # bool: storage drawn to dead storage


@dataclass(frozen=True)
class ReservoirPhysics:
    """Constants of one reservoir in the units the step works in (hm³ per day), built from its config."""

    config: ReservoirConfig
    n_release_levels: int
    # storage–level table as contiguous (storage_hm3, head_m) columns, built once per (dtype, device)
    _level_columns: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def capacity_hm3(self) -> float:
        return self.config.capacity_hm3

    @property
    def dead_storage_hm3(self) -> float:
        return self.config.dead_storage_hm3

    @property
    def seasonal_flood_zone(self) -> bool:
        """True when the bottom of the flood-control zone follows a curve over the year."""
        return isinstance(self.config.flood_zone_hm3, list)

    def flood_zone_hm3(self, day_of_year: torch.Tensor) -> torch.Tensor:
        """Bottom of the flood-control zone (hm³) on each day of year (any shape, 0-based), float32.

        A constant, or the configured [[day_of_year, storage_hm3], ...] curve interpolated linearly and
        periodically over 365 days."""
        zone = self.config.flood_zone_hm3
        if not self.seasonal_flood_zone:
            return torch.full(day_of_year.shape, float(zone), dtype=torch.float32, device=day_of_year.device)
        days = [float(day) for day, _ in zone]
        storages = [float(storage) for _, storage in zone]
        return periodic_interpolate(day_of_year, days, storages).to(torch.float32)

    @property
    def release_capacity_hm3(self) -> float:
        """Controlled release capacity in hm³ per day."""
        return self.config.release_capacity_cms * HM3_PER_CMS_DAY

    @property
    def max_daily_energy_mwh(self) -> float:
        return self.config.installed_capacity_mw * 24.0

    def release_levels_hm3(self, device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
        """Target release of each level, shape (n_release_levels,), hm³ per day."""
        return torch.linspace(0.0, self.release_capacity_hm3, self.n_release_levels, device=device, dtype=dtype)

    def action_for_release(self, release_hm3: torch.Tensor) -> torch.Tensor:
        """Nearest release level (int64) for a desired release in hm³/day; same shape as the input."""
        step = self.release_capacity_hm3 / (self.n_release_levels - 1)
        return torch.round(release_hm3 / step).clamp(0, self.n_release_levels - 1).long()

    # ------------------------------------------------------------------ relations
    def head_m(self, storage_hm3: torch.Tensor) -> torch.Tensor:
        """Head above tailwater (m) from the storage–level relation (power law or table)."""
        cfg = self.config
        if cfg.level_table is None:
            fraction = (storage_hm3 / cfg.capacity_hm3).clamp(min=0.0)
            return cfg.max_head_m * _pow(fraction, cfg.level_exponent)
        key = (storage_hm3.dtype, storage_hm3.device)
        columns = self._level_columns.get(key)
        if columns is None:
            table = torch.tensor(cfg.level_table, dtype=storage_hm3.dtype, device=storage_hm3.device)
            columns = self._level_columns[key] = (table[:, 0].contiguous(), table[:, 1].contiguous())
        return interpolate(storage_hm3, *columns)

    def area_km2(self, storage_hm3: torch.Tensor) -> torch.Tensor:
        fraction = (storage_hm3 / self.config.capacity_hm3).clamp(min=0.0)
        return self.config.area_at_capacity_km2 * _pow(fraction, self.config.area_exponent)

    def evaporation_depth_mm(self, day_of_year: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        phase = 2.0 * math.pi * (day_of_year - cfg.evaporation_peak_day) / DAYS_PER_YEAR
        return cfg.evaporation_mm_per_day * (1.0 + cfg.evaporation_amplitude * torch.cos(phase))

    def supply_demand_hm3(self, day_of_year: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        phase = 2.0 * math.pi * (day_of_year - cfg.supply_peak_day) / DAYS_PER_YEAR
        return cfg.supply_demand_cms * HM3_PER_CMS_DAY * (1.0 + cfg.supply_amplitude * torch.cos(phase))

    # ------------------------------------------------------------------ the step
    def water_balance(
        self, storage_hm3: torch.Tensor, inflow_hm3: torch.Tensor, action: torch.Tensor,
        evaporation_depth_mm: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The day's water (hm³): (evaporation, release, spill, next storage), inputs broadcast together as in
        `step` (which adds energy, supply and the failures to it); the release guard needs only this part."""
        cfg = self.config
        dead = cfg.dead_storage_hm3
        target_hm3 = action.to(storage_hm3.dtype) * (self.release_capacity_hm3 / (self.n_release_levels - 1))
        water_hm3 = storage_hm3 + inflow_hm3
        evaporation_hm3 = (self.area_km2(storage_hm3) * evaporation_depth_mm * 1e-3).minimum(water_hm3 - dead)
        available_hm3 = water_hm3 - evaporation_hm3
        release_hm3 = target_hm3.minimum(available_hm3 - dead).clamp(min=0.0)
        spill_hm3 = (available_hm3 - release_hm3 - cfg.capacity_hm3).clamp(min=0.0)
        next_storage_hm3 = available_hm3 - release_hm3 - spill_hm3
        return evaporation_hm3, release_hm3, spill_hm3, next_storage_hm3

    def step(
        self,
        storage_hm3: torch.Tensor,
        inflow_hm3: torch.Tensor,
        action: torch.Tensor,
        day_of_year: torch.Tensor,
        evaporation_depth_mm: Optional[torch.Tensor] = None,
        supply_demand_hm3: Optional[torch.Tensor] = None,
        flood_zone_hm3: Optional[torch.Tensor] = None,
    ) -> StepOutcome:
        """Advance one day. ``action`` holds release levels in 0 … n−1; all inputs broadcast together.
        ``evaporation_depth_mm`` / ``supply_demand_hm3`` / ``flood_zone_hm3``, when given, are
        `evaporation_depth_mm(day_of_year)` / `supply_demand_hm3(day_of_year)` / `flood_zone_hm3(day_of_year)`
        computed beforehand (an env looks them up per record day)."""
        cfg = self.config
        dead = cfg.dead_storage_hm3
        if evaporation_depth_mm is None:
            evaporation_depth_mm = self.evaporation_depth_mm(day_of_year)
        if supply_demand_hm3 is None:
            supply_demand_hm3 = self.supply_demand_hm3(day_of_year)
        if flood_zone_hm3 is None:
            flood_zone_hm3 = self.flood_zone_hm3(day_of_year)
        evaporation_hm3, release_hm3, spill_hm3, next_storage_hm3 = self.water_balance(
            storage_hm3, inflow_hm3, action, evaporation_depth_mm
        )

        mean_storage_hm3 = 0.5 * (storage_hm3 + next_storage_hm3)
        turbine_cms = (release_hm3 / HM3_PER_CMS_DAY).clamp(max=cfg.turbine_capacity_cms)
        power_mw = cfg.efficiency * WATER_DENSITY_KG_M3 * GRAVITY_M_S2 * turbine_cms * self.head_m(mean_storage_hm3) / 1e6
        power_mw = torch.where(mean_storage_hm3 >= cfg.min_operating_hm3, power_mw, torch.zeros_like(power_mw))
        energy_mwh = (power_mw * 24.0).clamp(max=self.max_daily_energy_mwh)

        demand_hm3 = supply_demand_hm3.expand_as(release_hm3)
        supply_deficit_hm3 = (demand_hm3 - release_hm3).clamp(min=0.0)
        drought_tolerance_hm3 = 1e-4 * cfg.capacity_hm3
        return StepOutcome(
            next_storage_hm3=next_storage_hm3,
            release_hm3=release_hm3,
            spill_hm3=spill_hm3,
            # evaporation does not depend on the action: expand (a view, no copy) to the broadcast shape
            evaporation_hm3=evaporation_hm3.expand_as(release_hm3),
            energy_mwh=energy_mwh,
            downstream_cms=(release_hm3 + spill_hm3) / HM3_PER_CMS_DAY,
            supply_deficit_hm3=supply_deficit_hm3,
            supply_demand_hm3=demand_hm3,
            flood_zone_hm3=flood_zone_hm3.to(next_storage_hm3.dtype).expand_as(next_storage_hm3),
            flood_failure=spill_hm3 > cfg.spillway_capacity_cms * HM3_PER_CMS_DAY,
            drought_failure=next_storage_hm3 <= dead + drought_tolerance_hm3,
        )


def periodic_interpolate(day_of_year: torch.Tensor, days: list[float], values: list[float]) -> torch.Tensor:
    """Values of the (day, value) points at each day of year (any shape), linear between points and
    periodic over 365 days (the last point joins the first across the new year); float64.

    ``days`` strictly increasing in 0 … 365, one value per day."""
    periodic_days = [days[-1] - DAYS_PER_YEAR, *days, days[0] + DAYS_PER_YEAR]
    periodic_values = [values[-1], *values, values[0]]
    xp = torch.tensor(periodic_days, dtype=torch.float64, device=day_of_year.device)
    fp = torch.tensor(periodic_values, dtype=torch.float64, device=day_of_year.device)
    day = day_of_year.to(torch.float64) % DAYS_PER_YEAR
    upper = torch.searchsorted(xp, day.contiguous(), right=True).clamp(1, len(xp) - 1)
    lower = upper - 1
    weight = (day - xp[lower]) / (xp[upper] - xp[lower])
    return fp[lower] + weight * (fp[upper] - fp[lower])


def interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp(xp)`` at ``x`` (any shape), constant beyond the ends.

    ``xp`` (K,) increasing and ``fp`` (K,); a non-contiguous ``xp`` is copied (pass contiguous columns).
    """
    xp = xp.contiguous()
    x_clamped = x.clamp(xp[0], xp[-1])
    upper = torch.searchsorted(xp, x_clamped.contiguous()).clamp(1, len(xp) - 1)
    lower = upper - 1
    weight = (x_clamped - xp[lower]) / (xp[upper] - xp[lower])
    return fp[lower] + weight * (fp[upper] - fp[lower])


def _pow(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """``base ** exponent`` whose bits do not depend on where an element sits in the tensor.

    On some CPUs torch's float32 ``pow`` takes a SIMD path for the elements that fill whole vectors and a
    scalar path for the rest, and the two can differ in the last bit: a reservoir's evaporation would then
    depend on how many reservoirs the env steps beside it (vectorized seeds promise each seed the numbers it
    gets alone). float32 is therefore raised in float64, whose two paths agree to far below float32's
    rounding, and rounded back; other dtypes as they are."""
    if base.dtype == torch.float32:
        return base.double().pow(exponent).float()
    return base.pow(exponent)

