"""`tune`: a study of ordinary runs chosen on the validation years; best.yaml is the best trial's config;
a killed or interrupted tune continues its study; pruned trials are stopped runs; refusals are one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reservoir_rl.commands import train as train_service
from reservoir_rl.commands import tune as service
from reservoir_rl.config import load_config
from reservoir_rl.errors import InflowDataError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs.folders import RunDir, find_run

optuna = pytest.importorskip("optuna")

# 512 frames, validation evaluations at 256 and 512 on the last training year (kept out of training)
TINY = {
    "inflow": {"source": "synthetic", "heldout_water_years": 2, "validation_water_years": 1,
               "synthetic": {"n_years": 6, "seed": 3}},
    "env": {"horizon_days": 60},
    "baselines": {"dp_storage_levels": 200, "sdp": {"storage_levels": 50}},
    "agent": {"hidden_sizes": [16]},
    "train": {
        "total_frames": 512, "n_envs": 8, "frames_per_batch": 64, "init_random_frames": 128, "buffer_size": 2048,
        "batch_size": 32, "eps_decay_frames": 400, "eval_every_frames": 256, "eval_episodes": 2,
        "checkpoint_every_frames": 256, "keep_checkpoints": 2, "seed": 5,
    },
    "logging": {"log_every_frames": 128, "histogram_every_frames": 100_000, "figure_every_frames": 100_000,
                "baseline_levels": False},
}
SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
    "train.batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "agent.hidden_sizes": {"type": "layers", "width": [8, 16], "depth": [1, 2]},
}


def _files(tmp_path: Path, **inflow) -> tuple[Path, Path]:
    config = {**TINY, "inflow": {**TINY["inflow"], **inflow}}
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(SPACE))
    return config_path, space_path


class PruneAll(optuna.pruners.BasePruner):
    """Prunes every trial at its first report."""

    def prune(self, study, trial) -> bool:
        return True


class InterruptAtFirstReport(optuna.pruners.BasePruner):
    """Sends this process SIGINT (as Ctrl-C does) at a trial's first report; prunes nothing."""

    def prune(self, study, trial) -> bool:
        os.kill(os.getpid(), signal.SIGINT)
        return False


def test_a_study_runs_its_trials_and_best_yaml_is_the_best_trials_config(tmp_path: Path) -> None:
    config_path, space_path = _files(tmp_path)
    messages: list[str] = []
    result = service.tune(config_path, 2, space_path=space_path, runs_dir=tmp_path / "runs", on_message=messages.append)
    tune_dir = tmp_path / "runs" / "tune-tiny"
    assert result.study_name == "tiny" and result.tune_dir == tune_dir
    assert result.storage == f"sqlite:///{(tune_dir / 'study.db').resolve()}"
    assert [(row.number, row.state) for row in result.trials] == [(0, "COMPLETE"), (1, "COMPLETE")]
    assert [m.split(":")[0] for m in messages] == ["trial 0", "trial 1"]
    best = max(result.trials, key=lambda row: row.value)
    assert (result.best_number, result.best_value) == (best.number, best.value)
    for row in result.trials:  # each trial is an ordinary run with its sampled config
        run = find_run(f"tune-tiny/trial-{row.number}", tmp_path / "runs")
        assert run.best_checkpoint.is_file() and run.config_path.is_file()
        assert load_config(run.config_path).train.lr == pytest.approx(row.params["train.lr"])
        assert row.frames == 512
    # the value is the best validation return of the run (the one best.pt was picked on)
    best_run = RunDir(tune_dir / f"trial-{best.number}")
    payload = __import__("torch").load(best_run.best_checkpoint, weights_only=False)
    assert payload["best_eval_return"] == pytest.approx(best.value)
    assert result.best_config == tune_dir / "best.yaml"
    config = load_config(result.best_config)  # a complete config that `train` accepts
    assert config.train.lr == pytest.approx(best.params["train.lr"])
    assert config.train.batch_size == best.params["train.batch_size"]
    assert config.agent.hidden_sizes == [best.params["agent.hidden_sizes.width"]] * best.params["agent.hidden_sizes.depth"]
    assert config.inflow.validation_water_years == 1 and config.train.total_frames == 512
    assert result.importance_figure == tune_dir / "param_importance.png" and result.importance_figure.is_file()
    assert set(result.importances) <= set(best.params) and result.importances


