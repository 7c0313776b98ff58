"""Reservoir metrics of episodes: what a trajectory means to a water-resources engineer.

Daily indicators are computed from a step's ``next`` tensordict; an episode's metrics reduce them over its
days (sum, mean, min or max). The same definitions serve the streaming accumulator used during training
and the whole-trajectory reduction used by evaluation.
"""

from __future__ import annotations

from typing import Optional

import torch
from tensordict import TensorDictBase

from reservoir_rl.config import EnvConfig
from reservoir_rl.units import HM3_PER_CMS_DAY

# name -> how an episode reduces the daily values
REDUCTIONS = {
    "return": "sum",
    "length": "sum",
    "energy_gwh": "sum",
    "inflow_hm3": "sum",
    "release_hm3": "sum",
    "spill_hm3": "sum",
    "evaporation_hm3": "sum",
    "flood_zone_days": "sum",
    "env_flow_deficit_days": "sum",
    "env_flow_deficit_hm3": "sum",
    "supply_deficit_hm3": "sum",
    "supply_failure_days": "sum",
    "failures": "sum",
    "storage_mean_hm3": "mean",
    "storage_min_hm3": "min",
    "storage_max_hm3": "max",
}


def daily_indicators(next_td: TensorDictBase, config: EnvConfig) -> dict[str, torch.Tensor]:
    """Per-day indicators, each float32 with the batch shape of ``next_td`` (e.g. (n_envs,) or (n_envs, T))."""
    reservoir = config.reservoir
    storage = next_td.get("storage_hm3")
    downstream = next_td.get("downstream_cms")
    env_deficit_cms = (reservoir.env_flow_cms - downstream).clamp(min=0.0)
    supply_deficit = next_td.get("supply_deficit_hm3")
    failure = next_td.get("flood_failure") | next_td.get("drought_failure")
    return {
        "return": next_td.get("reward").squeeze(-1),
        "length": torch.ones_like(storage),
        "energy_gwh": next_td.get("energy_mwh") / 1000.0,
        "inflow_hm3": next_td.get("inflow_hm3"),
        "release_hm3": next_td.get("release_hm3"),
        "spill_hm3": next_td.get("spill_hm3"),
        "evaporation_hm3": next_td.get("evaporation_hm3"),
        # the flood component is negative exactly on the days storage ends above the day's flood-control zone
        "flood_zone_days": (next_td.get(("reward_components", "flood")) < 0).to(storage.dtype),
        "env_flow_deficit_days": (env_deficit_cms > 1e-6 * max(reservoir.env_flow_cms, 1.0)).to(storage.dtype),
        "env_flow_deficit_hm3": env_deficit_cms * HM3_PER_CMS_DAY,
        "supply_deficit_hm3": supply_deficit,
        "supply_failure_days": (supply_deficit > 1e-9).to(storage.dtype),
        "failures": failure.to(storage.dtype),
        "storage_mean_hm3": storage,
        "storage_min_hm3": storage,
        "storage_max_hm3": storage,
    }


def first_done_mask(done: torch.Tensor) -> torch.Tensor:
    """Days of each episode up to and including its first done; ``done`` is (n, T) or (n, T, 1) bool."""
    done = done.reshape(done.shape[0], done.shape[1])
    before = torch.cumsum(done.to(torch.int64), dim=1) - done.to(torch.int64)
    return before == 0


def episode_metrics(
    trajectory: TensorDictBase, config: EnvConfig, valid: Optional[torch.Tensor] = None
) -> dict[str, torch.Tensor]:
    """Metrics of the first episode of each row of a (n_envs, T) trajectory, each of shape (n_envs,).

    Also returns ``success`` (1.0 when the episode reached the horizon with no failure).
    """
    if valid is None:
        valid = first_done_mask(trajectory.get(("next", "done")))
    daily = daily_indicators(trajectory.get("next"), config)
    mask = valid.to(torch.float32)
    out: dict[str, torch.Tensor] = {}
    for name, values in daily.items():
        how = REDUCTIONS[name]
        if how == "sum":
            out[name] = (values * mask).sum(dim=1)
        elif how == "mean":
            out[name] = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        elif how == "min":
            out[name] = torch.where(valid, values, torch.full_like(values, float("inf"))).amin(dim=1)
        else:
            out[name] = torch.where(valid, values, torch.full_like(values, float("-inf"))).amax(dim=1)
    out["success"] = ((out["failures"] == 0) & (out["length"] >= config.horizon_days)).to(torch.float32)
    return out


