"""A seasonal flood-control zone sized from an inflow record, as flood-control pools are sized in practice.

The flood-control space a reservoir keeps empty on a date is the largest flood volume it must be able to
store then: here, the largest ``volume_days``-day volume of inflow above the release capacity (the water the
outlets cannot pass, which the reservoir has to hold) among the windows that start within ``window_days``
of that date in the given water years, and never less than ``min_space_hm3``. The bottom of the zone is
the capacity minus that space. The result is a ``[[day_of_year, storage_hm3], ...]`` curve for
``env.reservoir.flood_zone_hm3`` (interpolated linearly and periodically between its points).

Sized on the training years only, the curve uses nothing the held-out years hold.
`rule_curve_below_flood_zone` lowers a rule curve's targets under such a zone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.physics import periodic_interpolate
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY


def flood_volumes_hm3(inflow_cms: np.ndarray, release_capacity_cms: float, volume_days: int) -> np.ndarray:
    """Volume of inflow above the release capacity over the ``volume_days`` days starting on each day,
    hm³, shape (T − volume_days + 1,)."""
    excess_hm3 = np.clip(np.asarray(inflow_cms, dtype=np.float64) - release_capacity_cms, 0.0, None) * HM3_PER_CMS_DAY
    return np.convolve(excess_hm3, np.ones(volume_days), mode="valid")


def flood_zone_curve(
    record: InflowRecord,
    water_years: Sequence[int],
    capacity_hm3: float,
    release_capacity_cms: float,
    min_space_hm3: float,
    volume_days: int = 10,
    window_days: int = 30,
    n_points: int = 12,
    max_space_hm3: float | None = None,
) -> list[tuple[int, float]]:
    """Bottom of the flood-control zone (hm³) on ``n_points`` days of year spread evenly from 0.

    Space on day d = max(``min_space_hm3``, largest ``volume_days``-day flood volume (above
    ``release_capacity_cms``) of a window starting within ``window_days`` days of d, in ``water_years``),
    capped at ``max_space_hm3`` (default: the capacity); bottom = capacity − space, rounded to
    `storage_decimals` (1 hm³ for a capacity of 1,000–9,999 hm³, 0.01 hm³ for 10–99 hm³). Raises
    ``ValueError`` when the water years hold no such window.
    """
    if volume_days < 1 or window_days < 0 or n_points < 1:
        raise ValueError(f"need volume_days >= 1, window_days >= 0, n_points >= 1, got {volume_days}, {window_days}, {n_points}")
    volumes = flood_volumes_hm3(record.inflow_cms, release_capacity_cms, volume_days)
    n = volumes.size
    in_years = np.isin(record.water_years[:n], np.asarray(list(water_years), dtype=np.int64))
    if not in_years.any():
        raise ValueError(f"{record.name}: no {volume_days}-day window starts in water years {list(water_years)[:3]}…")
    day_of_year = record.day_of_year[:n]
    decimals = storage_decimals(capacity_hm3)
    most_hm3 = capacity_hm3 if max_space_hm3 is None else min(max_space_hm3, capacity_hm3)
    curve = []
    for k in range(n_points):
        day = int(round(k * DAYS_PER_YEAR / n_points))
        distance = np.abs((day_of_year - day + DAYS_PER_YEAR / 2) % DAYS_PER_YEAR - DAYS_PER_YEAR / 2)
        near = in_years & (distance <= window_days)
        largest_hm3 = float(volumes[near].max()) if near.any() else 0.0
        space_hm3 = min(max(largest_hm3, min_space_hm3), most_hm3)
        curve.append((day, float(round(capacity_hm3 - space_hm3, decimals))))
    return curve


def design_daily_inflow_cms(
    record: InflowRecord, water_years: Sequence[int], window_days: int = 30, quantile: float = 1.0
) -> np.ndarray:
    """The design daily inflow (m³/s) of each day of year, float64 (366,) for days 0 … 365 (0 = Jan 1; day 365
    is the last day of a leap year): the ``quantile`` of the daily inflows ``water_years`` brought within
    ``window_days`` days of that day of year (periodic), 1 = the largest. The design day of the release guard's
    flood reserve (`reservoir_rl.env.safety`), sized as the flood zone is, from the training years only. Raises
    ``ValueError`` when the water years hold no day of the record."""
    if window_days < 0:
        raise ValueError(f"need window_days >= 0, got {window_days}")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"need 0 < quantile <= 1, got {quantile}")
    in_years = np.isin(record.water_years, np.asarray(list(water_years), dtype=np.int64))
    if not in_years.any():
        raise ValueError(f"{record.name}: no day in water years {list(water_years)[:3]}…")
    day_of_year, inflow = record.day_of_year[in_years], record.inflow_cms[in_years]
    design = np.zeros(366)
    for day in range(366):  # every inflow within the periodic ±window around the day (quantile 1: the largest)
        distance = np.abs((day_of_year - day + DAYS_PER_YEAR / 2) % DAYS_PER_YEAR - DAYS_PER_YEAR / 2)
        near = inflow[distance <= window_days]
        design[day] = float(np.quantile(near, quantile)) if near.size else 0.0
    return design


def storage_decimals(capacity_hm3: float) -> int:
    """Decimals (>= 0) that keep four significant digits of a storage up to ``capacity_hm3`` (hm³):
    0 for 1,000–9,999 hm³, 2 for 10–99 hm³, 4 for 0.1–0.99 hm³."""
    return max(0, 3 - int(np.floor(np.log10(capacity_hm3)))) if capacity_hm3 > 0 else 0


def rule_curve_below_flood_zone(
    rule_curve: Sequence[tuple[float, float]],
    flood_zone: Sequence[tuple[int, float]],
    capacity_hm3: float,
    margin_fraction: float = 0.05,
) -> list[tuple[int, float]]:
    """A rule curve (``[[day_of_year, storage fraction], ...]``) lowered where it would stand less than
    ``margin_fraction`` of capacity below the flood-control zone: on every day of either curve, the target
    is min(rule curve, flood-zone bottom / capacity − margin), rounded to 0.001.

    Operators keep the target storage of a rule curve in the conservation pool, under the flood-control
    zone: a rule curve that reaches into it stores water the zone exists to keep out."""
    rule_days, rule_values = [float(d) for d, _ in rule_curve], [float(f) for _, f in rule_curve]
    zone_days, zone_values = [float(d) for d, _ in flood_zone], [float(s) / capacity_hm3 for _, s in flood_zone]
    days = sorted({int(d) for d in rule_days} | {int(d) for d in zone_days})
    day_tensor = torch.tensor(days, dtype=torch.float64)
    rule = periodic_interpolate(day_tensor, rule_days, rule_values)
    ceiling = periodic_interpolate(day_tensor, zone_days, zone_values) - margin_fraction
    target = torch.minimum(rule, ceiling).clamp(min=0.0)
    return [(day, round(float(value), 3)) for day, value in zip(days, target)]
