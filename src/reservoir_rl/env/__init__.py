"""The reservoir: physics, inflow sources and the batched TorchRL environment."""

from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv, make_env, observation_names, release_levels_cms

__all__ = ["DiscreteReservoirEnv", "make_env", "observation_names", "release_levels_cms"]