class FinishedEpisodes:
    """Metrics of the episodes that ended during a stretch of days, without leaving the device.

    ``done`` is bool (n_envs, T): True on the last day of an episode; ``metrics[name]`` is float32
    (n_envs, T) and holds, on those days, the metrics of the episode that just ended (elsewhere: the
    running values, to be ignored). `select` gathers the finished ones (one device sync).
    """

    def __init__(self, done: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        self.done = done
        self.metrics = metrics

    @classmethod
    def concat(cls, parts: list["FinishedEpisodes"]) -> "FinishedEpisodes":
        """Join stretches along the day axis (all with the same n_envs)."""
        done = torch.cat([p.done for p in parts], dim=1)
        metrics = {name: torch.cat([p.metrics[name] for p in parts], dim=1) for name in parts[0].metrics}
        return cls(done, metrics)

    def count(self) -> torch.Tensor:
        """Number of finished episodes, int64 scalar tensor (no sync)."""
        return self.done.sum()

    def select(self) -> dict[str, torch.Tensor]:
        """Metrics of each finished episode, each of shape (n_finished,), in (env, day) order."""
        return {name: values[self.done] for name, values in self.metrics.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"done": self.done.cpu().clone(), **{name: v.cpu().clone() for name, v in self.metrics.items()}}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> "FinishedEpisodes":
        metrics = {name: value.to(device) for name, value in state.items() if name != "done"}
        return cls(state["done"].to(device), metrics)


class EpisodeAccumulator:
    """Streams daily indicators of ``n_envs`` parallel envs and reports the metrics of finished episodes.

    No host-device sync: finished episodes are reported as masks (see `FinishedEpisodes`). State is
    plain tensors (see `state_dict`), so a checkpoint resumes in-flight episodes exactly.
    """

    def __init__(self, n_envs: int, config: EnvConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.n_envs = n_envs
        self._device = torch.device(device)
        self._state = self._fresh()

    def _fresh(self) -> dict[str, torch.Tensor]:
        state = {}
        for name, how in REDUCTIONS.items():
            fill = {"min": float("inf"), "max": float("-inf")}.get(how, 0.0)
            state[name] = torch.full((self.n_envs,), fill, dtype=torch.float32, device=self._device)
        return state

    def _step(self, next_td: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Add one day for every env; the done mask (n_envs,) and every env's episode-so-far metrics."""
        daily = daily_indicators(next_td, self.config)
        state = self._state
        for name, how in REDUCTIONS.items():
            value = daily[name]
            if how in ("sum", "mean"):
                state[name] = state[name] + value
            elif how == "min":
                state[name] = state[name].minimum(value)
            else:
                state[name] = state[name].maximum(value)
        done = next_td.get("done").reshape(self.n_envs)
        metrics = dict(state)
        metrics["storage_mean_hm3"] = state["storage_mean_hm3"] / state["length"].clamp(min=1.0)
        metrics["success"] = ((state["failures"] == 0) & (state["length"] >= self.config.horizon_days)).to(torch.float32)
        fresh = self._fresh()
        for name in state:
            state[name] = torch.where(done, fresh[name], state[name])
        return done, metrics

    def update(self, next_td: TensorDictBase) -> Optional[dict[str, torch.Tensor]]:
        """Add one day for every env; metrics of the episodes that ended this day, or None (syncs)."""
        done, metrics = self._step(next_td)
        if not bool(done.any()):
            return None
        return {name: values[done] for name, values in metrics.items()}

    def update_batch(self, batch: TensorDictBase) -> FinishedEpisodes:
        """Feed a collector batch of shape (n_envs, T), all T days at once.

        Running sums restart after each done day: with c the cumulative sum over the batch's days and
        t₀ the last done day before t, the episode-so-far sum on day t is c[t] − c[t₀] (or the carried
        state + c[t] when no episode ended earlier in the batch). Running min / max restart the same way
        through a per-episode offset added before a cumulative max."""
        next_td = batch.get("next")
        n_envs, days = batch.shape[0], batch.shape[1]
        daily = daily_indicators(next_td, self.config)
        done = next_td.get("done").reshape(n_envs, days)
        state = self._state
        additive = [name for name, how in REDUCTIONS.items() if how in ("sum", "mean")]
        # which episode of the batch each day belongs to: 0 = the one carried in from the state
        episode = torch.cumsum(done.to(torch.int64), dim=1) - done.to(torch.int64)  # dones strictly before t
        carried = (episode == 0).unsqueeze(-1)
        day_index = torch.arange(days, device=done.device).expand(n_envs, days)
        last_done = torch.where(done, day_index, torch.full_like(day_index, -1)).cummax(dim=1).values
        previous_done = torch.cat([torch.full_like(last_done[:, :1], -1), last_done[:, :-1]], dim=1)  # t₀ (−1: none)
        values = torch.stack([daily[name] for name in additive], dim=-1).to(torch.float64)  # (n, T, K)
        cumulative = torch.cat([torch.zeros_like(values[:, :1]), values.cumsum(dim=1)], dim=1)  # c, 0 first
        base = cumulative.gather(1, (previous_done + 1).unsqueeze(-1).expand(-1, -1, len(additive)))
        carry = torch.stack([state[name] for name in additive], dim=-1).to(torch.float64).unsqueeze(1)
        running = (cumulative[:, 1:] - base + torch.where(carried, carry, 0.0)).to(torch.float32)
        metrics = {name: running[..., k] for k, name in enumerate(additive)}
        storage = daily["storage_max_hm3"].to(torch.float64)
        offset = episode.to(torch.float64) * (2.0 * storage.abs().amax() + 1.0)  # later episodes sit above earlier ones
        for name, sign in (("storage_max_hm3", 1.0), ("storage_min_hm3", -1.0)):
            shifted = sign * storage + offset
            peak = (shifted.cummax(dim=1).values - offset) * sign
            carried_value = state[name].unsqueeze(1).to(torch.float64)
            combined = torch.maximum(peak, carried_value) if sign > 0 else torch.minimum(peak, carried_value)
            metrics[name] = torch.where(episode == 0, combined, peak).to(torch.float32)
        fresh = self._fresh()
        for name in state:
            state[name] = torch.where(done[:, -1], fresh[name], metrics[name][:, -1])
        metrics["storage_mean_hm3"] = metrics["storage_mean_hm3"] / metrics["length"].clamp(min=1.0)
        metrics["success"] = (
            (metrics["failures"] == 0) & (metrics["length"] >= self.config.horizon_days)
        ).to(torch.float32)
        return FinishedEpisodes(done, metrics)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.cpu().clone() for name, value in self._state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._state = {name: state[name].to(self._device).clone() for name in REDUCTIONS}
