"""`DiscreteReservoirEnv`: N independent reservoirs stepped with one set of tensor operations (TorchRL).

Tensordict keys, all with batch shape ``(n_envs,)``:

root (state before the decision)
    observation     float32 (n_envs, obs_dim): storage / capacity, sin and cos of 2π·day/365, the
                    inflow forecast for leads 1 … L (lead 1 = today) divided by the reference inflow
                    (``mean_inflow_hm3``: by default the mean daily inflow of the training water years;
                    ``env.forecast.scale: log``: ln(1 + that ratio)), then any ``env.extra_features``
    storage_hm3     float32: storage at the start of the day
    record_index    int64: position of today in the inflow record
    day_of_year     int64: 0-based calendar day of today
action              int64 release level in 0 … n_release_levels − 1
next (after the day)
    the keys above for the next day, plus ``inflow_hm3``, ``release_hm3``, ``spill_hm3``,
    ``evaporation_hm3``, ``energy_mwh``, ``downstream_cms``, ``supply_deficit_hm3`` (all float32),
    ``flood_failure`` / ``drought_failure`` (bool), ``reward_components`` (one float32 per component),
    ``reward`` (n_envs, 1), ``done`` / ``terminated`` / ``truncated`` (n_envs, 1).

The per-day quantities are zero after ``reset`` (no day has passed yet). Reaching ``horizon_days`` is
truncation; a catastrophic flood or drought terminates when ``env.terminate_on_failure`` is set.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from reservoir_rl.config import Config, EnvConfig, ForecastConfig, check_scale_range
from reservoir_rl.env.augmentation import draw_log_uniform, grow_floods
from reservoir_rl.env.inflow import (
    InflowRecord,
    episode_start_indices,
    load_bundled,
    split_validation,
    split_water_years,
)
from reservoir_rl.env.physics import ReservoirPhysics
from reservoir_rl.env.release_feature import ReleaseFeature, missing_release_feature, needs_release_feature
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.env.reward import COMPONENTS, reward_components, weighted_reward
from reservoir_rl.errors import ConfigError
from reservoir_rl.units import DAYS_PER_YEAR, HM3_PER_CMS_DAY

STEP_QUANTITIES = ("inflow_hm3", "release_hm3", "spill_hm3", "evaporation_hm3", "energy_mwh", "downstream_cms",
                   "supply_deficit_hm3")
FAILURE_FLAGS = ("flood_failure", "drought_failure")
FORECAST_OFFSET = 3  # observation = [storage fraction, sin, cos, forecast leads 1 … L, extra features]


def observation_names(config: EnvConfig) -> list[str]:
    """The name of each entry of the observation, in order (length ``obs_dim``): ``storage_fraction``
    (S / S_max), ``season_sin`` and ``season_cos`` (of 2π·day/365), one ``forecast_log_ratio_lead_K``
    (ln(1 + forecast / reference inflow), ``env.forecast.scale: log``) or ``forecast_ratio_lead_K`` (linear)
    per lead K = 1 … L (lead 1 = today), then ``env.extra_features`` by name."""
    forecast = "forecast_log_ratio" if config.forecast.scale == "log" else "forecast_ratio"
    return ["storage_fraction", "season_sin", "season_cos",
            *(f"{forecast}_lead_{k}" for k in range(1, config.forecast.lead_days + 1)), *config.extra_features]


def release_levels_cms(config: EnvConfig) -> torch.Tensor:
    """Target release of each release level, m³/s, float64 (n_release_levels,): 0 … release capacity, evenly
    spaced (the release actually made can be smaller when the lake holds too little water)."""
    return torch.linspace(0.0, config.reservoir.release_capacity_cms, config.n_release_levels, dtype=torch.float64)


class DiscreteReservoirEnv(EnvBase):
    """Daily release decisions for ``n_envs`` independent reservoirs on one inflow record.

    Args:
        config: the ``env`` section (reservoir, forecast, reward, horizon); default: the base reservoir.
        inflow: the inflow record; default: the bundled Delaware record at Montague.
        water_years: water years episodes may use (start, horizon and forecast window all inside them);
            default: the training years of the default split (the last 20 complete years held out).
        n_envs: number of reservoirs stepped together.
        device: torch device of every tensor.
        seed: seed of the env's own generator (episode starts, initial storage, forecast errors).
        inflow_scale_range: (low, high) of the factor that scales each episode's whole inflow trace
            (and its forecast), drawn log-uniformly at reset; (1, 1), the default, leaves the record as
            it is. Training uses it to meet wetter and drier years than the record holds.
        flood_scale_range: (low, high) of the factor ``k`` that scales each episode's floods, drawn
            log-uniformly at reset: the part of each day's inflow above ``flood_threshold_cms`` is multiplied
            by ``k`` (inflow ``I`` becomes ``I + (k − 1)·max(0, I − threshold)``, forecast included), so the
            record's floods keep their season and shape but grow; (1, 1), the default, leaves them as they are.
        flood_threshold_cms: the flow above which ``flood_scale_range`` acts, m³/s; default: the reservoir's
            release capacity (flows the outlets cannot pass are those that fill the reservoir).
        training_water_years: the water years an agent on this record trains on, which anything estimated
            from the record for this env (the baselines' firm yield, the mean inflow) may use; default:
            ``water_years``. `make_env` passes the split's training years whatever years the env itself covers.
        release_feature: the ``sdp_release_fraction`` feature (`reservoir_rl.env.release_feature`), required
            when ``config.extra_features`` names it (a `ConfigError` otherwise), ignored when it does not.

    Attributes set from the record: ``training_mean_inflow_cms`` / ``training_mean_inflow_hm3``, the mean
    inflow of the training water years (m³/s; hm³/day); ``reference_inflow_cms`` / ``mean_inflow_hm3``, the
    reference inflow the observation's forecast features are divided by (m³/s; hm³/day): that mean unless
    ``env.forecast.reference_inflow_cms`` sets it (`reference_inflow_cms`).

    A range or threshold the ``inflow`` section's rules refuse is a ValueError (`make_env` passes validated ones).
    """

    batch_locked = True

    def __init__(
        self,
        config: Optional[EnvConfig] = None,
        inflow: Optional[InflowRecord] = None,
        water_years: Optional[Sequence[int]] = None,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: Optional[int] = None,
        inflow_scale_range: tuple[float, float] = (1.0, 1.0),
        flood_scale_range: tuple[float, float] = (1.0, 1.0),
        flood_threshold_cms: Optional[float] = None,
        training_water_years: Optional[Sequence[int]] = None,
        release_feature: Optional[ReleaseFeature] = None,
    ) -> None:
        super().__init__(device=device, batch_size=torch.Size([n_envs]))
        self.inflow_scale_range = check_scale_range("inflow_scale_range", inflow_scale_range, at_least_one=False)
        self.flood_scale_range = check_scale_range("flood_scale_range", flood_scale_range, at_least_one=True)
        self._scaled = self.inflow_scale_range != (1.0, 1.0)  # checked every step
        self._floods_scaled = self.flood_scale_range != (1.0, 1.0)
        self.config = config if config is not None else EnvConfig()
        if needs_release_feature(self.config) and release_feature is None:
            raise missing_release_feature()
        self.release_feature = release_feature if needs_release_feature(self.config) else None
        if flood_threshold_cms is None:
            flood_threshold_cms = self.config.reservoir.release_capacity_cms
        if not flood_threshold_cms > 0:  # inflow.flood_threshold_cms is checked with the config
            raise ValueError(f"flood_threshold_cms must be > 0 m³/s, got {flood_threshold_cms}")
        self.flood_threshold_hm3 = float(flood_threshold_cms) * HM3_PER_CMS_DAY
        self.inflow = inflow if inflow is not None else load_bundled("montague")
        if water_years is None:
            water_years = split_water_years(self.inflow, 20)[0]
        self.water_years = [int(year) for year in water_years]
        self.training_water_years = [int(year) for year in (water_years if training_water_years is None
                                                             else training_water_years)]
        self.n_envs = n_envs
        self.physics = ReservoirPhysics(self.config.reservoir, self.config.n_release_levels)
        lead = self.config.forecast.lead_days
        starts = episode_start_indices(self.inflow, self.water_years, self.config.horizon_days + lead)
        if len(starts) == 0:
            raise ConfigError(
                f"env: no window of {self.config.horizon_days} + {lead} days fits in water years "
                f"{self.water_years[:3]}{'…' if len(self.water_years) > 3 else ''} of {self.inflow.name}"
            )
        dev = self.device
        self._start_indices = torch.as_tensor(starts, dtype=torch.int64, device=dev)
        self._inflow_hm3 = torch.as_tensor(self.inflow.inflow_hm3(), dtype=torch.float32, device=dev)
        self._day_of_year = torch.as_tensor(self.inflow.day_of_year, dtype=torch.int64, device=dev)
        # what depends only on the calendar day, once per record day: (T,) and (T, 2)
        self._evaporation_depth_mm = self.physics.evaporation_depth_mm(self._day_of_year)
        self._supply_demand_hm3 = self.physics.supply_demand_hm3(self._day_of_year)
        self._flood_zone_hm3 = self.physics.flood_zone_hm3(self._day_of_year)
        angle = (2.0 * math.pi / DAYS_PER_YEAR) * self._day_of_year.to(torch.float32)
        self._season_features = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)
        self.training_mean_inflow_cms = training_mean_inflow_cms(self.inflow, self.training_water_years)
        self.training_mean_inflow_hm3 = self.training_mean_inflow_cms * HM3_PER_CMS_DAY
        self.reference_inflow_cms = reference_inflow_cms(self.config.forecast, self.inflow, self.training_mean_inflow_cms)
        self.mean_inflow_hm3 = self.reference_inflow_cms * HM3_PER_CMS_DAY
        sigma = self.config.forecast.error_sigma * torch.arange(1, lead + 1, dtype=torch.float32).pow(
            self.config.forecast.error_growth
        )
        self._forecast_sigma = sigma.to(dev)
        self._log_forecast = self.config.forecast.scale == "log"
        self._forecast_half_variance = (0.5 * sigma * sigma).to(dev)  # log-normal bias correction, (lead,)
        # Row i is the true inflow of days i … i + lead − 1: a view, gathered by one index_select per step.
        self._inflow_windows_hm3 = self._inflow_hm3.unfold(0, lead, 1)
        self._generator = torch.Generator(device=dev)
        self._generator.manual_seed(0 if seed is None else int(seed))
        self._storage_hm3 = torch.zeros(n_envs, dtype=torch.float32, device=dev)
        self._record_index = self._start_indices[:1].expand(n_envs).clone()
        self._steps = torch.zeros(n_envs, dtype=torch.int64, device=dev)
        self._inflow_scale = torch.ones(n_envs, dtype=torch.float32, device=dev)  # this episode's factor
        self._flood_scale = torch.ones(n_envs, dtype=torch.float32, device=dev)  # this episode's flood factor
        self._make_specs()

    # ------------------------------------------------------------------ specs
    @property
    def observation_size(self) -> int:
        return 3 + self.config.forecast.lead_days + len(self.config.extra_features)

    @property
    def n_actions(self) -> int:
        return self.config.n_release_levels

    def _make_specs(self) -> None:
        shape = self.batch_size
        dev = self.device
        cap = self.config.reservoir.capacity_hm3

        def unbounded(dtype=torch.float32):
            return Unbounded(shape=shape, dtype=dtype, device=dev)

        spec = {
            "observation": Unbounded(shape=(*shape, self.observation_size), dtype=torch.float32, device=dev),
            "storage_hm3": Bounded(low=0.0, high=cap, shape=shape, dtype=torch.float32, device=dev),
            "record_index": unbounded(torch.int64),
            "day_of_year": unbounded(torch.int64),
            **{key: unbounded() for key in STEP_QUANTITIES},
            **{key: Categorical(2, shape=shape, dtype=torch.bool, device=dev) for key in FAILURE_FLAGS},
            "reward_components": Composite({name: unbounded() for name in COMPONENTS}, shape=shape, device=dev),
        }
        self.observation_spec = Composite(spec, shape=shape, device=dev)
        self.action_spec = Categorical(self.n_actions, shape=shape, dtype=torch.int64, device=dev)
        self.reward_spec = Unbounded(shape=(*shape, 1), dtype=torch.float32, device=dev)
        self.done_spec = Composite(
            {key: Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=dev) for key in ("done", "terminated", "truncated")},
            shape=shape,
            device=dev,
        )

    # ------------------------------------------------------------------ observation
    def _observe(self) -> dict[str, torch.Tensor]:
        """Root keys of the current state as a plain dict (the callers build one TensorDict)."""
        index = self._record_index
        day = self._day_of_year[index]
        window = self._inflow_windows_hm3.index_select(0, index)  # (n_envs, lead): true inflow, lead 1 first
        if self._floods_scaled:
            window = grow_floods(window, self.flood_threshold_hm3, self._flood_scale.unsqueeze(-1))
        if self._scaled:
            window.mul_(self._inflow_scale.unsqueeze(-1))
        noise = self._forecast_noise(window.shape)
        # true inflow × exp(σ·ε − σ²/2), computed in place on the fresh tensors
        forecast = window.mul_(noise.mul_(self._forecast_sigma).sub_(self._forecast_half_variance).exp_())
        release = None
        if self.release_feature is not None:  # before the forecast is divided in place: lead 1 in hm³/day
            tomorrow = self._day_of_year[(index + 1).clamp(max=len(self._day_of_year) - 1)]
            release = self.release_feature(day, tomorrow, self._storage_hm3, forecast[:, 0].clone())
        features = [
            (self._storage_hm3 / self.config.reservoir.capacity_hm3).unsqueeze(-1),
            self._season_features.index_select(0, index),  # sin, cos of 2π·day/365
            forecast.div_(self.mean_inflow_hm3).log1p_() if self._log_forecast else forecast / self.mean_inflow_hm3,
        ]
        for name in self.config.extra_features:
            if name == "flood_zone_fraction":
                features.append((self._storage_hm3 / self._flood_zone_hm3[index]).unsqueeze(-1))
            elif name == "day_fraction":
                features.append((self._steps.to(torch.float32) / self.config.horizon_days).unsqueeze(-1))
            elif name == "sdp_release_fraction":
                features.append(release.to(torch.float32).unsqueeze(-1))
        return {
            "observation": torch.cat(features, dim=-1),
            "storage_hm3": self._storage_hm3.clone(),
            "record_index": index.clone(),
            "day_of_year": day,
        }

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: Optional[TensorDictBase] = None, **kwargs: Any) -> TensorDictBase:
        n = self.n_envs
        mask = None
        if tensordict is not None and "_reset" in tensordict.keys():
            mask = tensordict.get("_reset").reshape(n)
        pick, u, scale, flood_scale = self._reset_draws(mask)
        low, high = self.config.initial_storage_fraction
        storage = (low + (high - low) * u) * self.config.reservoir.capacity_hm3
        start = self._start_indices[pick]
        scale = scale if self._scaled else self._inflow_scale
        flood_scale = flood_scale if self._floods_scaled else self._flood_scale
        if mask is None:
            self._record_index = start
            self._storage_hm3 = storage
            self._steps = torch.zeros_like(self._steps)
            self._inflow_scale = scale
            self._flood_scale = flood_scale
        else:
            self._record_index = torch.where(mask, start, self._record_index)
            self._storage_hm3 = torch.where(mask, storage, self._storage_hm3)
            self._steps = torch.where(mask, torch.zeros_like(self._steps), self._steps)
            self._inflow_scale = torch.where(mask, scale, self._inflow_scale)
            self._flood_scale = torch.where(mask, flood_scale, self._flood_scale)
        out = self._observe()
        zeros = torch.zeros(self.batch_size, dtype=torch.float32, device=self.device)
        for key in STEP_QUANTITIES:
            out[key] = zeros.clone()
        for key in FAILURE_FLAGS:
            out[key] = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        out["reward_components"] = TensorDict(
            {name: zeros.clone() for name in COMPONENTS}, batch_size=self.batch_size, device=self.device
        )
        false = torch.zeros((*self.batch_size, 1), dtype=torch.bool, device=self.device)
        out.update({"done": false, "terminated": false.clone(), "truncated": false.clone()})
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    # ------------------------------------------------------------------ random draws (`BlockedReservoirEnv` splits them)
    def _forecast_noise(self, shape: torch.Size) -> torch.Tensor:
        """Standard normal forecast errors, float32 ``shape`` = (n_envs, lead), from the env's generator."""
        return torch.randn(shape, generator=self._generator, device=self.device)

    def _reset_draws(
        self, mask: Optional[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """What a reset draws, each (n_envs,): the index of each episode's start among the start days
        (int64), the uniform u of its initial storage, its inflow factor and its flood factor (None when that
        scaling is off: nothing is drawn for it, so an unscaled env keeps its random stream). Drawn for every
        env whatever ``mask``, so the generator advances identically on any device."""
        return self._draws_from(self._generator, self.n_envs)

    def _draws_from(
        self, generator: torch.Generator, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        pick = torch.randint(len(self._start_indices), (n,), generator=generator, device=self.device)
        u = torch.rand(n, generator=generator, device=self.device)
        scale = draw_log_uniform(self.inflow_scale_range, n, generator, self.device) if self._scaled else None
        flood_scale = draw_log_uniform(self.flood_scale_range, n, generator, self.device) \
            if self._floods_scaled else None
        return pick, u, scale, flood_scale

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").reshape(self.n_envs)
        index = self._record_index
        inflow_hm3 = self._inflow_hm3[index]
        if self._floods_scaled:
            inflow_hm3 = grow_floods(inflow_hm3, self.flood_threshold_hm3, self._flood_scale)
        if self._scaled:
            inflow_hm3 = inflow_hm3 * self._inflow_scale
        outcome = self.physics.step(
            self._storage_hm3, inflow_hm3, action, self._day_of_year[index],
            evaporation_depth_mm=self._evaporation_depth_mm[index], supply_demand_hm3=self._supply_demand_hm3[index],
            flood_zone_hm3=self._flood_zone_hm3[index],
        )
        components = reward_components(self.physics, outcome)
        reward = weighted_reward(self.config.reward, components)
        failure = outcome.flood_failure | outcome.drought_failure
        self._storage_hm3 = outcome.next_storage_hm3
        self._record_index = index + 1
        self._steps = self._steps + 1
        truncated = self._steps >= self.config.horizon_days
        terminated = failure if self.config.terminate_on_failure else torch.zeros_like(failure)
        out = self._observe()
        out.update(
            {
                "inflow_hm3": inflow_hm3,
                "release_hm3": outcome.release_hm3,
                "spill_hm3": outcome.spill_hm3,
                "evaporation_hm3": outcome.evaporation_hm3,
                "energy_mwh": outcome.energy_mwh,
                "downstream_cms": outcome.downstream_cms,
                "supply_deficit_hm3": outcome.supply_deficit_hm3,
                "flood_failure": outcome.flood_failure,
                "drought_failure": outcome.drought_failure,
                "reward_components": TensorDict(components, batch_size=self.batch_size, device=self.device),
                "reward": reward.unsqueeze(-1),
                "done": (terminated | truncated).unsqueeze(-1),
                "terminated": terminated.unsqueeze(-1),
                "truncated": truncated.unsqueeze(-1),
            }
        )
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: Optional[int]) -> None:
        self._generator.manual_seed(0 if seed is None else int(seed))

    # ------------------------------------------------------------------ helpers for policies and resume
    @property
    def inflow_scale(self) -> torch.Tensor:
        """Factor on each env's inflow trace in the current episode, float32 (n_envs,); ones unless
        ``inflow_scale_range`` is set."""
        return self._inflow_scale

    @property
    def flood_scale(self) -> torch.Tensor:
        """Factor on the flood part of each env's inflow in the current episode, float32 (n_envs,); ones
        unless ``flood_scale_range`` is set."""
        return self._flood_scale

    def inflow_hm3_at(self, record_index: torch.Tensor) -> torch.Tensor:
        """True inflow (hm³/day) of the given record positions (any shape), unscaled."""
        return self._inflow_hm3[record_index]

    def inflow_trace_hm3(self, start_index: torch.Tensor, n_days: int) -> torch.Tensor:
        """True inflow of ``n_days`` from each start, shape (*start_index.shape, n_days)."""
        offsets = torch.arange(n_days, device=self.device)
        return self._inflow_hm3[start_index.unsqueeze(-1) + offsets]

    def day_of_year_trace(self, start_index: torch.Tensor, n_days: int) -> torch.Tensor:
        offsets = torch.arange(n_days, device=self.device)
        return self._day_of_year[start_index.unsqueeze(-1) + offsets]

    @property
    def steps_in_episode(self) -> torch.Tensor:
        """Days already simulated in each env's current episode, int64 (n_envs,)."""
        return self._steps

    def get_state(self) -> dict[str, torch.Tensor]:
        """In-flight episode state and generator state: plain tensors, for checkpoints."""
        return {
            "storage_hm3": self._storage_hm3.cpu().clone(),
            "record_index": self._record_index.cpu().clone(),
            "steps": self._steps.cpu().clone(),
            "inflow_scale": self._inflow_scale.cpu().clone(),
            "flood_scale": self._flood_scale.cpu().clone(),
            "generator": self._generator.get_state(),
        }

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `get_state` returned (same n_envs)."""
        if state["storage_hm3"].shape != (self.n_envs,):
            raise ConfigError(
                f"env state holds {state['storage_hm3'].shape[0]} reservoirs, this env has {self.n_envs}"
            )
        self._storage_hm3 = state["storage_hm3"].to(self.device, torch.float32).clone()
        self._record_index = state["record_index"].to(self.device, torch.int64).clone()
        self._steps = state["steps"].to(self.device, torch.int64).clone()
        # the episode factors are absent from checkpoints written before their scaling existed: ones
        self._inflow_scale, self._flood_scale = (
            torch.ones_like(self._storage_hm3) if state.get(key) is None
            else state[key].to(self.device, torch.float32).clone()
            for key in ("inflow_scale", "flood_scale")
        )
        self._generator.set_state(state["generator"])


def training_mean_inflow_cms(record: InflowRecord, training_water_years: Sequence[int]) -> float:
    """Mean inflow of the days of ``record`` in ``training_water_years``, m³/s (float64): the reference the
    observation's forecast features are divided by unless ``env.forecast.reference_inflow_cms`` says otherwise,
    and the ``mean_inflow`` target of SOP / hedging. Validation and held-out years never enter it."""
    days = np.isin(record.water_years, np.asarray(list(training_water_years), dtype=np.int64))
    if not days.any():
        raise ConfigError(f"env: no day of {record.name} lies in the training water years")
    return float(record.inflow_cms[days].mean())


def reference_inflow_cms(forecast: ForecastConfig, record: InflowRecord, training_mean_cms: float) -> float:
    """The inflow the forecast features are divided by, m³/s, by ``env.forecast.reference_inflow_cms``:
    null → ``training_mean_cms`` (the training years' mean); ``whole_record`` → the whole record's mean
    (held-out years included: what checkpoints written before the key existed trained with); a number of
    m³/s → that flow."""
    reference = forecast.reference_inflow_cms
    if reference is None:
        return float(training_mean_cms)
    if reference == "whole_record":
        return record.mean_inflow_cms
    return float(reference)


def decode_forecast_hm3(env: DiscreteReservoirEnv, observation: torch.Tensor) -> torch.Tensor:
    """The inflow forecast in an observation of ``env``, hm³/day, float64 (n_envs, L), lead 1 (today) first.

    Inverts what the env writes (`DiscreteReservoirEnv` docstring): features ``FORECAST_OFFSET`` …
    ``FORECAST_OFFSET + L − 1`` of ``observation`` (float32 (n_envs, obs_dim)) hold forecast / the env's
    reference inflow (``env.mean_inflow_hm3``), ``log1p``'d when ``env.forecast.scale`` is ``log``. Decoded in float64, so the
    result differs from the env's float32 forecast only by the float32 rounding of the feature (a relative
    error of a few 1e-7).
    """
    return forecast_from_observation(observation, env.config.forecast, env.mean_inflow_hm3)


def forecast_from_observation(observation: torch.Tensor, forecast: ForecastConfig, mean_inflow_hm3: float) -> torch.Tensor:
    """`decode_forecast_hm3` from plain settings: the ``env.forecast`` section and the reference
    inflow (hm³/day) the features are divided by (``env.mean_inflow_hm3``); float64 (n, L) hm³/day from float32 (n, obs_dim)."""
    lead = forecast.lead_days
    features = observation.reshape(-1, observation.shape[-1])[:, FORECAST_OFFSET:FORECAST_OFFSET + lead]
    ratio = features.to(torch.float64)
    if forecast.scale == "log":
        ratio = torch.expm1(ratio)
    return ratio * mean_inflow_hm3


def make_env(
    config: Config,
    split: str = "train",
    n_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: Optional[int] = None,
    inflow: Optional[InflowRecord] = None,
    scale_inflow: bool = False,
    release_feature: Optional[ReleaseFeature] = None,
) -> DiscreteReservoirEnv:
    """Build the env of a full config on its training, validation, held-out or all water years.

    With ``scale_inflow`` (the training collectors), ``train`` episodes scale their inflow trace by a
    factor drawn in ``inflow.train_inflow_scale`` and their floods by one drawn in ``inflow.train_flood_scale``;
    every other env sees the record as it is. ``validation`` is
    the years of the in-training evaluation (the training years themselves when
    ``inflow.validation_water_years`` is 0); ``all`` is every complete water year. Whatever its years, the
    env's ``training_water_years`` are those of ``train`` (what the baselines may estimate from).

    ``release_feature``: required when ``env.extra_features`` holds ``sdp_release_fraction`` (a `ConfigError`
    otherwise); ``reservoir_rl.baselines.features.build_env`` — what the commands, training and
    ``reservoir_rl.make_env`` use — builds it from the SDP of the config's training years.
    """
    record = inflow if inflow is not None else load_inflow(config.inflow)
    train_years, heldout_years = split_water_years(record, config.inflow.heldout_water_years)
    fit_years, validation_years = split_validation(record, train_years, config.inflow.validation_water_years)
    years = {
        "train": fit_years,
        "validation": validation_years,
        "heldout": heldout_years,
        "all": sorted(train_years + heldout_years),
    }
    if split not in years:
        raise ConfigError(f"unknown split {split!r}; choose train, validation, heldout or all")
    augment = scale_inflow and split == "train"
    return DiscreteReservoirEnv(
        config.env, record, years[split], n_envs=n_envs, device=device, seed=seed,
        inflow_scale_range=tuple(config.inflow.train_inflow_scale) if augment else (1.0, 1.0),
        flood_scale_range=tuple(config.inflow.train_flood_scale) if augment else (1.0, 1.0),
        flood_threshold_cms=config.inflow.flood_threshold_cms, training_water_years=fit_years,
        release_feature=release_feature,
    )


