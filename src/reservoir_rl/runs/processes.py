"""The processes of a multi-seed run: start each seed's command, at most N at a time, follow its output,
forward SIGINT / SIGTERM, and have each seed stop if the starting process dies.

Each process writes to its own log file (which outlives the starting process); its progress lines are read
back from that file. The processes live in their own session, so a terminal's Ctrl-C reaches only the
starting process, which forwards it once to every seed that is listening.
"""

from __future__ import annotations

import collections
import contextlib
import atexit
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Optional

PARENT_PID_ENV = "RESERVOIR_RL_PARENT_PID"
POLL_SECONDS = 0.25
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A seed's process prints this (the plain progress view's first line) once its signal handlers are set:
# a signal that arrives earlier is held back until then (Python's default SIGINT would raise a traceback).
_ARMED = re.compile(r"^training [\d,]+ frames")
_PROGRESS = re.compile(r"^frames [\d,]+/[\d,]+")
_CONTINUATION = re.compile(r"^  \S")
MIN_CHILD_COLUMNS = 40
Messages = Optional[Callable[[str], None]]


def parallelism(n_jobs: int, max_parallel: Optional[int]) -> tuple[int, int]:
    """(processes at a time, torch threads each): one per core unless ``max_parallel`` (``--max-parallel``)
    says otherwise — fewer, to leave cores free, or more than the cores, to have every job progress at once
    (each then gets one thread); never more than ``n_jobs``."""
    cores = os.cpu_count() or 1
    parallel = max(1, min(n_jobs, max_parallel or cores))
    return parallel, max(1, cores // parallel)


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


@dataclass
class Job:
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
    in_status: bool = False  # the last line read was part of a progress summary
    label: Optional[str] = None  # what the parent puts before the job's lines (None: `prefix` of its seed)
    standby: Optional[subprocess.Popen] = None  # a process started ahead that takes this job's spec (`start_standby`)

    @property
    def prefix(self) -> str:
        return self.label if self.label is not None else prefix(self.seed)


def prefix(seed: int) -> str:
    """What the parent puts before each line it prints for seed ``seed``."""
    return f"seed {seed} │ "


def _child_env(threads: int, prefix_width: int = 0) -> dict[str, str]:
    """The seeds' environment: ``threads`` per process, and lines as wide as the parent's terminal (COLUMNS, or
    80 when it has none) less the ``prefix_width`` the parent puts before each of them."""
    env = dict(os.environ)
    columns = shutil.get_terminal_size((80, 24)).columns
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), PARENT_PID_ENV: str(os.getpid()),
                "PYTHONUNBUFFERED": "1", "COLUMNS": str(max(MIN_CHILD_COLUMNS, columns - prefix_width))})
    env.pop("RESERVOIR_RL_DEBUG", None)
    return env


# held while a job's signals are sent or held back: the starting process may forward a signal from its main
# thread while another thread reads the job's output (`forward_signal`)
_SIGNALS = threading.RLock()


def _signal(job: Job, signum: int) -> None:
    with _SIGNALS:
        if not job.armed:  # not listening yet: deliver once it is
            job.signals_owed.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            job.process.send_signal(signum)


def _line(job: Job, raw: bytes, on_message: Messages) -> None:
    text = raw.decode("utf-8", errors="replace").rstrip()
    if not text.strip():
        return
    job.last_line = text.strip()
    if text.startswith("error:"):
        job.error = text
    if not job.armed and _ARMED.match(text):
        with _SIGNALS:
            job.armed = True
            for signum in job.signals_owed:
                _signal(job, signum)
            job.signals_owed.clear()
    # the progress summary and its continuation lines (indented by two spaces; the episode table by four)
    job.in_status = bool(_PROGRESS.match(text)) or (job.in_status and _CONTINUATION.match(text) is not None)
    if on_message is not None and job.in_status:
        on_message(job.prefix + text)


def forward_signal(jobs: list[Job], signum: int) -> None:
    """Send ``signum`` to every job whose process has started and not ended (held back until a job listens)."""
    for job in jobs:
        if job.process is None or job.process.poll() is None:  # (not started yet: held until it listens)
            _signal(job, signum)


