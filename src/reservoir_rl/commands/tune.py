"""Use case `tune`: an Optuna study whose trials are ordinary runs (``runs/tune-NAME/trial-K``), each a
config sampled from the search space and trained with `reservoir_rl.commands.train.train`.

The objective is the validation return: each in-training evaluation (on ``inflow.validation_water_years``,
kept out of training) is reported to the pruner, and a trial's value is its best one — the evaluation that
picked its ``best.pt``. The held-out years are never seen. At the end (also after Ctrl-C or a fatal error)
the best trial's complete config is written as ``best.yaml`` and the parameters' importances drawn beside it.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from reservoir_rl.config import Config, config_from_dict, config_to_dict, dump_config, load_config
from reservoir_rl.commands.train import train
from reservoir_rl.env.inflow import split_validation, split_water_years
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import ConfigError, UserError
from reservoir_rl.monitor.figures import save_figure
from reservoir_rl.monitor.live import make_view
from reservoir_rl.monitor.tune_figures import importance_figure
from reservoir_rl.runs.folders import NAME_PATTERN, check_writable_folder, write_run_file
from reservoir_rl.runs.processes import stop_signal_handler
from reservoir_rl.training.trainer import PRUNED, TrainingDiverged
from reservoir_rl.tuning import optuna_module
from reservoir_rl.tuning.space import SearchSpace, load_space
from reservoir_rl.tuning.study import (
    TrialRow,
    best_trial,
    finished_count,
    open_study,
    param_importances,
    trial_rows,
)

BEST_CONFIG = "best.yaml"
IMPORTANCE_FIGURE = "param_importance.png"
STUDY_FILE = "study.db"

Messages = Optional[Callable[[str], None]]


@dataclass
class TuneResult:
    """What `tune` did: the study, its trials (every trial of the study, also those of other machines and
    earlier invocations), the best one and the files written."""

    study_name: str
    storage: str  # the storage URL, password hidden
    tune_dir: Path
    trials: list[TrialRow]
    best_number: Optional[int]
    best_value: Optional[float]
    best_config: Optional[Path]  # best.yaml (None: no trial completed)
    importance_figure: Optional[Path]
    importances: dict[str, float]
    stopped_by: Optional[str] = None  # None (all trials ran), "timeout", or the signal that stopped the tune
    error: Optional[str] = None  # a fatal error that ended the tune (the report is still written)
    marked_failed: list[int] = field(default_factory=list)  # RUNNING trials of a killed tune, marked failed
    notes: list[str] = field(default_factory=list)


class _Interrupted(Exception):
    """SIGINT / SIGTERM stopped the trial being trained (it ends as a failed trial, its run folder kept)."""


@dataclass
class _Stop:
    """The first SIGINT / SIGTERM outside a trial's training asks the tune to stop before the next trial; a
    second one stops it at once."""

    signal: Optional[str] = None

    def handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:
            raise _Interrupted(f"{name} again: stopped at once")
        self.signal = name


def check_validation_years(config: Config, config_path: str | Path) -> None:
    """A one-line `UserError` unless the config keeps validation water years out of training: tune chooses
    on them, never on the training years (validation_water_years: 0 evaluates on those) or the held-out ones."""
    years = config.inflow.validation_water_years
    if (isinstance(years, int) and years <= 0) or (isinstance(years, list) and not years):
        raise UserError(
            f"{config_path}: inflow.validation_water_years is {years!r}: tune chooses on validation water years "
            "kept out of training (never on training or held-out years); set some, e.g. "
            "--set inflow.validation_water_years=5"
        )
    record = load_inflow(config.inflow)
    train_years, _heldout = split_water_years(record, config.inflow.heldout_water_years)
    split_validation(record, train_years, years)  # held-out years in an explicit list: a one-line error


def default_study_name(config_path: str | Path) -> str:
    """The config file's name without its suffix (``configs/base.yaml`` → ``base``)."""
    return Path(config_path).stem


