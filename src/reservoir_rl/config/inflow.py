"""The ``inflow`` section: where inflows come from, held-out and validation water years, training-inflow scaling."""

from __future__ import annotations

from typing import Literal, Optional, Sequence

from pydantic import Field, model_validator

from reservoir_rl.config.section import SEED_LIMIT, Section


def check_scale_range(name: str, bounds: Sequence[float], at_least_one: bool) -> tuple[float, float]:
    """``bounds`` of a log-uniform training-inflow factor as a (low, high) float pair (dimensionless).

    ValueError unless 0 < low <= high (``at_least_one``: 1 <= low <= high); the message starts with ``name``.
    The rule of ``inflow.train_inflow_scale`` and ``inflow.train_flood_scale``, also applied to the ranges
    `DiscreteReservoirEnv` is given directly."""
    low, high = (float(x) for x in bounds)
    if not ((low >= 1.0 if at_least_one else low > 0.0) and low <= high):
        relation = "1 <= low <= high" if at_least_one else "0 < low <= high"
        raise ValueError(f"{name} must be [low, high] with {relation}, got [{low}, {high}]")
    return low, high


class SyntheticInflowConfig(Section):
    """A synthetic daily series: ``kind: lognormal_ar1``, a periodic log-normal AR(1) series
    (`reservoir_rl.env.inflow.synthetic`); ``kind: flashy``, that series as baseflow plus short storms
    (`reservoir_rl.env.inflow.synthetic_flashy`; the ``storm_*`` keys act only there)."""

    kind: Literal["lognormal_ar1", "flashy"] = Field(
        "lognormal_ar1", description="lognormal_ar1 = a smooth seasonal series; flashy = baseflow plus short storms"
    )
    n_years: int = Field(30, ge=2)
    mean_inflow_cms: float = Field(169.0, gt=0, allow_inf_nan=False)
    seasonal_amplitude: float = Field(0.5, ge=0, lt=1)
    cv: float = Field(0.8, gt=0, allow_inf_nan=False)
    ar1: float = Field(0.9, ge=0, lt=1)
    peak_day_of_year: int = Field(100, ge=0, lt=366)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="0 <= seed < 2**63")
    storms_per_year: float = Field(3.0, gt=0, allow_inf_nan=False, description="flashy: mean storms per year")
    storm_peak_ratio: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="flashy: mean storm peak / mean flow (peaks exponentially distributed)"
    )
    storm_recession_days: float = Field(
        1.5, gt=0, allow_inf_nan=False, description="flashy: e-folding time of a storm's recession, days"
    )
    storm_peak_day: int = Field(240, ge=0, lt=366, description="flashy: day of year (0 = Jan 1) storms are likeliest")
    storm_seasonality: float = Field(0.8, ge=0, le=1, description="flashy: seasonal swing of the storm rate (fraction)")


class InflowConfig(Section):
    """Where inflows come from, and which water years are held out from training."""

    source: Literal["bundled", "csv", "rdb", "synthetic"] = Field(
        "bundled", description="bundled (a Delaware gauge), csv (a daily CSV file), rdb (a USGS NWIS RDB daily-value "
        "file, discharge in ft³/s) or synthetic"
    )
    gauge: str = Field("montague", description="bundled record: montague or trenton")
    path: Optional[str] = Field(
        None, description="csv / rdb: path to the file; a relative path in a config file is relative to that file's "
        "folder (`load_config` makes it absolute)"
    )
    date_column: str = "date"
    flow_column: Optional[str] = None
    units: Literal["cms", "cfs", "hm3_per_day"] = "cms"
    heldout_water_years: int | list[int] = Field(
        20, description="last N complete water years (or an explicit list) never used in training"
    )
    validation_water_years: int | list[int] = Field(
        0,
        description="last N training years (or a list) kept out of training for the in-training evaluation "
        "that picks best.pt; 0 = evaluate on training years",
    )
    train_inflow_scale: tuple[float, float] = Field(
        (1.0, 1.0),
        description="[low, high]: each training episode's inflow trace is scaled by a factor drawn "
        "log-uniformly in this range; [1, 1] = the record as it is",
    )
    train_flood_scale: tuple[float, float] = Field(
        (1.0, 1.0),
        description="[low, high], 1 <= low <= high: each training episode's floods (the inflow above "
        "flood_threshold_cms) are multiplied by a factor drawn log-uniformly in this range; [1, 1] = as recorded",
    )
    flood_threshold_cms: Optional[float] = Field(
        None, gt=0, description="flow above which train_flood_scale acts, m³/s; null = env.reservoir.release_capacity_cms"
    )
    synthetic: SyntheticInflowConfig = SyntheticInflowConfig()

    @model_validator(mode="after")
    def _csv_needs_path(self) -> "InflowConfig":
        if self.source in ("csv", "rdb") and not self.path:
            raise ValueError(f"source {self.source!r} needs inflow.path")
        if isinstance(self.heldout_water_years, int) and self.heldout_water_years < 1:
            raise ValueError(f"heldout_water_years must be >= 1, got {self.heldout_water_years}")
        if isinstance(self.validation_water_years, int) and self.validation_water_years < 0:
            raise ValueError(f"validation_water_years must be >= 0, got {self.validation_water_years}")
        check_scale_range("train_inflow_scale", self.train_inflow_scale, at_least_one=False)
        check_scale_range("train_flood_scale", self.train_flood_scale, at_least_one=True)
        return self
