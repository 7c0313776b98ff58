"""Daily reservoir inflow records: the bundled Delaware gauges, user CSV files and synthetic series.

Flows are in m³/s (cms); volumes in hm³ (`reservoir_rl.units.HM3_PER_CMS_DAY`). Water year N runs from
Oct 1 of year N-1 to Sep 30 of year N (US convention). Every array of a record has shape (T,), one
entry per consecutive day.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import importlib.resources
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reservoir_rl.errors import InflowDataError
from reservoir_rl.units import HM3_PER_CMS_DAY

CFS_TO_CMS = 0.028316846592  # m³/s per ft³/s
UNITS_TO_CMS: dict[str, float] = {"cms": 1.0, "cfs": CFS_TO_CMS, "hm3_per_day": 1.0 / HM3_PER_CMS_DAY}
# Period of the synthetic series' seasonal cycle, days: the mean calendar (Julian) year. Not
# `units.DAYS_PER_YEAR` (365, the period of the model's day-of-year curves): 365 here would change
# every synthetic record.
JULIAN_YEAR_DAYS = 365.25
MIN_RECORD_DAYS = 731  # a user file must hold at least two years of days

BUNDLED_FILE = "delaware_daily_inflow_cms.csv.gz"
BUNDLED_GAUGES: dict[str, str] = {"montague": "usgs_01438500_cms", "trenton": "usgs_01463500_cms"}
_BUNDLED_NAMES: dict[str, str] = {
    "montague": "Delaware River at Montague, NJ (USGS 01438500)",
    "trenton": "Delaware River at Trenton, NJ (USGS 01463500)",
}


@dataclass(frozen=True)
class InflowRecord:
    """A daily inflow series with no gaps.

    `dates` is datetime64[D] of shape (T,), consecutive days; `inflow_cms` is float64 of shape (T,),
    finite and >= 0, in m³/s. Both arrays are stored as read-only copies.
    """

    name: str
    dates: np.ndarray
    inflow_cms: np.ndarray

    def __post_init__(self) -> None:
        dates = np.array(self.dates, dtype="datetime64[D]").reshape(-1)
        flow = np.array(self.inflow_cms, dtype=np.float64).reshape(-1)
        if dates.shape != flow.shape or dates.size == 0:
            raise InflowDataError(f"{self.name}: need equal, non-empty dates and inflows, got {dates.size} and {flow.size}")
        if np.any(np.diff(dates) != np.timedelta64(1, "D")):
            raise InflowDataError(f"{self.name}: dates must be consecutive days")
        if not np.all(np.isfinite(flow)) or np.any(flow < 0):
            raise InflowDataError(f"{self.name}: inflows must be finite and >= 0")
        dates.flags.writeable = False
        flow.flags.writeable = False
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "inflow_cms", flow)

    @property
    def n_days(self) -> int:
        """Number of days T."""
        return int(self.dates.size)

    @property
    def mean_inflow_cms(self) -> float:
        """Mean inflow over the record, m³/s."""
        return float(self.inflow_cms.mean())

    @property
    def water_years(self) -> np.ndarray:
        """Water year of each day, int64 (T,): Oct-Dec count towards the next calendar year."""
        return water_years_of(self.dates)

    @property
    def day_of_year(self) -> np.ndarray:
        """0-based day of the calendar year (Jan 1 = 0), int64 (T,)."""
        return (self.dates - self.dates.astype("datetime64[Y]")).astype(np.int64)

    def inflow_hm3(self) -> np.ndarray:
        """Daily inflow volume, hm³ per day, float64 (T,)."""
        return self.inflow_cms * HM3_PER_CMS_DAY

    def complete_water_years(self) -> list[int]:
        """Water years whose every day (Oct 1 .. Sep 30) is in the record, ascending."""
        years, counts = np.unique(self.water_years, return_counts=True)
        return [int(y) for y, c in zip(years, counts) if c == _water_year_days(int(y))]


def water_years_of(dates: np.ndarray) -> np.ndarray:
    """Water year (October to September, named by the calendar year it ends in) of each date, int64 of the
    shape of ``dates`` (``datetime64`` values or ISO ``YYYY-MM-DD`` strings)."""
    days = np.asarray(dates, dtype="datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months0 = days.astype("datetime64[M]").astype(np.int64) % 12  # Jan = 0
    return years + (months0 >= 9)


def _water_year_days(water_year: int) -> int:
    return (dt.date(water_year, 10, 1) - dt.date(water_year - 1, 10, 1)).days


def load_bundled(gauge: str = "montague") -> InflowRecord:
    """The bundled USGS daily record (1945-01-01 .. 2025-05-05) of `gauge`, inflow in m³/s."""
    if gauge not in BUNDLED_GAUGES:
        raise InflowDataError(f"unknown bundled gauge {gauge!r}; valid choices: {', '.join(BUNDLED_GAUGES)}")
    resource = importlib.resources.files("reservoir_rl.data") / BUNDLED_FILE
    with gzip.open(io.BytesIO(resource.read_bytes()), "rt", encoding="utf-8", newline="") as f:
        header, rows = _read_rows(f, BUNDLED_FILE)
    record = _parse_table(BUNDLED_FILE, header, rows, "date", BUNDLED_GAUGES[gauge], 1.0)
    return InflowRecord(_BUNDLED_NAMES[gauge], record.dates, record.inflow_cms)


def load_csv(
    path: str | os.PathLike[str],
    date_column: str = "date",
    flow_column: str | None = None,
    units: str = "cms",
) -> InflowRecord:
    """Read a daily inflow CSV (plain or gzip) and convert the flow column from `units` to m³/s.

    `units` is one of "cms" (m³/s), "cfs" (ft³/s) or "hm3_per_day". With `flow_column=None` the file
    must have exactly one column besides `date_column`. Every problem raises `InflowDataError` with a
    one-line message naming the file and, where it applies, the data row (1-based), line and column.
    """
    path = Path(path)
    label = path.name or str(path)
    if units not in UNITS_TO_CMS:
        raise InflowDataError(f"{label}: unknown units {units!r}; valid units: {', '.join(UNITS_TO_CMS)}")
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            header, rows = _read_rows(f, label)
    except FileNotFoundError:
        raise InflowDataError(f"{label}: inflow file not found ({path})") from None
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InflowDataError(f"{label}: cannot read inflow file ({reason})") from None
    return _parse_table(label, header, rows, date_column, flow_column, UNITS_TO_CMS[units])


def _read_rows(f: io.TextIOBase, label: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (stripped names) and non-blank data rows as (line number, fields)."""
    reader = csv.reader(f)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for fields in reader:
        if not any(x.strip() for x in fields):
            continue
        if header is None:
            header = [x.strip() for x in fields]
        else:
            rows.append((reader.line_num, fields))
    if header is None:
        raise InflowDataError(f"{label}: file is empty (no header, no data)")
    if not rows:
        raise InflowDataError(f"{label}: no data rows after the header")
    return header, rows


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        stamp = dt.datetime.fromisoformat(text)  # "YYYY-MM-DD 00:00:00" as written by many tools
        if stamp.time() != dt.time(0):
            raise ValueError("not a whole day") from None
        return stamp.date()


