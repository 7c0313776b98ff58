"""The fused plain-tensor DQN loss computes the same loss, gradients and priorities as TorchRL's DQNLoss."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Categorical

from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.agent.fused import FusedDQNLoss
from reservoir_rl.config import AgentConfig, TrainConfig

BATCH, OBS, ACTIONS = 32, 13, 11


def _sample(seed: int, weights: bool) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    terminated = torch.rand(BATCH, 1, generator=g) < 0.3
    td = TensorDict(
        {
            "observation": torch.randn(BATCH, OBS, generator=g),
            "action": torch.randint(0, ACTIONS, (BATCH,), generator=g),
            "next": {
                "observation": torch.randn(BATCH, OBS, generator=g),
                "reward": torch.randn(BATCH, 1, generator=g),
                "terminated": terminated,
                "done": terminated | (torch.rand(BATCH, 1, generator=g) < 0.2),
            },
        },
        batch_size=[BATCH],
    )
    if weights:
        td.set("priority_weight", torch.rand(BATCH, generator=g) + 0.5)
    return td


def _agent(double_dqn: bool, loss: str, dueling: bool = False, hidden_sizes=(128, 128), activation: str = "relu",
           munchausen_alpha: float = 0.0):
    torch.manual_seed(0)
    agent = make_agent(
        OBS, Categorical(ACTIONS),
        AgentConfig(double_dqn=double_dqn, loss=loss, dueling=dueling, gamma=0.97, hidden_sizes=list(hidden_sizes),
                    activation=activation, munchausen_alpha=munchausen_alpha),
        TrainConfig(), device="cpu",
    )
    # make the target net differ from the online net, as it does between hard updates
    with torch.no_grad():
        for value in agent.loss.target_value_network_params.values(True, True):
            value.add_(0.05 * torch.randn_like(value))
    return agent


def _args(sample: TensorDict):
    return (sample["observation"], sample["action"], sample["next", "observation"], sample["next", "reward"],
            sample["next", "terminated"])


@pytest.mark.parametrize("double_dqn", [True, False])
@pytest.mark.parametrize("loss_name", ["smooth_l1", "l2"])
@pytest.mark.parametrize("weights", [False, True])
def test_same_loss_gradients_and_priorities_as_dqnloss(double_dqn, loss_name, weights):
    agent = _agent(double_dqn, loss_name)
    params = [p for p in agent.loss.parameters() if p.requires_grad]
    sample = _sample(1, weights)

    reference_td = sample.clone()
    reference = agent.loss(reference_td)["loss"]
    reference_grads = torch.autograd.grad(reference, params)

    fused = FusedDQNLoss(agent.loss, agent.q_network, gamma=0.97)
    loss, td_error = fused(*_args(sample), weights=sample.get("priority_weight", None))
    grads = torch.autograd.grad(loss, params)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-7)
    for mine, theirs in zip(grads, reference_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(td_error, reference_td["td_error"].reshape(-1), rtol=1e-5, atol=1e-7)


def test_dueling_network_and_terminal_states():
    agent = _agent(True, "smooth_l1", dueling=True)
    sample = _sample(2, False)
    sample["next", "terminated"] = torch.ones(BATCH, 1, dtype=torch.bool)
    fused = FusedDQNLoss(agent.loss, agent.q_network, gamma=0.97)
    loss, td_error = fused(*_args(sample))
    # with every transition terminal the target is the reward alone
    q = agent.q_network(sample["observation"]).gather(-1, sample["action"].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(td_error, (q - sample["next", "reward"].squeeze(-1)).pow(2).detach())
    torch.testing.assert_close(loss, agent.loss(sample.clone())["loss"])


def test_follows_target_updates():
    agent = _agent(True, "l2")
    fused = FusedDQNLoss(agent.loss, agent.q_network, gamma=0.97)
    sample = _sample(3, False)
    before, _ = fused(*_args(sample))
    agent.target_updater.init_()  # hard copy online → target
    after, _ = fused(*_args(sample))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, agent.loss(sample.clone())["loss"])


def test_n_step_discount_matches_dqnloss():
    agent = _agent(True, "smooth_l1")
    sample = _sample(4, False)
    steps = torch.randint(1, 4, (BATCH,), generator=torch.Generator().manual_seed(4))
    sample.set("steps_to_next_obs", steps)
    fused = FusedDQNLoss(agent.loss, agent.q_network, gamma=0.97)
    loss, td_error = fused(*_args(sample), steps_to_next_obs=steps)
    reference_td = sample.clone()
    torch.testing.assert_close(loss, agent.loss(reference_td)["loss"])
    torch.testing.assert_close(td_error, reference_td["td_error"].reshape(-1))
    plain, _ = fused(*_args(sample))
    assert not torch.allclose(loss, plain)  # the discount γ^m really depends on the window length


def test_still_bound_after_loading_a_state_dict():
    """A resumed run loads the loss's state dict; the fused loss must see the loaded target weights."""
    agent, other = _agent(True, "l2"), _agent(False, "l2")
    with torch.no_grad():
        for value in other.loss.target_value_network_params.values(True, True):
            value.mul_(1.5)
    fused = FusedDQNLoss(agent.loss, agent.q_network, gamma=0.97)
    agent.loss.load_state_dict(other.loss.state_dict())
    sample = _sample(5, False)
    loss, _ = fused(*_args(sample))
    torch.testing.assert_close(loss, agent.loss(sample.clone())["loss"])


