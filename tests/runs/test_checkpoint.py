"""Checkpoint files: atomic writes, safe loading (nothing is unpickled beyond plain data), rotation."""

from __future__ import annotations

import os
import pickle
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from reservoir_rl.errors import CheckpointError
from reservoir_rl.runs import checkpoint as ckpt


def payload(**extra) -> dict:
    """The smallest dict `load_checkpoint` accepts, plus ``extra``."""
    base = {
        "format": ckpt.FORMAT_NAME,
        "format_version": ckpt.FORMAT_VERSION,
        "config": {"train": {"seed": 1}},
        "counters": {"frames": 64, "updates": 3, "episodes": 0},
        "q_network": {"head.weight": torch.arange(6.0).reshape(2, 3)},
        "run_name": "run-1",
        "created": "2026-01-01T00:00:00+00:00",
        "package_versions": {"torch": str(torch.__version__)},
    }
    return {**base, **extra}


def test_atomic_save_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "frame.pt"
    ckpt.atomic_save(payload(), path)
    loaded = ckpt.load_checkpoint(path)
    assert torch.equal(loaded["q_network"]["head.weight"], torch.arange(6.0).reshape(2, 3))
    assert loaded["counters"] == {"frames": 64, "updates": 3, "episodes": 0}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # like any file the user creates
    assert [p.name for p in path.parent.iterdir()] == ["frame.pt"]


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")  # torch.save fails half-way through the archive


def test_a_failed_save_leaves_the_old_file_intact_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save(payload(), path)
    before = path.read_bytes()
    monkeypatch.setattr(ckpt, "check_plain", lambda data: None)  # let the bad payload reach torch.save
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.atomic_save(payload(big=torch.zeros(100_000), broken=Unpicklable()), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_objects_that_would_not_load_back_are_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    with pytest.raises(TypeError, match=r"payload\['package_versions'\]\['torch'\]: TorchVersion is not plain data"):
        ckpt.atomic_save(payload(package_versions={"torch": torch.__version__}), path)
    assert not list(tmp_path.iterdir())


def test_an_interrupt_during_save_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save(payload(), path)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save(payload(counters={"frames": 128, "updates": 1, "episodes": 0}), path)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["counters"]["frames"] == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_stale_temporaries_of_a_killed_process_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".frame-0000000064.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / ".last.pt.link").write_bytes(b"")
    keep = tmp_path / "frame-0000000064.pt"
    keep.write_bytes(b"x")
    removed = ckpt.remove_stale_temporaries(tmp_path)
    assert len(removed) == 2
    assert [p.name for p in tmp_path.iterdir()] == [keep.name]


def test_link_or_copy_replaces_the_target(tmp_path: Path) -> None:
    first, second, last = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "last.pt"
    ckpt.atomic_save(payload(), first)
    ckpt.atomic_save(payload(counters={"frames": 128, "updates": 1, "episodes": 0}), second)
    ckpt.link_or_copy(first, last)
    ckpt.link_or_copy(second, last)
    assert ckpt.load_checkpoint(last)["counters"]["frames"] == 128
    assert ckpt.load_checkpoint(first)["counters"]["frames"] == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "last.pt"]


def test_rotate_keeps_the_newest_periodic_checkpoints(tmp_path: Path) -> None:
    for frames in (0, 64, 128, 1024, 2048):
        (tmp_path / ckpt.frame_checkpoint_name(frames)).write_bytes(b"x")
    (tmp_path / "best.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    ckpt.rotate(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["best.pt", "last.pt", ckpt.frame_checkpoint_name(1024), ckpt.frame_checkpoint_name(2048)]
    )


