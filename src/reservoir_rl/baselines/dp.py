"""Perfect-foresight deterministic dynamic programming: the upper bound of the return on a known trace.

Backward recursion over a uniform storage grid dead … capacity (G levels) with the env's release levels
(A) and the known daily inflow: V_T(s) = 0 (or a given terminal value: the value of the storage left at
the end of the episode, `reservoir_rl.baselines.end_value`) and

    V_t(s) = max_a  r_t(s, a) + [not failed] · V_{t+1}(s'(s, a))

with r and s' from `ReservoirPhysics.step` and `weighted_reward` evaluated on the whole (B, G, A) tensor
of B traces × grid × actions at once, and V_{t+1} linearly interpolated at s'. A failing transition has
no future value when the env terminates on failure. The objective is the undiscounted sum of rewards
over the horizon: the episode return. Values are float64; volumes hm³, inflows hm³ per day.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from tensordict import TensorDictBase

from reservoir_rl.config import RewardConfig
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.env.reward import reward_components, weighted_reward

VALUE_DTYPE = torch.float64
SOLVE_GROUP_TRACES = 8  # traces solved together by PerfectForesightPolicy
CHUNK_ELEMENTS = 1 << 17  # (B · days · G · A) elements per physics call; larger chunks run slower (cache)


def storage_grid_hm3(physics: ReservoirPhysics, n_storage: int, device=None) -> torch.Tensor:
    """Uniform storage grid from dead storage to capacity, float64 (n_storage,), hm³."""
    if n_storage < 2:
        raise ValueError(f"n_storage must be >= 2, got {n_storage}")
    return torch.linspace(physics.dead_storage_hm3, physics.capacity_hm3, n_storage, dtype=VALUE_DTYPE, device=device)


def grid_position(storage_hm3: torch.Tensor, physics: ReservoirPhysics, n_grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where storages (any shape) fall on the uniform grid of ``n_grid`` levels: the lower level (int64,
    0 … n_grid − 2) and the weight of the level above it (0 … 1; the value is low + weight · (high − low)).

    Storages outside dead … capacity are clamped to the ends.
    """
    spacing = (physics.capacity_hm3 - physics.dead_storage_hm3) / (n_grid - 1)
    position = ((storage_hm3 - physics.dead_storage_hm3) / spacing).clamp(0.0, n_grid - 1)
    lower = position.floor().clamp(max=n_grid - 2)
    return lower.long(), position - lower


def interpolate_on_grid(values: torch.Tensor, storage_hm3: torch.Tensor, physics: ReservoirPhysics) -> torch.Tensor:
    """Linear interpolation of ``values`` (B, G), given on the uniform grid, at ``storage_hm3`` (B, ...).

    Storages outside dead … capacity are clamped to the ends. Returns the shape of ``storage_hm3``.
    """
    n_batch, n_grid = values.shape
    lower, weight = grid_position(storage_hm3.to(values.dtype), physics, n_grid)
    flat_lower = lower.reshape(n_batch, -1)
    low = values.gather(1, flat_lower).reshape(storage_hm3.shape)
    high = values.gather(1, flat_lower + 1).reshape(storage_hm3.shape)
    return low + weight * (high - low)


