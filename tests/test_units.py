"""Tests of reservoir_rl.units: the two constants every layer converts with."""

from __future__ import annotations

import pytest

from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY


def test_one_cubic_metre_per_second_for_a_day_is_0_0864_hm3():
    seconds_per_day = 24 * 60 * 60
    assert HM3_PER_CMS_DAY == pytest.approx(seconds_per_day * 1.0 / 1e6, rel=1e-15)


def test_the_model_year_has_365_days():
    assert DAYS_PER_YEAR == 365
