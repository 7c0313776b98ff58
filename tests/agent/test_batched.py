"""K agents updated as one batched computation equal K agents updated one by one, bitwise."""

from __future__ import annotations

import pytest
import torch
from torchrl.data import Categorical

from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from reservoir_rl.agent.batched import StackedDQNAgents, StackedExplorePolicy
from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.config import AgentConfig, TrainConfig

OBS, ACTIONS, BATCH = 5, 4, 24


def _agents(seeds, **options):
    agent_options = {k: v for k, v in options.items() if k in AgentConfig.model_fields}
    train_options = {"target_update_period": 3, **{k: v for k, v in options.items() if k in TrainConfig.model_fields}}
    made = []
    for seed in seeds:
        torch.manual_seed(seed)
        made.append(make_agent(OBS, Categorical(ACTIONS), AgentConfig(hidden_sizes=[16, 16], **agent_options),
                               TrainConfig(**train_options)))
    return made


def _batches(step: int, k_seeds: int, weights: bool, n_step: bool):
    g = torch.Generator().manual_seed(100 + step)
    data = {
        "observation": torch.randn(k_seeds, BATCH, OBS, generator=g),
        "action": torch.randint(0, ACTIONS, (k_seeds, BATCH), generator=g),
        "next_observation": torch.randn(k_seeds, BATCH, OBS, generator=g),
        "reward": 3 * torch.randn(k_seeds, BATCH, 1, generator=g),  # some |TD| > 1: both Huber branches
        "terminated": torch.rand(k_seeds, BATCH, 1, generator=g) < 0.25,
        "weights": torch.rand(k_seeds, BATCH, generator=g) + 0.1 if weights else None,
        "steps_to_next_obs": torch.randint(1, 4, (k_seeds, BATCH), generator=g) if n_step else None,
    }
    return data


def _params(agent):
    return [t.clone() for t in agent.loss.state_dict().values()]


@pytest.mark.parametrize(
    "options",
    [{}, {"double_dqn": False, "loss": "l2"}, {"weights": True, "n_step": True}, {"target_update": "soft"},
     {"dueling": True}, {"activation": "tanh"}, {"munchausen_alpha": 0.9, "n_step": True},
     {"munchausen_alpha": 0.9, "dueling": True}, {"munchausen_alpha": 0.9, "distributional_quantiles": 8}],
)
def test_batched_update_equals_one_agent_at_a_time(options):
    weights, n_step = options.pop("weights", False), options.pop("n_step", False)
    seeds = (0, 1, 2)
    reference, batched = _agents(seeds, **options), _agents(seeds, **options)
    stacked = StackedDQNAgents(batched)
    assert stacked.batched == (options.get("activation", "relu") == "relu" and not options.get("distributional_quantiles"))
    for step in range(7):  # the first step creates Adam's state; hard target copies every 3 updates
        data = _batches(step, len(seeds), weights, n_step)
        loss, grad_norm, td = stacked.gradient_step(
            data["observation"], data["action"], data["next_observation"], data["reward"], data["terminated"],
            max_grad_norm=1.0, weights=data["weights"], steps_to_next_obs=data["steps_to_next_obs"],
        )
        for k, agent in enumerate(reference):
            ref_loss, ref_norm, ref_td = agent.gradient_step(
                data["observation"][k], data["action"][k], data["next_observation"][k], data["reward"][k],
                data["terminated"][k], max_grad_norm=1.0,
                weights=None if data["weights"] is None else data["weights"][k],
                steps_to_next_obs=None if data["steps_to_next_obs"] is None else data["steps_to_next_obs"][k],
            )
            assert torch.equal(loss[k], ref_loss) and torch.equal(grad_norm[k], ref_norm)
            assert torch.equal(td[k], ref_td)
    for ref, agent in zip(reference, batched):
        for a, b in zip(_params(ref), _params(agent)):  # online and target parameters
            assert torch.equal(a, b)
        ref_state, state = ref.optimizer.state_dict()["state"], agent.optimizer.state_dict()["state"]
        for index in ref_state:
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(ref_state[index][key], state[index][key])


