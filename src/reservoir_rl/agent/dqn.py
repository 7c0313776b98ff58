"""The DQN pieces from TorchRL: Q-value actor, ε-greedy exploration, loss, target updater, replay buffer.

Tensordict keys: the actor reads ``observation`` (float32, (*batch, obs_size)) and writes ``action``
(int64 release level, (*batch,)), ``action_value`` ((*batch, n_actions)) and ``chosen_action_value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Categorical, TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, HardUpdate, SoftUpdate, ValueEstimators

from reservoir_rl.agent.fused import DemonstrationMargin, FusedDQNLoss
from reservoir_rl.agent.qnet import QNetwork
from reservoir_rl.agent.replay import make_replay_buffer  # noqa: F401  (re-exported: one import for the pieces)
from reservoir_rl.config import AgentConfig, TrainConfig

# Keys a transition needs for the DQN target; everything else stays out of the replay buffer.
TRANSITION_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "done"),
    ("next", "terminated"),
)

# what an update reads of a stored transition ("steps_to_next_obs": n-step transitions only)
SAMPLE_KEYS = ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "terminated"),
               "steps_to_next_obs")


class EpsilonGreedyQPolicy(TensorDictModuleBase):
    """ε-greedy over a Q-network in one TensorDict module, for collection.

    Computes what ``TensorDictSequential(QValueActor(q_network), EGreedyModule(spec))`` computes — the
    greedy release level, replaced with probability ε by a uniformly random one — with one module call
    instead of four. Reads ``observation`` (float32, (*batch, obs_size)); writes ``action`` (int64,
    (*batch,)), ``action_value`` ((*batch, n_actions)) and ``chosen_action_value`` ((*batch, 1), of the
    action taken). Under ``set_exploration_type(DETERMINISTIC)`` it is greedy. ``eps`` is a buffer set in
    place (`DQNAgent.set_epsilon`); random draws use the global torch generator.
    """

    in_keys = ["observation"]
    out_keys = ["action", "action_value", "chosen_action_value"]

    def __init__(self, q_network: torch.nn.Module, n_actions: int, eps: float = 1.0) -> None:
        super().__init__()
        self.q_network = q_network
        self.n_actions = int(n_actions)
        self.register_buffer("eps", torch.tensor(float(eps)))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action_value = self.q_network(tensordict.get("observation"))
        action = action_value.argmax(-1)
        if exploration_type() in (ExplorationType.RANDOM, None):
            explore = torch.rand(action.shape, device=action.device) < self.eps
            random_action = torch.randint(self.n_actions, action.shape, device=action.device)
            action = torch.where(explore, random_action, action)
        tensordict.set("action", action)
        tensordict.set("action_value", action_value)
        tensordict.set("chosen_action_value", action_value.gather(-1, action.unsqueeze(-1)))
        return tensordict


class GreedyQPolicy(TensorDictModuleBase):
    """The greedy policy of a Q-network in one TensorDict module, for evaluation rollouts.

    Computes what ``QValueActor(q_network)`` computes — ``action`` (int64, (*batch,)), the argmax of
    ``action_value`` ((*batch, n_actions)), and ``chosen_action_value`` ((*batch, 1)) — from ``observation``
    without its module chain (about a third of its per-call cost on a 10-reservoir evaluation step).
    Draws no random numbers."""

    in_keys = ["observation"]
    out_keys = ["action", "action_value", "chosen_action_value"]

    def __init__(self, q_network: torch.nn.Module) -> None:
        super().__init__()
        self.q_network = q_network

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action_value = self.q_network(tensordict.get("observation"))
        action = action_value.argmax(-1)
        tensordict.set("action", action)
        tensordict.set("action_value", action_value)
        tensordict.set("chosen_action_value", action_value.gather(-1, action.unsqueeze(-1)))
        return tensordict


@dataclass
class DQNAgent:
    """The pieces of a DQN agent. ``loss`` is TorchRL's `DQNLoss` (it owns the online and target parameters
    that the optimizer and the target updater act on); ``fused_loss`` computes the same loss from plain
    tensors on those parameters, which is what the training loop calls."""

    q_network: QNetwork
    actor: QValueActor  # greedy policy (evaluation)
    explore_policy: EpsilonGreedyQPolicy  # ε-greedy policy (collection)
    loss: DQNLoss
    fused_loss: FusedDQNLoss
    target_updater: HardUpdate | SoftUpdate
    optimizer: torch.optim.Optimizer

    def set_epsilon(self, epsilon: float) -> None:
        self.explore_policy.eps.fill_(epsilon)

    def gradient_step(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        *,
        max_grad_norm: float,
        weights: Optional[torch.Tensor] = None,
        steps_to_next_obs: Optional[torch.Tensor] = None,
        demonstration: Optional[DemonstrationMargin] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DQN update on a replay batch: fused loss, backward, gradient-norm clipping, Adam, target
        update. Shapes as in `FusedDQNLoss`; ``demonstration``: the batch's last rows are a teacher's, with
        DQfD's large-margin loss. Returns the loss (scalar), the gradient norm before clipping
        (scalar) and the squared TD errors ((B,)), all detached; nothing is synchronised with the device.

        The default ReLU MLP gets its gradients from `FusedDQNLoss.loss_and_gradients` (no autograd graph);
        other networks from ``backward()``. Clipping is ``torch.nn.utils.clip_grad_norm_``'s rule (scale
        every gradient by min(1, max_norm / (‖g‖ + 1e-6))) in a few tensor operations."""
        if self.fused_loss.has_manual_gradients:  # the default ReLU MLP: gradients without autograd
            loss, td_error_squared, grads = self.fused_loss.loss_and_gradients(
                observation, action, next_observation, reward, terminated,
                weights=weights, steps_to_next_obs=steps_to_next_obs, demonstration=demonstration,
            )
            for param, grad in zip(self._network_params, grads):
                param.grad = grad
        else:
            loss, td_error_squared = self.fused_loss(
                observation, action, next_observation, reward, terminated,
                weights=weights, steps_to_next_obs=steps_to_next_obs, demonstration=demonstration,
            )
            for param in self._trainable:
                param.grad = None
            loss.backward()
            grads = [param.grad for param in self._trainable]
        grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, (max_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0))
        self.optimizer_step()
        self.step_target()
        return loss.detach(), grad_norm, td_error_squared

    def optimizer_step(self) -> None:
        """``optimizer.step()``. For the fused single-group Adam that `make_agent` builds, once its state
        exists, the step calls the fused kernel directly — exactly what ``Adam.step`` runs (step counts + 1,
        then ``torch._fused_adam_``) without its per-call bookkeeping, which costs more than the kernel on
        these small networks. The state stays in ``optimizer.state`` (checkpoints are unchanged)."""
        optimizer = self.optimizer
        groups = optimizer.param_groups
        group = groups[0]
        if not (
            isinstance(optimizer, torch.optim.Adam) and len(groups) == 1 and group["fused"] and not group["amsgrad"]
            and not group["maximize"] and not group["differentiable"] and not group.get("decoupled_weight_decay")
        ):
            optimizer.step()
            return
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        state = optimizer.state
        for param in group["params"]:
            if param.grad is None:
                continue
            param_state = state.get(param)
            if not param_state:  # the first step creates the state
                optimizer.step()
                return
            params.append(param)
            grads.append(param.grad)
            exp_avgs.append(param_state["exp_avg"])
            exp_avg_sqs.append(param_state["exp_avg_sq"])
            steps.append(param_state["step"])
        if not params:
            return
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
            beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )

    @property
    def _network_params(self) -> list[torch.nn.Parameter]:
        params = self.__dict__.get("_network_params_list")
        if params is None:
            params = self.__dict__["_network_params_list"] = list(self.q_network.parameters())
        return params

    @property
    def _trainable(self) -> list[torch.nn.Parameter]:
        params = self.__dict__.get("_trainable_params")
        if params is None:
            params = self.__dict__["_trainable_params"] = [p for p in self.loss.parameters() if p.requires_grad]
        return params

    def step_target(self) -> None:
        """Advance the target updater by one gradient update (`HardUpdate` copies every period,
        `SoftUpdate` moves the target every update). Between two hard copies only `HardUpdate`'s counter
        moves, so that step is taken without walking the parameters."""
        updater = self.target_updater
        if isinstance(updater, HardUpdate) and updater.initialized and (
            updater.counter != updater.value_network_update_interval
        ):
            updater.counter += 1
        else:
            updater.step()

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def make_agent(
    obs_size: int,
    action_spec: TensorSpec,
    agent_config: AgentConfig,
    train_config: TrainConfig,
    device: torch.device | str = "cpu",
) -> DQNAgent:
    """Q-network, greedy actor, ε-greedy policy, DQN loss, target updater and Adam from the config."""
    n_actions = int(action_spec.space.n)
    action_spec = Categorical(n_actions, dtype=torch.int64, device=device)  # per-sample spec
    q_network = QNetwork(
        obs_size, n_actions, agent_config.hidden_sizes, agent_config.activation, agent_config.dueling,
        quantiles=agent_config.distributional_quantiles,
    ).to(device)
    actor = QValueActor(q_network, in_keys=["observation"], spec=action_spec, action_space="categorical")
    loss = DQNLoss(
        actor,
        loss_function=agent_config.loss,
        delay_value=True,
        double_dqn=agent_config.double_dqn,
        action_space="categorical",
    )
    # TD(0) target r + γ^m (1 − terminated) Q_target(s', ·); m = "steps_to_next_obs" for n-step transitions
    # (see agent/nstep.py), so truncation at the horizon still bootstraps.
    loss.make_value_estimator(ValueEstimators.TD0, gamma=agent_config.gamma)
    if train_config.target_update == "hard":
        # TorchRL's HardUpdate copies when its counter *equals* the interval, i.e. every interval + 1 steps:
        # interval = period − 1 copies the online weights after every ``target_update_period`` updates.
        target_updater = HardUpdate(loss, value_network_update_interval=train_config.target_update_period - 1)
    else:
        target_updater = SoftUpdate(loss, tau=train_config.tau)
    # fused Adam: one kernel per parameter tensor (CPU and CUDA), the largest saving of the update after
    # the fused loss; numerically Adam.
    optimizer = torch.optim.Adam(loss.parameters(), lr=train_config.lr, fused=True)
    return DQNAgent(
        q_network=q_network,
        actor=actor,
        explore_policy=EpsilonGreedyQPolicy(q_network, n_actions, eps=train_config.eps_start).to(device),
        loss=loss,
        fused_loss=FusedDQNLoss(loss, q_network, agent_config.gamma, munchausen=(
            agent_config.munchausen_alpha, agent_config.munchausen_tau, agent_config.munchausen_clip)),
        target_updater=target_updater,
        optimizer=optimizer,
    )
