"""Tests of reservoir_rl.env.flood_zone: flood volumes, the seasonal flood-control zone sized from a record,
and a rule curve kept under it."""

from __future__ import annotations

import numpy as np
import pytest

from reservoir_rl.env.flood_zone import flood_volumes_hm3, flood_zone_curve, rule_curve_below_flood_zone
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.units import HM3_PER_CMS_DAY

CAPACITY_HM3 = 1500.0
RELEASE_CMS = 400.0


def test_flood_volumes_sum_the_inflow_above_the_release_capacity():
    flow = np.array([100.0, 500.0, 900.0, 300.0, 400.0])
    volumes = flood_volumes_hm3(flow, RELEASE_CMS, volume_days=2)
    np.testing.assert_allclose(volumes, np.array([100.0, 600.0, 500.0, 0.0]) * HM3_PER_CMS_DAY)


def record_with_floods(floods: dict[str, list[float]]) -> InflowRecord:
    """Water years 2001–2006 at 150 m³/s, with the given daily flows from each given date on."""
    dates = np.arange(np.datetime64("2000-10-01"), np.datetime64("2006-10-01"))
    flow = np.full(dates.size, 150.0)
    for start, values in floods.items():
        first = int(np.flatnonzero(dates == np.datetime64(start))[0])
        flow[first : first + len(values)] = values
    return InflowRecord("test", dates, flow)


def test_zone_is_lowered_by_the_largest_flood_volume_near_each_date_and_keeps_the_minimum_space_elsewhere():
    # a 4-day flood 600 m³/s above the release capacity in mid-March 2003: 4 × 600 × 0.0864 = 207.36 hm³
    # inside any 10-day window, and a larger one in 2006, a year left out of the sizing
    record = record_with_floods({"2003-03-15": [1000.0] * 4, "2006-03-10": [3000.0] * 5})
    curve = flood_zone_curve(record, [2001, 2002, 2003, 2004, 2005], CAPACITY_HM3, RELEASE_CMS,
                             min_space_hm3=100.0, volume_days=10, window_days=30, n_points=12)
    assert [day for day, _ in curve] == [0, 30, 61, 91, 122, 152, 182, 213, 243, 274, 304, 335]
    zone = dict(curve)
    # windows starting up to 9 days before the flood hold all of it: days 61 and 91 see the 2003 flood
    assert zone[61] == zone[91] == round(CAPACITY_HM3 - 4 * 600 * HM3_PER_CMS_DAY)
    assert all(zone[day] == CAPACITY_HM3 - 100.0 for day in zone if day not in (61, 91))
    with_2006 = dict(flood_zone_curve(record, [2001, 2006], CAPACITY_HM3, RELEASE_CMS, min_space_hm3=100.0))
    assert with_2006[61] == round(CAPACITY_HM3 - 5 * 2600 * HM3_PER_CMS_DAY)


def test_zone_never_leaves_less_than_nothing():
    record = record_with_floods({"2003-03-15": [20000.0] * 5})
    zone = dict(flood_zone_curve(record, [2003], CAPACITY_HM3, RELEASE_CMS, min_space_hm3=100.0))
    assert zone[61] == 0.0


def test_zone_refuses_years_the_record_does_not_hold():
    with pytest.raises(ValueError, match="no 10-day window"):
        flood_zone_curve(record_with_floods({}), [1990], CAPACITY_HM3, RELEASE_CMS, min_space_hm3=100.0)


def test_rule_curve_is_kept_the_margin_under_the_zone_and_unchanged_where_it_already_is():
    zone = [(0, 1200.0), (182, 600.0)]  # 0.8 of capacity on day 0, 0.4 on day 182
    rule = [(0, 0.5), (182, 0.5)]
    lowered = rule_curve_below_flood_zone(rule, zone, CAPACITY_HM3, margin_fraction=0.05)
    assert lowered == [(0, 0.5), (182, 0.35)]
    # on the days of both curves: the rule curve where it is low enough, the zone − margin where it is not
    zone_more = [(0, 1200.0), (91, 600.0), (273, 1200.0)]
    lowered = rule_curve_below_flood_zone([(0, 0.5), (200, 0.6)], zone_more, CAPACITY_HM3, margin_fraction=0.05)
    days = [day for day, _ in lowered]
    assert days == [0, 91, 200, 273]
    assert dict(lowered)[91] == 0.35 and dict(lowered)[0] == 0.5


def test_design_daily_inflow_is_the_largest_day_near_each_date_in_the_given_years():
    from reservoir_rl.env.flood_zone import design_daily_inflow_cms

    days = 3 * 366
    dates = np.datetime64("1990-10-01") + np.arange(days)
    flow = np.full(days, 2.0)
    flow[100] = 50.0  # 1991-01-09: day of year 8
    flow[366 + 200] = 900.0  # water year 1992
    record = InflowRecord("design", dates, flow)
    design = design_daily_inflow_cms(record, [1991], window_days=30)
    assert design.shape == (366,)
    assert design[8] == 50.0 and design[8 + 30] == 50.0 and design[8 + 31] == 2.0
    assert design[365 - 21] == 50.0  # periodic: 30 days before day 8 is late December
    assert design.max() == 50.0  # water year 1992's flood is not among the years asked for
    with pytest.raises(ValueError, match="no day"):
        design_daily_inflow_cms(record, [1800])


def test_design_daily_inflow_at_a_quantile_of_the_days_near_each_date():
    """A quantile below 1 takes that quantile of every daily inflow within the window (not of the per-day
    maxima): one 50 m³/s day among ~60 days of 2 m³/s sets the largest, not the 0.9 quantile; 1.0 is the largest."""
    from reservoir_rl.env.flood_zone import DAYS_PER_YEAR, design_daily_inflow_cms

    days = 3 * 366
    dates = np.datetime64("1990-10-01") + np.arange(days)
    rng = np.random.default_rng(0)
    flow = rng.uniform(1.0, 3.0, days)
    flow[100] = 50.0
    record = InflowRecord("design", dates, flow)
    largest = design_daily_inflow_cms(record, [1991, 1992], window_days=30)
    assert np.array_equal(design_daily_inflow_cms(record, [1991, 1992], window_days=30, quantile=1.0), largest)
    q90 = design_daily_inflow_cms(record, [1991, 1992], window_days=30, quantile=0.9)
    in_years = np.isin(record.water_years, [1991, 1992])
    doy, values = record.day_of_year[in_years], flow[in_years]
    distance = np.abs((doy - 8 + DAYS_PER_YEAR / 2) % DAYS_PER_YEAR - DAYS_PER_YEAR / 2)
    assert largest[8] == 50.0 and q90[8] < 3.0
    assert q90[8] == pytest.approx(np.quantile(values[distance <= 30], 0.9), rel=1e-12)
    assert np.all(q90 <= largest) and np.all(q90 > 1.0)
    q50 = design_daily_inflow_cms(record, [1991, 1992], window_days=30, quantile=0.5)
    assert np.all(q50 <= q90) and abs(float(np.median(q50)) - 2.0) < 0.2
    with pytest.raises(ValueError, match="quantile"):
        design_daily_inflow_cms(record, [1991], quantile=0.0)
