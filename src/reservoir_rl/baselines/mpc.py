"""Forecast-informed model predictive control (MPC): each day, a deterministic DP over the forecast horizon.

Forecast-informed reservoir operations re-plan every day on the latest forecast and apply only the first
release. `ForecastMPCPolicy` does that on the information the agent has and nothing more:

- **what it knows**: today's storage, the calendar (day of year of today and of the days ahead) and the
  inflow forecast of the agent's observation for leads 1 … L (lead 1 = today), decoded back to hm³/day
  by `decode_forecast_hm3`. The forecast is the env's noisy one (true inflow × a log-normal error that
  grows with lead time, redrawn every day), today's lead 1 included: MPC plans with the forecast of
  today's inflow while the env's physics applies the true inflow. It never reads the inflow record.
- **the plan**: over the H = ``horizon_days`` days from today (default ``env.forecast.lead_days``, all the
  forecast there is), the backward recursion of `reservoir_rl.baselines.dp` on the uniform storage grid
  dead … capacity (G = ``n_storage`` levels) with the env's release levels, physics and reward
  (`dp.transition`), each forecast day treated as certain:

      V_H(s) = terminal_value(day H, s),
      V_k(s) = max_a r_k(s, a) + discount · [not failed] · V_{k+1}(s'(s, a)),   k = H − 1 … 1,

  V_{k+1} linearly interpolated at s' (`dp.interpolate_on_grid`). Today's release level maximises
  r_0(S, a) + discount · V_1(S') at the EXACT current storage S, as `PerfectForesightPolicy` does.
- **no knowledge of the episode's end** by default (an operator does not know when an evaluation
  stops): every day plans H days ahead. ``episode_aware=True`` truncates the plan at the episode's last
  day with no value after it (the test that MPC with a perfect forecast over the whole episode is DP).

Speed: from today's storage, the storage on day k lies between known bounds (no more than the forecast
inflow comes in; no more than the release capacity plus the evaporation goes out), so day k is solved
only on the grid nodes within those bounds plus k nodes each side (what interpolation from the nodes of
day k − 1 can read). The values at every node that today's decision depends on are those of the full-grid
recursion; the others are never computed. All envs are planned at once, (B, window, A) tensors per day.
Values are float64, volumes hm³, inflows hm³ per day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch
from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import VALUE_DTYPE, interpolate_on_grid, storage_grid_hm3, transition
from reservoir_rl.env.reservoir_env import FORECAST_OFFSET, DiscreteReservoirEnv, decode_forecast_hm3  # noqa: F401

if TYPE_CHECKING:
    from reservoir_rl.config import Config

DEFAULT_STORAGE_LEVELS = 500  # 50 episodes in 12 s of CPU on one thread (benchmarks/README.md, bench_mpc.py)

# terminal_value(day_of_year (B,) int64, storage_grid_hm3 (G,) float64) -> (B, G) float64
TerminalValue = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# forecast(tensordict) -> (n_envs, ≥ H) inflow of today and the days ahead, hm³/day
Forecast = Callable[[TensorDictBase], torch.Tensor]


class ForecastMPCPolicy:
    """Each day, a deterministic DP over the next ``horizon_days`` of the observed forecast; apply the first release.

    Interface: ``policy(tensordict) -> tensordict`` writing ``action`` (int64, (n_envs,)), vectorised over
    the envs. Reads the root keys ``observation`` (the forecast), ``storage_hm3`` and ``record_index``
    (today's position in the calendar: the day of year of today and the days ahead; never the inflow).

    Args:
        env: the env it acts in (physics, reward weights, release levels, forecast settings, calendar).
        n_storage: G, levels of the storage grid dead … capacity.
        horizon_days: H, days planned from today (today included); default ``env.forecast.lead_days``.
            With the observed forecast it may not exceed ``lead_days``.
        terminal_value: value of the storage left after the horizon, or None for zero. Called once per
            decision as ``terminal_value(day_of_year, storage_grid_hm3)`` with ``day_of_year`` int64 (B,),
            the 0-based calendar day of year (as the env counts it: the record's calendar, 365 on
            31 December of a leap year) of the day right after the horizon, today + H; and
            ``storage_grid_hm3`` float64 (G,), the plan's grid dead … capacity (hm³). Returns float64
            (B, G): the value of starting that day with each grid storage, on the scale of the rewards (for
            instance the stochastic DP's value function). It enters today's decision multiplied by
            ``discount ** H``.
        discount: per-day factor on the value of the next day in the recursion, 0 … 1. 1.0 (default): the
            plan maximises the undiscounted sum of rewards over the horizon plus the terminal value; pass
            the agent's γ when the terminal value is a γ-discounted value function.
        episode_aware: plan only up to the episode's last day (``env.horizon_days`` − days simulated), with
            no value after it. Off by default: an operator does not know when the evaluation stops.
        forecast: where the inflow of today and the days ahead comes from, ``forecast(tensordict) ->``
            float (n_envs, ≥ H) hm³/day; default: `decode_forecast_hm3` of the observation, the agent's
            own noisy forecast. A test hook: the tests pass the true inflow to check that MPC with a perfect
            forecast over the whole episode reproduces `PerfectForesightPolicy`.
    """

    def __init__(
        self,
        env: DiscreteReservoirEnv,
        n_storage: int = DEFAULT_STORAGE_LEVELS,
        horizon_days: Optional[int] = None,
        terminal_value: Optional[TerminalValue] = None,
        discount: float = 1.0,
        episode_aware: bool = False,
        forecast: Optional[Forecast] = None,
    ) -> None:
        lead = env.config.forecast.lead_days
        horizon_days = lead if horizon_days is None else int(horizon_days)
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
        if forecast is None and horizon_days > lead:
            raise ValueError(f"horizon_days ({horizon_days}) exceeds the {lead} days of forecast the observation holds")
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must lie in [0, 1], got {discount}")
        self.env = env
        self.physics = env.physics
        self.horizon_days = horizon_days
        self.terminal_value = terminal_value
        self.discount = float(discount)
        self.episode_aware = bool(episode_aware)
        self.forecast = forecast if forecast is not None else (lambda td: decode_forecast_hm3(env, td.get("observation")))
        self.grid_hm3 = storage_grid_hm3(self.physics, int(n_storage), env.device)
        self.spacing_hm3 = (self.physics.capacity_hm3 - self.physics.dead_storage_hm3) / (len(self.grid_hm3) - 1)
        # day of year of every record position and of the H + 1 days after the record's end (consecutive dates)
        dates = env.inflow.dates[0] + np.arange(env.inflow.n_days + horizon_days + 1)
        self._calendar = torch.as_tensor((dates - dates.astype("datetime64[Y]")).astype(np.int64), device=env.device)
        # most a day can take out of the lake besides the release: evaporation at full lake area, hm³ (366,)
        full_area_km2 = self.physics.area_km2(torch.tensor(self.physics.capacity_hm3, dtype=VALUE_DTYPE))
        days = torch.arange(366, dtype=VALUE_DTYPE, device=env.device)
        self._max_evaporation_hm3 = full_area_km2 * self.physics.evaporation_depth_mm(days).clamp(min=0.0) * 1e-3

    @property
    def n_storage(self) -> int:
        return len(self.grid_hm3)

    def _position(self, storage_hm3: torch.Tensor) -> torch.Tensor:
        """Grid position (float64, 0 … G − 1) of storages in dead … capacity."""
        return (storage_hm3 - self.physics.dead_storage_hm3) / self.spacing_hm3

    def q_values(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Today's value of each release level: r_0(S, a) + discount · V_1(S'), float64 (n_envs, A).

        A release that fails (catastrophic flood or drought) has no future value when the env terminates on
        failure, as in the env.
        """
        physics, n_grid, horizon = self.physics, self.n_storage, self.horizon_days
        storage = tensordict.get("storage_hm3").reshape(-1).to(VALUE_DTYPE)
        record_index = tensordict.get("record_index").reshape(-1)
        n_envs = len(storage)
        inflow = self.forecast(tensordict)
        if inflow.ndim != 2 or inflow.shape[0] != n_envs or inflow.shape[1] < horizon:
            raise ValueError(f"the forecast must be (n_envs, >= {horizon}) = ({n_envs}, >= {horizon}), "
                             f"got {tuple(inflow.shape)}")
        inflow = inflow[:, :horizon].to(VALUE_DTYPE)
        days = self._calendar[record_index.unsqueeze(-1) + torch.arange(horizon + 1, device=record_index.device)]
        if self.episode_aware:
            days_left = self.env.config.horizon_days - self.env.steps_in_episode.reshape(-1).to(record_index.device)
        else:
            days_left = torch.full_like(record_index, horizon + 1)  # the plan never reaches the episode's end

        values = torch.zeros(n_envs, n_grid, dtype=VALUE_DTYPE, device=storage.device)  # V_H
        if self.terminal_value is not None:
            terminal = self.terminal_value(days[:, horizon], self.grid_hm3)
            if terminal.shape != (n_envs, n_grid):
                raise ValueError(f"terminal_value must return (B, G) = ({n_envs}, {n_grid}), got {tuple(terminal.shape)}")
            values = torch.where((days_left > horizon).unsqueeze(-1), terminal.to(VALUE_DTYPE), values)

        # bounds of the storage reachable on days 1 … H − 1 from today's storage (see the module docstring)
        low, high = [storage], [storage]
        for k in range(horizon - 1):
            drop = physics.release_capacity_hm3 + self._max_evaporation_hm3[days[:, k]]
            low.append((low[-1] + inflow[:, k] - drop).clamp(physics.dead_storage_hm3, physics.capacity_hm3))
            high.append((high[-1] + inflow[:, k]).clamp(physics.dead_storage_hm3, physics.capacity_hm3))

        for k in range(horizon - 1, 0, -1):
            first = (self._position(low[k]).floor().long() - k).clamp(0, n_grid - 1)
            last = (self._position(high[k]).ceil().long() + k).clamp(0, n_grid - 1)
            width = int((last - first).max()) + 1
            first = first.clamp(max=n_grid - width)
            nodes = first.unsqueeze(-1) + torch.arange(width, device=first.device)  # (B, W)
            reward, next_storage, alive = transition(
                physics,
                self.env.config.reward,
                self.grid_hm3[nodes].unsqueeze(-1),
                inflow[:, k, None, None],
                days[:, k, None, None],
                self.env.config.terminate_on_failure,
            )  # (B, W, A)
            future = interpolate_on_grid(values, next_storage, physics)
            q = reward + self.discount * torch.where(alive, future, torch.zeros_like(future))
            planned = (days_left > k).unsqueeze(-1)  # day k is in the episode
            window_values = torch.where(planned, q.amax(dim=-1), torch.zeros_like(q[..., 0]))
            values = torch.zeros_like(values).scatter_(1, nodes, window_values)  # V_k on the window, 0 elsewhere

        reward, next_storage, alive = transition(
            physics,
            self.env.config.reward,
            storage.unsqueeze(-1),
            inflow[:, :1],
            days[:, :1],
            self.env.config.terminate_on_failure,
        )  # (B, A)
        future = interpolate_on_grid(values, next_storage, physics)
        return reward + self.discount * torch.where(alive, future, torch.zeros_like(future))

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self.q_values(tensordict).argmax(dim=-1)
        tensordict.set("action", action.reshape(tensordict.batch_size))
        return tensordict


def forecast_mpc_with_sdp_value(env: DiscreteReservoirEnv, config: "Config") -> ForecastMPCPolicy:
    """The catalog's `mpc`: `ForecastMPCPolicy` on ``config.baselines.mpc``'s grid and horizon whose plan
    values the storage left after the horizon with the stochastic DP's value function (`sdp_solution`,
    solved from the training years; today's inflow class beyond the horizon is unknown, so the value is
    weighted by the period's class frequencies, `SDPSolution.mean_value`), discounted per day with the
    SDP's discount so the horizon's rewards and the terminal value are on one scale."""
    from reservoir_rl.baselines.sdp import sdp_solution

    solution = sdp_solution(env, config)

    def terminal_value(day_of_year: torch.Tensor, storage_grid_hm3: torch.Tensor) -> torch.Tensor:
        return solution.mean_value(day_of_year, storage_grid_hm3.expand(len(day_of_year), -1))

    mpc = config.baselines.mpc
    return ForecastMPCPolicy(env, n_storage=mpc.storage_levels, horizon_days=mpc.horizon_days,
                             terminal_value=terminal_value, discount=solution.gamma)
