"""Use case `plot`: the figures of a run, from its TensorBoard events, its best checkpoint and evaluation.json.

Read-only: the run may still be training (its last event file may end in a partial record, checkpoints
are replaced atomically). Figures are built without a display (matplotlib ``Figure`` objects, Agg).
The trajectories, actions and rewards are drawn on ``train.eval_episodes`` held-out episodes reset with
``train.seed + EVAL_SEED_OFFSET``; the baselines' reference levels on the learning curve are scored on
exactly the episodes of the in-training evaluation (``make_env(config, "validation", ...)``, same seed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.figure import Figure

from reservoir_rl.baselines import BASELINE_NAMES, make_baseline
from reservoir_rl.config import Config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.reservoir_env import make_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.monitor.figures import (
    learning_curve_figure,
    metric_panels_figure,
    policy_comparison_figure,
    save_figure,
)
from reservoir_rl.training.build import EVAL_SEED_OFFSET, seed_everything
from reservoir_rl.commands.evaluate import HEADLINE_METRICS, POLICY_LABELS, RESULTS_FORMAT
from reservoir_rl.evaluation.rollout import evaluate_policy, greedy_actor
from reservoir_rl.runs.locate import locate_checkpoint, read_checkpoint
from reservoir_rl.evaluation.figures import evaluation_figures
from reservoir_rl.runs.folders import RunDir, find_run

FORMATS = ("png", "svg")
Series = tuple[np.ndarray, np.ndarray]  # (frames (N,), values (N,))
RESERVOIR_PANELS = {
    "energy_gwh": "energy per episode (GWh)",
    "spill_hm3": "spill per episode (hm³)",
    "flood_zone_days": "flood-zone days per episode",
    "env_flow_deficit_days": "env-flow deficit days per episode",
    "failures": "failures per episode",
    "storage_mean_hm3": "mean storage (hm³)",
}
COMPARISON_METRICS = ("return", "energy_gwh", "spill_hm3", "flood_zone_days", "env_flow_deficit_days", "success")


@dataclass
class PlotResult:
    """The figure files written, the checkpoint the held-out figures come from, and what was skipped."""

    run_dir: Path
    files: list[Path] = field(default_factory=list)
    checkpoint: Optional[Path] = None
    frames: Optional[int] = None
    baseline_returns: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seed: Optional[int] = None  # multi-seed run: the seed of the held-out and training-panel figures
    curves: dict[str, Any] = field(default_factory=dict)  # multi-seed run: tag -> SeedCurves


def read_scalars(tensorboard_dir: Path) -> dict[str, Series]:
    """Every scalar tag of a run's TensorBoard folder → (frames, values), sorted by frame, last write wins.

    Reads all event files of the folder (a resumed run adds one); a partial record at the end of a file
    being written is skipped. A missing folder gives an empty dict.
    """
    if not tensorboard_dir.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    # The reader warns on a truncated last record (a run still writing): expected, not the user's concern.
    quiet = [logging.getLogger(name) for name in ("tensorboard", "tensorflow")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        accumulator = EventAccumulator(str(tensorboard_dir), size_guidance={SCALARS: 0})
        accumulator.Reload()
        out: dict[str, Series] = {}
        for tag in accumulator.Tags().get("scalars", []):
            by_step = {int(e.step): float(e.value) for e in accumulator.Scalars(tag)}
            steps = np.array(sorted(by_step), dtype=np.int64)
            out[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
        return out
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


def read_evaluation(path: Path, format_name: str = RESULTS_FORMAT) -> Optional[dict[str, Any]]:
    """The run's ``evaluation.json`` written by `evaluate` (of ``format_name``), or None if absent or not one."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != format_name:
        return None
    return document


def _pick(scalars: dict[str, Series], labels: dict[str, str]) -> dict[str, Series]:
    """label → series for the tags present (tag → label in ``labels``)."""
    return {label: scalars[tag] for tag, label in labels.items() if tag in scalars}


