"""The release guard: each day, the chosen release level is moved into the band the observed forecast says is safe.

A shield in the sense of Alshiekh et al. (2018), built on what the agent observes (and, with the opt-in flood
reserve below, the training years' largest daily inflows): today's
storage, the calendar day and the inflow forecast of the observation (leads 1 … L, lead 1 = today, decoded
from the observation as `decode_forecast_hm3` does), with the forecast's error model of ``env.forecast``.
It never reads the inflow record beyond that reserve.

**The error model's quantiles.** The env's forecast of lead k is F = I·exp(σ_k ε − σ_k²/2), ε ~ N(0, 1),
σ_k = ``error_sigma``·k^``error_growth``. Read backwards, the inflow the forecast stands for has quantile q
at I_q = F·exp(σ_k z_q + σ_k²/2), z_q the standard normal quantile: the flood check assumes
``env.safety.flood_quantile`` (high), the drought check ``env.safety.drought_quantile`` (low).

**The band** [lowest, highest] of release levels, for each reservoir:

- *lowest* (flood): the smallest level a such that, with a today and the full release capacity on every
  later day of the window, no day of the window overtops the dam (spill beyond the spillway capacity)
  under the high inflows. Later days are checked through the largest storage after today from which the
  full release keeps the rest of the window safe (`flood_safe_storage_hm3`, evaporation left out, which
  errs on the safe side). No level safe: the largest level.
- *highest* (drought): the largest level a such that, with a today and nothing released on later days of
  the window, storage stays above dead storage + ``dead_storage_margin_fraction`` × capacity under the low
  inflows and the most the lake can evaporate (`drawdown_hm3`). It is never below the level of the
  environmental flow (the smallest level releasing ``env_flow_cms``) while water is available, i.e. while
  releasing that level today keeps the lake above the same floor under the low inflows.

**The flood reserve** (``env.safety.flood_reserve_days`` = H > 0, opt-in): the flood check's storage at the
end of the window must also let the full release pass H more days, each at the design inflow of its date
(the largest daily inflow the env's training years brought within 30 days of it, or the
``env.safety.flood_reserve_quantile`` of those days' inflows; `design_daily_inflow_cms`, read once when the guard is built for an env) — the only use of the record, and of its training years only.

The executed level is ``max(min(action, highest), lowest)``: where the two cannot both hold, flood safety
wins. Each check assumes the least restrictive later releases (full release for floods, none for droughts),
so the guard steps in only when no later decision could help under the assumed inflows; on the next day it
judges again with the new forecast.

**Limits.** The guard knows what the forecast shows: a flood beyond the window, or one the forecast hides
by more than its error model's quantile allows, is not prevented. Drought is guarded on the days the
agent's releases would cause it; evaporation from a lake near dead storage is nobody's choice.

Volumes hm³, inflows hm³ per day, computed in float64; every function is batched over reservoirs (B,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from reservoir_rl.config import ForecastConfig, SafetyConfig
from reservoir_rl.env.flood_zone import design_daily_inflow_cms
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv, forecast_from_observation
from reservoir_rl.units import HM3_PER_CMS_DAY

GUARD_OVERRIDE_KEY = "guard_override"  # bool (n_envs,): the guard changed the policy's action that day
GUARD_DTYPE = torch.float64


def forecast_quantile_factors(forecast: ForecastConfig, quantile: float) -> torch.Tensor:
    """exp(σ_k z_q + σ_k²/2) for leads k = 1 … L, float64 (L,): forecast × factor = the q-quantile of the
    inflow the forecast stands for under the env's log-normal error model (module docstring)."""
    sigma = forecast.error_sigma * torch.arange(1, forecast.lead_days + 1, dtype=GUARD_DTYPE).pow(forecast.error_growth)
    z = math.sqrt(2.0) * torch.special.erfinv(torch.tensor(2.0 * quantile - 1.0, dtype=GUARD_DTYPE))
    return torch.exp(sigma * z + 0.5 * sigma * sigma)


