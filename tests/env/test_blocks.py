"""Tests of reservoir_rl.env.blocks.BlockedReservoirEnv: K blocks of reservoirs in one env, block k the
bitwise twin of a single env seeded with seed k (resets, partial resets, forecast noise, flood and inflow
factors, the release guard), whatever the other blocks are; block states in a single env's format."""

from __future__ import annotations

import pytest
import torch

from reservoir_rl.config import config_from_dict
from reservoir_rl.env.blocks import BlockedReservoirEnv, make_blocked_env
from reservoir_rl.env.inflow import synthetic
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.safety import ReleaseGuard
from reservoir_rl.errors import ConfigError

N = 6  # reservoirs per block


def _setting(inflow_scale=(0.6, 1.6)):
    """A config whose training env grows floods and scales inflow (every kind of draw; ``inflow_scale``
    (1, 1): that factor is not drawn), 30-day episodes, and its synthetic record."""
    record = synthetic(n_years=6, seed=3)
    config = config_from_dict({
        "inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6, "seed": 3},
                   "train_inflow_scale": list(inflow_scale), "train_flood_scale": [1.0, 2.0]},
        "env": {"horizon_days": 30},
        "train": {"n_envs": N, "frames_per_batch": N},
    })
    return config, record


@pytest.fixture(scope="module")
def setting():
    return _setting()


def _step_all(env, td, actions, guard):
    if guard is not None:
        actions, _ = guard.apply(actions, td["storage_hm3"], td["observation"], td["day_of_year"])
    td.set("action", actions)
    return env.step_and_maybe_reset(td)


def _twin_run(config, record, seeds, days=120, guarded=True):
    """(single envs' per-day outputs, the blocked env's, the envs, the days that reset some blocks and not
    others) under the same random levels, the release guard applied per reservoir (``guarded``)."""
    singles = [make_env(config, "train", n_envs=N, seed=s, inflow=record, scale_inflow=True) for s in seeds]
    blocked = make_blocked_env(config, seeds, inflow=record)
    guard = ReleaseGuard.for_env(blocked) if guarded else None
    roots = [env.reset() for env in singles]
    root = blocked.reset()
    for k, env in enumerate(singles):  # staggered episodes: most days reset some reservoirs and not others
        state = env.get_state()
        state["steps"] = (torch.arange(N) * 4 + seeds[k]) % config.env.horizon_days
        env.set_state(state)
        blocked.set_block_state(k, state)
    levels = [torch.Generator().manual_seed(seed) for seed in seeds]  # each block's levels from its seed
    single_days, blocked_days, partial_resets = [], [], 0
    for _ in range(days):
        actions = torch.stack([torch.randint(config.env.n_release_levels, (N,), generator=g) for g in levels])
        outs = []
        for k, env in enumerate(singles):
            out, roots[k] = _step_all(env, roots[k], actions[k], guard)
            outs.append(out)
        out, root = _step_all(blocked, root, actions.reshape(-1), guard)
        done = out.get(("next", "done")).reshape(len(seeds), N).any(1)
        partial_resets += int(done.any() and not done.all())
        single_days.append((outs, [r.clone() for r in roots]))
        blocked_days.append((out, root.clone()))
    return single_days, blocked_days, singles, blocked, partial_resets


@pytest.mark.parametrize("guarded, inflow_scale", [(True, (0.6, 1.6)), (False, (1.0, 1.0))])
def test_each_block_is_bitwise_its_single_env(guarded, inflow_scale):
    """With the guard (per reservoir) and without it; with and without the inflow factor."""
    config, record = _setting(inflow_scale)
    seeds = [7, 8, 9]
    single_days, blocked_days, singles, blocked, partial_resets = _twin_run(config, record, seeds, guarded=guarded)
    assert partial_resets > 0  # some days reset one block's reservoirs and not another's
    for (outs, roots), (out, root) in zip(single_days, blocked_days):
        for k in range(len(seeds)):
            rows = blocked.block(k)
            for key, value in outs[k].items(True, True):
                assert torch.equal(value, out.get(key)[rows]), (k, key)
            for key, value in roots[k].items(True, True):
                assert torch.equal(value, root.get(key)[rows]), (k, key)
    for k, env in enumerate(singles):
        single, block = env.get_state(), blocked.block_state(k)
        assert single.keys() == block.keys()
        assert all(torch.equal(single[key], block[key]) for key in single)


def test_a_block_does_not_depend_on_the_other_blocks(setting):
    """Seed 8 alone, second of two, last of three: the same trajectory."""
    config, record = setting
    trajectories = []
    for seeds in ([8], [7, 8], [9, 4, 8]):
        _, blocked_days, _, blocked, _ = _twin_run(config, record, seeds, days=60)
        rows = blocked.block(len(seeds) - 1)
        trajectories.append(torch.stack([out.get(("next", "observation"))[rows] for out, _ in blocked_days]))
    assert torch.equal(trajectories[0], trajectories[1]) and torch.equal(trajectories[0], trajectories[2])


def test_blocks_sharing_one_generator_are_caught(setting, monkeypatch):
    """The twin check can fail: with every block drawing from block 0's generator, block 1 is no longer
    the single env of its seed."""
    config, record = setting
    original = BlockedReservoirEnv.__init__

    def shared_generator(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._generators = [self._generator] * len(self._generators)

    monkeypatch.setattr(BlockedReservoirEnv, "__init__", shared_generator)
    single_days, blocked_days, _, blocked, _ = _twin_run(config, record, [7, 8], days=5)
    rows = blocked.block(1)
    assert not all(
        torch.equal(outs[1].get(("next", "observation")), out.get(("next", "observation"))[rows])
        for (outs, _), (out, _) in zip(single_days, blocked_days)
    )


def test_block_state_round_trip_and_errors(setting):
    config, record = setting
    blocked = make_blocked_env(config, [1, 2], inflow=record)
    blocked.reset()
    single = make_env(config, "train", n_envs=N, seed=5, inflow=record, scale_inflow=True)
    single.reset()
    blocked.set_block_state(1, single.get_state())  # a single env's state fits a block
    state = blocked.block_state(1)
    assert all(torch.equal(value, single.get_state()[key]) for key, value in state.items())
    other = blocked.block_state(0)
    whole = blocked.get_state()
    blocked.set_state(whole)
    assert torch.equal(blocked.block_state(0)["storage_hm3"], other["storage_hm3"])
    with pytest.raises(ConfigError, match="a block of this env has 6"):
        blocked.set_block_state(0, make_env(config, "train", n_envs=3, seed=0, inflow=record).get_state())
    with pytest.raises(ConfigError, match="2 blocks"):
        blocked.set_state({"blocks": [other]})
    with pytest.raises(ValueError):
        BlockedReservoirEnv(N, [], config=config.env, inflow=record)
