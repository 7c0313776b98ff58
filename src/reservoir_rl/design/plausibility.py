"""Plausibility warnings: a reservoir design that does not fit its river, or a record with a suspect day.

`plausibility_warnings` returns one line per finding for a `Config` and its inflow record; `init`,
`train`, `resume` and `evaluate` show them, and with ``--strict`` the first one is an error
(`raise_if_strict`). Each check and its threshold:

- active storage (capacity − dead storage) outside ``STORAGE_RATIO_WARN`` years of the training years'
  mean inflow volume;
- the training years' largest daily inflow above release + spillway capacity, when it overtops the dam
  even with the reservoir held at the bottom of its flood-control zone (`overtopping_days`);
- environmental flow above the training years' median flow;
- the SOP / hedging target below the first non-zero release level (`reservoir_rl.baselines.rules.target_warning`);
- a day more than ``OUTLIER_FACTOR`` × the record's ``OUTLIER_RANK``-th largest day (it moves the mean
  inflow, which scales the observation and the SOP target);
- fewer than ``MIN_TRAINING_YEARS`` training water years.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from reservoir_rl.baselines.rules import target_warning
from reservoir_rl.config import Config
from reservoir_rl.design.sizing import DAYS_PER_MEAN_YEAR
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.baselines.features import build_env
from reservoir_rl.errors import UserError
from reservoir_rl.units import HM3_PER_CMS_DAY

STORAGE_RATIO_WARN = (0.02, 3.0)  # years of mean inflow volume
OUTLIER_FACTOR = 10.0
OUTLIER_RANK = 10
MIN_TRAINING_YEARS = 10


class PlausibilityError(UserError):
    """A plausibility warning turned into an error by ``--strict``."""


def plausibility_warnings(config: Config, record: InflowRecord) -> list[str]:
    """One line per plausibility finding of ``config`` on ``record`` (empty when the design fits the river)."""
    env = build_env(config, "train", n_envs=1, inflow=record)
    reservoir = config.env.reservoir
    days = np.isin(record.water_years, np.asarray(env.training_water_years, dtype=np.int64))
    inflow, dates = record.inflow_cms[days], record.dates[days]
    mean_cms = float(inflow.mean())
    warnings: list[str] = []

    annual_hm3 = mean_cms * HM3_PER_CMS_DAY * DAYS_PER_MEAN_YEAR
    active_hm3 = reservoir.capacity_hm3 - reservoir.dead_storage_hm3
    ratio = active_hm3 / annual_hm3 if annual_hm3 > 0 else float("inf")
    low, high = STORAGE_RATIO_WARN
    if not low <= ratio <= high:
        warnings.append(
            f"active storage {active_hm3:,.4g} hm³ is {ratio:.3g} years of the training years' mean inflow "
            f"({annual_hm3:,.4g} hm³/year, {mean_cms:,.4g} m³/s); a plausible reservoir holds {low:g}–{high:g}: "
            "size it with `reservoir-rl init`"
        )

    passing_cms = reservoir.release_capacity_cms + reservoir.spillway_capacity_cms
    largest = int(np.argmax(inflow))
    if inflow[largest] > passing_cms:
        overtopped = overtopping_days(env.physics, inflow, record.day_of_year[days])
        if overtopped.size:
            first = int(overtopped[0])
            warnings.append(
                f"release + spillway capacity ({passing_cms:,.4g} m³/s) is below the training years' largest daily "
                f"inflow ({inflow[largest]:,.4g} m³/s on {dates[largest]}), and {overtopped.size} training day(s) "
                f"(first {dates[first]}) overtop the dam even from the bottom of the flood-control zone"
            )

    median_cms = float(np.median(inflow))
    if reservoir.env_flow_cms > median_cms:
        warnings.append(
            f"environmental flow {reservoir.env_flow_cms:,.4g} m³/s is above the training years' median flow "
            f"({median_cms:,.4g} m³/s): most days cannot meet it"
        )

    target = target_warning(env, config.baselines)
    if target:
        warnings.append(target)

    warnings.extend(outlier_warnings(record, days))

    n_train = len(env.training_water_years)
    if n_train < MIN_TRAINING_YEARS:
        warnings.append(
            f"only {n_train} training water year(s) (at least {MIN_TRAINING_YEARS} advised): the design, the "
            "baselines and the agent learn from too few floods and droughts (inflow.heldout_water_years)"
        )
    return warnings


def outlier_warnings(record: InflowRecord, training_days: np.ndarray) -> list[str]:
    """One line when days of the record exceed ``OUTLIER_FACTOR`` × its ``OUTLIER_RANK``-th largest day; it says
    how far those in the training days (bool (T,), ``training_days``) move the training years' mean inflow."""
    flow = record.inflow_cms
    if flow.size <= OUTLIER_RANK:
        return []
    reference = float(np.sort(flow)[-OUTLIER_RANK])
    outliers = np.flatnonzero(flow > OUTLIER_FACTOR * reference) if reference > 0 else np.empty(0, dtype=np.int64)
    if not outliers.size:
        return []
    top = int(outliers[np.argmax(flow[outliers])])
    found = (f"{outliers.size} day(s) far above the rest of the record: {flow[top]:.4g} m³/s on {record.dates[top]} "
             f"is {flow[top] / reference:.3g} × the {OUTLIER_RANK}th largest day ({reference:,.4g} m³/s)")
    in_training = training_days.copy()
    in_training[outliers] = False
    if not training_days[outliers].any():
        return [f"{found}; they lie outside the training years (the observation and the baselines never see "
                "their mean): check the record"]
    return [
        f"{found}; they move the training years' mean inflow, which scales the observation and the SOP target, from "
        f"{float(flow[in_training].mean()):,.4g} to {float(flow[training_days].mean()):,.4g} m³/s: check the record"
    ]


def overtopping_days(physics, inflow_cms: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Indices of the days that overtop the dam when the reservoir starts at the bottom of its flood-control
    zone and is operated only for floods: each day it releases what would leave storage above the zone
    (up to the release capacity) and spills above the capacity; overtopping = spill above the spillway
    capacity (the physics' flood failure). Evaporation is left out (a flood check). int64 (n,)."""
    zone_hm3 = physics.flood_zone_hm3(torch.as_tensor(day_of_year, dtype=torch.float64)).double().numpy()
    inflow_hm3 = np.asarray(inflow_cms, dtype=np.float64) * HM3_PER_CMS_DAY
    capacity_hm3, release_hm3 = physics.capacity_hm3, physics.release_capacity_hm3
    spillway_hm3 = physics.config.spillway_capacity_cms * HM3_PER_CMS_DAY
    storage_hm3 = float(zone_hm3[0])
    overtopped = []
    for t in range(inflow_hm3.size):
        water = storage_hm3 + inflow_hm3[t]
        release = min(release_hm3, max(0.0, water - zone_hm3[t]))
        spill = max(0.0, water - release - capacity_hm3)
        if spill > spillway_hm3:
            overtopped.append(t)
        storage_hm3 = water - release - spill
    return np.asarray(overtopped, dtype=np.int64)


def raise_if_strict(warnings: list[str], strict: bool, on_warning: Optional[Callable[[str], None]] = None) -> None:
    """With ``strict``, the first warning as a `PlausibilityError` (how many more in the same line);
    otherwise each warning to ``on_warning`` (when given)."""
    if strict and warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise PlausibilityError(f"{warnings[0]}{more} [--strict]")
    if on_warning is not None:
        for warning in warnings:
            on_warning(warning)
