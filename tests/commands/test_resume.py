"""`resume` continues a run exactly: a run stopped at N and resumed to 2N ends bitwise identical (weights,
target net, optimizer, replay buffer, counters, RNG, TensorBoard curves) to a run trained straight to 2N."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch

from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands import train as service
from reservoir_rl.runs.folders import RunDir
from tiny_training import scalar_series, write_config

# Entries that legitimately differ between two runs: wall-clock time, the run's own name, and the
# held-out evaluation a finished run adds at its last frame (it never feeds back into training).
NOT_COMPARED = {"created", "run_name", "last_eval", "best_eval_return"}
ALL_OPTIONS = {
    "agent": {"dueling": True, "double_dqn": False, "loss": "l2", "n_step": 3},
    "train": {"prioritized_replay": True, "target_update": "soft", "tau": 0.05, "lr_end": 2e-4, "lr_decay_frames": 320,
              "sdp_potential_weight": 0.3},  # reward shaping with the SDP's value
    "baselines": {"sdp": {"storage_levels": 40}},
}


def assert_same(a, b, path: str = "") -> None:
    """Bitwise equality of nested checkpoint data (tensors: same dtype, shape and bits)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))), path
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def compare_final_states(straight: Path, resumed: Path) -> None:
    a = ckpt.load_checkpoint(straight / "checkpoints" / "last.pt")
    b = ckpt.load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["counters"] == b["counters"]
    assert a["counters"]["updates"] > 0
    for key in sorted(set(a) | set(b)):
        if key not in NOT_COMPARED:
            assert_same(a[key], b[key], key)


def compare_curves(straight: Path, resumed: Path) -> None:
    """Same tags, same steps (none duplicated, none missing), same values — except frames/s."""
    a, b = scalar_series(straight / "tensorboard"), scalar_series(resumed / "tensorboard")
    assert set(a) == set(b)
    for tag in a:
        steps_b = [step for step, _ in b[tag]]
        assert len(steps_b) == len(set(steps_b)), f"{tag}: duplicated steps {steps_b}"
        if tag.startswith(("eval/", "baselines/")):
            # a run that finishes at N is evaluated at N (the baselines' levels are logged with it): one extra
            # point, no gap
            assert set(a[tag]) <= set(b[tag]), tag
            continue
        if tag == "train/frames_per_second":
            assert [s for s, _ in a[tag]] == steps_b
            continue
        assert a[tag] == b[tag], tag