@pytest.mark.parametrize("options", [{}, {"munchausen_alpha": 0.9, "dueling": True}, {"activation": "tanh"}])
def test_batched_demonstration_margin_equals_one_agent_at_a_time(options):
    """DQfD's large-margin term on each seed's last rows: the batched update is bitwise the per-seed one."""
    from reservoir_rl.agent.fused import DemonstrationMargin

    demo = DemonstrationMargin(rows=5, margin=0.8, weight=1.0)
    seeds = (0, 1)
    reference, batched = _agents(seeds, **options), _agents(seeds, **options)
    stacked = StackedDQNAgents(batched)
    for step in range(4):
        data = _batches(step, len(seeds), True, False)
        loss, grad_norm, td = stacked.gradient_step(
            data["observation"], data["action"], data["next_observation"], data["reward"], data["terminated"],
            max_grad_norm=1.0, weights=data["weights"], demonstration=demo,
        )
        for k, agent in enumerate(reference):
            ref_loss, ref_norm, ref_td = agent.gradient_step(
                data["observation"][k], data["action"][k], data["next_observation"][k], data["reward"][k],
                data["terminated"][k], max_grad_norm=1.0, weights=data["weights"][k], demonstration=demo,
            )
            assert torch.equal(loss[k], ref_loss) and torch.equal(grad_norm[k], ref_norm)
    for ref, agent in zip(reference, batched):
        for a, b in zip(_params(ref), _params(agent)):
            assert torch.equal(a, b)


def test_agents_stay_views_of_the_stacks_after_loading_a_state():
    agents = _agents((0, 1))
    stacked = StackedDQNAgents(agents)
    data = _batches(0, 2, False, False)
    args = (data["observation"], data["action"], data["next_observation"], data["reward"], data["terminated"])
    stacked.gradient_step(*args, max_grad_norm=1.0)
    other = _agents((5,))[0]
    StackedDQNAgents([other]).gradient_step(*(a[:1] for a in args), max_grad_norm=1.0)
    agents[1].loss.load_state_dict(other.loss.state_dict())
    agents[1].optimizer.load_state_dict(other.optimizer.state_dict())
    stacked.restack()
    assert torch.equal(stacked.online[0][1], other.q_network.body[0].weight)
    assert agents[1].q_network.body[0].weight.data_ptr() == stacked.online[0][1].data_ptr()
    exp_avg = agents[1].optimizer.state[agents[1].q_network.body[0].weight]["exp_avg"]
    assert exp_avg.data_ptr() == stacked.exp_avg[0][1].data_ptr()
    stacked.gradient_step(*args, max_grad_norm=1.0)  # moves the agent's own parameters
    assert not torch.equal(agents[1].q_network.body[0].weight, other.q_network.body[0].weight)


def test_different_step_counts_cannot_be_stacked():
    agents = _agents((0, 1))
    data = _batches(0, 1, False, False)
    args = (data["observation"][0], data["action"][0], data["next_observation"][0], data["reward"][0],
            data["terminated"][0])
    for agent in agents:
        agent.gradient_step(*args, max_grad_norm=1.0)
    agents[0].gradient_step(*args, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="step counts differ"):
        StackedDQNAgents(agents)


@pytest.mark.parametrize("options, block", [({}, 8), ({}, 1), ({"dueling": True}, 8)])
def test_stacked_explore_policy_acts_as_each_agent_with_its_own_stream(options, block):
    """Block k of the stacked policy's output is agent k's ε-greedy policy on block k's rows with the global
    torch stream in the state of generator k, for several ε; the batched forward is used where it is
    bitwise each network's own (`batched_forward`), the per-seed one otherwise (dueling networks)."""
    seeds = (0, 1, 2)
    agents = _agents(seeds, **options)
    stacked = StackedDQNAgents(agents)
    generators = [torch.Generator().manual_seed(50 + k) for k in range(len(seeds))]
    policy = StackedExplorePolicy(stacked, block, generators)
    if options.get("dueling"):
        assert not policy.batched_forward
    observations = torch.randn(len(seeds) * block, OBS, generator=torch.Generator().manual_seed(9))
    for epsilon in (1.0, 0.5, 0.0):
        for agent in agents:
            agent.set_epsilon(epsilon)
        states = [g.get_state() for g in generators]
        out = policy(TensorDict({"observation": observations.clone()}, batch_size=[len(seeds) * block]))
        for k, agent in enumerate(agents):
            rows = slice(k * block, (k + 1) * block)
            torch.set_rng_state(states[k])
            own = agent.explore_policy(TensorDict({"observation": observations[rows].clone()}, batch_size=[block]))
            for key in ("action", "action_value", "chosen_action_value"):
                assert torch.equal(out[key][rows], own[key].detach()), (epsilon, k, key)
            assert torch.equal(generators[k].get_state(), torch.get_rng_state())  # the same draws
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = policy(TensorDict({"observation": observations.clone()}, batch_size=[len(seeds) * block]))
    assert torch.equal(greedy["action"], greedy["action_value"].argmax(-1))
    with pytest.raises(ValueError, match="3 agents need 3 generators"):
        StackedExplorePolicy(stacked, block, generators[:2])
