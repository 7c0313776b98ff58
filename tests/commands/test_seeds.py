"""Multi-seed runs: `train --seeds` (folders, distinct seeds and weights, one-line errors), signals and a
failing seed, `resume` of every seed, and `evaluate` / `plot` aggregated across seeds — checked against
direct computations on the per-seed runs.

One run is trained through the real command in a subprocess, `train --seeds 3,4,5` (two at a time): seed 4's
process is killed and the run gets SIGINT (seed 5 has not started); `resume` then brings every seed to the
same frame count, and evaluate and plot work on that run. A signal that reaches a seed before it listens is
held back until it does (tested on small scripts, `test_a_signal_waits_until_the_seed_listens`).
"""

from __future__ import annotations

import math

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.commands.plot import plot
from reservoir_rl.commands import seed_process
from reservoir_rl.errors import UserError
from reservoir_rl.runs.events import read_scalars
from reservoir_rl.runs.groups import find_group, parse_seeds
from reservoir_rl.runs.processes import Job, exit_reason, run_jobs
from tiny_training import write_config

TIMEOUT_S = 180  # start-up imports torch and torchrl in every process of a shared 2-core machine
EPISODES = 4
runner = CliRunner()
SEEDS = (3, 4, 5)
TINY = {"baselines": {"dp_storage_levels": 100},
        "train": {"total_frames": 10_000_000, "eval_every_frames": 512, "checkpoint_every_frames": 128,
                  "updates_per_frame": 0.125}}


def cli(*args: str, wait: bool = True):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "reservoir_rl", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return process
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out, err


# ------------------------------------------------------------------------------ signals and resume


def _frames(run: Path) -> list[int]:
    return [int(p.name.removeprefix(ckpt.FRAME_FILE_PREFIX).removesuffix(".pt"))
            for p in (run / "checkpoints").glob(f"{ckpt.FRAME_FILE_PREFIX}*.pt")] if (run / "checkpoints").is_dir() else []


def _child_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def _child_of(parent: int, seed: int) -> int:
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        argv = _child_argv(int(pid))
        if argv[1:3] == ["-m", seed_process.MODULE] and json.loads(argv[3])["seed"] == seed:
            return int(pid)
    raise AssertionError(f"no process for seed {seed}")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """`train --seeds 3,4,5` of a long run, two at a time: once seeds 3 and 4 have saved a checkpoint, the
    run is paused (SIGSTOP), seed 4's process killed, SIGINT sent, and the run let go on (SIGCONT): it sees
    the signal before it could start seed 5 in the free slot. Returns (runs folder, run folder, exit code,
    stdout, stderr, argv of seed 4's process)."""
    root = tmp_path_factory.mktemp("seeds")
    config = write_config(root, **TINY)
    process = cli("train", config, "--seeds", ",".join(map(str, SEEDS)), "--processes", "--runs-dir", root / "runs",
                  wait=False)
    run = root / "runs" / "run-1"
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not all(max(_frames(run / f"seed-{s}"), default=0) >= 128 for s in (3, 4)):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGSTOP)
        seed_4 = _child_of(process.pid, 4)
        argv_4 = _child_argv(seed_4)
        os.kill(seed_4, signal.SIGKILL)
        while Path(f"/proc/{seed_4}/stat").read_text().split()[2] not in ("Z", "X"):  # dead, not yet reaped
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGCONT)
        out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    return root / "runs", run, process.returncode, out, err, argv_4


