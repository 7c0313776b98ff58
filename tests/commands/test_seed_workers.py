"""Vectorized seeds spread over processes (`train --seeds ... --vectorized --max-parallel N`; by default one group
per CPU core): the split into groups, every seed bitwise its plain run whichever process trained it, SIGINT
reaching the worker processes, and `resume` continuing each group that has frames left in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from reservoir_rl.commands import seed_process
from reservoir_rl.commands.seeds import recorded_groups, resume_seeds, train_seeds, worker_groups
from reservoir_rl.runs.processes import start_standby, stop_standby
from reservoir_rl.commands.train import train
from reservoir_rl.monitor.live import make_view
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.runs.groups import find_group
from tiny_training import write_config

TOTAL = 2048  # evaluations every 512 frames: a signal at the first one reaches a worker well before its end


def test_worker_groups_split_the_seeds_into_consecutive_groups() -> None:
    assert worker_groups([0, 1, 2], 2) == [(0, 1), (2,)]
    assert worker_groups(list(range(10)), 2) == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]
    assert worker_groups([4, 9], 8) == [(4,), (9,)]  # never more groups than seeds
    assert worker_groups([3, 1, 2], 1) == [(3, 1, 2)]
    five = worker_groups(list(range(5)), 3)
    assert [len(g) for g in five] == [2, 2, 1] and sum(five, ()) == tuple(range(5))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny config (no baselines' levels) and the plain runs of seeds 7 and 8, by seed."""
    root = tmp_path_factory.mktemp("workers")
    config = write_config(root, train={"total_frames": TOTAL, "eval_every_frames": 512}, logging={"baseline_levels": False})
    plain = {seed: train(config, [], make_view("quiet"), root / "plain", f"seed-{seed}", seed=seed, command=["t"]).run_dir
             for seed in (7, 8)}
    return root, config, plain


def assert_same_state(run: Path, other: Path) -> None:
    """The last checkpoints of two runs: networks (online and target), Adam, counters and torch stream, bitwise."""
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (run, other))
    for key in ("q_network", "loss_module"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (run, key, name)
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (run, index, name)
    assert a["counters"] == b["counters"] and a["counters"]["frames"] == TOTAL
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["best_eval_return"] == b["best_eval_return"]


def test_a_seed_is_its_plain_run_in_whichever_process_it_trains(setup) -> None:
    root, config, plain = setup
    messages: list[str] = []
    summary = train_seeds(config, [7, 8], [], root / "runs", "two", command=["t"], vectorized=True, max_parallel=2,
                          on_message=messages.append)
    assert summary.vectorized and summary.parallel == 2 and summary.stopped_by is None
    assert [o.status for o in summary.outcomes] == ["finished", "finished"]
    document = yaml.safe_load((summary.run_dir / "seeds.yaml").read_text())
    assert document["workers"] == [[7], [8]] and document["history"][0]["processes"] == 2
    assert recorded_groups(find_group(summary.run_dir)) == [(7,), (8,)]
    assert "frames 2,048/2,048" in (summary.run_dir / "logs" / "seeds-8.log").read_text()  # the worker's own output
    assert any(m.startswith("seed 8 │ frames 2,048/2,048 │ validation return: seed 8") for m in messages)
    assert any(m.startswith("frames 2,048/2,048 │ validation return: seed 7") for m in messages)  # this process's group
    for seed in (7, 8):
        assert_same_state(summary.run_dir / f"seed-{seed}", plain[seed])


def _interrupted(setup, name: str, prefix: str):
    """Seeds 7 and 8 in two processes, SIGINT sent to this process at the first progress line that starts
    with ``prefix``; the run's summary (stopped by that signal)."""
    root, config, _ = setup
    sent: list[str] = []

    def on_message(message: str) -> None:
        if message.startswith(prefix) and not sent:
            sent.append(message)
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train_seeds(config, [7, 8], [], root / "runs", name, command=["t"], vectorized=True, max_parallel=2,
                          on_message=on_message)
    assert sent and stopped.stopped_by == "SIGINT"
    return stopped


def test_sigint_reaches_the_workers_and_resume_ends_where_the_plain_runs_end(setup) -> None:
    """SIGINT at the worker's first evaluation: its seed saves a checkpoint and stops (the group of this process
    has finished or stops too); `resume` trains what is left, and every seed ends as its plain run."""
    plain = setup[2]
    stopped = _interrupted(setup, "late", "seed 8 │ frames 512/2,048")
    seed_7, seed_8 = stopped.outcomes
    assert seed_8.status == "stopped" and 512 <= seed_8.frames < TOTAL, seed_8
    assert seed_7.status in ("finished", "stopped")
    resumed = resume_seeds(find_group(stopped.run_dir), command=["r"])
    assert [o.status for o in resumed.outcomes] == [
        "already finished" if seed_7.status == "finished" else "finished", "finished"]
    for seed in (7, 8):
        assert_same_state(stopped.run_dir / f"seed-{seed}", plain[seed])


def test_a_worker_stopped_before_it_trained_is_trained_by_resume(setup) -> None:
    """SIGINT at this process's first evaluation, while the worker is still starting: the worker stops with its
    seed not started (no folder) or with a checkpoint; `resume` continues both groups, each in its process."""
    plain = setup[2]
    stopped = _interrupted(setup, "early", "frames 512/2,048 │ validation return: seed 7")
    seed_7, seed_8 = stopped.outcomes
    assert seed_7.status == "stopped" and seed_7.frames == 512
    assert seed_8.status in ("not started", "stopped"), seed_8
    messages: list[str] = []
    resumed = resume_seeds(find_group(stopped.run_dir), command=["r"], on_message=messages.append)
    assert resumed.parallel == 2 and [o.status for o in resumed.outcomes] == ["finished", "finished"]
    assert any(m.startswith("seed 8 │ started") for m in messages)  # the worker's group in its own process again
    for seed in (7, 8):
        assert_same_state(stopped.run_dir / f"seed-{seed}", plain[seed])


def test_the_command_line_hands_the_worker_groups_to_processes_started_ahead(setup, tmp_path: Path) -> None:
    """`train --seeds` starts the worker of its second group before it imports torch itself; that standby
    process takes the group (its log says so) and trains it to the plain run."""
    root, config, plain = setup
    done = subprocess.run([sys.executable, "-m", "reservoir_rl", "train", str(config), "--seeds", "7,8", "--vectorized",
                           "--max-parallel", "2", "--quiet", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 seeds vectorized in 2 processes" in " ".join(done.stdout.split())
    log = (tmp_path / "run-1" / "logs" / "seeds-8.log").read_text()
    assert "imported ahead, took this job" in log, log
    assert_same_state(tmp_path / "run-1" / "seed-8", plain[8])


def test_a_standby_process_that_gets_no_job_exits() -> None:
    processes = start_standby(seed_process.MODULE, 2, 1)
    stop_standby(processes)
    assert [process.returncode for process in processes] == [0, 0]
