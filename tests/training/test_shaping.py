"""Potential-based reward shaping with the SDP's value function: what the agent learns from is shaped, the
shaped rewards telescope, the env's rewards and every reported or evaluated return are not, and 0 is off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reservoir_rl.baselines.sdp import sdp_solution
from reservoir_rl.config import config_from_dict
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.errors import ConfigError
from reservoir_rl.evaluation.rollout import evaluate_policy
from reservoir_rl.monitor.live import QuietView, make_view
from reservoir_rl.training.build import build_training
from reservoir_rl.training.shaping import SDPPotentialShaping, make_shaping
from reservoir_rl.training.trainer import Trainer
from tiny_training import tiny_config

SMALL_SDP = {"sdp": {"storage_levels": 40}}


def config(weight: float, **train):
    return config_from_dict(tiny_config(train={"sdp_potential_weight": weight, **train}, baselines=SMALL_SDP),
                            source="test")


def rollout(cfg, days: int = 30, n_envs: int = 4):
    """``days`` days of ``n_envs`` training episodes under a seeded random policy, (n_envs, days)."""
    env = make_env(cfg, "train", n_envs=n_envs, seed=3)
    generator = torch.Generator().manual_seed(0)

    def policy(td):
        td["action"] = torch.randint(env.n_actions, (n_envs,), generator=generator)
        return td

    return env, env.rollout(days, policy, break_when_any_done=False)


def test_the_shaped_rewards_telescope_to_the_discounted_potential_difference() -> None:
    cfg = config(0.7)
    env, td = rollout(cfg)
    shaping = make_shaping(env, cfg)
    assert isinstance(shaping, SDPPotentialShaping) and shaping.gamma == cfg.agent.gamma
    assert not td["next", "done"].any()  # one uninterrupted stretch of 30 days per env
    shaping_reward = shaping.shaping_reward(td)  # (4, 30) float64
    discounts = cfg.agent.gamma ** torch.arange(td.shape[1], dtype=torch.float64)
    start = shaping.potential(td["day_of_year"][:, 0], td["storage_hm3"][:, 0])
    end = shaping.potential(td["next", "day_of_year"][:, -1], td["next", "storage_hm3"][:, -1])
    total = (shaping_reward * discounts).sum(dim=1)
    assert torch.allclose(total, cfg.agent.gamma ** td.shape[1] * end - start, rtol=1e-9, atol=1e-9)
    # Φ = weight × V̄ of the SDP of the training years
    solution = sdp_solution(env, cfg)
    expected = 0.7 * solution.mean_value(td["day_of_year"][:, 0], td["storage_hm3"][:, 0:1])[:, 0]
    assert torch.allclose(start, expected, rtol=1e-12)
    assert start.abs().min() > 0  # a real potential, not zeros

    # a terminated last step leads to the absorbing state: its potential is 0, the sum is −Φ(s_0)
    ended = td.clone()
    ended["next", "terminated"][:, -1] = True
    total = (shaping.shaping_reward(ended) * discounts).sum(dim=1)
    assert torch.allclose(total, -start, rtol=1e-9, atol=1e-9)
    # a truncated one bootstraps: nothing changes
    truncated = td.clone()
    truncated["next", "truncated"][:, -1] = True
    assert torch.equal(shaping.shaping_reward(truncated), shaping_reward)


def test_shaping_changes_what_the_agent_learns_from_and_nothing_else() -> None:
    parts = build_training(config(0.5), torch.device("cpu"))
    trainer = Trainer(parts, None, None, QuietView())
    batch = next(iter(parts.collector))
    env_reward = batch["next", "reward"].clone()
    transitions = trainer.replay_transitions(batch)  # 1-step transitions (tiny config), in batch order
    assert torch.equal(batch["next", "reward"], env_reward)  # the batch the statistics read keeps the env's
    shaping = trainer.shaping.shaping_reward(batch).to(torch.float32).reshape(-1)
    assert shaping.abs().max() > 0
    assert torch.allclose(transitions["next", "reward"].reshape(-1), env_reward.reshape(-1) + shaping, atol=1e-6)
    parts.close()


def test_weight_zero_is_off_bitwise() -> None:
    parts = build_training(config(0.0), torch.device("cpu"))
    trainer = Trainer(parts, None, None, QuietView())
    assert trainer.shaping is None and make_shaping(parts.env, config(0.0)) is None
    batch = next(iter(parts.collector))
    transitions = trainer.replay_transitions(batch)
    assert torch.equal(transitions["next", "reward"].reshape(-1), batch["next", "reward"].reshape(-1))
    assert torch.equal(transitions["observation"], batch["observation"].reshape(transitions["observation"].shape))
    parts.close()


def test_the_env_and_the_evaluation_never_see_the_shaping() -> None:
    """The same greedy Q-network scores the same returns whatever the shaping weight: evaluate compares
    unshaped returns."""
    results = []
    for weight in (0.0, 2.0):
        parts = build_training(config(weight), torch.device("cpu"))
        if results:
            parts.agent.q_network.load_state_dict(state)
        state = parts.agent.q_network.state_dict()
        results.append(evaluate_policy(parts.eval_env, parts.greedy_policy, parts.eval_seed))
        parts.close()
    assert torch.equal(results[0].metrics["return"], results[1].metrics["return"])
    _, td = rollout(config(0.0))
    _, shaped_config_td = rollout(config(2.0))
    assert torch.equal(td["next", "reward"], shaped_config_td["next", "reward"])


def test_a_shaped_run_trains_and_reports_unshaped_returns(tmp_path: Path) -> None:
    import yaml

    from reservoir_rl.commands.train import train
    from reservoir_rl.runs.checkpoint import load_checkpoint

    path = tmp_path / "shaped.yaml"
    path.write_text(yaml.safe_dump(tiny_config(train={"sdp_potential_weight": 1.0, "total_frames": 512},
                                               baselines=SMALL_SDP)))
    summary = train(path, [], make_view("quiet"), tmp_path / "runs", "shaped", command=["test"])
    assert summary.stopped_by == "done" and summary.frames == 512
    best = load_checkpoint(summary.run_dir / "checkpoints" / "best.pt")
    from reservoir_rl.commands.evaluate import evaluate

    episodes = best["config"]["train"]["eval_episodes"]
    report = evaluate(summary.run_dir, episodes=episodes, years="validation", baselines="none",
                      runs_dir=tmp_path / "runs")
    # the in-training evaluation that picked best.pt scored the env's (unshaped) return, as evaluate does
    assert report.summary["agent"]["return"].value == pytest.approx(best["best_eval_return"], rel=1e-5)


@pytest.mark.parametrize("value", [-0.1, float("inf")])
def test_a_bad_weight_is_refused(value) -> None:
    with pytest.raises(ConfigError, match="sdp_potential_weight"):
        config(value)
