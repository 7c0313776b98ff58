"""Q-networks: an MLP from the observation to one Q-value per release level, optionally dueling."""

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
    """

    def __init__(
        self,
        obs_size: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "relu",
        dueling: bool = False,
    ) -> None:
        super().__init__()
        self.obs_size = obs_size
        self.n_actions = n_actions
        self.dueling = dueling
        self.body = _mlp([obs_size, *hidden_sizes], activation)
        last = hidden_sizes[-1]
        if dueling:
            self.value_head = nn.Linear(last, 1)
            self.advantage_head = nn.Linear(last, n_actions)
        else:
            self.head = nn.Linear(last, n_actions)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        features = self.body(observation)
        if not self.dueling:
            return self.head(features)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=-1, keepdim=True)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