@pytest.mark.parametrize("options", [{}, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_train_to_n_then_resume_to_2n_equals_training_straight_to_2n(tmp_path: Path, options) -> None:
    """The public path: `train` with total_frames=N, then `resume --total-frames 2N` (N = 192 frames: the
    checkpoint falls between log, checkpoint and evaluation periods, with an n-step window in flight)."""
    config = write_config(tmp_path, **{**options, "train": {**options.get("train", {}), "total_frames": 384}})
    runs = tmp_path / "runs"
    straight = service.train(config, [], QuietView(), runs, name="straight")
    half = service.train(config, ["train.total_frames=192"], QuietView(), runs, name="split")
    assert (half.frames, half.stopped_by) == (192, "done")
    resumed = service.resume("split", QuietView(), runs, total_frames=384)
    assert (straight.frames, resumed.frames) == (384, 384)
    assert (straight.updates, straight.episodes) == (resumed.updates, resumed.episodes)
    compare_final_states(straight.run_dir, resumed.run_dir)
    compare_curves(straight.run_dir, resumed.run_dir)


def test_a_checkpoint_written_before_the_reference_inflow_resumes_as_it_was_trained(tmp_path: Path) -> None:
    """Checkpoints written before the observation's reference inflow was stored trained on the whole record's
    mean (held-out years included): resumed, they continue with it, exactly as an uninterrupted run would."""
    config = write_config(tmp_path, env={"horizon_days": 60, "forecast": {"reference_inflow_cms": "whole_record"}},
                          train={"total_frames": 384})
    runs = tmp_path / "runs"
    straight = service.train(config, [], QuietView(), runs, name="straight")
    half = service.train(config, ["train.total_frames=192"], QuietView(), runs, name="split")
    for path in half.run_dir.joinpath("checkpoints").glob("*.pt"):  # as the version before wrote them
        payload = ckpt.load_checkpoint(path)
        del payload[ckpt.REFERENCE_INFLOW_KEY]
        del payload["config"]["env"]["forecast"]["reference_inflow_cms"]
        path.unlink()  # (last.pt is a hard link to the newest frame file)
        ckpt.atomic_save(payload, path)
    resumed = service.resume("split", QuietView(), runs, total_frames=384)
    assert resumed.frames == 384
    compare_final_states(straight.run_dir, resumed.run_dir)


class SignalAt(QuietView):
    """A view that sends this process a signal once training passes ``frames`` (like Ctrl-C would)."""

    def __init__(self, frames: int, signum: int) -> None:
        self.frames, self.signum, self.sent = frames, signum, False

    def update(self, frames: int, stats) -> None:
        if frames >= self.frames and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def test_a_signal_mid_run_stops_with_a_checkpoint_and_resume_is_exact(tmp_path: Path) -> None:
    """SIGTERM at frame 320 (no period boundary): the run saves frame 320 and stops; resuming ends
    identical to the uninterrupted run; the previous signal handlers are restored."""
    config = write_config(tmp_path, train={"total_frames": 384})
    runs = tmp_path / "runs"
    straight = service.train(config, [], QuietView(), runs, name="straight")
    previous = signal.getsignal(signal.SIGTERM)
    stopped = service.train(config, [], SignalAt(320, signal.SIGTERM), runs, name="split")
    assert signal.getsignal(signal.SIGTERM) is previous
    assert (stopped.stopped_by, stopped.frames) == ("SIGTERM", 320)
    run = RunDir(stopped.run_dir)
    assert ckpt.load_checkpoint(run.last_checkpoint)["counters"]["frames"] == 320
    assert (run.checkpoints / ckpt.frame_checkpoint_name(320)).exists()
    resumed = service.resume(str(stopped.run_dir), QuietView(), runs)  # by path; total from the config
    assert resumed.frames == 384
    compare_final_states(straight.run_dir, resumed.run_dir)
    compare_curves(straight.run_dir, resumed.run_dir)


def test_resume_extends_schedules_in_absolute_frames(tmp_path: Path) -> None:
    """Extending 512 → 1024 frames continues ε (decay over 1024 frames) where it was, not stretched."""
    config = write_config(tmp_path, train={"total_frames": 512})
    runs = tmp_path / "runs"
    service.train(config, [], QuietView(), runs, name="run")
    first = ckpt.load_checkpoint(runs / "run" / "checkpoints" / "last.pt")
    eps_end, eps_start = 0.01, 1.0
    assert first["epsilon"] == pytest.approx(eps_start + (eps_end - eps_start) * 512 / 1024)
    service.resume("run", QuietView(), runs, total_frames=1024)
    last = ckpt.load_checkpoint(runs / "run" / "checkpoints" / "last.pt")
    assert last["counters"]["frames"] == 1024
    assert last["epsilon"] == pytest.approx(eps_end)
    series = dict(scalar_series(runs / "run" / "tensorboard")["train/epsilon"])
    assert series[768] == pytest.approx(eps_start + (eps_end - eps_start) * 768 / 1024)
    assert sorted(series) == list(range(128, 1025, 128))  # every log step once, across the resume


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    """A truncated last.pt (and the periodic file it links to) is skipped: resume starts from the
    previous periodic checkpoint and the curves after it are rewritten once."""
    config = write_config(tmp_path, train={"total_frames": 512})
    runs = tmp_path / "runs"
    service.train(config, [], QuietView(), runs, name="run")
    run = RunDir(runs / "run")
    kept = [p.name for p in ckpt.frame_checkpoints(run.checkpoints)]
    assert kept == [ckpt.frame_checkpoint_name(f) for f in (256, 384, 512)]  # the newest 3 are kept
    last = run.last_checkpoint
    size = last.stat().st_size
    with open(last, "r+b") as handle:  # last.pt shares its bytes with frame-512.pt
        handle.truncate(size // 2)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        ckpt.load_checkpoint(run.checkpoints / kept[-1])
    path, payload = service.latest_checkpoint(run)
    assert (path.name, payload["counters"]["frames"]) == (kept[-2], 384)
    summary = service.resume("run", QuietView(), runs)
    assert summary.frames == 512
    assert ckpt.load_checkpoint(run.last_checkpoint)["counters"]["frames"] == 512
    metadata = (run.path / "metadata.yaml").read_text()
    assert "resume from frame 384" in metadata
    loss_steps = [step for step, _ in scalar_series(run.tensorboard)["train/loss"]]
    assert loss_steps == sorted(set(loss_steps)) and loss_steps[-1] == 512


def test_resume_refuses_what_it_cannot_continue(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"total_frames": 128})
    runs = tmp_path / "runs"
    service.train(config, [], QuietView(), runs, name="run")
    with pytest.raises(UserError, match="already trained 128 frames.*--total-frames above 128"):
        service.resume("run", QuietView(), runs)
    with pytest.raises(UserError, match=r"--total-frames 0 \(train.total_frames\): Input should be greater than or equal to 1"):
        service.resume("run", QuietView(), runs, total_frames=0)
    with pytest.raises(UserError, match="unknown run 'nope'"):
        service.resume("nope", QuietView(), runs)
    run = RunDir(runs / "run")
    for path in ckpt.frame_checkpoints(run.checkpoints) + [run.last_checkpoint]:
        payload = ckpt.load_checkpoint(path)
        del payload["episode_count"], payload["window"]  # as written by another version of the trainer
        ckpt.atomic_save(payload, path)
    with pytest.raises(CheckpointError, match="at frame 128 lacks episode_count, window: .*another version"):
        service.resume("run", QuietView(), runs, total_frames=256)
    best = run.best_checkpoint.read_bytes()
    for path in run.checkpoints.glob("*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        service.resume("run", QuietView(), runs, total_frames=256)
    for path in run.checkpoints.glob("*.pt"):
        path.unlink()
    run.best_checkpoint.write_bytes(best)
    with pytest.raises(UserError, match="no checkpoint to resume from: checkpoints/best.pt holds the best policy, "
                                        "not the training state; evaluate it") as info:
        service.resume("run", QuietView(), runs, total_frames=256)
    assert "start it again with" not in str(info.value)
    run.best_checkpoint.unlink()
    run.config_path.unlink()
    with pytest.raises(UserError, match="no checkpoint and no config.yaml; train it again with `reservoir-rl train CONFIG --name run`"):
        service.resume("run", QuietView(), runs, total_frames=256)


def test_a_second_signal_abandons_the_run_and_resume_uses_the_last_checkpoint(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"total_frames": 384})

    class SignalTwice(QuietView):
        def update(self, frames: int, stats) -> None:
            if frames == 320:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(service.TrainingInterrupted, match="SIGINT while saving: stopped at once"):
        service.train(config, [], SignalTwice(), tmp_path / "runs", name="run")
    run = RunDir(tmp_path / "runs" / "run")
    assert not list(run.checkpoints.glob(".*"))
    path, payload = service.latest_checkpoint(run)
    assert payload["counters"]["frames"] == 256  # the last periodic checkpoint before the signals
    assert service.resume("run", QuietView(), tmp_path / "runs").frames == 384


def test_the_first_batch_after_a_restore_is_the_uninterrupted_one(tmp_path: Path) -> None:
    """The collector's carried tensordict (``Collector._carrier`` in torchrl 0.14: each env's current
    observation and done flags) is saved and restored, so collection continues mid-episode."""
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.monitor.logger import ReservoirLogger
    from reservoir_rl.training.build import build_training
    from reservoir_rl.runs.folders import create_run
    from reservoir_rl.training.trainer import Trainer
    from tiny_training import tiny_config

    config = config_from_dict(tiny_config(train={"eval_every_frames": 1_000_000}))

    def trainer(name: str) -> Trainer:
        run = create_run(tmp_path / "runs", name)
        return Trainer(build_training(config, torch.device("cpu")), run, ReservoirLogger(run.tensorboard), QuietView())

    straight = trainer("straight")
    straight.run(192)
    payload = straight.state_payload()
    assert int(payload["env_state"]["steps"].max()) > 0  # episodes are in flight
    expected = next(iter(straight.parts.collector)).clone()
    restored = trainer("restored")
    restored.load_state(payload)
    restored.parts.agent.set_epsilon(restored.epsilon_at(restored.frames))
    got = next(iter(restored.parts.collector)).clone()
    for key in expected.keys(True, True):
        assert torch.equal(expected[key], got[key]), key
    straight.logger.close()
    restored.logger.close()