def tune(
    config_path: str | Path,
    trials: int,
    storage: Optional[str] = None,
    study_name: Optional[str] = None,
    space_path: Optional[str | Path] = None,
    timeout_seconds: Optional[float] = None,
    overrides: Optional[list[str]] = None,
    runs_dir: str | Path = "runs",
    on_message: Messages = None,
    on_warning: Messages = None,
    pruner: Any = None,
    command: Optional[list[str]] = None,
) -> TuneResult:
    """Run trials of the study until it holds ``trials`` finished ones (complete, pruned or failed, on any
    machine sharing it), ``timeout_seconds`` have passed (no trial starts after that), or a signal stops it.

    ``storage`` (any URL Optuna accepts) defaults to SQLite in ``runs_dir/tune-NAME/study.db``; ``study_name``
    to the config file's name; ``space_path`` to the shipped space; ``pruner`` to a median pruner."""
    optuna = optuna_module()
    if trials < 1:
        raise UserError(f"--trials {trials}: give at least 1")
    if timeout_seconds is not None and not timeout_seconds > 0:
        raise UserError(f"--timeout {timeout_seconds}: give a number of seconds above 0")
    overrides = list(overrides or [])
    config = load_config(config_path, overrides)
    check_validation_years(config, config_path)
    space = load_space(space_path)
    space.overrides(_Probe(), config)  # a fraction's `of` key holds a number (a one-line error if not)
    name = study_name or default_study_name(config_path)
    if not NAME_PATTERN.match(name):
        raise UserError(f"study name {name!r}: use letters, digits, '.', '_' or '-' (give --study NAME)")
    tune_dir = Path(runs_dir) / f"tune-{name}"
    check_writable_folder(tune_dir, "tune folder")
    storage_url = storage or f"sqlite:///{(tune_dir / STUDY_FILE).resolve()}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the study and its trials are reported here
    try:
        return _run(optuna, config_path, trials, storage_url, name, space, timeout_seconds, overrides, config,
                    tune_dir, on_message, on_warning, pruner, command or sys.argv)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _run(optuna: Any, config_path: str | Path, trials: int, storage_url: str, name: str, space: SearchSpace,
         timeout_seconds: Optional[float], overrides: list[str], config: Config, tune_dir: Path,
         on_message: Messages, on_warning: Messages, pruner: Any, command: list[str]) -> TuneResult:
    """The study opened, trials run until one of `tune`'s ends, the report written."""
    info = open_study(storage_url, name, config.train.seed, pruner)
    study = info.study
    for number in info.marked_failed:
        _say(on_message, f"trial {number}: left running by a process that ended; marked failed")
    stop = _Stop()
    objective = _Objective(config_path, overrides, space, config, tune_dir, stop, on_message, _once(on_warning), command)
    started = time.monotonic()
    result_error: Optional[str] = None
    stopped_by: Optional[str] = None
    try:
        with stop_signal_handler(stop.handle):
            while finished_count(study) < trials:
                if stop.signal is not None:
                    stopped_by = stop.signal
                    break
                if timeout_seconds is not None and time.monotonic() - started >= timeout_seconds:
                    stopped_by = "timeout"
                    break
                study.optimize(objective, n_trials=1, catch=(ConfigError, TrainingDiverged))
                objective.report_last(study)
    except _Interrupted as error:
        stopped_by = stop.signal or str(error)
        objective.report_last(study)
    except UserError as error:
        result_error = str(error)
        objective.report_last(study)
    return _finish(study, info, tune_dir, stopped_by, result_error)


class _Probe:
    """A stand-in trial that takes every distribution's low end: checks a space applies to a config."""

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return choices[0]


def _say(on_message: Messages, text: str) -> None:
    if on_message is not None:
        on_message(text)


def _once(on_warning: Messages) -> Messages:
    """Each plausibility warning once for the whole tune, not once per trial."""
    if on_warning is None:
        return None
    seen: set[str] = set()

    def warn(text: str) -> None:
        if text not in seen:
            seen.add(text)
            on_warning(text)

    return warn