def _parse_table(
    label: str, header: list[str], rows: list[tuple[int, list[str]]], date_column: str,
    flow_column: str | None, to_cms: float,
) -> InflowRecord:
    present = ", ".join(repr(h) for h in header)
    if header.count(date_column) != 1:
        raise InflowDataError(f"{label}: need exactly one date column {date_column!r}; columns present: {present}")
    if flow_column is None:
        others = [h for h in header if h != date_column]
        if len(others) != 1:
            raise InflowDataError(f"{label}: cannot tell which column holds the flow (columns present: {present}); "
                                  "name it with flow_column")
        flow_column = others[0]
    if header.count(flow_column) != 1:
        raise InflowDataError(f"{label}: need exactly one flow column {flow_column!r}; columns present: {present}")
    i_date, i_flow = header.index(date_column), header.index(flow_column)
    dates: list[dt.date] = []
    flows = np.empty(len(rows), dtype=np.float64)
    for k, (line, fields) in enumerate(rows):
        where = f"{label}: row {k + 1} (line {line})"
        if len(fields) > len(header):
            raise InflowDataError(
                f"{where}: {len(fields)} fields but the header names {len(header)} ({','.join(fields)!r}); "
                "a decimal comma? write numbers with a point, or quote a value holding a comma"
            )
        date_text = fields[i_date].strip() if i_date < len(fields) else ""
        flow_text = fields[i_flow].strip() if i_flow < len(fields) else ""
        try:
            date = _parse_date(date_text)
        except ValueError:
            raise InflowDataError(f"{where}, column {date_column!r}: cannot parse date {date_text!r} "
                                  "(expected YYYY-MM-DD)") from None
        if flow_text == "":
            raise InflowDataError(f"{where}, column {flow_column!r}: missing value")
        try:
            value = float(flow_text)
        except ValueError:
            raise InflowDataError(f"{where}, column {flow_column!r}: cannot parse number {flow_text!r}") from None
        if math.isnan(value):
            raise InflowDataError(f"{where}, column {flow_column!r}: missing value (NaN)")
        if math.isinf(value):
            raise InflowDataError(f"{where}, column {flow_column!r}: infinite flow {flow_text!r}")
        if value < 0:
            raise InflowDataError(f"{where}, column {flow_column!r}: negative flow {value:g}")
        dates.append(date)
        flows[k] = value * to_cms
    steps = np.diff(np.array(dates, dtype="datetime64[D]")).astype(np.int64)
    bad_order, gaps = np.flatnonzero(steps < 1), np.flatnonzero(steps > 1)
    if bad_order.size or gaps.size:  # report an unsorted file as such before any gap
        k = int(bad_order[0] if bad_order.size else gaps[0]) + 2  # 1-based data row of the later date
        where = f"{label}: row {k} (line {rows[k - 1][0]}), column {date_column!r}"
        prev, date, step = dates[k - 2], dates[k - 1], int(steps[k - 2])
        if step < 1:
            kind = "duplicated" if step == 0 else "out of order"
            raise InflowDataError(f"{where}: date {date} {kind} (row {k - 1} has {prev}); "
                                  "dates must be strictly increasing")
        raise InflowDataError(f"{where}: gap in dates, first missing day {prev + dt.timedelta(days=1)} "
                              f"({step - 1} day(s) missing between row {k - 1} ({prev}) and row {k} ({date}))")
    if len(dates) < MIN_RECORD_DAYS:
        raise InflowDataError(f"{label}: only {len(dates)} days ({dates[0]} .. {dates[-1]}); "
                              f"need at least {MIN_RECORD_DAYS} (2 years)")
    return InflowRecord(label, np.array(dates, dtype="datetime64[D]"), flows)


