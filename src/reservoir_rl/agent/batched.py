"""K DQN agents updated as one batched computation: stacked parameters, target parameters and Adam states.

`StackedDQNAgents` takes K agents built by `make_agent` from one config (different seeds) and moves each
of their per-layer tensors into a stacked tensor with a leading seed dimension: layer l's online weights
of all seeds live in one (K, out, in) tensor, and each agent's own ``nn.Parameter`` becomes the view
``stacked[k]`` of it (same Python object, so the agent's loss, actor, optimizer, target updater and
``state_dict`` see the same numbers as before). Likewise for the target network and, after the first
update, for Adam's ``exp_avg`` / ``exp_avg_sq`` (one ``step`` tensor per layer, shared by the K seeds,
which update in lock step). Each agent stays a complete `DQNAgent`: its checkpoint is that of a
single run, and it acts (collection, evaluation) on its own.

`StackedDQNAgents.gradient_step` computes, for every seed at once, what `DQNAgent.gradient_step`
computes for one (`FusedDQNLoss.loss_and_gradients`, clipping, fused Adam, target update), with
``baddbmm`` / ``bmm`` in place of ``addmm`` / ``mm``. Every operation is the single-seed operation with
a leading dimension, so seed k's numbers do not depend on the other seeds; `tests/agent/test_batched.py`
checks them bitwise against K single-agent updates (CPU float32).

Networks without manual gradients (tanh / elu) are updated seed by seed with
`DQNAgent.gradient_step` (the same results, without the batching gain).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs.utils import ExplorationType, exploration_type

from reservoir_rl.agent.dqn import DQNAgent
from reservoir_rl.agent.fused import DemonstrationMargin, demonstration_terms, dueling_head_gradients, effective_layers
from reservoir_rl.agent.munchausen import munchausen_target


def _rebind(tensors: Sequence[torch.Tensor], aliases: Sequence[dict[int, list[torch.Tensor]]] = ()) -> torch.Tensor:
    """Stack ``tensors`` (one per seed, same shape) into a (K, ...) tensor and make each one its view, and
    with it every tensor of ``aliases[k]`` (seed k's tensors by data pointer) that shares its memory."""
    stacked = torch.stack([tensor.detach() for tensor in tensors])
    for k, tensor in enumerate(tensors):
        for alias in (aliases[k].get(tensor.data_ptr(), []) if aliases else []):
            if alias is not tensor and alias.shape == tensor.shape:
                alias.data = stacked[k]
        tensor.data = stacked[k]
    return stacked


def _parameter_aliases(agent: DQNAgent) -> dict[int, list[torch.Tensor]]:
    """The tensor objects through which an agent's loss and target updater reach its online and target
    parameters, by data pointer (TorchRL keeps several objects sharing one memory: the ``nn.Parameter``,
    the ``.data`` tensors of the target updater's sources and targets)."""
    found: dict[int, list[torch.Tensor]] = {}
    groups = [agent.loss.value_network_params, agent.loss.target_value_network_params]
    updater = agent.target_updater
    groups += [updater._sources, updater._targets] if getattr(updater, "initialized", False) else []
    for group in groups:
        for tensor in group.values(True, True):
            found.setdefault(tensor.data_ptr(), []).append(tensor)
    return found


class StackedDQNAgents:
    """The batched update of K agents of one config (see the module docstring).

    Args:
        agents: K agents from `make_agent` with the same network, loss and optimizer settings.
    """

    def __init__(self, agents: Sequence[DQNAgent]) -> None:
        if not agents:
            raise ValueError("no agents to stack")
        self.agents = list(agents)
        self.batched = all(agent.fused_loss.has_manual_gradients for agent in self.agents)
        self._adam_stacked = False
        self.online: list[torch.Tensor] = []
        self.target: list[torch.Tensor] = []
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []
        self.steps: list[torch.Tensor] = []
        if self.batched:
            self.restack()

    @property
    def size(self) -> int:
        return len(self.agents)

    # ------------------------------------------------------------------ stacking
    def restack(self) -> None:
        """(Re)build the stacked tensors from the agents' current tensors and make those views of them.

        Call after anything replaced an agent's tensors instead of writing into them (loading an optimizer
        state does). Adam's state is stacked once it exists (after the first update or a load)."""
        if not self.batched:
            return
        fused = [agent.fused_loss for agent in self.agents]
        n_layers = len(fused[0]._online_layers)
        aliases = [_parameter_aliases(agent) for agent in self.agents]
        self.online, self.target = [], []
        for layer in range(n_layers):
            for which in (0, 1):  # weight, bias: the parameters() order
                self.online.append(_rebind([f._online_layers[layer][which] for f in fused], aliases))
                self.target.append(_rebind([f._target_layers[layer][which] for f in fused], aliases))
        self._adam_stacked = False
        self._stack_adam()

    def _stack_adam(self) -> None:
        states = [agent.optimizer.state for agent in self.agents]
        params = [agent._network_params for agent in self.agents]
        if not all(all(state.get(p) for p in ps) for state, ps in zip(states, params)):
            return  # no Adam state yet: the first update creates it
        self.exp_avg, self.exp_avg_sq, self.steps = [], [], []
        for index in range(len(params[0])):
            per_seed = [state[ps[index]] for state, ps in zip(states, params)]
            steps = [entry["step"] for entry in per_seed]
            if any(not torch.equal(step, steps[0]) for step in steps):
                raise ValueError("the agents' Adam step counts differ: they cannot be updated in lock step")
            self.exp_avg.append(_rebind([entry["exp_avg"] for entry in per_seed]))
            self.exp_avg_sq.append(_rebind([entry["exp_avg_sq"] for entry in per_seed]))
            for entry in per_seed:  # one step tensor per layer, shared by the seeds
                entry["step"] = steps[0]
            self.steps.append(steps[0])
        # the per-seed views Adam's kernel is called with, layer by layer (params, exp_avg, exp_avg_sq, steps)
        self._adam_views = (
            [view for t in self.online for view in t.unbind(0)],
            [view for t in self.exp_avg for view in t.unbind(0)],
            [view for t in self.exp_avg_sq for view in t.unbind(0)],
            [step for step in self.steps for _ in range(self.size)],
        )
        self._adam_stacked = True

    def q_values(self, observation: torch.Tensor) -> torch.Tensor:
        """Q-values (K, B, n_actions) of the K online networks on (K, B, obs_size) observations (ReLU MLPs
        with manual gradients only: `batched`)."""
        return _batched_mlp_forward(effective_layers(_layer_pairs(self.online), self.agents[0].fused_loss.dueling_head),
                                    observation)

    # ------------------------------------------------------------------ the update
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
        """One DQN update of every seed on its own replay batch (``demonstration``: the large-margin loss on
        the last rows of every seed's batch, `FusedDQNLoss`).

        Shapes: observation / next_observation (K, B, obs_size) float32, action (K, B) int64, reward /
        terminated (K, B, 1) or (K, B), weights and steps_to_next_obs (K, B) or None. Returns the loss (K,),
        the gradient norm before clipping (K,) and the squared TD errors (K, B), all detached."""
        if not self.batched:
            results = [
                agent.gradient_step(
                    observation[k], action[k], next_observation[k], reward[k], terminated[k],
                    max_grad_norm=max_grad_norm,
                    weights=None if weights is None else weights[k],
                    steps_to_next_obs=None if steps_to_next_obs is None else steps_to_next_obs[k],
                    demonstration=demonstration,
                )
                for k, agent in enumerate(self.agents)
            ]
            return tuple(torch.stack([r[i] for r in results]) for i in range(3))  # type: ignore[return-value]
        loss, td_error_squared, grads = self._loss_and_gradients(
            observation, action, next_observation, reward, terminated, weights, steps_to_next_obs, demonstration
        )
        k_seeds = self.size
        # clip_grad_norm_'s rule per seed, with the single-seed operations: a norm per (seed, tensor), then
        # the norm of each seed's tensor norms
        per_layer = [grad.unbind(0) for grad in grads]
        norms = torch._foreach_norm([views[k] for k in range(k_seeds) for views in per_layer])
        grad_norm = torch.linalg.vector_norm(torch.stack(norms).view(k_seeds, len(grads)), dim=1)
        scale = (max_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0)
        for grad in grads:
            grad.mul_(scale.view(-1, *([1] * (grad.ndim - 1))))
        self._adam_step(grads)
        for agent in self.agents:
            agent.step_target()
        return loss, grad_norm, td_error_squared

    def _adam_step(self, grads: list[torch.Tensor]) -> None:
        """Adam on the stacked parameters (one fused kernel per layer tensor, all seeds); the very first
        update goes through each agent's own optimizer, which creates the state that is then stacked."""
        if not self._adam_stacked:
            for k, agent in enumerate(self.agents):
                for param, grad in zip(agent._network_params, grads):
                    param.grad = grad[k]
                agent.optimizer_step()
                for param in agent._network_params:
                    param.grad = None
            self._stack_adam()
            return
        group = self.agents[0].optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(self.steps, 1)
        # one kernel call over the K × L per-seed views: the fused kernel treats every tensor on its own, as
        # for a single seed (over a whole stacked tensor its vectorised and scalar paths would split the
        # seeds differently and change the last bit of some moments)
        torch._fused_adam_(
            self._adam_views[0], [view for grad in grads for view in grad.unbind(0)], self._adam_views[1],
            self._adam_views[2], [], self._adam_views[3], amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )

    def _loss_and_gradients(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        weights: Optional[torch.Tensor],
        steps_to_next_obs: Optional[torch.Tensor],
        demonstration: Optional[DemonstrationMargin] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """`FusedDQNLoss.loss_and_gradients` with a leading seed dimension: loss (K,), td_error (K, B) and
        the stacked gradients in the order of `online`."""
        fused = self.agents[0].fused_loss
        k_seeds, n = observation.shape[0], observation.shape[1]
        with torch.no_grad():
            online = effective_layers(_layer_pairs(self.online), fused.dueling_head)
            target_layers = effective_layers(_layer_pairs(self.target), fused.dueling_head)
            x = torch.cat([observation, next_observation], dim=1) if fused.online_reads_next else observation
            activations = [x]
            for weight, bias in online[:-1]:
                x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)).clamp_min_(0.0)
                activations.append(x)
            q_all = torch.baddbmm(online[-1][1].unsqueeze(1), x, online[-1][0].transpose(1, 2))
            action_column = action.reshape(k_seeds, -1, 1)
            chosen = q_all[:, :n].gather(-1, action_column).squeeze(-1)
            discount = fused.gamma if steps_to_next_obs is None else fused.gamma ** steps_to_next_obs.reshape(k_seeds, -1)
            if fused.munchausen is not None:
                target_both = _batched_mlp_forward(target_layers, torch.cat([observation, next_observation], dim=1))
                target = munchausen_target(target_both[:, :n], target_both[:, n:], action.reshape(k_seeds, -1),
                                           reward.reshape(k_seeds, -1), terminated.reshape(k_seeds, -1), discount,
                                           *fused.munchausen)
            else:
                target_q = _batched_mlp_forward(target_layers, next_observation)
                greedy_q = q_all[:, n:] if fused.online_reads_next else target_q
                next_value = target_q.gather(-1, greedy_q.argmax(-1, keepdim=True)).squeeze(-1)
                not_terminated = (~terminated.reshape(k_seeds, -1)).to(next_value.dtype)
                target = reward.reshape(k_seeds, -1) + discount * not_terminated * next_value
            diff = chosen - target
            if fused.loss_function == "smooth_l1":
                slope = diff.clamp(-1.0, 1.0)
                elementwise = torch.where(diff.abs() < 1.0, 0.5 * diff * diff, diff.abs() - 0.5)
            else:
                slope = 2.0 * diff
                elementwise = diff * diff
            if weights is not None:
                weights = weights.reshape(k_seeds, -1)
                share = weights / weights.sum(-1, keepdim=True)
            else:
                share = torch.full_like(diff, 1.0 / n)
            loss = (elementwise * share).sum(-1)
            delta = torch.zeros(k_seeds, n, q_all.shape[-1], dtype=q_all.dtype, device=q_all.device)
            delta.scatter_(-1, action_column, (slope * share).unsqueeze(-1))
            if demonstration is not None and demonstration.rows:
                margin_loss, margin_grad = demonstration_terms(q_all[:, :n], action.reshape(k_seeds, -1), demonstration)
                loss = loss + margin_loss
                delta[:, n - demonstration.rows:] += margin_grad
            grads: list[torch.Tensor] = []
            for index in range(len(online) - 1, -1, -1):
                weight, _ = online[index]
                layer_input = activations[index][:, :n]
                grads.append(delta.sum(1))  # bias
                grads.append(torch.bmm(delta.transpose(1, 2), layer_input))  # weight
                if index:
                    delta = torch.ops.aten.threshold_backward(torch.bmm(delta, weight), layer_input, 0.0)
            grads.reverse()
            if fused.dueling_head:
                grads[-2:] = dueling_head_gradients(grads[-2], grads[-1])
            return loss, diff * diff, grads


