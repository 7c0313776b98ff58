"""The DQN pieces from TorchRL: Q-value actor, ε-greedy exploration, loss, target updater, replay buffer.

Tensordict keys: the actor reads ``observation`` (float32, (*batch, obs_size)) and writes ``action``
(int64 release level, (*batch,)), ``action_value`` ((*batch, n_actions)) and ``chosen_action_value``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict.nn import TensorDictSequential
from torchrl.data import Categorical, TensorSpec
from torchrl.modules import EGreedyModule, QValueActor
from torchrl.objectives import DQNLoss, HardUpdate, SoftUpdate, ValueEstimators

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


@dataclass
class DQNAgent:
    q_network: QNetwork
    actor: QValueActor  # greedy policy
    egreedy: EGreedyModule
    explore_policy: TensorDictSequential  # actor followed by ε-greedy
    loss: DQNLoss
    target_updater: HardUpdate | SoftUpdate
    optimizer: torch.optim.Optimizer

    def set_epsilon(self, epsilon: float) -> None:
        self.egreedy.eps.fill_(epsilon)

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
        obs_size, n_actions, agent_config.hidden_sizes, agent_config.activation, agent_config.dueling
    ).to(device)
    actor = QValueActor(q_network, in_keys=["observation"], spec=action_spec, action_space="categorical")
    egreedy = EGreedyModule(
        action_spec, eps_init=float(train_config.eps_start), eps_end=float(train_config.eps_end),
        annealing_num_steps=train_config.eps_decay_frames, device=device,
    )
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
    optimizer = torch.optim.Adam(loss.parameters(), lr=train_config.lr)
    return DQNAgent(
        q_network=q_network,
        actor=actor,
        egreedy=egreedy,
        explore_policy=TensorDictSequential(actor, egreedy),
        loss=loss,
        target_updater=target_updater,
        optimizer=optimizer,
    )
