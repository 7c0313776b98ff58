"""Several seeds of one config: `train --seeds 0,1,2` into ``run-N/seed-K/``, and `resume` of such a run.

Layout of a multi-seed run::

    run-N/seeds.yaml        the seeds, the command lines that trained / resumed them
    run-N/config.yaml       the resolved config every seed trains (``--set`` and ``--device`` applied)
    run-N/logs/seed-K.log   everything seed K's process printed
    run-N/seed-K/           an ordinary run (config.yaml with train.seed = K, checkpoints, TensorBoard, ...)

Each seed trains in its own process, ``python -m reservoir_rl train run-N/config.yaml --seed K --name seed-K
--runs-dir run-N`` (resume: ``python -m reservoir_rl resume run-N/seed-K``), at most ``os.cpu_count()`` at a
time, each with ``cpu_count // parallel`` torch threads (OMP_NUM_THREADS). The processes live in their own
session, so a terminal's Ctrl-C reaches only this process, which forwards SIGINT / SIGTERM to every seed
(each then saves a checkpoint) and starts no further seed; a second signal is forwarded too (the seeds stop
at once, as a single run does). If this process dies, Linux sends each seed SIGTERM (`follow_parent`).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from reservoir_rl.config import config_from_dict, config_to_dict, dump_config, load_config
from reservoir_rl.errors import UserError
from reservoir_rl.service.runs import SEEDS_FILE, RunDir, create_run, run_lock

SEEDS_FORMAT = "reservoir-rl-seeds"
PARENT_PID_ENV = "RESERVOIR_RL_PARENT_PID"
POLL_SECONDS = 0.25
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A seed's process prints this (the plain progress view's first line) once its signal handlers are set:
# a signal that arrives earlier is held back until then (Python's default SIGINT would raise a traceback).
_ARMED = re.compile(r"^training [\d,]+ frames")
_PROGRESS = re.compile(r"^frames [\d,]+/[\d,]+")
Messages = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class SeedGroup:
    """The files of a multi-seed run."""

    path: Path
    seeds: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seeds_path(self) -> Path:
        return self.path / SEEDS_FILE

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def run(self, seed: int) -> RunDir:
        return RunDir(self.path / f"seed-{seed}")

    def log_path(self, seed: int) -> Path:
        return self.logs / f"seed-{seed}.log"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → [0, 1, 2]; an empty list, a non-integer, a negative or a repeated seed is a one-line error."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise UserError(f"--seeds {text!r}: give a comma-separated list of seeds, e.g. --seeds 0,1,2")
    seeds = []
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            what = "an empty entry" if not part else repr(part)
            raise UserError(f"--seeds {text!r}: {what} is not a whole number ≥ 0; e.g. --seeds 0,1,2")
        seed = int(part)
        if seed in seeds:
            raise UserError(f"--seeds {text!r}: seed {seed} is listed twice")
        seeds.append(seed)
    return seeds


def read_group(path: Path) -> SeedGroup:
    """The multi-seed run in ``path`` (its seeds.yaml checked)."""
    file = path / SEEDS_FILE
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"{file}: cannot read it ({' '.join(str(error).split())[:120]})") from None
    seeds = document.get("seeds") if isinstance(document, dict) else None
    if not (isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds) and len(set(seeds)) == len(seeds)):
        raise UserError(f"{file}: not a seeds file of reservoir-rl (needs 'seeds': a list of distinct whole numbers)")
    return SeedGroup(path, tuple(seeds))


def find_group(run: str | Path, runs_dir: str | Path = "runs") -> Optional[SeedGroup]:
    """The multi-seed run named by ``run`` (a folder, or a name under ``runs_dir``), or None if it is not one."""
    for path in (Path(run), Path(runs_dir) / str(run)):
        if (path / SEEDS_FILE).is_file():
            return read_group(path)
    return None


def follow_parent() -> None:
    """In a seed's process: have Linux send SIGTERM when the `train --seeds` process that started it dies,
    so the seed saves a checkpoint and stops instead of training on unattended. No-op elsewhere."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


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

    @property
    def failed(self) -> list[SeedOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def unfinished(self) -> bool:
        return any(o.status in ("stopped", "not started", "failed") for o in self.outcomes)


def _frames_on_disk(run: RunDir) -> Optional[int]:
    """Frames of the newest periodic checkpoint file (from its name: no loading), or None."""
    from reservoir_rl.service.checkpoint import FRAME_FILE_PREFIX

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
    """Fill frames and held-out returns from the seed's ``last.pt`` (left empty if it cannot be read)."""
    from reservoir_rl.errors import CheckpointError
    from reservoir_rl.service.checkpoint import load_checkpoint

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


# ------------------------------------------------------------------------------------- processes


@dataclass
class _Job:
    seed: int
    argv: list[str]
    log: Path
    process: Optional[subprocess.Popen] = None
    reader: Any = None  # the log file, read as the process appends to it
    buffer: bytes = b""
    armed: bool = False
    signals_owed: list[int] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    error: Optional[str] = None
    last_line: str = ""


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), PARENT_PID_ENV: str(os.getpid()),
                "PYTHONUNBUFFERED": "1"})
    env.pop("RESERVOIR_RL_DEBUG", None)
    return env


