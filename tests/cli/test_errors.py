"""Bad input to any command: one line naming what is wrong, a non-zero exit, no traceback (``--debug``
shows it), and no user file overwritten."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.runs.checkpoint import load_checkpoint

runner = CliRunner()
SMALL = {"inflow": {"source": "synthetic", "heldout_water_years": 2, "synthetic": {"n_years": 6}}, "env": {"horizon_days": 30}}


def fails(args: list[str], *fragments: str) -> str:
    """Run the CLI; assert exit code 2, exactly one 'error:' line holding every fragment, no traceback."""
    result = runner.invoke(app, [str(a) for a in args])
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1 and output.startswith("error:"), output
    for fragment in fragments:
        assert fragment in output, (fragment, output)
    return output


def _config(folder: Path, data: object, name: str = "c.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------------ config files


def test_train_config_file_errors(tmp_path):
    runs = tmp_path / "runs"
    fails(["train", tmp_path / "missing.yaml", "--runs-dir", runs], "missing.yaml", "not found")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    fails(["train", binary, "--runs-dir", runs], "binary.yaml", "cannot read")
    fails(["train", _config(tmp_path, "train:\n  total_frames: [1, 2\n"), "--runs-dir", runs], "YAML syntax error", "line")
    fails(["train", _config(tmp_path, {"train": {"totl_frames": 10}}), "--runs-dir", runs], "train.totl_frames")
    fails(["train", _config(tmp_path, {"train": {"total_frames": "many"}}), "--runs-dir", runs], "train.total_frames", "many")
    fails(["train", _config(tmp_path, {"env": {"horizon_days": 0}}), "--runs-dir", runs], "env.horizon_days")
    fails(["train", _config(tmp_path, {}), "--set", "train.lr=-1", "--runs-dir", runs], "train.lr")
    assert not runs.exists() or not any(runs.iterdir())  # nothing left behind


@pytest.mark.parametrize(
    "rows, fragment",
    [
        (["2000-01-01,10", "2000-01-02,11", "2000-01-04,12"], "gap in dates"),
        (["2000-01-01,10", "2000-01-02,nan", "2000-01-03,12"], "NaN"),
        (["2000-01-01,10", "2000-01-02,", "2000-01-03,12"], "missing value"),
        (["2000-01-01,10", "2000-01-02,-3", "2000-01-03,12"], "negative flow"),
    ],
)
def test_train_on_a_bad_inflow_csv(tmp_path, rows, fragment):
    csv = tmp_path / "flows.csv"
    csv.write_text("date,flow\n" + "\n".join(rows) + "\n")
    config = _config(tmp_path, {"inflow": {"source": "csv", "path": str(csv)}})
    output = fails(["train", config, "--runs-dir", tmp_path / "runs"], fragment)
    assert "flows.csv" in output


def test_unknown_runs(tmp_path):
    fails(["resume", "run-9", "--runs-dir", tmp_path], "unknown run 'run-9'")
    fails(["evaluate", "run-9", "--runs-dir", tmp_path], "unknown run 'run-9'")
    fails(["plot", "run-9", "--runs-dir", tmp_path], "unknown run 'run-9'")
    fails(["inspect-checkpoint", "run-9", "--runs-dir", tmp_path], "unknown run 'run-9'")


# ------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def bad_checkpoints(eval_run, tmp_path_factory) -> dict[str, Path]:
    """Damaged or foreign files next to a good checkpoint of the session's run."""
    _, run_dir = eval_run
    folder = tmp_path_factory.mktemp("bad")
    good = run_dir / "checkpoints" / "last.pt"
    data = good.read_bytes()
    files = {}
    files["truncated"] = folder / "truncated.pt"
    files["truncated"].write_bytes(data[: len(data) // 2])
    corrupted = bytearray(data)
    corrupted[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside the tensor data
    files["corrupted"] = folder / "corrupted.pt"
    files["corrupted"].write_bytes(bytes(corrupted))
    files["text"] = folder / "notes.pt"
    files["text"].write_text("these are my notes, not a checkpoint\n")
    files["foreign"] = folder / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, files["foreign"])
    payload = load_checkpoint(good)
    files["version"] = folder / "future.pt"
    torch.save({**payload, "format_version": 99}, files["version"])
    files["bad_config"] = folder / "bad-config.pt"
    torch.save({**payload, "config": {**payload["config"], "env": {**payload["config"]["env"], "horizon_days": -1}}},
               files["bad_config"])
    nan_csv = folder / "nan.csv"
    nan_csv.write_text("date,flow\n2000-01-01,10\n2000-01-02,nan\n")
    files["csv"] = folder / "csv-config.pt"
    torch.save({**payload, "config": {**payload["config"], "inflow": {"source": "csv", "path": str(nan_csv)}}}, files["csv"])
    marker = folder / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    files["code"] = folder / "code.pt"
    torch.save({"format": "reservoir-rl-checkpoint", "format_version": 1, "config": Payload()}, files["code"])
    files["marker"] = marker
    return files


@pytest.mark.parametrize("command", ["evaluate", "inspect-checkpoint"])
@pytest.mark.parametrize(
    "kind, fragments",
    [
        ("missing", ["missing.pt", "not found"]),
        ("truncated", ["truncated.pt", "truncated or corrupted"]),
        ("corrupted", ["corrupted.pt", "corrupted checkpoint"]),
        ("text", ["notes.pt", "not a checkpoint"]),
        ("foreign", ["foreign.pt", "not a reservoir-rl checkpoint"]),
        ("version", ["future.pt", "format version 99"]),
        ("bad_config", ["bad-config.pt", "env.horizon_days"]),
        ("code", ["code.pt", "refused"]),
    ],
)
def test_bad_checkpoints(bad_checkpoints, tmp_path, command, kind, fragments):
    path = bad_checkpoints.get(kind, tmp_path / "missing.pt")
    fails([command, path], *fragments)
    assert not bad_checkpoints["marker"].exists()  # the pickled code never ran


def test_checkpoint_whose_inflow_csv_has_nan(bad_checkpoints):
    fails(["evaluate", bad_checkpoints["csv"], "--episodes", "2"], "nan.csv", "NaN")


def test_plot_of_a_run_with_a_damaged_checkpoint(eval_run, tmp_path):
    runs_dir, _ = eval_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(runs_dir / "tiny" / "checkpoints", copy / "checkpoints")
    best = copy / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    fails(["plot", "tiny", "--runs-dir", tmp_path / "runs"], "best.pt", "truncated or corrupted")


# ------------------------------------------------------------------------------------ option values


def test_bad_option_values(eval_run, tmp_path):
    runs_dir, _ = eval_run
    base = ["--runs-dir", runs_dir]
    fails(["evaluate", "tiny", "--years", "future", *base], "--years 'future'")
    fails(["evaluate", "tiny", "--baselines", "sop,oracle", *base], "'oracle'")
    fails(["evaluate", "tiny", "--episodes", "0", *base], "--episodes 0")
    fails(["plot", "tiny", "--format", "jpg", *base], "--format 'jpg'")
    fails(["train", _config(tmp_path, SMALL), "--device", "tpu", "--runs-dir", tmp_path / "runs"], "--device 'tpu'")


def test_no_user_file_is_overwritten(eval_run, tmp_path):
    runs_dir, _ = eval_run
    mine = tmp_path / "results.json"
    mine.write_text("keep me")
    fails(["evaluate", "tiny", "--episodes", "2", "--out", mine, *["--runs-dir", runs_dir]], "results.json", "--force")
    fails(["evaluate", "tiny", "--episodes", "2", "--csv", mine, *["--runs-dir", runs_dir]], "results.json", "--force")
    figure = tmp_path / "training.png"
    figure.write_text("keep me too")
    fails(["plot", "tiny", "--out", tmp_path, "--runs-dir", runs_dir], "training.png", "--force")
    assert mine.read_text() == "keep me" and figure.read_text() == "keep me too"
    ok = runner.invoke(app, ["evaluate", "tiny", "--episodes", "2", "--baselines", "sop", "--out", mine, "--force",
                             "--runs-dir", str(runs_dir)])
    assert ok.exit_code == 0, ok.output
    assert mine.read_text().startswith("{")


def test_debug_shows_the_exception(tmp_path):
    result = runner.invoke(app, ["--debug", "inspect-checkpoint", str(tmp_path / "missing.pt")])
    assert result.exit_code != 0 and isinstance(result.exception, CheckpointError)
    quiet = runner.invoke(app, ["inspect-checkpoint", str(tmp_path / "missing.pt")])
    assert isinstance(quiet.exception, SystemExit) and not isinstance(quiet.exception, UserError)
