"""What a daily record holds, as `init` prints it: its water years and their split, mean and flow quantiles,
the largest floods, the driest periods. Flows m³/s; dates ISO strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from reservoir_rl.env.inflow import InflowRecord

EXCEEDANCE_SHARES = (0.05, 0.10, 0.20, 0.50, 0.80, 0.95)  # Q5 … Q95: the flow exceeded on that share of days
FLOOD_EVENT_GAP_DAYS = 7  # two flood days closer than this belong to one flood
DRY_SPELL_DAYS = 30


@dataclass(frozen=True)
class RecordSummary:
    """A record's facts; ``*_training`` and quantiles are of the training years."""

    name: str
    first_day: str
    last_day: str
    n_days: int
    complete_years: list[int]
    train_years: list[int]
    heldout_years: list[int]
    validation_years: list[int]  # of train_years: kept out of training (inflow.validation_water_years)
    reference_inflow_cms: float  # mean of the training years without the validation years: what scales the observation
    mean_inflow_training_cms: float
    exceeded_cms: dict[float, float]  # share of training days → flow exceeded on that share
    largest_floods: list[tuple[str, float]]  # (day, m³/s), the largest day of each distinct flood, training years
    driest_year: tuple[int, float]  # (water year, its mean m³/s), training years
    driest_spell: tuple[str, str, float]  # (first day, last day, mean m³/s) of the driest DRY_SPELL_DAYS, training


def largest_floods(dates: np.ndarray, inflow_cms: np.ndarray, count: int = 5) -> list[tuple[str, float]]:
    """The ``count`` largest daily inflows of distinct floods (peaks at least FLOOD_EVENT_GAP_DAYS apart),
    largest first, as (day, m³/s)."""
    order = np.argsort(inflow_cms)[::-1]
    days = dates.astype(np.int64)
    chosen: list[int] = []
    for i in order:
        if all(abs(days[i] - days[j]) >= FLOOD_EVENT_GAP_DAYS for j in chosen):
            chosen.append(int(i))
            if len(chosen) == count:
                break
    return [(str(dates[i]), float(inflow_cms[i])) for i in chosen]


def summarize(record: InflowRecord, train_years: Sequence[int], heldout_years: Sequence[int],
              validation_years: Sequence[int] = ()) -> RecordSummary:
    """The facts of ``record`` with the given split of its complete water years (``validation_years``: those
    of ``train_years`` kept out of training)."""
    in_train = np.isin(record.water_years, np.asarray(list(train_years), dtype=np.int64))
    fitted = in_train & ~np.isin(record.water_years, np.asarray(list(validation_years), dtype=np.int64))
    inflow, dates, years = record.inflow_cms[in_train], record.dates[in_train], record.water_years[in_train]
    year_means = {int(y): float(inflow[years == y].mean()) for y in train_years}
    driest_year = min(year_means.items(), key=lambda item: item[1])
    spell = min(DRY_SPELL_DAYS, inflow.size)
    means = np.convolve(inflow, np.ones(spell) / spell, mode="valid")
    # a window may join two training years that are not consecutive: only windows of consecutive days count
    consecutive = (dates[spell - 1:].astype(np.int64) - dates[: dates.size - spell + 1].astype(np.int64)) == spell - 1
    means = np.where(consecutive, means, np.inf)
    start = int(np.argmin(means))
    return RecordSummary(
        name=record.name,
        first_day=str(record.dates[0]),
        last_day=str(record.dates[-1]),
        n_days=record.n_days,
        complete_years=record.complete_water_years(),
        train_years=list(train_years),
        heldout_years=list(heldout_years),
        validation_years=list(validation_years),
        reference_inflow_cms=float(record.inflow_cms[fitted].mean()),
        mean_inflow_training_cms=float(inflow.mean()),
        exceeded_cms={share: float(np.quantile(inflow, 1.0 - share)) for share in EXCEEDANCE_SHARES},
        largest_floods=largest_floods(dates, inflow),
        driest_year=driest_year,
        driest_spell=(str(dates[start]), str(dates[start + spell - 1]), float(means[start])),
    )