def _signal(job: _Job, signum: int) -> None:
    if not job.armed:  # not listening yet: deliver once it is
        job.signals_owed.append(signum)
        return
    with contextlib.suppress(ProcessLookupError):
        job.process.send_signal(signum)


def _line(job: _Job, raw: bytes, on_message: Messages) -> None:
    text = raw.decode("utf-8", errors="replace").rstrip()
    if not text.strip():
        return
    job.last_line = text.strip()
    if text.startswith("error:"):
        job.error = text
    if not job.armed and _ARMED.match(text):
        job.armed = True
        for signum in job.signals_owed:
            _signal(job, signum)
        job.signals_owed.clear()
    if on_message is not None and _PROGRESS.match(text):
        on_message(f"seed {job.seed} │ {text}")


@contextlib.contextmanager
def _forward_signals(running: dict[int, _Job], state: dict[str, Any]) -> Iterator[None]:
    """SIGINT / SIGTERM: remember the first, forward every one to the running seeds."""

    def handler(signum: int, _frame: Any) -> None:
        state["stopped_by"] = state["stopped_by"] or signal.Signals(signum).name
        for job in list(running.values()):
            _signal(job, signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _read_output(job: _Job, on_message: Messages) -> None:
    """Handle the lines the seed's process has appended to its log since the last call."""
    data = job.reader.read()
    if not data:
        return
    job.buffer += data
    *lines, job.buffer = job.buffer.split(b"\n")
    for raw in lines:
        _line(job, raw, on_message)


def _start(job: _Job, env: dict[str, str]) -> None:
    """Start the seed's process, its output appended to its log file (which outlives this process)."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "ab") as handle:
        stamp = dt.datetime.now().isoformat(timespec="seconds")
        handle.write(f"=== {stamp} {' '.join(job.argv)}\n".encode())
        handle.flush()
        offset = handle.tell()
        job.started = time.monotonic()
        job.process = subprocess.Popen(job.argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
    job.reader = open(job.log, "rb")
    job.reader.seek(offset)


def run_jobs(jobs: list[_Job], parallel: int, threads: int, on_message: Messages,
             on_exit: Optional[Callable[[_Job], None]] = None) -> Optional[str]:
    """Run the seeds' processes, ``parallel`` at a time; returns the signal that stopped them, if any.

    Each process writes to its log file; progress lines read from it go to ``on_message`` prefixed by the
    seed; ``on_exit`` is called with each job whose process has ended."""
    pending = collections.deque(jobs)
    running: dict[int, _Job] = {}
    ended: list[_Job] = []  # reported after the next seeds have started (reading an outcome takes a while)
    state: dict[str, Any] = {"stopped_by": None}
    env = _child_env(threads)
    with _forward_signals(running, state):
        try:
            while pending or running or ended:
                while pending and len(running) < parallel and not state["stopped_by"]:
                    job = pending.popleft()
                    _start(job, env)
                    running[job.seed] = job
                    if on_message is not None:
                        on_message(f"seed {job.seed} │ started (pid {job.process.pid}, {threads} thread"
                                   f"{'s' if threads > 1 else ''}), output in {job.log}")
                for job in ended:
                    if on_exit is not None:
                        on_exit(job)
                ended.clear()
                if not running:
                    break
                time.sleep(POLL_SECONDS)
                for job in list(running.values()):
                    code = job.process.poll()  # before reading: all it wrote before exiting is read
                    _read_output(job, on_message)
                    if code is None:
                        continue
                    if job.buffer:
                        _line(job, job.buffer, on_message)
                    job.reader.close()
                    job.seconds = time.monotonic() - job.started
                    del running[job.seed]
                    ended.append(job)
        finally:
            for job in running.values():  # an error here: do not leave seeds training unattended
                with contextlib.suppress(ProcessLookupError):
                    job.process.send_signal(signal.SIGTERM)
            for job in running.values():
                job.process.wait()
                job.reader.close()
    return state["stopped_by"]


def _exit_reason(job: _Job) -> str:
    code = job.process.returncode
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    line = job.error or job.last_line or "no output"
    return f"exit code {code}: {line.removeprefix('error:').strip()}"


def _parallelism(n_jobs: int, max_parallel: Optional[int]) -> tuple[int, int]:
    cores = os.cpu_count() or 1
    parallel = max(1, min(n_jobs, max_parallel or cores, cores))
    return parallel, max(1, cores // parallel)


def _record(group: SeedGroup, event: str, command: list[str], **extra: Any) -> None:
    """Append an event to seeds.yaml."""
    document = yaml.safe_load(group.seeds_path.read_text(encoding="utf-8"))
    document.setdefault("history", []).append({
        "event": event, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command), **extra,
    })
    group.seeds_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _run(group: SeedGroup, jobs: list[_Job], outcomes: dict[int, SeedOutcome], parallel: int, threads: int,
         started: float, on_message: Messages) -> SeedsSummary:
    """Run ``jobs``; each seed's outcome is read from its run folder as soon as its process ends."""

    def on_exit(job: _Job) -> None:
        outcome = outcomes[job.seed]
        outcome.exit_code, outcome.seconds = job.process.returncode, job.seconds
        _read_outcome(outcome)
        if job.process.returncode != 0:
            outcome.status, outcome.error = "failed", _exit_reason(job)
        elif outcome.frames is not None and outcome.frames >= outcome.total_frames:
            outcome.status = "finished"
        else:
            outcome.status = "stopped"
        if on_message is not None:
            frames = f" at frame {outcome.frames:,}" if outcome.frames is not None else ""
            on_message(f"seed {job.seed} │ {outcome.status}{frames} after {job.seconds:,.1f} s"
                       + (f" ({outcome.error})" if outcome.error else ""))

    for job in jobs:
        outcomes[job.seed].log = job.log
    stopped_by = run_jobs(jobs, parallel, threads, on_message, on_exit)
    ordered = [outcomes[s] for s in group.seeds]
    return SeedsSummary(group.path, list(group.seeds), ordered, stopped_by, parallel, threads,
                        time.perf_counter() - started)


def _python() -> list[str]:
    return [sys.executable, "-m", "reservoir_rl"]


def _train_argv(group: SeedGroup, seed: int, extra: list[str] = ()) -> list[str]:
    return [*_python(), "train", str(group.config_path.resolve()), "--seed", str(seed), "--name", f"seed-{seed}",
            "--runs-dir", str(group.path.resolve()), *extra]


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
) -> SeedsSummary:
    """Create ``run-N`` and train one ordinary run per seed into ``run-N/seed-K``, in parallel processes.

    The config is validated (for every seed) before anything is created; the resolved config is written
    to ``run-N/config.yaml`` and every seed trains it with its own ``train.seed``."""
    started = time.perf_counter()
    extra = list(overrides) + ([f"train.device={device}"] if device is not None else [])
    config = load_config(config_path, extra)
    raw = config_to_dict(config)
    for seed in seeds:
        config_from_dict({**raw, "train": {**raw["train"], "seed": seed}}, source=f"{config_path} with --seeds {seed}")
    folder = create_run(Path(runs_dir), name, checkpoints=False)
    group = SeedGroup(folder.path, tuple(seeds))
    with run_lock(folder):
        header = (f"# the config every seed of {group.name} trains (see {SEEDS_FILE}); seed-K/config.yaml is this "
                  "file with train.seed = K\n")
        group.config_path.write_text(header + dump_config(config), encoding="utf-8")
        command = list(command or sys.argv)
        parallel, threads = _parallelism(len(seeds), max_parallel)
        document = {"format": SEEDS_FORMAT, "seeds": list(seeds), "config": str(config_path), "overrides": extra}
        group.seeds_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        _record(group, "train", command, total_frames=config.train.total_frames, parallel=parallel,
                threads_per_process=threads)
        jobs = [_Job(seed, _train_argv(group, seed), group.log_path(seed)) for seed in seeds]
        outcomes = {s: SeedOutcome(s, group.run(s).path, "not started", config.train.total_frames) for s in seeds}
        return _run(group, jobs, outcomes, parallel, threads, started, on_message)


