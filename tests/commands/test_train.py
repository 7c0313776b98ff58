"""`train`: learning happens, best.pt follows the held-out evaluation, signals and kills are survived.

The crash tests run ``python -m reservoir_rl train`` in subprocesses (both started together, they share
the few seconds of start-up): one gets SIGINT after its first periodic checkpoint, one gets SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands import train as service
from reservoir_rl.runs.folders import RunDir
from tiny_training import scalar_series, write_config

START_TIMEOUT_S = 120  # generous: start-up imports torch and torchrl on a shared 2-core machine


def test_loss_falls_on_a_short_run(tmp_path: Path) -> None:
    """Fixed seed, bounded rewards (no failure penalty), γ = 0.5: the TD loss logged over the last
    quarter of the run is well below the first quarter's (measured: 4–8× lower over five seeds)."""
    config = write_config(
        tmp_path,
        env={"horizon_days": 60, "terminate_on_failure": False, "reward": {"failure": 0.0}},
        agent={"hidden_sizes": [32], "gamma": 0.5},
        train={"total_frames": 1024, "init_random_frames": 256, "updates_per_frame": 0.5, "eps_decay_frames": 512,
               "target_update_period": 25, "eval_every_frames": 1_000_000, "seed": 0},
        logging={"log_every_frames": 64, "baseline_levels": False},
    )
    summary = service.train(config, [], QuietView(), tmp_path / "runs")
    scalars = scalar_series(summary.run_dir / "tensorboard")
    assert "eval/return" in scalars and not any(tag.startswith("baselines/") for tag in scalars)  # switched off
    loss = [value for _, value in scalars["train/loss"]]
    assert len(loss) == (1024 - 256) // 64  # one value per log period once updates start
    quarter = len(loss) // 4
    early, late = sum(loss[:quarter]) / quarter, sum(loss[-quarter:]) / quarter
    assert late < 0.5 * early, loss


def test_tensorboard_figures_every_figure_every_frames_and_at_the_end(tmp_path: Path) -> None:
    """Figures follow logging.figure_every_frames whether or not an evaluation falls in the same batch, and a
    finished run has them at its last frame (a run shorter than figure_every_frames has them there); the
    figure-only rollouts add no eval/ point."""
    from tiny_training import read_events

    config = write_config(tmp_path, train={"total_frames": 448, "eval_every_frames": 256},
                          logging={"figure_every_frames": 192, "baseline_levels": False})
    summary = service.train(config, [], QuietView(), tmp_path / "runs")
    events = read_events(summary.run_dir / "tensorboard")
    images = events.Tags()["images"]
    assert {"figures/trajectory", "figures/action_histogram", "figures/reward_breakdown"} <= set(images)
    for tag in ("figures/trajectory", "figures/action_histogram", "figures/reward_breakdown"):
        assert [e.step for e in events.Images(tag)] == [192, 384, 448], tag  # 64-frame batches; the end
    assert [e.step for e in events.Scalars("eval/return")] == [256, 448]

    short = write_config(tmp_path, "short.yaml", train={"total_frames": 256, "eval_every_frames": 256},
                         logging={"figure_every_frames": 50_000, "baseline_levels": False})
    summary = service.train(short, [], QuietView(), tmp_path / "runs")
    events = read_events(summary.run_dir / "tensorboard")
    assert [e.step for e in events.Images("figures/trajectory")] == [256]


def test_a_second_run_of_a_config_reads_the_baselines_levels_the_first_computed(tmp_path: Path, monkeypatch) -> None:
    """logging.baseline_levels: the baselines roll out once per config and runs folder; the next run (another
    learning rate: the same reservoir, record and episodes) logs the same baselines/ values from the cache,
    and a run whose validation episodes differ (another seed) computes its own."""
    from reservoir_rl.training import trainer as trainer_module

    calls = []
    compute = trainer_module.baseline_returns
    monkeypatch.setattr(trainer_module, "baseline_returns", lambda *args: calls.append(1) or compute(*args))
    runs = tmp_path / "runs"
    first = service.train(write_config(tmp_path, train={"total_frames": 256}), [], QuietView(), runs)
    second = service.train(write_config(tmp_path, "b.yaml", train={"total_frames": 256, "lr": 5e-4}), [], QuietView(), runs)
    assert len(calls) == 1
    levels = [{tag: series for tag, series in scalar_series(s.run_dir / "tensorboard").items()
               if tag.startswith("baselines/")} for s in (first, second)]
    assert set(levels[0]) >= {"baselines/sop", "baselines/dp"} and levels[0] == levels[1]
    assert len(list((runs / ".cache" / "baseline-levels").glob("*.json"))) == 1
    service.train(write_config(tmp_path, "c.yaml", train={"total_frames": 256, "seed": 8}), [], QuietView(), runs)
    assert len(calls) == 2