def synthetic(
    n_years: int = 30,
    mean_inflow_cms: float = 169.0,
    seasonal_amplitude: float = 0.5,
    cv: float = 0.8,
    ar1: float = 0.9,
    peak_day_of_year: int = 100,
    seed: int = 0,
    start_date: str = "1990-10-01",
) -> InflowRecord:
    """A periodic log-normal AR(1) daily inflow series of `n_years` years from `start_date`, m³/s.

    z_t = ar1 z_{t-1} + sqrt(1 - ar1²) eps_t, eps ~ N(0, 1); seasonal median
    m(d) = 1 + seasonal_amplitude cos(2 pi (d - peak_day_of_year) / 365.25 days) with d the 0-based day of
    year; q_t = mean_inflow_cms m(d_t) exp(sigma z_t - sigma²/2), sigma = sqrt(log(1 + cv²)); finally
    rescaled so the sample mean is exactly `mean_inflow_cms`. Deterministic for a given `seed`.
    """
    if isinstance(n_years, bool) or not isinstance(n_years, (int, np.integer)) or n_years < 2:
        raise InflowDataError(f"synthetic inflow: n_years must be an integer >= 2, got {n_years!r}")
    checks = [
        (mean_inflow_cms > 0 and math.isfinite(mean_inflow_cms), "mean_inflow_cms must be > 0", mean_inflow_cms),
        (0 <= seasonal_amplitude < 1, "seasonal_amplitude must be in [0, 1)", seasonal_amplitude),
        (cv > 0 and math.isfinite(cv), "cv must be > 0", cv),
        (0 <= ar1 < 1, "ar1 must be in [0, 1)", ar1),
    ]
    for ok, message, value in checks:
        if not ok:
            raise InflowDataError(f"synthetic inflow: {message}, got {value!r}")
    try:
        start = dt.date.fromisoformat(start_date)
    except (TypeError, ValueError):
        raise InflowDataError(f"synthetic inflow: start_date must be YYYY-MM-DD, got {start_date!r}") from None
    try:
        end = start.replace(year=start.year + int(n_years))
    except ValueError:  # Feb 29 start
        end = dt.date(start.year + int(n_years), 3, 1)
    n_days = (end - start).days
    dates = np.datetime64(start, "D") + np.arange(n_days)
    eps = np.random.default_rng(seed).standard_normal(n_days)
    z = np.empty(n_days)
    z[0] = eps[0]  # stationary start: z ~ N(0, 1)
    innovation = math.sqrt(1.0 - ar1 * ar1)
    for t in range(1, n_days):
        z[t] = ar1 * z[t - 1] + innovation * eps[t]
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    median = 1.0 + seasonal_amplitude * np.cos(2.0 * np.pi * (doy - peak_day_of_year) / JULIAN_YEAR_DAYS)
    sigma = math.sqrt(math.log1p(cv * cv))
    flow = mean_inflow_cms * median * np.exp(sigma * z - 0.5 * sigma * sigma)
    flow *= mean_inflow_cms / flow.mean()
    return InflowRecord(f"synthetic log-normal AR(1) inflow (seed {seed})", dates, flow)


