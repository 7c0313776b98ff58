"""`evaluate`: a paired comparison of the greedy agent with the baselines, with bootstrap intervals."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from reservoir_rl.errors import UserError
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.catalog import HEADLINE_METRICS
from reservoir_rl.commands.evaluate import evaluate

EPISODES = 8
POLICIES = ["agent", "sop", "hedging", "rule", "sdp", "mpc", "dp", "dp_end"]


@pytest.fixture(scope="module")
def evaluated(eval_run, tmp_path_factory):
    runs_dir, run_dir = eval_run
    folder = tmp_path_factory.mktemp("evaluate")
    report = evaluate("tiny", episodes=EPISODES, runs_dir=runs_dir, out=folder / "results.json", csv_path=folder / "episodes.csv",
                      force=True)  # (the run's evaluation.json is checked below: replace any larger one)
    return report, folder, run_dir


def test_every_policy_runs_on_the_same_traces(evaluated):
    report, _, _ = evaluated
    assert report.policies == POLICIES and list(report.agent_results) == report.seeds and len(report.seeds) == 1
    agent_result = report.agent_results[report.seeds[0]]
    agent = agent_result.trajectory
    starts = agent.get("record_index")[:, 0]
    assert len(set(starts.tolist())) > 1  # different traces across episodes ...
    for name in POLICIES[1:]:
        other = report.results[name].trajectory
        # ... but the same start day and initial storage for every policy
        assert torch.equal(other.get("record_index")[:, 0], starts)
        assert torch.equal(other.get("storage_hm3")[:, 0], agent.get("storage_hm3")[:, 0])
        # and the same inflow day by day while both episodes last
        days = min(agent.shape[1], other.shape[1])
        common = (report.results[name].metrics["length"].unsqueeze(1) > torch.arange(days)) & (
            agent_result.metrics["length"].unsqueeze(1) > torch.arange(days)
        )
        a_inflow = agent.get(("next", "inflow_hm3"))[:, :days]
        o_inflow = other.get(("next", "inflow_hm3"))[:, :days]
        assert torch.equal(a_inflow[common], o_inflow[common])
    totals = report.episode_info["trace_inflow_hm3"]
    assert len(totals) == EPISODES and all(t > 0 for t in totals)


def test_perfect_foresight_dp_bounds_every_policy_on_every_episode(evaluated):
    report, _, _ = evaluated
    dp = report.per_episode["dp"]["return"]
    dp_end = report.per_episode["dp_end"]["return_end_valued"]
    for name in POLICIES:
        assert bool((dp >= report.per_episode[name]["return"] - 1e-4).all()), name
        # the DP valuing the storage left bounds every policy on return + end-storage value
        assert bool((dp_end >= report.per_episode[name]["return_end_valued"] - 1e-3).all()), name


def test_gap_shares_on_return_plus_end_storage_value(evaluated):
    report, folder, _ = evaluated
    valued = {name: float(report.per_episode[name]["return_end_valued"].mean()) for name in POLICIES}
    for name in POLICIES:  # the score is the return plus the episode's end-storage value
        values = report.per_episode[name]
        torch.testing.assert_close(values["return_end_valued"], values["return"] + values["end_storage_value"])
    assert report.gap_share_end.value == pytest.approx(
        (valued["agent"] - valued["sop"]) / (valued["dp_end"] - valued["sop"]))
    best = report.best_baseline
    assert report.gap_share_best_end.value == pytest.approx(
        (valued["agent"] - valued[best]) / (valued["dp_end"] - valued[best]))
    assert report.differences["sdp"]["return_end_valued"].value == pytest.approx(valued["agent"] - valued["sdp"])
    document = json.loads((folder / "results.json").read_text())["end_valued"]
    assert document["upper_bound"] == "dp_end" and document["metric"] == "return_end_valued"
    assert document["gap_share"]["mean"] == pytest.approx(report.gap_share_end.value)
    assert document["gap_share_best_baseline"]["baseline"] == best


def test_intervals_bracket_the_means_and_the_means_are_episode_means(evaluated):
    report, _, _ = evaluated
    for name in POLICIES:
        for metric in HEADLINE_METRICS:
            estimate = report.summary[name][metric]
            values = report.per_episode[name][metric]
            assert estimate.value == pytest.approx(float(values.nanmean()), rel=1e-9, abs=1e-12)
            assert estimate.ci_low <= estimate.value + 1e-12 and estimate.value <= estimate.ci_high + 1e-12
    returns = report.per_episode["agent"]["return"]
    assert report.summary["agent"]["return"].ci_high > report.summary["agent"]["return"].ci_low or bool(
        (returns == returns[0]).all()
    )


def test_supply_metrics_follow_from_the_failure_days(evaluated):
    report, _, _ = evaluated
    for name in POLICIES:
        values = report.per_episode[name]
        expected = 1.0 - values["supply_failure_days"] / values["length"]
        assert torch.allclose(values["supply_reliability"], expected, atol=1e-6)
        assert bool(((values["supply_resilience"] >= 0) & (values["supply_resilience"] <= 1)).all())
    rule = report.per_episode["rule"]  # the rule curve holds water back: it fails the demand on this run
    assert float(rule["supply_failure_days"].sum()) > 0 and float(rule["supply_vulnerability_hm3"].max()) > 0


def test_gap_share_and_paired_differences(evaluated):
    report, _, _ = evaluated
    mean = {name: float(report.per_episode[name]["return"].mean()) for name in POLICIES}
    assert report.gap_share.value == pytest.approx((mean["agent"] - mean["sop"]) / (mean["dp"] - mean["sop"]))
    assert report.gap_share.ci_low <= report.gap_share.value <= report.gap_share.ci_high
    for name in POLICIES[1:]:
        diff = report.differences[name]["return"]
        assert diff.value == pytest.approx(mean["agent"] - mean[name])
        assert diff.ci_low <= diff.value <= diff.ci_high
        better = float((report.per_episode["agent"]["return"] > report.per_episode[name]["return"]).double().mean())
        assert report.agent_better[name] == better
    assert report.differences["dp"]["return"].ci_high <= 1e-4  # nobody beats perfect foresight


def test_the_csv_loads_as_typed_columns(evaluated):
    """What ``pandas.read_csv`` needs to type each column in one call: counts as integers, values rounded to
    the catalog's decimals (no float32 noise), the water year of each episode's start."""
    from reservoir_rl.catalog import METRICS

    report, folder, _ = evaluated
    with open(folder / "episodes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:5] == ["policy", "seed", "episode", "water_year", "start_date"]
    for row in rows:
        year, month = int(row["start_date"][:4]), int(row["start_date"][5:7])
        assert int(row["water_year"]) == (year + 1 if month >= 10 else year)
        for name, cell in row.items():
            if name in METRICS and cell != "":
                decimals = METRICS[name].decimals
                if decimals == 0:
                    assert cell.lstrip("-").isdigit(), (name, cell)  # "61", never "61.0"
                else:
                    assert "." in cell and len(cell.split(".")[1]) <= decimals, (name, cell)
        for name in ("initial_storage_hm3", "trace_inflow_hm3"):
            assert len(row[name].split(".")[1]) <= 3, (name, row[name])
    water_years = {int(row["water_year"]) for row in rows}
    assert water_years <= set(report.water_years)
    for name in ("failures", "flood_zone_days", "env_flow_deficit_days", "length", "success"):
        assert {row[name] for row in rows} <= {str(v) for v in range(0, 400)}, name
    agent = report.per_episode["agent"]["storage_mean_hm3"].reshape(-1)
    mine = [float(row["storage_mean_hm3"]) for row in rows if row["policy"] == "agent"]
    assert mine == [round(float(v), 3) for v in agent]


def test_json_and_csv_hold_the_same_numbers(evaluated):
    report, folder, run_dir = evaluated
    document = json.loads((folder / "results.json").read_text())
    assert document["episodes"] == EPISODES and document["years"] == "heldout"
    assert list(document["policies"]) == POLICIES
    seed = report.seeds[0]
    assert document["seeds"] == [seed] and document["per_seed"][str(seed)]["frames"] == report.per_seed[0].frames
    for name in POLICIES:
        policy = document["policies"][name]
        for metric in HEADLINE_METRICS:
            episodes = policy["episodes"][metric]
            if name == "agent":  # (seeds, episodes): one seed here
                assert len(episodes) == 1
                episodes = episodes[0]
            assert len(episodes) == EPISODES
            defined = [v for v in episodes if v is not None]
            if defined:
                assert policy["summary"][metric]["mean"] == pytest.approx(sum(defined) / len(defined))
    assert document["gap_share"]["mean"] == pytest.approx(report.gap_share.value)
    assert set(document["paired_difference"]) == set(POLICIES[1:])

    with open(folder / "episodes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == EPISODES * len(POLICIES)
    for row in rows:
        assert int(row["seed"]) == seed
        expected = report.per_episode[row["policy"]]["return"].reshape(-1, EPISODES)[0, int(row["episode"])]
        assert float(row["return"]) == pytest.approx(float(expected), abs=5e-4)  # rounded to 3 decimals
        assert row["start_date"] == document["episode_info"]["start_date"][int(row["episode"])]
    # traces: one start date / inflow total per episode, whatever the policy
    by_episode = {}
    for row in rows:
        by_episode.setdefault(row["episode"], set()).add((row["start_date"], row["trace_inflow_hm3"], row["initial_storage_hm3"]))
    assert all(len(v) == 1 for v in by_episode.values())
    # the run folder gets the same document for `plot`
    saved = json.loads((run_dir / "evaluation.json").read_text())
    assert saved["policies"]["agent"]["summary"] == document["policies"]["agent"]["summary"]


def test_default_seed_reproduces_the_training_evaluation(eval_run):
    runs_dir, run_dir = eval_run
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    episodes = best["config"]["train"]["eval_episodes"]
    report = evaluate(run_dir, episodes=episodes, years="validation", baselines="none", runs_dir=runs_dir)
    assert report.policies == ["agent"] and report.gap_share is None
    assert report.summary["agent"]["return"].value == pytest.approx(best["best_eval_return"], rel=1e-5)
    heldout = evaluate(run_dir, episodes=episodes, baselines="none", runs_dir=runs_dir)  # the default
    assert set(heldout.water_years).isdisjoint(report.water_years)
    other_seed = evaluate(run_dir, episodes=episodes, years="validation", baselines="none", runs_dir=runs_dir, seed=123)
    assert other_seed.episode_info["start_record_index"] != report.episode_info["start_record_index"]


def test_existing_files_are_refused_unless_forced(eval_run, tmp_path):
    runs_dir, run_dir = eval_run
    mine = tmp_path / "mine.json"
    mine.write_text("precious")
    with pytest.raises(UserError, match="exists.*--force"):
        evaluate(run_dir / "checkpoints" / "last.pt", episodes=2, baselines="sop", out=mine)
    with pytest.raises(UserError, match="exists"):
        evaluate(run_dir / "checkpoints" / "last.pt", episodes=2, baselines="sop", csv_path=mine)
    assert mine.read_text() == "precious"
    report = evaluate(run_dir / "checkpoints" / "last.pt", episodes=2, baselines="sop", out=mine, force=True)
    assert json.loads(mine.read_text())["episodes"] == 2
    assert report.run_dir is None and report.files == [mine]  # a checkpoint file: no evaluation.json written


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"episodes": 0}, "--episodes 0"),
        ({"years": "future"}, "--years 'future'"),
        ({"baselines": "sop,magic"}, "unknown baseline 'magic'"),
        ({"baselines": "sop,sop"}, "listed twice"),
    ],
)
def test_bad_arguments_are_one_line_errors(eval_run, kwargs, message):
    runs_dir, _ = eval_run
    with pytest.raises(UserError, match=message) as error:
        evaluate("tiny", runs_dir=runs_dir, **kwargs)
    assert "\n" not in str(error.value)


def test_train_years_and_all_years(eval_run):
    runs_dir, _ = eval_run
    train = evaluate("tiny", episodes=3, years="train", baselines="sop", runs_dir=runs_dir)
    everything = evaluate("tiny", episodes=3, years="all", baselines="sop", runs_dir=runs_dir)
    heldout_years = set(evaluate("tiny", episodes=1, baselines="none", runs_dir=runs_dir).water_years)
    assert not heldout_years & set(train.water_years)
    assert set(everything.water_years) == heldout_years | set(train.water_years)
    assert not math.isnan(train.summary["sop"]["return"].value)


def test_gap_from_the_best_implementable_baseline_chosen_on_validation_episodes(evaluated, eval_run):
    report, folder, _ = evaluated
    runs_dir, _ = eval_run
    # the choice: the baseline without foresight with the best mean return on the validation episodes
    assert set(report.validation_returns) == {"sop", "hedging", "rule", "sdp", "mpc"}  # dp knows the future
    assert report.best_baseline == max(report.validation_returns, key=report.validation_returns.get)
    validation = evaluate("tiny", episodes=report.validation_episodes, years="validation", baselines="sop,hedging,rule,sdp,mpc",
                          runs_dir=runs_dir)
    for name, mean in report.validation_returns.items():  # the same episodes as `evaluate --years validation`
        assert validation.summary[name]["return"].value == pytest.approx(mean, rel=1e-6)
    # the share: (R_agent − R_best) / (R_dp − R_best) on the held-out episodes
    mean = {name: float(report.per_episode[name]["return"].mean()) for name in POLICIES}
    best = report.best_baseline
    assert report.gap_share_best.value == pytest.approx((mean["agent"] - mean[best]) / (mean["dp"] - mean[best]))
    assert report.gap_share_best.ci_low <= report.gap_share_best.value <= report.gap_share_best.ci_high
    document = json.loads((folder / "results.json").read_text())
    entry = document["gap_share_best_baseline"]
    assert entry["baseline"] == best and entry["mean"] == pytest.approx(report.gap_share_best.value)
    assert set(entry) == {"baseline", "mean", "ci_low", "ci_high", "n"}
    assert document["best_baseline_choice"]["years"] == "validation"
    assert document["per_seed"][str(report.seeds[0])]["gap_share_best_baseline"]["baseline"] == best


def test_no_best_baseline_share_without_dp_or_candidates(eval_run):
    runs_dir, _ = eval_run
    without_dp = evaluate("tiny", episodes=2, baselines="sop,rule", runs_dir=runs_dir)
    assert without_dp.best_baseline is None and without_dp.gap_share_best is None
    only_dp = evaluate("tiny", episodes=2, baselines="dp", runs_dir=runs_dir)
    assert only_dp.best_baseline is None and only_dp.to_json()["gap_share_best_baseline"] is None


def test_a_target_below_the_first_release_level_is_noted(eval_run, tmp_path):
    """A SOP / hedging target below the first non-zero level: one note in the report, its JSON and the CLI."""
    from typer.testing import CliRunner

    from reservoir_rl.cli import app

    _, run_dir = eval_run
    payload = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    payload["config"]["baselines"]["target_release_cms"] = 12.5  # first level: 400 / 10 = 40 m³/s
    torch.save(payload, tmp_path / "small_target.pt")
    report = evaluate(tmp_path / "small_target.pt", episodes=2, baselines="sop", out=tmp_path / "small.json")
    assert len(report.notes) == 1 and "12.5 m³/s" in report.notes[0] and "40 m³/s" in report.notes[0]
    assert json.loads((tmp_path / "small.json").read_text())["notes"] == report.notes
    assert evaluate(tmp_path / "small_target.pt", episodes=2, baselines="rule,dp").notes == []
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "small_target.pt"), "--episodes", "2",
                                      "--baselines", "hedging"])
    assert result.exit_code == 0, result.output
    notes = []
    for line in result.output.splitlines():  # a note wraps at 80 columns, its continuation lines indented
        if line.startswith("note: "):
            notes.append(line)
        elif notes and line.startswith(" " * 6) and line.strip():
            notes[-1] += " " + line.strip()
    assert len(notes) == 1 and "below the first release level" in notes[0]


def test_no_note_for_a_target_of_several_levels(evaluated):
    report, folder, _ = evaluated
    assert report.notes == [] and json.loads((folder / "results.json").read_text())["notes"] == []


def test_failures_avoidable_and_guard_in_json_and_csv(evaluated):
    report, folder, _ = evaluated
    document = json.loads((folder / "results.json").read_text())
    with open(folder / "episodes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-4:] == ["failure_kind", "failure_day", "failure_avoidable", "failure_avoidable_in_window"]
    for name in POLICIES:
        policy = document["policies"][name]
        assert policy["guarded"] is (name == "agent")  # the agent runs with its guard; baselines without
        mine = [r for r in rows if r["policy"] == name]
        failed = [r for r in mine if r["failure_kind"] != "none"]
        assert policy["failed_episodes"] == len(failed) == sum(float(r["failures"]) > 0 for r in mine)
        assert policy["failures_avoidable"] == sum(r["failure_avoidable"] == "true" for r in failed)
        assert policy["failures_avoidable_in_window"] == sum(r["failure_avoidable_in_window"] == "true" for r in failed)
        assert all((r["failure_avoidable_in_window"] != "") == (r["failure_avoidable"] == "true") for r in mine)
        assert all(r["failure_kind"] in ("flood", "drought") and int(r["failure_day"]) >= 1 for r in failed)
        assert all(r["failure_day"] == "" and r["failure_avoidable"] == "" for r in mine if r["failure_kind"] == "none")
        share = [r["guard_override_fraction"] for r in mine]
        assert all(s == "" for s in share) if name != "agent" else all(0.0 <= float(s) <= 1.0 for s in share)
        assert all(len(s.partition(".")[2]) <= 4 for s in share)  # the catalog's 4 decimals, like reliability
    assert document["policies"]["dp"]["failures_avoidable"] == 0
    assert document["policies"]["dp"]["failures_avoidable_in_window"] == 0


def test_guard_baselines_guards_every_baseline_but_dp(eval_run):
    runs_dir, _ = eval_run
    report = evaluate("tiny", episodes=4, baselines="sop,mpc,dp", runs_dir=runs_dir, guard_baselines=True)
    assert report.guarded == {"agent": True, "sop": True, "mpc": True, "dp": False}
    assert "guard_override" in report.results["sop"].trajectory.keys()
    assert "guard_override" not in report.results["dp"].trajectory.keys()
    assert not math.isnan(report.summary["sop"]["guard_override_fraction"].value)
    assert math.isnan(report.summary["dp"]["guard_override_fraction"].value)
    plain = evaluate("tiny", episodes=4, baselines="sop", runs_dir=runs_dir)
    assert "guard_override" not in plain.results["sop"].trajectory.keys()
    # the guard only moves actions into the safe band: where it never acted, SOP's episode is unchanged
    untouched = ~report.results["sop"].trajectory.get("guard_override").any(-1)
    assert torch.equal(report.per_episode["sop"]["return"][untouched], plain.per_episode["sop"]["return"][untouched])


def test_a_checkpoint_written_before_the_reference_inflow_evaluates_as_it_was_trained(tmp_path):
    """Checkpoints written before ``env.forecast.reference_inflow_cms`` existed were trained with forecast
    features divided by the whole record's mean inflow (held-out years included) and hold neither the key
    nor the stored number: they still evaluate with that scale, reproducing their training's evaluation."""
    import yaml

    from reservoir_rl.commands.train import train
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.monitor.live import make_view
    from reservoir_rl.runs.checkpoint import REFERENCE_INFLOW_KEY, atomic_save
    from reservoir_rl.runs.locate import read_checkpoint
    from reservoir_rl.units import HM3_PER_CMS_DAY
    from tiny_training import tiny_config

    raw = tiny_config(env={"horizon_days": 60, "forecast": {"reference_inflow_cms": "whole_record"}},
                      train={"total_frames": 512, "eval_every_frames": 256, "eval_episodes": 4})
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(raw))
    summary = train(tmp_path / "old.yaml", [], make_view("quiet"), tmp_path / "runs", "old", command=["test"])
    best = load_checkpoint(summary.run_dir / "checkpoints" / "best.pt")
    # what a checkpoint of the version before looks like: no stored number, no key in its config
    del best[REFERENCE_INFLOW_KEY]
    del best["config"]["env"]["forecast"]["reference_inflow_cms"]
    old_file = tmp_path / "old-best.pt"
    atomic_save(best, old_file)
    _, config = read_checkpoint(old_file)
    assert config.env.forecast.reference_inflow_cms == "whole_record"
    env = make_env(config, "validation")
    assert env.mean_inflow_hm3 == pytest.approx(env.inflow.mean_inflow_cms * HM3_PER_CMS_DAY, rel=1e-12)
    assert env.mean_inflow_hm3 != pytest.approx(env.training_mean_inflow_hm3, rel=1e-6)
    report = evaluate(old_file, episodes=4, years="validation", baselines="none", runs_dir=tmp_path / "runs")
    assert report.summary["agent"]["return"].value == pytest.approx(best["best_eval_return"], rel=1e-5)
    from reservoir_rl.runs.policy import load_policy

    assert load_policy(old_file).reference_inflow_cms == env.inflow.mean_inflow_cms  # what export writes


def test_new_checkpoints_store_the_training_years_reference_inflow(eval_run):
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.runs.checkpoint import REFERENCE_INFLOW_KEY
    from reservoir_rl.runs.locate import read_checkpoint
    from reservoir_rl.runs.policy import load_policy

    _, run_dir = eval_run
    for name in ("best.pt", "last.pt"):
        payload, config = read_checkpoint(run_dir / "checkpoints" / name)
        assert payload["config"]["env"]["forecast"]["reference_inflow_cms"] is None  # the run's config, as written
        training_env = make_env(config, "train")
        assert payload[REFERENCE_INFLOW_KEY] == training_env.training_mean_inflow_cms
        assert config.env.forecast.reference_inflow_cms is None  # read back as written: the same mean again
        assert make_env(config, "heldout").mean_inflow_hm3 == training_env.mean_inflow_hm3
        assert load_policy(run_dir / "checkpoints" / name).reference_inflow_cms == payload[REFERENCE_INFLOW_KEY]
