"""The DQN pieces built from the config: Q-network heads, targets (double or not), loss functions,
target-network updates and schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torchrl.data import Categorical

from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.agent.qnet import QNetwork, parameter_count
from reservoir_rl.agent.schedules import linear_schedule, updates_due
from reservoir_rl.config import AgentConfig, TrainConfig

OBS, ACTIONS, BATCH = 5, 4, 24


def agent(**options):
    torch.manual_seed(0)
    agent_options = {k: v for k, v in options.items() if k in AgentConfig.model_fields}
    train_options = {k: v for k, v in options.items() if k in TrainConfig.model_fields}
    return make_agent(
        OBS, Categorical(ACTIONS), AgentConfig(hidden_sizes=[16, 16], **agent_options), TrainConfig(**train_options)
    )


def batch(seed: int = 1, steps: torch.Tensor | None = None) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    terminated = torch.rand(BATCH, 1, generator=g) < 0.25
    data = {
        "observation": torch.randn(BATCH, OBS, generator=g),
        "action": torch.randint(0, ACTIONS, (BATCH,), generator=g),
        "next": {
            "observation": torch.randn(BATCH, OBS, generator=g),
            "reward": torch.randn(BATCH, 1, generator=g),
            "terminated": terminated,
            "done": terminated | (torch.rand(BATCH, 1, generator=g) < 0.2),  # truncation still bootstraps
        },
    }
    if steps is not None:
        data["steps_to_next_obs"] = steps
    return TensorDict(data, batch_size=[BATCH])


def target_network(a) -> QNetwork:
    """A copy of the Q-network carrying the loss's target parameters."""
    copy = QNetwork(OBS, ACTIONS, [16, 16], "relu", a.q_network.dueling)
    params = a.loss.target_value_network_params.flatten_keys(".")
    copy.load_state_dict({k.removeprefix("module.0.module."): v.data for k, v in params.items()})
    return copy