class _Objective:
    """One trial: sample the overrides, validate the config, train ``trial-K``, report every validation
    evaluation to the pruner; the value is the trial's best validation return."""

    def __init__(self, config_path: str | Path, overrides: list[str], space: SearchSpace, config: Config,
                 tune_dir: Path, stop: _Stop, on_message: Messages, on_warning: Messages, command: list[str]) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self.space = space
        self.config = config
        self.tune_dir = tune_dir
        self.stop = stop
        self.on_message = on_message
        self.on_warning = on_warning
        self.command = command
        self.last_number: Optional[int] = None
        self.started = 0.0

    def __call__(self, trial: Any) -> float:
        optuna = optuna_module()
        self.last_number = trial.number
        self.started = time.monotonic()
        run_name = f"trial-{trial.number}"
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("run_dir", str(self.tune_dir / run_name))
        if self.stop.signal is not None:
            trial.set_user_attr("stopped_by", f"{self.stop.signal} before it started")
            raise _Interrupted(self.stop.signal)
        try:
            sets = [*self.overrides, *self.space.overrides(trial, self.config)]
            trial.set_user_attr("overrides", sets)
            config = load_config(self.config_path, sets)  # every sampled config passes the normal validation
            trial.set_user_attr("config", config_to_dict(config))

            def report(frames: int, validation_return: float) -> bool:
                trial.report(validation_return, step=frames)
                return trial.should_prune()

            summary = train(self.config_path, sets, make_view("quiet"), self.tune_dir, run_name,
                            command=self.command, on_warning=self.on_warning, on_evaluation=report)
        except UserError as error:
            trial.set_user_attr("error", str(error))
            raise
        if summary.stopped_by == PRUNED:
            trial.set_user_attr("stopped_by", f"pruned at frame {summary.frames:,}")
            raise optuna.TrialPruned()
        if summary.stopped_by != "done":
            self.stop.signal = summary.stopped_by
            trial.set_user_attr("stopped_by", f"{summary.stopped_by} at frame {summary.frames:,}")
            raise _Interrupted(summary.stopped_by)
        if summary.best_eval_return is None:
            trial.set_user_attr("error", "no validation evaluation")
            return math.nan
        return summary.best_eval_return

    def report_last(self, study: Any) -> None:
        """One line on the trial this process just ran."""
        if self.on_message is None or self.last_number is None:
            return
        row = next((r for r in trial_rows(study) if r.number == self.last_number), None)
        self.last_number = None  # reported once
        if row is None:
            return
        seconds = time.monotonic() - self.started
        value = f"validation return {row.value:,.2f}" if row.value is not None else "no value"
        note = f" ({row.note})" if row.note else ""
        self.on_message(f"trial {row.number}: {row.state.lower()}, {value}{note}, {seconds:,.0f} s → {row.run_dir}")


def _finish(study: Any, info: Any, tune_dir: Path, stopped_by: Optional[str], error: Optional[str]) -> TuneResult:
    """The table, ``best.yaml`` and the importance figure of the study as it stands."""
    best = best_trial(study)
    notes: list[str] = []
    best_path: Optional[Path] = None
    if best is not None:
        best_path = _write_best_config(tune_dir, study.study_name, best, notes)
    else:
        notes.append(f"no trial completed: no {BEST_CONFIG} written")
    importances, why_not = param_importances(study)
    figure_path: Optional[Path] = None
    if importances:
        complete = sum(1 for r in trial_rows(study) if r.state == "COMPLETE")
        figure = importance_figure(
            importances, f"Parameter importance, study {study.study_name}",
            f"{complete} complete trials. PED-ANOVA (optuna.importance.get_param_importances): how strongly each "
            "parameter separates the trials with the highest validation returns from the rest.",
        )
        try:
            figure_path = save_figure(figure, tune_dir / IMPORTANCE_FIGURE)
        except OSError as os_error:
            notes.append(f"{tune_dir / IMPORTANCE_FIGURE}: cannot write it ({os_error})")
    else:
        notes.append(why_not)
    return TuneResult(
        study_name=study.study_name, storage=info.storage, tune_dir=tune_dir, trials=trial_rows(study),
        best_number=None if best is None else best.number, best_value=None if best is None else best.value,
        best_config=best_path, importance_figure=figure_path, importances=importances, stopped_by=stopped_by,
        error=error, marked_failed=list(info.marked_failed), notes=notes,
    )


def _write_best_config(tune_dir: Path, study_name: str, best: Any, notes: list[str]) -> Optional[Path]:
    """``best.yaml``: the complete config the best trial trained (from its ``config`` attribute)."""
    raw = best.user_attrs.get("config")
    if raw is None:
        notes.append(f"trial {best.number} recorded no config: no {BEST_CONFIG} written")
        return None
    config = config_from_dict(raw, source=f"trial {best.number}'s config")
    header = (
        f"# The best trial of study {study_name}: trial {best.number}, best validation return {best.value:,.4f}\n"
        f"# (its run: {best.user_attrs.get('run_dir', '?')}). Train it: reservoir-rl train {tune_dir / BEST_CONFIG}\n"
    )
    path = tune_dir / BEST_CONFIG
    write_run_file(path, header + dump_config(config))
    return path