def transition(
    physics: ReservoirPhysics,
    reward_weights: RewardConfig,
    storage_hm3: torch.Tensor,
    inflow_hm3: torch.Tensor,
    day_of_year: torch.Tensor,
    terminate_on_failure: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reward, next storage and "has a future" mask of every release level; inputs broadcast, actions last.

    ``storage_hm3``, ``inflow_hm3`` and ``day_of_year`` must broadcast with a trailing axis of size 1 (the
    action axis); returns three tensors with the broadcast shape and A on the last axis.
    """
    actions = torch.arange(physics.n_release_levels, device=storage_hm3.device)
    outcome = physics.step(storage_hm3, inflow_hm3, actions, day_of_year.to(VALUE_DTYPE))
    reward = weighted_reward(reward_weights, reward_components(physics, outcome))
    alive = torch.ones_like(reward, dtype=torch.bool)
    if terminate_on_failure:
        alive = ~(outcome.flood_failure | outcome.drought_failure)
    return reward, outcome.next_storage_hm3, alive


def solve_values(
    physics: ReservoirPhysics,
    reward_weights: RewardConfig,
    inflow_hm3: torch.Tensor,
    day_of_year: torch.Tensor,
    n_storage: int,
    terminate_on_failure: bool,
    terminal_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal value of each grid storage on each day of B known traces.

    Args:
        inflow_hm3: true daily inflow, (B, T), hm³ per day.
        day_of_year: calendar day (0-based) of each trace day, (B, T).
        n_storage: grid levels G from dead storage to capacity.
        terminate_on_failure: a failing transition (catastrophic flood or drought) has no future value.
        terminal_values: (B, G) value of each grid storage left after the last day (default 0).

    Returns:
        values: (B, T + 1, G) float64; ``values[b, t, g]`` is the best undiscounted return from day t at
            storage ``grid[g]``, plus the terminal value of the storage left (``values[:, T] =
            terminal_values``, or 0).
        grid: (G,) float64 storage grid, hm³.
    """
    if inflow_hm3.ndim != 2 or day_of_year.shape != inflow_hm3.shape:
        raise ValueError(f"inflow_hm3 and day_of_year must both be (B, T), got {tuple(inflow_hm3.shape)} "
                         f"and {tuple(day_of_year.shape)}")
    device = inflow_hm3.device
    n_batch, n_days = inflow_hm3.shape
    grid = storage_grid_hm3(physics, n_storage, device)
    inflow = inflow_hm3.to(VALUE_DTYPE)
    values = torch.zeros(n_batch, n_days + 1, n_storage, dtype=VALUE_DTYPE, device=device)
    if terminal_values is not None:
        if terminal_values.shape != (n_batch, n_storage):
            raise ValueError(f"terminal_values must be (B, G) = ({n_batch}, {n_storage}), got {tuple(terminal_values.shape)}")
        values[:, n_days] = terminal_values.to(device=device, dtype=VALUE_DTYPE)
    # Rewards and next storages do not depend on the values: evaluate them for chunks of days at once,
    # latest days first, and keep only the value recursion in the day loop.
    chunk_days = max(1, CHUNK_ELEMENTS // (n_batch * n_storage * physics.n_release_levels))
    end = n_days
    while end > 0:
        start = max(0, end - chunk_days)
        reward, next_storage, alive = transition(
            physics,
            reward_weights,
            grid.view(1, 1, -1, 1),
            inflow[:, start:end, None, None],
            day_of_year[:, start:end, None, None],
            terminate_on_failure,
        )  # (B, days, G, A)
        for t in range(end - 1, start - 1, -1):
            k = t - start
            future = interpolate_on_grid(values[:, t + 1], next_storage[:, k], physics)
            q = reward[:, k] + torch.where(alive[:, k], future, torch.zeros_like(future))
            values[:, t] = q.amax(dim=-1)
        end = start
    return values, grid


# Reward weights under which a return counts failures only: 0 without one, −1 with (the episode ends there).
FAILURE_ONLY = RewardConfig(hydropower=0.0, flood=0.0, env_flow=0.0, supply=0.0, spill=0.0, failure=1.0)


def failure_free(physics: ReservoirPhysics, inflow_hm3: torch.Tensor, day_of_year: torch.Tensor,
                 storage_hm3: torch.Tensor, n_storage: int) -> torch.Tensor:
    """Whether some release sequence, knowing the whole trace, runs each of B traces to its end without a
    catastrophic flood or drought from the given storage: bool (B,).

    ``inflow_hm3`` and ``day_of_year``: (B, T) traces; ``storage_hm3``: (B,) storage on their first day, hm³.
    The backward recursion of `solve_values` with failure-only rewards (`FAILURE_ONLY`) on the ``n_storage``
    grid; the first day is taken from the exact storage, later days interpolated on the grid (a storage
    within one grid step of the boundary between failing and not may be judged either way)."""
    values, _ = solve_values(physics, FAILURE_ONLY, inflow_hm3[:, 1:], day_of_year[:, 1:], n_storage, True)
    reward, next_storage, alive = transition(
        physics, FAILURE_ONLY, storage_hm3.reshape(-1, 1).to(VALUE_DTYPE), inflow_hm3[:, :1].to(VALUE_DTYPE),
        day_of_year[:, :1], True,
    )  # (B, A)
    future = interpolate_on_grid(values[:, 0], next_storage, physics)
    best = (reward + torch.where(alive, future, torch.zeros_like(future))).amax(dim=-1)
    return best > -0.5


class PerfectForesightPolicy:
    """Perfect-foresight DP policy: the upper bound evaluation compares agents with.

    For each env, its episode start is ``record_index − env.steps_in_episode``; the DP over the next
    ``horizon_days`` of true inflow from that start is solved once (all new starts of a call in one batch)
    and cached by start index (at most ``max_cached`` traces, ~2.9 MB each for 365 days × 1000 levels,
    beyond those the current call needs). The action maximises r(S, a) + V_{t+1}(S') at the EXACT current
    storage S, with V_{t+1} interpolated on the grid (no future after a failure when the env terminates
    on it). Interface: ``policy(tensordict) -> tensordict`` writing ``action`` (int64, (n_envs,)).

    ``end_value`` (optional): the value of the storage left after the episode's last day,
    ``end_value(start_index (n,), storage_hm3 (n, G)) -> (n, G)`` float64 (`EndStorageValue`); the DP then
    maximises the return plus that value instead of drawing the reservoir down before the horizon.
    """

    def __init__(self, env: DiscreteReservoirEnv, n_storage: int = 1000, max_cached: int = 64,
                 end_value: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None) -> None:
        self.env = env
        self.n_storage = int(n_storage)
        self.max_cached = int(max_cached)
        self.end_value = end_value
        self.horizon_days = env.config.horizon_days
        self._starts = torch.empty(0, dtype=torch.int64, device=env.device)  # (K,) ascending start indices
        self._values = torch.empty(0, self.horizon_days + 1, self.n_storage, dtype=VALUE_DTYPE, device=env.device)

    def _slots(self, start_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Position of each start in the cache (n,) and whether it is cached (n,) bool."""
        if len(self._starts) == 0:
            return torch.zeros_like(start_index), torch.zeros_like(start_index, dtype=torch.bool)
        slot = torch.searchsorted(self._starts, start_index).clamp(max=len(self._starts) - 1)
        return slot, self._starts[slot] == start_index

    def cache_traces(self, start_index: torch.Tensor) -> torch.Tensor:
        """Solve the traces starting at ``start_index`` (int64, (n,)) not cached yet; return their slots (n,)."""
        slot, found = self._slots(start_index)
        if bool(found.all()):
            return slot
        new = torch.unique(start_index[~found])
        # solved a few traces at a time: a (B, G, A) day slice of 8 traces stays in cache, 50 do not
        # (measured: 0.19 s per trace in groups of 8, 0.31 s all 50 at once, benchmarks/bench_dp.py)
        values = torch.cat([
            solve_values(
                self.env.physics,
                self.env.config.reward,
                self.env.inflow_trace_hm3(group, self.horizon_days),
                self.env.day_of_year_trace(group, self.horizon_days),
                self.n_storage,
                self.env.config.terminate_on_failure,
                self._terminal_values(group),
            )[0]
            for group in new.split(SOLVE_GROUP_TRACES)
        ])
        keep = torch.ones_like(self._starts, dtype=torch.bool)
        overflow = len(self._starts) + len(new) - self.max_cached
        if overflow > 0:  # drop the traces this call does not need, oldest slots first
            unused = ~torch.isin(self._starts, start_index)
            drop = torch.nonzero(unused).flatten()[:overflow]
            keep[drop] = False
        starts = torch.cat([self._starts[keep], new])
        order = torch.argsort(starts)
        self._starts = starts[order]
        self._values = torch.cat([self._values[keep], values])[order]
        return self._slots(start_index)[0]

    def _terminal_values(self, start_index: torch.Tensor) -> Optional[torch.Tensor]:
        """(n, G) value of each grid storage left after the traces' last day, or None (zero)."""
        if self.end_value is None:
            return None
        grid = storage_grid_hm3(self.env.physics, self.n_storage, start_index.device)
        return self.end_value(start_index, grid.expand(len(start_index), -1))

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        record_index = tensordict.get("record_index").reshape(-1)
        day = self.env.steps_in_episode.reshape(-1).to(record_index.device)
        slot = self.cache_traces(record_index - day)
        next_values = self._values[slot, (day + 1).clamp(max=self.horizon_days)]  # (n, G)
        storage = tensordict.get("storage_hm3").reshape(-1, 1).to(VALUE_DTYPE)
        inflow = self.env.inflow_hm3_at(record_index).reshape(-1, 1).to(VALUE_DTYPE)
        reward, next_storage, alive = transition(
            self.env.physics,
            self.env.config.reward,
            storage,
            inflow,
            tensordict.get("day_of_year").reshape(-1, 1),
            self.env.config.terminate_on_failure,
        )  # (n, A)
        future = interpolate_on_grid(next_values, next_storage, self.env.physics)
        q = reward + torch.where(alive, future, torch.zeros_like(future))
        tensordict.set("action", q.argmax(dim=-1).reshape(tensordict.batch_size))
        return tensordict
