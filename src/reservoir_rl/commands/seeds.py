"""Several seeds of one config: `train --seeds 0,1,2` into ``run-N/seed-K/``, and `resume` of such a run.

Layout of a multi-seed run::

    run-N/seeds.yaml        the seeds, the command lines that trained / resumed them
    run-N/config.yaml       the resolved config every seed trains (``--set`` and ``--device`` applied)
    run-N/logs/seed-K.log   everything seed K's process printed
    run-N/seed-K/           an ordinary run (config.yaml with train.seed = K, checkpoints, TensorBoard, ...)

Each seed trains in its own process, ``python -m reservoir_rl.commands.seed_process SPEC`` (SPEC: a JSON
object with the config, seed and folders, `reservoir_rl.commands.seed_process`), which calls the use case
`reservoir_rl.commands.train.train` (resume: `.resume` of ``run-N/seed-K``) directly, not the command
line; at most ``os.cpu_count()`` processes at a time (``--max-parallel N``: N), each with
``cpu_count // parallel`` torch threads (OMP_NUM_THREADS, at least 1). The processes live in their own session, so a terminal's Ctrl-C reaches only this
process, which forwards SIGINT / SIGTERM to every seed (each then saves a checkpoint) and starts no
further seed; a second signal is forwarded too (the seeds stop at once, as a single run does). If this
process dies, Linux sends each seed SIGTERM (`reservoir_rl.runs.processes`).

Vectorized (``--vectorized``, the default where the config allows it; `reservoir_rl.commands.vectorized`) the
seeds are split into at most ``os.cpu_count()`` groups (``--max-parallel N``: N), one process per group, each
training its seeds vectorized: this process the first group, a worker process
(``python -m reservoir_rl.commands.seed_process SPEC``, output in ``run-N/logs/seeds-A-B.log``) each other
group, started first so that its start-up overlaps this process's. ``seeds.yaml`` records the groups
(``workers``) and `resume` continues each group in its own process again. A seed's numbers do not depend on
the group it trains in (`reservoir_rl.training.vectorized`).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml

from reservoir_rl.config import (Config, check_total_frames, config_from_dict, config_to_dict, dump_config,
                                 load_config)
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.design.plausibility import plausibility_warnings, raise_if_strict
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.runs.processes import (Job, Messages, exit_reason, forward_signal, prefix, run_jobs,
                                         stop_signal_handler, stop_standby)
from reservoir_rl.runs.processes import parallelism as _parallelism
from reservoir_rl.runs.resources import check_training_memory
from reservoir_rl.runs.folders import SEEDS_FILE, RunDir, create_run, never_started, run_lock, write_run_file
from reservoir_rl.runs.groups import SEEDS_FORMAT, SeedGroup
from reservoir_rl.commands import seed_process
from reservoir_rl.commands import vectorized as vectorized_mode


# ------------------------------------------------------------------------------------- outcomes


@dataclass
class SeedOutcome:
    """How one seed's process ended and where its run stands."""

    seed: int
    run_dir: Path
    status: str  # finished | stopped | failed | not started | already finished
    total_frames: int
    exit_code: Optional[int] = None
    error: Optional[str] = None  # one line: why the process failed
    frames: Optional[int] = None
    best_eval_return: Optional[float] = None
    last_eval_return: Optional[float] = None
    seconds: Optional[float] = None
    log: Optional[Path] = None


