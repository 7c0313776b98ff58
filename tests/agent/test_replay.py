"""Replay buffers: proportional prioritized sampling and the compact checkpoint state."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from reservoir_rl.agent.dqn import make_agent
from reservoir_rl.agent.replay import (
    PRIORITY_ALPHA,
    PRIORITY_BETA,
    PRIORITY_EPS,
    ProportionalPrioritizedSampler,
    is_prioritized,
    load_replay_state,
    make_replay_buffer,
    replay_state,
    sample_transitions,
    update_priorities,
)
from reservoir_rl.config import AgentConfig, TrainConfig
from reservoir_rl.runs.checkpoint import atomic_save, check_plain
from torchrl.data import Categorical

OBS, ACTIONS = 4, 5


def transitions(n: int, start: int = 0) -> TensorDict:
    """n distinguishable transitions (observation[0] = running index)."""
    index = torch.arange(start, start + n, dtype=torch.float32)
    return TensorDict(
        {
            "observation": index.unsqueeze(-1).expand(n, OBS).clone(),
            "action": (torch.arange(n) % ACTIONS).to(torch.int64),
            "next": {
                "observation": (index + 1).unsqueeze(-1).expand(n, OBS).clone(),
                "reward": torch.sin(index).unsqueeze(-1),
                "done": torch.zeros(n, 1, dtype=torch.bool),
                "terminated": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        batch_size=[n],
    )


def buffer(prioritized: bool, capacity: int = 64, batch: int = 16):
    return make_replay_buffer(TrainConfig(buffer_size=capacity, batch_size=batch, prioritized_replay=prioritized))


def test_sampling_frequencies_follow_priorities_and_weights_correct_for_them() -> None:
    rb = buffer(True, capacity=8, batch=4000)
    rb.extend(transitions(4))
    priorities = torch.tensor([0.1, 1.0, 2.0, 4.0])
    rb.sampler.update_priority(torch.arange(4), priorities)
    torch.manual_seed(0)
    sample = rb.sample()
    index = sample["index"]
    assert int(index.max()) < 4  # never an empty slot
    scaled = (priorities + PRIORITY_EPS) ** PRIORITY_ALPHA
    expected = scaled / scaled.sum()
    observed = torch.bincount(index, minlength=4).double() / index.numel()
    assert torch.allclose(observed, expected.double(), atol=0.03)
    weights = sample["priority_weight"]
    assert torch.allclose(weights, (scaled[index] / scaled.min()).pow(-PRIORITY_BETA))
    assert torch.equal(sample["observation"][:, 0], index.float())  # the data are those of the index


def test_new_transitions_get_the_largest_priority_seen() -> None:
    rb = buffer(True)
    rb.extend(transitions(4))
    assert torch.equal(rb.sampler.priorities[:4], torch.ones(4, dtype=torch.float64))
    rb.sampler.update_priority(torch.tensor([1, 2]), torch.tensor([3.0, 0.5]))
    rb.extend(transitions(2, start=4))
    top = (3.0 + PRIORITY_EPS) ** PRIORITY_ALPHA
    assert rb.sampler.priorities[4:6].tolist() == pytest.approx([top, top])
    assert float(rb.sampler.priorities[6:].sum()) == 0.0


def test_priorities_are_updated_from_the_dqn_td_error() -> None:
    torch.manual_seed(0)
    agent = make_agent(OBS, Categorical(ACTIONS), AgentConfig(hidden_sizes=[8]), TrainConfig())
    rb = buffer(True)
    rb.extend(transitions(32))
    assert is_prioritized(rb) and not is_prioritized(buffer(False))
    sample = rb.sample()
    agent.loss(sample)
    squared = sample["td_error"]
    update_priorities(rb, sample.get("index"), squared)
    index = sample["index"]
    # DQNLoss writes the squared TD error; the priority is its magnitude |δ|
    expected = (squared.reshape(-1).double().sqrt() + PRIORITY_EPS) ** PRIORITY_ALPHA
    last = {int(i): float(p) for i, p in zip(index, expected)}  # duplicates: the last write wins
    for i, p in last.items():
        assert float(rb.sampler.priorities[i]) == pytest.approx(p)
    untouched = sorted(set(range(32)) - set(last))
    assert torch.equal(rb.sampler.priorities[untouched], torch.ones(len(untouched), dtype=torch.float64))


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_replay_state_holds_only_the_filled_slots_and_restores_exactly(tmp_path, prioritized: bool) -> None:
    rb = buffer(prioritized, capacity=1000)
    rb.extend(transitions(30))
    if prioritized:
        rb.sampler.update_priority(torch.arange(10), torch.linspace(0.1, 5.0, 10))
    state = replay_state(rb)
    check_plain(state)  # loads back with weights_only=True
    assert state["_storage"]["_storage"]["observation"].shape == (30, OBS)
    path = tmp_path / "rb.pt"
    atomic_save({"rb": state}, path)
    restored = buffer(prioritized, capacity=1000)
    load_replay_state(restored, torch.load(path, weights_only=True)["rb"])
    assert len(restored) == 30
    for key in ("observation", ("next", "observation"), ("next", "reward"), "action"):
        assert torch.equal(restored[:30][key], rb[:30][key])
    # both continue identically: same writes, same samples
    rb.extend(transitions(5, start=30))
    restored.extend(transitions(5, start=30))
    torch.manual_seed(1)
    a = rb.sample()
    torch.manual_seed(1)
    b = restored.sample()
    assert torch.equal(a["index"], b["index"]) and torch.equal(a["observation"], b["observation"])


def test_an_empty_buffer_round_trips() -> None:
    rb = buffer(False)
    restored = buffer(False)
    load_replay_state(restored, replay_state(rb))
    assert len(restored) == 0
    restored.extend(transitions(3))
    assert len(restored) == 3


def test_sampler_refuses_an_empty_storage() -> None:
    rb = buffer(True)
    with pytest.raises(RuntimeError, match="empty"):
        ProportionalPrioritizedSampler(4).sample(rb.storage, 2)


@pytest.mark.parametrize("prioritized", [False, True])
def test_sample_transitions_draws_what_replay_buffer_sample_draws(prioritized) -> None:
    """The training loop's direct sampling returns the same transitions, indices and weights as
    ``replay_buffer.sample()`` from the same generator state."""
    rb = buffer(prioritized, capacity=64, batch=16)
    rb.extend(transitions(40))
    if prioritized:
        update_priorities(rb, torch.arange(10), torch.linspace(0.1, 5.0, 10))
    torch.manual_seed(3)
    sample, index, weights = sample_transitions(rb)
    torch.manual_seed(3)
    reference = rb.sample()
    assert torch.equal(index, reference.get("index"))
    for key in ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "terminated")):
        assert torch.equal(sample[key], reference.get(key)), key
    if prioritized:
        assert torch.equal(weights, reference.get("priority_weight"))
    else:
        assert weights is None
