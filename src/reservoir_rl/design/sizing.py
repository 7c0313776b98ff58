"""A reservoir sized to a river's daily record by the rules of reservoir planning, from its training years only.

Every value comes from the training water years' daily inflow by one rule (the constants below; each rule
is written beside its value in the config `reservoir_rl.design.config_text` writes):

- active storage: the storage a constant release of ``YIELD_FRACTION`` of the mean inflow needs (sequent
  peak, `reservoir_rl.baselines.firm_yield.required_storage_hm3`, without evaporation, which depends on the
  lake this sizes), kept within ``STORAGE_RATIO_RANGE`` years of mean inflow volume; dead storage and the
  minimum operating level are fixed fractions of the capacity;
- release capacity: the flow exceeded on ``RELEASE_EXCEEDANCE`` of the training days (at least
  ``RELEASE_MIN_MEAN_RATIO`` × the mean); turbine capacity: the flow exceeded on ``TURBINE_EXCEEDANCE`` of
  them (at least the mean, at most the release capacity);
- spillway capacity, a design flood: release + spillway pass the largest training day's inflow with its
  part above the release capacity × ``FLOOD_MARGIN`` (the largest factor ``inflow.train_flood_scale``
  trains on), with the reservoir full;
- environmental flow: Q95, the flow exceeded on 95 % of the training days;
- head, lake area, plant: a ``MAX_HEAD_M`` dam; the lake area at full storage is dS/dh there,
  capacity / (level exponent × head); installed capacity = ρ g η × turbine capacity × head;
- the seasonal flood-control zone (`reservoir_rl.env.flood_zone`) between ``MIN_SPACE_FRACTION`` and
  ``MAX_SPACE_FRACTION`` of the capacity, and `DEFAULT_RULE_CURVE` kept ``RULE_MARGIN`` under it.

Units: volumes hm³, flows m³/s, head m, area km², power MW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from reservoir_rl.baselines.firm_yield import required_storage_hm3
from reservoir_rl.env.flood_zone import flood_zone_curve, rule_curve_below_flood_zone, storage_decimals
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.units import HM3_PER_CMS_DAY

DAYS_PER_MEAN_YEAR = 365.25
YIELD_FRACTION = 0.5  # active storage sustains this share of the mean inflow (base.yaml's sustains 0.52)
STORAGE_RATIO_RANGE = (0.05, 1.5)  # active storage kept within these years of mean inflow volume
DEAD_FRACTION = 0.1  # dead storage / capacity (base.yaml: 150 / 1500)
MIN_OPERATING_FRACTION = 0.2  # minimum operating level / capacity (base.yaml: 300 / 1500)
RELEASE_EXCEEDANCE = 0.05  # release capacity = flow exceeded on 5 % of the training days
RELEASE_MIN_MEAN_RATIO = 1.5  # … and at least 1.5 × the mean inflow
TURBINE_EXCEEDANCE = 0.20  # turbine capacity = flow exceeded on 20 % of the training days
ENV_FLOW_EXCEEDANCE = 0.95  # environmental flow = Q95
FLOOD_MARGIN = 1.5  # the design flood: the largest training day, its part above the release capacity × 1.5
MAX_HEAD_M = 60.0
LEVEL_EXPONENT = 0.5
EFFICIENCY = 0.9
WATER_WEIGHT_KN_PER_M3 = 9.81  # ρ g, kN/m³: power MW = ρ g η Q H / 1000 with Q in m³/s, H in m
MIN_SPACE_FRACTION = 0.15  # flood-control space at least 15 % of capacity (base.yaml's constant zone had this)
MAX_SPACE_FRACTION = 0.6  # … and at most 60 %: the zone's bottom stays above the minimum operating level
FLOOD_VOLUME_DAYS = 10
FLOOD_WINDOW_DAYS = 30
FLOOD_ZONE_POINTS = 12
RULE_MARGIN = 0.05  # the rule curve stays 5 % of capacity under the flood-control zone
DEFAULT_RULE_CURVE: tuple[tuple[int, float], ...] = ((0, 0.62), (59, 0.55), (105, 0.6), (150, 0.8), (243, 0.8), (304, 0.7))
"""[day of year, storage fraction]: the rule curve of the schema's default, lowered under each river's zone."""


@dataclass(frozen=True)
class ReservoirDesign:
    """A reservoir sized to the training years of a record (see the module docstring for each rule)."""

    mean_inflow_cms: float  # of the training years
    active_storage_hm3: float
    storage_ratio_years: float  # active storage / mean annual inflow volume
    required_storage_hm3: float  # what YIELD_FRACTION of the mean needs (before the STORAGE_RATIO_RANGE limits)
    capacity_hm3: float
    dead_storage_hm3: float
    min_operating_hm3: float
    release_capacity_cms: float
    turbine_capacity_cms: float
    spillway_capacity_cms: float
    largest_inflow_cms: float  # the training years' largest day
    largest_inflow_date: str
    env_flow_cms: float
    max_head_m: float
    level_exponent: float
    area_at_capacity_km2: float
    efficiency: float
    installed_capacity_mw: float
    flood_zone_hm3: list[tuple[int, float]]
    rule_curve: list[tuple[int, float]]


def exceeded_flow_cms(inflow_cms: np.ndarray, share: float) -> float:
    """The flow (m³/s) exceeded on ``share`` of the days (Q95 for share 0.95)."""
    return float(np.quantile(np.asarray(inflow_cms, dtype=np.float64), 1.0 - share))


def _round(value: float, significant: int = 4) -> float:
    """``value`` to ``significant`` digits (a design value does not need more)."""
    if value == 0 or not np.isfinite(value):
        return float(value)
    return float(round(value, significant - 1 - int(np.floor(np.log10(abs(value))))))


def design_reservoir(record: InflowRecord, train_years: Sequence[int]) -> ReservoirDesign:
    """Size a reservoir to the days of ``train_years`` in ``record`` (see the module docstring)."""
    days = np.isin(record.water_years, np.asarray(list(train_years), dtype=np.int64))
    inflow = record.inflow_cms[days]
    if inflow.size == 0:
        raise ValueError(f"{record.name}: no day in the training water years")
    mean_cms = float(inflow.mean())
    annual_hm3 = mean_cms * HM3_PER_CMS_DAY * DAYS_PER_MEAN_YEAR
    needed_hm3 = float(required_storage_hm3(inflow * HM3_PER_CMS_DAY, YIELD_FRACTION * mean_cms * HM3_PER_CMS_DAY))
    low, high = STORAGE_RATIO_RANGE
    active_hm3 = _round(min(max(needed_hm3, low * annual_hm3), high * annual_hm3))
    capacity_hm3 = _round(active_hm3 / (1.0 - DEAD_FRACTION))
    decimals = storage_decimals(capacity_hm3)
    release_cms = _round(max(exceeded_flow_cms(inflow, RELEASE_EXCEEDANCE), RELEASE_MIN_MEAN_RATIO * mean_cms))
    turbine_cms = _round(min(max(exceeded_flow_cms(inflow, TURBINE_EXCEEDANCE), mean_cms), release_cms))
    largest = int(np.argmax(inflow))
    largest_cms = float(inflow[largest])
    spillway_cms = _round(max(FLOOD_MARGIN * (largest_cms - release_cms), 0.1 * release_cms))
    area_km2 = _round(capacity_hm3 / (LEVEL_EXPONENT * MAX_HEAD_M))  # hm³ / m = km²
    installed_mw = _round(WATER_WEIGHT_KN_PER_M3 * EFFICIENCY * turbine_cms * MAX_HEAD_M / 1000.0)
    zone = flood_zone_curve(
        record, train_years, capacity_hm3, release_cms, min_space_hm3=MIN_SPACE_FRACTION * capacity_hm3,
        volume_days=FLOOD_VOLUME_DAYS, window_days=FLOOD_WINDOW_DAYS, n_points=FLOOD_ZONE_POINTS,
        max_space_hm3=MAX_SPACE_FRACTION * capacity_hm3,
    )
    return ReservoirDesign(
        mean_inflow_cms=mean_cms,
        active_storage_hm3=active_hm3,
        storage_ratio_years=active_hm3 / annual_hm3,
        required_storage_hm3=needed_hm3,
        capacity_hm3=capacity_hm3,
        dead_storage_hm3=round(DEAD_FRACTION * capacity_hm3, decimals + 1),
        min_operating_hm3=round(MIN_OPERATING_FRACTION * capacity_hm3, decimals + 1),
        release_capacity_cms=release_cms,
        turbine_capacity_cms=turbine_cms,
        spillway_capacity_cms=spillway_cms,
        largest_inflow_cms=largest_cms,
        largest_inflow_date=str(record.dates[days][largest]),
        env_flow_cms=_round(exceeded_flow_cms(inflow, ENV_FLOW_EXCEEDANCE)),
        max_head_m=MAX_HEAD_M,
        level_exponent=LEVEL_EXPONENT,
        area_at_capacity_km2=area_km2,
        efficiency=EFFICIENCY,
        installed_capacity_mw=installed_mw,
        flood_zone_hm3=zone,
        rule_curve=rule_curve_below_flood_zone(DEFAULT_RULE_CURVE, zone, capacity_hm3, RULE_MARGIN),
    )
