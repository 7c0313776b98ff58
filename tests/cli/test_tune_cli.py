"""`reservoir-rl tune` on the command line: bad input is one line and exit 2; the report fits 80 columns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.cli.console import console
from reservoir_rl.cli.render_tune import render_tune
from reservoir_rl.commands.tune import TuneResult
from reservoir_rl.tuning.study import TrialRow

runner = CliRunner()
SMALL = {"inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6}}, "env": {"horizon_days": 30}}


def fails(args: list[str], *fragments: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1 and output.startswith("error:"), output
    for fragment in fragments:
        assert fragment in output, (fragment, output)
    return output


def _config(tmp_path: Path, validation: int) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "inflow": {**SMALL["inflow"], "validation_water_years": validation}}))
    return path


def test_tune_without_validation_years_is_refused_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    fails(["tune", _config(tmp_path, 0), "--trials", "2", "--runs-dir", tmp_path / "runs"],
          "inflow.validation_water_years is 0", "--set inflow.validation_water_years=5")
    assert not (tmp_path / "runs").exists()


def test_a_bad_space_file_and_bad_numbers_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1e-3, high: 1e-4}\n")
    config = _config(tmp_path, 1)
    fails(["tune", config, "--trials", "2", "--space", space, "--runs-dir", tmp_path / "runs"],
          str(space), "train.lr: low (0.001) is above high (0.0001)")
    fails(["tune", config, "--trials", "0", "--runs-dir", tmp_path / "runs"], "--trials 0")
    fails(["tune", config, "--trials", "2", "--timeout", "-1", "--runs-dir", tmp_path / "runs"], "--timeout")
    fails(["tune", config, "--trials", "2", "--study", "a b", "--runs-dir", tmp_path / "runs"], "study name 'a b'")
    fails(["tune", config, "--trials", "2", "--storage", "nosuchdb://x", "--runs-dir", tmp_path / "runs"],
          "--storage nosuchdb://x")


def test_without_optuna_the_command_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    fails(["tune", _config(tmp_path, 1), "--trials", "2", "--runs-dir", tmp_path / "runs"],
          "pip install 'reservoir-rl[tune]'")


def test_the_report_fits_80_columns_and_shows_every_parameter(tmp_path: Path) -> None:
    params = {
        "train.lr": 0.000123456, "train.batch_size": 128, "agent.hidden_sizes.width": 256,
        "agent.hidden_sizes.depth": 3, "agent.gamma": 0.987654, "agent.n_step": 4, "agent.dueling": True,
        "train.target_update_period": 1234, "train.eps_decay_frames/train.total_frames": 0.333333,
    }
    rows = [TrialRow(n, "COMPLETE" if n % 3 else "PRUNED", 100.0 + n, params, str(tmp_path / f"trial-{n}"),
                     "" if n % 3 else f"pruned at frame {n * 20_000:,}", 200_000) for n in range(12)]
    result = TuneResult("base", "sqlite:///" + str(tmp_path / "study.db"), tmp_path, rows, 11, 111.0,
                        tmp_path / "best.yaml", tmp_path / "param_importance.png", {"train.lr": 0.7, "agent.gamma": 0.3})
    with console.capture() as capture:
        render_tune(result)
    text = capture.get()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for header in ("lr", "batch_size", "hidden_sizes.width", "hidden_sizes.depth", "gamma", "n_step", "dueling",
                   "target_update_period", "eps_decay_frames/total_frames"):
        assert header in text, header
    assert "0.0001235" in text and "0.3333" in text and "111.00 *" in text
    assert "best: trial 11" in text and "pruned at frame 60,000" in text
