"""The QR-DQN loss (Dabney, Rowland, Bellemare & Munos 2018, "Distributional RL with Quantile Regression").

A quantile network (`QNetwork` with ``quantiles=N``) gives, per release level, N quantiles θ_1 … θ_N of the return
(reward units) at the midpoints τ̂_i = (2i + 1) / (2N), i = 0 … N − 1. The update regresses the quantiles of the
taken action on N target samples y_j:

    θ_i              online quantiles of s at the stored action a                       (B, N)
    a*               argmax_a mean_j θ_j^online(s', a) (double DQN), else of the target network
    y_j              r + γ^k · (1 − terminated) · θ_j^target(s', a*)                        (B, N)
    u_ij             y_j − θ_i
    ℓ                Σ_i mean_j |τ̂_i − 1{u_ij < 0}| · Huber_κ(u_ij), κ = 1                  (B,)
    loss             mean(ℓ), or the importance-weighted mean Σ wℓ / Σ w under prioritized replay
    td_error         (mean_i θ_i − mean_j y_j)², the priority                              (B,)

With Munchausen DQN (α > 0; as in Munchausen-IQN, Vieillard, Pietquin & Geist 2020) every target quantile gets the
Munchausen bonus and the soft value, the policy being the softmax of the target network's mean-quantile Q-values
Q̄ = mean_j θ_j^target:

    π(·|s)           softmax(Q̄(s, ·) / τ)
    y_j              r + α·clip(τ·log π(a|s), l0, 0)
                       + γ^k · (1 − terminated) · Σ_a' π(a'|s') · (θ_j^target(s', a') − τ·log π(a'|s'))

(double DQN has no role there). γ^k: k = ``steps_to_next_obs`` of n-step transitions, else 1.

Shapes: observation (B, obs_size) float32, action (B,) int64, reward / terminated (B, 1) or (B,).
"""

from __future__ import annotations

from typing import Optional

import torch

from reservoir_rl.agent.munchausen import munchausen_bonus, online_reads_next, scaled_log_policy

HUBER_KAPPA = 1.0  # κ of the quantile Huber loss: quadratic inside |u| ≤ κ, linear outside


