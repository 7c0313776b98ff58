"""Use cases of a vectorized multi-seed run (``train --seeds 0,1,2 --vectorized``, and its `resume`).

The run folder is that of a process-mode multi-seed run (`reservoir_rl.commands.seeds`): ``run-N/seeds.yaml``
(with ``vectorized: true``, so `resume run-N` continues it vectorized), ``run-N/config.yaml`` and one
ordinary run per seed in ``run-N/seed-K`` (config.yaml with train.seed = K, metadata.yaml, checkpoints
with ``best.pt``, TensorBoard events). Every seed trains in this process (`VectorizedTrainer`): there are
no ``logs/seed-K.log`` files. The checkpoints are those of a single run: `evaluate`, `inspect-checkpoint`,
`plot` and a single-run `resume run-N/seed-K` read them as they read any run's.

Limits: CPU and the ``sync`` collector backend (one-line errors otherwise); a seed that diverges stops
every seed (each keeps its last finite checkpoint).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from reservoir_rl.config import Config, config_from_dict, config_to_dict, dump_config, load_config
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.monitor.logger import ReservoirLogger, flatten
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs.baseline_cache import runs_folder
from reservoir_rl.runs.folders import RunDir, create_run, run_lock, write_run_file
from reservoir_rl.runs.groups import SeedGroup
from reservoir_rl.runs.processes import prefix
from reservoir_rl.runs.inflow_data import check_inflow_unchanged, inflow_fingerprint
from reservoir_rl.runs.resources import check_memory, training_bytes
from reservoir_rl.training.build import build_training, resolve_device
from reservoir_rl.training.trainer import Trainer
from reservoir_rl.training.vectorized import SeedStreams, VectorizedTrainer

Messages = Optional[Callable[[str], None]]


@dataclass
class Signals:
    """How a group of seeds that is one of several processes of a run takes part in its stop signals.

    ``on_armed`` is called once the stop handlers are set (a worker process then prints the line its starting
    process waits for, `reservoir_rl.runs.processes`); ``forward`` gets every SIGINT / SIGTERM the group
    receives (the starting process hands it on to its worker processes)."""

    on_armed: Optional[Callable[[], None]] = None
    forward: Optional[Callable[[int], None]] = None

    def armed(self) -> None:
        if self.on_armed is not None:
            self.on_armed()


def _setting_problem(config: Config) -> Optional[str]:
    """Why the config's settings cannot train vectorized (CPU and the ``sync`` collector only), or None."""
    if config.train.device != "cpu":
        return f"vectorized seeds train on the CPU only (train.device = {config.train.device})"
    if config.train.collector.backend != "sync":
        return f"vectorized seeds need train.collector.backend = sync (it is {config.train.collector.backend})"
    return None


def check_vectorizable(config: Config) -> None:
    """One-line `UserError` unless the config can train vectorized (CPU, ``sync`` collector)."""
    problem = _setting_problem(config)
    if problem is not None:
        raise UserError(f"--vectorized: {problem}; use --processes to train one process per seed")


def vectorizable_problem(config: Config, n_seeds: int) -> Optional[str]:
    """Why ``n_seeds`` seeds of ``config`` cannot train vectorized (`check_vectorizable`,
    `check_vectorized_memory`), or None when they can."""
    problem = _setting_problem(config)
    if problem is not None:
        return problem
    try:
        check_vectorized_memory(config, n_seeds)
    except UserError as error:
        return str(error)
    return None


def check_vectorized_memory(config: Config, n_seeds: int, available: Optional[int] = None) -> None:
    """One-line `UserError` when ``n_seeds`` seeds of ``config`` (their replay buffers, envs, networks) would
    not fit in memory together in this process."""
    parts = training_bytes(config)
    total = n_seeds * sum(size for _, size in parts.values())
    check_memory(total, f"--vectorized with {n_seeds} seeds: training them in one process",
                 "fewer seeds, a smaller train.buffer_size, or --processes", available)


def seed_config(config: Config, seed: int) -> Config:
    raw = config_to_dict(config)
    return config_from_dict({**raw, "train": {**raw["train"], "seed": seed}}, source=f"the config with train.seed = {seed}")


def _progress(on_message: Messages, seeds: tuple[int, ...], total_frames: int):
    if on_message is None:
        return None

    def report(frames: int, returns: list[Optional[float]]) -> None:
        text = ", ".join(f"seed {s} {r:.2f}" if r is not None else f"seed {s} –" for s, r in zip(seeds, returns))
        on_message(f"frames {frames:,}/{total_frames:,} │ validation return: {text}")

    return report


@dataclass
class SeedResult:
    """Where one seed of a vectorized run stands after it trained."""

    seed: int
    run_dir: Path
    status: str  # finished | stopped
    frames: int
    best_eval_return: Optional[float]
    last_eval_return: Optional[float]