def test_best_checkpoint_follows_the_held_out_evaluation(tmp_path: Path) -> None:
    """best.pt holds the weights of the evaluation with the highest held-out return (not a training
    episode's), and only what using the policy needs."""
    config = write_config(tmp_path, train={"total_frames": 768, "eval_every_frames": 128})
    summary = service.train(config, [], QuietView(), tmp_path / "runs")
    evals = scalar_series(summary.run_dir / "tensorboard")["eval/return"]
    assert [step for step, _ in evals] == list(range(128, 769, 128))
    best_step, best_return = max(evals, key=lambda item: item[1])
    best = ckpt.load_checkpoint(RunDir(summary.run_dir).best_checkpoint)
    assert best["kind"] == "best"
    assert best["counters"]["frames"] == best_step
    assert best["best_eval_return"] == pytest.approx(best_return, rel=1e-6)
    assert summary.best_eval_return == pytest.approx(best_return, rel=1e-6)
    assert "replay_buffer" not in best and "optimizer" not in best
    with pytest.raises(ckpt.CheckpointError, match="incomplete checkpoint"):
        ckpt.require_keys(best, ckpt.RESUME_KEYS, "best.pt")  # resume never starts from it
    # every raw-return baseline's level on the same validation episodes, logged beside eval/return
    from reservoir_rl.catalog import RAW_RETURN_BASELINES
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.env.sources import load_inflow
    from reservoir_rl.evaluation.validation import validation_returns

    scalars = scalar_series(summary.run_dir / "tensorboard")
    saved = config_from_dict(best["config"])
    expected = validation_returns(saved, load_inflow(saved.inflow), ["rule", "dp"])
    assert "baselines/dp_end" not in scalars  # it optimises return + end-storage value, not the return
    for name in RAW_RETURN_BASELINES:
        levels = scalars[f"baselines/{name}"]
        assert [step for step, _ in levels] == [step for step, _ in evals]  # logged at every evaluation
        assert len({value for _, value in levels}) == 1  # the same episodes every time: one level
    for name, value in expected.items():
        assert scalars[f"baselines/{name}"][0][1] == pytest.approx(value, rel=1e-5)
    assert max(value for _, value in scalars["baselines/dp"]) >= best_return  # nobody beats perfect foresight