@pytest.fixture(scope="module")
def resumed(interrupted):
    """The same run after `resume run-1 --total-frames T --quiet`: every seed at T frames.
    Returns (runs folder, run folder, T, stdout)."""
    runs, run, *_ = interrupted
    stopped = {s: max(_frames(run / f"seed-{s}")) for s in (3, 4)}
    target = (max(stopped.values()) // 64 + 2) * 64
    code, out, err = cli("resume", "run-1", "--runs-dir", runs, "--total-frames", target, "--quiet")
    assert code == 0, out + err
    return runs, run, target, out


def _started(log: Path) -> list[list[str]]:
    """The argv of each process that wrote to a seed's log (its ``=== time argv`` header lines)."""
    return [line.split(" ", 2)[2].split(" ", 3) for line in log.read_text().splitlines() if line.startswith("=== ")]


def test_a_seed_process_runs_the_use_case_not_the_command_line(interrupted) -> None:
    _, run, *_, argv_4 = interrupted
    assert argv_4[:3] == [sys.executable, "-m", "reservoir_rl.commands.seed_process"] and len(argv_4) == 4
    assert json.loads(argv_4[3]) == {
        "action": "train", "config": str((run / "config.yaml").resolve()), "seed": 4, "name": "seed-4",
        "runs_dir": str(run.resolve()), "overrides": [], "command": json.loads(argv_4[3])["command"]}
    for seed in (3, 4):
        (header,) = _started(run / "logs" / f"seed-{seed}.log")
        assert header[1:3] == ["-m", "reservoir_rl.commands.seed_process"] and "train" not in header[:3]
        assert json.loads(header[3])["seed"] == seed
        command = yaml.safe_load((run / f"seed-{seed}" / "metadata.yaml").read_text())[0]["command"]
        # the command of the multi-seed run (as in seeds.yaml), then the seed
        assert command == yaml.safe_load((run / "seeds.yaml").read_text())["history"][0]["command"] + f" (seed {seed})"
        assert "--seeds 3,4,5" in command


def test_sigint_reaches_every_seed_and_a_killed_seed_is_one_error_line(interrupted) -> None:
    _, run, code, out, err, _ = interrupted
    assert code == 1, out + err
    # the tiny config's plausibility warning (4 training years) comes first, then the one error line
    errors = [line for line in err.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: seed 4 failed (killed by SIGKILL)"), err
    assert "Traceback" not in out + err
    assert "stopped by SIGINT" in out and "continue with" in out
    saved = ckpt.load_checkpoint(run / "seed-3" / "checkpoints" / "last.pt")
    assert 128 <= saved["counters"]["frames"] < 10_000_000
    log = (run / "logs" / "seed-3.log").read_text()
    assert "status: stopped by SIGINT, checkpoint saved" in log and "Traceback" not in log
    assert f"continue with: reservoir-rl resume {run.resolve()}" in log
    assert not (run / "seed-5").exists()  # waiting for a free slot at SIGINT: not started
    rows = [line.split()[:2] for line in out.splitlines() if line.split()[:1] in (["3"], ["4"], ["5"])]
    assert rows == [["3", "stopped"], ["4", "failed"], ["5", "not"]]
    assert "seed 3 │ frames" in out and "seed 4 │ started" in out  # progress lines of each seed


def test_resume_continues_every_seed(resumed) -> None:
    runs, run, target, out = resumed
    for seed in SEEDS:  # 3 from its stop, 4 from its last periodic checkpoint, 5 from scratch
        last = ckpt.load_checkpoint(run / f"seed-{seed}" / "checkpoints" / "last.pt")
        assert last["counters"]["frames"] == target, seed
    assert yaml.safe_load((run / "seed-4" / "metadata.yaml").read_text())[-1]["event"].startswith("resume from frame")
    assert [e["event"] for e in yaml.safe_load((run / "seed-5" / "metadata.yaml").read_text())] == ["train"]
    history = yaml.safe_load((run / "seeds.yaml").read_text())["history"]
    assert [e["event"] for e in history] == ["train", "resume"]
    # 4 was resumed by a second process (appended to its log), 5 trained by its first, both by the use cases
    specs = {seed: [json.loads(argv[3]) for argv in _started(run / "logs" / f"seed-{seed}.log")] for seed in (4, 5)}
    assert [spec["action"] for spec in specs[4]] == ["train", "resume"]
    assert specs[4][1] == {"action": "resume", "run": str((run / "seed-4").resolve()), "seed": 4,
                           "total_frames": target, "command": specs[4][1]["command"], "allow_changed_inflow": False}
    assert [spec["action"] for spec in specs[5]] == ["train"]
    assert specs[5][0]["overrides"] == [f"train.total_frames={target}"]
    metadata = yaml.safe_load((run / "seed-4" / "metadata.yaml").read_text())
    assert metadata[-1]["command"] == history[1]["command"] + " (seed 4)" and "resume run-1" in history[1]["command"]
    log = (run / "logs" / "seed-4.log").read_text()
    assert log.count("\nstatus: finished\n") == 1 and f"frames / updates / episodes: {target:,} / " in log
    # --quiet: no progress lines, one summary row per seed
    assert "│ frames" not in out
    rows = [line.split()[:3] for line in out.splitlines() if line.split()[:1] in (["3"], ["4"], ["5"])]
    assert rows == [[str(s), "finished", f"{target:,}/{target:,}"] for s in SEEDS]
    code, out, err = cli("resume", "run-1", "--runs-dir", runs)
    assert code == 2 and "every seed has trained its train.total_frames" in err, err


def test_seeds_are_ordinary_runs_with_distinct_seeds_and_weights(resumed) -> None:
    _, run, target, _ = resumed
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == [
        "config.yaml", "logs", "seed-3", "seed-4", "seed-5", "seeds.yaml"]
    document = yaml.safe_load((run / "seeds.yaml").read_text())
    assert document["seeds"] == list(SEEDS) and "--seeds 3,4,5" in document["history"][0]["command"]
    weights = {}
    for seed in SEEDS:
        folder = run / f"seed-{seed}"
        assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["seed"] == seed
        assert yaml.safe_load((folder / "metadata.yaml").read_text())[0]["seed"] == seed
        assert ckpt.load_checkpoint(folder / "checkpoints" / "last.pt")["config"]["train"]["seed"] == seed
        assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
        weights[seed] = ckpt.load_checkpoint(folder / "checkpoints" / "best.pt")["q_network"]
        assert "training 10,000,000 frames" in (run / "logs" / f"seed-{seed}.log").read_text() or seed == 5
    for a, b in ((3, 4), (3, 5), (4, 5)):
        assert any(not torch.equal(weights[a][k], weights[b][k]) for k in weights[a]), (a, b)


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "1", "--seeds", "0,1"], "--seed and --seeds exclude each other"),
    (["--seeds", "0,x"], "'x' is not a whole number"),
    (["--seeds", ""], "give a comma-separated list of seeds"),
    (["--seeds", "0,1,0"], "seed 0 is listed twice"),
    (["--seeds", "1,,2"], "an empty entry is not a whole number"),
    (["--seeds", "-1"], "'-1' is not a whole number"),
])
def test_bad_seeds_are_one_line_errors(tmp_path: Path, args, fragment) -> None:
    result = runner.invoke(app, ["train", str(write_config(tmp_path)), "--runs-dir", str(tmp_path / "runs"), *args])
    output = result.output.strip()
    assert result.exit_code == 2 and len(output.splitlines()) == 1 and output.startswith("error:"), output
    assert fragment in output
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_config_that_cannot_run_is_refused_before_any_seed_starts(tmp_path: Path) -> None:
    for args, fragment in ((["--device", "cuda"], "no CUDA device"), (["--set", "train.lr=-1"], "train.lr"),
                           (["--set", "train.frames_per_batch=60"], "frames_per_batch (60) must be a multiple of n_envs (8)")):
        result = runner.invoke(app, ["train", str(write_config(tmp_path)), "--runs-dir", str(tmp_path / "runs"),
                                     "--seeds", "0,1", *args])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and fragment in result.output
    assert not (tmp_path / "runs").exists()