def test_an_interrupted_or_killed_tune_continues_its_study(tmp_path: Path) -> None:
    config_path, space_path = _files(tmp_path)
    runs = tmp_path / "runs"
    first = service.tune(config_path, 1, space_path=space_path, runs_dir=runs)
    assert [row.state for row in first.trials] == ["COMPLETE"]

    # Ctrl-C during trial 1: it stops with a checkpoint, ends failed; the report is still written
    second = service.tune(config_path, 3, space_path=space_path, runs_dir=runs, pruner=InterruptAtFirstReport())
    assert second.stopped_by == "SIGINT"
    assert [(row.number, row.state) for row in second.trials] == [(0, "COMPLETE"), (1, "FAIL")]
    assert second.trials[1].note == "SIGINT at frame 256"
    assert second.best_number == 0 and (runs / "tune-tiny" / "best.yaml").is_file()
    assert RunDir(runs / "tune-tiny" / "trial-1").last_checkpoint.is_file()  # a stopped run, resumable

    # a process killed in trial 2 leaves it RUNNING in the storage
    study = optuna.load_study(study_name="tiny", storage=second.storage)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", gone.pid)
    assert trial.number == 2

    messages: list[str] = []
    third = service.tune(config_path, 4, space_path=space_path, runs_dir=runs, on_message=messages.append)
    assert third.marked_failed == [2] and messages[0].startswith("trial 2: left running")
    assert [(row.number, row.state) for row in third.trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "FAIL"),
                                                                 (3, "COMPLETE")]
    assert (runs / "tune-tiny" / "trial-3" / "config.yaml").is_file()
    assert third.stopped_by is None


def test_a_pruned_trial_is_a_stopped_run_that_resumes(tmp_path: Path) -> None:
    config_path, space_path = _files(tmp_path)
    runs = tmp_path / "runs"
    result = service.tune(config_path, 1, study_name="p", space_path=space_path, runs_dir=runs, pruner=PruneAll())
    (row,) = result.trials
    assert (row.state, row.note, row.frames) == ("PRUNED", "pruned at frame 256", 256)
    assert result.best_config is None and not (runs / "tune-p" / "best.yaml").exists()
    assert any("no trial completed" in note for note in result.notes)
    run = RunDir(runs / "tune-p" / "trial-0")
    path, payload = train_service.latest_checkpoint(run)
    assert payload["counters"]["frames"] == 256 and run.best_checkpoint.is_file()
    resumed = train_service.resume(str(run.path), QuietView(), runs)
    assert (resumed.stopped_by, resumed.frames) == ("done", 512)


def test_tune_refuses_training_years_and_held_out_years(tmp_path: Path) -> None:
    config_path, space_path = _files(tmp_path, validation_water_years=0)
    with pytest.raises(UserError) as error:
        service.tune(config_path, 2, space_path=space_path, runs_dir=tmp_path / "runs")
    message = str(error.value)
    assert "\n" not in message and "inflow.validation_water_years is 0" in message
    assert "--set inflow.validation_water_years=5" in message
    assert not (tmp_path / "runs").exists()
    # water years 1991 … 1996; 1995 and 1996 are held out
    with pytest.raises(InflowDataError, match=r"validation water year\(s\) \[1996\] are not training water years"):
        service.tune(config_path, 2, space_path=space_path, runs_dir=tmp_path / "runs",
                     overrides=["inflow.validation_water_years=[1994, 1996]"])
    assert not (tmp_path / "runs").exists()


def test_without_optuna_tune_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path, space_path = _files(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(UserError, match=r"pip install 'reservoir-rl\[tune\]'"):
        service.tune(config_path, 2, space_path=space_path, runs_dir=tmp_path / "runs")


def test_a_sampled_config_the_validation_refuses_is_a_failed_trial_and_the_study_goes_on(tmp_path: Path) -> None:
    config_path, _ = _files(tmp_path)
    space_path = tmp_path / "bad.yaml"
    space_path.write_text("train.batch_size: {type: categorical, choices: [0]}\n")  # batch_size must be >= 1
    result = service.tune(config_path, 2, space_path=space_path, runs_dir=tmp_path / "runs")
    assert [row.state for row in result.trials] == ["FAIL", "FAIL"]
    assert all("train.batch_size" in row.note and "\n" not in row.note for row in result.trials)
    assert result.best_config is None and not (tmp_path / "runs" / "tune-tiny" / "trial-0").exists()
