"""QR-DQN: the quantile head of `QNetwork` and the quantile-regression loss of `agent/quantile.py` (against a
loop over samples, quantiles and targets written from Dabney et al. 2018's equations)."""

from __future__ import annotations

import math

import pytest
import torch
from torchrl.data import Categorical

from reservoir_rl.agent.batched import StackedDQNAgents
from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.agent.qnet import QNetwork
from reservoir_rl.agent.quantile import quantile_huber_loss, quantile_loss, quantile_midpoints
from reservoir_rl.config import AgentConfig, TrainConfig

BATCH, OBS, ACTIONS, QUANTILES = 12, 5, 4, 6
GAMMA = 0.97


def _networks(dueling: bool = False, quantiles: int = QUANTILES) -> tuple[QNetwork, QNetwork]:
    torch.manual_seed(0)
    online = QNetwork(OBS, ACTIONS, (16, 16), "relu", dueling, quantiles=quantiles)
    target = QNetwork(OBS, ACTIONS, (16, 16), "relu", dueling, quantiles=quantiles).requires_grad_(False)
    return online, target


def _batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation": torch.randn(BATCH, OBS, generator=g),
        "action": torch.randint(0, ACTIONS, (BATCH,), generator=g),
        "next_observation": torch.randn(BATCH, OBS, generator=g),
        "reward": 3 * torch.randn(BATCH, 1, generator=g),  # |u| on both sides of κ = 1
        "terminated": torch.rand(BATCH, 1, generator=g) < 0.3,
        "weights": torch.rand(BATCH, generator=g) + 0.1,
        "steps_to_next_obs": torch.randint(1, 4, (BATCH,), generator=g),
    }


# ------------------------------------------------------------------ the network


@pytest.mark.parametrize("dueling", [False, True])
def test_forward_is_the_mean_of_the_quantiles(dueling):
    network, _ = _networks(dueling)
    observation = torch.randn(3, 7, OBS)  # any leading shape
    quantiles = network.quantile_values(observation)
    assert quantiles.shape == (3, 7, ACTIONS, QUANTILES)
    torch.testing.assert_close(network(observation), quantiles.mean(-1), rtol=0, atol=0)
    assert not torch.allclose(quantiles[..., 0], quantiles[..., -1])  # the quantiles are distinct outputs


def test_dueling_quantiles_are_value_plus_centred_advantage_per_quantile():
    network, _ = _networks(dueling=True)
    observation = torch.randn(9, OBS)
    features = network.body(observation)
    value = network.value_head(features)  # (9, N)
    advantage = network.advantage_head(features).reshape(9, ACTIONS, QUANTILES)
    expected = value[:, None, :] + advantage - advantage.mean(dim=1, keepdim=True)
    torch.testing.assert_close(network.quantile_values(observation), expected)


@pytest.mark.parametrize("dueling", [False, True])
def test_without_quantiles_the_network_is_unchanged(dueling):
    torch.manual_seed(3)
    before = QNetwork(OBS, ACTIONS, (16, 16), "relu", dueling)
    torch.manual_seed(3)
    now = QNetwork(OBS, ACTIONS, (16, 16), "relu", dueling, quantiles=0)
    assert list(now.state_dict()) == list(before.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(now.state_dict().values(), before.state_dict().values()))
    observation = torch.randn(8, OBS)
    assert now(observation).shape == (8, ACTIONS) and torch.equal(now(observation), before(observation))
    with pytest.raises(ValueError, match="quantiles >= 2"):
        now.quantile_values(observation)
    with pytest.raises(ValueError, match="at least 2"):
        QNetwork(OBS, ACTIONS, quantiles=1)


def test_midpoints_are_the_centres_of_n_equal_probability_bins():
    assert quantile_midpoints(4).tolist() == [0.125, 0.375, 0.625, 0.875]


# ------------------------------------------------------------------ the loss against a loop


def _huber(u: float) -> float:
    return 0.5 * u * u if abs(u) <= 1.0 else abs(u) - 0.5