@contextlib.contextmanager
def _forward_signals(running: dict[int, Job], state: dict[str, Any]) -> Iterator[None]:
    """SIGINT / SIGTERM: remember the first, forward every one to the running seeds."""

    def handler(signum: int, _frame: Any) -> None:
        state["stopped_by"] = state["stopped_by"] or signal.Signals(signum).name
        for job in list(running.values()):
            _signal(job, signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with stop_signal_handler(handler):
        yield


@contextlib.contextmanager
def stop_signal_handler(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` receives SIGINT and SIGTERM inside the block; the previous handlers come back after it.

    Outside the main thread (``reservoir_rl.train`` called from a worker thread) Python lets no one set a
    signal handler: the block then runs with the signals as they were."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _read_output(job: Job, on_message: Messages) -> None:
    """Handle the lines the seed's process has appended to its log since the last call."""
    data = job.reader.read()
    if not data:
        return
    job.buffer += data
    *lines, job.buffer = job.buffer.split(b"\n")
    for raw in lines:
        _line(job, raw, on_message)


def _start(job: Job, env: dict[str, str]) -> None:
    """Start the seed's process, its output appended to its log file (which outlives this process); or hand
    the job to its standby process, when it has one that is still waiting."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "ab") as handle:
        stamp = dt.datetime.now().isoformat(timespec="seconds")
        handle.write(f"=== {stamp} {' '.join(job.argv)}\n".encode())
        handle.flush()
        offset = handle.tell()
        job.started = time.monotonic()
        if job.standby is not None and _hand_over(job.standby, job):
            job.process = job.standby
        else:
            job.process = subprocess.Popen(job.argv, stdout=handle, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    job.reader = open(job.log, "rb")
    job.reader.seek(offset)


# ------------------------------------------------------------------------------------ standby processes
# A worker's start-up (the interpreter, torch, torchrl: about 5 s) can overlap the starting process's own: a
# standby process is started before the starting process imports them, imports them itself, and then waits
# for one line on its stdin — the argv of its job (after the interpreter's) and its log file — or for the end
# of its stdin (the starting process did not need it, or died), when it exits.

STANDBY_FLAG = "--standby"


def start_standby(module: str, count: int, threads: int) -> list[subprocess.Popen]:
    """``count`` standby processes ``python -m MODULE --standby`` with ``threads`` torch threads each (the
    environment of the jobs, `_child_env`); MODULE's ``--standby`` mode is `wait_for_job`."""
    env = _child_env(threads)
    return [subprocess.Popen([sys.executable, "-m", module, STANDBY_FLAG], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
            for _ in range(max(0, count))]


def stop_standby(processes: list[subprocess.Popen]) -> None:
    """End the standby processes that took no job (their stdin is closed: each exits)."""
    waiting = [process for process in processes if process.stdin is not None and not process.stdin.closed]
    for process in waiting:
        with contextlib.suppress(OSError):
            process.stdin.close()
    for process in waiting:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _hand_over(process: subprocess.Popen, job: Job) -> bool:
    """Send ``job`` to a standby process; False when it is gone (it then takes nothing)."""
    if process.poll() is not None or process.stdin is None or process.stdin.closed:
        return False
    line = json.dumps({"argv": job.argv[3:], "log": str(job.log)}, ensure_ascii=False) + "\n"
    try:
        process.stdin.write(line.encode())
        process.stdin.close()
    except OSError:
        return False
    return True


def wait_for_job() -> Optional[list[str]]:
    """In a standby process: wait for its job (`start_standby`), send stdout and stderr to the job's log, and
    return the job's arguments; None when the starting process closed stdin without a job."""
    waiting = time.monotonic()
    line = sys.stdin.readline()
    if not line.strip():
        return None
    job = json.loads(line)
    descriptor = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    print(f"standby process {os.getpid()}: imported ahead, took this job after waiting "
          f"{time.monotonic() - waiting:.1f} s", flush=True)
    return [str(argument) for argument in job["argv"]]


def run_jobs(jobs: list[Job], parallel: int, threads: int, on_message: Messages,
             on_exit: Optional[Callable[[Job], None]] = None) -> Optional[str]:
    """Run the seeds' processes, ``parallel`` at a time; returns the signal that stopped them, if any.

    Each process writes to its log file; progress lines read from it go to ``on_message`` prefixed by the
    seed; ``on_exit`` is called with each job whose process has ended."""
    pending = collections.deque(jobs)
    running: dict[int, Job] = {}
    ended: list[Job] = []  # reported after the next seeds have started (reading an outcome takes a while)
    state: dict[str, Any] = {"stopped_by": None}
    env = _child_env(threads, max((len(job.prefix) for job in jobs), default=0))
    with _forward_signals(running, state):
        try:
            while pending or running or ended:
                while pending and len(running) < parallel and not state["stopped_by"]:
                    job = pending.popleft()
                    _start(job, env)
                    running[job.seed] = job
                    if on_message is not None:
                        on_message(job.prefix + f"started (pid {job.process.pid}, {threads} thread"
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


def exit_reason(job: Job) -> str:
    """One line: why the process of ``job`` failed."""
    code = job.process.returncode
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    line = job.error or job.last_line or "no output"
    return f"exit code {code}: {line.removeprefix('error:').strip()}"


def exit_now(code: Any = 0) -> NoReturn:
    """End this process with ``code`` (as ``sys.exit(code)`` would: None is 0, an int is the status, anything
    else is printed to stderr and gives 1) once what ``sys.exit`` does before the interpreter's teardown is done:
    the other non-daemon threads joined, the exit handlers run (`atexit`: logging, TensorBoard, multiprocessing),
    stdout and stderr flushed. The teardown of the imported modules themselves (torch, torchrl, sympy: about
    1.5 s on this machine, for nothing to save) is skipped. Every file this package writes is closed by then
    (atomic writes, closed TensorBoard writers)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
