"""Hostile input at the command line: one `error:` line naming what is wrong, exit code 2, no traceback,
nothing created or replaced (non-finite weights, seeds out of range, memory estimates, files that are not
files, --set errors, a smaller evaluation over a larger one)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import torch
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs import resources

from test_errors import SMALL, _config, fails

runner = CliRunner()


@pytest.fixture()
def run_copy(eval_run, tmp_path):
    """A copy of the shared finished run (tests may change it): ``(runs_dir, run_dir)``."""
    runs_dir, run_dir = eval_run
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    return tmp_path / "runs", copy


def test_non_finite_weights_are_refused_by_evaluate_and_flagged_by_inspect(run_copy):
    runs_dir, run = run_copy
    best = run / "checkpoints" / "best.pt"
    payload = ckpt.load_checkpoint(best)
    payload["q_network"]["body.0.weight"][0, 0] = float("nan")
    ckpt.atomic_save(payload, best)
    fails(["evaluate", "tiny", "--episodes", "2", "--baselines", "none", "--runs-dir", runs_dir],
          "best.pt", "non-finite weights", "body.0.weight", "diverged")
    result = runner.invoke(app, ["inspect-checkpoint", str(best), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["non_finite_tensors"] == ["body.0.weight"]
    panel = runner.invoke(app, ["inspect-checkpoint", str(best)])
    assert panel.exit_code == 0 and "non-finite weights" in panel.output and "body.0.weight" in panel.output
    finite = runner.invoke(app, ["inspect-checkpoint", str(run / "checkpoints" / "last.pt"), "--json"])
    assert json.loads(finite.output)["non_finite_tensors"] == []


def test_config_values_that_are_not_finite_in_float32_are_refused(tmp_path):
    runs = tmp_path / "runs"
    config = _config(tmp_path, SMALL)
    fails(["train", config, "--set", "train.lr=.inf", "--runs-dir", runs], "--set 'train.lr=.inf'", "not a finite number")
    huge = _config(tmp_path, {**SMALL, "env": {"horizon_days": 30, "reservoir": {"capacity_hm3": 1.0e39}}}, "huge.yaml")
    fails(["train", huge, "--runs-dir", runs], "huge.yaml", "env.reservoir.capacity_hm3", "beyond float32")
    assert not runs.exists()


@pytest.mark.parametrize("seed", ["-5", "-2000000", str(10**23), str(2**63)])
def test_seeds_out_of_range_are_one_line_everywhere(eval_run, tmp_path, seed):
    runs_dir, _ = eval_run
    message = "a seed must be a whole number with 0 <= seed < 2**63"
    fails(["evaluate", "tiny", "--seed", seed, "--episodes", "1", "--runs-dir", runs_dir], f"--seed {seed}", message)
    config = _config(tmp_path, SMALL)
    fails(["train", config, "--seed", seed, "--runs-dir", tmp_path / "runs"], f"--seed {seed}", message)
    if not seed.startswith("-"):
        fails(["train", config, "--seeds", f"0,{seed}", "--runs-dir", tmp_path / "runs"], f"--seeds '0,{seed}'", message)
    assert not (tmp_path / "runs").exists()


def test_empty_baselines_and_duplicate_keys_are_refused(eval_run, tmp_path):
    runs_dir, _ = eval_run
    fails(["evaluate", "tiny", "--baselines", "", "--runs-dir", runs_dir], "--baselines ''", "empty name")
    duplicate = _config(tmp_path, "train:\n  lr: 0.1\ntrain:\n  seed: 3\n", "dup.yaml")
    fails(["train", duplicate, "--runs-dir", tmp_path / "runs"], "dup.yaml", "line 3", "duplicate key 'train'")


def test_memory_estimates_refuse_before_anything_is_created(run_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 2 * 10**9)  # a 2 GB machine
    runs_dir, run = run_copy
    document = run / "evaluation.json"
    before = document.read_bytes() if document.exists() else None  # (other tests may have evaluated the run)
    fails(["evaluate", "tiny", "--episodes", "100000", "--runs-dir", runs_dir, "--force"],
          "--episodes 100000", "needs about", "of memory; 2.0 GB is available")
    assert (document.read_bytes() if document.exists() else None) == before
    config = _config(tmp_path, SMALL)
    fails(["train", config, "--set", "train.buffer_size=1e12", "--runs-dir", tmp_path / "new"],
          "train.buffer_size = 1,000,000,000,000", "the replay buffer", "TB of memory; 2.0 GB is available")
    fails(["train", config, "--set", "train.n_envs=1e8", "--set", "train.frames_per_batch=1e8", "--runs-dir",
           tmp_path / "new"], "train.frames_per_batch = 100,000,000", "GB of memory")
    assert not (tmp_path / "new").exists()


def test_estimates_follow_the_config():
    from reservoir_rl.config import config_from_dict

    config = config_from_dict({})
    assert resources.evaluation_bytes(config, 100_000, 7) > 80e9  # base config: 365-day episodes, 7 policies
    assert resources.evaluation_bytes(config, 50, 7) < 1e8
    parts = resources.training_bytes(config)
    assert parts["the replay buffer"][1] == 100_000 * resources.transition_bytes(config)
    doubled = config_from_dict({"train": {"buffer_size": 200_000}})
    assert resources.training_bytes(doubled)["the replay buffer"][1] == 2 * parts["the replay buffer"][1]
    resources.check_training_memory(config, available=10**9)  # the base config fits in 1 GB


def test_files_that_are_not_files(tmp_path):
    fails(["train", tmp_path, "--runs-dir", tmp_path / "runs"], str(tmp_path), "is a directory")
    fails(["train", "/dev/zero", "--runs-dir", tmp_path / "runs"], "/dev/zero", "not a regular file")
    fifo = tmp_path / "checkpoint.pt"
    os.mkfifo(fifo)
    for command in ("evaluate", "inspect-checkpoint"):
        fails([command, fifo], "checkpoint.pt", "not a regular file (a FIFO)")  # never opened: it would block
        fails([command, "/dev/zero"], "/dev/zero", "not a regular file (a character device)")


def test_a_smaller_evaluation_keeps_the_run_evaluation_unless_forced(run_copy):
    runs_dir, run = run_copy
    document = run / "evaluation.json"
    common = ["--runs-dir", runs_dir, "--baselines", "sop"]
    assert runner.invoke(app, ["evaluate", "tiny", "--episodes", "3", *common]).exit_code == 0
    larger = document.read_bytes()
    smaller = runner.invoke(app, ["evaluate", "tiny", "--episodes", "2", *common])
    assert smaller.exit_code == 0 and "kept" in smaller.output and "--force" in smaller.output
    fewer_policies = runner.invoke(app, ["evaluate", "tiny", "--episodes", "3", "--runs-dir", runs_dir, "--baselines", "none"])
    assert fewer_policies.exit_code == 0 and document.read_bytes() == larger
    forced = runner.invoke(app, ["evaluate", "tiny", "--episodes", "2", *common, "--force"])
    assert forced.exit_code == 0 and json.loads(document.read_text())["episodes"] == 2


def test_output_files_get_the_mode_of_checkpoints(run_copy, tmp_path):
    runs_dir, run = run_copy
    out, csv = tmp_path / "out.json", tmp_path / "out.csv"
    result = runner.invoke(app, ["evaluate", "tiny", "--episodes", "2", "--baselines", "sop", "--runs-dir", runs_dir,
                                 "--out", out, "--csv", csv, "--force"])
    assert result.exit_code == 0, result.output
    checkpoint_mode = stat.S_IMODE((run / "checkpoints" / "best.pt").stat().st_mode)
    for path in (out, csv, run / "evaluation.json", run / "metadata.yaml", run / "config.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == checkpoint_mode, path


def test_set_errors_name_the_set(tmp_path):
    config = _config(tmp_path, SMALL)
    fails(["train", config, "--set", "env.horizon_days=0", "--runs-dir", tmp_path / "runs"],
          "--set 'env.horizon_days=0': env.horizon_days = 0")
    fails(["train", config, "--set", "train.n_envs=7", "--runs-dir", tmp_path / "runs"],
          "--set 'train.n_envs=7': train: frames_per_batch (64) must be a multiple of n_envs (7)")
    assert yaml.safe_load(config.read_text()) == SMALL