def resume_seeds(
    group: SeedGroup,
    total_frames: Optional[int] = None,
    command: Optional[list[str]] = None,
    on_message: Messages = None,
    max_parallel: Optional[int] = None,
) -> SeedsSummary:
    """Continue every seed of a multi-seed run: `resume` the seeds that have a checkpoint, `train` the ones
    that never started, leave the finished ones (``total_frames``, all frames, extends them)."""
    started = time.perf_counter()
    if total_frames is not None and total_frames < 1:
        raise UserError(f"--total-frames {total_frames}: must be positive")
    config = load_config(group.config_path)
    with run_lock(RunDir(group.path)):
        jobs, outcomes = [], {}
        for seed in group.seeds:
            run = group.run(seed)
            target = total_frames if total_frames is not None else _total_frames(run, config.train.total_frames)
            outcome = outcomes[seed] = SeedOutcome(seed, run.path, "not started", target, log=group.log_path(seed))
            frames = _frames_on_disk(run)
            if not run.path.exists():
                extra = [] if total_frames is None else ["--set", f"train.total_frames={total_frames}"]
                jobs.append(_Job(seed, _train_argv(group, seed, extra), group.log_path(seed)))
            elif frames is None:
                outcome.status = "failed"
                outcome.error = f"{run.path} has no checkpoint to resume from; remove the folder to train this seed again"
            elif frames >= target:
                outcome.status, outcome.frames = "already finished", frames
            else:
                extra = [] if total_frames is None else ["--total-frames", str(total_frames)]
                jobs.append(_Job(seed, [*_python(), "resume", str(run.path.resolve()), *extra], group.log_path(seed)))
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
