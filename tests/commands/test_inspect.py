"""`inspect-checkpoint`: what a checkpoint holds, and a parameter fingerprint to compare checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.commands.inspect import inspect_checkpoint, params_sha256


def test_inspect_reports_counters_config_network_and_file(eval_run):
    runs_dir, run_dir = eval_run
    path = run_dir / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    info = inspect_checkpoint(path)
    assert info["run_name"] == "tiny"
    assert (info["frames"], info["updates"], info["episodes"]) == tuple(
        payload["counters"][k] for k in ("frames", "updates", "episodes")
    )
    assert info["frames"] == 1024
    assert info["epsilon"] == payload["epsilon"] and info["best_eval_return"] == payload["best_eval_return"]
    assert info["file_size_bytes"] == path.stat().st_size
    assert info["created"] == payload["created"]
    assert info["package_versions"]["torch"] == torch.__version__
    assert info["network"]["architecture"].startswith("13 → 32 → 32 → 11")
    assert info["network"]["parameter_count"] == sum(t.numel() for t in payload["q_network"].values())
    assert info["network"]["parameter_count"] == 13 * 32 + 32 + 32 * 32 + 32 + 32 * 11 + 11
    assert info["config"]["inflow"]["source"].startswith("synthetic")
    assert info["config"]["env"]["horizon_days"] == 60
    # a run name means its best checkpoint
    assert inspect_checkpoint("tiny", runs_dir)["file"] == str(runs_dir / "tiny" / "checkpoints" / "best.pt")


def test_params_sha256_compares_networks_not_files(eval_run, tmp_path):
    _, run_dir = eval_run
    checkpoints = run_dir / "checkpoints"
    last = inspect_checkpoint(checkpoints / "last.pt")["params_sha256"]
    assert len(last) == 64
    # the same weights in another file, saved at another time with other metadata: same fingerprint
    payload = load_checkpoint(checkpoints / "last.pt")
    payload["created"] = "2000-01-01T00:00:00+00:00"
    payload["q_network"] = dict(reversed(list(payload["q_network"].items())))  # order of the dict is irrelevant
    torch.save(payload, tmp_path / "copy.pt")
    assert inspect_checkpoint(tmp_path / "copy.pt")["params_sha256"] == last
    shutil.copy(checkpoints / "last.pt", tmp_path / "plain-copy.pt")
    assert inspect_checkpoint(tmp_path / "plain-copy.pt")["params_sha256"] == last
    # more training changes it
    first = inspect_checkpoint(checkpoints / "frame-0000000256.pt")["params_sha256"]
    assert first != last


def test_params_sha256_sees_one_changed_value_and_dtype():
    state = {"body.0.weight": torch.zeros(3, 2), "head.bias": torch.ones(2)}
    reference = params_sha256(state)
    nudged = {k: v.clone() for k, v in state.items()}
    nudged["head.bias"][1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert params_sha256(nudged) != reference
    assert params_sha256({k: v.double() for k, v in state.items()}) != reference
    assert params_sha256({"body.0.weight": torch.zeros(2, 3), "head.bias": torch.ones(2)}) != reference  # shape
    assert params_sha256({k: v.t().contiguous().t() if v.ndim == 2 else v for k, v in state.items()}) == reference


def test_cli_panel_and_json(eval_run):
    runs_dir, run_dir = eval_run
    runner = CliRunner()
    path = str(run_dir / "checkpoints" / "last.pt")
    as_json = runner.invoke(app, ["inspect-checkpoint", path, "--json"])
    assert as_json.exit_code == 0, as_json.output
    info = json.loads(as_json.output)
    assert info["frames"] == 1024 and len(info["params_sha256"]) == 64
    panel = runner.invoke(app, ["inspect-checkpoint", "tiny", "--runs-dir", str(runs_dir)])
    assert panel.exit_code == 0, panel.output
    assert "params_sha256" in panel.output and "tiny" in panel.output
    assert inspect_checkpoint("tiny", runs_dir)["params_sha256"] in panel.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_a_pickle_that_carries_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "reservoir-rl-checkpoint", "format_version": 1, "config": Payload()}, tmp_path / "evil.pt")
    result = CliRunner().invoke(app, ["inspect-checkpoint", str(tmp_path / "evil.pt")])
    assert result.exit_code == 2
    assert "refused" in result.output and "Traceback" not in result.output
    assert not marker.exists()
    with pytest.raises(Exception):
        inspect_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_config_summary_shows_a_seasonal_flood_zone_as_its_range_and_a_decaying_learning_rate():
    from reservoir_rl.config import config_from_dict
    from reservoir_rl.commands.inspect import config_summary

    seasonal = config_from_dict({"env": {"reservoir": {"flood_zone_hm3": [[0, 928], [61, 681], [304, 1095.4]]}},
                                 "inflow": {"train_flood_scale": [1.0, 1.5]}})
    summary = config_summary(seasonal)
    assert summary["env"]["flood_zone_hm3"] == "seasonal 681–1,095 (3 points)"
    assert summary["inflow"]["train_flood_scale"] == [1.0, 1.5]
    assert config_summary(config_from_dict({}))["env"]["flood_zone_hm3"] == 1275.0
    assert config_summary(config_from_dict({}))["train"]["lr"] == 0.001
    decaying = config_from_dict({"train": {"lr_end": 1e-4, "lr_decay_frames": 150000}})
    assert config_summary(decaying)["train"]["lr"] == "0.001 → 0.0001 over 150,000 frames"
