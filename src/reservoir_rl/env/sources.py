"""Build the inflow record a config asks for (bundled gauge, user CSV or USGS RDB file, or synthetic series)."""

from __future__ import annotations

from reservoir_rl.config import InflowConfig
from reservoir_rl.env.inflow import InflowRecord, load_bundled, load_csv, synthetic, synthetic_flashy
from reservoir_rl.env.rdb import load_rdb


def load_inflow(config: InflowConfig) -> InflowRecord:
    """The daily inflow record described by the ``inflow`` section."""
    if config.source == "bundled":
        return load_bundled(config.gauge)
    if config.source == "csv":
        return load_csv(config.path, config.date_column, config.flow_column, config.units)
    if config.source == "rdb":
        return load_rdb(config.path, config.flow_column)
    params = config.synthetic
    common = dict(n_years=params.n_years, mean_inflow_cms=params.mean_inflow_cms,
                  seasonal_amplitude=params.seasonal_amplitude, cv=params.cv, ar1=params.ar1,
                  peak_day_of_year=params.peak_day_of_year, seed=params.seed)
    if params.kind == "flashy":
        return synthetic_flashy(
            **common,
            storms_per_year=params.storms_per_year,
            storm_peak_ratio=params.storm_peak_ratio,
            storm_recession_days=params.storm_recession_days,
            storm_peak_day=params.storm_peak_day,
            storm_seasonality=params.storm_seasonality,
        )
    return synthetic(**common)
