"""Potential-based reward shaping with the stochastic DP's value function (``train.sdp_potential_weight``).

The transitions the agent learns from get F = γ·Φ(s') − Φ(s) added to their reward, with the potential
Φ(s) = w · V̄(d, S): w the weight, V̄ the SDP's value at the start of day of year d with storage S, averaged
over that day's inflow classes with their frequencies (`SDPSolution.mean_value`; the SDP of
`reservoir_rl.baselines.sdp`, estimated on the training water years only), γ the agent's discount
(``agent.gamma``). Such a shaping leaves the optimal policy unchanged (Ng, Harada & Russell 1999): over any
stretch of days the shaped return differs from the true one by γ^k·Φ(s_k) − Φ(s_0), which no action can
change. It tells the agent early what storage is worth, which the sparse failures and the long horizon
make slow to learn.

Episode ends: a step the env TERMINATED (a catastrophic failure) leads to an absorbing state with no future,
whose potential is 0 (F = −Φ(s)), as the Q-target bootstraps nothing there. A TRUNCATED step (the horizon
reached) leads to an ordinary state the target still bootstraps from: F uses its potential as any other
step does. n-step returns sum the shaped rewards, so they telescope the same way.

Only what the agent learns from is shaped: the env's rewards, the episode returns the trainer logs, the
in-training evaluation and ``evaluate`` are unshaped. Potentials are float64, F is added in float32.
"""

from __future__ import annotations

from typing import Optional

import torch
from tensordict import TensorDictBase

from reservoir_rl.baselines.dp import VALUE_DTYPE, interpolate_on_grid
from reservoir_rl.baselines.sdp import SDPSolution, sdp_solution
from reservoir_rl.config import Config
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv

REWARD_KEY = ("next", "reward")


class SDPPotentialShaping:
    """F = γ·Φ(s') − Φ(s) with Φ = ``weight`` · V̄_SDP (see the module) for batches of ``env``'s transitions."""

    def __init__(self, solution: SDPSolution, weight: float, gamma: float) -> None:
        self.solution = solution
        self.weight = float(weight)
        self.gamma = float(gamma)
        # weight · V̄ on the storage grid for every day of year, (366, G) float64: `SDPSolution.mean_value`'s
        # class average done once, so each batch only interpolates
        classes = solution.classes
        weights = classes.marginal[classes.period_of_day]  # (366, C)
        self._table = self.weight * torch.einsum("dc,dcg->dg", weights.to(solution.values.dtype), solution.values)
        self._tables: dict[str, torch.Tensor] = {}

    def potential(self, day_of_year: torch.Tensor, storage_hm3: torch.Tensor) -> torch.Tensor:
        """Φ = weight · V̄(d, S), float64 of the shape of ``storage_hm3`` (any shape; ``day_of_year`` int64 alike)."""
        table = self._tables.get(str(storage_hm3.device))
        if table is None:
            table = self._tables[str(storage_hm3.device)] = self._table.to(storage_hm3.device)
        values = interpolate_on_grid(table[day_of_year.reshape(-1)], storage_hm3.reshape(-1, 1).to(VALUE_DTYPE),
                                     self.solution.physics)
        return values.reshape(storage_hm3.shape)

    def shaping_reward(self, batch: TensorDictBase) -> torch.Tensor:
        """F of every transition of ``batch`` (root and ``next`` keys ``day_of_year``, ``storage_hm3``; ``next``
        ``terminated``), float64 of the batch shape: γ·Φ(s')·[not terminated] − Φ(s)."""
        now = self.potential(batch.get("day_of_year"), batch.get("storage_hm3"))
        after = self.potential(batch.get(("next", "day_of_year")), batch.get(("next", "storage_hm3")))
        terminated = batch.get(("next", "terminated")).reshape(after.shape)
        return self.gamma * torch.where(terminated, torch.zeros_like(after), after) - now

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        """A shallow copy of ``batch`` whose ``("next", "reward")`` is the env's reward + F (``batch`` unchanged)."""
        reward = batch.get(REWARD_KEY)
        shaped = reward + self.shaping_reward(batch).reshape(reward.shape).to(reward.dtype)
        out = batch.copy()
        out.set(REWARD_KEY, shaped)
        return out


def make_shaping(env: DiscreteReservoirEnv, config: Config) -> Optional[SDPPotentialShaping]:
    """The shaping ``train.sdp_potential_weight`` asks for on ``env``'s reservoir, or None when it is 0 (off:
    nothing is solved and the transitions are stored exactly as before). Solving the SDP draws no random
    numbers."""
    weight = config.train.sdp_potential_weight
    if weight == 0:
        return None
    return SDPPotentialShaping(sdp_solution(env, config), weight, config.agent.gamma)
