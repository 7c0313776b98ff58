"""Inflow classes of the stochastic DP: quantile classes per period of the year and their lag-one
Markov transitions, estimated from the training days of a record only.

The year is cut into periods of ``period_days`` days from 1 January (day 0): period p holds days
p·period_days … (p+1)·period_days − 1; the days left over at the end of the year (365 mod period_days,
and day 365 of leap years) join the last period, so there are P = 365 // period_days periods.

For each period p, with the training days whose calendar day falls in it:

- class edges: the C − 1 interior quantiles (1/C, 2/C, …) of their daily inflow (hm³/day); an inflow I
  is in class c when c edges are ≤ I (class 0 below the first edge, class C − 1 at or above the last),
  so each class holds about 1/C of the period's training days;
- representative inflow of a class: the mean of the training days in it (hm³/day). A class no
  training day fell in (tied edges) is represented by its edge;
- marginal class frequencies: the share of the period's training days in each class;
- transitions P[p, c, c']: for every pair of consecutive training days (t, t + 1) with day t in period p,
  the class of t under period p's edges and the class of t + 1 under ITS period's edges, counted and
  normalised by row. The classes are quantile bands of each period, so "class c' tomorrow" means "the
  c'-th band of tomorrow's period" on every day, the last day of a period included. A row with no
  observed pair falls back to period p's marginal class frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CALENDAR_DAYS = 366  # day-of-year indices 0 … 365 (365: 31 December of a leap year)
YEAR_DAYS = 365  # days of the annual cycle


@dataclass(frozen=True, eq=False)  # tensors inside: compared by identity
class InflowClasses:
    """Quantile inflow classes per period and their transitions; tensors float64 unless stated.

    Attributes:
        period_days: days per period (the last period also takes the days left over).
        period_of_day: int64 (366,): the period of each day of year 0 … 365.
        edges_hm3: (P, C − 1) interior class edges of each period, hm³/day, non-decreasing along C.
        inflow_hm3: (P, C) representative inflow of each class (mean of its training days), hm³/day.
        marginal: (P, C) share of each period's training days in each class (rows sum to 1).
        transitions: (P, C, C) P[p, c, c'] = probability that tomorrow is in class c' (of tomorrow's
            period) given today, in period p, is in class c (rows sum to 1).
        pair_counts: int64 (P, C) consecutive training-day pairs observed from each (period, class).
    """

    period_days: int
    period_of_day: torch.Tensor
    edges_hm3: torch.Tensor
    inflow_hm3: torch.Tensor
    marginal: torch.Tensor
    transitions: torch.Tensor
    pair_counts: torch.Tensor

    @property
    def n_periods(self) -> int:
        return int(self.inflow_hm3.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.inflow_hm3.shape[1])

    def classify(self, day_of_year: torch.Tensor, inflow_hm3: torch.Tensor) -> torch.Tensor:
        """Class (int64) of each inflow (hm³/day) on its day of year (0 … 365); both of one shape."""
        period = self.period_of_day.to(day_of_year.device)[day_of_year]
        edges = self.edges_hm3.to(inflow_hm3.device)[period]  # (..., C − 1)
        return (edges <= inflow_hm3.to(edges.dtype).unsqueeze(-1)).sum(dim=-1)


def period_of_day(period_days: int) -> np.ndarray:
    """Period (int64) of each day of year 0 … 365 for periods of ``period_days`` days (see the module)."""
    if not 1 <= period_days <= YEAR_DAYS:
        raise ValueError(f"period_days must lie in 1 … {YEAR_DAYS}, got {period_days}")
    n_periods = YEAR_DAYS // period_days
    return np.minimum(np.arange(CALENDAR_DAYS) // period_days, n_periods - 1).astype(np.int64)


def estimate_inflow_classes(
    inflow_hm3: np.ndarray,
    day_of_year: np.ndarray,
    train_mask: np.ndarray,
    n_classes: int,
    period_days: int,
) -> InflowClasses:
    """Classes and transitions from the training days of a record.

    Args:
        inflow_hm3: daily inflow of the whole record, (T,) hm³/day, consecutive days.
        day_of_year: calendar day (0 … 365) of each record day, int (T,).
        train_mask: bool (T,): True on the training days; nothing else is read.
        n_classes: C ≥ 1 classes per period.
        period_days: days per period.

    Every period must hold at least ``n_classes`` training days (a ValueError otherwise).
    """
    inflow = np.asarray(inflow_hm3, dtype=np.float64)
    day = np.asarray(day_of_year, dtype=np.int64)
    train = np.asarray(train_mask, dtype=bool)
    if not inflow.shape == day.shape == train.shape or inflow.ndim != 1:
        raise ValueError(f"inflow_hm3, day_of_year and train_mask must share one (T,) shape, got "
                         f"{inflow.shape}, {day.shape} and {train.shape}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    periods = period_of_day(period_days)
    n_periods = int(periods[-1]) + 1
    period = periods[day]
    edges = np.empty((n_periods, n_classes - 1))
    representative = np.empty((n_periods, n_classes))
    marginal = np.empty((n_periods, n_classes))
    levels = np.arange(1, n_classes) / n_classes
    for p in range(n_periods):
        values = inflow[train & (period == p)]
        if values.size < n_classes:
            raise ValueError(f"period {p} (days {p * period_days}…) holds {values.size} training days, "
                             f"fewer than the {n_classes} inflow classes")
        edges[p] = np.quantile(values, levels)
        classes = np.searchsorted(edges[p], values, side="right")
        counts = np.bincount(classes, minlength=n_classes)
        sums = np.bincount(classes, weights=values, minlength=n_classes)
        fallback = np.concatenate([edges[p], edges[p][-1:]]) if n_classes > 1 else np.array([values.mean()])
        representative[p] = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
        marginal[p] = counts / counts.sum()
    day_class = (edges[period] <= inflow[:, None]).sum(axis=-1)  # (T,) under each day's own period
    pairs = train[:-1] & train[1:]
    counts = np.zeros((n_periods, n_classes, n_classes))
    np.add.at(counts, (period[:-1][pairs], day_class[:-1][pairs], day_class[1:][pairs]), 1.0)
    row_counts = counts.sum(axis=-1)
    transitions = np.where(row_counts[..., None] > 0, counts / np.maximum(row_counts, 1.0)[..., None],
                           marginal[:, None, :])
    as_tensor = lambda array: torch.as_tensor(array, dtype=torch.float64)  # noqa: E731
    return InflowClasses(
        period_days=int(period_days),
        period_of_day=torch.as_tensor(periods),
        edges_hm3=as_tensor(edges),
        inflow_hm3=as_tensor(representative),
        marginal=as_tensor(marginal),
        transitions=as_tensor(transitions),
        pair_counts=torch.as_tensor(row_counts.astype(np.int64)),
    )