def test_parse_seeds() -> None:
    assert parse_seeds(" 3, 1 ,7") == [3, 1, 7]
    assert parse_seeds("5") == [5]


# ------------------------------------------------------------------------------------------ evaluate


@pytest.fixture(scope="module")
def evaluated(resumed, tmp_path_factory):
    """`evaluate run-1` through the CLI, with --out and --csv."""
    runs, run, *_ = resumed
    folder = tmp_path_factory.mktemp("seed_eval")
    result = runner.invoke(app, ["evaluate", "run-1", "--runs-dir", str(runs), "--episodes", str(EPISODES),
                                 "--out", str(folder / "results.json"), "--csv", str(folder / "episodes.csv")])
    assert result.exit_code == 0, result.output
    return run, result.output, json.loads((folder / "results.json").read_text()), folder / "episodes.csv"


def reference_iqm(values) -> float:
    ordered = np.sort(np.asarray(values, dtype=float).reshape(-1))
    cut = len(ordered) // 4
    return float(ordered[cut: len(ordered) - cut].mean())


def test_evaluate_aggregates_every_seed_on_the_same_episodes(evaluated) -> None:
    run, output, document, _ = evaluated
    assert document["seeds"] == list(SEEDS) and document["episodes"] == EPISODES
    agent = np.array(document["policies"]["agent"]["episodes"]["return"])
    assert agent.shape == (len(SEEDS), EPISODES)
    for i, seed in enumerate(SEEDS):
        # each seed's scores are those of evaluating its own best.pt alone on the same episodes
        single = evaluate(run / f"seed-{seed}" / "checkpoints" / "best.pt", episodes=EPISODES,
                          baselines="sop,dp" if i == 0 else "none", seed=document["seed"])
        np.testing.assert_allclose(agent[i], single.per_episode["agent"]["return"][0].numpy(), rtol=1e-6)
        assert document["episode_info"]["start_record_index"] == single.episode_info["start_record_index"]
        if i == 0:
            for name in ("sop", "dp"):  # the baselines ran once, on the very same traces
                np.testing.assert_allclose(document["policies"][name]["episodes"]["return"],
                                           single.per_episode[name]["return"].numpy(), rtol=1e-6)
    assert not np.allclose(agent[0], agent[1])


