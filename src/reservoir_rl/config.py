"""Typed configuration: the schema, YAML loading, ``--set`` overrides and one-line validation errors.

Units are part of every field name (``_hm3`` volumes in 10⁶ m³, ``_cms`` flows in m³/s, ``_m`` metres,
``_mw`` megawatts, ``_mm_per_day`` evaporation depth). Every section forbids unknown keys, so a typo is an
error that names its dotted path instead of a silently ignored setting.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from reservoir_rl.errors import ConfigError


def _accepts_number_not_bool(annotation: Any) -> bool:
    """True for int / float fields (also inside Optional or a union) that do not also accept a bool."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return bool not in args and any(_accepts_number_not_bool(arg) for arg in args)
    return False


def _days_of_year_increasing(days: list[int]) -> bool:
    """True when a day-of-year curve's days are non-empty, strictly increasing and within 0 … 365."""
    return bool(days) and all(b > a for a, b in zip(days, days[1:])) and days[0] >= 0 and days[-1] <= 365


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read `true` as 1 in a number field: a wrong type, not a count
        if isinstance(value, bool) and _accepts_number_not_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, got a boolean ({str(value).lower()})")
        return value


class ReservoirConfig(_Section):
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
            if not _days_of_year_increasing(days):
                raise ValueError("flood_zone_hm3 curve days must be strictly increasing within 0..365")
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


class ForecastConfig(_Section):
    """Inflow forecast shown to the agent: true future inflow × log-normal error growing with lead time."""

    lead_days: int = Field(10, ge=1, le=60, description="days of forecast in the observation (lead 1 = today)")
    error_sigma: float = Field(0.1, ge=0, le=2, description="log-space error spread at lead 1")
    error_growth: float = Field(0.5, ge=0, le=2, description="spread at lead k = error_sigma * k ** error_growth")
    scale: Literal["linear", "log"] = Field(
        "log",
        description="forecast features: linear = inflow / record mean; log = ln(1 + inflow / record mean), "
        "which keeps floods far beyond the training years within the range the network has seen",
    )


class RewardConfig(_Section):
    """Weights of the normalised reward components; reward = sum(weight × component)."""

    hydropower: float = Field(1.0, ge=0, description="energy / maximum daily energy, in [0, 1]")
    flood: float = Field(1.0, ge=0, description="encroachment into the flood zone, fraction of its depth")
    env_flow: float = Field(1.0, ge=0, description="environmental-flow deficit, fraction of env_flow_cms")
    supply: float = Field(1.0, ge=0, description="squared supply-deficit fraction")
    spill: float = Field(0.1, ge=0, description="spill / (release capacity × 1 day)")
    failure: float = Field(50.0, ge=0, description="penalty on a catastrophic flood or critical drought step")


