"""Envs built from a config with every observation feature it asks for — the one place commands, training
(its workers and vectorized seeds included), evaluation, runs, design and the Python API build envs.

``env.extra_features: [sdp_release_fraction]`` observes the release (m³/s) the stochastic DP's policy
(`reservoir_rl.baselines.sdp`, estimated on the training water years only, the solution the ``sdp`` baseline
and the reward shaping use) would choose today, divided by ``env.reservoir.release_capacity_cms``: in [0, 1],
one of the release levels' fractions. The policy needs today's inflow class; the agent does not know today's
inflow, so the class — and the inflow of the day's reward and mass balance in the policy's choice — is the
observed lead-1 forecast (the noisy value in the observation, hm³/day), never the true inflow. With a
perfect forecast (``env.forecast.error_sigma: 0``) the feature is exactly the ``sdp`` baseline's release.
The choice is the baseline's own (`reservoir_rl.baselines.sdp.greedy_action_values`), at the exact storage.
"""

from __future__ import annotations

from typing import Optional

import torch

from reservoir_rl.baselines.sdp import SDPSolution, greedy_action_values, sdp_solution_of
from reservoir_rl.config import Config, EnvConfig
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.release_feature import needs_release_feature
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv, make_env, release_levels_cms
from reservoir_rl.env.sources import load_inflow


class SDPReleaseFeature:
    """``sdp_release_fraction``: the SDP policy's release today / release capacity, from the observed forecast
    (a `reservoir_rl.env.release_feature.ReleaseFeature`).

    Args:
        solution: the solved SDP (`reservoir_rl.baselines.sdp.sdp_solution_of`).
        env_config: the ``env`` section it was solved for (reward weights, failure termination, release levels).
    """

    def __init__(self, solution: SDPSolution, env_config: EnvConfig) -> None:
        self.solution = solution
        self.env_config = env_config
        # each release level's target release / release capacity, (A,) float64
        self._fractions = release_levels_cms(env_config) / env_config.reservoir.release_capacity_cms

    def release_levels(self, day_of_year: torch.Tensor, next_day_of_year: torch.Tensor, storage_hm3: torch.Tensor,
                       forecast_today_hm3: torch.Tensor) -> torch.Tensor:
        """The release level (int64 (n,)) the SDP's policy chooses with the forecast as today's inflow."""
        values = greedy_action_values(self.solution, self.env_config, day_of_year, next_day_of_year, storage_hm3,
                                      forecast_today_hm3)
        return values.argmax(dim=-1)

    def __call__(self, day_of_year: torch.Tensor, next_day_of_year: torch.Tensor, storage_hm3: torch.Tensor,
                 forecast_today_hm3: torch.Tensor) -> torch.Tensor:
        """float32 (n,) in [0, 1] on ``storage_hm3``'s device (see `ReleaseFeature`)."""
        levels = self.release_levels(day_of_year, next_day_of_year, storage_hm3, forecast_today_hm3)
        return self._fractions[levels.cpu()].to(device=storage_hm3.device, dtype=torch.float32)


def release_feature(config: Config, record: InflowRecord) -> Optional[SDPReleaseFeature]:
    """The ``sdp_release_fraction`` feature of ``config``'s envs on ``record``, or None when
    ``env.extra_features`` does not ask for it (nothing is solved then). The SDP is solved once per process
    (cached with the ``sdp`` baseline's and the shaping's solution); solving draws no random numbers."""
    if not needs_release_feature(config.env):
        return None
    return SDPReleaseFeature(sdp_solution_of(config, record), config.env)


def build_env(
    config: Config,
    split: str = "train",
    n_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: Optional[int] = None,
    inflow: Optional[InflowRecord] = None,
    scale_inflow: bool = False,
) -> DiscreteReservoirEnv:
    """`reservoir_rl.env.make_env` with every observation feature of ``config``, the SDP's release included
    (`release_feature`); same arguments. ``inflow``: the config's record when the caller has it already."""
    record = inflow if inflow is not None else load_inflow(config.inflow)
    return make_env(config, split, n_envs=n_envs, device=device, seed=seed, inflow=record, scale_inflow=scale_inflow,
                    release_feature=release_feature(config, record))
