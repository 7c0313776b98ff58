"""Run exactly one episode per env with any policy, and sum each episode's return.

`run_episodes` is ``env.rollout`` with the settings that give one episode per env: in torchrl 0.14.1
``break_when_all_done=True`` (with ``break_when_any_done=False``) keeps stepping until every env is done,
never resets a finished env, and stores, for an env that is already done, a copy of its last real step
(so its ``("next", "done")`` stays True and its last reward is repeated). `episode_returns` therefore
sums rewards only up to and including each env's first done step.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase

Policy = Callable[[TensorDictBase], TensorDictBase]


def run_episodes(env: EnvBase, policy: Optional[Policy], max_days: Optional[int] = None) -> TensorDictBase:
    """One episode per env from ``env.reset()``: the trajectory, batch shape (n_envs, T).

    Stops when every env is done or after ``max_days`` (default: the env's ``horizon_days``); T is the
    number of days simulated. ``policy=None`` draws uniformly random release levels. Keys are those of
    ``env.rollout`` (root: state before the day and ``action``; ``"next"``: the day's outcome, reward and
    done flags); entries of an env after its first done repeat that step.
    """
    if max_days is None:
        max_days = int(env.config.horizon_days)
    if max_days < 1:
        raise ValueError(f"max_days must be >= 1, got {max_days}")
    return env.rollout(
        max_days,
        policy=policy,
        auto_reset=True,
        break_when_any_done=False,
        break_when_all_done=True,
    )


def first_done_mask(trajectory: TensorDictBase) -> torch.Tensor:
    """Bool (n_envs, T): True on the days up to and including each env's first done step."""
    done = trajectory.get(("next", "done")).reshape(*trajectory.batch_size).to(torch.int64)
    dones_before = done.cumsum(dim=-1) - done
    return dones_before == 0


def episode_returns(trajectory: TensorDictBase) -> torch.Tensor:
    """Undiscounted return of each env's (first) episode, float (n_envs,): sum of ``("next", "reward")``
    over the steps up to and including its first done."""
    reward = trajectory.get(("next", "reward")).reshape(*trajectory.batch_size)
    return torch.where(first_done_mask(trajectory), reward, torch.zeros_like(reward)).sum(dim=-1)
