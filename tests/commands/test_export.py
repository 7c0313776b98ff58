"""`export`: a checkpoint's greedy policy as TorchScript / ONNX, its metadata, parity with the checkpoint on
10,000 observations, the CLI's one-line errors, and the examples of docs/export.md."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from typer.testing import CliRunner

from doc_examples import run_python_blocks
from reservoir_rl import __version__
from reservoir_rl.baselines.rollout import first_done_mask, run_episodes
from reservoir_rl.agent.export import load_torchscript, onnx_metadata, onnx_session
from reservoir_rl.cli import app
from reservoir_rl.commands.export import decisive, export
from reservoir_rl.commands.inspect import inspect_checkpoint
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.evaluation.rollout import greedy_actor
from reservoir_rl.runs.locate import read_checkpoint

N_OBSERVATIONS = 10_000


@pytest.fixture(scope="module")
def parity_observations(eval_run) -> torch.Tensor:
    """10,000 observations float32 (10,000, 13): every day of 40 greedy episodes of the agent on training
    years and 40 on held-out years (about 4,800 days), the same days again perturbed by Gaussian noise
    (σ 0.05) up to 9,000, and 1,000 drawn far outside what the env gives (uniform −3 … 6 in every entry)."""
    _, run_dir = eval_run
    payload, config = read_checkpoint(run_dir / "checkpoints" / "best.pt")
    observations = []
    for split, seed in (("train", 1), ("heldout", 2)):
        env = make_env(config, split, n_envs=40, seed=seed)
        with torch.no_grad():
            trajectory = run_episodes(env, greedy_actor(payload, config, env))
        observations.append(trajectory["observation"][first_done_mask(trajectory)])
    real = torch.cat(observations)
    assert len(real) > 3000
    generator = torch.Generator().manual_seed(0)
    again = real.repeat(2, 1)[: 9000 - len(real)]
    perturbed = again + 0.05 * torch.randn(again.shape, generator=generator)
    wild = -3.0 + 9.0 * torch.rand(1000, real.shape[1], generator=generator)
    batch = torch.cat([real, perturbed, wild]).to(torch.float32)
    assert batch.shape == (N_OBSERVATIONS, 13)
    return batch


@pytest.fixture(scope="module")
def checkpoint_choice(eval_run, parity_observations) -> tuple[torch.Tensor, torch.Tensor]:
    """The checkpoint's greedy actor (the one `evaluate` builds) on the parity observations: (actions, Q-values)."""
    _, run_dir = eval_run
    payload, config = read_checkpoint(run_dir / "checkpoints" / "best.pt")
    actor = greedy_actor(payload, config, make_env(config, "heldout", n_envs=1))
    with torch.no_grad():
        out = actor(TensorDict({"observation": parity_observations}, batch_size=[N_OBSERVATIONS]))
    return out["action"], out["action_value"]


def _expected_metadata(run_dir) -> dict:
    best = run_dir / "checkpoints" / "best.pt"
    info = inspect_checkpoint(best)
    return {
        "format": "reservoir-rl-greedy-policy", "format_version": 1,
        "observation_layout": ["storage_fraction", "season_sin", "season_cos",
                               *(f"forecast_log_ratio_lead_{k}" for k in range(1, 11))],
        "obs_dim": 13, "release_levels_cms": [40.0 * k for k in range(11)], "n_release_levels": 11,
        "params_sha256": info["params_sha256"], "package_version": __version__, "run_name": "tiny",
        "frames": read_checkpoint(best)[0]["counters"]["frames"],
        # the reference the forecast features are divided by: the training years' mean the checkpoint stored
        "reference_inflow_cms": read_checkpoint(best)[0]["observation_reference_inflow_cms"],
    }


def test_torchscript_export_chooses_the_checkpoints_action_on_10000_observations(
        eval_run, tmp_path, parity_observations, checkpoint_choice):
    runs_dir, run_dir = eval_run
    out = tmp_path / "policy.pt"
    result = export("tiny", "torchscript", out, runs_dir=runs_dir)
    assert result.file == out and result.size_bytes == out.stat().st_size and result.format == "torchscript"
    assert result.checkpoint == run_dir / "checkpoints" / "best.pt" and result.checked_observations == 1024

    model, metadata = load_torchscript(str(out))
    assert metadata == _expected_metadata(run_dir) == result.metadata
    expected_action, expected_q = checkpoint_choice
    with torch.no_grad():
        action, q_values = model(parity_observations)
    assert action.dtype == torch.int64 and action.shape == (N_OBSERVATIONS,)
    assert q_values.dtype == torch.float32 and q_values.shape == (N_OBSERVATIONS, 11)
    assert torch.equal(action, expected_action)  # the same computation in torch: every action, ties included
    torch.testing.assert_close(q_values, expected_q, rtol=0, atol=1e-6)
    with torch.no_grad():  # any batch size, one observation included
        assert torch.equal(model(parity_observations[:1])[0], expected_action[:1])


@pytest.fixture(scope="module")
def onnx_export(eval_run, tmp_path_factory):
    """The tiny run exported to ONNX once (the exporter takes seconds): the `ExportResult`."""
    for extra in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(extra, reason="the export extra is not installed")
    return export(eval_run[1], "onnx", tmp_path_factory.mktemp("onnx") / "policy.onnx")