def flood_safe_storage_hm3(
    physics: ReservoirPhysics, inflow_hm3: torch.Tensor, end_limit_hm3: torch.Tensor | None = None
) -> torch.Tensor:
    """Largest storage at the start of day 1 from which releasing the full capacity on days 1 … L − 1
    overtops on none of them, float64 (B,) (+inf: any storage); ``inflow_hm3`` (B, L) holds days 0 … L − 1;
    ``end_limit_hm3`` (B,), when given, bounds the storage at the start of day L too (the flood reserve).

    Backwards over the window, evaporation left out (more water: the safe side): on day k storage S must
    satisfy S + I_k − R − capacity ≤ W (the spill stays within the spillway) and, unless any storage is safe
    on day k + 1, S + I_k − R ≤ limit_{k+1}; R is the release capacity, W the spillway capacity, per day."""
    capacity = physics.capacity_hm3
    release = physics.release_capacity_hm3
    spillway = physics.config.spillway_capacity_cms * HM3_PER_CMS_DAY
    top = capacity + spillway + (release - inflow_hm3)  # (B, L): day k's bound from its own spill
    room = release - inflow_hm3
    limit = torch.full(inflow_hm3.shape[:-1], math.inf, dtype=GUARD_DTYPE, device=inflow_hm3.device)
    if end_limit_hm3 is not None:
        limit = end_limit_hm3.to(GUARD_DTYPE).clone()
    for k in range(inflow_hm3.shape[-1] - 1, 0, -1):
        limit = torch.minimum(top[..., k], limit.masked_fill_(limit >= capacity, math.inf).add_(room[..., k]))
    return limit


def drawdown_hm3(evaporation_hm3: torch.Tensor, inflow_hm3: torch.Tensor) -> torch.Tensor:
    """Most storage can fall below its level at the start of day 1 during days 1 … L − 1 with no release,
    float64 (B,) ≥ 0: the largest running sum of (evaporation − inflow) over those days. ``inflow_hm3``
    (B, L) holds days 0 … L − 1, ``evaporation_hm3`` (B, L − 1) the most the lake can evaporate on days
    1 … L − 1 (`ReleaseGuard` passes the evaporation at full lake area)."""
    if inflow_hm3.shape[-1] < 2:
        return torch.zeros_like(inflow_hm3[..., 0])
    return (evaporation_hm3 - inflow_hm3[..., 1:]).cumsum(dim=-1).amax(dim=-1).clamp(min=0.0)


