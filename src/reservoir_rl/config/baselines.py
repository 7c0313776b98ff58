"""The ``baselines`` section: the operating rules the agent is compared with."""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from reservoir_rl.config.section import DAYS_RANGE, Section, days_of_year_increasing

TARGET_CHOICES = ("firm_yield", "mean_inflow")


class MPCConfig(Section):
    """Forecast-informed model predictive control: each day, a deterministic DP over the observed forecast."""

    storage_levels: int = Field(
        500, ge=10, le=20000, description="storage grid of the daily plan (uniform, dead storage … capacity)"
    )
    horizon_days: Optional[int] = Field(
        None, ge=1, description="days planned from today (today included), at most env.forecast.lead_days; "
        "null = env.forecast.lead_days, all the forecast the agent observes"
    )


class SDPConfig(Section):
    """The stochastic DP baseline (``baselines.sdp``): inflow classes, storage grid, value iteration."""

    inflow_classes: int = Field(
        7, ge=1, le=50, description="quantile classes of the training years' daily inflow in each period"
    )
    period_days: int = Field(
        7, ge=1, le=365, description="days per period of the year whose training days give the classes and transitions"
    )
    storage_levels: int = Field(200, ge=10, le=20000, description="storage grid dead … capacity")
    discount: Optional[float] = Field(
        None, gt=0, lt=1, description="discount per day; None = agent.gamma (the objective the agent is trained on)"
    )
    tolerance: float = Field(
        1e-4, gt=0, allow_inf_nan=False, description="value iteration stops when no value changes by this much"
    )
    max_sweeps: int = Field(200, ge=1, le=10000, description="annual sweeps of value iteration at most")


class BaselinesConfig(Section):
    """Operating rules the agent is compared with."""

    target_release_cms: Union[Literal["firm_yield", "mean_inflow"], float] = Field(
        "firm_yield",
        description="SOP / hedging target: firm_yield (the largest constant release the active storage sustains "
        "through the training years), mean_inflow (the training years' mean inflow) or a release in m³/s; "
        "null (the spelling of mean_inflow before firm_yield became the default) reads as mean_inflow",
    )
    hedging_start_fraction: float = Field(0.6, gt=0, le=1, description="hedging starts below this usable fraction")
    hedging_end_fraction: float = Field(0.2, ge=0, lt=1, description="deepest hedging at this usable fraction")
    hedging_min_release_fraction: float = Field(0.5, ge=0, le=1, description="release share of target at deepest")
    rule_curve: list[tuple[int, float]] = Field(
        default_factory=lambda: [(0, 0.62), (59, 0.55), (105, 0.6), (150, 0.8), (243, 0.8), (304, 0.7)],
        description="[[day_of_year, storage fraction of capacity], ...] target storage, periodic interpolation",
    )
    dp_storage_levels: int = Field(1000, ge=10, le=20000, description="storage grid of the perfect-foresight DP")
    mpc: MPCConfig = Field(default_factory=MPCConfig, description="forecast-informed MPC")
    sdp: SDPConfig = SDPConfig()

    @field_validator("target_release_cms", mode="before")
    @classmethod
    def _target_choice(cls, value: Any) -> Any:
        if value is None:  # saved run configs wrote the record's mean inflow as null
            return "mean_inflow"
        if isinstance(value, str) and value in TARGET_CHOICES:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            return float(value)
        raise ValueError(f"expected {', '.join(TARGET_CHOICES)} or a release > 0 in m³/s")

    @model_validator(mode="after")
    def _check(self) -> "BaselinesConfig":
        if self.hedging_end_fraction >= self.hedging_start_fraction:
            raise ValueError("hedging_end_fraction must be below hedging_start_fraction")
        days = [d for d, _ in self.rule_curve]
        if not days_of_year_increasing(days):
            raise ValueError(f"rule_curve days must be strictly increasing within {DAYS_RANGE}")
        if any(not 0 <= f <= 1 for _, f in self.rule_curve):
            raise ValueError("rule_curve storage fractions must lie in [0, 1]")
        return self
