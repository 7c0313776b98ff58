"""Faults while training: file-system errors, a stop in the first milliseconds, damaged checkpoints at resume,
a diverging loss. Each ends in one `UserError` line naming the file and the cause, and leaves either no run
or a run that `resume` continues."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml

from reservoir_rl.commands import train as service
from reservoir_rl.errors import UserError
from reservoir_rl.monitor import logger as logger_module
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs import folders
from reservoir_rl.runs.folders import RunDir
from reservoir_rl.runs.locate import non_finite_tensors
from tiny_training import write_config


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ------------------------------------------------------------------------------ file-system errors


def test_run_folder_errors_name_the_path_and_the_os_error(tmp_path, monkeypatch):
    config = write_config(tmp_path, train={"total_frames": 128})
    with pytest.raises(UserError, match=r"cannot create the run folder \(File name too long\)") as info:
        service.train(config, [], QuietView(), tmp_path / "runs", name="a" * 300)
    assert "\n" not in str(info.value) and not list((tmp_path / "runs").iterdir())

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    with monkeypatch.context() as patch:
        patch.setattr(Path, "mkdir", read_only)
        with pytest.raises(UserError, match=r"read-only: cannot create the run folder \(Permission denied\)"):
            service.train(config, [], QuietView(), tmp_path / "read-only")

    run = folders.create_run(tmp_path / "runs", "locked")
    with monkeypatch.context() as patch:
        patch.setattr(folders, "open", read_only, raising=False)
        with pytest.raises(UserError, match=r"locked/\.lock: cannot open the run's lock file \(Permission denied\)"):
            with folders.run_lock(run):
                pass


def test_a_full_disk_while_saving_a_checkpoint_names_the_os_error_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """torch reports a refused write as "unexpected pos …"; the line says what the OS said."""
    path = tmp_path / "frame.pt"
    payload = {"format": ckpt.FORMAT_NAME, "format_version": ckpt.FORMAT_VERSION, "weights": torch.ones(1000)}
    ckpt.atomic_save(payload, path)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class FullAfter:
        """A file that takes 1,000 bytes, then fails as a full disk does."""

        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            if self.written + len(data) > 1000:
                _full_disk()
            self.written += len(data)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: FullAfter(real_fdopen(*args, **kwargs)))
    payload["weights"] = torch.zeros(1000)
    with pytest.raises(UserError, match=r"frame\.pt: cannot write checkpoint \(No space left on device\); "
                                        r"the previous one is intact"):
        ckpt.atomic_save(payload, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["frame.pt"]


def test_a_tensorboard_writer_that_cannot_start_is_one_line_and_leaves_no_run(tmp_path, monkeypatch):
    monkeypatch.setattr(logger_module, "SummaryWriter", _full_disk)
    config = write_config(tmp_path, train={"total_frames": 128})
    with pytest.raises(UserError, match=r"tensorboard: cannot start the TensorBoard writer \(No space left on device\)"):
        service.train(config, [], QuietView(), tmp_path / "runs", name="full")
    assert not (tmp_path / "runs" / "full").exists()  # nothing a resume could continue is left


def test_metadata_is_replaced_atomically_and_a_damaged_history_is_kept(tmp_path, monkeypatch):
    config = write_config(tmp_path, train={"total_frames": 128})
    service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    run = RunDir(tmp_path / "runs" / "run")
    before = run.metadata_path.read_text()
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _full_disk)
        with pytest.raises(UserError, match=r"metadata\.yaml: cannot write it \(No space left on device\)"):
            service._write_metadata(run, service.load_config(config), ["reservoir-rl", "resume"], "resume")
    assert run.metadata_path.read_text() == before
    run.metadata_path.write_text(before[: len(before) // 2] + "\n  - [unclosed")  # cut by an older version
    service.resume("run", QuietView(), tmp_path / "runs", total_frames=256)
    assert run.metadata_path.with_name("metadata.yaml.damaged").read_text().endswith("[unclosed")
    history = yaml.safe_load(run.metadata_path.read_text())
    assert "kept as metadata.yaml.damaged" in history[0]["event"] and history[-1]["event"] == "resume from frame 128"


# ------------------------------------------------------------------------------ a stop at any moment


def test_a_run_stopped_before_its_first_checkpoint_is_restarted_from_its_config(tmp_path):
    """A SIGKILL between writing config.yaml and the frame-0 checkpoint: resume trains it from frame 0."""
    config = write_config(tmp_path, train={"total_frames": 128})
    service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    run = RunDir(tmp_path / "runs" / "run")
    for path in run.checkpoints.iterdir():  # what the killed process had not written yet
        path.unlink()
    summary = service.resume("run", QuietView(), tmp_path / "runs")
    assert summary.frames == 128 and "trained again from frame 0" in summary.notes[0]
    assert ckpt.load_checkpoint(run.last_checkpoint)["counters"]["frames"] == 128
    assert yaml.safe_load(run.metadata_path.read_text())[-1]["event"] == "restart from config.yaml (no checkpoint)"


def test_a_folder_left_before_its_config_is_taken_over_by_train_name(tmp_path):
    """A SIGKILL between creating the folder and writing config.yaml: `train --name` uses the folder."""
    config = write_config(tmp_path, train={"total_frames": 128})
    left = tmp_path / "runs" / "left"
    (left / "checkpoints").mkdir(parents=True)
    (left / ".lock").touch()
    summary = service.train(config, [], QuietView(), tmp_path / "runs", name="left")
    assert summary.frames == 128 and RunDir(left).last_checkpoint.exists()
    mine = tmp_path / "runs" / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")  # any other folder is never taken over
    with pytest.raises(UserError, match="run already exists"):
        service.train(config, [], QuietView(), tmp_path / "runs", name="mine")
    assert (mine / "notes.txt").read_text() == "a user's file"


def test_a_signal_while_the_run_is_set_up_leaves_a_resumable_run(tmp_path, monkeypatch):
    config = write_config(tmp_path, train={"total_frames": 256})
    real = service._write_metadata

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # between creating the folder and the first checkpoint
        real(*args, **kwargs)

    monkeypatch.setattr(service, "_write_metadata", interrupted)
    summary = service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    assert (summary.stopped_by, summary.frames) == ("SIGTERM", 0)
    monkeypatch.setattr(service, "_write_metadata", real)
    assert service.resume("run", QuietView(), tmp_path / "runs").frames == 256


def test_a_signal_or_failure_before_the_first_checkpoint_leaves_no_run(tmp_path, monkeypatch):
    config = write_config(tmp_path, train={"total_frames": 128})
    real = service.build_training

    def interrupted(*args, **kwargs):
        parts = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return parts

    with monkeypatch.context() as patch:
        patch.setattr(service, "build_training", interrupted)
        with pytest.raises(service.TrainingInterrupted, match="SIGINT before the run folder was created: no run"):
            service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    assert not (tmp_path / "runs").exists()
    with monkeypatch.context() as patch:
        patch.setattr(ckpt, "atomic_save", lambda *a: (_ for _ in ()).throw(ckpt.CheckpointError("x.pt: disk full")))
        with pytest.raises(UserError, match="disk full"):
            service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    assert not (tmp_path / "runs" / "run").exists()


# ------------------------------------------------------------------------------ resume says what it skips


class _Code:
    """An object torch.load(weights_only=True) refuses: a checkpoint carrying code."""

    def __reduce__(self):
        return (print, ("this would run",))


def test_resume_names_each_skipped_checkpoint_and_keeps_it(tmp_path):
    config = write_config(tmp_path, train={"total_frames": 512})
    service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    run = RunDir(tmp_path / "runs" / "run")
    newest = run.checkpoints / ckpt.frame_checkpoint_name(512)
    with open(run.last_checkpoint, "r+b") as handle:  # last.pt shares its bytes with frame-512.pt
        handle.truncate(handle.seek(0, 2) // 2)
    carrying_code = run.checkpoints / ckpt.frame_checkpoint_name(384)
    torch.save({"format": ckpt.FORMAT_NAME, "payload": _Code()}, carrying_code)
    messages = []

    class Recording(QuietView):
        def message(self, text):
            messages.append(text)

    summary = service.resume("run", Recording(), tmp_path / "runs", total_frames=640)
    assert summary.frames == 640
    assert summary.notes == messages
    assert messages[0].startswith(f"skipped {carrying_code}: refused to load") and "kept as" in messages[0]
    assert messages[1].startswith(f"skipped {newest}: truncated or corrupted")
    assert messages[2].startswith(f"skipped {run.last_checkpoint}: truncated or corrupted")
    assert messages[3] == f"resuming from {run.checkpoints / ckpt.frame_checkpoint_name(256)}"
    for damaged in (carrying_code, newest, run.last_checkpoint):  # kept for a look, not overwritten
        assert damaged.with_name(damaged.name + ".damaged").is_file()
    assert ckpt.load_checkpoint(run.last_checkpoint)["counters"]["frames"] == 640


def test_a_stored_config_that_fails_validation_names_its_file(tmp_path):
    config = write_config(tmp_path, train={"total_frames": 128})
    service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    run = RunDir(tmp_path / "runs" / "run")
    for path in [*ckpt.frame_checkpoints(run.checkpoints), run.last_checkpoint]:
        payload = ckpt.load_checkpoint(path)
        payload["config"]["train"]["lr"] = -1.0
        ckpt.atomic_save(payload, path)
    with pytest.raises(UserError, match=r"frame-0000000128\.pt \(config stored in the checkpoint\): train\.lr = -1"):
        service.resume("run", QuietView(), tmp_path / "runs", total_frames=256)


# ------------------------------------------------------------------------------ non-finite training


def test_a_diverging_training_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path):
    """A learning rate of 1e30 (finite, so the config accepts it) makes the weights infinite within a batch."""
    config = write_config(tmp_path, train={"total_frames": 512, "lr": 1e30})
    with pytest.raises(UserError, match=r"training diverged at frame 256: non-finite .*; stopped without saving "
                                        r"it \(the last finite checkpoint, .*last\.pt, is kept\)") as info:
        service.train(config, [], QuietView(), tmp_path / "runs", name="run")
    assert "\n" not in str(info.value)
    run = RunDir(tmp_path / "runs" / "run")
    for path in [*run.checkpoints.glob("*.pt")]:
        payload = ckpt.load_checkpoint(path)
        assert payload["counters"]["frames"] <= 128 and not non_finite_tensors(payload["q_network"]), path
