"""The ``env`` section: reservoir geometry and plant, the forecast the agent sees, reward weights, episodes.

Units are part of every field name (``_hm3`` volumes in 10⁶ m³, ``_cms`` flows in m³/s, ``_m`` metres,
``_mw`` megawatts, ``_km2`` square kilometres, ``_mm_per_day`` evaporation depth).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from reservoir_rl.config.section import DAYS_RANGE, Section, days_of_year_increasing


class ReservoirConfig(Section):
    """Geometry, outlets and power plant of one reservoir."""

    capacity_hm3: float = Field(1500.0, gt=0, description="storage at the spillway crest (S_max)")
    dead_storage_hm3: float = Field(150.0, ge=0, description="below the lowest outlet; never released")
    min_operating_hm3: float = Field(300.0, ge=0, description="minimum operating level: no power below it")
    flood_zone_hm3: float | list[tuple[int, float]] = Field(
        1275.0,
        description="bottom of the flood-control zone: a storage, or a seasonal curve [[day_of_year, storage_hm3], "
        "...] interpolated linearly and periodically over the year",
    )
    release_capacity_cms: float = Field(400.0, gt=0, description="controlled release: turbines + outlet works")
    turbine_capacity_cms: float = Field(250.0, gt=0, description="maximum turbine flow")
    spillway_capacity_cms: float = Field(
        2500.0, gt=0, description="spill above this overtops the dam: a catastrophic flood failure"
    )
    max_head_m: float = Field(60.0, gt=0, description="head at full storage (level above tailwater)")
    level_exponent: float = Field(0.5, gt=0, le=3, description="head = max_head_m * (S / S_max) ** exponent")
    level_table: Optional[list[tuple[float, float]]] = Field(
        None, description="optional [[storage_hm3, head_m], ...] table, interpolated; replaces the power law"
    )
    efficiency: float = Field(0.9, gt=0, le=1, description="turbine-generator efficiency")
    installed_capacity_mw: float = Field(130.0, gt=0, description="plant capacity; daily energy cap = 24 h × this")
    area_at_capacity_km2: float = Field(60.0, ge=0, description="lake area at full storage")
    area_exponent: float = Field(0.7, gt=0, le=3, description="area = area_at_capacity_km2 * (S / S_max) ** exponent")
    evaporation_mm_per_day: float = Field(2.5, ge=0, description="mean lake evaporation depth")
    evaporation_amplitude: float = Field(0.8, ge=0, le=1, description="seasonal swing of evaporation (fraction)")
    evaporation_peak_day: int = Field(196, ge=0, lt=366, description="day of year of highest evaporation")
    env_flow_cms: float = Field(30.0, ge=0, description="environmental minimum flow downstream")
    supply_demand_cms: float = Field(0.0, ge=0, description="water-supply demand taken from the release; 0 = none")
    supply_amplitude: float = Field(0.0, ge=0, le=1, description="seasonal swing of the demand (fraction)")
    supply_peak_day: int = Field(196, ge=0, lt=366, description="day of year of highest demand")

    @model_validator(mode="after")
    def _zones_in_order(self) -> "ReservoirConfig":
        flood_zone = self.flood_zone_hm3
        if isinstance(flood_zone, list):
            days = [day for day, _ in flood_zone]
            if not days_of_year_increasing(days):
                raise ValueError(f"flood_zone_hm3 curve days must be strictly increasing within {DAYS_RANGE}")
            storages = [storage for _, storage in flood_zone]
            lowest, highest = min(storages), max(storages)
        else:
            lowest = highest = flood_zone
        order = [("dead_storage_hm3", self.dead_storage_hm3), ("min_operating_hm3", self.min_operating_hm3),
                 ("flood_zone_hm3", lowest), ("flood_zone_hm3", highest), ("capacity_hm3", self.capacity_hm3)]
        for (low_name, low), (high_name, high) in zip(order, order[1:]):
            if low_name != high_name and not low < high:
                raise ValueError(f"zones must be ordered: {low_name} ({low}) must be below {high_name} ({high})")
        if self.turbine_capacity_cms > self.release_capacity_cms:
            raise ValueError(
                f"turbine_capacity_cms ({self.turbine_capacity_cms}) exceeds release_capacity_cms "
                f"({self.release_capacity_cms}); turbines are part of the controlled release"
            )
        if self.level_table is not None:
            storages = [s for s, _ in self.level_table]
            if len(storages) < 2 or any(b <= a for a, b in zip(storages, storages[1:])):
                raise ValueError("level_table needs at least two rows with strictly increasing storage_hm3")
        return self


class ForecastConfig(Section):
    """Inflow forecast shown to the agent: true future inflow × log-normal error growing with lead time."""

    lead_days: int = Field(10, ge=1, le=60, description="days of forecast in the observation (lead 1 = today)")
    error_sigma: float = Field(0.1, ge=0, le=2, description="log-space error spread at lead 1")
    error_growth: float = Field(0.5, ge=0, le=2, description="spread at lead k = error_sigma * k ** error_growth")
    scale: Literal["linear", "log"] = Field(
        "log",
        description="forecast features: linear = inflow / reference inflow; log = ln(1 + inflow / reference inflow), "
        "which keeps floods far beyond the training years within the range the network has seen",
    )
    reference_inflow_cms: Union[None, Literal["whole_record"], float] = Field(
        None,
        description="the inflow the forecast features are divided by, m³/s: null = the mean of the training "
        "water years (never validation or held-out years); whole_record = the mean of the whole record, "
        "held-out years included (what checkpoints written before this key existed were trained with); "
        "or a flow > 0",
    )

    @field_validator("reference_inflow_cms", mode="before")
    @classmethod
    def _reference_choice(cls, value: Any) -> Any:
        if value is None or value == "whole_record":
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            return float(value)
        raise ValueError("expected null (the training years' mean inflow), whole_record or a flow > 0 in m³/s")


class RewardConfig(Section):
    """Weights of the normalised reward components; reward = sum(weight × component)."""

    hydropower: float = Field(1.0, ge=0, description="energy / maximum daily energy, in [0, 1]")
    flood: float = Field(1.0, ge=0, description="encroachment into the flood zone, fraction of its depth")
    env_flow: float = Field(1.0, ge=0, description="environmental-flow deficit, fraction of env_flow_cms")
    supply: float = Field(1.0, ge=0, description="squared supply-deficit fraction")
    spill: float = Field(0.1, ge=0, description="spill / (release capacity × 1 day)")
    failure: float = Field(50.0, ge=0, description="penalty on a catastrophic flood or critical drought step")


class SafetyConfig(Section):
    """The release guard (`reservoir_rl.env.safety`): each day, the agent's release level is moved into the band
    that the observed forecast says is safe from overtopping and from drawing the lake down to dead storage."""

    enabled: bool = Field(True, description="guard the agent's releases (false: the agent's action is executed as chosen)")
    flood_quantile: float = Field(
        0.99, ge=0.5, lt=1,
        description="quantile of the forecast error model the flood check assumes for each lead (0.5 = the forecast's median)",
    )
    drought_quantile: float = Field(
        0.01, gt=0, le=0.5, description="quantile of the forecast error model the drought check assumes for each lead",
    )
    dead_storage_margin_fraction: float = Field(
        0.02, ge=0, lt=1, description="the drought check keeps storage above dead storage + this fraction of capacity",
    )
    flood_reserve_days: int = Field(
        0, ge=0, le=30,
        description="the flood check also passes this many days after the forecast window, each bringing the design "
        "inflow of its date (by default the largest daily inflow the training years brought within 30 days of it); "
        "0 = the window only",
    )
    flood_reserve_quantile: float = Field(
        1.0, gt=0, le=1, allow_inf_nan=False,
        description="the flood reserve's design inflow of a date: this quantile of the training years' daily inflows "
        "within 30 days of it (1 = the largest)",
    )


class EnvConfig(Section):
    """The reservoir, what the agent observes and is rewarded for, and how episodes start and end."""

    reservoir: ReservoirConfig = ReservoirConfig()
    forecast: ForecastConfig = ForecastConfig()
    reward: RewardConfig = RewardConfig()
    safety: SafetyConfig = SafetyConfig()
    n_release_levels: int = Field(11, ge=2, le=101, description="discrete release levels 0 … release capacity")
    horizon_days: int = Field(365, ge=1, le=3650, description="episode length; reaching it is truncation")
    terminate_on_failure: bool = Field(True, description="end the episode on a catastrophic flood or drought")
    initial_storage_fraction: tuple[float, float] = Field(
        (0.4, 0.85), description="initial storage drawn uniformly in this range of capacity"
    )
    extra_features: list[Literal["flood_zone_fraction", "day_fraction", "sdp_release_fraction"]] = Field(
        default_factory=list,
        description="optional observation features appended after the forecast: storage / the day's flood-zone "
                    "bottom, days into the episode / horizon, the stochastic DP's release today / release capacity "
                    "(today's inflow class from the observed lead-1 forecast)",
    )

    @model_validator(mode="after")
    def _initial_range(self) -> "EnvConfig":
        low, high = self.initial_storage_fraction
        dead_fraction = self.reservoir.dead_storage_hm3 / self.reservoir.capacity_hm3
        if not dead_fraction <= low <= high <= 1.0:
            raise ValueError(
                f"initial_storage_fraction {list(self.initial_storage_fraction)} must satisfy "
                f"dead fraction ({dead_fraction:.3f}) <= low <= high <= 1"
            )
        margin_hm3 = self.safety.dead_storage_margin_fraction * self.reservoir.capacity_hm3
        if self.reservoir.dead_storage_hm3 + margin_hm3 >= self.reservoir.capacity_hm3:
            raise ValueError(
                f"safety.dead_storage_margin_fraction {self.safety.dead_storage_margin_fraction} puts the drought "
                "check's floor (dead storage + margin) at or above capacity"
            )
        return self