@dataclass
class VectorizedResult:
    """What a vectorized run did: each seed's result, the signal that stopped it (None: it finished),
    its wall time (s) and torch threads."""

    results: list[SeedResult]
    total_frames: int
    stopped_by: Optional[str]
    seconds: float
    threads: int


def _train(group: SeedGroup, vectorized: VectorizedTrainer, total_frames: int, started: float,
           on_message: Messages) -> VectorizedResult:
    try:
        stopped_by = vectorized.run(total_frames)
    finally:
        for trainer in vectorized.trainers:
            trainer.view.stop()
            trainer.logger.close()
    seconds = time.perf_counter() - started
    results = []
    for seed, trainer in zip(group.seeds, vectorized.trainers):
        best = trainer.best_eval_return
        results.append(SeedResult(
            seed, trainer.run_dir.path, "finished" if trainer.frames >= total_frames else "stopped", trainer.frames,
            best if best > -float("inf") else None,
            None if trainer.last_eval is None else trainer.last_eval.get("return"),
        ))
        if on_message is not None:
            on_message(prefix(seed) + f"{results[-1].status} at frame {trainer.frames:,} after {seconds:,.1f} s")
    return VectorizedResult(results, total_frames, None if stopped_by == "done" else stopped_by, seconds,
                            torch.get_num_threads())


def train_group(group: SeedGroup, config: Config, command: list[str], started: float, on_message: Messages = None,
                signals: Optional[Signals] = None, levels_first: bool = False) -> VectorizedResult:
    """Train every seed of ``group`` (its folder, config.yaml and seeds.yaml written) from frame 0 in this
    process. The seed folders created before a failure in the set-up (before training starts) are removed
    again, as a single run's folder is. ``signals``: see `Signals`; ``levels_first``: compute the baselines'
    validation levels before training instead of at the first evaluation (a worker of a run whose other
    processes then read them from the runs folder's cache while they train)."""
    from reservoir_rl.commands.train import HPARAM_METRICS, StopRequest, TrainingInterrupted, _write_metadata, stop_on_signals

    check_vectorizable(config)
    fingerprint = inflow_fingerprint(config.inflow)
    device = resolve_device(config.train.device)
    signals = signals or Signals()
    with stop_on_signals(StopRequest(run=RunDir(group.path), forward=signals.forward)) as request, \
            contextlib.ExitStack() as locks:
        signals.armed()
        parts, states = [], []
        inflow = load_inflow(config.inflow)  # one record for every seed (only train.seed differs)
        for seed in group.seeds:  # each seed seeds every generator and builds its parts, as a single run does
            parts.append(build_training(seed_config(config, seed), device, inflow))
            states.append(ckpt.rng_state())
        if request.signal is not None:
            raise TrainingInterrupted(f"{request.signal} before the seed folders were created: no seed was trained")
        trainers: list[Trainer] = []
        created: list[RunDir] = []
        try:
            for seed, seed_parts in zip(group.seeds, parts):
                run = create_run(group.path, f"seed-{seed}")
                created.append(run)
                locks.enter_context(run_lock(run))
                write_run_file(run.config_path, dump_config(seed_parts.config))
                _write_metadata(run, seed_parts.config, [*command, f"(seed {seed}, vectorized)"], "train", fingerprint)
                logger = ReservoirLogger(run.tensorboard, purge_step=1 if any(run.tensorboard.glob("*")) else None)
                trainers.append(Trainer(seed_parts, run, logger, QuietView()))
                trainers[-1].baseline_cache_dir = runs_folder(run.path)  # the baselines' levels, for later runs
                logger.text("config", "```yaml\n" + dump_config(seed_parts.config) + "\n```")
                logger.hyperparameters(flatten(config_to_dict(seed_parts.config)), HPARAM_METRICS)
            vectorized = VectorizedTrainer(trainers, SeedStreams(states), RunDir(group.path),
                                           _progress(on_message, group.seeds, config.train.total_frames))
            vectorized.save_checkpoints()  # frame 0: a run killed at any moment can be resumed
            if levels_first:
                vectorized.compute_baseline_levels()
        except BaseException:
            for trainer in trainers:
                trainer.logger.close()
            for run in created:  # nothing trained yet: no seed folder is kept (a resume trains them all)
                shutil.rmtree(run.path, ignore_errors=True)
            raise
        request.attach(vectorized)
        return _train(group, vectorized, config.train.total_frames, started, on_message)