def test_onnx_export_chooses_the_checkpoints_action_on_10000_observations(
        eval_run, onnx_export, parity_observations, checkpoint_choice):
    runs_dir, run_dir = eval_run
    result, out = onnx_export, onnx_export.file
    assert result.format == "onnx" and result.size_bytes == out.stat().st_size
    session = onnx_session(str(out))
    assert onnx_metadata(session.get_modelmeta().custom_metadata_map) == _expected_metadata(run_dir) == result.metadata
    assert [i.name for i in session.get_inputs()] == ["observation"]
    assert [o.name for o in session.get_outputs()] == ["action", "q_values"]

    action, q_values = session.run(None, {"observation": parity_observations.numpy()})
    assert action.dtype == np.int64 and action.shape == (N_OBSERVATIONS,)
    assert q_values.dtype == np.float32 and q_values.shape == (N_OBSERVATIONS, 11)
    expected_action, expected_q = checkpoint_choice
    np.testing.assert_allclose(q_values, expected_q.numpy(), rtol=1e-5, atol=1e-5)
    # onnxruntime's kernels round differently from torch's: a near-tie (< 1e-5) may go the other way
    compared = decisive(expected_q)
    assert int(compared.sum()) >= N_OBSERVATIONS - 10, "more near-ties than a float rounding explains"
    assert np.array_equal(action[compared.numpy()], expected_action[compared].numpy())


def test_export_refuses_to_overwrite_without_force_and_replaces_with_it(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    out = tmp_path / "policy.pt"
    out.write_bytes(b"operator's file")
    with pytest.raises(UserError, match="file exists; choose another name or add --force"):
        export(run_dir, "torchscript", out)
    assert out.read_bytes() == b"operator's file"
    export(run_dir, "torchscript", out, force=True)
    assert load_torchscript(str(out))[1]["run_name"] == "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["policy.pt"]  # no temporary file left


def test_export_refuses_bad_formats_checkpoints_and_outputs(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    with pytest.raises(UserError, match="--format 'tflite': choose torchscript or onnx"):
        export(run_dir, "tflite", tmp_path / "p")
    with pytest.raises(UserError, match="is a folder, not a file"):
        export(run_dir, "torchscript", tmp_path)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        export(text, "torchscript", tmp_path / "p.pt")
    diverged = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    diverged["q_network"]["head.bias"][0] = float("nan")
    torch.save(diverged, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="non-finite weights"):
        export(tmp_path / "nan.pt", "onnx", tmp_path / "p.onnx")
    assert not (tmp_path / "p.pt").exists() and not (tmp_path / "p.onnx").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_folder_is_one_line_before_any_work(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match=r"--out .*locked.*cannot write"):
            export(run_dir, "torchscript", locked / "p.pt")
    finally:
        locked.chmod(0o700)


def test_missing_onnx_packages_are_named_with_the_extra(eval_run, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(UserError, match=r"--format onnx needs the package onnxscript: pip install 'reservoir-rl\[export\]'"):
        export(eval_run[1], "onnx", tmp_path / "p.onnx")


def _one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2 and result.stdout == "", (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_cli_export_prints_what_it_wrote_and_errors_in_one_line(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    runner = CliRunner(env={"RESERVOIR_RL_DEBUG": None, "COLUMNS": "80"})
    out = tmp_path / "policy.pt"
    result = runner.invoke(app, ["export", "tiny", "--runs-dir", str(runs_dir), "--format", "torchscript",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    sha = inspect_checkpoint(run_dir / "checkpoints" / "best.pt")["params_sha256"]
    unwrapped = "".join(result.stdout.replace("│", "").split())  # the panel wraps long values
    for text in ("torchscript", "policy.pt", "observation float32 (B, 13)", "storage_fraction",
                 "0, 40, 80, 120, 160, 200, 240, 280, 320, 360, 400 m³/s", sha, __version__,
                 "same actions as the checkpoint on 1,024 observations"):
        assert "".join(text.split()) in unwrapped, text
    assert load_torchscript(str(out))[1]["params_sha256"] == sha

    again = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript", "--out", str(out)])
    _one_line_error(again, f"--out {out}: file exists; choose another name or add --force to overwrite it")
    bad = runner.invoke(app, ["export", str(run_dir), "--format", "pickle", "--out", str(tmp_path / "x")])
    _one_line_error(bad, "error: --format 'pickle': choose torchscript or onnx")
    missing = runner.invoke(app, ["export", str(tmp_path / "none.pt"), "--format", "onnx", "--out", str(tmp_path / "x")])
    _one_line_error(missing, "none.pt: checkpoint not found")
    folder = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript", "--out", str(tmp_path)])
    _one_line_error(folder, "is a folder, not a file")
    no_format = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "y")])
    _one_line_error(no_format, "Missing option '--format'")
    forced = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.stderr


def test_the_docs_page_examples_run(eval_run, onnx_export, tmp_path, monkeypatch):
    """docs/export.md's Python blocks, on files the page's commands would write."""
    _, run_dir = eval_run
    export(run_dir, "torchscript", tmp_path / "policy-torchscript.pt")
    shutil.copy(onnx_export.file, tmp_path / "policy.onnx")
    namespace = run_python_blocks("docs/export.md", tmp_path, monkeypatch)
    assert namespace["metadata"]["obs_dim"] == 13 and namespace["action"].shape == (2,)
    assert namespace["release_cms"].tolist() == [40.0 * a for a in namespace["action"].tolist()]
