"""n-step transitions across collector batches.

A collector batch has shape (n_envs, T). For n-step returns a transition from day t needs the rewards
of days t … t+n−1, which for the last n−1 days of a batch lie in the next batch. `NStepTransitions`
therefore holds back the last n−1 days of every env and emits them with the next batch, so every
transition gets its full n-step return (shorter only when its episode ends first) and none is biased by
where a batch happens to end. TorchRL's ``MultiStep`` postproc truncates at batch edges and keeps the
``terminated`` flag of day t; this class uses the flags of the day the n-step window actually ends.

For the transition starting on day t with window length m = min(n, days until the episode's first
done, inclusive):

    ("next", "reward")      = Σ_{k<m} γ^k r_{t+k}
    ("next", "observation") = the observation after day t+m−1
    ("next", "terminated"), ("next", "done") = those of day t+m−1
    "steps_to_next_obs"     = m   (the TD(0) target then discounts the bootstrap by γ^m)

With ``n_steps == 1`` the transitions pass through unchanged (no "steps_to_next_obs").
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from tensordict import TensorDict, TensorDictBase


class NStepTransitions:
    """Turns (n_envs, T) batches of one-step transitions into n-step transitions.

    Args:
        n_steps: window length n (1 = plain one-step transitions).
        gamma: discount per day.
        keys: the transition keys to keep (they must include ``("next", "reward")``,
            ``("next", "done")``, ``("next", "terminated")``).
    """

    def __init__(self, n_steps: int, gamma: float, keys: Sequence) -> None:
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self.gamma = float(gamma)
        self.keys = tuple(keys)
        self._pending: Optional[TensorDictBase] = None  # (n_envs, ≤ n−1) days held back

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        """n-step transitions ready for the replay buffer, flattened to (n_transitions,)."""
        data = batch.select(*self.keys)
        if self.n_steps == 1:
            return data.flatten(0, 1)
        if self._pending is not None:
            data = torch.cat([self._pending, data], dim=1)
        hold = self.n_steps - 1
        days = data.shape[1]
        ready = days - hold
        self._pending = data[:, max(ready, 0):].clone()
        if ready <= 0:
            return data[:, :0].flatten(0, 1)
        return self._windows(data, ready).flatten(0, 1)

    def _windows(self, data: TensorDictBase, ready: int) -> TensorDictBase:
        nxt = data.get("next")
        reward = nxt.get("reward")  # (n_envs, days, 1)
        done = nxt.get("done")
        terminated = nxt.get("terminated")
        next_obs = nxt.get("observation")
        out_reward = torch.zeros_like(reward[:, :ready])
        out_done = done[:, :ready].clone()
        out_terminated = terminated[:, :ready].clone()
        out_obs = next_obs[:, :ready].clone()
        steps = torch.zeros_like(reward[:, :ready], dtype=torch.int64)
        alive = torch.ones_like(done[:, :ready])
        for k in range(self.n_steps):  # loop over the window length, not over envs or days
            window = slice(k, k + ready)
            out_reward = out_reward + torch.where(alive, (self.gamma**k) * reward[:, window], 0.0)
            steps = steps + alive.to(torch.int64)
            out_obs = torch.where(alive, next_obs[:, window], out_obs)
            out_done = torch.where(alive, done[:, window], out_done)
            out_terminated = torch.where(alive, terminated[:, window], out_terminated)
            alive = alive & ~done[:, window]
        out = data[:, :ready].clone()
        out.set(("next", "reward"), out_reward)
        out.set(("next", "observation"), out_obs)
        out.set(("next", "done"), out_done)
        out.set(("next", "terminated"), out_terminated)
        out.set("steps_to_next_obs", steps)
        return out

    def state_dict(self) -> dict:
        """The held-back days as plain tensors (empty when nothing is held)."""
        if self._pending is None:
            return {}
        return {"/".join(k) if isinstance(k, tuple) else k: v.cpu().clone() for k, v in self._pending.items(True, True)}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        if not state:
            self._pending = None
            return
        first = next(iter(state.values()))
        pending = TensorDict({}, batch_size=first.shape[:2], device=device)
        for key, value in state.items():
            pending.set(tuple(key.split("/")), value.to(device))
        self._pending = pending