class Exploit:
    """A pickled object whose unpickling would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if legacy:
        path.write_bytes(pickle.dumps(payload(q_network=Exploit(marker))))
    else:
        torch.save(payload(q_network=Exploit(marker)), path)
    with pytest.raises(CheckpointError) as error:
        ckpt.load_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "refused" in message or "not a checkpoint" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "not a checkpoint"),
        (b"step,storage\n1,2\n", "not a checkpoint"),
        ("truncate", "truncated or corrupted"),
        ("other-dict", "not a reservoir-rl checkpoint"),
        ("tensor", "not a reservoir-rl checkpoint"),
        ("future-version", "format version 99 is not supported"),
        ("no-weights", "incomplete checkpoint (no 'q_network' entry)"),
    ],
)
def test_files_that_are_not_usable_checkpoints_get_one_line_errors(tmp_path: Path, content, expected) -> None:
    path = tmp_path / "file.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncate":
        ckpt.atomic_save(payload(big=torch.zeros(10_000)), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "other-dict":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content == "future-version":
        torch.save(payload(format_version=99), path)
    elif content == "no-weights":
        data = payload()
        del data["q_network"]
        torch.save(data, path)
    with pytest.raises(CheckpointError) as error:
        ckpt.load_checkpoint(path)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_missing_paths_and_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        ckpt.load_checkpoint(tmp_path)


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    """Every global stream (torch, numpy, python) continues exactly after a save and load."""
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    path = tmp_path / "rng.pt"
    ckpt.atomic_save(payload(rng=ckpt.rng_state()), path)
    expected = (torch.rand(4), np.random.standard_normal(3), [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"])
    again = (torch.rand(4), np.random.standard_normal(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_a_full_disk_is_a_one_line_error_and_the_old_checkpoint_stays(tmp_path: Path, monkeypatch) -> None:
    import errno

    path = tmp_path / "last.pt"
    ckpt.atomic_save(payload(), path)
    before = path.read_bytes()

    def no_space(_payload, handle):
        handle.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", no_space)
    with pytest.raises(CheckpointError, match="cannot write checkpoint \\(No space left on device\\); the previous one is intact"):
        ckpt.atomic_save(payload(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.parametrize(
    "message",
    ["[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file data/0: file write failed",
     "[enforce fail at inline_container.cc:778] . unexpected pos 4608 vs 4544"],
)
def test_torch_reporting_a_failed_write_is_a_one_line_error(tmp_path: Path, monkeypatch, message) -> None:
    path = tmp_path / "frame.pt"

    def torch_write_fails(_payload, handle):
        handle.write(b"PK\x03\x04partial")
        raise RuntimeError(message)

    monkeypatch.setattr(ckpt.torch, "save", torch_write_fails)
    with pytest.raises(CheckpointError) as error:
        ckpt.atomic_save(payload(), path)
    assert str(error.value) == f"{path}: cannot write checkpoint ({message}); the previous one is intact"
    assert not list(tmp_path.iterdir())


def test_a_folder_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    path = tmp_path / "file" / "last.pt"
    with pytest.raises(CheckpointError, match=r"file/last.pt: cannot write checkpoint \(") as error:
        ckpt.atomic_save(payload(), path)
    assert "\n" not in str(error.value)


def test_stored_config_makes_the_observations_reference_inflow_explicit() -> None:
    """A checkpoint that stored its reference inflow keeps its config as written (the config gives that
    reference again); one written before the reference existed is read as trained: on the whole record."""
    forecast = lambda config: config["env"]["forecast"]  # noqa: E731
    old = payload(config={"train": {"seed": 1}, "env": {"forecast": {"lead_days": 5}}})
    assert forecast(ckpt.stored_config(old)) == {"lead_days": 5, "reference_inflow_cms": "whole_record"}
    assert old["config"]["env"]["forecast"] == {"lead_days": 5}  # the payload itself is left as it was
    assert forecast(ckpt.stored_config(payload())) == {"reference_inflow_cms": "whole_record"}  # no env section
    new = payload(config={"env": {"forecast": {"reference_inflow_cms": None}}}, **{ckpt.REFERENCE_INFLOW_KEY: 123.5})
    assert ckpt.stored_config(new) is new["config"]  # null: the training years' mean, as trained
    for explicit in (80.0, "whole_record"):
        chosen = payload(config={"env": {"forecast": {"reference_inflow_cms": explicit}}})
        assert forecast(ckpt.stored_config(chosen)) == {"reference_inflow_cms": explicit}