def _launch(config: Path, runs: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "reservoir_rl", "train", str(config), "--runs-dir", str(runs), "--name", name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_checkpoint(process: subprocess.Popen, run: RunDir, min_frames: int) -> None:
    """Until a periodic checkpoint of at least ``min_frames`` frames exists."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        names = [p.name for p in ckpt.frame_checkpoints(run.checkpoints)] if run.checkpoints.is_dir() else []
        if any(int(n.removeprefix(ckpt.FRAME_FILE_PREFIX).removesuffix(".pt")) >= min_frames for n in names):
            return
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no checkpoint appeared in time")


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory):
    """Two long runs started together: one stopped by SIGINT, one killed by SIGKILL."""
    root = tmp_path_factory.mktemp("crash")
    config = write_config(root, train={"total_frames": 10_000_000, "eval_every_frames": 1_000_000})
    runs = root / "runs"
    processes = {name: _launch(config, runs, name) for name in ("sigint", "sigkill")}
    outcome = {}
    try:
        for name, signum in (("sigint", signal.SIGINT), ("sigkill", signal.SIGKILL)):
            _wait_for_checkpoint(processes[name], RunDir(runs / name), min_frames=256)
            processes[name].send_signal(signum)
        for name, process in processes.items():
            out, err = process.communicate(timeout=START_TIMEOUT_S)
            outcome[name] = (process.returncode, out, err)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    return runs, outcome


def test_sigint_saves_a_checkpoint_and_exits_cleanly(interrupted_runs) -> None:
    runs, outcome = interrupted_runs
    code, out, err = outcome["sigint"]
    assert code == 0, err
    assert "Traceback" not in err
    assert "stopped by SIGINT, checkpoint saved" in out
    assert "reservoir-rl resume" in out
    run = RunDir(runs / "sigint")
    saved = ckpt.load_checkpoint(run.last_checkpoint)
    frames = saved["counters"]["frames"]
    assert 256 <= frames < 10_000_000
    assert (run.checkpoints / ckpt.frame_checkpoint_name(frames)).is_file()
    assert not list(run.checkpoints.glob(".*"))  # no temporaries left

    summary = service.resume("sigint", QuietView(), runs, total_frames=frames + 128)
    assert summary.frames == frames + 128
    history = yaml.safe_load((run.path / "metadata.yaml").read_text())
    assert history[-1]["event"] == f"resume from frame {frames}"
    steps = [step for step, _ in scalar_series(run.tensorboard)["train/epsilon"]]
    assert steps == list(range(128, frames + 129, 128))  # every log step once, across the stop


def test_after_sigkill_resume_continues_from_the_last_complete_checkpoint(interrupted_runs) -> None:
    runs, outcome = interrupted_runs
    code, _out, _err = outcome["sigkill"]
    assert code == -signal.SIGKILL
    run = RunDir(runs / "sigkill")
    path, payload = service.latest_checkpoint(run)
    frames = payload["counters"]["frames"]
    assert frames >= 256 and frames % 128 == 0  # a periodic checkpoint, complete
    summary = service.resume("sigkill", QuietView(), runs, total_frames=frames + 128)
    assert summary.frames == frames + 128
    assert not list(run.checkpoints.glob(".*.tmp"))
    # events the killed process wrote after that checkpoint were dropped: every step appears once
    for tag, series in scalar_series(run.tensorboard).items():
        steps = [step for step, _ in series]
        assert steps == sorted(set(steps)), tag


def test_dqn_options_reach_the_training_loop(tmp_path: Path) -> None:
    """Updates per frame, random warm-up, gradient clipping, n-step transitions and prioritized replay
    are what the trainer actually does."""
    import torch

    from reservoir_rl.config import config_from_dict
    from reservoir_rl.monitor.logger import ReservoirLogger
    from reservoir_rl.training.build import build_training
    from reservoir_rl.runs.folders import create_run
    from reservoir_rl.training.trainer import Trainer
    from tiny_training import tiny_config

    config = config_from_dict(tiny_config(
        agent={"hidden_sizes": [32], "n_step": 3},
        train={"updates_per_frame": 0.5, "grad_clip_norm": 1e-3, "prioritized_replay": True,
               "eval_every_frames": 1_000_000},
    ))
    parts = build_training(config, torch.device("cpu"))
    run = create_run(tmp_path / "runs")
    trainer = Trainer(parts, run, ReservoirLogger(run.tensorboard), QuietView())
    assert trainer.epsilon_at(127) == 1.0  # the random warm-up acts uniformly at random
    trainer.run(128)  # the random warm-up only: no updates yet; then ε follows its schedule
    assert trainer.updates == 0
    assert float(parts.agent.explore_policy.eps) == pytest.approx(1.0 - 0.99 * 128 / 1024)
    trainer.run(256)
    assert trainer.updates == (256 - 128) * 0.5
    grads = [p.grad for p in parts.agent.loss.parameters() if p.grad is not None]
    assert grads and float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))) <= 1e-3 * (1 + 1e-5)
    rb = parts.replay_buffer
    assert len(rb) == 256 - (3 - 1) * 8  # the last two days of each env wait for their window
    steps = rb[: len(rb)]["steps_to_next_obs"]
    assert int(steps.min()) >= 1 and int(steps.max()) == 3
    priorities = rb.sampler.priorities[: len(rb)]
    assert len(set(priorities.tolist())) > 10  # set from TD errors, no longer all the initial value
    trainer.logger.close()


def test_updates_wait_for_the_first_n_step_transitions(tmp_path: Path) -> None:
    """With no warm-up and a window longer than a batch, the first batch yields no transition yet: the
    owed updates are made as soon as there is something to sample."""
    config = write_config(tmp_path, agent={"hidden_sizes": [32], "n_step": 12},
                          train={"total_frames": 192, "init_random_frames": 0, "eval_every_frames": 1_000_000})
    summary = service.train(config, [], QuietView(), tmp_path / "runs")
    assert summary.updates == 192 * 0.25
    saved = ckpt.load_checkpoint(summary.run_dir / "checkpoints" / "last.pt")
    assert saved["replay_buffer"]["_storage"]["_len"] == 192 - 11 * 8
