"""Use cases `train` and `resume`: run folders, metadata, signals, and the trainer."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from reservoir_rl.config import Config, apply_overrides, check_seed, check_total_frames, config_from_dict, config_to_dict, dump_config, load_config
from reservoir_rl.design.plausibility import plausibility_warnings, raise_if_strict
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.logger import ReservoirLogger, flatten
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs.baseline_cache import runs_folder
from reservoir_rl.training.build import build_training, resolve_device
from reservoir_rl.runs.folders import RunDir, create_run, find_run, git_state, package_versions, run_lock, write_run_file
from reservoir_rl.runs.inflow_data import METADATA_KEY, check_inflow_unchanged, inflow_fingerprint
from reservoir_rl.runs.processes import follow_parent, stop_signal_handler
from reservoir_rl.runs.resources import check_training_memory
from reservoir_rl.training.trainer import EvaluationHook, Trainer

# the metrics the TensorBoard hparams view shows next to each run's hyperparameters
HPARAM_METRICS = ("eval/return", "eval/energy_gwh", "eval/success", "episode/return_mean")


@dataclass
class TrainSummary:
    run_dir: Path
    frames: int
    updates: int
    episodes: int
    stopped_by: str  # "done", "SIGINT", "SIGTERM" or "pruned" (an ``on_evaluation`` hook stopped it)
    best_eval_return: Optional[float]
    last_eval: Optional[dict[str, float]]
    seconds: float
    checkpoint: Path  # the checkpoint saved on the way out
    notes: list[str] = field(default_factory=list)  # what resume skipped or restarted, one line each


class TrainingInterrupted(UserError):
    """A second SIGINT / SIGTERM arrived while the run was stopping: it ends without a new checkpoint."""


@dataclass
class StopRequest:
    """SIGINT / SIGTERM received while a run is set up or trains: the trainer stops after the current batch
    (and saves a checkpoint); before the trainer exists the request waits for it."""

    signal: Optional[str] = None
    run: Optional[RunDir] = None
    trainer: Optional[Trainer] = None
    forward: Optional[Callable[[int], None]] = None  # also called with every signal (a multi-seed run's other processes)

    def attach(self, trainer: Trainer) -> None:
        self.trainer = trainer
        trainer.stop_requested = self.signal

    def handle(self, signum: int, _frame: Any) -> None:
        if self.forward is not None:
            self.forward(signum)
        name = signal.Signals(signum).name
        if self.signal is not None:
            if self.trainer is not None:
                raise TrainingInterrupted(f"{name} while saving: stopped at once; `reservoir-rl resume "
                                          f"{self.trainer.run_dir.path}` continues from the last complete checkpoint")
            raise TrainingInterrupted(f"{name} while starting: stopped at once before the first checkpoint; "
                                      "no run was kept")
        self.signal = name
        if self.trainer is not None:
            self.trainer.stop_requested = name


@contextlib.contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[StopRequest]:
    """SIGINT / SIGTERM ask the run to stop (see `StopRequest`); a second one abandons it at once with
    `TrainingInterrupted` (an atomic save in progress leaves the previous checkpoint intact)."""
    with stop_signal_handler(request.handle):
        yield request


def _write_metadata(
    run: RunDir, config: Config, command: list[str], event: str, inflow: Optional[dict[str, str]] = None
) -> None:
    """Append one entry (command line, seed, device, git commit, package versions, and the inflow record's
    absolute path and SHA-256 when it is a file) to metadata.yaml (rewritten atomically: a full disk leaves
    the previous version). A history that cannot be read is kept beside it as ``metadata.yaml.damaged`` and
    a new one is started."""
    sha, dirty = git_state()
    entry = {
        "event": event,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command),
        "seed": config.train.seed,
        "device": config.train.device,
        "git_sha": sha,
        "git_dirty": dirty,
        "package_versions": package_versions(),
    }
    if inflow is not None:
        entry[METADATA_KEY] = inflow
    history: list = []
    if run.metadata_path.exists():
        try:
            history = yaml.safe_load(run.metadata_path.read_text(encoding="utf-8")) or []
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            history = None
        if not isinstance(history, list):
            damaged = run.metadata_path.with_name(run.metadata_path.name + ".damaged")
            run.metadata_path.replace(damaged)
            history = [{"event": f"the previous history could not be read; kept as {damaged.name}"}]
    history.append(entry)
    write_run_file(run.metadata_path, yaml.safe_dump(history, sort_keys=False))


def _train(trainer: Trainer, run: RunDir, total_frames: int, started: float, save_first: bool) -> TrainSummary:
    try:
        follow_parent()  # a seed of `train --seeds`: stop (with a checkpoint) if that process dies
        if save_first:
            trainer.save_checkpoint()  # frame 0: a run killed at any moment can be resumed
        stopped_by = trainer.run(total_frames)
    finally:
        trainer.view.stop()
        trainer.logger.close()
    best = trainer.best_eval_return
    return TrainSummary(
        run_dir=run.path,
        frames=trainer.frames,
        updates=trainer.updates,
        episodes=trainer.episodes,
        stopped_by=stopped_by,
        best_eval_return=best if best > -float("inf") else None,
        last_eval=trainer.last_eval,
        seconds=time.perf_counter() - started,
        checkpoint=run.checkpoints / ckpt.frame_checkpoint_name(trainer.frames),
    )


def train(
    config_path: str | Path | Config,
    overrides: list[str],
    view: Any,
    runs_dir: str | Path = "runs",
    name: Optional[str] = None,
    seed: Optional[int] = None,
    device: Optional[str] = None,
    command: Optional[list[str]] = None,
    strict: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
    on_evaluation: Optional[EvaluationHook] = None,
) -> TrainSummary:
    """Create a new run folder and train for ``train.total_frames``.

    ``config_path`` is a YAML file, or a `Config` already loaded (``overrides`` apply to it as to a file).
    The config's plausibility warnings (`reservoir_rl.design.plausibility`) go to ``on_warning`` once the
    run starts; with ``strict`` the first one is an error and nothing is created. ``on_evaluation(frames,
    validation_return)`` is called after each in-training evaluation; True stops the run there like a
    signal does (a checkpoint saved, ``stopped_by == "pruned"``): `tune`'s pruner."""
    started = time.perf_counter()
    extra = list(overrides)
    if seed is not None:
        extra.append(f"train.seed={check_seed(seed)}")
    if device is not None:
        extra.append(f"train.device={device}")
    if isinstance(config_path, Config):
        config = config_from_dict(apply_overrides(config_to_dict(config_path), extra), source="config")
    else:
        config = load_config(config_path, extra)
    inflow = load_inflow(config.inflow)  # read once: the plausibility check and the env share it
    warnings = plausibility_warnings(config, inflow)
    raise_if_strict(warnings, strict)
    fingerprint = inflow_fingerprint(config.inflow)
    check_training_memory(config)  # before anything is allocated or created
    with stop_on_signals(StopRequest()) as request:
        torch_device = resolve_device(config.train.device)
        parts = build_training(config, torch_device, inflow)  # before the folder: a bad config leaves nothing behind
        if request.signal is not None:  # stopped while the run was being built: nothing to keep
            raise TrainingInterrupted(f"{request.signal} before the run folder was created: no run was created")
        run = create_run(Path(runs_dir), name)
        request.run = run
        with run_lock(run), _removed_unless_checkpointed(run):
            raise_if_strict(warnings, False, on_warning)
            write_run_file(run.config_path, dump_config(config))
            return _start_fresh(run, parts, view, command or sys.argv, "train", started, request, fingerprint,
                                on_evaluation)


