"""`plot`: figures of a run from its TensorBoard events, best checkpoint and evaluation.json."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree

import numpy as np
import torch
import pytest
from typer.testing import CliRunner

from reservoir_rl.catalog import BASELINE_NAMES
from reservoir_rl.cli import app
from reservoir_rl.errors import UserError
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.runs.locate import locate_checkpoint
from reservoir_rl.commands.plot import FIGURE_NAMES, plot
from reservoir_rl.runs.events import read_scalars

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plotted(eval_run, tmp_path_factory):
    """A copy of the run caught "while training" (its newest event file ends in a cut record), with an
    evaluation.json, plotted once through the CLI (PNG, default folder)."""
    runs_dir, _ = eval_run
    copy = tmp_path_factory.mktemp("plot") / "runs"
    shutil.copytree(runs_dir, copy)
    events = sorted((copy / "tiny" / "tensorboard").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_size)
    data = events[-1].read_bytes()
    events[-1].write_bytes(data[: len(data) - 37])  # the last record is cut in the middle, as while writing
    evaluate("tiny", episodes=4, runs_dir=copy, force=True)  # (replacing any larger evaluation.json of the copy)
    result = CliRunner().invoke(app, ["plot", "tiny", "--runs-dir", str(copy)])
    return copy / "tiny", result


def test_plot_writes_every_figure_as_png(plotted):
    run_dir, result = plotted
    assert result.exit_code == 0, result.output
    for name in FIGURE_NAMES:
        path = run_dir / "figures" / f"{name}.png"
        assert f"wrote {path}" in result.output.replace("\n", "")
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    assert "Traceback" not in result.output
    assert "best.pt (frame" in result.output.replace("\n", "")
    # one run: exactly its figures (no figure comparing runs)
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == sorted(f"{n}.png" for n in FIGURE_NAMES)
    # the cut event file was still read up to its last complete record
    assert len(read_scalars(run_dir / "tensorboard")["train/loss"][0]) > 1


def test_scalars_come_from_every_event_file(eval_run):
    _, run_dir = eval_run
    scalars = read_scalars(run_dir / "tensorboard")
    steps, values = scalars["eval/return"]
    assert steps.tolist() == [256, 512, 768, 1024]  # eval_every_frames 256 up to 1,024 frames
    assert np.isfinite(values).all()
    assert {"episode/return_mean", "train/loss", "train/epsilon", "reservoir/energy_gwh"} <= set(scalars)
    assert read_scalars(run_dir / "no-such-folder") == {}


def test_baseline_reference_levels_are_those_of_the_training_evaluation(plotted, tmp_path):
    run_dir, _ = plotted
    result = plot(run_dir, out=tmp_path / "svg", fmt="svg")
    # the same episodes as training's own evaluation: `evaluate --years validation` with the default seed
    # and eval_episodes (4) episodes gives the same baseline means; the held-out episodes do not
    heldout = json.loads((run_dir / "evaluation.json").read_text())
    validation = evaluate(run_dir, episodes=4, years="validation", baselines=list(result.baseline_returns),
                          out=tmp_path / "validation.json")
    (run_dir / "evaluation.json").write_text(json.dumps(heldout))  # the held-out document, as the fixture left it
    assert heldout["episodes"] == 4 and heldout["years"] == "heldout"
    for name, value in result.baseline_returns.items():
        assert value == pytest.approx(validation.summary[name]["return"].value, rel=1e-6)
    assert any(value != pytest.approx(heldout["policies"][name]["summary"]["return"]["mean"], rel=1e-6)
               for name, value in result.baseline_returns.items())
    assert result.baseline_returns["dp"] >= max(result.baseline_returns.values()) - 1e-6
    assert [p.stem for p in result.files] == FIGURE_NAMES
    for path in result.files:
        assert path.suffix == ".svg" and path.parent == tmp_path / "svg"
        assert ElementTree.parse(path).getroot().tag.endswith("svg")


def test_a_run_without_best_checkpoint_uses_last(eval_run, tmp_path):
    runs_dir, _ = eval_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(runs_dir / "tiny" / "checkpoints", copy / "checkpoints")
    (copy / "checkpoints" / "best.pt").unlink()
    assert locate_checkpoint("tiny", copy.parent).path == copy / "checkpoints" / "last.pt"
    (copy / "checkpoints" / "last.pt").unlink()
    for frame in (copy / "checkpoints").glob("*.pt"):
        frame.unlink()
    with pytest.raises(UserError, match="no checkpoint yet"):
        locate_checkpoint("tiny", copy.parent)


def test_user_folder_files_are_not_overwritten_without_force(eval_run, tmp_path):
    runs_dir, _ = eval_run
    mine = tmp_path / "learning_curve.png"
    mine.write_bytes(b"my own figure")
    with pytest.raises(UserError, match="learning_curve.png exists"):
        plot("tiny", out=tmp_path, runs_dir=runs_dir)
    assert mine.read_bytes() == b"my own figure"
    with pytest.raises(UserError, match="--format 'jpg'"):
        plot("tiny", fmt="jpg", runs_dir=runs_dir)


def test_trajectory_figure_of_policies_whose_episodes_end_on_different_days(eval_run):
    from reservoir_rl.catalog import make_baseline
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.evaluation.rollout import EvaluationResult, evaluate_policy
    from reservoir_rl.runs.locate import read_checkpoint
    from reservoir_rl.evaluation.figures import evaluation_figures

    _, run_dir = eval_run
    _, config = read_checkpoint(run_dir / "checkpoints" / "last.pt")
    env = make_env(config, "heldout", n_envs=2, seed=5)
    sop = evaluate_policy(env, make_baseline("sop", env, config), 5)
    # the same trajectory cut after 10 days, as if the episode had failed on day 10
    cut = EvaluationResult({**sop.metrics, "length": torch.full_like(sop.metrics["length"], 10.0)}, sop.trajectory)
    figures = evaluation_figures(cut, env, others={"SOP": sop})
    storage_axis = figures["trajectory"].get_axes()[0]
    lines = {line.get_label(): np.asarray(line.get_ydata(), dtype=float) for line in storage_axis.get_lines()}
    full = int(sop.metrics["length"][0])
    assert len(lines["agent"]) == len(lines["SOP"]) == full > 10
    assert np.isfinite(lines["agent"][:10]).all() and np.isnan(lines["agent"][10:]).all()
    assert np.allclose(lines["agent"][:10], lines["SOP"][:10])
    # each figure says which and how many episodes it shows
    assert figures["trajectory"]._suptitle.get_text().startswith("Episode 1 of 2, from ")
    assert figures["action_histogram"].get_axes()[0].get_title() == "Release levels chosen: share of the days of 2 episodes"
    named = evaluation_figures(sop, env, episodes="held-out")
    assert named["trajectory"]._suptitle.get_text().startswith("Held-out episode 1 of 2, from ")
    assert named["action_histogram"].get_axes()[0].get_title() == \
        "Release levels chosen: share of the days of 2 held-out episodes"
    assert named["reward_breakdown"].get_axes()[0].get_title() == \
        "Reward by component: mean per episode over 2 held-out episodes"


def test_a_failed_episode_is_marked_where_and_how_it_failed(eval_run):
    """The env's failure flags of the episode drawn become a cross on the failing policy's storage line,
    labelled with the kind and the day (a flood failure set on day 7 of a copy of SOP's trajectory)."""
    from reservoir_rl.catalog import make_baseline
    from reservoir_rl.env.reservoir_env import make_env
    from reservoir_rl.evaluation.figures import episode_failure, evaluation_figures
    from reservoir_rl.evaluation.rollout import EvaluationResult, evaluate_policy
    from reservoir_rl.runs.locate import read_checkpoint

    _, run_dir = eval_run
    _, config = read_checkpoint(run_dir / "checkpoints" / "last.pt")
    env = make_env(config, "heldout", n_envs=2, seed=5)
    sop = evaluate_policy(env, make_baseline("sop", env, config), 5)
    assert episode_failure(sop) is None
    failed = sop.trajectory.clone()
    flags = failed.get(("next", "drought_failure")).clone()
    flags[0, 6] = True
    failed.set(("next", "drought_failure"), flags)
    cut = EvaluationResult({**sop.metrics, "length": torch.full_like(sop.metrics["length"], 7.0)}, failed)
    assert episode_failure(cut) == (6, "drought")
    storage_axis = evaluation_figures(cut, env, others={"SOP": sop})["trajectory"].get_axes()[0]
    labels = [line.get_label() for line in storage_axis.get_lines()]
    assert "agent: drought failure, day 7" in labels and not any(label.startswith("SOP:") for label in labels)