def test_evaluate_aggregates_equal_direct_computations(evaluated) -> None:
    _, _, document, _ = evaluated
    agent = np.array(document["policies"]["agent"]["episodes"]["return"])
    sop = np.array(document["policies"]["sop"]["episodes"]["return"])
    dp = np.array(document["policies"]["dp"]["episodes"]["return"])
    mean = document["policies"]["agent"]["summary"]["return"]
    iqm = document["policies"]["agent"]["iqm"]["return"]
    assert mean["mean"] == pytest.approx(agent.mean(axis=1).mean(), rel=1e-9)
    assert iqm["mean"] == pytest.approx(reference_iqm(agent), rel=1e-9)
    assert document["policies"]["sop"]["iqm"]["return"]["mean"] == pytest.approx(reference_iqm(sop), rel=1e-9)
    for estimate in (mean, iqm):
        assert estimate["ci_low"] <= estimate["mean"] <= estimate["ci_high"]
    gap = document["gap_share"]
    assert gap["mean"] == pytest.approx((agent.mean() - sop.mean()) / (dp.mean() - sop.mean()), rel=1e-9)
    assert gap["ci_low"] <= gap["mean"] <= gap["ci_high"]
    for i, seed in enumerate(SEEDS):
        mine = document["per_seed"][str(seed)]
        assert mine["summary"]["return"]["mean"] == pytest.approx(agent[i].mean(), rel=1e-9)
        assert mine["paired_difference"]["sop"]["return"]["mean"] == pytest.approx((agent[i] - sop).mean(), rel=1e-9)
        assert mine["gap_share"]["mean"] == pytest.approx((agent[i].mean() - sop.mean()) / (dp.mean() - sop.mean()), rel=1e-9)
        assert mine["agent_better_share"]["dp"] == pytest.approx(float((agent[i] > dp).mean()))
    assert document["paired_difference"]["hedging"]["return"]["mean"] == pytest.approx(
        (agent - np.array(document["policies"]["hedging"]["episodes"]["return"])).mean(), rel=1e-9)


