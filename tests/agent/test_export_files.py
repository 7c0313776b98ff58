"""`agent/export.py`: any Q-network (plain or dueling, with or without quantiles) as a TorchScript / ONNX greedy policy with its metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from reservoir_rl.agent.export import (
    METADATA_FILE, GreedyPolicyModule, export_metadata, exported_actions, load_torchscript, onnx_bytes,
    torchscript_bytes,
)
from reservoir_rl.agent.qnet import QNetwork


def _metadata(obs_dim: int, n_levels: int) -> dict:
    return export_metadata([f"x{i}" for i in range(obs_dim)], [10.0 * k for k in range(n_levels)], "ab" * 32, "9.9",
                           run_name="r", frames=7)


def test_metadata_document_names_sizes_and_levels():
    meta = _metadata(3, 4)
    assert meta == {"format": "reservoir-rl-greedy-policy", "format_version": 1, "observation_layout": ["x0", "x1", "x2"],
                    "obs_dim": 3, "release_levels_cms": [0.0, 10.0, 20.0, 30.0], "n_release_levels": 4,
                    "params_sha256": "ab" * 32, "package_version": "9.9", "run_name": "r", "frames": 7}


@pytest.mark.parametrize("dueling,quantiles", [(False, 0), (True, 0), (False, 4), (True, 4)])
def test_torchscript_reproduces_the_network_for_any_batch_size(dueling, quantiles):
    torch.manual_seed(0)
    network = QNetwork(6, 5, (16, 8), "tanh", dueling, quantiles=quantiles).eval()
    data = torchscript_bytes(network, _metadata(6, 5))
    model, metadata = load_torchscript(io.BytesIO(data))
    assert metadata == _metadata(6, 5)
    for batch in (1, 3, 257):
        observation = torch.randn(batch, 6)
        with torch.no_grad():
            action, q_values = model(observation)
            expected = network(observation)
        torch.testing.assert_close(q_values, expected, rtol=0, atol=0)
        assert torch.equal(action, expected.argmax(-1)) and action.dtype == torch.int64
    extra = {METADATA_FILE: ""}
    torch.jit.load(io.BytesIO(data), _extra_files=extra)
    assert b'"obs_dim": 6' in extra[METADATA_FILE]  # bytes: json.loads reads them as they are


def test_greedy_module_breaks_ties_at_the_lowest_level():
    class Flat(torch.nn.Module):
        def forward(self, observation):
            return torch.zeros(observation.shape[0], 4)

    action, _ = GreedyPolicyModule(Flat())(torch.zeros(3, 2))
    assert action.tolist() == [0, 0, 0]


@pytest.mark.parametrize("quantiles", [0, 3])
def test_onnx_dueling_network_has_a_dynamic_batch_and_its_metadata(quantiles):
    for extra in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(extra, reason="the export extra is not installed")
    torch.manual_seed(1)
    network = QNetwork(6, 5, (16,), "elu", dueling=True, quantiles=quantiles).eval()
    data = onnx_bytes(network, _metadata(6, 5))
    observation = torch.randn(33, 6)
    action, metadata = exported_actions("onnx", data, observation)
    assert metadata == _metadata(6, 5)
    with torch.no_grad():
        assert np.array_equal(action, network(observation).argmax(-1).numpy())
