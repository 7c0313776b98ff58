"""Use case `plot`: the figures of a run (one seed or several), from its TensorBoard events, its best
checkpoint(s) and evaluation.json.

Read-only: the run may still be training (its last event file may end in a partial record, checkpoints
are replaced atomically). Figures are built without a display (matplotlib ``Figure`` objects, Agg).
The trajectories, actions and rewards are drawn on ``train.eval_episodes`` held-out episodes reset with
``train.validation_env_seed``; the baselines' reference levels on the learning curve are scored on
exactly the episodes of the in-training evaluation (``make_env(config, "validation", ...)``, same seed).
On a multi-seed run each seed's validation curve is measured on its validation episodes (the same for every
seed when ``train.eval_seed`` is set, as in configs/*.yaml; each seed's own when it is None), so the levels
drawn are each baseline's mean return on every seed's validation episodes, averaged over seeds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from matplotlib.figure import Figure

from reservoir_rl.catalog import YEARS_LABELS, make_baseline, policy_label
from reservoir_rl.config import Config, load_config
from reservoir_rl.env.inflow import InflowRecord
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.safety import guarded
from reservoir_rl.errors import UserError
from reservoir_rl.files import atomic_open, os_error_text
from reservoir_rl.evaluation.figures import evaluation_figures, trajectory_title
from reservoir_rl.evaluation.rollout import evaluate_policy, greedy_actor
from reservoir_rl.evaluation.run_figures import (
    LEARNING_CURVES,
    comparison_figure,
    learning_figure,
    read_evaluation,
    return_caption,
    training_figures,
)
from reservoir_rl.evaluation.traces import parse_start_dates, select_episodes
from reservoir_rl.evaluation.validation import validation_returns
from reservoir_rl.monitor.figures import save_figure
from reservoir_rl.monitor.seed_figures import SeedCurves, seed_curves_figure
from reservoir_rl.runs.baseline_cache import cached_levels, runs_folder
from reservoir_rl.runs.events import read_scalars
from reservoir_rl.runs.folders import RunDir, check_writable_folder, find_run
from reservoir_rl.runs.groups import find_group
from reservoir_rl.runs.locate import locate_checkpoint, read_checkpoint
from reservoir_rl.training.build import seed_everything

FORMATS = ("png", "svg")
FIGURE_NAMES = ["learning_curve", "training", "reservoir_metrics", "trajectory", "action_histogram", "reward_breakdown",
                "evaluation"]


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


def write_figure(figure: Figure, path: Path, fmt: str) -> Path:
    """Write ``figure`` to ``path`` atomically (a temporary file renamed over it); a file-system error is one
    line, and any earlier version of the file is then unchanged."""
    try:
        with atomic_open(path, binary=True) as handle:
            save_figure(figure, handle, fmt)
    except OSError as error:
        raise UserError(f"{path}: cannot write the figure ({os_error_text(error)}); any earlier version is unchanged") from None
    return path


def output_targets(run_path: Path, out: Optional[str | Path], names: list[str], fmt: str, force: bool) -> dict[str, Path]:
    """Figure name → file in ``out`` (default RUN/figures, whose files are the program's to replace; in
    another folder an existing file is refused unless ``force``)."""
    out_dir = Path(out) if out is not None else run_path / "figures"
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file, not a folder")
    check_writable_folder(out_dir, "--out" if out is not None else "figure folder")
    targets = {name: out_dir / f"{name}.{fmt}" for name in names}
    program_owned = out is None or out_dir.resolve() == (run_path / "figures").resolve()
    if not program_owned and not force:
        existing = [p for p in targets.values() if p.exists()]
        if existing:
            raise UserError(f"--out {out_dir}: {existing[0].name} exists; choose another folder or add --force to overwrite")
    return targets


def heldout_figures(run_dir: RunDir, result: PlotResult, label: str, start_date: Optional[dt.date] = None,
                    document: Optional[dict[str, Any]] = None) -> tuple[dict[str, Figure], int]:
    """Trajectory, action histogram and reward breakdown of the run's best checkpoint (under its release guard,
    as `evaluate` runs it) against SOP, SDP, MPC and DP on ``train.eval_episodes`` held-out episodes; returns (figures, number of validation episodes). Fills
    ``result.checkpoint``, ``frames`` and ``baseline_returns`` (on the in-training evaluation's episodes);
    a run without a checkpoint adds a note instead.

    With ``start_date`` the trajectory is of the episode starting that day, every policy run as `evaluate`
    runs it (the agent under its release guard; a baseline guarded where ``document`` says it was), on the
    episodes of ``document`` (the run's evaluation.json: its years, episodes and env seed, so that any
    episode of its trace or CSV can be drawn) or, without one, on those above."""
    try:
        source = locate_checkpoint(str(run_dir.path), run_dir.path.parent)
    except UserError as error:
        result.notes.append(f"held-out figures skipped: {error}")
        return {}, 0
    payload, config = read_checkpoint(source.path)
    result.checkpoint, result.frames = source.path, int(payload["counters"].get("frames", 0))
    seed = config.train.validation_env_seed
    years, n_episodes, episode = "heldout", config.train.eval_episodes, 0
    if start_date is not None and document is not None:
        try:
            years, n_episodes, seed = str(document["years"]), int(document["episodes"]), int(document["seed"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{run_dir.path}: its evaluation.json lacks the years, episodes or seed of its "
                            "episodes; `reservoir-rl evaluate` writes a new one") from None
    inflow = load_inflow(config.inflow)
    seed_everything(seed)
    env = build_env(config, years, n_envs=n_episodes, seed=seed, inflow=inflow)
    actor = greedy_actor(payload, config, env, source.path)
    if start_date is None:  # the agent under its release guard, as `evaluate` runs it
        agent = evaluate_policy(env, guarded(actor, env), seed)
        shown = {policy_label(name, short=True): evaluate_policy(env, make_baseline(name, env, config), seed)
                 for name in ("sop", "sdp", "mpc", "dp")}
    else:
        where = "its evaluation.json's" if document is not None else f"plot's {n_episodes} held-out"
        episode = select_episodes(env, seed, [start_date], years,
                                  hint=f"--start-date picks among {where} episodes; `reservoir-rl evaluate` with more "
                                       "--episodes draws more")[0]
        agent = evaluate_policy(env, guarded(actor, env), seed)
        was_guarded = {name: bool(p.get("guarded")) for name, p in (document or {}).get("policies", {}).items()}
        shown = {}
        for name in ("sop", "sdp", "mpc", "dp"):
            baseline = make_baseline(name, env, config)
            shown[policy_label(name, short=True)] = evaluate_policy(
                env, guarded(baseline, env) if was_guarded.get(name) else baseline, seed)
    what = YEARS_LABELS.get(years, years)
    figures = evaluation_figures(agent, env, others=shown, episode=episode, episodes=what)
    start = env.inflow.dates[int(agent.trajectory.get("record_index")[episode, 0])]
    shown_episode = trajectory_title(what, episode, n_episodes, start)  # "Held-out episode 1 of N, …"
    figures["trajectory"].suptitle(
        f"{label} (frame {result.frames:,}, {source.path.name}): {shown_episode[0].lower()}{shown_episode[1:]}"
    )
    result.baseline_returns = validation_levels(run_dir.path, config, inflow)
    return figures, config.train.eval_episodes


def validation_levels(run_path: Path, config: Config, inflow: InflowRecord) -> dict[str, float]:
    """Every raw-return baseline's mean return on the run's validation episodes — the levels its training logged
    (TensorBoard ``baselines/<name>``) — from the runs folder's cache when a training or an earlier plot computed
    them (`reservoir_rl.runs.baseline_cache`: the same key as the trainer's), else computed and kept there."""
    return cached_levels(runs_folder(run_path), config, inflow, lambda: validation_returns(config, inflow))


def _seed_runs(run: str | Path, runs_dir: str | Path, seed: Optional[int]) -> tuple[Path, str, dict[int, RunDir], Optional[int]]:
    """(folder, name, seed → run folder, the seed whose figures are drawn) of ``run``; a plain run is one
    seed, keyed by -1 (its seed is read from its checkpoint when needed)."""
    group = find_group(run, runs_dir)
    if group is None:
        run_dir = find_run(str(run), Path(runs_dir))
        if seed is not None:
            raise UserError(f"--seed {seed}: {run_dir.path} is a run of one seed (--seed picks a seed of a multi-seed run)")
        return run_dir.path, run_dir.name, {-1: run_dir}, None
    if seed is None:
        seed = group.seeds[0]
    elif seed not in group.seeds:
        raise UserError(f"--seed {seed}: {group.path} has seeds {', '.join(map(str, group.seeds))}")
    started = {s: group.run(s) for s in group.seeds if group.run(s).checkpoints.is_dir()}
    if not started:
        raise UserError(f"{group.path}: no seed has started; `reservoir-rl resume {group.path}` trains them")
    return group.path, group.name, started, seed


def plot(
    run: str | Path,
    out: Optional[str | Path] = None,
    fmt: str = "png",
    runs_dir: str | Path = "runs",
    force: bool = False,
    seed: Optional[int] = None,
    start_date: Optional[str] = None,
) -> PlotResult:
    """Write the figures of ``run`` (name under ``runs_dir`` or folder) into ``out`` (default RUN/figures).

    learning_curve (one seed: training and validation returns with the baselines' levels; several: every
    seed, their mean and min–max band), training, reservoir_metrics (from TensorBoard events);
    trajectory, action_histogram, reward_breakdown (greedy agent vs SOP, SDP, MPC and DP on held-out episodes, from
    the best checkpoint); evaluation (from evaluation.json, when `evaluate` has written one). On a
    multi-seed run every figure but the learning curve and the comparison is of ``seed`` (default: the
    first). Files in the run's own figures folder are replaced; in a folder given with ``out`` existing
    files are refused unless ``force``.

    ``start_date`` (YYYY-MM-DD): the trajectory figure is of the episode starting that day, as `evaluate`
    ran it (see `heldout_figures`); it must be the start of one of those episodes.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose png or svg")
    date = parse_start_dates([start_date])[0] if start_date is not None else None
    folder, name, runs, shown = _seed_runs(run, runs_dir, seed)
    several = shown is not None
    targets = output_targets(folder, out, FIGURE_NAMES, fmt, force)
    result = PlotResult(folder, seed=shown)
    if several:
        missing = [s for s in find_group(run, runs_dir).seeds if s not in runs]
        if missing:
            result.notes.append(f"seeds {', '.join(map(str, missing))} have not started: left out of the curves")
    key = shown if several else -1
    label = f"{name} seed {shown}" if several else name
    scalars = {s: read_scalars(r.tensorboard) for s, r in runs.items()}
    if not scalars[key]:
        result.notes.append(f"no TensorBoard scalars in {runs[key].tensorboard} yet: training curves are empty")

    document = read_evaluation(folder / "evaluation.json")
    figures, eval_episodes = heldout_figures(runs[key], result, label, date, document)
    references = {policy_label(n): v for n, v in result.baseline_returns.items()}
    caption = _return_caption(runs[key])
    if several:
        figures["learning_curve"] = _seeds_learning_curve(runs, scalars, result, name, caption)
    else:
        figures["learning_curve"] = learning_figure(scalars[key], references, name, eval_episodes, caption)
    figures.update(training_figures(scalars[key], label))
    if document is not None:
        figures["evaluation"] = comparison_figure(document)
    else:
        result.notes.append("no evaluation.json in the run folder (run `reservoir-rl evaluate` first): evaluation figure skipped")
    for figure_name in FIGURE_NAMES:
        if figure_name in figures:
            result.files.append(write_figure(figures[figure_name], targets[figure_name], fmt))
    return result


def _return_caption(run_dir: RunDir) -> str:
    """What the learning curves' return is, with the weights of the run's config.yaml ("" if unreadable)."""
    try:
        config = load_config(run_dir.config_path)
    except UserError:
        return ""
    return return_caption(config.env.reward, config.env.horizon_days)


def _seeds_learning_curve(runs: dict[int, RunDir], scalars: dict, result: PlotResult, name: str,
                          caption: str = "") -> Figure:
    """Every seed's learning curves, their mean and band, with the baselines' levels averaged over seeds."""
    result.curves = {
        tag: SeedCurves.from_series({f"seed {s}": scalars[s][tag] for s in runs if tag in scalars[s]})
        for tag in reversed(LEARNING_CURVES)
    }
    per_seed = {}
    for s, run_dir in runs.items():
        if s == result.seed and result.baseline_returns:
            per_seed[s] = result.baseline_returns
            continue
        try:
            config = read_checkpoint(locate_checkpoint(str(run_dir.path), run_dir.path.parent).path)[1]
        except UserError:  # no checkpoint yet: nothing to read the evaluation settings from
            continue
        per_seed[s] = validation_levels(run_dir.path, config, load_inflow(config.inflow))
    references = {}
    if per_seed:
        names = next(iter(per_seed.values())).keys()
        references = {policy_label(n): sum(r[n] for r in per_seed.values()) / len(per_seed) for n in names}
    return seed_curves_figure(
        {LEARNING_CURVES[tag]: curves for tag, curves in result.curves.items()},
        reference_lines={LEARNING_CURVES["eval/return"]: references},
        title=f"{name}: {len(runs)} seeds; dashed: baselines on the seeds' validation episodes "
              f"(mean over {len(per_seed)} seeds)",
        caption=caption,
    )