def training_figures(scalars: dict[str, Series], references: dict[str, float], run_name: str, eval_episodes: int) -> dict[str, Figure]:
    """Learning curve (with baseline reference levels), loss / ε / Q panels and reservoir metrics over training.

    The ``eval/`` curves are the in-training evaluation, on the validation episodes; ``references`` (baseline
    label → mean return) must be scored on those same episodes."""
    learning = learning_curve_figure(
        _pick(scalars, {"episode/return_mean": "training episodes (ε-greedy, training years)",
                        "eval/return": f"greedy agent (validation, {eval_episodes} episodes)"}),
        reference_lines=references,
        ylabel="return per episode",
        title=f"{run_name}: learning curve; dashed: baselines on the same validation episodes",
    )
    panels = {
        "loss": _pick(scalars, {"train/loss": "loss"}),
        "ε (exploration)": _pick(scalars, {"train/epsilon": "ε"}),
        "Q-value": _pick(scalars, {"agent/q_mean": "mean", "agent/q_max": "max", "agent/q_min": "min"}),
        "|TD error|": _pick(scalars, {"agent/td_error": "|TD error|"}),
        "learning rate": _pick(scalars, {"train/learning_rate": "learning rate"}),
        "frames per second": _pick(scalars, {"train/frames_per_second": "frames/s"}),
    }
    training = metric_panels_figure(panels, title=f"{run_name}: optimisation")
    reservoir = metric_panels_figure(
        {
            label: _pick(scalars, {f"reservoir/{key}": "training episodes", f"eval/{key}": "validation greedy"})
            for key, label in RESERVOIR_PANELS.items()
        },
        title=f"{run_name}: reservoir metrics over training",
    )
    return {"learning_curve": learning, "training": training, "reservoir_metrics": reservoir}


def comparison_figure(document: dict[str, Any], title: Optional[str] = None) -> Figure:
    """Mean and interval of the main metrics per policy, from an evaluation.json document."""
    stats: dict[str, dict[str, tuple[Optional[float], Optional[float], Optional[float]]]] = {}
    for key in COMPARISON_METRICS:
        label = HEADLINE_METRICS.get(key, key)
        stats[label] = {}
        for name, policy in document.get("policies", {}).items():
            s = policy.get("summary", {}).get(key)
            if s is not None:
                stats[label][POLICY_LABELS.get(name, name)] = (s.get("mean"), s.get("ci_low"), s.get("ci_high"))
    boot = document.get("bootstrap", {})
    title = title or (f"{document.get('run_name')} at frame {document.get('frames', 0):,}: {document.get('episodes')} "
                      f"{document.get('years')} episodes, mean and {boot.get('confidence', 0.95):.0%} bootstrap interval")
    return policy_comparison_figure(stats, title=title)


def output_targets(run_path: Path, out: Optional[str | Path], names: list[str], fmt: str, force: bool) -> dict[str, Path]:
    """Figure name → file in ``out`` (default RUN/figures, whose files are the program's to replace; in
    another folder an existing file is refused unless ``force``)."""
    out_dir = Path(out) if out is not None else run_path / "figures"
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file, not a folder")
    program_owned = out is None or out_dir.resolve() == (run_path / "figures").resolve()
    return _targets(out_dir, names, fmt, force, program_owned)


def _targets(out_dir: Path, names: list[str], fmt: str, force: bool, program_owned: bool) -> dict[str, Path]:
    targets = {name: out_dir / f"{name}.{fmt}" for name in names}
    if not program_owned and not force:
        existing = [p for p in targets.values() if p.exists()]
        if existing:
            raise UserError(f"--out {out_dir}: {existing[0].name} exists; choose another folder or add --force to overwrite")
    return targets