def test_evaluate_writes_one_csv_row_per_episode_policy_and_seed(evaluated) -> None:
    import csv

    run, output, document, csv_path = evaluated
    rows = list(csv.DictReader(csv_path.open()))
    assert len(document["policies"]) == 8 and len(rows) == 8 * len(SEEDS) * EPISODES  # the agent and 7 baselines
    keys = {(r["policy"], r["seed"], r["episode"]) for r in rows}
    assert len(keys) == len(rows)
    agent = document["policies"]["agent"]["episodes"]["energy_gwh"]
    for row in rows:
        seed, episode = int(row["seed"]), int(row["episode"])
        if row["policy"] == "agent":
            assert float(row["energy_gwh"]) == pytest.approx(agent[SEEDS.index(seed)][episode], abs=5e-4)  # 3 decimals
        else:
            assert float(row["energy_gwh"]) == pytest.approx(
                document["policies"][row["policy"]]["episodes"]["energy_gwh"][episode], abs=5e-4)
    assert (run / "evaluation.json").is_file()
    for fragment in ("3 seeds (3, 4, 5)", "IQM", "gap closed", "stratified bootstrap"):
        assert fragment in " ".join(output.split()), fragment


# ---------------------------------------------------------------------------------------------- plot


def test_plot_draws_every_seed_with_their_mean(resumed, evaluated, tmp_path: Path) -> None:
    runs, run, target, _ = resumed
    result = plot("run-1", out=tmp_path / "figures", runs_dir=runs, seed=4)
    assert result.seed == 4 and result.checkpoint.parent.parent.name == "seed-4"
    assert {p.stem for p in result.files} == {"learning_curve", "training", "reservoir_metrics", "trajectory",
                                              "action_histogram", "reward_breakdown", "evaluation"}
    assert all(p.stat().st_size > 1000 for p in result.files)
    curves = result.curves["eval/return"]
    series = [read_scalars(run / f"seed-{s}" / "tensorboard")["eval/return"] for s in SEEDS]
    assert curves.steps.tolist() == [*range(512, target + 1, 512), *([target] if target % 512 else [])]
    assert all(steps.tolist() == curves.steps.tolist() for steps, _ in series)
    table = np.stack([values for _, values in series])
    np.testing.assert_allclose(curves.mean, table.mean(axis=0))
    np.testing.assert_allclose(curves.low, table.min(axis=0))
    np.testing.assert_allclose(curves.high, table.max(axis=0))
    bad = runner.invoke(app, ["plot", "run-1", "--runs-dir", str(runs), "--seed", "7"])
    assert bad.exit_code == 2 and "--seed 7" in bad.output and "has seeds 3, 4, 5" in bad.output


