"""Use case `plot` on a multi-seed run: learning curves of every seed with their mean and band, and the
usual held-out and training-panel figures of one seed.

Each seed's validation curve (``eval/return``) is measured during its training on its own validation
episodes (reset with ``train.seed + EVAL_SEED_OFFSET``), so the baseline levels drawn with the curves are
each baseline's mean return on every seed's validation episodes, averaged over the seeds (the level the
mean curve compares to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from reservoir_rl.errors import UserError
from reservoir_rl.monitor.figures import save_figure
from reservoir_rl.monitor.seed_figures import SeedCurves, seed_curves_figure
from reservoir_rl.commands.evaluate import POLICY_LABELS
from reservoir_rl.commands.evaluate_seeds import SEEDS_RESULTS_FORMAT
from reservoir_rl.commands.plot import (
    FIGURE_NAMES,
    FORMATS,
    PlotResult,
    baseline_returns,
    comparison_figure,
    heldout_figures,
    output_targets,
    read_evaluation,
    read_scalars,
    training_figures,
)
from reservoir_rl.commands.seeds import SeedGroup

# TensorBoard tag -> panel title of the learning-curve figure
CURVES = {
    "eval/return": "greedy agent on the validation episodes",
    "episode/return_mean": "training episodes (ε-greedy, training years)",
}


def plot_seeds(
    group: SeedGroup,
    out: Optional[str | Path] = None,
    fmt: str = "png",
    force: bool = False,
    seed: Optional[int] = None,
) -> PlotResult:
    """Write the figures of a multi-seed run into ``out`` (default RUN/figures).

    learning_curve: every seed, the mean over seeds and the min–max band (validation and training returns);
    training, reservoir_metrics, trajectory, action_histogram, reward_breakdown: of ``seed`` (default the
    first seed); evaluation: from the run's evaluation.json, when `evaluate` has written one.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose png or svg")
    if seed is None:
        seed = group.seeds[0]
    elif seed not in group.seeds:
        raise UserError(f"--seed {seed}: {group.path} has seeds {', '.join(map(str, group.seeds))}")
    started = [s for s in group.seeds if group.run(s).checkpoints.is_dir()]
    if not started:
        raise UserError(f"{group.path}: no seed has started; `reservoir-rl resume {group.path}` trains them")
    targets = output_targets(group.path, out, FIGURE_NAMES, fmt, force)
    result = PlotResult(group.path, seed=seed)
    missing = [s for s in group.seeds if s not in started]
    if missing:
        result.notes.append(f"seeds {', '.join(map(str, missing))} have not started: left out of the curves")

    scalars = {s: read_scalars(group.run(s).tensorboard) for s in started}
    result.curves = {
        tag: SeedCurves.from_series({f"seed {s}": scalars[s][tag] for s in started if tag in scalars[s]})
        for tag in CURVES
    }
    figures, seed_references, eval_episodes = ({}, {}, 0)
    if seed in started:
        figures, seed_references, eval_episodes = heldout_figures(group.run(seed), result, label=f"{group.name} seed {seed}")
    else:
        result.notes.append(f"seed {seed} has not started: no held-out or training-panel figures")
    per_seed = {}
    for s in started:
        try:
            per_seed[s] = result.baseline_returns if s == seed and result.baseline_returns else baseline_returns(group.run(s))
        except UserError:  # no checkpoint yet: nothing to read the evaluation settings from
            continue
    references = {}
    if per_seed:
        names = next(iter(per_seed.values())).keys()
        references = {POLICY_LABELS[n]: sum(r[n] for r in per_seed.values()) / len(per_seed) for n in names}
    figures["learning_curve"] = seed_curves_figure(
        {CURVES[tag]: curves for tag, curves in result.curves.items()},
        reference_lines={CURVES["eval/return"]: references},
        title=f"{group.name}: {len(started)} seeds; dashed: baselines on the seeds' validation episodes "
              f"(mean over {len(per_seed)} seeds)",
    )
    if seed in started:
        panels = training_figures(scalars[seed], seed_references, f"{group.name} seed {seed}", eval_episodes)
        figures.update({k: panels[k] for k in ("training", "reservoir_metrics")})
    document = read_evaluation(group.path / "evaluation.json", SEEDS_RESULTS_FORMAT)
    if document is not None:
        boot = document.get("bootstrap", {})
        years = {"heldout": "held-out", "validation": "validation-year", "train": "training-year", "all": "any-year"}.get(document.get("years"), "")
        figures["evaluation"] = comparison_figure(document, title=(
            f"{group.name}, {len(document.get('seeds', []))} seeds: {document.get('episodes')} {years} episodes; "
            f"agent: mean over seeds; {boot.get('confidence', 0.95):.0%} stratified bootstrap intervals"))
    else:
        result.notes.append("no evaluation.json in the run folder (run `reservoir-rl evaluate` first): evaluation figure skipped")
    for name in FIGURE_NAMES:
        if name in figures:
            result.files.append(save_figure(figures[name], targets[name], fmt))
    return result
