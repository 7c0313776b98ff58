"""Tests of reservoir_rl.baselines.inflow_classes: periods, quantile classes, class means and lag-one
transitions are what the module says, counted on hand-made records, and only training days count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reservoir_rl.baselines.inflow_classes import estimate_inflow_classes, period_of_day


def test_periods_cover_the_year_and_the_leftover_days_join_the_last():
    weekly = period_of_day(7)
    assert weekly.shape == (366,) and weekly[0] == 0 and weekly[6] == 0 and weekly[7] == 1
    assert weekly.max() == 51  # 365 // 7 = 52 periods: days 357 … 365 (9 days) form the last
    assert (weekly[357:] == 51).all() and weekly[356] == 50
    daily = period_of_day(1)
    assert daily[364] == 364 and daily[365] == 364  # 31 December of a leap year shares the last period
    assert (period_of_day(365) == 0).all()
    with pytest.raises(ValueError, match="period_days"):
        period_of_day(0)


def one_period_record(inflow: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A record whose every day lies in one period (``period_days=365``): (inflow, day_of_year)."""
    return np.asarray(inflow, dtype=float), np.arange(len(inflow)) % 365


def test_quantile_edges_class_means_and_marginals():
    inflow, day = one_period_record([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    classes = estimate_inflow_classes(inflow, day, np.ones(9, dtype=bool), n_classes=3, period_days=365)
    edges = [[np.quantile(inflow, 1 / 3), np.quantile(inflow, 2 / 3)]]  # 11/3, 19/3
    torch.testing.assert_close(classes.edges_hm3, torch.tensor(edges, dtype=torch.float64))
    torch.testing.assert_close(classes.inflow_hm3, torch.tensor([[2.0, 5.0, 8.0]], dtype=torch.float64))
    torch.testing.assert_close(classes.marginal, torch.full((1, 3), 1 / 3, dtype=torch.float64))
    # an inflow on an edge belongs to the class above it
    edge = classes.edges_hm3[0, 0]
    got = classes.classify(torch.zeros(4, dtype=torch.int64), torch.stack([edge - 1e-9, edge, edge + 1, edge * 10]))
    assert got.tolist() == [0, 1, 1, 2]


RECORD = [1.0, 1.2, 10.0, 11.0, 1.5, 12.0, 0.5, 1.0, 13.0, 14.0]


def test_transitions_count_consecutive_training_pairs_and_rows_sum_to_one():
    # 2 classes split at the median 5.75: the days are L L H H L H L L H H
    inflow, day = one_period_record(RECORD)
    classes = estimate_inflow_classes(inflow, day, np.ones(10, dtype=bool), n_classes=2, period_days=365)
    # pairs: LL, LH, HH, HL, LH, HL, LL, LH, HH → from L: 2 L, 3 H; from H: 2 L, 2 H
    expected = torch.tensor([[[2 / 5, 3 / 5], [1 / 2, 1 / 2]]], dtype=torch.float64)
    torch.testing.assert_close(classes.transitions, expected)
    assert classes.pair_counts.tolist() == [[5, 4]]
    torch.testing.assert_close(classes.transitions.sum(-1), torch.ones(1, 2, dtype=torch.float64))


def test_pairs_touching_a_non_training_day_are_not_counted():
    inflow, day = one_period_record(RECORD)
    train = np.ones(10, dtype=bool)
    train[4] = False  # breaks the pairs H→L (3→4) and L→H (4→5)
    classes = estimate_inflow_classes(inflow, day, train, n_classes=2, period_days=365)
    assert int(classes.pair_counts.sum()) == 7
    changed = inflow.copy()
    changed[4] = 500.0  # a non-training day's inflow changes nothing
    again = estimate_inflow_classes(changed, day, train, n_classes=2, period_days=365)
    for name in ("edges_hm3", "inflow_hm3", "marginal", "transitions"):
        torch.testing.assert_close(getattr(again, name), getattr(classes, name))


def test_a_row_without_pairs_falls_back_to_the_marginal_frequencies():
    # every high day is followed by a non-training day or ends the record: class 1 has no successor
    # (days: low, high, not trained on, low, high, …, low, high)
    inflow, day = one_period_record([1.0, 9.0, 0.0, 1.1, 9.5, 0.0, 1.2, 9.8, 0.0, 1.3, 10.0])
    train = np.array([1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1], dtype=bool)
    classes = estimate_inflow_classes(inflow, day, train, n_classes=2, period_days=365)
    assert classes.pair_counts.tolist() == [[4, 0]]
    torch.testing.assert_close(classes.transitions[0, 0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(classes.transitions[0, 1], classes.marginal[0])
    torch.testing.assert_close(classes.marginal, torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def test_across_a_period_boundary_tomorrow_is_classed_by_its_own_period():
    # two periods (period_days=182: days 0 … 181 and 182 … 365); period 1's flows are 100× period 0's
    day = np.arange(2 * 365) % 365
    rng = np.random.default_rng(0)
    inflow = rng.uniform(1.0, 2.0, size=day.size) * np.where(day >= 182, 100.0, 1.0)
    classes = estimate_inflow_classes(inflow, day, np.ones(day.size, dtype=bool), n_classes=2, period_days=182)
    assert classes.n_periods == 2
    assert float(classes.edges_hm3[1, 0]) > 50 * float(classes.edges_hm3[0, 0])
    # under period 0's edges every period-1 day would be "high"; under its own they split in half
    period_1_days = torch.as_tensor(day[day >= 182])
    shares = torch.bincount(classes.classify(period_1_days, torch.as_tensor(inflow[day >= 182])), minlength=2)
    assert abs(int(shares[0]) - int(shares[1])) <= 1
    torch.testing.assert_close(classes.transitions.sum(-1), torch.ones(2, 2, dtype=torch.float64))


def test_daily_periods_class_tomorrow_against_tomorrows_quantiles():
    # flows rise through the year; each year keeps its rank (wet years wet all year): with tomorrow
    # classed among tomorrow's flows, the class persists (identity), although tomorrow's flow is larger
    dates = np.datetime64("2097-01-01") + np.arange(365 * 4)  # no leap year in 2097 … 2100
    day = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    year = (dates.astype("datetime64[Y]").astype(np.int64) + 1970) - 2097
    inflow = 2.0 ** (day / 5.0) * (1.0 + 0.01 * np.array([3, 0, 5, 1])[year])  # +15 % a day, ±2.5 % by year
    classes = estimate_inflow_classes(inflow, day, np.ones(day.size, dtype=bool), n_classes=2, period_days=1)
    identity = torch.eye(2, dtype=torch.float64).expand(364, 2, 2)
    torch.testing.assert_close(classes.transitions[:364], identity)  # day 364 → next year's day 0: a new rank


def test_too_few_training_days_for_the_classes_is_refused():
    inflow, day = one_period_record([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="holds 3 training days, fewer than the 5 inflow classes"):
        estimate_inflow_classes(inflow, day, np.ones(3, dtype=bool), n_classes=5, period_days=365)
    with pytest.raises(ValueError, match="one \\(T,\\) shape"):
        estimate_inflow_classes(inflow, day[:2], np.ones(3, dtype=bool), n_classes=2, period_days=365)