def test_plot_takes_every_seed_s_baseline_levels_from_the_runs_cache(resumed, evaluated, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A second plot of a multi-seed run computes no baseline on the validation episodes: the first kept each
    seed's levels in RUNS/.cache (the trainer's cache), and the references drawn are those numbers."""
    import reservoir_rl.commands.plot as plot_module

    runs, run, _, _ = resumed
    plot("run-1", out=tmp_path / "first", runs_dir=runs, seed=4)
    kept = sorted((runs / ".cache" / "baseline-levels").glob("*.json"))
    assert len(kept) >= len(SEEDS)  # one key per seed (each seed's own validation episodes)

    def no_computation(*args, **kwargs):
        raise AssertionError("validation baselines computed again")

    monkeypatch.setattr(plot_module, "validation_returns", no_computation)
    result = plot("run-1", out=tmp_path / "second", runs_dir=runs, seed=4)
    assert result.baseline_returns and all(math.isfinite(v) for v in result.baseline_returns.values())


def test_single_seed_commands_name_one_seed_of_a_multi_seed_run(resumed) -> None:
    runs, run, target, _ = resumed
    result = runner.invoke(app, ["inspect-checkpoint", "run-1", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "holds several seeds (seed-3, seed-4, seed-5)" in result.output
    assert "run-1/seed-3" in result.output
    assert find_group("run-1/seed-4", runs) is None
    result = runner.invoke(app, ["resume", "run-1/seed-4", "--runs-dir", str(runs)])  # one seed, already done
    assert result.exit_code == 2 and f"already trained {target:,} frames" in result.output




def test_a_user_error_in_a_seed_process_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, **TINY)
    jobs = [
        Job(0, seed_process.resume_argv(tmp_path / "run-1" / "seed-0", 0, None, ["reservoir-rl", "resume"]),
            tmp_path / "seed-0.log"),
        Job(1, seed_process.train_argv(config, 1, "seed-1", tmp_path / "run-1", ["train.lr=-1"], ["reservoir-rl"]),
            tmp_path / "seed-1.log"),
        Job(2, [sys.executable, "-m", seed_process.MODULE, "{not json"], tmp_path / "seed-2.log"),
    ]
    run_jobs(jobs, parallel=3, threads=1, on_message=None)
    for job, fragment in zip(jobs, ("unknown run", "train.lr", "the spec is not JSON")):
        lines = job.log.read_text().splitlines()[1:]  # after the header line
        assert job.process.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert fragment in lines[0] and exit_reason(job) == f"exit code 2: {lines[0].removeprefix('error: ')}"
    assert not (tmp_path / "run-1").exists()  # a bad config leaves no folder behind


def test_a_seed_spec_is_checked() -> None:
    argv = seed_process.train_argv(Path("c.yaml"), 3, "seed-3", Path("run-1"), ["a.b=1"], ["x", "--seeds", "3"])
    assert argv[:3] == [sys.executable, "-m", seed_process.MODULE]
    assert seed_process.read_spec(argv[3:])["overrides"] == ["a.b=1"]
    group = seed_process.train_seeds_argv(Path("run-1"), [2, 3], [], ["x"])
    assert seed_process.read_spec(group[3:])["seeds"] == [2, 3]
    assert seed_process.read_spec(seed_process.resume_seeds_argv(Path("run-1"), [2], None, ["x"])[3:])["seeds"] == [2]
    for bad, fragment in (([], "expected one argument"), (['{"action": "plot"}'], "one of train, resume"),
                          (['{"action": "resume", "seed": 1}'], "lacks run, total_frames, command"),
                          (['{"action": "train-seeds", "group": "g", "seeds": [], "overrides": [], "command": []}'],
                           "'seeds' must be a list of whole numbers"),
                          (['{"action": "resume-seeds", "group": "g", "seeds": [1]}'], "lacks total_frames, command")):
        with pytest.raises(UserError, match=fragment):
            seed_process.read_spec(bad)


CHILD = """
import os, signal, sys, time
from pathlib import Path
from reservoir_rl.runs.processes import follow_parent
signal.signal(signal.SIGTERM, lambda *_: (Path(sys.argv[1]).write_text("SIGTERM"), os._exit(0)))
follow_parent()
Path(sys.argv[1] + ".ready").touch()
time.sleep(60)
"""
PARENT = """
import os, subprocess, sys, time
from pathlib import Path
env = {**os.environ, "RESERVOIR_RL_PARENT_PID": str(os.getpid())}
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=env)
while not Path(sys.argv[2] + ".ready").exists():
    time.sleep(0.02)