def _checkpoints_at_one_frame(group: SeedGroup) -> list[tuple[Path, dict[str, Any]]]:
    """Each seed's newest usable checkpoint, all at one frame: when a stop left some seeds one checkpoint
    ahead (it came while the seeds were being saved), those resume from their checkpoint at the frame of
    the others."""
    from reservoir_rl.commands.train import latest_checkpoint

    found = [latest_checkpoint(group.run(seed)) for seed in group.seeds]
    frames = [int(payload["counters"]["frames"]) for _, payload in found]
    common = min(frames)
    for index, (seed, frame) in enumerate(zip(group.seeds, frames)):
        if frame == common:
            continue
        path = group.run(seed).checkpoints / ckpt.frame_checkpoint_name(common)
        if not path.is_file():
            raise CheckpointError(f"{group.path}: seed {seed} has no checkpoint at frame {common:,}, where seed "
                                  f"{group.seeds[frames.index(common)]} stopped; resume the seeds one by one "
                                  f"(`reservoir-rl resume {group.run(seed).path}`)")
        payload = ckpt.load_checkpoint(path)
        ckpt.require_keys(payload, ckpt.RESUME_KEYS, path)
        found[index] = (path, payload)
    return found


def resume_group(group: SeedGroup, total_frames: Optional[int], command: list[str], started: float,
                 on_message: Messages = None, allow_changed_inflow: bool = False,
                 signals: Optional[Signals] = None) -> VectorizedResult:
    """Continue a vectorized multi-seed run in this process from its seeds' checkpoints at one frame
    (``total_frames``: all frames). A run stopped before any seed's first checkpoint trains from frame 0
    with run-N/config.yaml; a run where only some seeds have a checkpoint is refused (one line)."""
    from reservoir_rl.commands.train import StopRequest, _write_metadata, stop_on_signals

    extra = [] if total_frames is None else [f"train.total_frames={total_frames}"]
    have = [seed for seed in group.seeds if ckpt.frame_checkpoints(group.run(seed).checkpoints)]
    if not have:  # stopped (or killed) before any seed's first checkpoint: nothing trained, start again
        config = load_config(group.config_path, extra)
        for seed in group.seeds:
            if group.run(seed).path.is_dir():
                shutil.rmtree(group.run(seed).path)
        return train_group(group, config, command, started, on_message, signals)
    if len(have) != len(group.seeds):
        missing = ", ".join(str(s) for s in group.seeds if s not in have)
        raise UserError(f"{group.path}: seed {missing} has no checkpoint while the others have; "
                        "remove the run and train it again")
    found = _checkpoints_at_one_frame(group)
    frames = int(found[0][1]["counters"]["frames"])
    configs = []
    for (path, payload) in found:
        raw = ckpt.stored_config(payload)  # the observation's reference inflow as the checkpoint trained with
        if total_frames is not None:
            raw = {**raw, "train": {**raw["train"], "total_frames": total_frames}}
        configs.append(config_from_dict(raw, source=f"{path} (config stored in the checkpoint)"))
    target = configs[0].train.total_frames
    if frames >= target:
        raise UserError(f"{group.path}: every seed has trained {frames:,} frames (train.total_frames = {target:,}); "
                        f"pass --total-frames above {frames:,} to continue")
    check_vectorizable(configs[0])
    check_vectorized_memory(configs[0], len(configs))
    device = resolve_device(configs[0].train.device)
    signals = signals or Signals()
    with stop_on_signals(StopRequest(run=RunDir(group.path), forward=signals.forward)) as request, \
            contextlib.ExitStack() as locks:
        signals.armed()
        trainers: list[Trainer] = []
        fingerprints = []
        inflow = None
        for seed, config in zip(group.seeds, configs):
            run = group.run(seed)
            locks.enter_context(run_lock(run))
            fingerprints.append(check_inflow_unchanged(run, config.inflow, allow_changed_inflow))
            if inflow is None or config.inflow != configs[0].inflow:
                inflow = load_inflow(config.inflow)
            parts = build_training(config, device, inflow)
            ckpt.remove_stale_temporaries(run.checkpoints)
            logger = ReservoirLogger(run.tensorboard, purge_step=frames + 1)
            trainers.append(Trainer(parts, run, logger, QuietView()))
            trainers[-1].baseline_cache_dir = runs_folder(run.path)
        streams = SeedStreams([payload["rng"] for _, payload in found])
        try:
            for k, trainer in enumerate(trainers):
                streams.use(k)
                trainer.load_state(found[k][1])
            vectorized = VectorizedTrainer(trainers, streams, RunDir(group.path),
                                           _progress(on_message, group.seeds, target))
        except BaseException:
            for trainer in trainers:
                trainer.logger.close()
            raise
        for seed, trainer, fingerprint in zip(group.seeds, trainers, fingerprints):
            write_run_file(trainer.run_dir.config_path, dump_config(trainer.config))
            _write_metadata(trainer.run_dir, trainer.config, [*command, f"(seed {seed}, vectorized)"],
                            f"resume from frame {frames}", fingerprint)
        request.attach(vectorized)
        return _train(group, vectorized, target, started, on_message)
