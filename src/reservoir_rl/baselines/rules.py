"""Operating rules the field uses: standard operating policy, two-point hedging, rule curve.

Every rule is a policy with the interface of a TorchRL actor: ``policy(tensordict) -> tensordict`` reads
the env's root keys ``storage_hm3`` (float32, (n_envs,)), ``record_index`` and ``day_of_year`` (int64,
(n_envs,)), writes ``action`` (int64 release level 0 … n−1, (n_envs,)) and returns the tensordict, so
``env.rollout(policy=rule)`` works. Rules know the true inflow of the current day (standard for SOP) and
the evaporation the physics will take, and are fully vectorised over the envs.

SOP and hedging aim at a target release (`target_release_hm3`): by default the firm yield of the training
years (`reservoir_rl.baselines.firm_yield`), the largest constant release the reservoir sustains through
them. A positive release they ask for is never rounded down to level 0 (`target_warning` says when the
first level is more than the target).

Volumes are hm³ per day throughout (1 m³/s for one day = 0.0864 hm³).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from tensordict import TensorDictBase

from reservoir_rl.baselines.firm_yield import training_firm_yield_hm3
from reservoir_rl.config import BaselinesConfig
from reservoir_rl.env.physics import periodic_interpolate
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY


class _WaterBalance:
    """Today's water balance of each env, before the release decision (all hm³, shape (n_envs,))."""

    def __init__(self, env: DiscreteReservoirEnv, tensordict: TensorDictBase) -> None:
        physics = env.physics
        self.storage_hm3 = tensordict.get("storage_hm3").reshape(-1)
        self.day_of_year = tensordict.get("day_of_year").reshape(-1)
        self.inflow_hm3 = env.inflow_hm3_at(tensordict.get("record_index").reshape(-1)).to(self.storage_hm3.dtype)
        water_hm3 = self.storage_hm3 + self.inflow_hm3
        evaporation_hm3 = physics.area_km2(self.storage_hm3) * physics.evaporation_depth_mm(self.day_of_year) * 1e-3
        # What the day leaves after evaporation (S + I − E), as the physics computes it.
        self.water_hm3 = water_hm3 - evaporation_hm3.minimum(water_hm3 - physics.dead_storage_hm3)
        # Releasable water above dead storage (W = S + I − E − S_dead), and the excess: the release that keeps
        # S' at the bottom of the day's flood-control zone. Flood-control operation evacuates the flood pool
        # (up to the release capacity) instead of waiting for the water to reach the crest and spill.
        self.available_hm3 = (self.water_hm3 - physics.dead_storage_hm3).clamp(min=0.0)
        flood_zone_hm3 = physics.flood_zone_hm3(self.day_of_year).to(self.water_hm3.dtype)
        self.excess_hm3 = (self.water_hm3 - flood_zone_hm3).clamp(min=0.0)


def release_to_action(
    env: DiscreteReservoirEnv,
    release_hm3: torch.Tensor,
    excess_hm3: torch.Tensor,
    release_all: torch.Tensor | None = None,
    keep_positive: bool = False,
) -> torch.Tensor:
    """Release level (int64) for a desired release (hm³/day), any shape.

    The desired release is rounded to the nearest level, except that the level is rounded UP
    (i) to at least the release ``excess_hm3`` that keeps storage at the bottom of the day's flood-control
    zone, when it is positive, so a rule evacuates the flood pool rather than holding water it could release, (ii) where ``release_all`` is set, to the smallest
    level that releases all of ``release_hm3`` (the physics then cuts it to what is available), and
    (iii) with ``keep_positive``, to level 1 for any positive release that would round to 0.
    """
    physics = env.physics
    action = physics.action_for_release(release_hm3)
    if keep_positive:
        action = torch.where(release_hm3 > 0, action.clamp(min=1), action)
    if release_all is not None:
        action = torch.where(release_all, action.maximum(_ceiling_level(env, release_hm3)), action)
    return torch.where(excess_hm3 > 0, action.maximum(_ceiling_level(env, excess_hm3)), action)


def _ceiling_level(env: DiscreteReservoirEnv, release_hm3: torch.Tensor | float) -> torch.Tensor:
    """The smallest level (int64) whose release is at least ``release_hm3`` (hm³/day), capped at the top level."""
    physics = env.physics
    step_hm3 = physics.release_capacity_hm3 / (physics.n_release_levels - 1)
    volume = torch.as_tensor(release_hm3)
    return torch.ceil(volume / step_hm3 - 1e-6).clamp(0, physics.n_release_levels - 1).long()


