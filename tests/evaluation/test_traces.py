"""`evaluate --trace`: the day-by-day rows of the traced episodes, for every policy."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict

import pytest
import shutil
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.env.reward import COMPONENTS
from reservoir_rl.errors import UserError
from reservoir_rl.evaluation.traces import DEFAULT_TRACE_EPISODES, TRACE_COLUMNS, TRACE_FILE
from reservoir_rl.units import HM3_PER_CMS_DAY

EPISODES = 4
BASELINES = "sop,rule,dp"


def read_trace(path):
    """The trace as (columns, rows): numbers as floats, empty cells as None (what pandas.read_csv reads as NaN)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            for key, value in row.items():
                if value == "":
                    row[key] = None
                elif key not in ("policy", "date", "guard_override"):
                    row[key] = float(value)
            rows.append(row)
    return tuple(reader.fieldnames), rows


def by_episode(rows):
    """(policy, episode) -> that episode's rows in file order."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["policy"], int(row["episode"]))].append(row)
    return groups


@pytest.fixture(scope="module")
def runs_copy(eval_run, tmp_path_factory):
    """A copy of the tiny run's runs folder: these evaluations write its evaluation.json."""
    copy = tmp_path_factory.mktemp("trace_runs") / "runs"
    shutil.copytree(eval_run[0], copy)
    return copy


@pytest.fixture(scope="module")
def traced(runs_copy, tmp_path_factory):
    """Every episode of a 4-episode evaluation traced (the default for few episodes), with its JSON (also
    the run's evaluation.json)."""
    runs_dir = runs_copy
    folder = tmp_path_factory.mktemp("trace")
    report = evaluate("tiny", episodes=EPISODES, baselines=BASELINES, runs_dir=runs_dir, out=folder / "results.json",
                      trace=folder / "traces", force=True)
    return report, json.loads((folder / "results.json").read_text()), read_trace(folder / "traces" / TRACE_FILE)


def test_trace_has_the_documented_columns_for_every_policy_and_episode(traced):
    report, _, (columns, rows) = traced
    assert columns == TRACE_COLUMNS
    assert report.traced_episodes == list(range(EPISODES))
    groups = by_episode(rows)
    assert set(groups) == {(p, e) for p in ["agent", *BASELINES.split(",")] for e in range(EPISODES)}
    for (policy, episode), days in groups.items():
        # one row per day the episode lasted, dated from its start day
        length = report.per_episode[policy]["length"]
        assert len(days) == int(length.reshape(-1, EPISODES)[0, episode])
        assert [d["day"] for d in days] == list(range(1, len(days) + 1))
        dates = [dt.date.fromisoformat(d["date"]) for d in days]
        assert str(dates[0]) == report.episode_info["start_date"][episode]
        assert all((b - a).days == 1 for a, b in zip(dates, dates[1:]))
        if policy == "agent":  # the agent's seed; it runs under its release guard
            assert {d["seed"] for d in days} == set(report.seeds)
            assert {d["guard_override"] for d in days} <= {"true", "false"}
        else:  # a baseline does not depend on the seed; these ran without the guard
            assert {d["seed"] for d in days} == {None} and {d["guard_override"] for d in days} == {None}


def test_storage_follows_the_mass_balance_from_day_to_day(traced):
    _, _, (_, rows) = traced
    for days in by_episode(rows).values():
        for d in days:
            end = (d["storage_hm3"] + (d["inflow_cms"] - d["release_cms"] - d["spill_cms"]) * HM3_PER_CMS_DAY
                   - d["evaporation_hm3"])
            assert end == pytest.approx(d["storage_end_hm3"], abs=2e-3)  # rounded to 1,000 m³ and 0.001 m³/s
            assert d["release_cms"] <= d["release_level_cms"] + 1e-3  # never more than the level asks
        assert [d["storage_hm3"] for d in days[1:]] == [d["storage_end_hm3"] for d in days[:-1]]


def test_summed_rewards_are_the_episode_returns_of_the_json(traced):
    _, document, (_, rows) = traced
    for (policy, episode), days in by_episode(rows).items():
        returns = document["policies"][policy]["episodes"]["return"]
        returns = returns[0] if policy == "agent" else returns  # the agent's are (seeds, episodes)
        assert sum(d["reward"] for d in days) == pytest.approx(returns[episode], abs=1e-3)
        for d in days:  # the weighted components add up to the reward
            assert sum(d[f"reward_{name}"] for name in COMPONENTS) == pytest.approx(d["reward"], abs=1e-5)


def test_start_date_picks_that_episode(runs_copy, traced, tmp_path):
    runs_dir = runs_copy
    report, _, _ = traced
    start = report.episode_info["start_date"][2]
    evaluate("tiny", episodes=EPISODES, baselines="sop", runs_dir=runs_dir, trace=tmp_path, start_dates=[start])
    _, rows = read_trace(tmp_path / TRACE_FILE)
    first = report.episode_info["start_date"].index(start)  # the first evaluated episode starting that day
    assert {r["episode"] for r in rows} == {first} and rows[0]["date"] == start


