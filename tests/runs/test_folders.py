"""Run folders: ``run-N`` numbering, ``--name``, lookup, and what a run records about itself."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from reservoir_rl.config import load_config
from reservoir_rl.errors import ConfigError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.commands import train as service
from reservoir_rl.runs.folders import (
    create_run,
    find_run,
    git_state,
    next_run_name,
    package_versions,
    run_lock,
    write_run_file,
)
from tiny_training import write_config


def test_run_numbers_continue_after_the_highest_existing_one(tmp_path: Path) -> None:
    assert next_run_name(tmp_path / "missing") == "run-1"
    assert create_run(tmp_path).name == "run-1"
    assert create_run(tmp_path).name == "run-2"
    (tmp_path / "run-9").mkdir()
    (tmp_path / "run-x").mkdir()  # not a run number
    (tmp_path / "my-run-12").mkdir()
    run = create_run(tmp_path)
    assert run.name == "run-10"
    assert run.checkpoints.is_dir() and not any(run.checkpoints.iterdir())


def test_a_named_run_is_created_once_and_never_overwritten(tmp_path: Path) -> None:
    run = create_run(tmp_path, "baseline-a")
    marker = run.path / "notes.txt"
    marker.write_text("mine")
    with pytest.raises(UserError, match="run already exists.*resume baseline-a"):
        create_run(tmp_path, "baseline-a")
    assert marker.read_text() == "mine"
    for bad in ("../escape", "a/b", "", ".hidden", "with space"):
        with pytest.raises(UserError, match="--name"):
            create_run(tmp_path, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline-a"]


def test_a_runs_folder_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "runs"
    target.write_text("x")
    with pytest.raises(UserError, match="runs folder is not a directory"):
        create_run(target)


def test_find_run_by_name_or_path_and_hint_at_known_runs(tmp_path: Path) -> None:
    run = create_run(tmp_path)
    assert find_run("run-1", tmp_path).path == run.path
    assert find_run(str(run.path), tmp_path / "elsewhere").path == run.path
    with pytest.raises(UserError, match="unknown run 'run-7'; runs in .*: run-1"):
        find_run("run-7", tmp_path)
    with pytest.raises(UserError, match="no runs in"):
        find_run("run-1", tmp_path / "empty")


def test_the_unknown_run_hint_lists_every_run_or_says_how_many_more_exist(tmp_path: Path) -> None:
    for _ in range(8):
        create_run(tmp_path)
    with pytest.raises(UserError) as error:
        find_run("run-99", tmp_path)
    assert str(error.value).endswith(": " + ", ".join(f"run-{i}" for i in range(1, 9)))  # all 8, in number order
    for _ in range(4):
        create_run(tmp_path)
    with pytest.raises(UserError) as error:
        find_run("run-99", tmp_path)
    message = str(error.value)
    assert "12 runs in" in message and "run-5, run-6, run-7, run-8, run-9, run-10, run-11, run-12" in message
    assert "(4 more: ls " in message and "run-4," not in message


def test_a_training_run_records_config_command_versions_and_commit(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, train={"total_frames": 128})
    runs = tmp_path / "runs"
    command = ["reservoir-rl", "train", str(config_path), "--seed", "5"]
    first = service.train(config_path, [], QuietView(), runs, seed=5, command=command)
    second = service.train(config_path, ["agent.gamma=0.9"], QuietView(), runs, name="gamma", command=command)
    assert (first.run_dir.name, second.run_dir.name) == ("run-1", "gamma")
    assert create_run(runs).name == "run-2"  # a named run does not take a number

    resolved = load_config(first.run_dir / "config.yaml")  # the resolved config reloads as it ran
    assert resolved.train.seed == 5 and resolved.train.total_frames == 128
    assert load_config(second.run_dir / "config.yaml").agent.gamma == 0.9

    [entry] = yaml.safe_load((first.run_dir / "metadata.yaml").read_text())
    assert entry["event"] == "train" and entry["command"] == " ".join(command)
    assert entry["seed"] == 5 and entry["device"] == "cpu"
    versions = entry["package_versions"]
    assert {"python", "torch", "torchrl", "tensordict", "numpy"} <= set(versions)
    assert versions == package_versions()
    sha, dirty = git_state()
    assert entry["git_sha"] == sha and entry["git_dirty"] == dirty
    source = Path(service.__file__).parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True)
    if head.returncode == 0:  # this checkout is a git repository: the commit is recorded
        assert entry["git_sha"] == head.stdout.strip() and len(entry["git_sha"]) == 40
    assert (first.run_dir / "tensorboard").is_dir()
    assert (first.run_dir / "checkpoints" / "last.pt").is_file()

    service.resume("run-1", QuietView(), runs, total_frames=192, command=["reservoir-rl", "resume", "run-1"])
    history = yaml.safe_load((first.run_dir / "metadata.yaml").read_text())
    assert [e["event"] for e in history] == ["train", "resume from frame 128"]
    assert load_config(first.run_dir / "config.yaml").train.total_frames == 192


def test_git_state_outside_a_repository_is_none(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)


def test_a_bad_config_leaves_no_run_folder(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, train={"frames_per_batch": 60, "n_envs": 8})
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="train: frames_per_batch \\(60\\) must be a multiple of n_envs \\(8\\)"):
        service.train(config_path, [], QuietView(), runs)
    with pytest.raises(ConfigError, match="train.lr"):
        service.train(config_path, ["train.frames_per_batch=64", "train.lr=-1"], QuietView(), runs)
    assert not runs.exists() or not any(runs.iterdir())


def test_a_run_being_trained_cannot_be_resumed_twice(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, train={"total_frames": 64})
    runs = tmp_path / "runs"
    summary = service.train(config_path, [], QuietView(), runs, name="busy")
    run = find_run("busy", runs)
    with run_lock(run):  # stands for a training process still working in the folder
        with pytest.raises(UserError, match="another process is training this run right now"):
            service.resume("busy", QuietView(), runs, total_frames=128)
    assert service.resume("busy", QuietView(), runs, total_frames=128).frames == 128  # released
    assert summary.frames == 64


def test_a_run_file_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metadata.yaml"
    write_run_file(path, "- event: train\n")
    write_run_file(path, "- event: train\n- event: resume\n")
    assert path.read_text(encoding="utf-8") == "- event: train\n- event: resume\n"

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError) as info:
        write_run_file(path, "- event: lost\n")
    monkeypatch.undo()
    assert str(info.value) == f"{path}: cannot write it (No space left on device); any earlier version is unchanged"
    assert path.read_text(encoding="utf-8") == "- event: train\n- event: resume\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.yaml"]  # no temporary file left