@pytest.mark.parametrize("double_dqn", [True, False])
@pytest.mark.parametrize("loss_name", ["smooth_l1", "l2"])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("hidden_sizes", [(128, 128), (16,), (24, 16, 8)])
def test_manual_gradients_equal_autograd_through_dqnloss(double_dqn, loss_name, weights, hidden_sizes):
    agent = _agent(double_dqn, loss_name, hidden_sizes=hidden_sizes)
    fused = agent.fused_loss
    assert fused.has_manual_gradients
    params = list(agent.q_network.parameters())
    sample = _sample(6, weights)
    # large rewards put some TD errors outside the Huber threshold, small ones inside
    sample["next", "reward"] = sample["next", "reward"] * torch.linspace(0.01, 4.0, BATCH).unsqueeze(-1)
    steps = torch.randint(1, 4, (BATCH,), generator=torch.Generator().manual_seed(6))
    sample.set("steps_to_next_obs", steps)
    reference_td = sample.clone()
    reference = agent.loss(reference_td)["loss"]
    reference_grads = torch.autograd.grad(reference, params)
    loss, td_error, grads = fused.loss_and_gradients(
        *_args(sample), weights=sample.get("priority_weight", None), steps_to_next_obs=steps
    )
    assert not loss.requires_grad and not any(g.requires_grad for g in grads)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-7)
    assert len(grads) == len(reference_grads)
    for mine, theirs in zip(grads, reference_grads):
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(td_error, reference_td["td_error"].reshape(-1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dueling, activation", [(True, "tanh"), (False, "tanh")])
def test_other_networks_fall_back_to_autograd(dueling, activation):
    agent = _agent(True, "smooth_l1", dueling=dueling, activation=activation)
    assert not agent.fused_loss.has_manual_gradients
    with pytest.raises(ValueError, match="ReLU MLP"):
        agent.fused_loss.loss_and_gradients(*_args(_sample(7, False)))


@pytest.mark.parametrize("dueling", [False, True])  # manual gradients / autograd
@pytest.mark.parametrize("max_grad_norm", [1e-3, 100.0])  # clipping active / inactive
def test_gradient_step_equals_dqnloss_clip_adam_and_target_update(max_grad_norm, dueling):
    """The training loop's whole update equals TorchRL's: DQNLoss, clip_grad_norm_, Adam, HardUpdate."""
    reference, agent = _agent(True, "smooth_l1", dueling=dueling), _agent(True, "smooth_l1", dueling=dueling)
    params = [p for p in reference.loss.parameters() if p.requires_grad]
    for step in range(4):
        sample = _sample(10 + step, False)
        loss = reference.loss(sample.clone())["loss"]
        reference.optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        reference.optimizer.step()
        reference.target_updater.step()

        mine, my_norm, _ = agent.gradient_step(*_args(sample), max_grad_norm=max_grad_norm)
        torch.testing.assert_close(mine, loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(my_norm, norm, rtol=1e-5, atol=1e-6)
    for name, value in reference.loss.state_dict().items():
        torch.testing.assert_close(agent.loss.state_dict()[name], value, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------- Munchausen DQN


def _munchausen_by_hand(q_s, q_next, action, reward, terminated, discount, alpha, tau, clip):
    """The M-DQN target written out per sample, from log-softmax (an independent route)."""
    targets = []
    for i in range(q_s.shape[0]):
        log_pi = torch.log_softmax(q_s[i].double() / tau, -1)
        log_pi_next = torch.log_softmax(q_next[i].double() / tau, -1)
        bonus = alpha * min(max(tau * log_pi[action[i]].item(), clip), 0.0)
        soft = sum(log_pi_next[a].exp().item() * (q_next[i, a].item() - tau * log_pi_next[a].item())
                   for a in range(q_next.shape[1]))
        targets.append(reward[i].item() + bonus + (0.0 if terminated[i] else discount * soft))
    return torch.tensor(targets, dtype=torch.float64)


@pytest.mark.parametrize("weights", [False, True])
def test_munchausen_loss_has_the_m_dqn_target(weights):
    agent = _agent(True, "l2", munchausen_alpha=0.9)
    fused = agent.fused_loss
    assert fused.munchausen == (0.9, 0.03, -1.0)
    sample = _sample(7, weights)
    loss, td_error = fused(*_args(sample), weights=sample.get("priority_weight", None))
    with torch.no_grad():
        q_s = fused.target_network(sample["observation"])
        q_next = fused.target_network(sample["next", "observation"])
        chosen = agent.q_network(sample["observation"]).gather(-1, sample["action"].unsqueeze(-1)).squeeze(-1)
    target = _munchausen_by_hand(q_s, q_next, sample["action"], sample["next", "reward"].squeeze(-1),
                                 sample["next", "terminated"].squeeze(-1), 0.97, 0.9, 0.03, -1.0)
    torch.testing.assert_close(td_error.double(), (chosen.double() - target) ** 2, rtol=1e-4, atol=1e-5)
    # the target differs from the DQN one: the bonus and the soft value act
    plain = _agent(True, "l2")
    _, plain_td = plain.fused_loss(*_args(sample))
    assert not torch.allclose(td_error, plain_td)


def test_munchausen_soft_value_tends_to_the_max_and_the_bonus_is_clipped():
    g = torch.Generator().manual_seed(8)
    q_s, q_next = torch.randn(64, ACTIONS, generator=g) * 5, torch.randn(64, ACTIONS, generator=g) * 5
    action = torch.randint(0, ACTIONS, (64,), generator=g)
    zeros, alive = torch.zeros(64), torch.zeros(64, dtype=torch.bool)
    from reservoir_rl.agent.munchausen import munchausen_target

    # τ → 0: no bonus beyond the clip, soft value = max_a' q(s', a') (the DQN target without double DQN)
    sharp = munchausen_target(q_s, q_next, action, zeros, alive, 0.9, 0.0, 1e-4, -1.0)
    torch.testing.assert_close(sharp, 0.9 * q_next.max(-1).values, rtol=1e-4, atol=1e-3)
    bonus = munchausen_target(q_s, q_next, action, zeros, torch.ones(64, dtype=torch.bool), 0.0, 0.9, 10.0, -1.0)
    assert bool((bonus <= 0).all()) and bool((bonus >= -0.9 - 1e-6).all())  # α·clip(τ log π, −1, 0)
    assert bool((bonus < -0.5).any())  # the clip is reached for unlikely actions


@pytest.mark.parametrize("loss_name", ["smooth_l1", "l2"])
def test_munchausen_manual_gradients_equal_autograd(loss_name):
    agent = _agent(True, loss_name, munchausen_alpha=0.9)
    fused = agent.fused_loss
    params = list(agent.q_network.parameters())
    sample = _sample(9, True)
    loss, td_error = fused(*_args(sample), weights=sample["priority_weight"])
    reference_grads = torch.autograd.grad(loss, params)
    manual_loss, manual_td, grads = fused.loss_and_gradients(*_args(sample), weights=sample["priority_weight"])
    torch.testing.assert_close(manual_loss, loss.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(manual_td, td_error, rtol=1e-5, atol=1e-7)
    for mine, theirs in zip(grads, reference_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("double_dqn", [True, False])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("munchausen_alpha", [0.0, 0.9])
def test_dueling_manual_gradients_equal_autograd(double_dqn, weights, munchausen_alpha):
    """A dueling ReLU network's heads get their gradients from the merged head layer: the same as autograd's."""
    agent = _agent(double_dqn, "smooth_l1", dueling=True, munchausen_alpha=munchausen_alpha)
    fused = agent.fused_loss
    assert fused.has_manual_gradients and fused.dueling_head
    params = list(agent.q_network.parameters())
    sample = _sample(11, weights)
    sample["next", "reward"] = sample["next", "reward"] * torch.linspace(0.01, 4.0, BATCH).unsqueeze(-1)
    reference, reference_td = fused(*_args(sample), weights=sample.get("priority_weight", None))
    reference_grads = torch.autograd.grad(reference, params)
    loss, td_error, grads = fused.loss_and_gradients(*_args(sample), weights=sample.get("priority_weight", None))
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(td_error, reference_td, rtol=1e-4, atol=1e-5)
    assert [g.shape for g in grads] == [p.shape for p in params]
    for mine, theirs in zip(grads, reference_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    if munchausen_alpha == 0.0:  # and TorchRL's DQNLoss agrees
        torch.testing.assert_close(loss, agent.loss(sample.clone())["loss"].detach(), rtol=1e-5, atol=1e-6)


def _margin_by_hand(q_values, teacher, margin, weight):
    rows = []
    for q, a_e in zip(q_values, teacher):
        augmented = [float(q[a]) + (0.0 if a == int(a_e) else margin) for a in range(q.shape[0])]
        rows.append(max(augmented) - float(q[int(a_e)]))
    return weight * sum(rows) / len(rows)


@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("munchausen_alpha", [0.0, 0.9])
def test_demonstration_margin_loss_and_its_manual_gradients(dueling, munchausen_alpha):
    """DQfD's large-margin term on the batch's last rows: the loss by hand, and the manual gradients equal
    autograd's through the same loss."""
    from reservoir_rl.agent.fused import DemonstrationMargin

    agent = _agent(True, "smooth_l1", dueling=dueling, munchausen_alpha=munchausen_alpha)
    fused = agent.fused_loss
    params = list(agent.q_network.parameters())
    sample = _sample(13, False)
    demo = DemonstrationMargin(rows=8, margin=0.8, weight=1.5)
    plain, _ = fused(*_args(sample))
    loss, td_error = fused(*_args(sample), demonstration=demo)
    with torch.no_grad():
        q_demo = agent.q_network(sample["observation"][-8:])
    expected = _margin_by_hand(q_demo, sample["action"][-8:], 0.8, 1.5)
    assert expected > 0  # the random network does not already prefer the teacher's actions by the margin
    torch.testing.assert_close(float((loss - plain).detach()), expected, rtol=1e-5, atol=1e-6)
    reference_grads = torch.autograd.grad(loss, params)
    manual_loss, manual_td, grads = fused.loss_and_gradients(*_args(sample), demonstration=demo)
    torch.testing.assert_close(manual_loss, loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(manual_td, td_error, rtol=1e-5, atol=1e-7)
    for mine, theirs in zip(grads, reference_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_the_margin_makes_the_teachers_action_greedy():
    """Minimising the large-margin term alone moves the greedy action to the teacher's on its states, and
    the term is zero once the teacher's action leads by the margin."""
    from reservoir_rl.agent.fused import large_margin_terms

    q = torch.zeros(4, ACTIONS, requires_grad=True)
    teacher = torch.tensor([0, 3, 7, 10])
    optimizer = torch.optim.SGD([q], lr=0.5)
    for _ in range(50):
        loss, grad = large_margin_terms(q, teacher, 0.8, 1.0)
        optimizer.zero_grad()
        loss.backward()
        torch.testing.assert_close(q.grad, grad)
        optimizer.step()
    assert torch.equal(q.argmax(-1), teacher)
    assert float(large_margin_terms(q.detach(), teacher, 0.8, 1.0)[0]) == pytest.approx(0.0, abs=1e-6)
