"""The reservoir as a `gymnasium.Env`, for Stable-Baselines3, CleanRL and other gymnasium users.

Same physics, inflow sources, reward and config as `DiscreteReservoirEnv` (it wraps a one-reservoir
instance and calls its tensor step directly), registered as ``reservoir_rl/Reservoir-v0``::

    import gymnasium as gym
    import reservoir_rl.env.gym_adapter  # registers the id
    env = gym.make("reservoir_rl/Reservoir-v0", config="configs/base.yaml", split="train")

or, without the import, ``gym.make("reservoir_rl.env.gym_adapter:reservoir_rl/Reservoir-v0")``.
Requires the optional ``gymnasium`` dependency (``pip install reservoir-rl[gym]``).

Observation: float32 (obs_size,) as in `DiscreteReservoirEnv`; action: a release level in
``Discrete(n_release_levels)``; ``info`` holds the day's physical quantities (hm³, m³/s, MWh) and the
reward components.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from reservoir_rl.config import Config, config_from_dict, load_config
from reservoir_rl.env.release_feature import ReleaseFeature
from reservoir_rl.env.reservoir_env import FAILURE_FLAGS, STEP_QUANTITIES, make_env
from reservoir_rl.env.reward import COMPONENTS

ENV_ID = "reservoir_rl/Reservoir-v0"


def _as_config(config: Config | dict | str | Path | None) -> Config:
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return config_from_dict(config, source="gymnasium config")
    return load_config(config)


class GymReservoirEnv(gym.Env):
    """One reservoir, daily release decisions, gymnasium API.

    Args:
        config: a `Config`, a plain dict of sections, a YAML path, or None for the defaults.
        split: water years episodes use: "train", "heldout" or "all".
        seed: seed of the env's generator (episode starts, initial storage, forecast errors);
            ``reset(seed=...)`` reseeds it.
        release_feature: required when ``env.extra_features`` holds ``sdp_release_fraction`` (the env layer
            cannot solve the SDP): ``reservoir_rl.baselines.features.release_feature(config, record)``;
            without it such a config is refused with one line (a `ConfigError`).
    """

    metadata = {"render_modes": []}

    def __init__(
        self, config: Config | dict | str | Path | None = None, split: str = "train", seed: Optional[int] = None,
        release_feature: Optional[ReleaseFeature] = None,
    ) -> None:
        super().__init__()
        self.config = _as_config(config)
        self._env = make_env(self.config, split, n_envs=1, seed=seed, release_feature=release_feature)
        size = self._env.observation_size
        low = np.full(size, -np.inf, dtype=np.float32)
        high = np.full(size, np.inf, dtype=np.float32)
        lead = self.config.env.forecast.lead_days
        low[: 3 + lead] = [0.0, -1.0, -1.0] + [0.0] * lead  # storage fraction, sin, cos, forecast ≥ 0
        high[:3] = 1.0
        self.observation_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self._env.n_actions)

    @property
    def reservoir_env(self):
        """The wrapped one-reservoir `DiscreteReservoirEnv`."""
        return self._env

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.set_seed(seed)
        root = self._env._reset(None)
        return self._observation(root), {"storage_hm3": float(root.get("storage_hm3")[0])}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not a release level in 0 … {self.action_space.n - 1}")
        action_td = TensorDict(
            {"action": torch.full((1,), int(action), dtype=torch.int64)}, batch_size=[1]
        )
        out = self._env._step(action_td)
        info = {key: float(out.get(key)[0]) for key in ("storage_hm3", *STEP_QUANTITIES)}
        info.update({key: bool(out.get(key)[0]) for key in FAILURE_FLAGS})
        components = out.get("reward_components")
        info["reward_components"] = {name: float(components.get(name)[0]) for name in COMPONENTS}
        return (
            self._observation(out),
            float(out.get("reward")[0, 0]),
            bool(out.get("terminated")[0, 0]),
            bool(out.get("truncated")[0, 0]),
            info,
        )

    @staticmethod
    def _observation(td: TensorDict) -> np.ndarray:
        return td.get("observation")[0].numpy().astype(np.float32, copy=True)


def register() -> None:
    """Register ``reservoir_rl/Reservoir-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.envs.registry:
        gym.register(id=ENV_ID, entry_point=GymReservoirEnv, max_episode_steps=None)


register()