def _start_fresh(run: RunDir, parts: Any, view: Any, command: list[str], event: str, started: float,
                 request: StopRequest, fingerprint: Optional[dict[str, str]],
                 on_evaluation: Optional[EvaluationHook] = None) -> TrainSummary:
    """Train a run from frame 0 (its config.yaml written): metadata, TensorBoard, a frame-0 checkpoint first."""
    config = parts.config
    _write_metadata(run, config, command, event, fingerprint)
    restart = run.tensorboard.is_dir() and any(run.tensorboard.iterdir())
    logger = ReservoirLogger(run.tensorboard, purge_step=1 if restart else None)  # drop what a killed start wrote
    try:
        logger.text("config", "```yaml\n" + dump_config(config) + "\n```")
        logger.hyperparameters(flatten(config_to_dict(config)), HPARAM_METRICS)
        trainer = Trainer(parts, run, logger, view)
        trainer.on_evaluation = on_evaluation
        trainer.baseline_cache_dir = runs_folder(run.path)  # later runs read the baselines' levels there
    except BaseException:
        logger.close()
        raise
    request.attach(trainer)
    return _train(trainer, run, config.train.total_frames, started, save_first=True)


@contextlib.contextmanager
def _removed_unless_checkpointed(run: RunDir) -> Iterator[None]:
    """A new run that fails or is stopped before its first checkpoint is removed (it holds nothing of
    value), so no run is left that could not be resumed."""
    try:
        yield
    except BaseException:
        if not ckpt.frame_checkpoints(run.checkpoints):
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def latest_checkpoint(run: RunDir, skipped: Optional[list[str]] = None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of the run that loads cleanly and holds a full training state: the
    newest periodic ``frame-N.pt`` first, then older ones, then ``last.pt``. Each file passed over is
    appended to ``skipped`` as "FILE: why"."""
    candidates = [*reversed(ckpt.frame_checkpoints(run.checkpoints)), run.last_checkpoint]
    errors = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            payload = ckpt.load_checkpoint(path)
            ckpt.require_keys(payload, ckpt.RESUME_KEYS, path)
            if skipped is not None:
                _check_last(run, path, skipped)
            return path, payload
        except CheckpointError as error:
            errors.append(str(error))
            if skipped is not None:
                skipped.append(str(error))
    if errors:
        raise CheckpointError(f"{run.path}: no usable checkpoint ({errors[0]})")
    if run.best_checkpoint.exists():
        raise UserError(
            f"{run.path}: no checkpoint to resume from: checkpoints/best.pt holds the best policy, not the training "
            f"state; evaluate it (`reservoir-rl evaluate {run.path}`) or train a new run"
        )
    raise UserError(f"{run.path}: the run has no checkpoint and no config.yaml; train it again with "
                    f"`reservoir-rl train CONFIG --name {run.name}`")


def _check_last(run: RunDir, used: Path, skipped: list[str]) -> None:
    """``last.pt`` is replaced by the next checkpoint: when it is damaged too, say so (it was not tried)."""
    last = run.last_checkpoint
    if used == last or not last.exists() or last.samefile(used):
        return
    try:
        ckpt.load_checkpoint(last)
    except CheckpointError as error:
        skipped.append(str(error))


def _set_damaged_aside(run: RunDir, skipped: list[str], used: Path, view: Any) -> list[str]:
    """Report every checkpoint passed over and rename it ``NAME.damaged`` (kept for a look, never
    overwritten by the training that follows); returns the notes."""
    notes = []
    for path in [*ckpt.frame_checkpoints(run.checkpoints), run.last_checkpoint]:
        message = next((m for m in skipped if m.startswith(f"{path}:")), None)
        if message is None:
            continue
        damaged = path.with_name(path.name + ".damaged")
        try:
            path.replace(damaged)
            kept = f"; kept as {damaged.name}"
        except OSError:
            kept = ""
        notes.append(f"skipped {message}{kept}")
    if notes:
        notes.append(f"resuming from {used}")
    for note in notes:
        view.message(note)
    return notes


def resume(
    run_name: str,
    view: Any,
    runs_dir: str | Path = "runs",
    total_frames: Optional[int] = None,
    command: Optional[list[str]] = None,
    allow_changed_inflow: bool = False,
    strict: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
) -> TrainSummary:
    """Continue a run from its latest complete checkpoint into the same folder and TensorBoard run.

    A record file whose content changed since the run recorded it (`reservoir_rl.runs.inflow_data`) is
    refused unless ``allow_changed_inflow``; plausibility warnings as in `train`.

    ``total_frames`` (all frames, not additional ones) extends a run; schedules are in absolute frames,
    so they continue where they were instead of stretching. Checkpoints that cannot be used are named
    (view messages and the summary's notes) and set aside as ``NAME.damaged``. A run stopped before its
    first checkpoint (no checkpoint at all, a config.yaml) starts again from frame 0 with its config.yaml."""
    started = time.perf_counter()
    run = find_run(run_name, Path(runs_dir))
    if total_frames is not None:
        check_total_frames(total_frames)
    with stop_on_signals(StopRequest(run=run)) as request, run_lock(run):
        if not any(run.checkpoints.glob("*.pt")) and run.config_path.is_file():
            return _restart(run, view, total_frames, command or sys.argv, started, request, allow_changed_inflow)
        skipped: list[str] = []
        path, payload = latest_checkpoint(run, skipped)
        frames = int(payload["counters"]["frames"])
        raw = ckpt.stored_config(payload)  # the observation's reference inflow as the checkpoint trained with
        if total_frames is not None:
            raw = {**raw, "train": {**raw["train"], "total_frames": total_frames}}
        config = config_from_dict(raw, source=f"{path} (config stored in the checkpoint)")
        if frames >= config.train.total_frames:
            raise UserError(
                f"{run.path}: already trained {frames:,} frames (train.total_frames = {config.train.total_frames:,}); "
                f"pass --total-frames above {frames:,} to continue"
            )
        fingerprint = check_inflow_unchanged(run, config.inflow, allow_changed_inflow)
        inflow = load_inflow(config.inflow)
        raise_if_strict(plausibility_warnings(config, inflow), strict, on_warning)
        check_training_memory(config)
        parts = build_training(config, resolve_device(config.train.device), inflow)
        notes = _set_damaged_aside(run, skipped, path, view)
        ckpt.remove_stale_temporaries(run.checkpoints)
        # events the interrupted process wrote after this checkpoint are dropped: no duplicated steps
        logger = ReservoirLogger(run.tensorboard, purge_step=frames + 1)
        trainer = Trainer(parts, run, logger, view)
        trainer.baseline_cache_dir = runs_folder(run.path)
        trainer.load_state(payload)
        request.attach(trainer)
        write_run_file(run.config_path, dump_config(config))
        _write_metadata(run, config, command or sys.argv, f"resume from frame {frames}", fingerprint)
        summary = _train(trainer, run, config.train.total_frames, started, save_first=False)
        summary.notes = notes
        return summary


def _restart(run: RunDir, view: Any, total_frames: Optional[int], command: list[str], started: float,
             request: StopRequest, allow_changed_inflow: bool = False) -> TrainSummary:
    """A run stopped between creating its folder and its first checkpoint: train it from frame 0 with the
    config.yaml it wrote (``total_frames`` replacing train.total_frames)."""
    extra = [] if total_frames is None else [f"train.total_frames={total_frames}"]
    config = load_config(run.config_path, extra)
    fingerprint = check_inflow_unchanged(run, config.inflow, allow_changed_inflow)
    check_training_memory(config)
    parts = build_training(config, resolve_device(config.train.device))
    ckpt.remove_stale_temporaries(run.checkpoints)
    write_run_file(run.config_path, dump_config(config))
    view.message(f"{run.path}: stopped before its first checkpoint; training again from frame 0 with its config.yaml")
    summary = _start_fresh(run, parts, view, command, "restart from config.yaml (no checkpoint)", started, request,
                           fingerprint)
    summary.notes = ["stopped before its first checkpoint: trained again from frame 0 with its config.yaml"]
    return summary
