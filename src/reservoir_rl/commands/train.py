"""Use cases `train` and `resume`: run folders, metadata, signals, and the trainer."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from reservoir_rl.config import Config, check_total_frames, config_from_dict, config_to_dict, dump_config, load_config
from reservoir_rl.design.plausibility import plausibility_warnings, raise_if_strict
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.logger import ReservoirLogger, flatten
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.training.build import build_training, resolve_device
from reservoir_rl.runs.folders import RunDir, create_run, find_run, git_state, package_versions, run_lock, write_run_file
from reservoir_rl.runs.inflow_data import METADATA_KEY, check_inflow_unchanged, inflow_fingerprint
from reservoir_rl.runs.processes import follow_parent, stop_signal_handler
from reservoir_rl.training.trainer import Trainer

# the metrics the TensorBoard hparams view shows next to each run's hyperparameters
HPARAM_METRICS = ("eval/return", "eval/energy_gwh", "eval/success", "episode/return_mean")


@dataclass
class TrainSummary:
    run_dir: Path
    frames: int
    updates: int
    episodes: int
    stopped_by: str  # "done", "SIGINT" or "SIGTERM"
    best_eval_return: Optional[float]
    last_eval: Optional[dict[str, float]]
    seconds: float
    checkpoint: Path  # the checkpoint saved on the way out


class TrainingInterrupted(UserError):
    """A second SIGINT / SIGTERM arrived while the run was stopping: it ends without a new checkpoint."""


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT / SIGTERM ask the trainer to stop after the current batch (it then saves a checkpoint).

    A second signal while stopping abandons the run at once with `TrainingInterrupted` (an atomic save
    in progress leaves the previous checkpoint intact)."""

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if trainer.stop_requested:
            raise TrainingInterrupted(
                f"{name} while saving: stopped at once; `reservoir-rl resume {trainer.run_dir.path}` "
                "continues from the last complete checkpoint"
            )
        trainer.stop_requested = name

    with stop_signal_handler(handler):
        yield


def _write_metadata(
    run: RunDir, config: Config, command: list[str], event: str, inflow: Optional[dict[str, str]] = None
) -> None:
    """Append one entry (command line, seed, device, git commit, package versions, and the inflow record's
    absolute path and SHA-256 when it is a file) to metadata.yaml."""
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
    history = []
    if run.metadata_path.exists():
        history = yaml.safe_load(run.metadata_path.read_text()) or []
    history.append(entry)
    write_run_file(run.metadata_path, yaml.safe_dump(history, sort_keys=False))


def _train(trainer: Trainer, run: RunDir, total_frames: int, started: float, save_first: bool) -> TrainSummary:
    try:
        with stop_on_signals(trainer):
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
    config_path: str | Path,
    overrides: list[str],
    view: Any,
    runs_dir: str | Path = "runs",
    name: Optional[str] = None,
    seed: Optional[int] = None,
    device: Optional[str] = None,
    command: Optional[list[str]] = None,
    strict: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
) -> TrainSummary:
    """Create a new run folder and train for ``train.total_frames``.

    The config's plausibility warnings (`reservoir_rl.design.plausibility`) go to ``on_warning`` once the
    run starts; with ``strict`` the first one is an error and nothing is created."""
    started = time.perf_counter()
    extra = list(overrides)
    if seed is not None:
        extra.append(f"train.seed={seed}")
    if device is not None:
        extra.append(f"train.device={device}")
    config = load_config(config_path, extra)
    warnings = plausibility_warnings(config, load_inflow(config.inflow))
    raise_if_strict(warnings, strict)
    fingerprint = inflow_fingerprint(config.inflow)
    torch_device = resolve_device(config.train.device)
    parts = build_training(config, torch_device)  # before the folder: a bad config leaves nothing behind
    run = create_run(Path(runs_dir), name)
    with run_lock(run):
        raise_if_strict(warnings, False, on_warning)
        write_run_file(run.config_path, dump_config(config))
        _write_metadata(run, config, command or sys.argv, "train", fingerprint)
        logger = ReservoirLogger(run.tensorboard)
        logger.text("config", "```yaml\n" + dump_config(config) + "\n```")
        logger.hyperparameters(flatten(config_to_dict(config)), HPARAM_METRICS)
        trainer = Trainer(parts, run, logger, view)
        return _train(trainer, run, config.train.total_frames, started, save_first=True)


def latest_checkpoint(run: RunDir) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of the run that loads cleanly and holds a full training state: the
    newest periodic ``frame-N.pt`` first, then older ones, then ``last.pt``."""
    candidates = [*reversed(ckpt.frame_checkpoints(run.checkpoints)), run.last_checkpoint]
    errors = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            payload = ckpt.load_checkpoint(path)
            ckpt.require_keys(payload, ckpt.RESUME_KEYS, path)
            return path, payload
        except CheckpointError as error:
            errors.append(str(error))
    if errors:
        raise CheckpointError(f"{run.path}: no usable checkpoint ({errors[0]})")
    raise UserError(f"{run.path}: the run has no checkpoint yet; start it again with `reservoir-rl train`")


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
    so they continue where they were instead of stretching."""
    started = time.perf_counter()
    run = find_run(run_name, Path(runs_dir))
    if total_frames is not None:
        check_total_frames(total_frames)
    with run_lock(run):
        _path, payload = latest_checkpoint(run)
        frames = int(payload["counters"]["frames"])
        raw = payload["config"]
        if total_frames is not None:
            raw = {**raw, "train": {**raw["train"], "total_frames": total_frames}}
        config = config_from_dict(raw, source=f"{run.path} checkpoint config")
        if frames >= config.train.total_frames:
            raise UserError(
                f"{run.path}: already trained {frames:,} frames (train.total_frames = {config.train.total_frames:,}); "
                f"pass --total-frames above {frames:,} to continue"
            )
        fingerprint = check_inflow_unchanged(run, config.inflow, allow_changed_inflow)
        raise_if_strict(plausibility_warnings(config, load_inflow(config.inflow)), strict, on_warning)
        parts = build_training(config, resolve_device(config.train.device))
        ckpt.remove_stale_temporaries(run.checkpoints)
        # events the interrupted process wrote after this checkpoint are dropped: no duplicated steps
        logger = ReservoirLogger(run.tensorboard, purge_step=frames + 1)
        trainer = Trainer(parts, run, logger, view)
        trainer.load_state(payload)
        write_run_file(run.config_path, dump_config(config))
        _write_metadata(run, config, command or sys.argv, f"resume from frame {frames}", fingerprint)
        return _train(trainer, run, config.train.total_frames, started, save_first=False)