os._exit(0)  # dies without a word to its child
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_seed_gets_sigterm_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    marker = tmp_path / "child"
    subprocess.run([sys.executable, "-c", PARENT, CHILD, str(marker)], timeout=TIMEOUT_S, check=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == "SIGTERM"


def test_resume_trains_again_the_seeds_stopped_before_their_first_checkpoint(tmp_path: Path) -> None:
    """A seed killed between writing its config.yaml and its first checkpoint restarts from that config; one
    killed before its config.yaml (only .lock and an empty checkpoints/) is trained again in its folder."""
    from reservoir_rl.commands import seeds as multi

    config = write_config(tmp_path, train={"total_frames": 64})
    runs = tmp_path / "runs"
    summary = multi.train_seeds(config, [0, 1], [], runs, "group", None, command=["reservoir-rl", "train"])
    assert [o.status for o in summary.outcomes] == ["finished", "finished"], summary.outcomes
    group = find_group("group", runs)
    for path in (group.run(0).checkpoints.iterdir()):
        path.unlink()  # seed 0: config.yaml written, no checkpoint yet
    seed_1 = group.run(1).path
    for path in [*seed_1.iterdir()]:
        if path.name != ".lock":
            subprocess.run(["rm", "-r", str(path)], check=True)
    (seed_1 / "checkpoints").mkdir()  # seed 1: the folder and its lock only
    resumed = multi.resume_seeds(group, 128, command=["reservoir-rl", "resume"])
    assert [(o.status, o.frames) for o in resumed.outcomes] == [("finished", 128), ("finished", 128)], resumed.outcomes


def test_max_parallel_sets_how_many_seeds_train_at_once(tmp_path: Path, monkeypatch) -> None:
    """--max-parallel N: N seeds at a time (fewer or more than the cores), recorded in seeds.yaml; without
    --seeds, or on a single run, it is a one-line error."""
    from reservoir_rl.commands import seeds as multi

    cores = os.cpu_count() or 1
    assert multi._parallelism(3, None) == (min(3, cores), max(1, cores // min(3, cores)))
    assert multi._parallelism(3, 1) == (1, cores)
    assert multi._parallelism(5, 4) == (4, max(1, cores // 4))  # more than the cores when asked
    assert multi._parallelism(2, 8) == (2, max(1, cores // 2))  # never more than the seeds

    ran = {}

    def fake_run(group, jobs, outcomes, parallel, threads, started, on_message):
        ran.update(parallel=parallel, threads=threads, seeds=[job.seed for job in jobs])
        raise UserError(f"stopped before starting {len(jobs)} seeds")

    monkeypatch.setattr(multi, "_run", fake_run)
    config = write_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--seeds", "0,1,2",
                                 "--max-parallel", "1", "--quiet"])
    assert result.exit_code == 2 and "stopped before starting 3 seeds" in result.output, result.output
    assert ran == {"parallel": 1, "threads": cores, "seeds": [0, 1, 2]}
    history = yaml.safe_load((tmp_path / "runs" / "run-1" / "seeds.yaml").read_text())["history"]
    assert history[-1]["parallel"] == 1

    for args, fragment in ((["train", str(config), "--max-parallel", "2"], "--max-parallel applies to several seeds"),
                           (["train", str(config), "--seeds", "0,1", "--max-parallel", "0"], "--max-parallel")):
        result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "other")])
        output = result.output.strip()
        assert result.exit_code == 2 and len(output.splitlines()) == 1 and output.startswith("error:"), output
        assert fragment in output
    assert not (tmp_path / "other").exists()


def test_seeds_train_vectorized_by_default_where_the_config_allows_it(tmp_path: Path, monkeypatch) -> None:
    """`train --seeds` trains the seeds vectorized unless --processes, --max-parallel alone or a config that
    cannot train vectorized (a note says why) asks for one process per seed."""
    from reservoir_rl.commands import seeds as multi
    from reservoir_rl.commands import vectorized as vectorized_mode

    modes = []

    def fake_run(group, jobs, outcomes, parallel, threads, started, on_message):
        modes.append("processes")
        raise UserError("stopped before training")

    def fake_group(group, config, command, started, on_message):
        modes.append("vectorized")
        raise UserError("stopped before training")

    monkeypatch.setattr(multi, "_run", fake_run)
    monkeypatch.setattr(vectorized_mode, "train_group", fake_group)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one core: the vectorized seeds in this process
    config = str(write_config(tmp_path))
    runs = str(tmp_path / "runs")
    for args, mode in (([], "vectorized"), (["--vectorized"], "vectorized"), (["--processes"], "processes"),
                       (["--max-parallel", "1"], "processes"),
                       (["--set", "train.collector.backend=process"], "processes")):
        result = runner.invoke(app, ["train", config, "--runs-dir", runs, "--seeds", "0,1", *args])
        assert result.exit_code == 2 and "stopped before training" in result.output, result.output
        assert modes[-1] == mode, args
        document = yaml.safe_load(sorted((tmp_path / "runs").glob("run-*"))[-1].joinpath("seeds.yaml").read_text())
        assert document.get("vectorized", False) is (mode == "vectorized")
    assert "one process per seed: vectorized seeds need train.collector.backend = sync (it is process)" in result.output
    for args, fragment in ((["--processes"], "--processes applies to several seeds"),
                           (["--seeds", "0,1", "--vectorized", "--set", "train.collector.backend=process"],
                            "--vectorized: vectorized seeds need train.collector.backend = sync")):
        result = runner.invoke(app, ["train", config, "--runs-dir", str(tmp_path / "other"), *args])
        assert result.exit_code == 2 and fragment in result.output, result.output