class EnvConfig(_Section):
    reservoir: ReservoirConfig = ReservoirConfig()
    forecast: ForecastConfig = ForecastConfig()
    reward: RewardConfig = RewardConfig()
    n_release_levels: int = Field(11, ge=2, le=101, description="discrete release levels 0 … release capacity")
    horizon_days: int = Field(365, ge=1, le=3650, description="episode length; reaching it is truncation")
    terminate_on_failure: bool = Field(True, description="end the episode on a catastrophic flood or drought")
    initial_storage_fraction: tuple[float, float] = Field(
        (0.4, 0.85), description="initial storage drawn uniformly in this range of capacity"
    )
    extra_features: list[Literal["flood_zone_fraction", "day_fraction"]] = Field(
        default_factory=list, description="optional observation features appended after the forecast"
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
        return self


class SyntheticInflowConfig(_Section):
    n_years: int = Field(30, ge=2)
    mean_inflow_cms: float = Field(169.0, gt=0)
    seasonal_amplitude: float = Field(0.5, ge=0, lt=1)
    cv: float = Field(0.8, gt=0)
    ar1: float = Field(0.9, ge=0, lt=1)
    peak_day_of_year: int = Field(100, ge=0, lt=366)
    seed: int = 0


class InflowConfig(_Section):
    """Where inflows come from, and which water years are held out from training."""

    source: Literal["bundled", "csv", "synthetic"] = "bundled"
    gauge: str = Field("montague", description="bundled record: montague or trenton")
    path: Optional[str] = Field(None, description="csv: path to the file")
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
        if self.source == "csv" and not self.path:
            raise ValueError("source 'csv' needs inflow.path")
        if isinstance(self.heldout_water_years, int) and self.heldout_water_years < 1:
            raise ValueError(f"heldout_water_years must be >= 1, got {self.heldout_water_years}")
        if isinstance(self.validation_water_years, int) and self.validation_water_years < 0:
            raise ValueError(f"validation_water_years must be >= 0, got {self.validation_water_years}")
        low, high = self.train_inflow_scale
        if not 0 < low <= high:
            raise ValueError(f"train_inflow_scale must be [low, high] with 0 < low <= high, got [{low}, {high}]")
        low, high = self.train_flood_scale
        if not 1 <= low <= high:
            raise ValueError(f"train_flood_scale must be [low, high] with 1 <= low <= high, got [{low}, {high}]")
        return self


class BaselinesConfig(_Section):
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

    @model_validator(mode="after")
    def _check(self) -> "BaselinesConfig":
        if self.hedging_end_fraction >= self.hedging_start_fraction:
            raise ValueError("hedging_end_fraction must be below hedging_start_fraction")
        days = [d for d, _ in self.rule_curve]
        if not _days_of_year_increasing(days):
            raise ValueError("rule_curve days must be strictly increasing within 0..365")
        if any(not 0 <= f <= 1 for _, f in self.rule_curve):
            raise ValueError("rule_curve storage fractions must lie in [0, 1]")
        return self


class AgentConfig(_Section):
    """Q-network and DQN loss."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 128])
    activation: Literal["relu", "tanh", "elu"] = "relu"
    dueling: bool = False
    double_dqn: bool = True
    loss: Literal["smooth_l1", "l2"] = "smooth_l1"
    gamma: float = Field(0.99, gt=0, le=1)
    n_step: int = Field(1, ge=1, le=20)

    @model_validator(mode="after")
    def _sizes(self) -> "AgentConfig":
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes}")
        return self


class CollectorConfig(_Section):
    """Where the environment steps of training are collected (see docs/scaling.md)."""

    backend: Literal["sync", "process", "ray"] = Field(
        "sync", description="sync: in the training process; process: worker processes; ray: Ray actors"
    )
    workers: int = Field(
        2, ge=1, le=256, description="process / ray: worker processes or actors, each stepping n_envs / workers reservoirs"
    )
    ray_address: Optional[str] = Field(
        None, description="ray: address of a running cluster ('auto', 'ray://host:10001'); None starts Ray locally"
    )


class TrainConfig(_Section):
    """Training loop; schedules are in absolute frames so a resumed or extended run continues them."""

    total_frames: int = Field(200_000, ge=1)
    n_envs: int = Field(32, ge=1)
    frames_per_batch: int = Field(64, ge=1)
    init_random_frames: int = Field(5_000, ge=0)
    updates_per_frame: float = Field(0.25, gt=0, description="gradient updates per collected frame")
    batch_size: int = Field(64, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    prioritized_replay: bool = False
    priority_alpha: float = Field(0.6, ge=0, le=1, description="prioritized replay: p^alpha sampling (0 = uniform)")
    priority_beta: float = Field(0.4, ge=0, le=1, description="prioritized replay: importance-weight exponent")
    lr: float = Field(1e-3, gt=0)
    lr_end: Optional[float] = Field(None, gt=0, description="linear decay target; None = constant")
    lr_decay_frames: int = Field(200_000, ge=1)
    eps_start: float = Field(1.0, ge=0, le=1)
    eps_end: float = Field(0.01, ge=0, le=1)
    eps_decay_frames: int = Field(50_000, ge=1)
    target_update: Literal["hard", "soft"] = "hard"
    target_update_period: int = Field(500, ge=1, description="hard: updates between copies")
    tau: float = Field(0.005, gt=0, le=1, description="soft: Polyak rate per update")
    grad_clip_norm: float = Field(10.0, gt=0)
    checkpoint_every_frames: int = Field(5_000, ge=1)
    keep_checkpoints: int = Field(5, ge=1)
    eval_every_frames: int = Field(20_000, ge=1)
    eval_episodes: int = Field(10, ge=1)
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: int = Field(
        1, ge=0, description="CPU threads of torch in the training process; 0 = torch's default (one per core)"
    )
    collector: CollectorConfig = CollectorConfig()

    @model_validator(mode="after")
    def _envs_split_across_workers(self) -> "TrainConfig":
        workers = self.collector.workers
        if self.collector.backend != "sync" and self.n_envs % workers:
            raise ValueError(
                f"n_envs ({self.n_envs}) must be a multiple of collector.workers ({workers}): "
                "each worker steps n_envs / workers reservoirs"
            )
        return self


class LoggingConfig(_Section):
    log_every_frames: int = Field(1_000, ge=1)
    figure_every_frames: int = Field(50_000, ge=1)
    histogram_every_frames: int = Field(10_000, ge=1)


class Config(_Section):
    """The whole configuration of a run."""

    env: EnvConfig = EnvConfig()
    inflow: InflowConfig = InflowConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    agent: AgentConfig = AgentConfig()
    train: TrainConfig = TrainConfig()
    logging: LoggingConfig = LoggingConfig()


# --------------------------------------------------------------------------------------------- loading


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` and ``2e5`` as floats (YAML 1.2; PyYAML needs ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _known_keys(loc: tuple) -> list[str]:
    """Keys of the section at ``loc`` (a validation error location), or [] when it is not a section."""
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = field.annotation
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        text = f"unknown key '{loc}' (= {_short_repr(first['input'])})"
        close = difflib.get_close_matches(str(first["loc"][-1]), _known_keys(first["loc"][:-1]), n=1)
        if close:
            text += f"; did you mean '{close[0]}'?"
    elif first["type"] == "model_type" and loc:
        text = f"{loc} = {_short_repr(first.get('input'))}: expected a section (a mapping of keys)"
    elif first["type"] == "model_type" or "input" not in first or not loc:
        text = f"{loc or '<top level>'}: {message}"
    elif isinstance(first["input"], dict) and first["type"] == "value_error":  # a check across a section's keys
        text = f"{loc}: {message}"
    else:
        text = f"{loc} = {_short_repr(first['input'])}: {message}"
    more = len(error.errors()) - 1
    return f"{source}: {text}" + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its path and a YAML-typed value (``1e-3`` → float, ``[64, 64]`` → list)."""
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected section.key=value")
    key, raw = override.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if not key.strip() or any(not part for part in path):
        raise ConfigError(f"--set {override!r}: empty key")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``section.key=value`` override applied (validation comes later)."""
    result = copy.deepcopy(raw)
    for override in overrides:
        path, value = parse_override(override)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {override!r}: '{'.'.join(path[: depth + 1])}' is not a section")
            node = child
        node[path[-1]] = value
    return result


def config_from_dict(raw: Any, source: str = "config") -> Config:
    """Validate a plain mapping; errors become one-line `ConfigError`s with the dotted path and bad value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_error(source, error)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing file or a syntax error is a one-line `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error.__class__.__name__})") from None
    try:
        return _yaml_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file, apply ``--set`` overrides, validate."""
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return config_from_dict(apply_overrides(raw, overrides or []), source=str(path))


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain-data form (lists, not tuples) for YAML files and checkpoints."""
    return config.model_dump(mode="json")


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
