"""Tests of reservoir_rl.env.inflow: bundled record, CSV loading and its errors, synthetic series, splits."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from reservoir_rl.env.inflow import (
    BUNDLED_GAUGES,
    CFS_TO_CMS,
    InflowRecord,
    episode_start_indices,
    load_bundled,
    load_csv,
    split_validation,
    split_water_years,
    synthetic,
)
from reservoir_rl.errors import InflowDataError, UserError
from reservoir_rl.units import HM3_PER_CMS_DAY

START = dt.date(2000, 10, 1)


def _csv_text(n_days: int = 800, start: dt.date = START, header: str = "date,flow", flows=None) -> list[str]:
    """Header line plus one line per day; returns a list of lines (index 1 = data row 1)."""
    lines = [header]
    for k in range(n_days):
        value = 10.0 + k % 7 if flows is None else flows[k]
        lines.append(f"{start + dt.timedelta(days=k)},{value}")
    return lines


def _write(tmp_path: Path, lines: list[str], name: str = "inflow.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(InflowDataError) as info:
        load_csv(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


# --- bundled record -------------------------------------------------------------------------------


def test_bundled_montague_length_mean_and_dates():
    record = load_bundled()
    assert record.n_days == 29345
    assert abs(record.mean_inflow_cms - 169.0) < 1.0
    assert record.dates[0] == np.datetime64("1945-01-01")
    assert record.dates[-1] == np.datetime64("2025-05-05")
    assert "01438500" in record.name
    assert record.inflow_cms.dtype == np.float64 and record.dates.dtype == np.dtype("datetime64[D]")


def test_bundled_trenton_mean():
    record = load_bundled("trenton")
    assert record.n_days == 29345
    assert abs(record.mean_inflow_cms - 348.0) < 1.0
    assert set(BUNDLED_GAUGES) == {"montague", "trenton"}


def test_bundled_unknown_gauge_names_choices():
    with pytest.raises(InflowDataError) as info:
        load_bundled("hudson")
    assert "hudson" in str(info.value) and "montague" in str(info.value) and "trenton" in str(info.value)
    assert isinstance(info.value, UserError)


def test_water_year_and_day_of_year():
    record = load_bundled()
    wy = record.water_years
    idx = {str(d): i for i, d in enumerate(record.dates[:400])}
    assert wy[idx["1945-09-30"]] == 1945
    assert wy[idx["1945-10-01"]] == 1946
    assert wy[idx["1945-12-31"]] == 1946
    assert wy[idx["1946-01-01"]] == 1946
    doy = record.day_of_year
    assert doy[idx["1945-01-01"]] == 0 and doy[idx["1945-12-31"]] == 364 and doy[idx["1946-01-01"]] == 0
    assert wy.dtype == np.int64 and doy.dtype == np.int64


def test_bundled_complete_water_years_exclude_partial_ends():
    years = load_bundled().complete_water_years()
    assert 1945 not in years and 2025 not in years
    assert years[0] == 1946 and years[-1] == 2024
    assert years == list(range(1946, 2025))


def test_inflow_hm3_conversion():
    record = load_bundled()
    np.testing.assert_allclose(record.inflow_hm3(), record.inflow_cms * HM3_PER_CMS_DAY)


def test_record_arrays_are_read_only():
    record = synthetic(n_years=2)
    with pytest.raises(ValueError):
        record.inflow_cms[0] = 1.0


def test_record_rejects_gaps_and_negative():
    dates = np.datetime64("2000-01-01") + np.array([0, 1, 3])
    with pytest.raises(InflowDataError):
        InflowRecord("x", dates, np.ones(3))
    with pytest.raises(InflowDataError):
        InflowRecord("x", np.datetime64("2000-01-01") + np.arange(3), np.array([1.0, -1.0, 1.0]))


# --- CSV loading ------------------------------------------------------------------------------------


def test_load_csv_plain_and_units(tmp_path):
    cms = [5.0 + (k % 11) for k in range(800)]
    plain = load_csv(_write(tmp_path, _csv_text(flows=cms), "cms.csv"))
    cfs = load_csv(_write(tmp_path, _csv_text(flows=[q / CFS_TO_CMS for q in cms]), "cfs.csv"), units="cfs")
    hm3 = load_csv(_write(tmp_path, _csv_text(flows=[q * HM3_PER_CMS_DAY for q in cms]), "hm3.csv"), units="hm3_per_day")
    np.testing.assert_allclose(plain.inflow_cms, cms)
    np.testing.assert_allclose(cfs.inflow_cms, cms, rtol=1e-12)
    np.testing.assert_allclose(hm3.inflow_cms, cms, rtol=1e-12)
    assert plain.n_days == 800 and plain.dates[0] == np.datetime64("2000-10-01")
    assert plain.name == "cms.csv"


def test_load_csv_cfs_factor(tmp_path):
    record = load_csv(_write(tmp_path, _csv_text(flows=[1.0] * 800)), units="cfs")
    assert record.inflow_cms[0] == pytest.approx(0.028316846592)


def test_load_csv_gz(tmp_path):
    lines = _csv_text()
    path = tmp_path / "inflow.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    record = load_csv(path)
    plain = load_csv(_write(tmp_path, lines))
    assert record.n_days == 800
    np.testing.assert_array_equal(record.inflow_cms, plain.inflow_cms)


def test_load_csv_choose_flow_column(tmp_path):
    lines = ["day,a,b"] + [f"{START + dt.timedelta(days=k)},{k},{2 * k}" for k in range(800)]
    path = _write(tmp_path, lines)
    record = load_csv(path, date_column="day", flow_column="b")
    assert record.inflow_cms[10] == 20.0
    message = _error(path, date_column="day")  # two candidate flow columns: ambiguous
    assert "'a'" in message and "'b'" in message


def test_error_missing_file(tmp_path):
    message = _error(tmp_path / "nope.csv")
    assert "not found" in message


def test_error_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert "empty" in _error(path)


def test_error_missing_date_column(tmp_path):
    path = _write(tmp_path, _csv_text(header="when,flow"))
    message = _error(path)
    assert "'date'" in message and "'when'" in message and "'flow'" in message


def test_error_missing_flow_column(tmp_path):
    path = _write(tmp_path, _csv_text())
    message = _error(path, flow_column="discharge")
    assert "'discharge'" in message and "'flow'" in message


def test_error_gap_names_missing_date_and_row(tmp_path):
    lines = _csv_text(n_days=801)
    del lines[5]  # data row 5 = 2000-10-05 removed; row 5 is now 2000-10-06
    message = _error(_write(tmp_path, lines))
    assert "2000-10-05" in message and "row 5" in message and "gap" in message


def test_error_nan_value(tmp_path):
    lines = _csv_text()
    lines[12] = lines[12].split(",")[0] + ",NaN"
    message = _error(_write(tmp_path, lines))
    assert "row 12" in message and "'flow'" in message and "missing" in message


def test_error_empty_value(tmp_path):
    lines = _csv_text()
    lines[7] = lines[7].split(",")[0] + ","
    message = _error(_write(tmp_path, lines))
    assert "row 7" in message and "'flow'" in message and "missing" in message


def test_error_negative_flow(tmp_path):
    lines = _csv_text()
    lines[30] = lines[30].split(",")[0] + ",-3.5"
    message = _error(_write(tmp_path, lines))
    assert "row 30" in message and "'flow'" in message and "negative" in message


def test_error_infinite_flow(tmp_path):
    lines = _csv_text()
    lines[3] = lines[3].split(",")[0] + ",inf"
    message = _error(_write(tmp_path, lines))
    assert "row 3" in message and "infinite" in message


def test_error_unparsable_date(tmp_path):
    lines = _csv_text()
    lines[20] = "2000-13-45,10.0"
    message = _error(_write(tmp_path, lines))
    assert "row 20" in message and "'date'" in message and "2000-13-45" in message


def test_error_unparsable_number(tmp_path):
    lines = _csv_text()
    lines[9] = lines[9].split(",")[0] + ",12.x"
    message = _error(_write(tmp_path, lines))
    assert "row 9" in message and "'flow'" in message and "12.x" in message


def test_error_duplicated_date(tmp_path):
    lines = _csv_text()
    lines.insert(4, lines[3])  # row 4 repeats row 3
    message = _error(_write(tmp_path, lines))
    assert "row 4" in message and "duplicated" in message


def test_error_decreasing_date(tmp_path):
    lines = _csv_text()
    lines[4], lines[5] = lines[5], lines[4]
    message = _error(_write(tmp_path, lines))
    assert "row 5" in message and "increasing" in message


def test_error_too_short(tmp_path):
    ok = load_csv(_write(tmp_path, _csv_text(n_days=731), "ok.csv"))
    assert ok.n_days == 731
    message = _error(_write(tmp_path, _csv_text(n_days=730), "short.csv"))
    assert "730" in message and "731" in message


def test_error_unknown_units(tmp_path):
    message = _error(_write(tmp_path, _csv_text()), units="gpm")
    assert "gpm" in message and "cfs" in message and "hm3_per_day" in message


# --- synthetic --------------------------------------------------------------------------------------


def test_synthetic_deterministic_and_seed_dependent():
    a, b, c = synthetic(seed=3), synthetic(seed=3), synthetic(seed=4)
    np.testing.assert_array_equal(a.inflow_cms, b.inflow_cms)
    assert not np.allclose(a.inflow_cms, c.inflow_cms)


def test_synthetic_mean_and_water_years():
    record = synthetic(n_years=10, mean_inflow_cms=250.0)
    assert record.mean_inflow_cms == pytest.approx(250.0, rel=1e-12)
    assert record.complete_water_years() == list(range(1991, 2001))
    assert np.all(record.inflow_cms > 0)


def test_synthetic_seasonality():
    record = synthetic(n_years=30, peak_day_of_year=100, seed=1)
    doy = record.day_of_year
    near_peak = record.inflow_cms[np.abs(doy - 100) <= 15].mean()
    half_year_later = record.inflow_cms[np.abs(doy - 283) <= 15].mean()
    assert near_peak > 1.5 * half_year_later


def test_synthetic_autocorrelation():
    log_q = np.log(synthetic(n_years=30, ar1=0.9, seasonal_amplitude=0.0, seed=2).inflow_cms)
    x = log_q - log_q.mean()
    rho1 = float(np.dot(x[:-1], x[1:]) / np.dot(x, x))
    assert rho1 > 0.5
    log_q0 = np.log(synthetic(n_years=30, ar1=0.0, seasonal_amplitude=0.0, seed=2).inflow_cms)
    y = log_q0 - log_q0.mean()
    assert abs(float(np.dot(y[:-1], y[1:]) / np.dot(y, y))) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [{"n_years": 1}, {"ar1": 1.0}, {"ar1": -0.1}, {"cv": 0.0}, {"seasonal_amplitude": 1.0},
     {"seasonal_amplitude": -0.2}, {"mean_inflow_cms": 0.0}, {"start_date": "1990-13-01"}],
)
def test_synthetic_rejects_bad_arguments(kwargs):
    with pytest.raises((InflowDataError, ValueError)) as info:
        synthetic(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


# --- episodes and splits ----------------------------------------------------------------------------


def test_episode_start_indices_exhaustive():
    record = synthetic(n_years=4)  # water years 1991..1994, 1992 is a leap year
    wy = record.water_years
    for years in ([1992], [1991, 1992], [1991, 1993], [1992, 1993, 1994]):
        for span in (1, 30, 200, 366, 400):
            got = episode_start_indices(record, years, span)
            expected = [i for i in range(record.n_days - span + 1) if np.isin(wy[i:i + span], years).all()]
            assert got.dtype == np.int64
            assert got.tolist() == expected
            first_day = int(np.flatnonzero(np.isin(wy, years))[0])
            if expected:
                assert got[0] == first_day


def test_episode_start_indices_first_and_empty():
    record = synthetic(n_years=3)
    got = episode_start_indices(record, [1992], 100)
    first = int(np.flatnonzero(record.water_years == 1992)[0])
    last = int(np.flatnonzero(record.water_years == 1992)[-1])
    assert got[0] == first and got[-1] == last - 99
    assert episode_start_indices(record, [1992], 367).size == 0  # 1992 has 366 days
    assert episode_start_indices(record, [1980], 10).size == 0


def test_split_water_years_int_is_temporal():
    record = load_bundled()
    train, heldout = split_water_years(record, 5)
    assert heldout == [2020, 2021, 2022, 2023, 2024]
    assert train == list(range(1946, 2020))
    assert max(train) < min(heldout)


def test_split_water_years_sequence():
    record = synthetic(n_years=6)  # 1991..1996
    train, heldout = split_water_years(record, [1993, 1991])
    assert heldout == [1991, 1993]
    assert train == [1992, 1994, 1995, 1996]


def test_split_water_years_errors():
    record = synthetic(n_years=3)  # 1991..1993
    with pytest.raises(InflowDataError, match="1990"):
        split_water_years(record, [1990])
    for too_many in (3, 4, 80):
        with pytest.raises(InflowDataError, match="no training"):
            split_water_years(record, too_many)
    with pytest.raises(InflowDataError, match="no training"):
        split_water_years(record, [1991, 1992, 1993])
    with pytest.raises(InflowDataError):
        split_water_years(record, -1)
    partial = load_bundled()
    with pytest.raises(InflowDataError, match="2025"):
        split_water_years(partial, [2025])  # incomplete water year


def test_split_validation_zero_int_and_sequence():
    record = synthetic(n_years=8)  # 1991..1998
    train, _ = split_water_years(record, 2)  # 1991..1996
    assert split_validation(record, train, 0) == (train, train)
    assert split_validation(record, train, 2) == ([1991, 1992, 1993, 1994], [1995, 1996])
    assert split_validation(record, train, [1992, 1991]) == ([1993, 1994, 1995, 1996], [1991, 1992])


def test_split_validation_errors():
    record = synthetic(n_years=8)
    train, heldout = split_water_years(record, 2)
    with pytest.raises(InflowDataError, match=r"\[1997\] are not training"):
        split_validation(record, train, [1997])  # a held-out year cannot validate
    for too_many in (6, 7, 79):
        with pytest.raises(InflowDataError, match="no water year left to train on"):
            split_validation(record, train, too_many)
    with pytest.raises(InflowDataError, match=">= 0"):
        split_validation(record, train, -1)


def test_load_csv_refuses_a_row_with_more_fields_than_the_header(tmp_path):
    """``date,12,5`` (a decimal comma) was read as 12."""
    lines = _csv_text()
    lines[3] = lines[3].split(",")[0] + ",12,5"
    message = _error(_write(tmp_path, lines))
    assert "row 3 (line 4): 3 fields but the header names 2" in message and "decimal comma" in message
    lines = _csv_text(header="date,flow")
    lines[5] = f'{lines[5].split(",")[0]},"12,5"'  # a quoted comma is one field: a number it cannot parse
    assert "cannot parse number '12,5'" in _error(_write(tmp_path, lines, "quoted.csv"))


def test_flashy_synthetic_river_from_the_config():
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.env.inflow import synthetic_flashy
    from reservoir_rl.env.sources import load_inflow

    config = config_from_dict({"inflow": {"source": "synthetic", "synthetic": {
        "kind": "flashy", "n_years": 10, "mean_inflow_cms": 3.0, "storm_peak_ratio": 40.0, "seed": 2}}})
    record = load_inflow(config.inflow)
    assert record.name.startswith("synthetic flashy")
    flow = record.inflow_cms
    assert np.isclose(flow.mean(), 3.0) and flow.max() > 50 * flow.mean()
    smooth = load_inflow(config_from_dict({"inflow": {"source": "synthetic", "synthetic": {
        "n_years": 10, "mean_inflow_cms": 3.0, "seed": 2}}}).inflow).inflow_cms
    assert flow.max() / flow.mean() > 5 * smooth.max() / smooth.mean()  # flashier than the smooth series
    # storms are seasonal: most of the days above 20× the mean fall within 90 days of storm_peak_day (240)
    peaks = record.day_of_year[flow > 20 * flow.mean()]
    assert np.mean(np.abs(peaks - 240) <= 90) > 0.6
    with pytest.raises(InflowDataError, match="storms would carry"):
        synthetic_flashy(n_years=4, storms_per_year=20.0, storm_peak_ratio=40.0)
    with pytest.raises(UserError, match="storm_recession_days"):
        config_from_dict({"inflow": {"synthetic": {"kind": "flashy", "storm_recession_days": 0}}})