class StandardOperatingPolicy:
    """Standard operating policy (SOP).

    With W = S + I − E − S_dead the water available above dead storage (hm³; S storage, I today's true
    inflow, E evaporation) and R* the target (hm³/day): release R* if W ≥ R*, otherwise all of W; if
    S + I − E − R would end above the day's flood-control zone S_flood(d), release the excess
    S + I − E − S_flood(d) instead (up to the release capacity): flood-control operation, which evacuates
    the flood pool as fast as the outlets allow rather than holding water until it reaches the crest. The target is rounded to the nearest release level, but a positive target to level 1
    at least; shortage and excess releases are rounded up (the physics caps a release at W).
    """

    def __init__(self, env: DiscreteReservoirEnv, target_release_hm3: float) -> None:
        if target_release_hm3 < 0:
            raise ValueError(f"target_release_hm3 must be >= 0, got {target_release_hm3}")
        self.env = env
        self.target_release_hm3 = float(target_release_hm3)

    def release_hm3(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """Desired release (hm³/day, (n_envs,)) and the chosen level (int64, (n_envs,))."""
        balance = _WaterBalance(self.env, tensordict)
        target = torch.full_like(balance.available_hm3, self.target_release_hm3)
        short = balance.available_hm3 < target
        release = torch.where(short, balance.available_hm3, target).maximum(balance.excess_hm3)
        release = release.clamp(max=self.env.physics.release_capacity_hm3)
        return release, release_to_action(self.env, release, balance.excess_hm3, release_all=short, keep_positive=True)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict.set("action", self.release_hm3(tensordict)[1].reshape(tensordict.batch_size))
        return tensordict


class HedgingPolicy:
    """Two-point linear hedging (Draper & Lund 2004).

    With W = S + I − E − S_dead (hm³) and its usable fraction w = W / (S_max − S_dead): release the target R*
    (hm³/day) when w ≥ ``start_fraction``, ``min_release_fraction`` × R* when w ≤ ``end_fraction``, and the
    linear interpolation between the two in between; never more than W. As in SOP, a release that would
    leave storage in the flood-control zone is raised to the excess S + I − E − S_flood(d) (up to the
    release capacity).
    Levels: nearest to the hedged release (level 1 at least when it is positive), rounded up when releasing
    all of W or the excess.
    """

    def __init__(
        self,
        env: DiscreteReservoirEnv,
        target_release_hm3: float,
        start_fraction: float,
        end_fraction: float,
        min_release_fraction: float,
    ) -> None:
        if not 0.0 <= end_fraction < start_fraction:
            raise ValueError(f"need 0 <= end_fraction ({end_fraction}) < start_fraction ({start_fraction})")
        if not 0.0 <= min_release_fraction <= 1.0:
            raise ValueError(f"min_release_fraction must lie in [0, 1], got {min_release_fraction}")
        self.env = env
        self.target_release_hm3 = float(target_release_hm3)
        self.start_fraction = float(start_fraction)
        self.end_fraction = float(end_fraction)
        self.min_release_fraction = float(min_release_fraction)

    def release_hm3(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """Desired release (hm³/day, (n_envs,)) and the chosen level (int64, (n_envs,))."""
        physics = self.env.physics
        balance = _WaterBalance(self.env, tensordict)
        usable_fraction = balance.available_hm3 / (physics.capacity_hm3 - physics.dead_storage_hm3)
        ramp = ((usable_fraction - self.end_fraction) / (self.start_fraction - self.end_fraction)).clamp(0.0, 1.0)
        share = self.min_release_fraction + (1.0 - self.min_release_fraction) * ramp
        hedged = share * self.target_release_hm3
        short = balance.available_hm3 <= hedged
        release = hedged.minimum(balance.available_hm3).maximum(balance.excess_hm3)
        release = release.clamp(max=physics.release_capacity_hm3)
        return release, release_to_action(self.env, release, balance.excess_hm3, release_all=short, keep_positive=True)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict.set("action", self.release_hm3(tensordict)[1].reshape(tensordict.batch_size))
        return tensordict


class RuleCurvePolicy:
    """Release to track a target storage that depends on the day of year.

    ``curve`` lists (day_of_year, storage fraction of capacity) points; the target end-of-day storage
    S_target(d) = capacity × fraction, linearly interpolated and periodic over 365 days. The tracking release
    is S + I − E − S_target(d) (hm³/day), rounded to the nearest level (up when storage would otherwise
    end in the flood-control zone). Whenever the water above dead storage W = S + I − E − S_dead holds the environmental
    flow Q_env (``env.reservoir.env_flow_cms``, × 0.0864 hm³/day), the release is at least Q_env: the level is
    raised to the smallest one releasing Q_env (all of W when that level is more than W), so the day has no
    env-flow deficit. With less water than Q_env it keeps to the tracking release: releasing W would still
    leave a deficit and would empty the reservoir to dead storage (a drought failure). The desired release
    returned is R = max(tracking, Q_env) clipped to [0, W, release capacity] (tracking alone below Q_env).
    """

    def __init__(self, env: DiscreteReservoirEnv, curve: Sequence[tuple[float, float]]) -> None:
        points = sorted((float(day), float(fraction)) for day, fraction in curve)
        if not points:
            raise ValueError("rule curve needs at least one (day_of_year, fraction) point")
        days = [d for d, _ in points]
        if any(b <= a for a, b in zip(days, days[1:])) or days[0] < 0 or days[-1] > DAYS_PER_YEAR:
            raise ValueError(f"rule curve days must be distinct and lie in 0..{DAYS_PER_YEAR:g}, got {days}")
        self.env = env
        self.curve = points

    def target_storage_hm3(self, day_of_year: torch.Tensor) -> torch.Tensor:
        """Target end-of-day storage (hm³) for each day of year (any shape), float64."""
        fraction = periodic_interpolate(day_of_year, [d for d, _ in self.curve], [f for _, f in self.curve])
        return fraction * self.env.physics.capacity_hm3

    def release_hm3(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """Desired release (hm³/day, (n_envs,)) and the chosen level (int64, (n_envs,))."""
        physics = self.env.physics
        balance = _WaterBalance(self.env, tensordict)
        target = self.target_storage_hm3(balance.day_of_year).to(balance.water_hm3.dtype)
        tracking = (balance.water_hm3 - target).clamp(0.0, physics.release_capacity_hm3)
        action = release_to_action(self.env, tracking, balance.excess_hm3)
        env_flow_hm3 = self.env.config.reservoir.env_flow_cms * HM3_PER_CMS_DAY
        if env_flow_hm3 <= 0:
            return tracking.minimum(balance.available_hm3), action
        floor = balance.available_hm3 >= env_flow_hm3
        release = torch.where(floor, tracking.clamp(min=env_flow_hm3), tracking)
        release = release.minimum(balance.available_hm3).clamp(max=physics.release_capacity_hm3)
        return release, torch.where(floor, action.maximum(_ceiling_level(self.env, env_flow_hm3)), action)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict.set("action", self.release_hm3(tensordict)[1].reshape(tensordict.batch_size))
        return tensordict


def target_release_hm3(env: DiscreteReservoirEnv, config: BaselinesConfig) -> float:
    """SOP / hedging target release, hm³/day, by ``config.target_release_cms``: ``firm_yield`` → the firm yield
    of the env's training years (`training_firm_yield_hm3`), ``mean_inflow`` → the mean inflow of the env's
    training years (``env.training_mean_inflow_hm3``; never validation or held-out years), a number of m³/s →
    that release."""
    choice = config.target_release_cms
    if choice == "firm_yield":
        return training_firm_yield_hm3(env)
    if choice == "mean_inflow":
        return env.training_mean_inflow_hm3
    return float(choice) * HM3_PER_CMS_DAY


def target_warning(env: DiscreteReservoirEnv, config: BaselinesConfig) -> Optional[str]:
    """One line when the SOP / hedging target is positive but below the first non-zero release level, which
    SOP and hedging then release instead (more than the target); None otherwise."""
    target_hm3 = target_release_hm3(env, config)
    first_level_hm3 = env.physics.release_capacity_hm3 / (env.physics.n_release_levels - 1)
    if not 0 < target_hm3 < first_level_hm3 * (1 - 1e-6):
        return None
    source = {"firm_yield": "the firm yield of the training years", "mean_inflow": "the training years' mean inflow"}
    what = source.get(str(config.target_release_cms), "baselines.target_release_cms")
    return (f"SOP / hedging target {target_hm3 / HM3_PER_CMS_DAY:.3g} m³/s ({what}) is below the first release "
            f"level: they release {first_level_hm3 / HM3_PER_CMS_DAY:.3g} m³/s instead")
