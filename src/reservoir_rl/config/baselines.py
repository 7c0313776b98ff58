"""The ``baselines`` section: the operating rules the agent is compared with."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator

from reservoir_rl.config.section import DAYS_RANGE, Section, days_of_year_increasing


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

    target_release_cms: Optional[float] = Field(
        None, gt=0, description="SOP / hedging target; default: the record's mean inflow"
    )
    hedging_start_fraction: float = Field(0.6, gt=0, le=1, description="hedging starts below this usable fraction")
    hedging_end_fraction: float = Field(0.2, ge=0, lt=1, description="deepest hedging at this usable fraction")
    hedging_min_release_fraction: float = Field(0.5, ge=0, le=1, description="release share of target at deepest")
    rule_curve: list[tuple[int, float]] = Field(
        default_factory=lambda: [(0, 0.62), (59, 0.55), (105, 0.6), (150, 0.8), (243, 0.8), (304, 0.7)],
        description="[[day_of_year, storage fraction of capacity], ...] target storage, periodic interpolation",
    )
    dp_storage_levels: int = Field(1000, ge=10, le=20000, description="storage grid of the perfect-foresight DP")
    sdp: SDPConfig = SDPConfig()

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