@dataclass(frozen=True)
class ReleaseGuard:
    """The guard of one reservoir design: plain settings, no env (it pickles into collector workers).

    ``mean_inflow_hm3`` is the env's reference inflow (hm³/day) the observation's forecast is divided by
    (``env.mean_inflow_hm3``: the training years' mean unless ``env.forecast.reference_inflow_cms`` sets it)."""

    physics: ReservoirPhysics
    forecast: ForecastConfig
    safety: SafetyConfig
    mean_inflow_hm3: float
    design_inflow_hm3: tuple[float, ...] = ()  # per day of year 0 … 365: the flood reserve's design day (hm³/day)

    @classmethod
    def for_env(cls, env: DiscreteReservoirEnv) -> "ReleaseGuard":
        """The guard of ``env``'s config; the flood reserve's design days (``env.safety.flood_reserve_days`` > 0)
        come from the env's training water years (`design_daily_inflow_cms`), never its evaluation years."""
        design: tuple[float, ...] = ()
        if env.config.safety.flood_reserve_days > 0:
            design_cms = design_daily_inflow_cms(env.inflow, env.training_water_years,
                                                 quantile=env.config.safety.flood_reserve_quantile)
            design = tuple(float(value) * HM3_PER_CMS_DAY for value in design_cms)
        return cls(env.physics, env.config.forecast, env.config.safety, env.mean_inflow_hm3, design)

    @property
    def floor_hm3(self) -> float:
        """Dead storage + margin: the storage the drought check keeps the lake above."""
        return self.physics.dead_storage_hm3 + self.safety.dead_storage_margin_fraction * self.physics.capacity_hm3

    @property
    def env_flow_level(self) -> int:
        """The smallest release level that releases at least the environmental flow."""
        physics = self.physics
        step_cms = physics.config.release_capacity_cms / (physics.n_release_levels - 1)
        level = math.ceil(physics.config.env_flow_cms / step_cms - 1e-9)
        return min(max(level, 0), physics.n_release_levels - 1)

    def bounds(
        self, storage_hm3: torch.Tensor, forecast_hm3: torch.Tensor, day_of_year: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lowest, highest) release levels, int64 (B,), from storage (B,), the observed forecast (B, L)
        hm³/day (lead 1 = today) and today's day of year (B,); lowest > highest where both cannot hold."""
        physics = self.physics
        storage = storage_hm3.reshape(-1).to(GUARD_DTYPE)
        day = day_of_year.reshape(-1)
        forecast = forecast_hm3.to(GUARD_DTYPE)
        device = forecast.device
        tables = self._tables(device)
        # the high (flood) and the low (drought) inflows stacked: (2, B, L)
        inflow = forecast.unsqueeze(0) * tables["factors"].unsqueeze(1)
        levels = tables["levels"]
        n_levels = physics.n_release_levels
        # today, every level, both scenarios: (2, B, A); the water balance of `physics.step` (the guard needs
        # only the next storage and whether the spill overtops)
        _, _, spill, next_storage = physics.water_balance(
            storage.unsqueeze(-1), inflow[..., :1], levels, tables["evaporation_depth_mm"][day].unsqueeze(-1)
        )
        wet_storage, dry_storage = next_storage[0], next_storage[1]
        overtops = spill[0] > tables["spillway_hm3"]
        end_limit = self._reserve_limit_hm3(day, tables)
        flood_safe = ~overtops & (wet_storage <= flood_safe_storage_hm3(physics, inflow[0], end_limit).unsqueeze(-1))
        lowest = torch.where(flood_safe, levels, n_levels - 1).amin(dim=-1)

        window = inflow.shape[-1]
        evaporation = tables["full_lake_evaporation_hm3"][day.unsqueeze(-1) + tables["later_days"][: window - 1]]
        floor = self.floor_hm3
        above_floor = dry_storage > floor
        drought_safe = above_floor & (dry_storage - drawdown_hm3(evaporation, inflow[1]).unsqueeze(-1) > floor)
        highest = torch.where(drought_safe, levels, 0).amax(dim=-1)
        # the flood bound never takes the lake below the floor today (an empty lake is a drought failure)
        lowest = lowest.minimum(torch.where(above_floor, levels, 0).amax(dim=-1))
        env_level = self.env_flow_level
        water_available = above_floor[:, env_level]
        highest = torch.where(water_available, highest.clamp(min=env_level), highest)
        return lowest, highest

    def _reserve_limit_hm3(self, day: torch.Tensor, tables: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The flood reserve's bound on the storage at the end of the forecast window for today's day of year
        (B,), float64 (B,) — a lookup into ``tables["reserve_limit_hm3"]`` (`_reserve_limits_hm3`); None
        without a reserve."""
        limits = tables["reserve_limit_hm3"]
        return None if limits is None else limits[day]

    def _reserve_limits_hm3(self, device: torch.device) -> torch.Tensor:
        """For each day of year 0 … 365 as today, float64 (366,): the largest storage at the end of the
        forecast window (start of day L) from which the full release passes ``flood_reserve_days`` design
        days without overtopping. Below the drought floor where no storage passes them: the flood bound then
        asks for the full release, never for a day's release that takes the lake below the floor."""
        design_table = torch.tensor(self.design_inflow_hm3, dtype=GUARD_DTYPE, device=device)
        today = torch.arange(366, device=device).unsqueeze(-1)
        after = today + self.forecast.lead_days + torch.arange(self.safety.flood_reserve_days, device=device)
        design = design_table[after % 365]  # (366, H) hm³/day
        # a day 0 of no inflow in front: the limit at the start of the first design day
        return flood_safe_storage_hm3(self.physics, torch.cat([torch.zeros_like(design[:, :1]), design], dim=-1))

    def _tables(self, device: torch.device) -> dict[str, Any]:
        """What depends only on the settings, once per device: the quantile factors (2, L), the release
        levels (A,), the evaporation depth (mm) and the evaporation at full lake area (hm³) of every day of
        year, the latter far enough past the year's end for a window starting on day 365, the flood reserve's
        bound for every day of year (None without a reserve), the spillway's daily volume (hm³) and the
        window's later days 1 … L − 1."""
        cache = self.__dict__.setdefault("_cache", {})
        key = str(device)
        if key not in cache:
            physics = self.physics
            days = torch.arange(366 + self.forecast.lead_days, dtype=GUARD_DTYPE, device=device)
            depth_mm = physics.evaporation_depth_mm(days).clamp(min=0.0)
            full_area_km2 = float(physics.area_km2(torch.tensor(physics.capacity_hm3, dtype=GUARD_DTYPE)))
            cache[key] = {
                "factors": torch.stack([forecast_quantile_factors(self.forecast, self.safety.flood_quantile),
                                        forecast_quantile_factors(self.forecast, self.safety.drought_quantile)]).to(device),
                "levels": torch.arange(physics.n_release_levels, device=device),
                "evaporation_depth_mm": physics.evaporation_depth_mm(days),
                "full_lake_evaporation_hm3": full_area_km2 * depth_mm * 1e-3,
                "reserve_limit_hm3": (self._reserve_limits_hm3(device)
                                      if self.safety.flood_reserve_days and self.design_inflow_hm3 else None),
                "spillway_hm3": physics.config.spillway_capacity_cms * HM3_PER_CMS_DAY,  # `physics.step`'s flood failure
                "later_days": torch.arange(1, self.forecast.lead_days, device=device),  # days 1 … L − 1 of the window
            }
        return cache[key]

    def apply(
        self, action: torch.Tensor, storage_hm3: torch.Tensor, observation: torch.Tensor, day_of_year: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(executed action, override) with the shape of ``action`` (int64 levels; override bool: changed)
        from the root keys of an env's tensordict: ``storage_hm3``, ``observation`` and ``day_of_year``."""
        forecast = forecast_from_observation(observation, self.forecast, self.mean_inflow_hm3)
        lowest, highest = self.bounds(storage_hm3, forecast, day_of_year)
        proposed = action.reshape(-1)
        executed = torch.maximum(torch.minimum(proposed, highest), lowest).to(action.dtype)
        return executed.reshape(action.shape), (executed != proposed).reshape(action.shape)


class GuardedPolicy(TensorDictModuleBase):
    """``policy`` followed by the guard: the tensordict's ``action`` becomes the executed (guarded) level and
    ``guard_override`` (bool, the batch shape) says where the guard changed it. Everything else the policy
    wrote (``action_value`` …) is the policy's own. Reads the env's root keys ``observation``,
    ``storage_hm3`` and ``day_of_year`` (never the inflow record)."""

    def __init__(self, policy: Callable[[TensorDictBase], TensorDictBase], guard: ReleaseGuard) -> None:
        super().__init__()
        self.policy = policy
        self.guard = guard
        self.in_keys = list(dict.fromkeys([*getattr(policy, "in_keys", ["observation"]), "observation",
                                           "storage_hm3", "day_of_year"]))
        self.out_keys = list(dict.fromkeys([*getattr(policy, "out_keys", ["action"]), "action", GUARD_OVERRIDE_KEY]))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = self.policy(tensordict)
        executed, override = self.guard.apply(
            tensordict.get("action"), tensordict.get("storage_hm3"), tensordict.get("observation"),
            tensordict.get("day_of_year"),
        )
        tensordict.set("action", executed)
        tensordict.set(GUARD_OVERRIDE_KEY, override)
        return tensordict


def guarded(policy: Any, env: DiscreteReservoirEnv, enabled: bool = True) -> Any:
    """``policy`` under ``env``'s release guard (`GuardedPolicy`), or ``policy`` itself when ``enabled`` is
    False or the env's ``safety.enabled`` is off."""
    if not (enabled and env.config.safety.enabled):
        return policy
    return GuardedPolicy(policy, ReleaseGuard.for_env(env))
