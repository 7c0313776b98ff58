"""The ``agent`` section: Q-network and DQN loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reservoir_rl.config.section import Section


class AgentConfig(Section):
    """Q-network and DQN loss."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 128])
    activation: Literal["relu", "tanh", "elu"] = "relu"
    dueling: bool = False
    double_dqn: bool = True
    loss: Literal["smooth_l1", "l2"] = "smooth_l1"
    gamma: float = Field(0.99, gt=0, le=1)
    n_step: int = Field(1, ge=1, le=20)
    # Munchausen DQN (Vieillard, Pietquin & Geist 2020): soft targets of the policy softmax(q_target / τ) plus
    # α·clip(τ·log π(a|s), clip, 0) added to the reward; α = 0 is plain (double) DQN
    munchausen_alpha: float = Field(0.0, ge=0, le=1)
    munchausen_tau: float = Field(0.03, gt=0)
    munchausen_clip: float = Field(-1.0, lt=0)
    # QR-DQN (Dabney et al. 2018): N quantiles of the return per release level, trained with the quantile Huber
    # loss (κ = 1; `loss` must stay smooth_l1); the policy acts on their mean. 0 = one Q-value per level
    distributional_quantiles: int = Field(0, ge=0, le=200)

    @model_validator(mode="after")
    def _sizes(self) -> "AgentConfig":
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes}")
        if self.distributional_quantiles == 1:
            raise ValueError("distributional_quantiles must be 0 (off) or 2 … 200 quantiles, got 1")
        if self.distributional_quantiles and self.loss != "smooth_l1":
            raise ValueError(f"distributional_quantiles trains with the quantile Huber loss (κ = 1), the quantile "
                             f"form of smooth_l1; loss: {self.loss} has none (set loss: smooth_l1)")
        return self
