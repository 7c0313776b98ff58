"""Checkpoint files: atomic writes, safe loading (``weights_only``), rotation of the last K.

A checkpoint is a dict of plain data and tensors only (no pickled objects), so loading it executes no
code: ``torch.load(weights_only=True)`` refuses anything else.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch

from reservoir_rl.errors import CheckpointError
from reservoir_rl.files import TEMP_SUFFIX, atomic_open, os_error_text

FORMAT_NAME = "reservoir-rl-checkpoint"
FORMAT_VERSION = 1
FRAME_FILE_PREFIX = "frame-"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
# what `resume` needs from a periodic checkpoint (best.pt holds only the first group)
POLICY_KEYS = ("config", "counters", "q_network", "run_name", "created", "package_versions")
RESUME_KEYS = POLICY_KEYS + (
    "loss_module", "optimizer", "replay_buffer", "env_state", "carrier", "episode_accumulator", "rng",
)
# the reference inflow (m³/s) the run's observation divides its forecast features by (`DiscreteReservoirEnv`'s
# ``reference_inflow_cms``); checkpoints written before it existed lack it (see `stored_config`)
REFERENCE_INFLOW_KEY = "observation_reference_inflow_cms"


def stored_config(payload: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's config as a plain dict, read so that every env built from it (evaluation, resume,
    the public `Policy`) scales the observation's forecast as training did. A checkpoint that stored its
    reference inflow (`REFERENCE_INFLOW_KEY`) was trained with the one its config gives (``null``: the
    training years' mean, which the same config and record give again): its config is returned as it is. A
    checkpoint written before the reference existed holds neither the number nor the key and was trained on
    the whole record's mean, held-out years included: its config gets ``env.forecast.reference_inflow_cms:
    whole_record`` (a copy; the payload is left as it was)."""
    raw = payload["config"]
    if REFERENCE_INFLOW_KEY in payload or not isinstance(raw, dict):
        return raw  # (a config that is not a dict is refused, with its file named, by the caller's validation)
    env = dict(raw.get("env") or {})
    forecast = dict(env.get("forecast") or {})
    if forecast.get("reference_inflow_cms") is None:
        forecast["reference_inflow_cms"] = "whole_record"
    env["forecast"] = forecast
    return {**raw, "env": env}


# what torch.save raises when the file system refuses its bytes (ENOSPC, a lost mount): its archive
# writer reports a failed write, or the position it expected after one
_TORCH_WRITE_ERRORS = ("PytorchStreamWriter failed writing file", "unexpected pos")


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves either the old file or the new one, never half
    (`reservoir_rl.files.atomic_open`: a temporary file beside it, fsync'ed, renamed over ``path``).

    ``payload`` must be plain data (see `check_plain`), so that it loads with ``weights_only=True``.
    A full disk or a lost mount is the user's to fix: a one-line `CheckpointError`.
    """
    check_plain(payload)
    path = Path(path)
    writer = None
    try:
        with atomic_open(path, binary=True) as handle:
            writer = _RememberWriteErrors(handle)
            torch.save(payload, writer)
    except (OSError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not any(text in str(error) for text in _TORCH_WRITE_ERRORS):
            raise
        # torch reports a refused write as "unexpected pos …": the OS error behind it is the one to show
        cause = writer.error if writer is not None and writer.error is not None else error
        raise CheckpointError(
            f"{path}: cannot write checkpoint ({os_error_text(cause)}); the previous one is intact"
        ) from None


class _RememberWriteErrors:
    """A binary file for ``torch.save`` that keeps the `OSError` of a failed write (ENOSPC, EIO), which torch's
    archive writer replaces by its own "unexpected pos" message."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.error: Optional[OSError] = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self._handle.flush()


_PLAIN_SCALARS = (str, int, float, bool, type(None), torch.Size, torch.dtype, torch.device)


def check_plain(data: Any, where: str = "payload") -> None:
    """Raise TypeError unless ``data`` is made of dicts, lists, tuples, tensors, numbers, strings and None
    (what ``torch.load(weights_only=True)`` reads back; subclasses such as TorchVersion are refused)."""
    if isinstance(data, torch.Tensor) or type(data) in _PLAIN_SCALARS:
        return
    if type(data) in (dict, OrderedDict):
        for key, value in data.items():
            check_plain(key, f"{where} key")
            check_plain(value, f"{where}[{key!r}]")
        return
    if type(data) in (list, tuple):
        for i, value in enumerate(data):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(data).__name__} is not plain data and cannot go into a checkpoint")


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold the same bytes as ``source`` atomically (hard link when possible)."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links on this file system: copy, durably
        import shutil

        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    os.replace(tmp, target)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files a killed process left behind in ``folder``: those of `atomic_open`
    (``.NAME.*.tmp``) and of `link_or_copy` (``.NAME.link``)."""
    removed = []
    for stale in [*Path(folder).glob(f".*{TEMP_SUFFIX}"), *Path(folder).glob(".*.link")]:
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint; any problem is a one-line `CheckpointError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        with open(path, "rb") as handle:
            is_zip = handle.read(4) == ZIP_MAGIC
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read file ({error.strerror or error.__class__.__name__})") from None
    if not is_zip:  # torch.save writes zip archives; anything else (text, a raw pickle) is not a checkpoint
        raise CheckpointError(f"{path}: not a checkpoint (not a PyTorch archive)")
    try:  # torch.load does not check the archive's CRC-32s: damaged tensor bytes would load silently
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({_first_line(error)})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupted checkpoint (checksum mismatch in {damaged})")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the outcome is reported below
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error) or "Unsupported" in str(error):
            raise CheckpointError(
                f"{path}: refused to load: the file holds Python objects, not plain data (possible code)"
            ) from None
        raise CheckpointError(f"{path}: not a checkpoint ({_first_line(error)})") from None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:  # torch reports damaged archives with many exception types
        if is_zip:
            raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({_first_line(error)})") from None
        raise CheckpointError(f"{path}: not a checkpoint (not a PyTorch archive)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a reservoir-rl checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported (this version reads {FORMAT_VERSION})"
        )
    require_keys(payload, POLICY_KEYS, path)
    return payload


def params_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict: for each name in sorted order, ``name\\0dtype\\0shape\\0`` then the bytes."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def require_keys(payload: dict[str, Any], keys: Iterable[str], path: str | Path) -> None:
    """A `CheckpointError` naming the first missing entry, if any."""
    missing = [key for key in keys if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {missing[0]!r} entry)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else error.__class__.__name__


def frame_checkpoint_name(frames: int) -> str:
    return f"{FRAME_FILE_PREFIX}{frames:010d}.pt"


def frame_checkpoints(folder: Path) -> list[Path]:
    """Periodic checkpoints in ``folder``, oldest first."""
    return sorted(Path(folder).glob(f"{FRAME_FILE_PREFIX}*.pt"))


def rotate(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest periodic checkpoints (``last.pt`` and ``best.pt`` are kept)."""
    for old in frame_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every global random stream as plain data (tensors, ints, lists): torch (and CUDA), numpy, python."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
         np_state["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