def expected_td(a, data: TensorDict, gamma: float, double: bool, steps=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q(s, a), target) computed directly from the two networks."""
    online, target = a.q_network, target_network(a)
    with torch.no_grad():
        q = online(data["observation"]).gather(-1, data["action"].unsqueeze(-1)).squeeze(-1)
        next_obs = data["next", "observation"]
        chooser = online if double else target
        best = chooser(next_obs).argmax(-1, keepdim=True)
        bootstrap = target(next_obs).gather(-1, best).squeeze(-1)
        discount = gamma if steps is None else gamma ** steps.reshape(-1).double()
        y = data["next", "reward"].squeeze(-1) + discount * (~data["next", "terminated"].squeeze(-1)) * bootstrap
    return q, y.float()


def desync_target(a) -> None:
    """Move the online weights away from the target so double and plain DQN targets differ."""
    with torch.no_grad():
        for p in a.q_network.parameters():
            p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("loss", ["smooth_l1", "l2"])
def test_loss_and_td_error_match_the_dqn_formula(double: bool, loss: str) -> None:
    a = agent(double_dqn=double, loss=loss, gamma=0.9)
    desync_target(a)
    data = batch()
    out = a.loss(data)["loss"]
    q, y = expected_td(a, data, 0.9, double)
    elementwise = F.smooth_l1_loss(q, y, reduction="none") if loss == "smooth_l1" else (q - y) ** 2
    assert float(out.detach()) == pytest.approx(float(elementwise.mean()), rel=1e-5)
    assert torch.allclose(data["td_error"].reshape(-1), (q - y) ** 2, rtol=1e-5, atol=1e-6)


def test_double_dqn_changes_the_target() -> None:
    plain, double = agent(double_dqn=False), agent(double_dqn=True)
    desync_target(plain)
    desync_target(double)
    a, b = batch(), batch()
    plain.loss(a)
    double.loss(b)
    assert not torch.allclose(a["td_error"], b["td_error"])


def test_n_step_transitions_discount_the_bootstrap_by_gamma_to_the_steps() -> None:
    a = agent(gamma=0.8)
    desync_target(a)
    steps = torch.randint(1, 4, (BATCH, 1))
    data = batch(steps=steps)
    a.loss(data)
    q, y = expected_td(a, data, 0.8, True, steps)
    assert torch.allclose(data["td_error"].reshape(-1), (q - y) ** 2, rtol=1e-5, atol=1e-6)


def test_prioritized_weights_make_a_weighted_loss() -> None:
    a = agent(loss="l2")
    data = batch()
    weights = torch.linspace(0.2, 1.0, BATCH)
    data.set("priority_weight", weights)
    out = a.loss(data)["loss"]
    q, y = expected_td(a, data, 0.99, True)
    assert float(out.detach()) == pytest.approx(float(((q - y) ** 2 * weights).sum() / weights.sum()), rel=1e-5)


def online_params(a) -> list[torch.Tensor]:
    return [p.detach().clone() for p in a.q_network.parameters()]


def target_params(a) -> list[torch.Tensor]:
    return [p.detach().clone() for p in target_network(a).parameters()]


@pytest.mark.parametrize("step", ["updater", "agent"])
def test_hard_update_copies_after_every_period_updates(step) -> None:
    """TorchRL's HardUpdate as configured, and the agent's shortcut that skips its no-op steps."""
    a = agent(target_update="hard", target_update_period=3)
    copies = []
    for update in range(1, 8):
        desync_target(a)  # stands for an optimizer step
        a.target_updater.step() if step == "updater" else a.step_target()
        copies.append(all(torch.equal(o, t) for o, t in zip(online_params(a), target_params(a))))
    assert copies == [False, False, True, False, False, True, False]


def test_soft_update_moves_the_target_by_tau() -> None:
    a = agent(target_update="soft", tau=0.1)
    before = target_params(a)
    desync_target(a)
    online = online_params(a)
    a.step_target()
    for old, new, o in zip(before, target_params(a), online):
        assert torch.allclose(new, 0.9 * old + 0.1 * o, atol=1e-6)


def test_dueling_head_is_value_plus_centred_advantage() -> None:
    torch.manual_seed(0)
    net = QNetwork(OBS, ACTIONS, [16], dueling=True)
    x = torch.randn(7, OBS)
    q = net(x)
    features = net.body(x)
    value = net.value_head(features)
    advantage = net.advantage_head(features)
    assert torch.allclose(q, value + advantage - advantage.mean(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(q.mean(-1, keepdim=True), value, atol=1e-6)
    assert parameter_count(net) == (OBS * 16 + 16) + (16 + 1) + (16 * ACTIONS + ACTIONS)
    plain = QNetwork(OBS, ACTIONS, [16, 8], activation="tanh")
    assert plain(x).shape == (7, ACTIONS) and isinstance(plain.body[1], torch.nn.Tanh)


def test_exploration_and_learning_rate_are_set_in_place() -> None:
    a = agent()
    a.set_epsilon(0.25)
    a.set_learning_rate(3e-4)
    assert float(a.explore_policy.eps) == 0.25
    assert [g["lr"] for g in a.optimizer.param_groups] == [3e-4]
    a.set_epsilon(0.0)
    obs = TensorDict({"observation": torch.randn(50, OBS)}, batch_size=[50])
    explored = a.explore_policy(obs.clone())
    greedy = a.actor(obs.clone())
    assert torch.equal(explored["action"], greedy["action"])  # ε = 0: the greedy action


def test_schedules_are_in_absolute_frames() -> None:
    assert linear_schedule(0, 1.0, 0.1, 100) == 1.0
    assert linear_schedule(50, 1.0, 0.1, 100) == pytest.approx(0.55)
    assert linear_schedule(100, 1.0, 0.1, 100) == pytest.approx(0.1)
    assert linear_schedule(10_000, 1.0, 0.1, 100) == pytest.approx(0.1)  # stays at the end value
    assert updates_due(99, 100, 0.25) == 0  # random warm-up: no updates
    assert updates_due(100, 100, 0.25) == 0
    assert updates_due(164, 100, 0.25) == 16
    assert updates_due(164, 100, 2.0) == 128  # several updates per frame


def test_the_lean_greedy_policy_writes_what_the_q_value_actor_writes() -> None:
    """`GreedyQPolicy` (the in-training evaluation's policy) equals TorchRL's `QValueActor` on the same
    network, ties included, and draws no random numbers."""
    from reservoir_rl.agent.dqn import GreedyQPolicy

    agent = make_agent(13, Categorical(11), AgentConfig(hidden_sizes=[16]), TrainConfig())
    observation = torch.randn(10, 13)
    observation[3] = observation[2]  # two identical rows
    with torch.no_grad():
        expected = agent.actor(TensorDict({"observation": observation.clone()}, batch_size=[10]))
        state = torch.get_rng_state()
        got = GreedyQPolicy(agent.q_network)(TensorDict({"observation": observation.clone()}, batch_size=[10]))
        assert torch.equal(torch.get_rng_state(), state)
    for key in ("action", "action_value", "chosen_action_value"):
        assert torch.equal(got[key], expected[key]), key
    assert got["action"].dtype == torch.int64 and got["action"].shape == (10,)
    tied = GreedyQPolicy(torch.nn.Identity())(TensorDict({"observation": torch.tensor([[1.0, 3.0, 3.0]])}, [1]))
    assert tied["action"].tolist() == [1]  # the first of equal values, as argmax
