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

With Munchausen DQN (``munchausen_alpha`` α > 0; Vieillard, Pietquin & Geist 2020) the target is soft and
rewards the agent for the action it took in proportion to how much its target policy already preferred it:

    π(·|s)           softmax(q_target(s, ·) / τ)
    y                r + α·clip(τ·log π(a|s), l0, 0)
                       + γ^k · (1 − terminated) · Σ_a' π(a'|s') · (q_target(s', a') − τ·log π(a'|s'))

(`reservoir_rl.agent.munchausen`; double DQN has no role there, the soft value replaces the max).

A quantile network (``QNetwork(..., quantiles=N)``, QR-DQN) is trained with the quantile-regression loss of
`reservoir_rl.agent.quantile` instead (its own target distribution, quantile Huber loss, TD error of the means);
it has no manual gradients, so it always takes the autograd path.

With demonstrations (DQfD, Hester et al. 2018; `DemonstrationMargin`) the last ``rows`` rows of a batch are a
teacher's transitions: they take part in the TD loss like every row, and add the large-margin loss

    J_E              λ · mean over those rows of  max_a [q(s, a) + m·(a ≠ a_E)] − q(s, a_E)

(m the margin, a_E the teacher's action), whose gradient with respect to q(s, ·) is λ/d · (e_{a⁺} − e_{a_E}),
a⁺ the maximising action (`large_margin_terms`).

Shapes: observation (B, obs_size) float32, action (B,) int64, reward / terminated (B, 1) or (B,).

For a ReLU MLP (the default network, plain or dueling) `FusedDQNLoss.loss_and_gradients` also writes the
gradients itself — the forward pass keeps its activations, the backward pass is four matrix products
and two ReLU masks — instead of recording an autograd graph: about a third of the tensor operations of
forward + ``backward()``, the same gradients (tested against autograd and `DQNLoss`). A dueling head
Q = V + A − mean(A) is linear in the last hidden layer h: Q = h·W_effᵀ + b_eff with W_eff = W_A − mean_rows(W_A)
+ W_V and b_eff = b_A − mean(b_A) + b_V, so it runs as one more layer; its gradient G goes back to the heads as
∂L/∂W_A = G − mean_rows(G), ∂L/∂W_V = Σ_rows G (and likewise for the biases).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torchrl.objectives import DQNLoss

from reservoir_rl.agent.munchausen import munchausen_target, online_reads_next
from reservoir_rl.agent.quantile import quantile_loss


@dataclass(frozen=True)
class DemonstrationMargin:
    """DQfD's large-margin loss on the last ``rows`` rows of a batch (the demonstrations): margin m ≥ 0 and
    weight λ ≥ 0 (module docstring)."""

    rows: int
    margin: float
    weight: float


def large_margin_terms(q_values: torch.Tensor, action: torch.Tensor, margin: float, weight: float,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The large-margin loss of demonstrations and its gradient, for any leading shape (*lead,).

    ``q_values`` (*lead, d, n_actions) of the d demonstration rows, ``action`` (*lead, d) int64 the teacher's.
    Returns λ · mean_rows(max_a [q + m·(a ≠ a_E)] − q(a_E)) of shape (*lead,) and its gradient with respect to
    ``q_values`` (*lead, d, n_actions). Differentiable through ``q_values`` (the autograd path uses the loss)."""
    teacher = torch.zeros_like(q_values).scatter_(-1, action.unsqueeze(-1), 1.0)
    augmented = q_values + margin * (1.0 - teacher)
    best = augmented.argmax(-1, keepdim=True)
    per_row = augmented.gather(-1, best).squeeze(-1) - q_values.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    rows = q_values.shape[-2]
    loss = weight * per_row.mean(-1)
    grad = (torch.zeros_like(q_values).scatter_(-1, best, 1.0) - teacher) * (weight / rows)
    return loss, grad.detach()


def demonstration_terms(q_values: torch.Tensor, action: torch.Tensor, demonstration: DemonstrationMargin,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """`large_margin_terms` of the last ``demonstration.rows`` rows of a batch: ``q_values`` (*lead, B, n_actions)
    and ``action`` (*lead, B) of the whole batch; the loss (*lead,) and the gradient of those rows
    (*lead, rows, n_actions)."""
    rows = demonstration.rows
    return large_margin_terms(q_values[..., -rows:, :], action[..., -rows:], demonstration.margin,
                              demonstration.weight)


class FusedDQNLoss:
    """Plain-tensor twin of a configured `DQNLoss` (categorical actions, TD(0) or n-step targets).

    Args:
        loss: the `DQNLoss` whose parameters, γ, loss function and double-DQN flag are used.
        q_network: the plain ``nn.Module`` inside the loss's value network (observation → Q-values).
        gamma: discount per step.
        munchausen: (α, τ, l0) of Munchausen DQN, or None for the DQN target (α = 0 is None).
    """

    def __init__(self, loss: DQNLoss, q_network: torch.nn.Module, gamma: float,
                 munchausen: Optional[tuple[float, float, float]] = None) -> None:
        if loss.loss_function not in ("smooth_l1", "l2"):
            raise ValueError(f"unsupported loss function {loss.loss_function!r}")
        self.gamma = float(gamma)
        self.munchausen = munchausen if munchausen is not None and munchausen[0] > 0 else None
        self.double_dqn = bool(loss.double_dqn)
        # the online forward covers s and s' only where the target reads Q(s') (double DQN without Munchausen)
        self.online_reads_next = online_reads_next(self.double_dqn, self.munchausen)
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
        self.dueling_head = bool(getattr(q_network, "dueling", False))
        self.quantiles = int(getattr(q_network, "quantiles", 0))  # N of a QR-DQN head; 0 = one Q-value per action
        self._online_layers = _relu_mlp_layers(q_network)
        self._target_layers = _relu_mlp_layers(self.target_network)

    @property
    def has_manual_gradients(self) -> bool:
        """True when the network is a ReLU MLP (plain or dueling, without quantiles), whose gradients
        `loss_and_gradients` writes itself."""
        return self._online_layers is not None

    def __call__(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        weights: Optional[torch.Tensor] = None,
        steps_to_next_obs: Optional[torch.Tensor] = None,
        demonstration: Optional[DemonstrationMargin] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (scalar, with grad to the online parameters) and td_error ((B,), detached); with
        ``demonstration``, plus the large-margin loss of the batch's last rows (on the mean of the quantiles
        for a quantile network)."""
        if self.quantiles:
            loss, td_error = quantile_loss(
                self.q_network, self.target_network, observation, action, next_observation, reward, terminated,
                gamma=self.gamma, double_dqn=self.double_dqn, munchausen=self.munchausen, weights=weights,
                steps_to_next_obs=steps_to_next_obs)
            if demonstration is not None and demonstration.rows:
                loss = loss + demonstration_terms(self.q_network(observation), action.reshape(-1), demonstration)[0]
            return loss, td_error
        n = observation.shape[0]
        if self.online_reads_next:  # one online forward over s and s' (rows of s' carry no gradient)
            q_both = self.q_network(torch.cat([observation, next_observation]))
            q_values, online_next = q_both[:n], q_both[n:].detach()
        else:
            q_values = self.q_network(observation)
        chosen = q_values.gather(-1, action.reshape(-1, 1)).squeeze(-1)
        with torch.no_grad():
            if self.munchausen is not None:
                target = self._munchausen_target(self.target_network, observation, next_observation, action, reward,
                                                 terminated, steps_to_next_obs)
            else:
                target_q = self.target_network(next_observation)
                target = self._target(target_q, online_next if self.online_reads_next else target_q, reward, terminated,
                                      steps_to_next_obs)
        if self.loss_function == "smooth_l1":
            elementwise = F.smooth_l1_loss(chosen, target, reduction="none")
        else:
            elementwise = F.mse_loss(chosen, target, reduction="none")
        if weights is not None:  # importance weights of prioritized replay: a weighted mean, as in TorchRL
            weights = weights.reshape(-1)
            loss = (elementwise * weights).sum() / weights.sum()
        else:
            loss = elementwise.mean()
        if demonstration is not None and demonstration.rows:
            loss = loss + demonstration_terms(q_values, action.reshape(-1), demonstration)[0]
        return loss, (chosen.detach() - target).pow(2)

    def _target(
        self,
        target_q: torch.Tensor,
        greedy_q: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        steps_to_next_obs: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """y = r + γ^k · (1 − terminated) · q_target(s', argmax_a greedy_q(s', a)), shape (B,); ``greedy_q``
        is the online network's Q(s') for double DQN, else ``target_q`` itself."""
        next_value = target_q.gather(-1, greedy_q.argmax(-1, keepdim=True)).squeeze(-1)
        discount = self.gamma if steps_to_next_obs is None else self.gamma ** steps_to_next_obs.reshape(-1)
        not_terminated = (~terminated.reshape(-1)).to(next_value.dtype)
        return reward.reshape(-1) + discount * not_terminated * next_value

    def _munchausen_target(
        self,
        target_network: Callable[[torch.Tensor], torch.Tensor],
        observation: torch.Tensor,
        next_observation: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        steps_to_next_obs: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Munchausen target (B,) from one target-network forward over s and s'."""
        n = observation.shape[0]
        target_both = target_network(torch.cat([observation, next_observation]))
        discount = self.gamma if steps_to_next_obs is None else self.gamma ** steps_to_next_obs.reshape(-1)
        return munchausen_target(target_both[:n], target_both[n:], action.reshape(-1), reward.reshape(-1),
                                 terminated.reshape(-1), discount, *self.munchausen)

    def loss_and_gradients(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        weights: Optional[torch.Tensor] = None,
        steps_to_next_obs: Optional[torch.Tensor] = None,
        demonstration: Optional[DemonstrationMargin] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Loss (scalar), td_error ((B,)) and the gradient of the loss for each online parameter (in the
        network's ``parameters()`` order), all without autograd. Needs `has_manual_gradients`.

        Per layer l with input a_{l-1} and output z_l = a_{l-1} W_lᵀ + b_l (a_l = relu(z_l) in the hidden
        layers): ∂L/∂q is zero except at the stored action, where it is ℓ'(q(s, a) − y) · w_i / Σw (w = 1
        without importance weights); ∂L/∂W_l = δ_lᵀ a_{l-1}, ∂L/∂b_l = Σ_i δ_l, δ_{l-1} = (δ_l W_l) ⊙ [a_{l-1} > 0].
        Only the rows of s carry gradient (the rows of s' feed the double-DQN argmax)."""
        if self._online_layers is None:
            raise ValueError("manual gradients need a ReLU MLP Q-network")
        n = observation.shape[0]
        with torch.no_grad():
            layers = effective_layers(self._online_layers, self.dueling_head)
            target_layers = effective_layers(self._target_layers, self.dueling_head)
            x = torch.cat([observation, next_observation]) if self.online_reads_next else observation
            activations = [x]
            for weight, bias in layers[:-1]:
                x = torch.addmm(bias, x, weight.t()).clamp_min_(0.0)
                activations.append(x)
            q_all = torch.addmm(layers[-1][1], x, layers[-1][0].t())
            action_column = action.reshape(-1, 1)
            chosen = q_all[:n].gather(-1, action_column).squeeze(-1)
            if self.munchausen is not None:
                target = self._munchausen_target(lambda x: _mlp_forward(target_layers, x), observation,
                                                 next_observation, action, reward, terminated, steps_to_next_obs)
            else:
                target_q = _mlp_forward(target_layers, next_observation)
                target = self._target(target_q, q_all[n:] if self.online_reads_next else target_q, reward, terminated,
                                      steps_to_next_obs)
            diff = chosen - target
            if self.loss_function == "smooth_l1":  # Huber with δ = 1: ½d² inside |d| < 1, |d| − ½ outside
                slope = diff.clamp(-1.0, 1.0)
                elementwise = torch.where(diff.abs() < 1.0, 0.5 * diff * diff, diff.abs() - 0.5)
            else:
                slope = 2.0 * diff
                elementwise = diff * diff
            share = weights.reshape(-1) / weights.sum() if weights is not None else torch.full_like(diff, 1.0 / n)
            loss = (elementwise * share).sum()
            delta = torch.zeros(n, q_all.shape[-1], dtype=q_all.dtype, device=q_all.device)
            delta.scatter_(-1, action_column, (slope * share).unsqueeze(-1))
            if demonstration is not None and demonstration.rows:
                margin_loss, margin_grad = demonstration_terms(q_all[:n], action.reshape(-1), demonstration)
                loss = loss + margin_loss
                delta[n - demonstration.rows:] += margin_grad
            grads: list[torch.Tensor] = []
            for index in range(len(layers) - 1, -1, -1):
                weight, _ = layers[index]
                layer_input = activations[index][:n]
                grads.append(delta.sum(0))  # bias
                grads.append(delta.t().mm(layer_input))  # weight
                if index:  # through the ReLU: zero where its output was 0 (autograd's own rule)
                    delta = torch.ops.aten.threshold_backward(delta.mm(weight), layer_input, 0.0)
            grads.reverse()  # weight, bias of the first layer first: the parameters() order
            if self.dueling_head:
                grads[-2:] = dueling_head_gradients(grads[-2], grads[-1])
            return loss, diff * diff, grads


def _relu_mlp_layers(network: torch.nn.Module) -> Optional[list[tuple[torch.Tensor, torch.Tensor]]]:
    """[(weight, bias), ...] of a `QNetwork` whose body is Linear / ReLU pairs, in ``parameters()`` order (a
    dueling network ends with its value head, then its advantage head), else None (and None for a quantile
    network)."""
    if getattr(network, "quantiles", 0):  # a quantile head (QR-DQN) has its own loss, on the autograd path
        return None
    body = getattr(network, "body", None)
    dueling = getattr(network, "dueling", None)
    heads = ([getattr(network, "value_head", None), getattr(network, "advantage_head", None)] if dueling
             else [getattr(network, "head", None)])
    if dueling is None or not isinstance(body, torch.nn.Sequential) or not all(
        isinstance(head, torch.nn.Linear) for head in heads
    ):
        return None
    modules = list(body)
    linears = modules[0::2]
    if len(modules) % 2 or not all(isinstance(m, torch.nn.Linear) for m in linears) or not all(
        isinstance(m, torch.nn.ReLU) for m in modules[1::2]
    ):
        return None
    layers = [(m.weight, m.bias) for m in [*linears, *heads]]
    if any(bias is None for _, bias in layers):
        return None
    return layers


def effective_layers(layers: list[tuple[torch.Tensor, torch.Tensor]], dueling: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The layers as a plain MLP: a dueling network's value and advantage heads (the last two) merged into the
    one linear layer they make, W_eff = W_A − mean_rows(W_A) + W_V, b_eff = b_A − mean(b_A) + b_V (module
    docstring). Works on stacked (K, …) tensors too."""
    if not dueling:
        return layers
    (value_weight, value_bias), (advantage_weight, advantage_bias) = layers[-2], layers[-1]
    weight = advantage_weight - advantage_weight.mean(dim=-2, keepdim=True) + value_weight
    bias = advantage_bias - advantage_bias.mean(dim=-1, keepdim=True) + value_bias
    return [*layers[:-2], (weight, bias)]


def dueling_head_gradients(weight_grad: torch.Tensor, bias_grad: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the value and advantage heads (weight, bias each, ``parameters()`` order) from the gradient
    of the merged head layer (`effective_layers`): Σ_rows G for V, G − mean_rows(G) for A (stacked (K, …) too)."""
    return [weight_grad.sum(dim=-2, keepdim=True), bias_grad.sum(dim=-1, keepdim=True),
            weight_grad - weight_grad.mean(dim=-2, keepdim=True), bias_grad - bias_grad.mean(dim=-1, keepdim=True)]


def _mlp_forward(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    for weight, bias in layers[:-1]:
        x = torch.addmm(bias, x, weight.t()).clamp_min_(0.0)
    return torch.addmm(layers[-1][1], x, layers[-1][0].t())
