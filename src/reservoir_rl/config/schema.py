"""`Config`: the whole configuration of a run, one attribute per section."""

from __future__ import annotations

from pydantic import model_validator

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

    @model_validator(mode="after")
    def _across_sections(self) -> "Config":
        horizon_days, lead_days = self.baselines.mpc.horizon_days, self.env.forecast.lead_days
        if horizon_days is not None and horizon_days > lead_days:
            raise ValueError(
                f"baselines.mpc.horizon_days ({horizon_days}) exceeds env.forecast.lead_days ({lead_days}): "
                "MPC plans only over the forecast the agent observes"
            )
        return self
