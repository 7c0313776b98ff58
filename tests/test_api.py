"""The public API (`reservoir_rl.api`, exported from `reservoir_rl`): Policy, make_env, evaluate, train, and the
examples of docs/api.md."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import reservoir_rl as rr
from doc_examples import python_blocks, run_python_blocks
from reservoir_rl.commands.inspect import inspect_checkpoint
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.evaluation.report import EvaluationReport
from reservoir_rl.evaluation.rollout import greedy_actor
from reservoir_rl.runs.locate import read_checkpoint


@pytest.fixture(scope="module")
def policy(eval_run) -> rr.Policy:
    runs_dir, run_dir = eval_run
    return rr.Policy.load(run_dir)


def test_the_package_exports_the_api():
    for name in ("Policy", "make_env", "evaluate", "train", "TrainedRun", "UserError", "CheckpointError", "ConfigError"):
        assert getattr(rr, name) is getattr(rr.api, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        rr.nothing  # noqa: B018


def test_policy_loads_a_run_by_name_folder_or_file_with_its_layout_levels_and_hash(eval_run, policy):
    runs_dir, run_dir = eval_run
    best = run_dir / "checkpoints" / "best.pt"
    assert policy.checkpoint_path == best
    assert rr.Policy.load("tiny", runs_dir=runs_dir).params_sha256 == policy.params_sha256
    assert policy.params_sha256 == inspect_checkpoint(best)["params_sha256"]
    assert policy.obs_dim == 13 and len(policy.observation_layout) == 13
    assert policy.observation_layout[:4] == ("storage_fraction", "season_sin", "season_cos", "forecast_log_ratio_lead_1")
    assert policy.observation_layout[-1] == "forecast_log_ratio_lead_10"
    levels = policy.release_levels_cms
    assert levels.dtype == torch.float64 and levels.tolist() == [40.0 * k for k in range(11)]


def test_act_q_values_and_release_agree_with_the_checkpoints_greedy_actor(policy, eval_run):
    """On observations of a real held-out rollout: the same levels as the actor `evaluate` builds."""
    env = rr.make_env(policy.config, "heldout", n_envs=6, seed=4)
    with torch.no_grad():
        trajectory = env.rollout(40, policy)
    observations = trajectory["observation"].reshape(-1, policy.obs_dim)
    payload, config = read_checkpoint(policy.checkpoint_path)
    actor = greedy_actor(payload, config, env)
    from tensordict import TensorDict

    expected = actor(TensorDict({"observation": observations}, batch_size=[len(observations)]))["action"]
    actions = policy.act(observations)
    assert actions.dtype == torch.int64 and actions.shape == (len(observations),)
    assert torch.equal(actions, expected)
    assert torch.equal(trajectory["action"].reshape(-1), expected)  # policy(td) writes the same levels
    q = policy.q_values(observations)
    assert q.shape == (len(observations), 11) and torch.equal(q.argmax(-1), expected)
    assert torch.equal(policy.release_cms(observations), policy.release_levels_cms[expected])
    # numpy in, numpy out; one observation gives a scalar
    single = observations[7].numpy()
    assert isinstance(policy.act(single), np.ndarray) and policy.act(single).shape == ()
    assert int(policy.act(single)) == int(expected[7])
    assert policy.q_values(single).shape == (11,)
    assert float(policy.release_cms(single)) == 40.0 * int(expected[7])
    assert np.array_equal(policy.act(observations.numpy()), expected.numpy())


def test_observations_of_the_wrong_shape_are_one_line_user_errors(policy):
    for bad in (np.zeros(5), np.float32(1.0), torch.zeros(4, 12)):
        with pytest.raises(rr.UserError, match=r"expected \(13,\) or \(batch, 13\)"):
            policy.act(bad)


def test_guarded_policy_runs_under_the_release_guard(policy):
    env = rr.make_env(policy.config, "heldout", n_envs=4, seed=2)
    guarded = policy.guarded(env)
    assert guarded is not policy
    with torch.no_grad():
        trajectory = env.rollout(30, guarded)
    raw = policy.act(trajectory["observation"])  # (4, 30, obs_dim) → (4, 30)
    assert raw.shape == (4, 30)
    override = trajectory["guard_override"]
    assert torch.equal(override, raw != trajectory["action"])
    off = rr.make_env(policy.config, "heldout", n_envs=4, seed=2, overrides=["env.safety.enabled=false"])
    assert policy.guarded(off) is policy


def test_make_env_takes_a_path_a_dict_or_a_config(tmp_path, policy):
    from reservoir_rl.config import config_to_dict

    raw = config_to_dict(policy.config)
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    envs = [rr.make_env(source, "heldout", n_envs=2, seed=5) for source in (path, raw, policy.config)]
    assert all(isinstance(env, DiscreteReservoirEnv) and env.batch_size == torch.Size([2]) for env in envs)
    first = [env.reset()["observation"] for env in envs]
    assert all(torch.equal(first[0], other) for other in first[1:])
    assert envs[0].water_years == envs[1].water_years
    validation = rr.make_env(raw, "validation", seed=5)
    assert validation.batch_size == torch.Size([1])
    with pytest.raises(rr.ConfigError, match="unknown split 'test'"):
        rr.make_env(raw, "test")
    with pytest.raises(rr.ConfigError, match="config of type int"):
        rr.make_env(3)
    with pytest.raises(rr.ConfigError, match="n_release_levels"):
        rr.make_env(raw, overrides=["env.n_release_levels=1"])


def test_policy_load_refuses_what_is_not_a_checkpoint(tmp_path, eval_run):
    with pytest.raises(rr.CheckpointError, match="checkpoint not found"):
        rr.Policy.load(tmp_path / "none.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(rr.CheckpointError, match="not a checkpoint"):
        rr.Policy.load(text)
    with pytest.raises(rr.UserError, match="unknown run"):
        rr.Policy.load("nope", runs_dir=eval_run[0])


def test_policy_load_refuses_a_multi_seed_run_and_names_a_seed(tmp_path):
    group = tmp_path / "runs" / "multi"
    group.mkdir(parents=True)
    (group / "seeds.yaml").write_text("seeds: [3, 4]\n")
    with pytest.raises(rr.CheckpointError, match=r"a multi-seed run \(seeds 3, 4\); name one seed's run, e.g. .*multi/seed-3"):
        rr.Policy.load("multi", runs_dir=tmp_path / "runs")


def test_evaluate_returns_the_report_the_cli_renders(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    copy = tmp_path / "tiny-copy.pt"
    shutil.copy(run_dir / "checkpoints" / "best.pt", copy)  # a file: the run folder is left as it is
    report = rr.evaluate(copy, episodes=3, baselines="sop", out=tmp_path / "e.json")
    assert isinstance(report, EvaluationReport)
    assert report.policies == ["agent", "sop"] and report.episodes == 3 and report.years == "heldout"
    assert report.per_episode["agent"]["return"].shape == (1, 3)
    assert (tmp_path / "e.json").is_file() and report.files == [tmp_path / "e.json"]
    with pytest.raises(rr.UserError, match="--episodes 0"):
        rr.evaluate(copy, episodes=0)
    start = json.loads((tmp_path / "e.json").read_text())["episode_info"]["start_date"][1]
    rr.evaluate(copy, episodes=3, baselines="sop", trace=tmp_path / "trace", start_dates=[start])
    rows = list(csv.DictReader((tmp_path / "trace" / "trace.csv").open()))
    assert {row["policy"] for row in rows} == {"agent", "sop"} and {row["episode"] for row in rows} == {"1"}
    assert min(row["date"] for row in rows) == start


def test_train_returns_the_run_and_its_best_checkpoint(tmp_path):
    config = {
        "inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6, "seed": 3}},
        "env": {"horizon_days": 30},
        "agent": {"hidden_sizes": [16]},
        "train": {"n_envs": 4, "frames_per_batch": 32, "init_random_frames": 64, "batch_size": 16,
                  "eval_every_frames": 128, "eval_episodes": 2, "checkpoint_every_frames": 128},
        "logging": {"baseline_levels": False},
    }
    run = rr.train(config, runs_dir=tmp_path / "runs", name="api", total_frames=256, seed=5)
    assert run.run_dir == tmp_path / "runs" / "api" and run.name == "api"
    assert (run.frames, run.stopped_by) == (256, "done")
    assert run.best_checkpoint == run.run_dir / "checkpoints" / "best.pt" and run.best_checkpoint.is_file()
    assert run.last_checkpoint.is_file() and run.best_eval_return is not None
    assert run.last_eval is not None and "return" in run.last_eval
    payload, stored = read_checkpoint(run.last_checkpoint)
    assert stored.train.seed == 5 and stored.train.total_frames == 256 and stored.env.horizon_days == 30
    assert run.policy().params_sha256 == rr.Policy.load(run.best_checkpoint).params_sha256
    with pytest.raises(rr.ConfigError, match="train.batch_size"):
        rr.train(config, runs_dir=tmp_path / "runs", overrides=["train.batch_size=0"])
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["api"]  # a bad config leaves nothing


def test_the_docs_page_examples_run(tmp_path, monkeypatch, capsys):
    assert len(python_blocks("docs/api.md")) >= 4
    namespace = run_python_blocks("docs/api.md", tmp_path, monkeypatch)
    assert namespace["run"].frames == 256 and (tmp_path / "runs" / "api-demo" / "evaluation.json").is_file()
    assert "runs/api-demo/checkpoints/no-such.pt: checkpoint not found" in capsys.readouterr().out


def test_a_relative_inflow_path_of_a_dict_is_made_absolute_against_the_working_folder(tmp_path, monkeypatch):
    from reservoir_rl.api import _config

    monkeypatch.chdir(tmp_path)
    config = _config({"inflow": {"source": "csv", "path": "records/flow.csv"}}, ["train.seed=4"])
    assert config.inflow.path == str(tmp_path / "records" / "flow.csv") and config.train.seed == 4
    assert _config(config).inflow.path == str(tmp_path / "records" / "flow.csv")
