"""Where a CKPT argument points (a file, or a run's best / last checkpoint) and its payload read safely and
checked: what evaluate, plot and inspect-checkpoint start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from reservoir_rl.config import Config, config_from_dict
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.runs.checkpoint import load_checkpoint, stored_config
from reservoir_rl.runs.folders import RunDir, find_run

# Payload keys evaluate / plot / inspect read; a checkpoint without them is refused with one line.
REQUIRED_KEYS = ("config", "counters", "q_network")


@dataclass
class CheckpointSource:
    """Where a checkpoint came from: its file, and its run folder when it was named by run."""

    path: Path
    run: Optional[RunDir]


def locate_checkpoint(ckpt: str | Path, runs_dir: str | Path = "runs") -> CheckpointSource:
    """A checkpoint file, or a run (name under ``runs_dir`` or path) → its ``checkpoints/best.pt``.

    A run without ``best.pt`` (stopped before its first evaluation) falls back to ``last.pt``.
    """
    path = Path(ckpt)
    if path.is_file():
        return CheckpointSource(path, None)
    if path.exists() and not path.is_dir():  # /dev/zero, a FIFO, a socket: never opened (a FIFO would block)
        raise CheckpointError(f"{path}: not a regular file ({_file_kind(path)}); a checkpoint is a .pt file")
    looks_like_file = path.suffix in (".pt", ".pth", ".ckpt") or path.name in ("best.pt", "last.pt")
    if looks_like_file and not (Path(runs_dir) / str(ckpt)).is_dir():
        raise CheckpointError(f"{path}: checkpoint not found")
    run = find_run(str(ckpt), Path(runs_dir))
    for candidate in (run.best_checkpoint, run.last_checkpoint):
        if candidate.is_file():
            return CheckpointSource(candidate, run)
    raise UserError(f"{run.path}: the run has no checkpoint yet (no checkpoints/best.pt or last.pt)")


def _file_kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def non_finite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinite values (a diverged training)."""
    return sorted(name for name, tensor in state.items()
                  if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()))


def require_finite_weights(payload: dict[str, Any], path: str | Path) -> None:
    """A one-line `CheckpointError` when the checkpoint's Q-network holds NaN or infinite weights: its greedy
    policy would be meaningless (the training that wrote it diverged)."""
    bad = non_finite_tensors(payload["q_network"])
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(f"{path}: the Q-network holds non-finite weights (NaN or inf in {bad[0]}{more}): "
                              "the training that wrote it diverged; use an earlier checkpoint")


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], Config]:
    """Load a checkpoint safely (nothing is unpickled beyond plain data) and validate its config."""
    payload = load_checkpoint(path)
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(repr(k) for k in missing)}")
    if not isinstance(payload["q_network"], dict) or not all(
        isinstance(v, torch.Tensor) for v in payload["q_network"].values()
    ):
        raise CheckpointError(f"{path}: checkpoint 'q_network' is not a dict of tensors")
    config = config_from_dict(stored_config(payload), source=f"{path} (config stored in the checkpoint)")
    return payload, config
