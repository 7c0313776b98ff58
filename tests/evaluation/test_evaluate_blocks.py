"""K seeds' validation evaluations as one rollout (reservoir_rl.evaluation.blocks): block k's result is
bitwise `evaluate_policy` on seed k's own validation env — metrics, trajectory and baseline returns —
also when one block's episodes all end days before the others'."""

from __future__ import annotations

import torch

from reservoir_rl.config import config_from_dict
from reservoir_rl.env.blocks import make_blocked_env
from reservoir_rl.env.inflow import synthetic
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.evaluation.blocks import blocked_baseline_returns, evaluate_blocks
from reservoir_rl.evaluation.rollout import evaluate_policy
from reservoir_rl.evaluation.validation import baseline_returns

EPISODES = 3
SEEDS = [11, 12, 13]


def _setting(horizon_days=90):
    record = synthetic(n_years=6, seed=3)
    config = config_from_dict({
        "inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6, "seed": 3}},
        "env": {"horizon_days": horizon_days, "safety": {"enabled": False}},
        "train": {"eval_episodes": EPISODES},
        "baselines": {"dp_storage_levels": 60, "mpc": {"storage_levels": 40}, "sdp": {"storage_levels": 30}},
    })
    return config, record


def level_of_seed(levels):
    """A policy releasing ``levels[k]`` in block k (a block of EPISODES envs), whatever the state."""
    def policy(td):
        n = td.batch_size[0]
        td.set("action", torch.tensor(levels).repeat_interleave(EPISODES)[:n] if n > EPISODES
               else torch.full((n,), levels[0]))
        return td
    return policy


def _assert_same(ours, theirs):
    assert ours.metrics.keys() == theirs.metrics.keys()
    for name in theirs.metrics:
        assert torch.equal(ours.metrics[name], theirs.metrics[name]) or (
            torch.isnan(ours.metrics[name]).all() and torch.isnan(theirs.metrics[name]).all()), name
    assert ours.trajectory.batch_size == theirs.trajectory.batch_size
    assert torch.equal(ours.trajectory.get(("next", "storage_hm3")), theirs.trajectory.get(("next", "storage_hm3")))


def test_each_block_is_evaluated_as_its_own_env_also_when_it_ends_first():
    config, record = _setting()
    blocked = make_blocked_env(config, SEEDS, inflow=record, split="validation", block_size=EPISODES, scale_inflow=False)
    levels = [10, 3, 4]  # block 0 empties the lake: its episodes end in drought failures long before the horizon
    results = evaluate_blocks(blocked, level_of_seed(levels))
    days = []
    for k, seed in enumerate(SEEDS):
        own = make_env(config, "validation", n_envs=EPISODES, seed=seed, inflow=record)
        theirs = evaluate_policy(own, level_of_seed([levels[k]]), seed)
        _assert_same(results[k], theirs)
        days.append(theirs.trajectory.batch_size[1])
    assert days[0] < days[1]  # the case the cut is for
    again = evaluate_blocks(blocked, level_of_seed(levels))  # reseeded: the same episodes every time
    _assert_same(again[1], results[1])


def test_baseline_returns_of_every_block_are_those_of_its_own_env():
    config, record = _setting(horizon_days=30)  # (the MPC plans every day)
    blocked = make_blocked_env(config, SEEDS[:2], inflow=record, split="validation", block_size=EPISODES,
                               scale_inflow=False)
    together = blocked_baseline_returns(blocked, config)
    for k, seed in enumerate(SEEDS[:2]):
        own = make_env(config, "validation", n_envs=EPISODES, seed=seed, inflow=record)
        assert together[k] == baseline_returns(own, config, seed)
    assert together[0] != together[1]
