"""The seeds' processes on small scripts: a signal waits until the process listens, no seed starts after a
signal, output lines are read back from the log, a failure is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reservoir_rl.runs.processes import Job, exit_reason, run_jobs

# Stands for a seed: start-up (Python's default SIGINT would end it with a traceback), then the handler
# and the plain view's first line, then work until stopped.
SEED = """
import signal, sys, time
time.sleep(float(sys.argv[1]))
signal.signal(signal.SIGINT, lambda *_: (print("stopped by SIGINT", flush=True), sys.exit(0)))
print("training 100 frames", flush=True)
print("frames 64/100 (64.0%) | 10 fps", flush=True)
time.sleep(30)
print("never stopped", flush=True)
"""


def test_a_signal_waits_until_the_seed_listens(tmp_path: Path) -> None:
    jobs = [Job(seed, [sys.executable, "-c", SEED, "0.5"], tmp_path / f"seed-{seed}.log") for seed in (0, 1)]
    messages: list[str] = []

    def on_message(text: str) -> None:
        messages.append(text)
        if text.startswith("seed 0 │ started"):  # Ctrl-C at once, while seed 0 is still starting
            os.kill(os.getpid(), signal.SIGINT)

    assert run_jobs(jobs, parallel=1, threads=1, on_message=on_message) == "SIGINT"
    log = jobs[0].log.read_text()
    assert jobs[0].process.returncode == 0, log
    lines = log.splitlines()
    assert "stopped by SIGINT" in lines and "Traceback" not in log and "never stopped" not in lines
    assert jobs[1].process is None and not jobs[1].log.exists()  # waiting at the signal: never started
    assert messages[1:] == ["seed 0 │ frames 64/100 (64.0%) | 10 fps"]  # progress lines, read from the log


def test_a_failed_process_is_one_line(tmp_path: Path) -> None:
    failing = Job(0, [sys.executable, "-c", "import sys; print('working'); print('error: the inflow file is gone'); "
                                            "print('done'); sys.exit(2)"], tmp_path / "a.log")
    killed = Job(1, [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], tmp_path / "b.log")
    ended = []
    assert run_jobs([failing, killed], parallel=2, threads=1, on_message=None, on_exit=ended.append) is None
    assert sorted(job.seed for job in ended) == [0, 1]
    assert exit_reason(failing) == "exit code 2: the inflow file is gone"
    assert exit_reason(killed) == "killed by SIGKILL"
    assert failing.log.read_text().splitlines()[1:] == ["working", "error: the inflow file is gone", "done"]


def test_stop_signal_handler_outside_the_main_thread_leaves_the_signals_as_they_were() -> None:
    """`reservoir_rl.train` from a worker thread: Python allows no handler there, the block still runs."""
    import signal
    import threading

    from reservoir_rl.runs.processes import stop_signal_handler

    before = signal.getsignal(signal.SIGTERM)
    ran: list[object] = []

    def work() -> None:
        with stop_signal_handler(lambda *_: None):
            ran.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert ran == [before] and signal.getsignal(signal.SIGTERM) is before
    with stop_signal_handler(handler := (lambda *_: None)):  # the main thread: installed, then restored
        assert signal.getsignal(signal.SIGTERM) is handler
    assert signal.getsignal(signal.SIGTERM) is before


def test_seed_lines_fit_the_parent_terminal_with_their_prefix(tmp_path: Path, monkeypatch) -> None:
    """A seed formats its lines for the parent's width less the "seed K │ " prefix, and the summary's
    continuation lines reach the parent with it (the episode table stays in the log)."""
    monkeypatch.setenv("COLUMNS", "80")
    script = ("import os; width = int(os.environ['COLUMNS']); "
              "print('frames 10/100 (10.0%) | ' + 'x' * (width - 24)); print('  eta 5 s'); "
              "print('episodes finished (2):'); print('    return  12.0'); print(f'width {width}')")
    job = Job(12, [sys.executable, "-c", script], tmp_path / "seed.log")
    messages: list[str] = []
    assert run_jobs([job], parallel=1, threads=1, on_message=messages.append) is None
    assert "width 70" in job.log.read_text()  # 80 − len("seed 12 │ ")
    forwarded = messages[1:]
    assert forwarded == ["seed 12 │ frames 10/100 (10.0%) | " + "x" * 46, "seed 12 │   eta 5 s"]
    assert max(len(line) for line in forwarded) == 80


EXIT_NOW = """
import atexit, sys, threading, time
from pathlib import Path
from reservoir_rl.runs.processes import exit_now
atexit.register(lambda: Path(sys.argv[1]).write_text("exit handler ran"))
worker = threading.Thread(target=lambda: (time.sleep(0.3), Path(sys.argv[1] + ".thread").write_text("joined")))
worker.start()
print("buffered line")  # stdout is a pipe: block-buffered until flushed
exit_now(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
"""


@pytest.mark.parametrize("code, status", [("0", 0), ("3", 3), ("a message", 1)])
def test_exit_now_keeps_what_sys_exit_does_before_the_teardown(tmp_path: Path, code: str, status: int) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", EXIT_NOW, str(marker), code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == status
    assert done.stdout == "buffered line\n"
    assert marker.read_text() == "exit handler ran" and (tmp_path / "marker.thread").read_text() == "joined"
    assert done.stderr == ("a message\n" if status == 1 else "")
