"""What the trainer accumulates between two log points, kept on the device until it is logged.

Sums of loss, gradient norm and |TD error| over updates, Q-value statistics over collected days and the
finished episodes, all as tensors: the hot path never waits for the device. `summary` turns them into
plain numbers once per log period. The window is part of a checkpoint, so a resumed run logs exactly
what an uninterrupted one would.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from reservoir_rl.catalog import TRAINING_METRICS
from reservoir_rl.env.metrics import FinishedEpisodes

RESERVOIR_GROUP = TRAINING_METRICS  # TensorBoard's reservoir/ group: means over the finished episodes
_SUMS = ("loss", "grad_norm", "td_error_abs", "q_sum", "guard_overrides")


class TrainingWindow:
    """Statistics since the last log point (see module docstring)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self.sums = {name: zero.clone() for name in _SUMS}
        self.n_updates = 0
        self.q_count = 0
        self.guard_days = 0
        self.q_max = torch.full((), -math.inf, device=self.device)
        self.q_min = torch.full((), math.inf, device=self.device)
        self.episodes: list[FinishedEpisodes] = []

    # ------------------------------------------------------------------ hot path (no syncs)
    def add_update(self, loss: torch.Tensor, grad_norm: torch.Tensor, td_error_abs_mean: torch.Tensor) -> None:
        self.sums["loss"] += loss.detach()
        self.sums["grad_norm"] += grad_norm.detach()
        self.sums["td_error_abs"] += td_error_abs_mean.detach()
        self.n_updates += 1

    def add_batch(
        self, q_values: torch.Tensor, finished: FinishedEpisodes, guard_override: Optional[torch.Tensor] = None
    ) -> None:
        """``q_values``: (..., n_actions) Q-values the policy computed while collecting; ``guard_override``:
        bool, one per collected day, True where the release guard changed the policy's action (None: no guard)."""
        if guard_override is not None:
            self.sums["guard_overrides"] += guard_override.sum()
            self.guard_days += guard_override.numel()
        q = q_values.detach()
        self.sums["q_sum"] += q.sum()
        self.q_count += q.numel()
        self.q_max = torch.maximum(self.q_max, q.max())
        self.q_min = torch.minimum(self.q_min, q.min())
        self.episodes.append(finished)

    # ------------------------------------------------------------------ log time
    def finished_episodes(self) -> Optional[dict[str, torch.Tensor]]:
        """Metrics of the episodes that ended in the window, each (n,), or None if none ended."""
        if not self.episodes:
            return None
        selected = FinishedEpisodes.concat(self.episodes).select()
        return selected if selected["return"].numel() else None

    def summary(self) -> dict[str, dict[str, float]]:
        """Plain numbers by TensorBoard group: ``train`` (loss, grad_norm), ``agent`` (td_error, q_*,
        guard_override_fraction: the share of collected days the release guard changed the action),
        ``episode`` and ``reservoir`` (means over the finished episodes); empty groups are omitted."""
        out: dict[str, dict[str, float]] = {}
        if self.n_updates:
            n = self.n_updates
            out["train"] = {"loss": float(self.sums["loss"]) / n, "grad_norm": float(self.sums["grad_norm"]) / n}
            out["agent"] = {"td_error": float(self.sums["td_error_abs"]) / n}
        if self.guard_days:
            out.setdefault("agent", {})["guard_override_fraction"] = float(self.sums["guard_overrides"]) / self.guard_days
        if self.q_count:
            out.setdefault("agent", {}).update(
                q_mean=float(self.sums["q_sum"]) / self.q_count, q_max=float(self.q_max), q_min=float(self.q_min)
            )
        episodes = self.finished_episodes()
        if episodes is not None:
            returns = episodes["return"]
            out["episode"] = {
                "return_mean": float(returns.mean()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
                "length": float(episodes["length"].mean()),
                "success_rate": float(episodes["success"].mean()),
                "finished": float(returns.numel()),
            }
            out["reservoir"] = {name: float(episodes[name].mean()) for name in RESERVOIR_GROUP}
        return out

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "sums": {name: value.cpu().clone() for name, value in self.sums.items()},
            "n_updates": self.n_updates,
            "q_count": self.q_count,
            "guard_days": self.guard_days,
            "q_max": self.q_max.cpu().clone(),
            "q_min": self.q_min.cpu().clone(),
            "episodes": FinishedEpisodes.concat(self.episodes).state_dict() if self.episodes else {},
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        zero = torch.zeros((), dtype=torch.float64)  # (a window saved before the guard existed has no guard sums)
        self.sums = {name: state["sums"].get(name, zero).to(self.device) for name in _SUMS}
        self.n_updates = int(state["n_updates"])
        self.q_count = int(state["q_count"])
        self.guard_days = int(state.get("guard_days", 0))
        self.q_max = state["q_max"].to(self.device)
        self.q_min = state["q_min"].to(self.device)
        episodes = state["episodes"]
        self.episodes = [FinishedEpisodes.from_state_dict(episodes, self.device)] if episodes else []