def _reference(online, target, data, *, double_dqn, munchausen, weights, steps) -> tuple[float, list[float]]:
    """Loss and TD errors, sample by sample, quantile by quantile, from the networks' quantile outputs."""
    with torch.no_grad():
        theta = online.quantile_values(data["observation"]).tolist()  # [b][a][i]
        theta_online_next = online.quantile_values(data["next_observation"]).tolist()
        theta_target = target.quantile_values(data["observation"]).tolist()
        theta_target_next = target.quantile_values(data["next_observation"]).tolist()
    n = len(theta[0][0])
    losses, td_errors = [], []
    for b in range(BATCH):
        action = int(data["action"][b])
        reward = float(data["reward"][b])
        alive = 0.0 if bool(data["terminated"][b]) else 1.0
        discount = GAMMA ** (int(data["steps_to_next_obs"][b]) if steps else 1)
        if munchausen is None:
            greedy_from = theta_online_next[b] if double_dqn else theta_target_next[b]
            means = [sum(q) / n for q in greedy_from]
            best = max(range(ACTIONS), key=lambda a: means[a])
            y = [reward + discount * alive * theta_target_next[b][best][j] for j in range(n)]
        else:
            alpha, tau, clip = munchausen
            mean_s = [sum(q) / n for q in theta_target[b]]
            mean_next = [sum(q) / n for q in theta_target_next[b]]
            log_sum_s = math.log(sum(math.exp(m / tau) for m in mean_s))
            log_sum_next = math.log(sum(math.exp(m / tau) for m in mean_next))
            tau_log_pi = mean_s[action] - tau * log_sum_s
            bonus = alpha * min(max(tau_log_pi, clip), 0.0)
            pi_next = [math.exp(m / tau - log_sum_next) for m in mean_next]
            y = []
            for j in range(n):
                soft = sum(pi_next[a] * (theta_target_next[b][a][j] - (mean_next[a] - tau * log_sum_next))
                           for a in range(ACTIONS))
                y.append(reward + bonus + discount * alive * soft)
        chosen = theta[b][action]
        loss = 0.0
        for i in range(n):
            tau_i = (2 * i + 1) / (2 * n)
            loss += sum(abs(tau_i - (1.0 if y[j] - chosen[i] < 0 else 0.0)) * _huber(y[j] - chosen[i])
                        for j in range(n)) / n
        losses.append(loss)
        td_errors.append((sum(chosen) / n - sum(y) / n) ** 2)
    if weights:
        w = data["weights"].tolist()
        return sum(wi * li for wi, li in zip(w, losses)) / sum(w), td_errors
    return sum(losses) / BATCH, td_errors


