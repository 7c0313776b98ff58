"""`BlockedReservoirEnv`: K blocks of reservoirs in one env, each block with its own random stream.

A vectorized multi-seed run (``train --seeds 0,1,2 --vectorized``) steps the ``train.n_envs`` reservoirs of
all K seeds together: one env of K × n_envs reservoirs, one set of tensor operations per day. Block k (rows
k·n_envs … (k + 1)·n_envs − 1) is seed k's env: its episode starts, initial storage, inflow and flood factors
and forecast errors come from its own generator, drawn with exactly the calls a `DiscreteReservoirEnv` of
n_envs reservoirs makes (same shapes, same order), so block k sees the numbers seed k's own env would see,
whatever K and the other blocks are. A partial reset draws only for the blocks that have a reservoir to
reset — and only those draw the forecast noise of the reset's observation — as seed k's own env is reset
only when one of its reservoirs is done.

The physics, reward and observation are element-wise per reservoir (row-independent), so a block's
trajectory is that of the single env (`tests/env/test_blocks.py` checks it bitwise on this CPU).
`block_state` / `set_block_state` read and write one block in the format of `DiscreteReservoirEnv.get_state`,
so seed k's checkpoint is that of a run of its own.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.release_feature import ReleaseFeature
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv, make_env
from reservoir_rl.errors import ConfigError


class BlockedReservoirEnv(DiscreteReservoirEnv):
    """``len(seeds)`` blocks of ``block_size`` reservoirs; block k's generator is seeded with ``seeds[k]``.

    Args:
        block_size: reservoirs per block (a seed's ``train.n_envs``).
        seeds: one generator seed per block.
        **env_kwargs: everything else of `DiscreteReservoirEnv` (not ``n_envs`` and ``seed``).
    """

    def __init__(self, block_size: int, seeds: Sequence[int], **env_kwargs: Any) -> None:
        if block_size < 1 or not seeds:
            raise ValueError(f"a blocked env needs at least one block of at least one reservoir (got "
                             f"{len(seeds)} blocks of {block_size})")
        super().__init__(n_envs=block_size * len(seeds), seed=int(seeds[0]), **env_kwargs)
        self.block_size = int(block_size)
        self.block_seeds = [int(seed) for seed in seeds]
        self._drawing: Optional[list[bool]] = None  # during a reset: which blocks draw (the others keep their episodes)
        self._generators = [self._generator]
        for seed in seeds[1:]:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(seed))
            self._generators.append(generator)

    @property
    def n_blocks(self) -> int:
        return len(self._generators)

    def block(self, k: int) -> slice:
        """The rows of block k."""
        return slice(k * self.block_size, (k + 1) * self.block_size)

    # ------------------------------------------------------------------ random draws, block by block
    def _forecast_noise(self, shape: torch.Size) -> torch.Tensor:
        per_block = (self.block_size, *shape[1:])
        drawing = self._drawing or [True] * self.n_blocks
        return torch.cat([
            torch.randn(per_block, generator=g, device=self.device) if draw
            else torch.zeros(per_block, device=self.device)  # a block not reset: its observation is not used
            for g, draw in zip(self._generators, drawing)
        ])

    def _reset(self, tensordict=None, **kwargs: Any):
        try:
            return super()._reset(tensordict, **kwargs)
        finally:
            self._drawing = None

    def _reset_draws(self, mask: Optional[torch.Tensor]):
        wanted = [True] * self.n_blocks if mask is None else mask.reshape(self.n_blocks, self.block_size).any(1).tolist()
        self._drawing = wanted  # the reset's observation draws forecast noise for these blocks only
        n = self.block_size
        parts = []
        for generator, draw in zip(self._generators, wanted):
            if draw:
                parts.append(self._draws_from(generator, n))
            else:  # nothing of this block is reset: no draw (its values are masked out)
                ones = torch.ones(n, dtype=torch.float32, device=self.device)
                parts.append((torch.zeros(n, dtype=torch.int64, device=self.device), ones,
                              ones if self._scaled else None, ones if self._floods_scaled else None))
        return tuple(None if parts[0][i] is None else torch.cat([p[i] for p in parts]) for i in range(4))

    def _set_seed(self, seed: Optional[int]) -> None:
        raise ValueError("a blocked env's generators are seeded per block (block_seeds): call reseed()")

    def reseed(self) -> None:
        """Seed every block's generator again with its seed (as ``set_seed(seeds[k])`` on its own env)."""
        for generator, seed in zip(self._generators, self.block_seeds):
            generator.manual_seed(seed)

    # ------------------------------------------------------------------ one block's state (checkpoints)
    def block_state(self, k: int) -> dict[str, torch.Tensor]:
        """Block k's in-flight episodes and generator, as `DiscreteReservoirEnv.get_state` of its own env."""
        rows = self.block(k)
        return {
            "storage_hm3": self._storage_hm3[rows].cpu().clone(),
            "record_index": self._record_index[rows].cpu().clone(),
            "steps": self._steps[rows].cpu().clone(),
            "inflow_scale": self._inflow_scale[rows].cpu().clone(),
            "flood_scale": self._flood_scale[rows].cpu().clone(),
            "generator": self._generators[k].get_state(),
        }

    def set_block_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Restore block k from what `block_state` (or a single env's ``get_state``) returned."""
        if state["storage_hm3"].shape != (self.block_size,):
            raise ConfigError(
                f"env state holds {state['storage_hm3'].shape[0]} reservoirs, a block of this env has {self.block_size}"
            )
        rows = self.block(k)
        dev = self.device
        # fresh tensors (the env replaces rather than writes its state tensors; views may be held elsewhere)
        self._storage_hm3 = self._storage_hm3.clone()
        self._record_index = self._record_index.clone()
        self._steps = self._steps.clone()
        self._inflow_scale = self._inflow_scale.clone()
        self._flood_scale = self._flood_scale.clone()
        self._storage_hm3[rows] = state["storage_hm3"].to(dev, torch.float32)
        self._record_index[rows] = state["record_index"].to(dev, torch.int64)
        self._steps[rows] = state["steps"].to(dev, torch.int64)
        for key, target in (("inflow_scale", self._inflow_scale), ("flood_scale", self._flood_scale)):
            value = state.get(key)
            target[rows] = 1.0 if value is None else value.to(dev, torch.float32)
        self._generators[k].set_state(state["generator"])

    def get_state(self) -> dict[str, Any]:
        return {"blocks": [self.block_state(k) for k in range(self.n_blocks)]}

    def set_state(self, state: dict[str, Any]) -> None:
        blocks = state.get("blocks") if isinstance(state, dict) else None
        if not isinstance(blocks, list) or len(blocks) != self.n_blocks:
            raise ConfigError(f"env state does not hold the {self.n_blocks} blocks of this env")
        for k, block in enumerate(blocks):
            self.set_block_state(k, block)


def make_blocked_env(
    config: Config,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    inflow: Optional[InflowRecord] = None,
    split: str = "train",
    block_size: Optional[int] = None,
    scale_inflow: bool = True,
    release_feature: Optional[ReleaseFeature] = None,
) -> BlockedReservoirEnv:
    """K envs of ``config`` as one: block k is ``make_env(config, split, n_envs=block_size, seed=seeds[k],
    scale_inflow=scale_inflow, release_feature=release_feature)`` (default: the training env of
    ``train.n_envs`` reservoirs of each seed). ``release_feature``: required when ``env.extra_features`` holds
    ``sdp_release_fraction`` (``reservoir_rl.baselines.features.release_feature``), as for `make_env`."""
    single = make_env(config, split, n_envs=1, device=device, seed=0, inflow=inflow, scale_inflow=scale_inflow,
                      release_feature=release_feature)
    return BlockedReservoirEnv(
        config.train.n_envs if block_size is None else block_size, seeds, config=config.env, inflow=single.inflow,
        water_years=single.water_years,
        device=device, inflow_scale_range=single.inflow_scale_range, flood_scale_range=single.flood_scale_range,
        flood_threshold_cms=config.inflow.flood_threshold_cms, training_water_years=single.training_water_years,
        release_feature=single.release_feature,
    )
