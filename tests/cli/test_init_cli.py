"""`init`, `flood-zone` and the plausibility warnings on the command line: warnings are yellow one-liners on
stderr, --strict makes the first an error, bad records and options are one error line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app

from rivers import smooth_river, write_csv, write_rdb

FAST = ["--set", "train.total_frames=256", "--set", "train.n_envs=8", "--set", "train.init_random_frames=128",
        "--set", "train.eval_every_frames=256", "--set", "train.eval_episodes=1", "--set", "agent.hidden_sizes=[16]",
        "--set", "logging.baseline_levels=false", "--set", "env.horizon_days=30"]


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner(env={"RESERVOIR_RL_DEBUG": None, "COLUMNS": "100"})


def one_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_init_prints_the_record_and_the_design_and_writes_the_config(runner, tmp_path: Path) -> None:
    record = write_rdb(smooth_river(7.5), tmp_path / "gauge.rdb")
    result = runner.invoke(app, ["init", str(record), "--out", str(tmp_path / "g.yaml")])
    assert result.exit_code == 0, result.stderr
    for fragment in ("gauge.rdb (rdb)", "complete water years", "training / held-out", "largest floods",
                     "driest water year", "driest 30 days", "capacity", "spillway"):
        assert fragment in result.stdout, fragment
    assert f"wrote {tmp_path / 'g.yaml'}" in result.stdout.replace("\n", "")  # a long path folds at the width
    assert result.stderr == ""  # no warning
    assert yaml.safe_load((tmp_path / "g.yaml").read_text())["inflow"]["source"] == "rdb"
    again = runner.invoke(app, ["init", str(record), "--out", str(tmp_path / "g.yaml")])
    one_error(again, "g.yaml: file exists", "--force")


def test_bad_records_and_options_are_one_line(runner, tmp_path: Path) -> None:
    one_error(runner.invoke(app, ["init", str(tmp_path / "none.rdb")]), "none.rdb: record file not found")
    ice = write_rdb(smooth_river(7.5), tmp_path / "ice.rdb", values={99: "Ice"})
    one_error(runner.invoke(app, ["init", str(ice)]), "ice.rdb: row 100", "'Ice'", "ice affected")
    good = write_rdb(smooth_river(7.5), tmp_path / "ok.rdb")
    one_error(runner.invoke(app, ["init", str(good), "--units", "cms"]), "--units cms", "ft³/s")
    csv = write_csv(smooth_river(7.5), tmp_path / "r.csv")
    one_error(runner.invoke(app, ["init", str(csv), "--units", "gallons"]), "--units 'gallons'")
    one_error(runner.invoke(app, ["init", str(csv), "--heldout-water-years", "0"]), "--heldout-water-years 0")
    one_error(runner.invoke(app, ["init", str(csv), "--heldout-water-years", "99"]), "no training water year left")
    assert not list(tmp_path.glob("*.yaml"))


def test_warnings_are_lines_on_stderr_and_strict_makes_them_errors(runner, tmp_path: Path) -> None:
    csv = write_csv(smooth_river(7.5, n_years=8), tmp_path / "short.csv")
    strict = runner.invoke(app, ["init", str(csv), "--out", str(tmp_path / "s.yaml"), "--strict"])
    one_error(strict, "only 6 training water year(s)", "[--strict]")
    assert not (tmp_path / "s.yaml").exists()
    loose = runner.invoke(app, ["init", str(csv), "--out", str(tmp_path / "s.yaml")])
    assert loose.exit_code == 0
    assert loose.stderr.strip().splitlines() == [line for line in loose.stderr.strip().splitlines()
                                                 if line.startswith("warning: ")]
    assert "only 6 training water year(s)" in loose.stderr
    runs = tmp_path / "runs"
    refused = runner.invoke(app, ["train", str(tmp_path / "s.yaml"), *FAST, "--runs-dir", str(runs), "--strict"])
    one_error(refused, "only 6 training water year(s)")
    assert not runs.exists() or not any(runs.iterdir())
    trained = runner.invoke(app, ["train", str(tmp_path / "s.yaml"), *FAST, "--runs-dir", str(runs), "--name", "s",
                                  "--quiet"])
    assert trained.exit_code == 0, trained.stderr
    assert "warning: only 6 training water year(s)" in trained.stderr
    lines = csv.read_text().splitlines()  # the first day's flow changed
    lines[1] = lines[1].split(",")[0] + ",123"
    csv.write_text("\n".join(lines) + "\n")
    changed = runner.invoke(app, ["evaluate", "s", "--episodes", "1", "--baselines", "none", "--runs-dir", str(runs)])
    one_error(changed, "short.csv changed since the run recorded it", "--allow-changed-inflow")
    changed = runner.invoke(app, ["resume", "s", "--total-frames", "512", "--runs-dir", str(runs)])
    one_error(changed, "short.csv changed since the run recorded it", "--allow-changed-inflow")


def test_flood_zone_prints_and_bad_options_are_one_line(runner, tmp_path: Path) -> None:
    base = Path(__file__).resolve().parents[2] / "configs" / "base.yaml"
    result = runner.invoke(app, ["flood-zone", str(base)])
    assert result.exit_code == 0
    expected = [line.strip() for line in base.read_text().splitlines()
                if line.strip().startswith(("flood_zone_hm3:", "rule_curve:"))]
    assert [line for line in result.stdout.splitlines() if not line.startswith("#")] == expected
    one_error(runner.invoke(app, ["flood-zone", str(base), "--points", "0"]), "--points 0")
    one_error(runner.invoke(app, ["flood-zone", str(base), "--rule-curve", "nonsense"]), "--rule-curve 'nonsense'")
    one_error(runner.invoke(app, ["flood-zone", str(tmp_path / "missing.yaml")]), "config file not found")
