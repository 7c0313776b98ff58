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

from typing import Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torchrl.objectives import DQNLoss


class FusedDQNLoss:
    """Plain-tensor twin of a configured `DQNLoss` (categorical actions, TD(0) or n-step targets).

    Args:
        loss: the `DQNLoss` whose parameters, γ, loss function and double-DQN flag are used.
        q_network: the plain ``nn.Module`` inside the loss's value network (observation → Q-values).
        gamma: discount per step.
    """

    def __init__(self, loss: DQNLoss, q_network: torch.nn.Module, gamma: float) -> None:
        self.loss = loss
        self.q_network = q_network
        self.gamma = float(gamma)
        self.double_dqn = bool(loss.double_dqn)
        if loss.loss_function not in ("smooth_l1", "l2"):
            raise ValueError(f"unsupported loss function {loss.loss_function!r}")
        self.loss_function = loss.loss_function
        self._online = self._names(loss.value_network_params)
        self._target = self._names(loss.target_value_network_params)

    @staticmethod
    def _names(params) -> dict[str, torch.Tensor]:
        """Parameter tensors of the Q-network keyed by their module names (views into ``params``)."""
        flat = params.flatten_keys(".")
        prefix = "module.0.module."  # QValueActor → TensorDictModule → the Q-network
        names = {}
        for key, value in flat.items():
            name = key[len(prefix):] if key.startswith(prefix) else key
            names[name] = value
        return names

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
        q_values = functional_call(self.q_network, self._online, (observation,))
        chosen = q_values.gather(-1, action.reshape(-1, 1)).squeeze(-1)
        with torch.no_grad():
            target_q = functional_call(self.q_network, self._target, (next_observation,))
            if self.double_dqn:
                online_next = functional_call(self.q_network, self._online, (next_observation,))
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