def synthetic_flashy(
    n_years: int = 30,
    mean_inflow_cms: float = 3.0,
    seasonal_amplitude: float = 0.5,
    cv: float = 0.5,
    ar1: float = 0.95,
    peak_day_of_year: int = 100,
    storms_per_year: float = 3.0,
    storm_peak_ratio: float = 30.0,
    storm_recession_days: float = 1.5,
    storm_peak_day: int = 240,
    storm_seasonality: float = 0.8,
    seed: int = 0,
    start_date: str = "1990-10-01",
) -> InflowRecord:
    """A flashy small river, m³/s: a slow log-normal AR(1) baseflow (`synthetic`) plus short storms.

    Storms start on a day with probability (storms_per_year / 365.25)·(1 + storm_seasonality·cos(2π(d −
    storm_peak_day) / 365.25)), d the 0-based day of year (most in late summer by default); a storm's peak
    is exponentially distributed with mean ``storm_peak_ratio`` × ``mean_inflow_cms`` and recedes as
    exp(−t / storm_recession_days), t the days since its start. The baseflow carries the part of the mean the
    storms do not; the sum is rescaled so its sample mean is exactly ``mean_inflow_cms``. With the defaults
    about one storm in five peaks above 50 times the mean flow and the storms carry about half the water.
    Deterministic for a given ``seed``.
    """
    checks = [
        (storms_per_year > 0 and math.isfinite(storms_per_year), "storms_per_year must be > 0", storms_per_year),
        (storm_peak_ratio > 0 and math.isfinite(storm_peak_ratio), "storm_peak_ratio must be > 0", storm_peak_ratio),
        (storm_recession_days > 0 and math.isfinite(storm_recession_days), "storm_recession_days must be > 0",
         storm_recession_days),
        (0 <= storm_seasonality <= 1, "storm_seasonality must be in [0, 1]", storm_seasonality),
    ]
    for ok, message, value in checks:
        if not ok:
            raise InflowDataError(f"synthetic flashy inflow: {message}, got {value!r}")
    decay = math.exp(-1.0 / storm_recession_days)
    storm_share = storms_per_year / JULIAN_YEAR_DAYS * storm_peak_ratio / (1.0 - decay)  # of the mean flow
    if storm_share >= 0.95:
        raise InflowDataError(f"synthetic flashy inflow: the storms would carry {storm_share:.2f} of the mean flow "
                              "(at most 0.95); lower storms_per_year, storm_peak_ratio or storm_recession_days")
    base = synthetic(n_years, mean_inflow_cms * (1.0 - storm_share), seasonal_amplitude, cv, ar1, peak_day_of_year,
                     seed, start_date)
    rng = np.random.default_rng([int(seed), 1])
    day = base.day_of_year
    rate = storms_per_year / JULIAN_YEAR_DAYS * (
        1.0 + storm_seasonality * np.cos(2.0 * np.pi * (day - storm_peak_day) / JULIAN_YEAR_DAYS))
    starts = rng.random(base.n_days) < rate
    peaks = np.where(starts, rng.exponential(storm_peak_ratio * mean_inflow_cms, base.n_days), 0.0)
    storms = np.empty(base.n_days)
    level = 0.0
    for t in range(base.n_days):  # each storm recedes geometrically; a new one adds to what is left
        level = level * decay + peaks[t]
        storms[t] = level
    flow = base.inflow_cms + storms
    flow *= mean_inflow_cms / flow.mean()
    return InflowRecord(f"synthetic flashy inflow (seed {seed})", base.dates, flow)


