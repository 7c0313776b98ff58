"""Typed configuration: the schema, YAML loading, ``--set`` overrides and one-line validation errors.

Every rule about a config value lives here, one module per section (`env`, `inflow`, `baselines`,
`agent`, `train` with `logging`); `loading` reads, overrides, validates and writes a whole `Config`.
Units are part of every field name (``_hm3`` volumes in 10⁶ m³, ``_cms`` flows in m³/s, ``_m`` metres,
``_mw`` megawatts, ``_mm_per_day`` evaporation depth). Every section forbids unknown keys, so a typo is an
error that names its dotted path instead of a silently ignored setting.
"""

from __future__ import annotations

from reservoir_rl.config.agent import AgentConfig
from reservoir_rl.config.baselines import BaselinesConfig, SDPConfig
from reservoir_rl.config.env import EnvConfig, ForecastConfig, ReservoirConfig, RewardConfig, SafetyConfig
from reservoir_rl.config.inflow import InflowConfig, SyntheticInflowConfig, check_scale_range
from reservoir_rl.config.loading import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
    read_yaml,
)
from reservoir_rl.config.schema import Config
from reservoir_rl.config.train import (
    CollectorConfig,
    DemonstrationsConfig,
    LoggingConfig,
    TrainConfig,
    check_seed,
    check_total_frames,
)

__all__ = [
    "AgentConfig",
    "BaselinesConfig",
    "CollectorConfig",
    "DemonstrationsConfig",
    "Config",
    "EnvConfig",
    "ForecastConfig",
    "InflowConfig",
    "LoggingConfig",
    "ReservoirConfig",
    "RewardConfig",
    "SDPConfig",
    "SafetyConfig",
    "SyntheticInflowConfig",
    "TrainConfig",
    "apply_overrides",
    "check_scale_range",
    "check_seed",
    "check_total_frames",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "parse_override",
    "read_yaml",
]