def test_a_start_date_no_evaluated_episode_has_lists_the_nearest(runs_copy, traced, tmp_path):
    runs_dir = runs_copy
    report, _, _ = traced
    starts = set(report.episode_info["start_date"])
    # a date of the held-out years that none of the 4 episodes starts on
    candidate = dt.date.fromisoformat(sorted(starts)[0]) + dt.timedelta(days=1)
    while str(candidate) in starts:
        candidate += dt.timedelta(days=1)
    with pytest.raises(UserError, match=r"none of the 4 evaluated episodes starts on it; nearest starts: \d{4}-"):
        evaluate("tiny", episodes=EPISODES, baselines="sop", runs_dir=runs_dir, trace=tmp_path,
                 start_dates=[str(candidate)])
    with pytest.raises(UserError, match=r"no episode of the held-out water years .* nearest: \d{4}-"):
        evaluate("tiny", episodes=EPISODES, baselines="sop", runs_dir=runs_dir, trace=tmp_path, start_dates=["1950-01-01"])
    assert not (tmp_path / TRACE_FILE).exists()


def test_cli_errors_are_one_line(runs_copy, tmp_path):
    runs_dir = runs_copy
    runner = CliRunner()
    for args, message in [
        (["--start-date", "2001-02-30", "--trace", str(tmp_path)], "--start-date '2001-02-30': not a date"),
        (["--start-date", "2001-02-01"], "--start-date picks the episodes --trace writes"),
    ]:
        result = runner.invoke(app, ["evaluate", "tiny", "--runs-dir", str(runs_dir), "--episodes", "2", *args])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(app, ["evaluate", "tiny", "--runs-dir", str(runs_dir), "--trace", str(tmp_path / "a-file")])
    assert result.exit_code != 0 and "is a file, not a folder" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["plot", "tiny", "--runs-dir", str(runs_dir), "--out", str(tmp_path / "f"),
                                 "--start-date", "1996-13-01"])
    assert result.exit_code != 0 and "--start-date '1996-13-01': not a date" in result.output
    assert not (tmp_path / "f").exists()
    (tmp_path / TRACE_FILE).write_text("mine\n")
    result = runner.invoke(app, ["evaluate", "tiny", "--runs-dir", str(runs_dir), "--episodes", "2", "--trace", str(tmp_path)])
    assert result.exit_code != 0 and "trace.csv exists" in result.output
    assert (tmp_path / TRACE_FILE).read_text() == "mine\n"


def test_default_traces_only_the_first_of_many_episodes(eval_run, tmp_path):
    _, run_dir = eval_run
    checkpoint = run_dir / "checkpoints" / "best.pt"  # a checkpoint file: no evaluation.json is written
    report = evaluate(str(checkpoint), episodes=DEFAULT_TRACE_EPISODES + 1, baselines="none", trace=tmp_path)
    assert report.traced_episodes == [0]
    assert {r["episode"] for r in read_trace(tmp_path / TRACE_FILE)[1]} == {0}


def test_plot_start_date_draws_the_traced_episode_as_evaluate_ran_it(runs_copy, traced):
    """`plot --start-date`: the trajectory figure of that episode of the run's evaluation.json, the agent
    under its release guard as in the trace: its storage line is the trace's end-of-day storage."""
    from reservoir_rl.commands.plot import PlotResult, heldout_figures
    from reservoir_rl.evaluation.run_figures import read_evaluation
    from reservoir_rl.runs.folders import RunDir

    report, _, (_, rows) = traced
    episode = 3
    start = report.episode_info["start_date"][episode]
    run = RunDir(runs_copy / "tiny")
    document = read_evaluation(run.path / "evaluation.json")
    figures, _ = heldout_figures(run, PlotResult(run.path), "tiny", dt.date.fromisoformat(start), document)
    figure = figures["trajectory"]
    assert f"episode {episode + 1} of {EPISODES}, from {start}" in figure._suptitle.get_text()
    storage = {line.get_label(): line.get_ydata() for line in figure.axes[0].get_lines()}
    days = [r for r in rows if r["policy"] == "agent" and r["episode"] == episode]
    assert list(storage["agent"][: len(days)]) == pytest.approx([d["storage_end_hm3"] for d in days], abs=1e-3)
    sop = [r for r in rows if r["policy"] == "sop" and r["episode"] == episode]
    assert list(storage["SOP"][: len(sop)]) == pytest.approx([d["storage_end_hm3"] for d in sop], abs=1e-3)


def test_a_multi_seed_run_traces_every_seeds_agent(runs_copy, tmp_path):
    """Two seeds (copies of one run): one set of agent rows per seed, each summing to that seed's returns."""
    import yaml

    group = tmp_path / "pair"
    group.mkdir()
    (group / "seeds.yaml").write_text(yaml.safe_dump({"format": "reservoir-rl-seeds", "seeds": [11, 12]}))
    shutil.copy(runs_copy / "tiny" / "config.yaml", group / "config.yaml")
    for seed in (11, 12):
        shutil.copytree(runs_copy / "tiny", group / f"seed-{seed}")
    report = evaluate(str(group), episodes=2, baselines="sop", runs_dir=runs_copy, trace=tmp_path / "t",
                      out=tmp_path / "r.json")
    _, rows = read_trace(tmp_path / "t" / TRACE_FILE)
    document = json.loads((tmp_path / "r.json").read_text())
    assert {(r["policy"], r["seed"]) for r in rows} == {("agent", 11.0), ("agent", 12.0), ("sop", None)}
    returns = document["policies"]["agent"]["episodes"]["return"]  # (seeds, episodes)
    for i, seed in enumerate(report.seeds):
        for episode in range(2):
            days = [r["reward"] for r in rows if r["seed"] == seed and r["episode"] == episode]
            assert sum(days) == pytest.approx(returns[i][episode], abs=1e-3)
