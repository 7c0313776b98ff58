"""Use case `plot RUN RUN …`: several runs (each of one seed or several) in one set of figures.

Read-only, like `plot`: the runs may still be training. Two figures go to ``out``:

- ``runs_learning_curve``: training and validation returns against frames from every run's TensorBoard
  events, a run of several seeds as its mean with the band between its lowest and highest seed; the
  first run's baselines on its validation episodes as grey reference lines (read from its checkpoint's
  config, when it has one);
- ``runs_evaluation``: each run's held-out agent (its evaluation.json: mean over seeds and bootstrap
  interval of the main metrics) beside the baselines of the first run that has an evaluation.

Runs are labelled by name and by the config keys that differ between them. Runs on different inflow
records (rivers) or reservoirs are drawn together all the same — a note says their returns are not on
one scale (the differing keys in the labels say how).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from reservoir_rl.catalog import policy_label
from reservoir_rl.commands.plot import FORMATS, output_targets, write_figure
from reservoir_rl.config import config_to_dict, load_config
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.evaluation.run_comparison import (
    ComparedRun,
    compare_evaluations,
    differing_keys,
    flatten,
    record_of,
    run_curves,
    run_labels,
)
from reservoir_rl.evaluation.run_figures import LEARNING_CURVES, read_evaluation, return_caption
from reservoir_rl.evaluation.validation import validation_returns
from reservoir_rl.monitor.comparison_figures import runs_curves_figure
from reservoir_rl.monitor.figures import policy_comparison_figure
from reservoir_rl.monitor.seed_figures import SeedCurves
from reservoir_rl.runs.events import read_scalars
from reservoir_rl.runs.folders import find_run
from reservoir_rl.runs.groups import find_group
from reservoir_rl.runs.locate import locate_checkpoint, read_checkpoint

RUNS_FIGURE_NAMES = ["runs_learning_curve", "runs_evaluation"]


@dataclass
class RunsPlotResult:
    """What `plot_runs` drew: each run's label and its curves (curve label → SeedCurves), files, notes."""

    labels: dict[str, str] = field(default_factory=dict)  # run name → label in the figures
    curves: dict[str, dict[str, SeedCurves]] = field(default_factory=dict)  # run name → curve label → curves
    last_validation: dict[str, tuple[int, float]] = field(default_factory=dict)  # run name → (frame, mean return)
    differing: list[str] = field(default_factory=list)  # the config keys that differ between the runs
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_run(run: str, runs_dir: Path) -> tuple[ComparedRun, Path]:
    """A run (one seed or several) as `ComparedRun` (its label still empty) and its folder; unknown runs
    and unreadable configs are one-line errors."""
    group = find_group(run, runs_dir)
    if group is not None:
        folder, name, config_path = group.path, group.name, group.config_path
        seed_dirs = {f"seed {s}": group.run(s) for s in group.seeds if group.run(s).path.is_dir()}
    else:
        run_dir = find_run(run, runs_dir)
        folder, name, config_path, seed_dirs = run_dir.path, run_dir.name, run_dir.config_path, {"": run_dir}
    flat = flatten(config_to_dict(load_config(config_path)))
    if group is not None:  # the seeds, not the base config's train.seed, tell a multi-seed run
        flat["train.seed"] = ",".join(map(str, group.seeds))
    scalars = {label: read_scalars(d.tensorboard) for label, d in seed_dirs.items()}
    return ComparedRun(name, flat, scalars, read_evaluation(folder / "evaluation.json")), folder


def _first_run_baselines(folder: Path, runs_dir: Path) -> dict[str, float]:
    """Baseline label → mean return on the first run's validation episodes (its first seed's checkpoint
    config); empty when it has no checkpoint yet."""
    group = find_group(str(folder), runs_dir)
    target = group.run(group.seeds[0]).path if group is not None else folder
    try:
        config = read_checkpoint(locate_checkpoint(str(target), target.parent).path)[1]
    except UserError:
        return {}
    return {policy_label(n): v for n, v in validation_returns(config, load_inflow(config.inflow)).items()}


def plot_runs(
    runs: Sequence[str],
    out: Optional[str | Path],
    fmt: str = "png",
    runs_dir: str | Path = "runs",
    force: bool = False,
) -> RunsPlotResult:
    """Draw the learning curves and held-out evaluations of ``runs`` (≥ 2 names under ``runs_dir`` or
    folders) together into the folder ``out`` (required: no run owns the figures); existing files there
    are refused unless ``force``. Each figure is written atomically."""
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose png or svg")
    if len(runs) < 2:
        raise UserError("plot of several runs: name at least two runs")
    if out is None:
        raise UserError(f"plot {' '.join(runs)}: several runs need --out DIR, the folder for their figures")
    runs_dir = Path(runs_dir)
    read = [_read_run(str(run), runs_dir) for run in runs]
    folders = [folder.resolve() for _, folder in read]
    repeated = sorted({str(f) for f in folders if folders.count(f) > 1})
    if repeated:
        raise UserError(f"{repeated[0]}: named twice; name each run once")
    targets = output_targets(Path(out), out, RUNS_FIGURE_NAMES, fmt, force)
    compared = [run for run, _ in read]
    result = RunsPlotResult(differing=differing_keys({r.name: r.config for r in compared}))
    result.labels = run_labels({r.name: r.config for r in compared}, result.differing)
    for run in compared:
        run.label = result.labels[run.name]
        result.curves[run.name] = run_curves(run)
        validation = result.curves[run.name][LEARNING_CURVES["eval/return"]]
        if len(validation.steps):
            result.last_validation[run.name] = (int(validation.steps[-1]), float(validation.mean[-1]))
        if not any(run.scalars.values()):
            result.notes.append(f"{run.name}: no TensorBoard scalars yet: its curves are empty")
    records = {record_of(r.config) for r in compared}
    reservoirs = {str({k: v for k, v in r.config.items() if k.startswith("env.")}) for r in compared}
    if len(records) > 1 or len(reservoirs) > 1:
        what = "inflow records (" + "; ".join(f"{r.name}: {record_of(r.config)}" for r in compared) + ")" \
            if len(records) > 1 else "reservoirs or rewards (env settings)"
        result.notes.append(f"the runs are on different {what}: their returns are not on one scale")

    first = compared[0]
    caption = ""
    try:
        caption = return_caption(load_config(read[0][1] / "config.yaml").env.reward, int(first.config["env.horizon_days"]))
    except (UserError, KeyError):
        pass
    references = _first_run_baselines(read[0][1], runs_dir)
    panels = {curve: {r.label: result.curves[r.name][curve] for r in compared} for curve in LEARNING_CURVES.values()}
    figures = {"runs_learning_curve": runs_curves_figure(
        panels, reference_lines={LEARNING_CURVES["eval/return"]: {f"{k} ({first.name})": v for k, v in references.items()}},
        title=f"{len(compared)} runs: learning curves (a run of several seeds: mean and range over its seeds)",
        caption=caption,
    )}
    evaluation = compare_evaluations(compared)
    result.notes += evaluation.notes
    if evaluation.stats:
        figures["runs_evaluation"] = policy_comparison_figure(evaluation.stats, title=evaluation.title,
                                                             caption=evaluation.caption)
    for name in RUNS_FIGURE_NAMES:
        if name in figures:
            result.files.append(write_figure(figures[name], targets[name], fmt))
    return result
