"""Use case `export`: a checkpoint's greedy policy as a standalone TorchScript or ONNX file
(`reservoir_rl.agent.export`), written atomically and checked before it is reported: the file is read back
and must choose the checkpoint's actions on a batch of observations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from reservoir_rl import __version__
from reservoir_rl.agent.export import FORMATS, exported_actions, export_metadata, onnx_bytes, torchscript_bytes
from reservoir_rl.commands.evaluate import check_output_file
from reservoir_rl.errors import InflowDataError, UserError
from reservoir_rl.files import atomic_open, os_error_text
from reservoir_rl.runs.policy import CheckpointPolicy, load_policy

CHECK_OBSERVATIONS = 1024  # observations the written file is checked on against the checkpoint
TIE_TOLERANCE = 1e-5  # Q-values closer than this are a tie another runtime may break the other way
EXPORT_EXTRA = "pip install 'reservoir-rl[export]'"


@dataclass
class ExportResult:
    """What `export` wrote: the file, its format and size, and the metadata it carries."""

    file: Path
    format: str
    size_bytes: int
    checkpoint: Path
    metadata: dict[str, Any]
    checked_observations: int  # observations on which the file read back chose the checkpoint's actions

    @property
    def obs_dim(self) -> int:
        return int(self.metadata["obs_dim"])

    @property
    def release_levels_cms(self) -> list[float]:
        return list(self.metadata["release_levels_cms"])

    @property
    def params_sha256(self) -> str:
        return str(self.metadata["params_sha256"])


def decisive(q_values: torch.Tensor, tolerance: float = TIE_TOLERANCE) -> torch.Tensor:
    """bool (B,): the best Q-value of each row of ``q_values`` (B, n_levels) beats the second best by more than
    ``tolerance``. Elsewhere another runtime's rounding (onnxruntime's kernels) may pick the other level of a
    near-tie, so only these rows are compared."""
    top = q_values.topk(2, dim=-1).values
    return (top[:, 0] - top[:, 1]) > tolerance


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose torchscript or onnx")
    if fmt == "onnx":
        missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if not _importable(name)]
        if missing:
            raise UserError(f"--format onnx needs the package{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)}: {EXPORT_EXTRA}")
    return fmt


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def check_observations(policy: CheckpointPolicy, n: int = CHECK_OBSERVATIONS, seed: int = 0) -> torch.Tensor:
    """``n`` observations float32 (n, obs_dim) the written file is checked on: storage fraction in [0, 1],
    the season on the unit circle, forecast features as the env gives them (ratios 0 … 10 times the mean
    inflow, or their log), extra features in [0, 1.2]."""
    generator = torch.Generator().manual_seed(seed)
    uniform = lambda low, high: low + (high - low) * torch.rand(n, generator=generator)  # noqa: E731
    angle = uniform(0.0, 2.0 * torch.pi)
    columns = [uniform(0.0, 1.0), torch.sin(angle), torch.cos(angle)]
    for name in policy.observation_layout[3:]:
        if name.startswith("forecast_log_ratio"):
            columns.append(torch.log1p(uniform(0.0, 10.0)))
        elif name.startswith("forecast_ratio"):
            columns.append(uniform(0.0, 10.0))
        else:
            columns.append(uniform(0.0, 1.2))
    return torch.stack(columns, dim=-1).to(torch.float32)


def _reference_inflow_cms(policy: CheckpointPolicy) -> Optional[float]:
    """The checkpoint's reference inflow (m³/s) for the metadata; None for a checkpoint written before it was
    stored whose record can no longer be read (its whole-record mean cannot be computed)."""
    try:
        return policy.reference_inflow_cms
    except InflowDataError:
        return None


def export(ckpt: str | Path, fmt: str, out: str | Path, force: bool = False, runs_dir: str | Path = "runs") -> ExportResult:
    """Write the greedy policy of ``ckpt`` (a checkpoint file, or a run → its best.pt) to ``out`` as
    ``fmt`` (torchscript or onnx).

    ``out`` is refused when it exists (unless ``force``) or is a folder, and its folder must be writable;
    the file is written atomically (a failure leaves whatever was there). Before returning, the file is read
    back and must choose the same release level as the checkpoint's Q-network on `CHECK_OBSERVATIONS`
    observations (`check_observations`; near-ties left out, see `decisive`), and carry the same metadata."""
    fmt = check_format(fmt)
    out_path = check_output_file(out, force, "--out")
    assert out_path is not None
    policy = load_policy(ckpt, runs_dir)
    metadata = export_metadata(policy.observation_layout, policy.release_levels_cms.tolist(), policy.params_sha256,
                               __version__, run_name=policy.run_name, frames=policy.frames,
                               reference_inflow_cms=_reference_inflow_cms(policy))
    data = (torchscript_bytes if fmt == "torchscript" else onnx_bytes)(policy.q_network, metadata)
    observations = check_observations(policy)
    with torch.no_grad():
        q_values = policy.q_network(observations)
    actions, read_back = exported_actions(fmt, data, observations)
    differ = int((torch.from_numpy(actions) != q_values.argmax(dim=-1))[decisive(q_values)].sum())
    if read_back != metadata or differ:  # a bug, not the user's input
        raise RuntimeError(f"the exported {fmt} policy does not reproduce the checkpoint "
                           f"({differ} of {len(observations)} actions differ)")
    try:
        with atomic_open(out_path, binary=True) as handle:
            handle.write(data)
    except OSError as error:
        raise UserError(f"--out {out_path}: cannot write ({os_error_text(error)})") from None
    return ExportResult(out_path, fmt, len(data), policy.path, metadata, len(observations))
