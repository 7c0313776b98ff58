"""Q-networks: an MLP from the observation to one Q-value per release level, optionally dueling, optionally
distributional (N quantiles of the return per release level, QR-DQN)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(size_in, size_out), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Maps observations (..., obs_size) to Q-values (..., n_actions).

    With ``dueling=True`` the last hidden layer feeds a value head V (1 output) and an advantage head A
    (n_actions outputs) combined as ``Q = V + A − mean(A)`` (Wang et al. 2016).

    With ``quantiles=N`` (N ≥ 2; QR-DQN, Dabney et al. 2018) the head gives N values per release level, the
    quantiles of the return at the midpoints τ̂_i = (2i + 1) / (2N) (reward units), read by `quantile_values`
    as (..., n_actions, N); ``forward`` returns their mean over the quantiles, the Q-values (..., n_actions),
    so every policy, the evaluation and the export read a quantile network as any other. Dueling and quantiles
    combine per quantile: V has N outputs, A has n_actions × N, θ_i = V_i + A_i − mean_actions(A_i).
    ``quantiles=0`` is the plain network (the same layers, parameters and numbers).
    """

    def __init__(
        self,
        obs_size: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "relu",
        dueling: bool = False,
        quantiles: int = 0,
    ) -> None:
        super().__init__()
        if quantiles == 1 or quantiles < 0:
            raise ValueError(f"quantiles must be 0 (one Q-value per action) or at least 2, got {quantiles}")
        self.obs_size = obs_size
        self.n_actions = n_actions
        self.dueling = dueling
        self.quantiles = int(quantiles)
        values_per_action = max(self.quantiles, 1)
        self.body = _mlp([obs_size, *hidden_sizes], activation)
        last = hidden_sizes[-1]
        if dueling:
            self.value_head = nn.Linear(last, values_per_action)
            self.advantage_head = nn.Linear(last, n_actions * values_per_action)
        else:
            self.head = nn.Linear(last, n_actions * values_per_action)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """Q-values (..., n_actions) of observations (..., obs_size); the mean of the quantiles with ``quantiles``."""
        if self.quantiles:
            return self.quantile_values(observation).mean(dim=-1)
        features = self.body(observation)
        if not self.dueling:
            return self.head(features)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=-1, keepdim=True)

    def quantile_values(self, observation: torch.Tensor) -> torch.Tensor:
        """Quantiles of the return (..., n_actions, N) at τ̂_i = (2i + 1) / (2N), of observations (..., obs_size)."""
        if not self.quantiles:
            raise ValueError("quantile_values needs a network built with quantiles >= 2")
        features = self.body(observation)
        per_action = (self.n_actions, self.quantiles)
        if not self.dueling:
            return self.head(features).unflatten(-1, per_action)
        advantage = self.advantage_head(features).unflatten(-1, per_action)
        value = self.value_head(features).unsqueeze(-2)
        return value + advantage - advantage.mean(dim=-2, keepdim=True)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
