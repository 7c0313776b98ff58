"""Munchausen DQN targets (Vieillard, Pietquin & Geist 2020) on plain tensors, for any leading shape.

With the target network's policy π(·|s) = softmax(q_target(s, ·) / τ) (τ in reward units) the target is

    y  =  r + α·clip(τ·log π(a|s), l0, 0) + γ^k · (1 − terminated) · Σ_a' π(a'|s') · (q_target(s', a') − τ·log π(a'|s'))

`munchausen_target` computes it for scalar Q-values (`FusedDQNLoss`, the batched update); the QR-DQN loss
(`reservoir_rl.agent.quantile`) uses the bonus and τ·log π with π from the mean-quantile Q-values.
"""

from __future__ import annotations

import torch


def online_reads_next(double_dqn: bool, munchausen: object) -> bool:
    """Whether a DQN target reads the online network's values of s' (to pick the next action): the double-DQN
    target does; the Munchausen target (``munchausen`` not None) reads the target network alone."""
    return double_dqn and munchausen is None


def munchausen_target(
    target_q: torch.Tensor,
    target_q_next: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    discount: float | torch.Tensor,
    alpha: float,
    tau: float,
    clip: float,
) -> torch.Tensor:
    """The Munchausen DQN target (see the module) for any leading shape (*lead,): ``target_q`` and
    ``target_q_next`` (*lead, n_actions) the target network's Q(s, ·) and Q(s', ·); ``action`` int64, ``reward``,
    ``terminated`` (bool) and a tensor ``discount`` of shape (*lead,). τ·log π = q − τ·logsumexp(q / τ)."""
    bonus = munchausen_bonus(target_q, action, alpha, tau, clip)
    tau_log_pi_next = scaled_log_policy(target_q_next, tau)
    soft_value = (torch.softmax(target_q_next / tau, dim=-1) * (target_q_next - tau_log_pi_next)).sum(-1)
    not_terminated = (~terminated).to(soft_value.dtype)
    return reward + bonus + discount * not_terminated * soft_value


def scaled_log_policy(q_values: torch.Tensor, tau: float) -> torch.Tensor:
    """τ·log π (*lead, n_actions) of the policy π = softmax(q / τ) over the last dimension: q − τ·logsumexp(q / τ)."""
    return q_values - tau * torch.logsumexp(q_values / tau, dim=-1, keepdim=True)


def munchausen_bonus(target_q: torch.Tensor, action: torch.Tensor, alpha: float, tau: float, clip: float) -> torch.Tensor:
    """The Munchausen reward bonus α·clip(τ·log π(a|s), clip, 0) (*lead,), π = softmax(target_q / τ) of the target
    network's Q(s, ·) (*lead, n_actions), at the stored actions ``action`` (int64, (*lead,))."""
    tau_log_pi = scaled_log_policy(target_q, tau)
    return alpha * tau_log_pi.gather(-1, action.unsqueeze(-1)).squeeze(-1).clamp(min=clip, max=0.0)