def quantile_midpoints(n_quantiles: int, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """The quantile levels τ̂_i = (2i + 1) / (2N), i = 0 … N − 1, shape (N,)."""
    return (2 * torch.arange(n_quantiles, dtype=dtype, device=device) + 1) / (2 * n_quantiles)


def quantile_huber_loss(quantiles: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample quantile Huber loss ℓ (B,) of online quantiles (B, N) at τ̂ (`quantile_midpoints`) against
    target samples (B, N′): Σ_i mean_j |τ̂_i − 1{y_j − θ_i < 0}| · Huber_κ(y_j − θ_i) / κ, κ = 1."""
    difference = targets.unsqueeze(-2) - quantiles.unsqueeze(-1)  # u_ij = y_j − θ_i, (B, N, N′)
    magnitude = difference.abs()
    huber = torch.where(magnitude <= HUBER_KAPPA, 0.5 * difference.pow(2), HUBER_KAPPA * (magnitude - 0.5 * HUBER_KAPPA))
    levels = quantile_midpoints(quantiles.shape[-1], quantiles.dtype, quantiles.device).unsqueeze(-1)  # (N, 1)
    asymmetry = (levels - (difference.detach() < 0).to(quantiles.dtype)).abs()
    return (asymmetry * huber / HUBER_KAPPA).mean(dim=-1).sum(dim=-1)


def quantile_targets(
    target_quantiles_next: torch.Tensor,
    greedy_q_next: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    discount: float | torch.Tensor,
) -> torch.Tensor:
    """y_j = r + γ^k · (1 − terminated) · θ_j^target(s', a*) (B, N), a* = argmax of ``greedy_q_next`` (B, n_actions):
    the online network's mean-quantile Q(s') for double DQN, else the target network's. ``target_quantiles_next``
    (B, n_actions, N); ``reward`` (B,), ``terminated`` bool (B,), ``discount`` a float or (B,)."""
    index = greedy_q_next.argmax(-1).reshape(-1, 1, 1).expand(-1, 1, target_quantiles_next.shape[-1])
    next_quantiles = target_quantiles_next.gather(-2, index).squeeze(-2)
    scale = discount * (~terminated).to(next_quantiles.dtype)
    return reward.unsqueeze(-1) + scale.unsqueeze(-1) * next_quantiles


def munchausen_quantile_targets(
    target_quantiles: torch.Tensor,
    target_quantiles_next: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    discount: float | torch.Tensor,
    alpha: float,
    tau: float,
    clip: float,
) -> torch.Tensor:
    """The Munchausen target quantiles (B, N) (module docstring) from the target network's quantiles of s and s'
    (B, n_actions, N); π is the softmax of their mean over the quantiles. ``action`` int64 (B,), the rest as in
    `quantile_targets`."""
    q_next = target_quantiles_next.mean(dim=-1)
    bonus = munchausen_bonus(target_quantiles.mean(dim=-1), action, alpha, tau, clip)
    policy_next = torch.softmax(q_next / tau, dim=-1).unsqueeze(-1)  # (B, n_actions, 1)
    soft_quantiles = (policy_next * (target_quantiles_next - scaled_log_policy(q_next, tau).unsqueeze(-1))).sum(-2)
    scale = discount * (~terminated).to(soft_quantiles.dtype)
    return (reward + bonus).unsqueeze(-1) + scale.unsqueeze(-1) * soft_quantiles


def quantile_loss(
    online_network: torch.nn.Module,
    target_network: torch.nn.Module,
    observation: torch.Tensor,
    action: torch.Tensor,
    next_observation: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    *,
    gamma: float,
    double_dqn: bool,
    munchausen: Optional[tuple[float, float, float]] = None,
    weights: Optional[torch.Tensor] = None,
    steps_to_next_obs: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The QR-DQN loss (scalar, with grad to the online parameters) and td_error ((B,), detached) of quantile
    networks (``quantile_values`` (..., n_actions, N)); ``munchausen`` = (α, τ, l0) or None."""
    n = observation.shape[0]
    action = action.reshape(-1)
    reward, terminated = reward.reshape(-1), terminated.reshape(-1)
    discount = gamma if steps_to_next_obs is None else gamma ** steps_to_next_obs.reshape(-1)
    use_online_next = online_reads_next(double_dqn, munchausen)
    if use_online_next:  # one online forward over s and s' (rows of s' carry no gradient)
        online_both = online_network.quantile_values(torch.cat([observation, next_observation]))
        online_quantiles, online_next = online_both[:n], online_both[n:].detach()
    else:
        online_quantiles = online_network.quantile_values(observation)
    index = action.reshape(-1, 1, 1).expand(-1, 1, online_quantiles.shape[-1])
    chosen = online_quantiles.gather(-2, index).squeeze(-2)  # (B, N)
    with torch.no_grad():
        if munchausen is not None:
            target_both = target_network.quantile_values(torch.cat([observation, next_observation]))
            targets = munchausen_quantile_targets(target_both[:n], target_both[n:], action, reward, terminated,
                                                  discount, *munchausen)
        else:
            target_next = target_network.quantile_values(next_observation)
            greedy = (online_next if use_online_next else target_next).mean(dim=-1)
            targets = quantile_targets(target_next, greedy, reward, terminated, discount)
    per_sample = quantile_huber_loss(chosen, targets)
    if weights is not None:  # importance weights of prioritized replay: a weighted mean, as in TorchRL
        weights = weights.reshape(-1)
        loss = (per_sample * weights).sum() / weights.sum()
    else:
        loss = per_sample.mean()
    return loss, (chosen.detach().mean(dim=-1) - targets.mean(dim=-1)).pow(2)