def episode_start_indices(record: InflowRecord, water_years: Sequence[int], span_days: int) -> np.ndarray:
    """Start indices i (int64, ascending) such that days i .. i+span_days-1 all exist and all lie in
    `water_years`, so an episode of `span_days` days (horizon + forecast lead) never touches other years.
    May be empty."""
    if span_days < 1:
        raise InflowDataError(f"{record.name}: episode span must be >= 1 day, got {span_days}")
    allowed = np.isin(record.water_years, np.asarray(list(water_years), dtype=np.int64))
    outside = np.concatenate([[0], np.cumsum(~allowed)])
    n_starts = record.n_days - span_days + 1
    if n_starts <= 0:
        return np.empty(0, dtype=np.int64)
    starts = np.arange(n_starts)
    return starts[outside[starts + span_days] == outside[starts]].astype(np.int64)


def split_water_years(record: InflowRecord, heldout_water_years: int | Sequence[int]) -> tuple[list[int], list[int]]:
    """(train_years, heldout_years) among the complete water years of `record`, each ascending.

    An int n holds out the LAST n complete water years (evaluation on later, unseen years); a sequence
    holds out exactly those years, each of which must be a complete water year of the record.
    """
    complete = record.complete_water_years()
    span = f"{complete[0]}..{complete[-1]}" if complete else "none"
    if isinstance(heldout_water_years, (int, np.integer)) and not isinstance(heldout_water_years, bool):
        n = int(heldout_water_years)
        if n < 0:
            raise InflowDataError(f"{record.name}: number of held-out water years must be >= 0, got {n}")
        if n >= len(complete):
            raise InflowDataError(f"{record.name}: no training water year left after holding out {n} "
                                  f"of {len(complete)} complete water years ({span})")
        heldout = complete[len(complete) - n:] if n else []
    else:
        heldout = sorted({int(y) for y in heldout_water_years})
        bad = [y for y in heldout if y not in complete]
        if bad:
            raise InflowDataError(f"{record.name}: held-out water year(s) {bad} are not complete water years "
                                  f"of the record (complete: {span})")
    train = [y for y in complete if y not in heldout]
    if not train:
        raise InflowDataError(f"{record.name}: no training water year left after holding out {len(heldout)} "
                              f"of {len(complete)} complete water years ({span})")
    return train, heldout


def split_validation(
    record: InflowRecord, train_years: Sequence[int], validation_water_years: int | Sequence[int]
) -> tuple[list[int], list[int]]:
    """(fit_years, validation_years) carved from `train_years`, each ascending.

    0 keeps every training year for fitting and validates on the same years (the in-training
    evaluation then only ranks checkpoints, it never sees held-out years); an int n > 0 takes the LAST
    n training years out of fitting; a sequence takes exactly those years, each a training year.
    """
    train = sorted(int(y) for y in train_years)
    if isinstance(validation_water_years, (int, np.integer)) and not isinstance(validation_water_years, bool):
        n = int(validation_water_years)
        if n < 0:
            raise InflowDataError(f"{record.name}: number of validation water years must be >= 0, got {n}")
        if n == 0:
            return train, list(train)
        if n >= len(train):
            raise InflowDataError(f"{record.name}: no water year left to train on after taking {n} validation "
                                  f"year(s) from {len(train)} training years")
        validation = train[len(train) - n:]
    else:
        validation = sorted({int(y) for y in validation_water_years})
        bad = [y for y in validation if y not in train]
        if bad:
            raise InflowDataError(f"{record.name}: validation water year(s) {bad} are not training water years "
                                  f"of the record (held-out or incomplete years cannot validate)")
    fit = [y for y in train if y not in validation]
    if not fit:
        raise InflowDataError(f"{record.name}: no water year left to train on after taking {len(validation)} "
                              f"validation year(s) from {len(train)} training years")
    return fit, validation
