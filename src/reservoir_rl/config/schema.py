"""`Config`: the whole configuration of a run, one attribute per section."""

from __future__ import annotations

from reservoir_rl.config.agent import AgentConfig
from reservoir_rl.config.baselines import BaselinesConfig
from reservoir_rl.config.env import EnvConfig
from reservoir_rl.config.inflow import InflowConfig
from reservoir_rl.config.section import Section
from reservoir_rl.config.train import LoggingConfig, TrainConfig


class Config(Section):
    """The whole configuration of a run."""

    env: EnvConfig = EnvConfig()
    inflow: InflowConfig = InflowConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    agent: AgentConfig = AgentConfig()
    train: TrainConfig = TrainConfig()
    logging: LoggingConfig = LoggingConfig()
