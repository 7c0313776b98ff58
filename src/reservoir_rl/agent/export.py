"""A Q-network as a standalone greedy policy file: TorchScript (plain torch loads it) or ONNX (onnxruntime,
or any ONNX runtime), with what a reader needs to feed and read it carried inside the file.

The exported model takes one input and gives two outputs, for any batch size B:

    observation   float32 (B, obs_dim)           the env's observation, entries in ``observation_layout`` order
    action        int64 (B,)                     the greedy release level, 0 … n_release_levels − 1
    q_values      float32 (B, n_release_levels)  the Q-value of each level

Its metadata (one JSON document, `METADATA_FILE` in a TorchScript archive; one ``metadata_props`` entry per
key in an ONNX model, each value JSON-encoded): ``format``, ``format_version``,
``observation_layout``, ``obs_dim``, ``release_levels_cms``, ``n_release_levels``, ``params_sha256``,
``package_version`` and what the caller adds (the checkpoint's run name and frames, and
``reference_inflow_cms``: the inflow in m³/s the forecast features are divided by).

The release guard (``env.safety``) is not part of the file: it needs the storage in hm³ and the day of year
beside the observation (`reservoir_rl.env.safety`); the file is the agent's own greedy choice.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

FORMATS = ("torchscript", "onnx")
METADATA_FILE = "metadata.json"  # TorchScript: the ``_extra_files`` entry holding the metadata
METADATA_FORMAT = "reservoir-rl-greedy-policy"
METADATA_VERSION = 1
INPUT_NAME = "observation"
OUTPUT_NAMES = ("action", "q_values")
ONNX_OPSET = 18


class GreedyPolicyModule(nn.Module):
    """``q_network`` with its greedy choice: observation float32 (B, obs_dim) → (action int64 (B,),
    q_values float32 (B, n_levels)); ties go to the lowest level (``argmax``'s first maximum)."""

    def __init__(self, q_network: nn.Module) -> None:
        super().__init__()
        self.q_network = q_network

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_values = self.q_network(observation)
        return q_values.argmax(dim=-1), q_values


def export_metadata(observation_layout: list[str], release_levels_cms: list[float], params_sha256: str,
                    package_version: str, **extra: Any) -> dict[str, Any]:
    """The metadata document of an exported policy (see the module docstring)."""
    return {
        "format": METADATA_FORMAT,
        "format_version": METADATA_VERSION,
        "observation_layout": list(observation_layout),
        "obs_dim": len(observation_layout),
        "release_levels_cms": [float(level) for level in release_levels_cms],
        "n_release_levels": len(release_levels_cms),
        "params_sha256": params_sha256,
        "package_version": package_version,
        **extra,
    }


def _example(obs_dim: int) -> torch.Tensor:
    return torch.zeros(2, obs_dim, dtype=torch.float32)


def torchscript_bytes(q_network: nn.Module, metadata: dict[str, Any]) -> bytes:
    """The traced greedy policy as a TorchScript archive (bytes) with ``metadata`` as `METADATA_FILE`.

    Tracing records the MLP's operations, none of which depend on the batch size (checked by running the
    trace on another batch size)."""
    module = GreedyPolicyModule(q_network).eval()
    obs_dim = int(metadata["obs_dim"])
    with torch.no_grad():
        traced = torch.jit.trace(module, (_example(obs_dim),), check_inputs=[(torch.zeros(5, obs_dim),)])
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})
    return buffer.getvalue()


def load_torchscript(source: str | Path | BinaryIO) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """A TorchScript policy file (path or binary file object) and its metadata, on the CPU."""
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(source) if isinstance(source, Path) else source, map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[METADATA_FILE])


def onnx_bytes(q_network: nn.Module, metadata: dict[str, Any]) -> bytes:
    """The greedy policy as an ONNX model (bytes; opset `ONNX_OPSET`, batch axis dynamic) with ``metadata``
    in its ``metadata_props``. Needs the ``onnx`` and ``onnxscript`` packages (the ``export`` extra): an
    `ImportError` otherwise."""
    import onnx  # noqa: F401 - the exporter's dependencies, asked for before any work
    import onnxscript  # noqa: F401

    module = GreedyPolicyModule(q_network).eval()
    obs_dim = int(metadata["obs_dim"])
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:  # the exporter logs its steps (and optional packages it lacks) at WARNING
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, (_example(obs_dim),), None, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                opset_version=ONNX_OPSET, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False, report=False,
            )
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    model = program.model_proto
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    return model.SerializeToString()


def onnx_metadata(props: dict[str, str]) -> dict[str, Any]:
    """An ONNX model's ``metadata_props`` (as onnxruntime's ``custom_metadata_map`` gives them) decoded back
    into the metadata document (every value is JSON)."""
    return {key: json.loads(value) for key, value in props.items()}


def onnx_session(source: str | bytes):
    """An onnxruntime session (CPU) of an ONNX policy (path or bytes). Needs ``onnxruntime``."""
    import onnxruntime

    return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])


def exported_actions(fmt: str, data: bytes, observation: torch.Tensor) -> tuple[np.ndarray, dict[str, Any]]:
    """The actions int64 (B,) an exported file (its bytes) chooses for ``observation`` float32 (B, obs_dim),
    and its metadata read back from the file: what `export` checks before it reports success."""
    if fmt == "torchscript":
        module, metadata = load_torchscript(io.BytesIO(data))
        with torch.no_grad():
            action, _ = module(observation.to(torch.float32))
        return action.numpy(), metadata
    session = onnx_session(data)
    action, _ = session.run(None, {INPUT_NAME: observation.to(torch.float32).numpy()})
    return action, onnx_metadata(session.get_modelmeta().custom_metadata_map)