@dataclass
class SeedsSummary:
    run_dir: Path
    seeds: list[int]
    outcomes: list[SeedOutcome]
    stopped_by: Optional[str]  # the signal that stopped the run, if any
    parallel: int
    threads: int
    seconds: float
    vectorized: bool = False  # seeds trained vectorized (`train --seeds ... --vectorized`), ``parallel`` processes

    @property
    def failed(self) -> list[SeedOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def unfinished(self) -> bool:
        return any(o.status in ("stopped", "not started", "failed") for o in self.outcomes)


def _frames_on_disk(run: RunDir) -> Optional[int]:
    """Frames of the newest periodic checkpoint file (from its name: no loading), or None."""
    from reservoir_rl.runs.checkpoint import FRAME_FILE_PREFIX

    frames = []
    for path in run.checkpoints.glob(f"{FRAME_FILE_PREFIX}*.pt") if run.checkpoints.is_dir() else []:
        digits = path.name.removeprefix(FRAME_FILE_PREFIX).removesuffix(".pt")
        if digits.isdigit():
            frames.append(int(digits))
    return max(frames, default=None)


def _total_frames(run: RunDir, default: int) -> int:
    """train.total_frames of a seed's own config.yaml (a resume with --total-frames changes it), else ``default``."""
    try:
        return int(yaml.safe_load(run.config_path.read_text(encoding="utf-8"))["train"]["total_frames"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return default


def _read_outcome(outcome: SeedOutcome) -> None:
    """Fill frames and validation returns from the seed's ``last.pt`` (left empty if it cannot be read)."""
    from reservoir_rl.errors import CheckpointError
    from reservoir_rl.runs.checkpoint import load_checkpoint

    last = RunDir(outcome.run_dir).last_checkpoint
    if not last.is_file():
        return
    try:
        payload = load_checkpoint(last)
    except CheckpointError:
        outcome.frames = _frames_on_disk(RunDir(outcome.run_dir))
        return
    outcome.frames = int(payload.get("counters", {}).get("frames", 0))
    outcome.best_eval_return = payload.get("best_eval_return")
    last_eval = payload.get("last_eval") or {}
    outcome.last_eval_return = last_eval.get("return")


def worker_groups(seeds: list[int], workers: int) -> list[tuple[int, ...]]:
    """``seeds`` in ``workers`` groups of consecutive seeds (at most one group per seed), as even as they
    can be, the first ones one seed larger: [0, 1, 2] in 2 → (0, 1), (2,). The first group trains in the
    starting process; the last, smallest, is the one that computes the baselines' levels first when the run
    needs them (`_computes_levels`)."""
    workers = max(1, min(workers, len(seeds)))
    size, extra = divmod(len(seeds), workers)
    groups, start = [], 0
    for index in range(workers):
        end = start + size + (1 if index < extra else 0)
        groups.append(tuple(seeds[start:end]))
        start = end
    return groups


def _computes_levels(config: Config, seeds: list[int], inflow: InflowRecord, runs_dir: Path) -> bool:
    """True when a run of these seeds computes baselines' levels (TensorBoard ``baselines/``) that the runs
    folder does not keep yet (`reservoir_rl.runs.baseline_cache`)."""
    from reservoir_rl.runs.baseline_cache import has_levels

    if not config.logging.baseline_levels:
        return False
    return not all(has_levels(runs_dir, vectorized_mode.seed_config(config, seed), inflow) for seed in seeds)


def recorded_groups(group: SeedGroup) -> list[tuple[int, ...]]:
    """The worker groups seeds.yaml records for a vectorized run (``workers``), or every seed in one group
    (a run trained in one process, or groups that do not list the run's seeds exactly once)."""
    try:
        document = yaml.safe_load(group.seeds_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return [tuple(group.seeds)]
    workers = document.get("workers") if isinstance(document, dict) else None
    if not (isinstance(workers, list) and workers and all(isinstance(g, list) and g for g in workers)):
        return [tuple(group.seeds)]
    listed = [seed for g in workers for seed in g]
    if not all(type(seed) is int for seed in listed) or sorted(listed) != sorted(group.seeds):
        return [tuple(group.seeds)]
    return [tuple(g) for g in workers]


def _group_prefix(seeds: tuple[int, ...]) -> str:
    return prefix(seeds[0]) if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} │ "


def _group_log(group: SeedGroup, seeds: tuple[int, ...]) -> Path:
    return group.logs / f"seeds-{'-'.join(map(str, seeds))}.log"


def _vectorized_workers(group: SeedGroup, groups: list[tuple[int, ...]], threads: int, total_frames: int,
                        own: Callable[[vectorized_mode.Signals], vectorized_mode.VectorizedResult],
                        worker_argv: Callable[[tuple[int, ...]], list[str]], started: float,
                        on_message: Messages, standby: Sequence[subprocess.Popen] = ()) -> SeedsSummary:
    """Train (or resume) a vectorized run's ``groups`` of seeds, one process each: ``groups[0]`` in this
    process (``own``: `vectorized_mode.train_group` / `resume_group` with the `Signals` it is given), the others
    in worker processes (``worker_argv``), started first. SIGINT / SIGTERM go to every process; if this
    process's group fails, the workers get SIGTERM (each seed saves a checkpoint) before the error is raised.
    ``standby``: processes started ahead that take the workers' groups, in order (`runs.processes.start_standby`)."""
    jobs = [Job(seeds[0], worker_argv(seeds), _group_log(group, seeds), label=_group_prefix(seeds))
            for seeds in groups[1:]]
    for job, process in zip(jobs, standby):
        job.standby = process
    members = {seeds[0]: seeds for seeds in groups[1:]}
    outcomes = {s: SeedOutcome(s, group.run(s).path, "not started", total_frames) for seeds in groups for s in seeds}

    def on_exit(job: Job) -> None:
        for seed in members[job.seed]:  # (a worker stopped before it trained keeps no folder: resume trains it)
            outcomes[seed].log = job.log
            _settle(outcomes[seed], job, without_checkpoint="not started")
        _report_exit(job, outcomes[job.seed], on_message)

    state: dict[str, Any] = {"signals": [], "error": None}

    def forward(signum: int) -> None:
        state["signals"].append(signal.Signals(signum).name)
        forward_signal(jobs, signum)

    def workers() -> None:
        try:
            run_jobs(jobs, len(jobs), threads, on_message, on_exit)
        except BaseException as error:  # (re-raised in this thread below)
            state["error"] = error

    def wait_for_workers() -> None:
        while thread.is_alive():
            thread.join(0.25)  # (a short wait: the signal handlers run in between)
        if state["error"] is not None:
            raise state["error"]

    import torch

    thread = threading.Thread(target=workers, name="seed-workers", daemon=True)
    previous_threads = torch.get_num_threads()
    with stop_signal_handler(lambda signum, _frame: forward(signum)):  # outside this group's own training
        thread.start()
        try:
            torch.set_num_threads(threads)
            result = own(vectorized_mode.Signals(forward=forward))
        except BaseException:
            if not state["signals"]:  # a first stop signal: each worker's seeds save a checkpoint and stop
                forward_signal(jobs, signal.SIGTERM)
            wait_for_workers()
            raise
        finally:
            torch.set_num_threads(previous_threads)
        wait_for_workers()
    for r in result.results:
        outcomes[r.seed] = SeedOutcome(r.seed, r.run_dir, r.status, total_frames, exit_code=0, frames=r.frames,
                                       best_eval_return=r.best_eval_return, last_eval_return=r.last_eval_return,
                                       seconds=result.seconds)
    stopped_by = result.stopped_by or (state["signals"][0] if state["signals"] else None)
    return SeedsSummary(group.path, list(group.seeds), [outcomes[s] for s in group.seeds], stopped_by, len(groups),
                        threads, time.perf_counter() - started, vectorized=True)


def _finished(group: SeedGroup, seeds: tuple[int, ...], total_frames: Optional[int], default: int) -> bool:
    """True when every seed of ``seeds`` has a checkpoint at its target frame (``total_frames``, else its own
    config's ``train.total_frames``)."""
    for seed in seeds:
        run = group.run(seed)
        frames = _frames_on_disk(run) if run.checkpoints.is_dir() else None
        target = total_frames if total_frames is not None else _total_frames(run, default)
        if frames is None or frames < target:
            return False
    return True


def _with_finished(summary: SeedsSummary, group: SeedGroup, done: list[tuple[int, ...]]) -> SeedsSummary:
    """``summary`` of the groups that resumed, with the seeds of the ``done`` groups (already finished: not
    started again) among them in the run's order."""
    outcomes = {o.seed: o for o in summary.outcomes}
    for seed in (seed for seeds_of in done for seed in seeds_of):
        run = group.run(seed)
        outcomes[seed] = SeedOutcome(seed, run.path, "already finished", _total_frames(run, 0))
        _read_outcome(outcomes[seed])
    summary.seeds = list(group.seeds)
    summary.run_dir = group.path
    summary.outcomes = [outcomes[seed] for seed in group.seeds]
    return summary


def _settle(outcome: SeedOutcome, job: Job, without_checkpoint: str = "stopped") -> None:
    """Fill ``outcome`` from its ended ``job`` and the seed's ``last.pt``: failed (exit code ≠ 0), finished,
    stopped, or ``without_checkpoint`` when the seed has none."""
    outcome.exit_code, outcome.seconds = job.process.returncode, job.seconds
    _read_outcome(outcome)
    if job.process.returncode != 0:
        outcome.status, outcome.error = "failed", exit_reason(job)
    elif outcome.frames is None:
        outcome.status = without_checkpoint
    elif outcome.frames >= outcome.total_frames:
        outcome.status = "finished"
    else:
        outcome.status = "stopped"


def _report_exit(job: Job, outcome: SeedOutcome, on_message: Messages) -> None:
    """One line: how the job ended (its first seed's outcome), after how long, and why if it failed."""
    if on_message is not None:
        frames = f" at frame {outcome.frames:,}" if outcome.frames is not None else ""
        on_message(job.prefix + f"{outcome.status}{frames} after {job.seconds:,.1f} s"
                   + (f" ({outcome.error})" if outcome.error else ""))


def _vectorized_summary(group: SeedGroup, result: vectorized_mode.VectorizedResult) -> SeedsSummary:
    """The summary of a vectorized run in one process (parallel = 1), one wall time."""
    outcomes = [SeedOutcome(r.seed, r.run_dir, r.status, result.total_frames, exit_code=0, frames=r.frames,
                            best_eval_return=r.best_eval_return, last_eval_return=r.last_eval_return,
                            seconds=result.seconds) for r in result.results]
    return SeedsSummary(group.path, list(group.seeds), outcomes, result.stopped_by, 1, result.threads, result.seconds,
                        vectorized=True)


def is_vectorized(group: SeedGroup) -> bool:
    """True when seeds.yaml says the run trains its seeds vectorized (``train --seeds ... --vectorized``)."""
    try:
        document = yaml.safe_load(group.seeds_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(document, dict) and document.get("vectorized") is True


def _record(group: SeedGroup, event: str, command: list[str], **extra: Any) -> None:
    """Append an event to seeds.yaml."""
    document = yaml.safe_load(group.seeds_path.read_text(encoding="utf-8"))
    document.setdefault("history", []).append({
        "event": event, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command), **extra,
    })
    write_run_file(group.seeds_path, yaml.safe_dump(document, sort_keys=False))


def _run(group: SeedGroup, jobs: list[Job], outcomes: dict[int, SeedOutcome], parallel: int, threads: int,
         started: float, on_message: Messages) -> SeedsSummary:
    """Run ``jobs``; each seed's outcome is read from its run folder as soon as its process ends."""

    def on_exit(job: Job) -> None:
        _settle(outcomes[job.seed], job)
        _report_exit(job, outcomes[job.seed], on_message)

    for job in jobs:
        outcomes[job.seed].log = job.log
    stopped_by = run_jobs(jobs, parallel, threads, on_message, on_exit)
    ordered = [outcomes[s] for s in group.seeds]
    return SeedsSummary(group.path, list(group.seeds), ordered, stopped_by, parallel, threads,
                        time.perf_counter() - started)


def _train_argv(group: SeedGroup, seed: int, command: list[str], overrides: list[str] = ()) -> list[str]:
    """The process that trains ``run-N/config.yaml`` (``overrides`` applied) into ``run-N/seed-K``."""
    return seed_process.train_argv(group.config_path.resolve(), seed, f"seed-{seed}", group.path.resolve(),
                                   list(overrides), command)


def train_seeds(
    config_path: str | Path,
    seeds: list[int],
    overrides: list[str],
    runs_dir: str | Path = "runs",
    name: Optional[str] = None,
    device: Optional[str] = None,
    command: Optional[list[str]] = None,
    on_message: Messages = None,
    max_parallel: Optional[int] = None,
    strict: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
    vectorized: Optional[bool] = False,
    standby: Sequence[subprocess.Popen] = (),
) -> SeedsSummary:
    """Create ``run-N`` and train one ordinary run per seed into ``run-N/seed-K``, in parallel processes
    (``vectorized``: groups of seeds with a batched update, one group per process, `worker_groups`;
    None: vectorized when the config allows it, `vectorized_mode.vectorizable_problem`, else processes, with
    a note to ``on_message``; the `train --seeds` default).

    The config is validated (for every seed) before anything is created; the resolved config is written
    to ``run-N/config.yaml`` and every seed trains it with its own ``train.seed``. Plausibility warnings
    go to ``on_warning`` once (``strict``: the first one is an error, nothing is created). ``standby``: worker
    processes started ahead (`reservoir_rl.commands.standby`), handed the vectorized groups after the first, and
    ended when they are not used."""
    try:
        started = time.perf_counter()
        extra = list(overrides) + ([f"train.device={device}"] if device is not None else [])
        config = load_config(config_path, extra)
        raw = config_to_dict(config)
        for seed in seeds:
            config_from_dict({**raw, "train": {**raw["train"], "seed": seed}}, source=f"{config_path} with --seeds {seed}")
        inflow = load_inflow(config.inflow)
        warnings = plausibility_warnings(config, inflow)
        raise_if_strict(warnings, strict)
        if config.train.device == "cuda":  # one line here rather than one per seed
            from reservoir_rl.training.build import resolve_device

            resolve_device(config.train.device)
        check_training_memory(config)  # (per seed; each seed's process checks again)
        if vectorized is None:
            problem = vectorized_mode.vectorizable_problem(config, len(seeds))
            vectorized = problem is None
            if problem is not None and on_message is not None:
                on_message(f"one process per seed: {problem}")
        elif vectorized:
            vectorized_mode.check_vectorizable(config)
            vectorized_mode.check_vectorized_memory(config, len(seeds))
        folder = create_run(Path(runs_dir), name, checkpoints=False)
        group = SeedGroup(folder.path, tuple(seeds))
        with run_lock(folder):
            raise_if_strict(warnings, False, on_warning)  # once the run starts, as `train` shows them
            header = (f"# the config every seed of {group.name} trains (see {SEEDS_FILE}); seed-K/config.yaml is this "
                      "file with train.seed = K\n")
            write_run_file(group.config_path, header + dump_config(config))
            command = list(command or sys.argv)
            parallel, threads = _parallelism(len(seeds), max_parallel)
            document = {"format": SEEDS_FORMAT, "seeds": list(seeds), "config": str(config_path), "overrides": extra}
            groups = worker_groups(list(seeds), parallel)
            # the last worker computes the baselines' levels first, while the others train (they read them at their
            # first evaluation), when the runs folder does not keep them yet
            levels_first = bool(vectorized) and len(groups) > 1 and _computes_levels(config, list(seeds), inflow,
                                                                                    Path(runs_dir))
            if vectorized:  # `resume` continues the run the same way, each group in a process of its own
                document["vectorized"] = True
                document["workers"] = [list(seeds_of) for seeds_of in groups]
            write_run_file(group.seeds_path, yaml.safe_dump(document, sort_keys=False))
            if vectorized:
                _record(group, "train", command, total_frames=config.train.total_frames, vectorized=True,
                        processes=len(groups), threads_per_process=threads)
                if len(groups) == 1:
                    return _vectorized_summary(group, vectorized_mode.train_group(group, config, command, started,
                                                                                  on_message))
                return _vectorized_workers(
                    group, groups, threads, config.train.total_frames,
                    lambda signals: vectorized_mode.train_group(SeedGroup(group.path, groups[0]), config, command,
                                                                started, on_message, signals),
                    lambda seeds_of: seed_process.train_seeds_argv(group.path.resolve(), list(seeds_of), [], command,
                                                                   levels_first and seeds_of == groups[-1]),
                    started, on_message, standby)
            _record(group, "train", command, total_frames=config.train.total_frames, parallel=parallel,
                    threads_per_process=threads)
            jobs = [Job(seed, _train_argv(group, seed, command), group.log_path(seed)) for seed in seeds]
            outcomes = {s: SeedOutcome(s, group.run(s).path, "not started", config.train.total_frames) for s in seeds}
            return _run(group, jobs, outcomes, parallel, threads, started, on_message)
    finally:
        stop_standby(list(standby))


def resume_seeds(
    group: SeedGroup,
    total_frames: Optional[int] = None,
    command: Optional[list[str]] = None,
    on_message: Messages = None,
    max_parallel: Optional[int] = None,
    allow_changed_inflow: bool = False,
) -> SeedsSummary:
    """Continue every seed of a multi-seed run: `resume` the seeds that have a checkpoint, `train` the ones
    that never started, leave the finished ones (``total_frames``, all frames, extends them). A seed whose
    record file changed fails with that line unless ``allow_changed_inflow``."""
    started = time.perf_counter()
    if total_frames is not None:
        check_total_frames(total_frames)
    config = load_config(group.config_path)
    command = list(command or sys.argv)
    if is_vectorized(group):
        groups = recorded_groups(group)
        if max_parallel is not None:
            raise UserError(f"{group.path} trains its seeds vectorized in {len(groups)} process"
                            f"{'es' if len(groups) > 1 else ''}, as it started: --max-parallel does not apply")
        with run_lock(RunDir(group.path)):
            done = [seeds_of for seeds_of in groups
                    if _finished(group, seeds_of, total_frames, config.train.total_frames)]
            if len(done) == len(groups):  # every seed finished: resume_group says so in one line
                groups, done = [tuple(group.seeds)], []
            groups = [seeds_of for seeds_of in groups if seeds_of not in done]
            threads = _parallelism(len(groups), None)[1]
            _record(group, "resume", command, total_frames=total_frames, vectorized=True, processes=len(groups),
                    threads_per_process=threads)
            if len(groups) == 1:
                resumed = SeedGroup(group.path, groups[0])
                summary = _vectorized_summary(resumed, vectorized_mode.resume_group(
                    resumed, total_frames, command, started, on_message, allow_changed_inflow))
                return _with_finished(summary, group, done)
            target = total_frames if total_frames is not None else _total_frames(group.run(groups[0][0]),
                                                                                  config.train.total_frames)
            summary = _vectorized_workers(
                SeedGroup(group.path, tuple(seed for seeds_of in groups for seed in seeds_of)), groups, threads, target,
                lambda signals: vectorized_mode.resume_group(SeedGroup(group.path, groups[0]), total_frames, command,
                                                             started, on_message, allow_changed_inflow, signals),
                lambda seeds_of: seed_process.resume_seeds_argv(group.path.resolve(), list(seeds_of), total_frames,
                                                                command, allow_changed_inflow),
                started, on_message)
            return _with_finished(summary, group, done)
    with run_lock(RunDir(group.path)):
        jobs, outcomes = [], {}
        for seed in group.seeds:
            run = group.run(seed)
            target = total_frames if total_frames is not None else _total_frames(run, config.train.total_frames)
            outcome = outcomes[seed] = SeedOutcome(seed, run.path, "not started", target, log=group.log_path(seed))
            frames = _frames_on_disk(run)
            extra = [] if total_frames is None else [f"train.total_frames={total_frames}"]
            if not run.path.exists() or never_started(run):  # (a folder left before its config: taken over)
                jobs.append(Job(seed, _train_argv(group, seed, command, extra), group.log_path(seed)))
            elif frames is None and run.config_path.is_file() and not any(run.checkpoints.glob("*.pt")):
                # stopped before its first checkpoint: resume trains it again from its config.yaml
                argv = seed_process.resume_argv(run.path.resolve(), seed, total_frames, command)
                jobs.append(Job(seed, argv, group.log_path(seed)))
            elif frames is None:
                outcome.status = "failed"
                outcome.error = f"{run.path} has no checkpoint to resume from; remove the folder to train this seed again"
            elif frames >= target:
                outcome.status, outcome.frames = "already finished", frames
            else:
                argv = seed_process.resume_argv(run.path.resolve(), seed, total_frames, command, allow_changed_inflow)
                jobs.append(Job(seed, argv, group.log_path(seed)))
        if not jobs:
            done = [o for o in outcomes.values() if o.status == "already finished"]
            if len(done) == len(outcomes):
                most = max(o.frames or 0 for o in done)
                raise UserError(f"{group.path}: every seed has trained its train.total_frames; "
                                f"pass --total-frames above {most:,} to continue")
        parallel, threads = _parallelism(max(1, len(jobs)), max_parallel)
        _record(group, "resume", list(command or sys.argv), total_frames=total_frames, parallel=parallel,
                threads_per_process=threads)
        return _run(group, jobs, outcomes, parallel, threads, started, on_message)
