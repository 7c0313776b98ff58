"""Synthetic rivers for the tests of `init`: smooth (a slow log-normal AR(1) series) and flashy (a low
baseflow with storm pulses that rise in a day and recede within days), at any mean flow, written as a CSV
or as a USGS RDB daily-value file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reservoir_rl.env.inflow import CFS_TO_CMS, InflowRecord, synthetic

RDB_HEADER = (
    "# U.S. Geological Survey, National Water Information System (synthetic test record)\n"
    "#  TS_ID       Parameter Statistic Description\n"
    "#  123456      00060     00003     Discharge, cubic feet per second (Mean)\n"
)


def smooth_river(mean_cms: float, n_years: int = 16, seed: int = 0) -> InflowRecord:
    """A slowly varying river (coefficient of variation 0.4, lag-1 correlation 0.98), mean ``mean_cms``."""
    return synthetic(n_years=n_years, mean_inflow_cms=mean_cms, cv=0.4, ar1=0.98, seed=seed)


def flashy_river(mean_cms: float, n_years: int = 16, seed: int = 0) -> InflowRecord:
    """A flashy river: baseflow (a third of the mean, seasonal) and about 12 storms a year whose peaks
    (exponential, mean 30 × the baseflow) recede by half each day; scaled to the mean ``mean_cms``."""
    base = synthetic(n_years=n_years, mean_inflow_cms=1.0, cv=0.3, ar1=0.95, seed=seed)
    rng = np.random.default_rng(seed + 100)
    n = base.n_days
    pulses = np.where(rng.random(n) < 12 / 365.25, rng.exponential(30.0, n), 0.0)
    storm = np.zeros(n)
    for t in range(n):
        storm[t] = pulses[t] + (0.5 * storm[t - 1] if t else 0.0)
    flow = base.inflow_cms + storm
    return InflowRecord(f"flashy river (seed {seed})", base.dates, flow * (mean_cms / flow.mean()))


def write_rdb(record: InflowRecord, path: Path, qualifier: bool = True, values: dict[int, str] | None = None) -> Path:
    """``record`` as a USGS RDB file (ft³/s, ``123456_00060_00003``); ``values`` replaces the text of some
    days (row index → text), e.g. ``{40: "Ice"}``."""
    names = ["agency_cd", "site_no", "datetime", "123456_00060_00003"] + (["123456_00060_00003_cd"] if qualifier else [])
    formats = ["5s", "15s", "20d", "14n"] + (["10s"] if qualifier else [])
    lines = [RDB_HEADER.rstrip("\n"), "\t".join(names), "\t".join(formats)]
    for k, (day, flow) in enumerate(zip(record.dates, record.inflow_cms)):
        value = (values or {}).get(k, f"{flow / CFS_TO_CMS:.8g}")
        lines.append("\t".join(["USGS", "99999999", str(day), value] + (["A"] if qualifier else [])))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_csv(record: InflowRecord, path: Path) -> Path:
    """``record`` as a CSV of date and flow (m³/s)."""
    rows = ["date,flow_cms"] + [f"{day},{flow:.10g}" for day, flow in zip(record.dates, record.inflow_cms)]
    Path(path).write_text("\n".join(rows) + "\n")
    return Path(path)