class StackedExplorePolicy(TensorDictModuleBase):
    """The ε-greedy policies of K stacked agents as one module over K blocks of ``block_size`` rows.

    Reads ``observation`` (float32, (K·block_size, obs_size)): rows k·block_size … (k + 1)·block_size − 1
    are seed k's. Writes what `EpsilonGreedyQPolicy` writes (``action``, ``action_value``,
    ``chosen_action_value``), block k from agent k: its Q-values (one batched forward of the K networks),
    its ε (``agents[k].explore_policy.eps``) and its random draws from ``generators[k]`` — the calls
    `EpsilonGreedyQPolicy` makes on a batch of block_size rows, in the same order, so block k gets the
    actions agent k's own policy would take with that generator as the global torch stream.

    The batched forward (``baddbmm``) is used only when it gives, on this machine, bitwise the Q-values
    of each network on its own for this block size (checked once, on a probe batch: BLAS picks its
    kernel by shape, and for a few rows it picks one whose rounding differs); otherwise each seed's
    network runs on its rows."""

    in_keys = ["observation"]
    out_keys = ["action", "action_value", "chosen_action_value"]

    def __init__(self, stacked: "StackedDQNAgents", block_size: int, generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        self.stacked = stacked
        self.block_size = int(block_size)
        self.generators = list(generators)
        if len(self.generators) != stacked.size:
            raise ValueError(f"{stacked.size} agents need {stacked.size} generators, got {len(self.generators)}")
        self.n_actions = stacked.agents[0].explore_policy.n_actions
        self.batched_forward = stacked.batched and self._batched_forward_is_exact()

    def _batched_forward_is_exact(self) -> bool:
        agents = self.stacked.agents
        obs_size = self.stacked.online[0].shape[-1]
        probe = torch.linspace(-2.0, 2.0, len(agents) * self.block_size * obs_size,
                               device=self.stacked.online[0].device).reshape(len(agents), self.block_size, obs_size)
        with torch.no_grad():
            batched = self.stacked.q_values(probe)
            return all(torch.equal(agent.q_network(probe[k]), batched[k]) for k, agent in enumerate(agents))

    def q_values(self, observation: torch.Tensor) -> torch.Tensor:
        """(K, block_size, n_actions) Q-values of (K, block_size, obs_size) observations."""
        if self.batched_forward:
            return self.stacked.q_values(observation)
        return torch.stack([agent.q_network(observation[k]) for k, agent in enumerate(self.stacked.agents)])

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        observation = tensordict.get("observation")
        k_seeds, n = self.stacked.size, self.block_size
        with torch.no_grad():
            action_value = self.q_values(observation.reshape(k_seeds, n, observation.shape[-1]))
        action = action_value.argmax(-1)
        if exploration_type() in (ExplorationType.RANDOM, None):
            device = action.device
            blocks = []
            for k, (agent, generator) in enumerate(zip(self.stacked.agents, self.generators)):
                explore = torch.rand((n,), generator=generator, device=device) < agent.explore_policy.eps
                random_action = torch.randint(self.n_actions, (n,), generator=generator, device=device)
                blocks.append(torch.where(explore, random_action, action[k]))
            action = torch.stack(blocks)
        action_value = action_value.reshape(k_seeds * n, -1)
        action = action.reshape(k_seeds * n)
        tensordict.set("action", action)
        tensordict.set("action_value", action_value)
        tensordict.set("chosen_action_value", action_value.gather(-1, action.unsqueeze(-1)))
        return tensordict


def _layer_pairs(stacked: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(weight, bias), ...] of a list of stacked tensors in ``parameters()`` order (weight, bias per layer)."""
    return list(zip(stacked[0::2], stacked[1::2]))


def _batched_mlp_forward(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """Q-values (K, B, n_actions) of K stacked ReLU MLPs on x (K, B, obs_size)."""
    for weight, bias in layers[:-1]:
        x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)).clamp_min_(0.0)
    return torch.baddbmm(layers[-1][1].unsqueeze(1), x, layers[-1][0].transpose(1, 2))
