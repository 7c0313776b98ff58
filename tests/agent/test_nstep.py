"""n-step transitions across collector batches, checked against a direct per-env computation."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from reservoir_rl.agent.dqn import TRANSITION_KEYS
from reservoir_rl.agent.nstep import NStepTransitions

N_ENVS, DAYS, OBS = 3, 23, 2


def stream(seed: int = 0) -> TensorDict:
    """(n_envs, DAYS) one-step transitions; episodes end at random days (terminated or truncated)."""
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(N_ENVS, DAYS, 1, generator=g) < 0.2
    terminated = done & (torch.rand(N_ENVS, DAYS, 1, generator=g) < 0.5)
    day = torch.arange(DAYS, dtype=torch.float32).expand(N_ENVS, DAYS)
    env = torch.arange(N_ENVS, dtype=torch.float32).unsqueeze(-1).expand(N_ENVS, DAYS)
    return TensorDict(
        {
            "observation": torch.stack([env, day], -1),
            "action": torch.randint(0, 5, (N_ENVS, DAYS), generator=g),
            "next": {
                "observation": torch.stack([env, day + 1], -1),
                "reward": torch.randn(N_ENVS, DAYS, 1, generator=g),
                "done": done,
                "terminated": terminated,
            },
        },
        batch_size=[N_ENVS, DAYS],
    )


def reference(data: TensorDict, n: int, gamma: float, env: int, t: int) -> dict:
    """The n-step transition starting on day t of one env, computed step by step."""
    nxt = data["next"]
    total, k = 0.0, 0
    while True:
        total += gamma**k * float(nxt["reward"][env, t + k])
        last = t + k
        k += 1
        if bool(nxt["done"][env, last]) or k == n:
            break
    return {"reward": total, "steps": k, "next_day": float(nxt["observation"][env, last, 1]),
            "done": bool(nxt["done"][env, last]), "terminated": bool(nxt["terminated"][env, last])}


@pytest.mark.parametrize("n, chunk", [(3, 5), (4, 2), (2, 23)])
def test_windows_match_the_direct_computation_whatever_the_batch_length(n: int, chunk: int) -> None:
    gamma = 0.9
    data = stream()
    nstep = NStepTransitions(n, gamma, TRANSITION_KEYS)
    outputs = [nstep(data[:, s:s + chunk]) for s in range(0, DAYS, chunk)]
    # a batch shorter than the window may emit nothing yet
    out = torch.cat([o.reshape(N_ENVS, -1) for o in outputs if o.shape[0]], dim=1)
    ready = DAYS - (n - 1)  # the last n − 1 days wait for the next batch
    assert out.shape == (N_ENVS, ready)
    for env in range(N_ENVS):
        for t in range(ready):
            expected = reference(data, n, gamma, env, t)
            got = out[env, t]
            assert float(got["observation"][1]) == t  # transitions come out in day order
            assert float(got["next", "reward"]) == pytest.approx(expected["reward"], rel=1e-5, abs=1e-6)
            assert int(got["steps_to_next_obs"]) == expected["steps"]
            assert float(got["next", "observation"][1]) == expected["next_day"]
            assert bool(got["next", "done"]) == expected["done"]
            assert bool(got["next", "terminated"]) == expected["terminated"]
            assert int(got["action"]) == int(data["action"][env, t])


def test_one_step_passes_transitions_through() -> None:
    data = stream()
    out = NStepTransitions(1, 0.9, TRANSITION_KEYS)(data)
    assert out.shape == (N_ENVS * DAYS,)
    assert "steps_to_next_obs" not in out.keys()
    assert torch.equal(out["next", "reward"], data["next", "reward"].reshape(-1, 1))


def test_state_round_trip_continues_identically() -> None:
    data = stream(1)
    straight = NStepTransitions(3, 0.8, TRANSITION_KEYS)
    first = straight(data[:, :7])
    expected = straight(data[:, 7:])
    interrupted = NStepTransitions(3, 0.8, TRANSITION_KEYS)
    assert torch.equal(interrupted(data[:, :7])["next", "reward"], first["next", "reward"])
    restored = NStepTransitions(3, 0.8, TRANSITION_KEYS)
    restored.load_state_dict(interrupted.state_dict())
    got = restored(data[:, 7:])
    for key in expected.keys(True, True):
        assert torch.equal(got[key], expected[key]), key
    assert NStepTransitions(3, 0.8, TRANSITION_KEYS).state_dict() == {}


def test_invalid_window() -> None:
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        NStepTransitions(0, 0.9, TRANSITION_KEYS)
