"""Observation features a policy computes for the env: ``env.extra_features: [sdp_release_fraction]``.

The env knows nothing of the baselines (the layers point one way), so a feature that needs a baseline's
solution is handed to it: `DiscreteReservoirEnv` (and `make_env`) take a ``release_feature``, any callable of
the `ReleaseFeature` shape. ``reservoir_rl.baselines.features`` builds the stochastic DP's
(`SDPReleaseFeature`) and ``reservoir_rl.baselines.features.build_env`` builds envs with it; every command,
the training workers and the Python API build their envs there. An env whose config asks for the feature
without one is refused in one line (`missing_release_feature`) instead of silently observing something else.
"""

from __future__ import annotations

from typing import Protocol

import torch

from reservoir_rl.config import EnvConfig
from reservoir_rl.errors import ConfigError

SDP_RELEASE_FEATURE = "sdp_release_fraction"


class ReleaseFeature(Protocol):
    """A policy's release today as a fraction of the release capacity, from what the env observes.

    Called by the env once per observation with (all of shape (n_envs,), on the env's device):
    ``day_of_year`` int64, today's calendar day (0 … 365); ``next_day_of_year`` int64, the record's next
    calendar day (365 after 30 December of a leap year); ``storage_hm3`` float32, today's storage;
    ``forecast_today_hm3`` float32, the observed lead-1 forecast of today's inflow (hm³/day, the noisy value
    the observation holds, scaled as the episode's inflow is). Returns float32 (n_envs,) in [0, 1].
    """

    def __call__(self, day_of_year: torch.Tensor, next_day_of_year: torch.Tensor, storage_hm3: torch.Tensor,
                 forecast_today_hm3: torch.Tensor) -> torch.Tensor: ...


def needs_release_feature(config: EnvConfig) -> bool:
    """Whether ``config`` observes a policy's release (``sdp_release_fraction`` in ``extra_features``)."""
    return SDP_RELEASE_FEATURE in config.extra_features


def missing_release_feature() -> ConfigError:
    """The one-line error of an env asked for ``sdp_release_fraction`` without the SDP's release feature."""
    return ConfigError(
        f"env.extra_features: {SDP_RELEASE_FEATURE} needs the stochastic DP's release: build the env with "
        "reservoir_rl.make_env (or reservoir_rl.baselines.features.build_env), or pass "
        "release_feature=reservoir_rl.baselines.features.release_feature(config, record)"
    )
