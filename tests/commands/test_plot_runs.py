"""`plot RUN RUN …`: several runs' learning curves and held-out evaluations in one figure set."""

from __future__ import annotations

import shutil

import pytest
import yaml
from matplotlib.collections import PolyCollection
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.commands.plot_runs import RUNS_FIGURE_NAMES, plot_runs
from reservoir_rl.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def three_runs(eval_run, tmp_path_factory):
    """A copy of the tiny run (evaluated), a second one trained with another learning rate and n-step (not
    evaluated), and a two-seed run made of copies of both (seeds 11 and 12)."""
    from reservoir_rl.commands.train import train
    from reservoir_rl.monitor.live import make_view

    runs_dir, _ = eval_run
    root = tmp_path_factory.mktemp("plot_runs")
    copy = root / "runs"
    shutil.copytree(runs_dir, copy)
    config = root / "tiny.yaml"  # the tiny run's own resolved config
    shutil.copy(copy / "tiny" / "config.yaml", config)
    train(config, ["train.lr=0.0005", "agent.n_step=3"], make_view("quiet"), copy, "other", command=["reservoir-rl", "train"])
    evaluate("tiny", episodes=3, baselines="sop,dp", runs_dir=copy, force=True)
    group = copy / "pair"
    group.mkdir()
    (group / "seeds.yaml").write_text(yaml.safe_dump({"format": "reservoir-rl-seeds", "seeds": [11, 12]}))
    shutil.copy(copy / "tiny" / "config.yaml", group / "config.yaml")
    for seed, source in ((11, "tiny"), (12, "other")):
        shutil.copytree(copy / source, group / f"seed-{seed}")
    return copy


def test_labels_name_the_keys_that_differ_and_both_figures_are_written(three_runs, tmp_path):
    result = plot_runs(["tiny", "other"], tmp_path / "cmp", runs_dir=three_runs)
    assert result.differing == ["agent.n_step", "train.lr"]
    assert result.labels == {"tiny": "tiny (agent.n_step=1, train.lr=0.001)",
                             "other": "other (agent.n_step=3, train.lr=0.0005)"}
    assert [p.name for p in result.files] == [f"{n}.png" for n in RUNS_FIGURE_NAMES]
    for path in result.files:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    # the run without an evaluation is said to lack one; both runs' last validation levels are reported
    assert any("no evaluation.json in other" in note for note in result.notes)
    assert set(result.last_validation) == {"tiny", "other"}
    assert result.last_validation["tiny"][0] == 1024


def test_a_multi_seed_run_is_its_mean_with_a_band(three_runs, tmp_path, monkeypatch):
    import reservoir_rl.commands.plot_runs as module

    drawn = {}
    original = module.runs_curves_figure
    monkeypatch.setattr(module, "runs_curves_figure", lambda panels, **kw: drawn.setdefault("fig", original(panels, **kw)))
    result = plot_runs(["tiny", "pair"], tmp_path / "cmp", fmt="svg", runs_dir=three_runs)
    assert result.labels["pair"].startswith("pair (") and "train.seed=11,12" in result.labels["pair"]
    curves = result.curves["pair"]["greedy agent on the validation episodes"]
    assert len(curves.per_seed) == 2 and curves.steps.tolist() == [256, 512, 768, 1024]
    alone = result.curves["tiny"]["greedy agent on the validation episodes"]
    assert (curves.low <= curves.mean).all() and (curves.mean <= curves.high).all()
    assert (curves.high >= alone.mean).all()  # seed-11 is a copy of tiny: inside the band
    validation_axes = drawn["fig"].axes[1]
    assert sum(isinstance(c, PolyCollection) for c in validation_axes.collections) == 1  # one band: the two-seed run
    legend = [t.get_text() for t in validation_axes.get_legend().get_texts()]
    assert any(t.startswith("pair (") and "2 seeds" in t for t in legend)
    assert any(t.startswith("tiny (") for t in legend) and any("(tiny)" in t for t in legend)  # tiny's baselines
    assert all(p.suffix == ".svg" for p in result.files)


def test_out_is_required_and_runs_must_exist(three_runs, tmp_path):
    with pytest.raises(UserError, match="several runs need --out DIR"):
        plot_runs(["tiny", "other"], None, runs_dir=three_runs)
    with pytest.raises(UserError, match=r"unknown run 'nope'; runs in .*tiny"):
        plot_runs(["tiny", "nope"], tmp_path, runs_dir=three_runs)
    with pytest.raises(UserError, match="named twice"):
        plot_runs(["tiny", str(three_runs / "tiny")], tmp_path, runs_dir=three_runs)
    (tmp_path / "runs_learning_curve.png").write_bytes(b"mine")
    with pytest.raises(UserError, match="runs_learning_curve.png exists"):
        plot_runs(["tiny", "other"], tmp_path, runs_dir=three_runs)
    assert (tmp_path / "runs_learning_curve.png").read_bytes() == b"mine"


def test_cli_several_runs(three_runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["plot", "tiny", "other", "--runs-dir", str(three_runs), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "tiny (agent.n_step=1, train.lr=0.001): validation return" in result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(f"{n}.png" for n in RUNS_FIGURE_NAMES)
    for args, message in [([], "several runs need --out DIR"),
                          (["--out", str(tmp_path / "d"), "--seed", "1"], "--seed applies to the figures of one run"),
                          (["--out", str(tmp_path / "d"), "--start-date", "2001-01-01"], "--start-date applies")]:
        failed = runner.invoke(app, ["plot", "tiny", "other", "--runs-dir", str(three_runs), *args])
        assert failed.exit_code != 0 and message in failed.output and "Traceback" not in failed.output


def test_a_failed_figure_write_leaves_the_earlier_file(tmp_path, monkeypatch):
    import errno

    from matplotlib.figure import Figure

    import reservoir_rl.commands.plot as module

    target = tmp_path / "runs_learning_curve.png"
    target.write_bytes(b"earlier figure")

    def half_written(figure, handle, fmt):
        handle.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, "save_figure", half_written)
    with pytest.raises(UserError, match="cannot write the figure \\(No space left on device\\); any earlier version is unchanged"):
        module.write_figure(Figure(), target, "png")
    assert target.read_bytes() == b"earlier figure" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    monkeypatch.undo()
    assert module.write_figure(Figure(), target, "png").read_bytes()[:8] == PNG_SIGNATURE
