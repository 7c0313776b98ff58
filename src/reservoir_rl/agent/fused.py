"""A fused DQN update on plain tensors that computes exactly what TorchRL's `DQNLoss` computes.

`DQNLoss` routes every sample through TensorDicts (clone, step_mdp, value estimator), which costs several
milliseconds per update on a CPU. `FusedDQNLoss` reads the same online and target parameters from the
`DQNLoss` instance (so the optimizer, `HardUpdate` / `SoftUpdate` and checkpoints stay those of TorchRL) and
computes the same loss from plain tensors:

    q(s, a)          online network, gathered at the stored action            (B,)
    a*               argmax_a q_online(s', a) (double DQN) or argmax of the target net
    y                r + γ^k · (1 − terminated) · q_target(s', a*)            (B,)
    loss             mean(ℓ(q(s, a), y)), ℓ = smooth-L1 or squared error; under prioritized replay
                     the importance-weighted mean Σ wℓ / Σ w, as `DQNLoss` does
    td_error         (q(s, a) − y)², the priority `DQNLoss` writes

Shapes: observation (B, obs_size) float32, action (B,) int64, reward / terminated (B, 1) or (B,).
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torchrl.objectives import DQNLoss


class FusedDQNLoss:
    """Plain-tensor twin of a configured `DQNLoss` (categorical actions, TD(0) or n-step targets).

    Args:
        loss: the `DQNLoss` whose parameters, γ, loss function and double-DQN flag are used.
        q_network: the plain ``nn.Module`` inside the loss's value network (observation → Q-values).
        gamma: discount per step.
    """

    def __init__(self, loss: DQNLoss, q_network: torch.nn.Module, gamma: float) -> None:
        if loss.loss_function not in ("smooth_l1", "l2"):
            raise ValueError(f"unsupported loss function {loss.loss_function!r}")
        self.gamma = float(gamma)
        self.double_dqn = bool(loss.double_dqn)
        self.loss_function = loss.loss_function
        # The online network's parameters are the loss's ``value_network_params`` (the same tensors), so
        # the plain module computes online Q-values. The target network is a copy of the module bound to
        # the loss's ``target_value_network_params``: HardUpdate / SoftUpdate write those tensors in place,
        # so the copy always holds the current target weights.
        self.q_network = q_network
        self.target_network = copy.deepcopy(q_network).requires_grad_(False)
        loss.target_value_network_params["module", "0", "module"].to_module(self.target_network)
        online = dict(q_network.named_parameters())
        bound = loss.value_network_params["module", "0", "module"].flatten_keys(".")
        if any(online[name] is not tensor for name, tensor in bound.items()):
            raise ValueError("q_network is not the network whose parameters the loss optimises")

    def __call__(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        weights: Optional[torch.Tensor] = None,
        steps_to_next_obs: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (scalar, with grad to the online parameters) and td_error ((B,), detached)."""
        n = observation.shape[0]
        if self.double_dqn:  # one online forward over s and s' (rows of s' carry no gradient)
            q_both = self.q_network(torch.cat([observation, next_observation]))
            q_values, online_next = q_both[:n], q_both[n:].detach()
        else:
            q_values = self.q_network(observation)
        chosen = q_values.gather(-1, action.reshape(-1, 1)).squeeze(-1)
        with torch.no_grad():
            target_q = self.target_network(next_observation)
            if self.double_dqn:
                next_action = online_next.argmax(-1, keepdim=True)
            else:
                next_action = target_q.argmax(-1, keepdim=True)
            next_value = target_q.gather(-1, next_action).squeeze(-1)
            discount = self.gamma if steps_to_next_obs is None else self.gamma ** steps_to_next_obs.reshape(-1)
            not_terminated = (~terminated.reshape(-1)).to(next_value.dtype)
            target = reward.reshape(-1) + discount * not_terminated * next_value
        if self.loss_function == "smooth_l1":
            elementwise = F.smooth_l1_loss(chosen, target, reduction="none")
        else:
            elementwise = F.mse_loss(chosen, target, reduction="none")
        if weights is not None:  # importance weights of prioritized replay: a weighted mean, as in TorchRL
            weights = weights.reshape(-1)
            loss = (elementwise * weights).sum() / weights.sum()
        else:
            loss = elementwise.mean()
        return loss, (chosen.detach() - target).pow(2)
