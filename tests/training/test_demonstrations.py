"""DQfD's demonstrations (``train.demonstrations``): the teacher's transitions are its own guarded actions on
training episodes, pre-training makes the agent act like it, every update carries them, and vectorized seeds
and resume stay exact with them."""

from __future__ import annotations

import pytest
import torch

from reservoir_rl.commands.seeds import train_seeds
from reservoir_rl.commands.train import train
from reservoir_rl.config import config_from_dict
from reservoir_rl.errors import ConfigError
from reservoir_rl.monitor.live import QuietView, make_view
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.training.build import build_training
from reservoir_rl.training.demonstrations import collect_demonstrations
from reservoir_rl.training.trainer import Trainer
from tiny_training import tiny_config, write_config

SMALL_SDP = {"sdp": {"storage_levels": 40}}
DEMONSTRATIONS = {"teacher": "sdp", "episodes": 4, "pretrain_updates": 60, "batch_size": 8}


def config(**demonstrations):
    return config_from_dict(tiny_config(train={"demonstrations": {**DEMONSTRATIONS, **demonstrations}},
                                        baselines=SMALL_SDP, logging={"baseline_levels": False}), source="test")


def test_the_demonstrations_are_the_teachers_own_actions_on_training_episodes() -> None:
    cfg = config()
    parts = build_training(cfg, torch.device("cpu"))
    demonstrations = collect_demonstrations(cfg, parts.inflow, "cpu")
    transitions = demonstrations.transitions
    assert demonstrations.size == 4 * cfg.env.horizon_days  # one-step transitions, every day of 4 episodes
    assert transitions["action"].dtype == torch.int64 and transitions["action"].shape == (demonstrations.size,)
    assert len(set(transitions["action"].tolist())) > 1
    assert torch.isfinite(transitions["next", "reward"]).all()
    # the same transitions every time (resume recomputes them)
    again = collect_demonstrations(cfg, parts.inflow, "cpu")
    for key, value in transitions.items():
        assert torch.equal(value, again.transitions[key]), key


def test_no_teacher_is_no_demonstrations_and_a_foresight_teacher_is_refused() -> None:
    plain = config_from_dict(tiny_config(), source="test")
    parts = build_training(plain, torch.device("cpu"))
    assert collect_demonstrations(plain, parts.inflow, "cpu") is None
    with pytest.raises(ConfigError, match="train.demonstrations.teacher 'dp': choose a baseline that does not know"):
        collect_demonstrations(config(teacher="dp"), parts.inflow, "cpu")


def test_pretraining_makes_the_greedy_agent_follow_the_teacher() -> None:
    cfg = config(pretrain_updates=300, margin_weight=1.0)
    parts = build_training(cfg, torch.device("cpu"))
    trainer = Trainer(parts, None, None, QuietView())
    transitions = trainer.demonstrations.transitions

    def agreement() -> float:
        with torch.no_grad():
            greedy = parts.agent.q_network(transitions["observation"]).argmax(-1)
        return float((greedy == transitions["action"]).float().mean())

    before = agreement()
    trainer.pretrain()
    assert trainer.pretrain_updates == 300 and trainer.updates == 0 and trainer.frames == 0
    after = agreement()
    assert after > before + 0.4, (before, after)  # e.g. 4 % → 53 % of the teacher's actions
    trainer.pretrain()  # done once: nothing more
    assert trainer.pretrain_updates == 300


def test_every_update_carries_the_demonstration_rows() -> None:
    cfg = config()
    parts = build_training(cfg, torch.device("cpu"))
    trainer = Trainer(parts, None, None, QuietView())
    batch = next(iter(parts.collector))
    parts.replay_buffer.extend(trainer.replay_transitions(batch))
    sample, index, weights = trainer.replay_sample()
    assert index.shape == (cfg.train.batch_size,) and weights is None
    assert sample["observation"].shape[0] == cfg.train.batch_size + 8
    demo_rows = sample["observation"][-8:]
    stored = trainer.demonstrations.transitions["observation"]
    assert all(bool((stored == row).all(-1).any()) for row in demo_rows)  # the last rows are the teacher's


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("demonstrations")
    return root, write_config(root, train={"total_frames": 512, "demonstrations": DEMONSTRATIONS},
                              baselines=SMALL_SDP, logging={"baseline_levels": False})


def test_vectorized_seeds_with_demonstrations_are_their_plain_runs_and_resume_exactly(demo_config) -> None:
    root, path = demo_config
    plain = train(path, [], make_view("quiet"), root / "plain", "seed-8", seed=8, command=["t"]).run_dir
    pair = train_seeds(path, [7, 8], [], root / "runs", "pair", command=["t"], vectorized=True, max_parallel=1)
    ours, theirs = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (pair.run_dir / "seed-8", plain))
    assert ours["counters"] == theirs["counters"] and ours["counters"]["pretrain_updates"] == 60
    for name in theirs["loss_module"]:
        assert torch.equal(ours["loss_module"][name], theirs["loss_module"][name]), name
    # stopped at 256, resumed to 512: the run that never stopped
    half = train(path, ["train.total_frames=256"], make_view("quiet"), root / "plain", "half", seed=8,
                 command=["t"]).run_dir
    from reservoir_rl.commands.train import resume

    resume("half", make_view("quiet"), runs_dir=root / "plain", total_frames=512, command=["r"])
    resumed = load_checkpoint(half / "checkpoints" / "last.pt")
    assert resumed["counters"] == theirs["counters"]
    for name in theirs["loss_module"]:
        assert torch.equal(resumed["loss_module"][name], theirs["loss_module"][name]), name
