"""Checkpoint files: atomic writes, safe loading (``weights_only``), rotation of the last K.

A checkpoint is a dict of plain data and tensors only (no pickled objects), so loading it executes no
code: ``torch.load(weights_only=True)`` refuses anything else.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from reservoir_rl.errors import CheckpointError

FORMAT_NAME = "reservoir-rl-checkpoint"
FORMAT_VERSION = 1
FRAME_FILE_PREFIX = "frame-"


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    The data go to a temporary file in the same folder, are fsync'ed, then renamed over ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold the same bytes as ``source`` atomically (hard link when possible)."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        import shutil

        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint; any problem is a one-line `CheckpointError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unsupported content"
        if "Weights only load failed" in str(error) or "Unsupported" in str(error):
            raise CheckpointError(
                f"{path}: refused to load: the file holds Python objects, not plain data (possible code)"
            ) from None
        raise CheckpointError(f"{path}: not a checkpoint ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile):
            raise CheckpointError(f"{path}: cannot read file ({text})") from None
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({text[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a reservoir-rl checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported (this version reads {FORMAT_VERSION})"
        )
    return payload


def frame_checkpoint_name(frames: int) -> str:
    return f"{FRAME_FILE_PREFIX}{frames:010d}.pt"


def frame_checkpoints(folder: Path) -> list[Path]:
    """Periodic checkpoints in ``folder``, oldest first."""
    return sorted(Path(folder).glob(f"{FRAME_FILE_PREFIX}*.pt"))


def rotate(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest periodic checkpoints (``last.pt`` and ``best.pt`` are kept)."""
    for old in frame_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