def heldout_figures(run_dir: RunDir, result: PlotResult, label: Optional[str] = None) -> tuple[dict[str, Figure], dict[str, float], int]:
    """Trajectory, action histogram and reward breakdown of the run's best checkpoint against SOP and DP on
    ``train.eval_episodes`` held-out episodes; returns (figures, baseline label → mean return on the
    in-training evaluation's episodes, number of those episodes). Fills ``result.checkpoint``, ``frames`` and
    ``baseline_returns``; a run without a checkpoint adds a note instead."""
    try:
        source = locate_checkpoint(str(run_dir.path), run_dir.path.parent)
    except UserError as error:
        result.notes.append(f"held-out figures skipped: {error}")
        return {}, {}, 0
    payload, config = read_checkpoint(source.path)
    result.checkpoint, result.frames = source.path, int(payload["counters"].get("frames", 0))
    eval_episodes = config.train.eval_episodes
    seed = config.train.seed + EVAL_SEED_OFFSET
    inflow = load_inflow(config.inflow)
    seed_everything(seed)
    env = make_env(config, "heldout", n_envs=eval_episodes, seed=seed, inflow=inflow)
    agent = evaluate_policy(env, greedy_actor(payload, config, env, source.path), seed)
    shown = {name: evaluate_policy(env, make_baseline(name, env, config.baselines), seed) for name in ("sop", "dp")}
    figures = evaluation_figures(agent, env, others={"SOP": shown["sop"], "DP": shown["dp"]}, episodes="held-out")
    figures["trajectory"].suptitle(
        f"{label or run_dir.name} (frame {result.frames:,}, {source.path.name}): held-out episode from "
        f"{env.inflow.dates[int(agent.trajectory.get('record_index')[0, 0])]}"
    )
    result.baseline_returns = _validation_returns(config, inflow)
    references = {POLICY_LABELS[name]: value for name, value in result.baseline_returns.items()}
    return figures, references, eval_episodes


def _validation_returns(config: Config, inflow: InflowRecord) -> dict[str, float]:
    """Mean return of each baseline on the episodes of the run's in-training evaluations."""
    seed = config.train.seed + EVAL_SEED_OFFSET
    env = make_env(config, "validation", n_envs=config.train.eval_episodes, seed=seed, inflow=inflow)
    return {name: evaluate_policy(env, make_baseline(name, env, config.baselines), seed).mean("return")
            for name in BASELINE_NAMES}


def baseline_returns(run_dir: RunDir) -> dict[str, float]:
    """Mean return of each baseline on the episodes of the run's in-training evaluations."""
    config = read_checkpoint(locate_checkpoint(str(run_dir.path), run_dir.path.parent).path)[1]
    return _validation_returns(config, load_inflow(config.inflow))


FIGURE_NAMES = ["learning_curve", "training", "reservoir_metrics", "trajectory", "action_histogram", "reward_breakdown",
                "evaluation"]


def plot(
    run: str | Path,
    out: Optional[str | Path] = None,
    fmt: str = "png",
    runs_dir: str | Path = "runs",
    force: bool = False,
    seed: Optional[int] = None,
) -> PlotResult:
    """Write the figures of ``run`` (name under ``runs_dir`` or folder) into ``out`` (default RUN/figures).

    A multi-seed run gets the figures of `reservoir_rl.commands.plot_seeds.plot_seeds` (``seed``: the seed
    of its held-out figures; for a single run it must be None).

    Files: learning_curve, training, reservoir_metrics (from TensorBoard events; the learning curve's
    baseline levels are scored on the validation episodes of the in-training evaluation); trajectory,
    action_histogram, reward_breakdown (greedy agent vs SOP vs DP on held-out episodes, from the run's
    best checkpoint); evaluation (from evaluation.json, when `evaluate` has written one). Files in the
    run's own figures folder are replaced; in a folder given with ``out`` existing files are refused
    unless ``force``.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose png or svg")
    from reservoir_rl.commands.seeds import find_group

    group = find_group(run, runs_dir)
    if group is not None:
        from reservoir_rl.commands.plot_seeds import plot_seeds

        return plot_seeds(group, out, fmt, force, seed)
    run_dir: RunDir = find_run(str(run), Path(runs_dir))
    if seed is not None:
        raise UserError(f"--seed {seed}: {run_dir.path} is a run of one seed (--seed picks a seed of a multi-seed run)")
    targets = output_targets(run_dir.path, out, FIGURE_NAMES, fmt, force)
    result = PlotResult(run_dir.path)

    scalars = read_scalars(run_dir.tensorboard)
    if not scalars:
        result.notes.append(f"no TensorBoard scalars in {run_dir.tensorboard} yet: training curves are empty")
    figures, references, eval_episodes = heldout_figures(run_dir, result)
    figures.update(training_figures(scalars, references, run_dir.name, eval_episodes))
    document = read_evaluation(run_dir.path / "evaluation.json")
    if document is not None:
        figures["evaluation"] = comparison_figure(document)
    else:
        result.notes.append("no evaluation.json in the run folder (run `reservoir-rl evaluate` first): evaluation figure skipped")
    for name in FIGURE_NAMES:
        if name in figures:
            result.files.append(save_figure(figures[name], targets[name], fmt))
    return result
