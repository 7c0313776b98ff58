"""`init` on rivers it has never seen: every config it writes trains and evaluates with no edit; the record's
summary and the design; `flood-zone` rewrites a config's zone in place; a changed record is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.commands.init import flood_zone, init
from reservoir_rl.commands.train import resume, train
from reservoir_rl.config import load_config
from reservoir_rl.design.config_text import replace_flow_value
from reservoir_rl.design.plausibility import PlausibilityError
from reservoir_rl.errors import UserError
from reservoir_rl.monitor.live import make_view

from rivers import flashy_river, smooth_river, write_csv, write_rdb

# training small enough for a test; the reservoir, inflow, reward and baselines are init's, unedited
FAST = [
    "train.total_frames=2048", "train.n_envs=8", "train.init_random_frames=512", "train.buffer_size=4096",
    "train.eval_every_frames=1024", "train.eval_episodes=2", "train.checkpoint_every_frames=1024",
    "agent.hidden_sizes=[32]", "logging.baseline_levels=false", "logging.figure_every_frames=1000000",
    "logging.histogram_every_frames=1000000", "baselines.sdp.storage_levels=40",
]


@pytest.mark.parametrize("mean_cms, river", [(0.5, smooth_river), (5000.0, flashy_river), (40.0, flashy_river)])
def test_an_init_config_trains_and_evaluates_with_no_edit(tmp_path: Path, mean_cms: float, river) -> None:
    record = write_rdb(river(mean_cms, n_years=14), tmp_path / "river.rdb")
    result = init(record, out=tmp_path / "river.yaml", strict=True)  # strict: no plausibility warning
    assert result.warnings == []
    warnings: list[str] = []
    summary = train(result.config_path, FAST, make_view("quiet"), tmp_path / "runs", "r", strict=True,
                    on_warning=warnings.append)
    assert summary.stopped_by == "done" and summary.frames == 2048 and warnings == []
    report = evaluate("r", episodes=4, baselines="sop,hedging,rule,sdp", runs_dir=tmp_path / "runs", strict=True)
    failures = {name: float(values["failures"].sum()) for name, values in report.per_episode.items()}
    assert set(failures) == {"agent", "sop", "hedging", "rule", "sdp"}
    assert failures["sdp"] == 0, failures  # the design leaves no unavoidable failure: the SDP avoids them all


@pytest.mark.parametrize("river", [smooth_river, flashy_river])
@pytest.mark.parametrize("mean_cms", [0.5, 5.0, 500.0, 5000.0])
def test_the_design_scales_with_the_river_and_raises_no_warning(tmp_path: Path, mean_cms: float, river) -> None:
    result = init(write_csv(river(mean_cms), tmp_path / "river.csv"), out=tmp_path / "river.yaml")
    d = result.design
    assert result.warnings == []
    assert 0.05 <= d.storage_ratio_years <= 1.5
    # release + spillway pass the largest training day with its flood part × 1.5, the reservoir full
    assert d.release_capacity_cms + d.spillway_capacity_cms >= d.largest_inflow_cms * (1 - 1e-3)
    assert d.env_flow_cms < result.summary.exceeded_cms[0.5] < d.release_capacity_cms
    assert 0 < d.turbine_capacity_cms <= d.release_capacity_cms
    assert d.dead_storage_hm3 < d.min_operating_hm3 < min(s for _, s in d.flood_zone_hm3) < d.capacity_hm3
    assert result.firm_yield_cms > d.release_capacity_cms / 10  # above the first release level
    config = load_config(result.config_path)
    assert config.env.reservoir.capacity_hm3 == d.capacity_hm3
    assert config.inflow.source == "csv" and Path(config.inflow.path) == (tmp_path / "river.csv").resolve()


def test_the_config_is_written_beside_the_record_with_a_relative_path(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_rdb(smooth_river(20.0), data / "gauge.rdb")
    monkeypatch.chdir(tmp_path)
    result = init(Path("data") / "gauge.rdb")
    assert result.config_path == Path("gauge.yaml") and result.record_format == "rdb"
    raw = yaml.safe_load(Path("gauge.yaml").read_text())
    assert raw["inflow"]["path"] == "data/gauge.rdb" and raw["inflow"]["source"] == "rdb"
    monkeypatch.chdir(data)  # another folder: the path is the config file's, not the working directory's
    assert load_config(tmp_path / "gauge.yaml").inflow.path == str(data / "gauge.rdb")
    with pytest.raises(UserError, match="file exists; choose another name or add --force"):
        init(data / "gauge.rdb", out=tmp_path / "gauge.yaml")


def test_the_summary_names_the_split_the_floods_and_the_dry_spells(tmp_path: Path) -> None:
    record = flashy_river(10.0, n_years=16)
    result = init(write_csv(record, tmp_path / "r.csv"), out=tmp_path / "r.yaml", heldout_water_years=5)
    s = result.summary
    assert s.heldout_years == s.complete_years[-5:] and s.train_years == s.complete_years[:-5]
    assert s.largest_floods[0][1] == pytest.approx(result.design.largest_inflow_cms)
    assert [v for _, v in s.largest_floods] == sorted((v for _, v in s.largest_floods), reverse=True)
    assert s.exceeded_cms[0.95] == pytest.approx(result.design.env_flow_cms, rel=1e-3)
    assert s.driest_spell[2] <= s.driest_year[1]


def test_flood_zone_rewrites_only_the_zone_and_the_rule_curve(tmp_path: Path) -> None:
    result = init(write_csv(flashy_river(30.0), tmp_path / "r.csv"), out=tmp_path / "r.yaml")
    text = result.config_path.read_text()
    capacity = load_config(result.config_path).env.reservoir.capacity_hm3
    edited = replace_flow_value(text, "flood_zone_hm3", f"{capacity * 0.8:.4g}", "r.yaml")  # a constant zone
    edited = replace_flow_value(edited, "rule_curve", "[[0, 0.5]]", "r.yaml")
    result.config_path.write_text(edited)
    printed = flood_zone(result.config_path)
    assert not printed.written and result.config_path.read_text() == edited
    written = flood_zone(result.config_path, write=True)
    after = result.config_path.read_text()
    assert after == text  # the zone and rule curve init made, every comment and other line as they were
    assert written.flood_zone_hm3 == result.design.flood_zone_hm3 and written.rule_curve == result.design.rule_curve


def test_flood_zone_reproduces_the_bundled_configs() -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    for name in ("base.yaml", "trenton.yaml"):
        config = load_config(configs / name)
        result = flood_zone(configs / name)
        assert config.env.reservoir.flood_zone_hm3 == result.flood_zone_hm3
        assert config.baselines.rule_curve == result.rule_curve


def test_strict_init_writes_nothing(tmp_path: Path) -> None:
    record = write_csv(smooth_river(10.0, n_years=8), tmp_path / "short.csv")  # 8 years from Oct 1: 7 complete water years, 1 held out
    with pytest.raises(PlausibilityError, match=r"only 7 training water year\(s\).*\[--strict\]"):
        init(record, out=tmp_path / "short.yaml", strict=True, heldout_water_years=1)
    assert not (tmp_path / "short.yaml").exists()
    result = init(record, out=tmp_path / "short.yaml", heldout_water_years=1)
    assert any("only 7 training water year(s)" in w for w in result.warnings)


def test_resume_and_evaluate_refuse_a_changed_record(tmp_path: Path) -> None:
    csv = write_csv(smooth_river(20.0, n_years=12), tmp_path / "r.csv")
    result = init(csv, out=tmp_path / "r.yaml")
    fast = [f if not f.startswith("train.total_frames") else "train.total_frames=1024" for f in FAST]
    train(result.config_path, fast, make_view("quiet"), tmp_path / "runs", "r")
    metadata = yaml.safe_load((tmp_path / "runs" / "r" / "metadata.yaml").read_text())
    assert metadata[-1]["inflow"] == {"path": str(csv.resolve()), "sha256": hashlib.sha256(csv.read_bytes()).hexdigest()}
    lines = csv.read_text().splitlines()  # one value changed
    lines[1] = lines[1].split(",")[0] + ",999"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"r\.csv changed since the run recorded it .*--allow-changed-inflow"):
        resume("r", make_view("quiet"), tmp_path / "runs", total_frames=1536)
    with pytest.raises(UserError, match="--allow-changed-inflow"):
        evaluate("r", episodes=2, baselines="none", runs_dir=tmp_path / "runs")
    report = evaluate("r", episodes=2, baselines="none", runs_dir=tmp_path / "runs", allow_changed_inflow=True)
    assert report.episodes == 2
    summary = resume("r", make_view("quiet"), tmp_path / "runs", total_frames=1536, allow_changed_inflow=True)
    assert summary.frames == 1536
    # the resume recorded the record it went on with: the next check compares with that one
    evaluate("r", episodes=2, baselines="none", runs_dir=tmp_path / "runs")


@pytest.mark.parametrize("n_training, expected", [(0, 0), (1, 0), (11, 0), (12, 2), (17, 2), (18, 3), (29, 4),
                                                  (30, 5), (59, 5), (200, 5)])
def test_validation_years_one_per_six_training_years_at_most_five_none_below_two(n_training, expected) -> None:
    from reservoir_rl.commands.init import default_validation_years

    assert default_validation_years(n_training) == expected


@pytest.mark.parametrize("n_years", [10, 16, 30])  # 0, 2 and 3 validation years
def test_init_keeps_validation_years_out_of_training_by_the_rule(tmp_path: Path, n_years: int) -> None:
    from reservoir_rl.commands.init import default_validation_years
    from reservoir_rl.env.reservoir_env import make_env

    csv = write_csv(flashy_river(10.0, n_years=n_years), tmp_path / "r.csv")
    result = init(csv, out=tmp_path / "r.yaml")
    s = result.summary
    n_validation = default_validation_years(len(s.train_years))
    config = load_config(result.config_path)
    assert config.inflow.validation_water_years == n_validation
    assert s.validation_years == s.train_years[len(s.train_years) - n_validation:][:n_validation]
    text = result.config_path.read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("validation_water_years:"))
    assert ("kept out of training" in line) == (n_validation > 0), line
    env = make_env(config, "validation")
    if n_validation:
        assert env.water_years == s.validation_years
        assert make_env(config, "train").water_years == s.train_years[:-n_validation]
    assert make_env(config, "train").reference_inflow_cms == pytest.approx(s.reference_inflow_cms, rel=1e-12)