@pytest.mark.parametrize("double_dqn", [True, False])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("munchausen", [None, (0.9, 0.03, -1.0), (0.5, 2.0, -0.3)])
@pytest.mark.parametrize("steps", [False, True])
def test_loss_and_td_errors_equal_the_loop_reference(double_dqn, weights, munchausen, steps):
    online, target = _networks()
    data = _batch()
    loss, td_error = quantile_loss(
        online, target, data["observation"], data["action"], data["next_observation"], data["reward"],
        data["terminated"], gamma=GAMMA, double_dqn=double_dqn, munchausen=munchausen,
        weights=data["weights"] if weights else None, steps_to_next_obs=data["steps_to_next_obs"] if steps else None,
    )
    expected_loss, expected_td = _reference(online, target, data, double_dqn=double_dqn, munchausen=munchausen,
                                            weights=weights, steps=steps)
    assert loss.shape == () and td_error.shape == (BATCH,) and not td_error.requires_grad
    torch.testing.assert_close(loss, torch.tensor(expected_loss), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(td_error, torch.tensor(expected_td), rtol=1e-5, atol=1e-6)


def test_double_dqn_and_munchausen_change_the_target():
    online, target = _networks()
    data = _batch(2)
    args = (online, target, data["observation"], data["action"], data["next_observation"], data["reward"],
            data["terminated"])
    double = quantile_loss(*args, gamma=GAMMA, double_dqn=True)[1]
    single = quantile_loss(*args, gamma=GAMMA, double_dqn=False)[1]
    soft = quantile_loss(*args, gamma=GAMMA, double_dqn=True, munchausen=(0.9, 0.03, -1.0))[1]
    assert not torch.allclose(double, single) and not torch.allclose(double, soft)


@pytest.mark.parametrize("dueling", [False, True])
def test_gradients_reach_every_online_parameter_and_none_the_target(dueling):
    online, target = _networks(dueling)
    data = _batch(3)
    loss, _ = quantile_loss(online, target, data["observation"], data["action"], data["next_observation"],
                            data["reward"], data["terminated"], gamma=GAMMA, double_dqn=True,
                            munchausen=(0.9, 0.03, -1.0), weights=data["weights"])
    loss.backward()
    for name, parameter in online.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert all(parameter.grad is None for parameter in target.parameters())


def test_regression_on_two_points_puts_low_quantiles_low_and_high_quantiles_high():
    """Minimising the loss on a fixed distribution, 0 or 10 with probability ½ each, moves the quantiles below
    τ = ½ to about 0 and those above to about 10 (the minimiser of the κ = 1 loss lies within κ of the point);
    a loss with the asymmetry the wrong way round would send them to the opposite points."""
    n = 8
    quantiles = torch.full((1, n), 5.0, requires_grad=True)
    targets = torch.tensor([[0.0, 10.0]])
    optimizer = torch.optim.SGD([quantiles], lr=0.5)
    for _ in range(400):
        optimizer.zero_grad()
        quantile_huber_loss(quantiles, targets).sum().backward()
        optimizer.step()
    low, high = quantiles.detach()[0, : n // 2], quantiles.detach()[0, n // 2:]
    assert bool(((low > -0.01) & (low < 1.0)).all()), low
    assert bool(((high > 9.0) & (high < 10.01)).all()), high
    assert bool((quantiles.detach().diff() > 0).all())  # ordered by τ̂


# ------------------------------------------------------------------ in the agent


def _agent(seed: int = 0, **options):
    torch.manual_seed(seed)
    config = AgentConfig(hidden_sizes=[16, 16], distributional_quantiles=QUANTILES, gamma=GAMMA, **options)
    return make_agent(OBS, Categorical(ACTIONS), config, TrainConfig(target_update_period=3))


def test_the_fused_loss_runs_the_quantile_loss_on_the_autograd_path():
    agent = _agent(munchausen_alpha=0.9)
    fused = agent.fused_loss
    assert fused.quantiles == QUANTILES and not fused.has_manual_gradients
    data = _batch(4)
    with torch.no_grad():  # a target that differs from the online network, as between hard updates
        for value in agent.loss.target_value_network_params.values(True, True):
            value.add_(0.05 * torch.randn_like(value))
    args = (data["observation"], data["action"], data["next_observation"], data["reward"], data["terminated"])
    loss, td_error = fused(*args, weights=data["weights"], steps_to_next_obs=data["steps_to_next_obs"])
    expected = quantile_loss(agent.q_network, fused.target_network, *args, gamma=GAMMA, double_dqn=True,
                             munchausen=(0.9, 0.03, -1.0), weights=data["weights"],
                             steps_to_next_obs=data["steps_to_next_obs"])
    assert torch.equal(loss, expected[0]) and torch.equal(td_error, expected[1])
    plain = make_agent(OBS, Categorical(ACTIONS), AgentConfig(hidden_sizes=[16, 16]), TrainConfig())
    assert plain.fused_loss.quantiles == 0 and plain.fused_loss.has_manual_gradients


@pytest.mark.parametrize("options", [{}, {"munchausen_alpha": 0.9, "dueling": True}, {"double_dqn": False}])
def test_gradient_steps_change_the_parameters_and_keep_the_loss_finite(options):
    agent = _agent(**options)
    before = [p.detach().clone() for p in agent.q_network.parameters()]
    for step in range(5):
        data = _batch(10 + step)
        loss, grad_norm, td_error = agent.gradient_step(
            data["observation"], data["action"], data["next_observation"], data["reward"], data["terminated"],
            max_grad_norm=10.0, weights=data["weights"], steps_to_next_obs=data["steps_to_next_obs"],
        )
        assert bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)) and td_error.shape == (BATCH,)
    after = list(agent.q_network.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))
    assert agent.q_network(torch.randn(2, OBS)).shape == (2, ACTIONS)  # what the policies read


def test_vectorized_seeds_with_quantiles_update_one_by_one():
    stacked = StackedDQNAgents([_agent(seed) for seed in (0, 1)])
    assert not stacked.batched
    g = torch.Generator().manual_seed(5)
    loss, grad_norm, td_error = stacked.gradient_step(
        torch.randn(2, BATCH, OBS, generator=g), torch.randint(0, ACTIONS, (2, BATCH), generator=g),
        torch.randn(2, BATCH, OBS, generator=g), torch.randn(2, BATCH, 1, generator=g),
        torch.zeros(2, BATCH, 1, dtype=torch.bool), max_grad_norm=10.0,
    )
    assert loss.shape == (2,) and grad_norm.shape == (2,) and td_error.shape == (2, BATCH)
